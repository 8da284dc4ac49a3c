"""``run``/``create`` flags for supervision and systemd units, checked before anything is made:
``--cidfile``, ``--conmon-pidfile``, ``--pidfile``, ``--sdnotify``, ``--cgroups``,
``--timeout``, ``--preserve-fds``, ``--no-hosts``, ``--health-on-failure`` (``--pod`` is
``pods.Pods.join``'s). ``meta`` turns them into the fields of the container's record;
``conmon_args`` and ``after_start`` are what ``start`` does with them.
"""

from __future__ import annotations

import os

from ..errors import ContainerError, Unsupported, UsageError

HEALTH_ACTIONS = ("none", "kill", "restart", "stop")
SDNOTIFY = ("container", "conmon", "ignore")
CGROUPS = ("enabled", "disabled", "no-conmon", "split")


class RunFlags:
    __slots__ = ("cidfile", "conmon_pidfile", "pidfile", "sdnotify", "cgroups", "timeout", "preserve_fds",
                 "no_hosts", "health_on_failure", "pod")

    def __init__(self, *, cidfile=None, conmon_pidfile=None, pidfile=None, sdnotify=None, cgroups=None, timeout=None,
                 preserve_fds=0, no_hosts=False, health_on_failure=None, pod=None):
        self.cidfile, self.conmon_pidfile, self.pidfile = cidfile, conmon_pidfile, pidfile
        self.sdnotify, self.cgroups, self.timeout, self.preserve_fds = sdnotify, cgroups, timeout, preserve_fds
        self.no_hosts, self.health_on_failure, self.pod = no_hosts, health_on_failure, pod


def _path(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value or "\0" in value:
        raise UsageError(f"invalid {flag} {value!r}: want a file path")
    return os.path.abspath(value)


def meta(f: RunFlags | None) -> dict:
    """The record's fields (``{}`` when no flag was given); every value checked."""
    if f is None:
        return {}
    sd = f.sdnotify or "container"
    if sd not in SDNOTIFY:
        raise UsageError(f"invalid argument: invalid sdnotify value {sd!r}: must be container, conmon or ignore")
    if f.sdnotify == "container" and os.environ.get("NOTIFY_SOCKET"):
        raise Unsupported("--sdnotify=container is not supported yet (use --sdnotify=conmon)")
    cg = f.cgroups or "enabled"
    if cg not in CGROUPS:
        raise UsageError(f"invalid cgroup mode {cg!r}: must be enabled, disabled, no-conmon or split")
    if cg in ("disabled", "split"):
        raise Unsupported(f"--cgroups={cg} is not supported yet (enabled and no-conmon are)")
    if f.timeout is not None and f.timeout < 0:
        raise UsageError(f"invalid --timeout {f.timeout}: must not be negative")
    if f.preserve_fds < 0:
        raise UsageError(f"invalid --preserve-fds {f.preserve_fds}: must not be negative")
    action = f.health_on_failure or "none"
    if action not in HEALTH_ACTIONS:
        raise UsageError(f"invalid on-failure action {action!r} for health check: valid options are "
                         "none, kill, restart, stop")
    out = {}
    for key, value in (("cidfile", _path("--cidfile", f.cidfile)),
                       ("conmon_pidfile", _path("--conmon-pidfile", f.conmon_pidfile)),
                       ("pidfile", _path("--pidfile", f.pidfile))):
        if value:
            out[key] = value
    if sd != "container":
        out["sdnotify"] = sd
    if f.timeout:
        out["timeout"] = f.timeout
    if f.no_hosts:
        out["no_hosts"] = True
    if action != "none":
        out["health_on_failure"] = action
    return out


def check_preserved_fds(n: int) -> tuple:
    """fds 3 .. 2+n, each of which must be open in pallet (inherited from its caller)."""
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            raise ContainerError(f"--preserve-fds {n}: file descriptor {fd} is not open") from None
    return tuple(range(3, 3 + n))


def conmon_args(meta: dict, preserve_fds: int = 0) -> list:
    """conmon's flags for these fields (``-T``: it kills the container after the timeout; the
    runtime's ``create --preserve-fds``)."""
    out = []
    if meta.get("timeout"):
        out += ["-T", str(meta["timeout"])]
    if preserve_fds:
        out += ["--runtime-opt", "--preserve-fds", "--runtime-opt", str(preserve_fds)]
    return out


def after_start(meta: dict, pid: int, conmon_pid: int | None) -> None:
    """``--conmon-pidfile``, ``--pidfile`` (written as every user-named file: a regular file
    atomically, never a device, FIFO or symlink replaced) and ``--sdnotify=conmon``."""
    from .._fs import write_output

    if meta.get("conmon_pidfile") and conmon_pid:
        write_output(meta["conmon_pidfile"], str(conmon_pid).encode(), 0o644, "--conmon-pidfile")
    if meta.get("pidfile") and pid:
        write_output(meta["pidfile"], str(pid).encode(), 0o644, "--pidfile")
    if meta.get("sdnotify") == "conmon" and conmon_pid:
        notify(f"MAINPID={conmon_pid}\nREADY=1")


def notify(message: str) -> bool:
    """Send ``message`` to systemd's ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
    namespace); False when there is none."""
    import socket

    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(addr)
        s.send(message.encode())
    except OSError as e:
        raise ContainerError(f"notifying systemd at {path}: {e.strerror}") from None
    finally:
        s.close()
    return True
