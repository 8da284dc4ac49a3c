"""OOM notifications for ``events``, as runc gets them.

* v1: an eventfd registered for ``memory.oom_control`` through ``cgroup.event_control``
  (the kernel counts each OOM of the cgroup on it; it also fires when the cgroup goes).
* v2: inotify on ``memory.events``; an OOM is the ``oom_kill`` count going up.

``Watch.fileno()`` is polled by the caller; ``Watch.read()`` returns how many OOMs
happened since the last call (0 for a wake-up that was not one).
"""

import os

from ...errors import OCIRuntimeError


class _V1:
    def __init__(self, mem_dir):
        self.dir = mem_dir
        self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            self.ctl = os.open(f"{mem_dir}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            with open(f"{mem_dir}/cgroup.event_control", "w") as f:
                f.write(f"{self.efd} {self.ctl}")
        except OSError as e:
            os.close(self.efd)
            raise OCIRuntimeError(f"events: cannot watch {mem_dir}/memory.oom_control: {e.strerror}") from None

    def fileno(self):
        return self.efd

    def read(self):
        try:
            n = os.eventfd_read(self.efd)
        except BlockingIOError:
            return 0
        if not os.path.exists(f"{self.dir}/cgroup.event_control"):
            return 0  # the cgroup was removed: that wake-up is not an OOM
        return n

    def close(self):
        for fd in (self.efd, self.ctl):
            try:
                os.close(fd)
            except OSError:
                pass


class _V2:
    IN_MODIFY = 0x2

    def __init__(self, path):
        import ctypes

        self.file = f"{path}/memory.events"
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, self.file.encode(), self.IN_MODIFY) < 0:
            e = ctypes.get_errno()
            if self.fd >= 0:
                os.close(self.fd)
            raise OCIRuntimeError(f"events: cannot watch {self.file}: {os.strerror(e)}")
        self.last = self._count()

    def _count(self):
        try:
            with open(self.file) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except OSError:
            pass
        return 0

    def fileno(self):
        return self.fd

    def read(self):
        try:
            os.read(self.fd, 65536)
        except BlockingIOError:
            pass
        now = self._count()
        n, self.last = max(0, now - self.last), max(now, self.last)
        return n

    def close(self):
        os.close(self.fd)


def watch(manager):
    """A watch for the manager's memory cgroup, or None when it has no memory controller."""
    v1 = getattr(manager, "v1", manager)  # hybrid: memory is v1's
    paths = getattr(v1, "paths", None)
    if isinstance(paths, dict) and paths.get("memory"):
        if os.path.exists(f"{paths['memory']}/memory.oom_control"):
            return _V1(paths["memory"])
        return None
    path = getattr(manager, "path", None)
    if path and not getattr(manager, "hybrid", False) and os.path.exists(f"{path}/memory.events"):
        return _V2(path)
    return None
