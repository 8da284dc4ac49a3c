"""Starting a container under ``conmon`` (Debian's, as podman 4 calls it) and talking to it.

conmon double-forks and stays as the container's supervisor: it runs ``RUNTIME create``, holds
the container's stdio, writes the k8s-file log, records the exit code in ``--exit-dir/ID`` and
then runs the exit command (``pallet container cleanup ID``). Its protocol (podman's
libpod/oci_conmon_common.go): two SOCK_SEQPACKET socket pairs passed as ``_OCI_SYNCPIPE`` and
``_OCI_STARTPIPE``; conmon waits for a byte on the start pipe, then answers on the sync pipe
with ``{"data": PID}`` (created) or ``{"data": -1, "message": ...}``. The attach socket
(``BUNDLE/attach`` with ``--full-attach``, SOCK_SEQPACKET) carries the container's output as packets
whose first byte names the stream (2 stdout, 3 stderr); what is sent to it is the container's
stdin.
"""

from __future__ import annotations

import os

from .._std import json
from .._std import proc as subprocess  # subprocess's imports (locale, re...) cost every run
from .._std import sock as socket  # socket's enums and selectors too
from ..errors import CommandNotFound, CommandNotRunnable, ContainerError

STDOUT, STDERR = 2, 3
BUF = 8192 + 1


def find() -> str:
    for path in (os.environ.get("PALLET_CONMON"), "/usr/libexec/podman/conmon", "/usr/local/libexec/podman/conmon",
                 "/usr/bin/conmon"):
        if path and os.access(path, os.X_OK):
            return path
    import shutil  # only now: its imports (bz2, lzma) cost every run

    path = shutil.which("conmon")
    if path and os.access(path, os.X_OK):
        return path
    raise ContainerError("conmon not found (install Debian's conmon package, or set $PALLET_CONMON)")


def runtime_error(runtime: str, message: str) -> ContainerError:
    """podman's classification of a runtime's create error by its words (getOCIRuntimeError):
    127 for a command that does not exist, 126 for one that cannot be invoked, else 125."""
    msg = " ".join(message.strip().split())
    low = msg.lower()
    name = os.path.basename(runtime)
    if "executable file not found" in low or "no such file or directory" in low:
        return CommandNotFound(f"{name}: {msg}: OCI runtime attempted to invoke a command that was not found")
    if "permission denied" in low or "operation not permitted" in low or "is a directory" in low:
        return CommandNotRunnable(f"{name}: {msg}: OCI permission denied")
    return ContainerError(f"{name}: {msg}: OCI runtime error")


def oci_log_message(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    last = None
    for line in data.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("msg"), str) and doc.get("level") in ("error", "fatal", None):
            last = doc["msg"]
    return last


def start(args: list[str], *, runtime: str, oci_log: str | None, err_path: str, stdin=None,
          timeout: float = 120, pass_fds: tuple = (), cwd: str | None = None) -> int:
    """Run conmon with ``args``; return the container's PID once ``RUNTIME create`` succeeded, or
    raise the runtime's error (classified as podman does). ``pass_fds``: the caller's fds conmon
    (and the runtime, with ``--preserve-fds``) inherit as they are. ``cwd``: conmon's working
    directory (podman's: the bundle), where it writes an ``oom`` file when the container is
    OOM-killed (it was the caller's own directory: a CRI server's or a user's)."""
    import select

    sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start_child, start_parent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_SOCKET")}
        env["_OCI_SYNCPIPE"] = str(sync_child.fileno())
        env["_OCI_STARTPIPE"] = str(start_child.fileno())
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen([find()] + args, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                        stdout=err, stderr=err, env=env, start_new_session=True,
                                        pass_fds=tuple(pass_fds) + (sync_child.fileno(), start_child.fileno()),
                                        cwd=cwd)
            except OSError as e:
                raise ContainerError(f"starting conmon: {e.strerror}") from None
        sync_child.close()
        start_child.close()
        try:
            start_parent.send(b"\0")
        except OSError:
            pass  # it exited already: its status says why
        rc = proc.wait()
        if rc != 0:
            with open(err_path, "rb") as f:
                text = f.read(4096).decode("utf-8", "replace").strip()
            raise ContainerError(f"conmon failed (exit {rc}): {' '.join(text.split()) or 'no message'}")
        ready, _, _ = select.select([sync_parent], [], [], timeout)
        if not ready:
            raise ContainerError("container creation timed out: conmon did not answer")
        data = sync_parent.recv(65536)
    finally:
        for s in (sync_parent, sync_child, start_child, start_parent):
            s.close()
    try:
        doc = json.loads(data.split(b"\n", 1)[0])
        pid = doc["data"]
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        msg = oci_log_message(oci_log)
        if msg:
            raise runtime_error(runtime, msg) from None
        raise ContainerError(f"container create failed (no logs from conmon): {data[:200]!r}") from None
    if pid < 0:
        msg = oci_log_message(oci_log) or (doc.get("message") if isinstance(doc.get("message"), str) else None)
        if msg:
            raise runtime_error(runtime, msg)
        raise ContainerError("container create failed: the runtime gave no reason")
    return pid


def attach_socket(sock_dir: str):
    """A connection to conmon's attach socket in ``sock_dir`` (the path may be longer than
    sun_path allows: connected through ``/proc/self/fd/N``)."""
    import time

    fd = os.open(sock_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    deadline = time.monotonic() + 10
    delay = 0.002
    try:
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(f"/proc/self/fd/{fd}/attach")
                return s
            except (FileNotFoundError, ConnectionRefusedError) as e:
                s.close()  # conmon may not listen yet: wait for it, bounded
                if time.monotonic() > deadline:
                    raise ContainerError(f"attaching to the container: {e.strerror}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except OSError as e:
                s.close()
                raise ContainerError(f"attaching to the container: {e.strerror}") from None
    finally:
        os.close(fd)
