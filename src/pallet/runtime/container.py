"""What the lifecycle verbs share, in the runtime's own process.

One module per verb (as crun and youki split them): ``create`` (the container's init is
forked there, see ``init``), ``start``, ``run`` (create + start + wait), ``kill``,
``delete``, ``query`` (state, list, ps), ``control`` (pause, resume, update, events),
``exec``. Here: timestamps, the state passed to hooks, the mounts a container without a
mount namespace leaves on the host, the console socket, pid files, waiting for and
forwarding signals to a process, the container's cgroup manager and processes.

Process model (no daemon, like runc):

* ``create`` validates config.json, reserves and locks ``ROOT/ID``, makes ``exec.fifo``,
  then forks the container's init. Without a user namespace the runtime itself
  enters the new pid namespace (``unshare(CLONE_NEWPID)`` affects only children), forks
  init (pid 1 there) and returns to its own pid namespace. With a user namespace an
  intermediate child creates it first (so it owns the other namespaces), the runtime
  writes the id maps, and that child forks init and exits.
* init builds the container (see ``init``) and reports over a pipe: ``hooks`` (the
  runtime runs prestart/createRuntime), then ``ready``; it then blocks opening the
  FIFO for writing. ``create`` writes state.json and exits: init's parent becomes
  init/the nearest subreaper.
* ``start`` opens the FIFO for reading: init's open returns, it writes one byte and
  execs the user program, which is then pid 1 of the container.
* ``run`` is create + start, then waits (as the parent, or as a subreaper) for the
  exit status and forwards signals.
"""

import os

from ..errors import OCIRuntimeError
from . import state as _state


SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text):
    """Signal number of a name as runc reads one (``KILL``, ``SIGKILL``, ``9``, ``RTMIN+3``);
    shared by ``kill`` and the build's STOPSIGNAL check."""
    t = text.upper()
    if t.isdigit():
        n = int(t)
        if 0 < n <= 64:
            return n
    else:
        if t.startswith("SIG"):
            t = t[3:]
        if t in SIGNALS:
            return SIGNALS[t]
        if t.startswith("RTMIN") or t.startswith("RTMAX"):
            base, off = (34, 1) if t.startswith("RTMIN") else (64, -1)
            rest = t[5:]
            if not rest:
                return base
            if rest[0] in "+-" and rest[1:].isdigit():
                n = base + (int(rest[1:]) if rest[0] == "+" else -int(rest[1:]))
                if 34 <= n <= 64:
                    return n
    raise OCIRuntimeError(f"unknown signal {text!r}")


def timestamp():
    """Now, as runc writes times (RFC 3339, nanoseconds, UTC)."""
    import time

    ns = time.time_ns()
    t = time.gmtime(ns // 1_000_000_000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                                                   t.tm_sec, ns % 1_000_000_000)


def state_bytes(state, cid, status):
    """The OCI state the hooks read on stdin."""
    from .._std import json as _json

    out = {"ociVersion": state["ociVersion"], "id": cid, "status": status, "pid": state["pid"],
           "bundle": state["bundle"]}
    if state.get("annotations"):
        out["annotations"] = state["annotations"]
    return _json.dumps(out, separators=(",", ":")).encode()


HOST_MOUNTS = "hostmounts.json"  # no mount namespace: the mounts init makes on the host, to undo


def mounts_below(rootfs):
    """``(mount id, mount point)`` of the mounts strictly below ``rootfs`` in our mount
    namespace, in mount order."""
    prefix = rootfs.rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ", 5)
            mp = fields[4]
            if b"\\" in mp:  # octal escapes (\040 for a space...)
                mp = mp.decode("unicode_escape").encode("latin-1")
            mp = os.fsdecode(mp)
            if mp.startswith(prefix):
                out.append((int(fields[0]), mp))
    return out


def _fd_mount_id(fd):
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    return None


def _detach_by_fd(rootfs_fd, rootfs, mount_id, mp):
    """Detach mount ``mount_id`` seen at ``mp``: the point is opened below the rootfs following
    no symlink (a component swapped for a link to the host fails the open instead of leading
    there), checked to be that very mount, and detached through its fd: never a path string
    the kernel resolves. False when it could not be done this time (the tree is moving)."""
    from .._rootfs import fd_path, open_beneath
    from .._std import syscalls as _sys

    try:
        fd = open_beneath(rootfs_fd, mp[len(rootfs):])
    except OSError:
        return False
    try:
        if _fd_mount_id(fd) != mount_id:
            return False
        _sys.umount2(fd_path(fd), _sys.MNT_DETACH)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def umount_host_mounts(container):
    """Unmount what a container without a mount namespace mounted under its rootfs (newest
    first). The container's processes may still be renaming directories of its rootfs (it is
    theirs): each mount is found by its id and detached through an fd opened below the rootfs,
    retried while the tree moves, so none is left behind and none outside is touched."""
    info = container.read_file(HOST_MOUNTS)
    if not isinstance(info, dict):
        return
    rootfs, before = info.get("rootfs"), info.get("before")
    # only what pallet-runtime writes: an absolute, normalised rootfs that is not / (that would
    # be every mount of the host), the one state.json names when there is one
    if not isinstance(rootfs, str) or not rootfs.startswith("/") or os.path.normpath(rootfs) != rootfs \
            or rootfs in ("/", "//") or "\0" in rootfs or not isinstance(before, list) \
            or not all(isinstance(m, int) and not isinstance(m, bool) for m in before):
        os.write(2, f"pallet-runtime: warning: container {container.id!r}: {HOST_MOUNTS} is not pallet-runtime's: "
                    "no mount detached\n".encode())
        return
    if container.state is not None and container.state.get("rootfs") != rootfs:
        return
    import time

    before = set(before)
    try:
        rootfs_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        deadline = time.monotonic() + 5.0
        while True:
            todo = [m for m in mounts_below(rootfs) if m[0] not in before]
            if not todo:
                return
            done = False
            for mount_id, mp in reversed(todo):
                done |= _detach_by_fd(rootfs_fd, rootfs, mount_id, mp)
            if not done and time.monotonic() > deadline:
                left = ", ".join(mp for _, mp in todo[:3])
                os.write(2, f"pallet-runtime: warning: container {container.id!r}: could not detach {len(todo)} "
                            f"mount(s) below its rootfs ({left})\n".encode())
                return
            if not done:
                time.sleep(0.001)  # the tree is being renamed under us: let the renamer run
    finally:
        os.close(rootfs_fd)


def connect_console_socket(path):
    """An fd connected to ``--console-socket``, where the pty master goes."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OCIRuntimeError(f"--console-socket {path}: {e.strerror}") from None
    return s.detach()


def write_pid_file(path, pid):
    """``--pid-file``: written whole (a temporary file renamed), as runc does; a device or
    FIFO is written in place, never renamed over, and a symlink is followed."""
    from .. import _fs

    try:
        path, in_place = _fs.output_target(path)
        tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.tmp"
        if in_place:
            with _fs.output_file(path) as f:
                f.write(str(pid).encode())
            return
        with open(tmp, "w") as f:  # no fsync: a pid file does not outlive a reboot
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise OCIRuntimeError(f"--pid-file {path}: {e.strerror}") from None


FORWARDED_SIGNALS = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


def forward_signals(pid):
    """From now on, the signals a foreground ``run``/``exec`` receives go to ``pid``."""
    import _signal

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except OSError:
            pass

    for s in FORWARDED_SIGNALS:
        _signal.signal(s, forward)


def wait_for_exit(pid):
    """Reap children until ``pid`` exits; its exit code (128+signal when killed)."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if got == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def run_hooks_warning_only(container, kind, status):
    """poststart/poststop: a failing hook is a warning and the others still run (runtime-spec)."""
    from .hooks import run_hook

    sb = state_bytes(container.state, container.id, status)
    for i, hook in enumerate((container.state["config"].get("hooks") or {}).get(kind) or ()):
        try:
            run_hook(hook, sb, f"{kind}[{i}]")
        except OCIRuntimeError as e:
            os.write(2, f"pallet-runtime: warning: {e}\n".encode())


def cgroup_manager(container):
    """The container's cgroup manager (from state.json), or None."""
    if container.state is None or not container.state.get("cgroups"):
        return None
    from . import cgroups as _cgroups

    return _cgroups.from_state(container.state["cgroups"])


def container_pids(container, manager=None):
    """Every process in the container: its cgroup's, else the same pid namespace as init."""
    pid = container.state["pid"]
    manager = manager or cgroup_manager(container)
    if manager is not None:
        pids = manager.pids()
        if pids or not _state.process_alive(pid, container.state.get("pid_start")):
            return pids
    if not _state.process_alive(pid, container.state.get("pid_start")):
        return []
    nss = {ns["type"]: ns.get("path") for ns in (container.state["config"].get("linux") or {}).get("namespaces") or ()}
    if "pid" not in nss:
        return [pid]
    try:
        ino = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return [pid]
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino == ino:
                    out.append(int(name))
            except OSError:
                pass
    return sorted(out)


def set_time_offsets(offsets):
    """Write ``linux.timeOffsets`` for the time namespace our children will enter (after
    unshare(CLONE_NEWTIME), before the first of them exists: the kernel freezes them then)."""
    if not offsets:
        return
    lines = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n" for clock, o in offsets.items())
    try:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OCIRuntimeError(f"linux.timeOffsets: the kernel refused {lines.strip()!r}: {e.strerror}") from None
