"""``concurrent.futures`` for what pallet uses: one function run in a thread of its own, its
result (or its exception) taken later, as ``ThreadPoolExecutor().submit(fn).result()`` gives it.

``concurrent.futures`` imports ``logging``, ``queue``, ``weakref`` and ``itertools`` for pools
and waiting on many futures, which pallet does not need (a registry inspect fetches the tags
while it reads the manifest; a container's network is set up while its rootfs is mounted).
"""


class Future:
    """``fn()`` running in a daemon thread; :meth:`result` waits for it and returns what it
    returned or raises what it raised (each call, as ``concurrent.futures.Future.result``)."""

    def __init__(self, fn, name: str | None = None):
        import threading  # when a thread is wanted: ``inspect --no-tags`` starts none

        self._out: list = []
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn) -> None:
        try:
            self._out.append((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._out.append((False, e))

    def result(self):
        self._thread.join()
        ok, value = self._out[0]
        if not ok:
            raise value
        return value


def submit(fn, name: str | None = None) -> Future:
    return Future(fn, name)
