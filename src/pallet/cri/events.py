"""GetContainerEvents (the kubelet's ``EventedPLEG``): a stream of container events, each with
the pod's status and its containers' statuses, as containerd and CRI-O send them.

The RPCs that make, start and remove containers and pods publish their events; exits (a
container's process ending on its own or being stopped, a pause process dying) come from conmon's
exit files, watched with inotify while anybody listens. Nothing is built or watched while
nobody listens. Each listener has a queue of ``MAX_QUEUE`` events; a listener that falls that
far behind loses the newest (logged), as containerd drops them, and the kubelet's relist catches
up.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading

#: events a listener may have unread before newer ones are dropped
MAX_QUEUE = 1000

log = logging.getLogger("pallet.cri")


class Events:
    def __init__(self, exits_dir: str, on_exit):
        """``on_exit(container_id)`` is called (on the watcher's thread) for each exit file
        conmon writes in ``exits_dir`` while there are listeners."""
        self.exits_dir, self.on_exit = exits_dir, on_exit
        self._lock = threading.Lock()
        self._subs: list[queue.Queue] = []
        self._watcher: threading.Thread | None = None

    def active(self) -> bool:
        return bool(self._subs)

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(MAX_QUEUE)
        with self._lock:
            self._subs.append(q)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="cri-exit-watch", daemon=True)
                self._watcher.start()
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._subs:
                self._subs.remove(q)

    def publish(self, make) -> None:
        """``make()`` (the event, or None) is called only when somebody listens."""
        if not self._subs:
            return
        try:
            ev = make()
        except Exception:  # noqa: BLE001 - a container gone meanwhile: no event
            log.debug("no container event", exc_info=True)
            return
        if ev is None:
            return
        with self._lock:
            subs = list(self._subs)
        for q in subs:
            try:
                q.put_nowait(ev)
            except queue.Full:
                log.warning("a GetContainerEvents listener is %d events behind: an event is dropped", MAX_QUEUE)

    def _watch(self) -> None:
        """The exit files conmon writes (a file closed after writing, or renamed in)."""
        from .._std import syscalls as sc

        try:
            fd = sc.inotify_init1(os.O_CLOEXEC)
            sc.inotify_add_watch(fd, self.exits_dir, sc.IN_CLOSE_WRITE | sc.IN_MOVED_TO)
        except OSError as e:
            log.error("container exits are not watched (%s): GetContainerEvents sends no stop events", e)
            return
        while True:
            try:
                buf = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError as e:
                log.error("container exits are no longer watched: %s", e)
                return
            for name in parse_inotify(buf):
                if not self._subs:
                    continue
                try:
                    self.on_exit(name)
                except Exception:  # noqa: BLE001 - one bad event never ends the watch
                    log.exception("container event for the exit of %s", name[:13])


def parse_inotify(buf: bytes) -> list[str]:
    """The names in a read of an inotify descriptor (``wd mask cookie len`` then ``len`` bytes of
    name, NUL-padded)."""
    out, i = [], 0
    while i + 16 <= len(buf):
        _wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + n].split(b"\0", 1)[0]
        i += 16 + n
        if name:
            out.append(name.decode("utf-8", "replace"))
    return out
