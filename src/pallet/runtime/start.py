"""``start``: let a created container's init exec its program (it waits on exec.fifo)."""

import os

from ..errors import OCIRuntimeError
from . import state as _state
from .container import run_hooks_warning_only


def start(root, cid):
    with _state.open_container(root, cid) as c:
        start_created(c)


def start_created(container, just_created=False):
    """``just_created``: ``run``, right after ``create`` (init said it is ready and waits on
    exec.fifo): no status check, which would read /proc/PID/stat a second time; the wait
    below still notices an init that died."""
    status = "created" if just_created else container.status()
    if status != "created":
        raise OCIRuntimeError(f"cannot start container {container.id!r}: it is {status}, not created")
    if not container.state["config"].get("process"):
        try:  # nothing to run: the waiting init goes, the container is stopped
            os.kill(container.state["pid"], 9)
        except OSError:
            pass
        raise OCIRuntimeError(f"cannot start container {container.id!r}: config.json has no process")
    import select

    fd = container.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        pid, start_time = container.state["pid"], container.state.get("pid_start")
        while not p.poll(100):
            if not _state.process_alive(pid, start_time):
                raise OCIRuntimeError(f"container {container.id!r} died before it was started")
        if not os.read(fd, 1):
            raise OCIRuntimeError(f"container {container.id!r} died before it was started")
    finally:
        os.close(fd)
        container.unlink(_state.FIFO)
    hooks = container.state["config"].get("hooks") or {}
    if hooks.get("poststart"):
        run_hooks_warning_only(container, "poststart", "running")
