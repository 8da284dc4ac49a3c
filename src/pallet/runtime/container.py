"""The lifecycle, in the runtime's own process: create, start, run, kill, delete, list, ps.

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

from ..errors import InvalidDocument, OCIRuntimeError
from . import state as _state

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text):
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


def _now():
    import time

    ns = time.time_ns()
    t = time.gmtime(ns // 1_000_000_000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                                                   t.tm_sec, ns % 1_000_000_000)


def _state_bytes(st, cid, status):
    from . import _json

    out = {"ociVersion": st["ociVersion"], "id": cid, "status": status, "pid": st["pid"],
           "bundle": st["bundle"]}
    if st.get("annotations"):
        out["annotations"] = st["annotations"]
    return _json.dumps(out).encode()


# ---------------------------------------------------------------- create

def create(root, cid, bundle, console_socket=None, pid_file=None, no_pivot=False, no_new_keyring=False,
           preserve_fds=0, foreground=False, console_fd=None, systemd_cgroup=False):
    """Create the container; returns the open (locked) state and init's pid.

    ``foreground``: the caller will wait for the container (``run``), so it must stay
    init's parent (or its subreaper).
    """
    from . import cgroups as _cgroups
    from . import spec as _spec

    _state.check_id(cid)
    bundle = os.path.abspath(bundle)
    config = _spec.load(bundle)
    rootfs = config["root"]["path"]
    if not rootfs.startswith("/"):
        rootfs = bundle + "/" + rootfs
    rootfs = os.path.normpath(rootfs)
    real = os.path.realpath(rootfs)
    if real != rootfs:  # as runc: the rootfs is its own real path (no symlink, even to /)
        raise InvalidDocument(f"config.json: root.path: {rootfs} is a symlink or has one in its path "
                              f"(it resolves to {real}): give the real path")
    if not os.path.isdir(rootfs):
        raise InvalidDocument(f"config.json: root.path: {rootfs} is not a directory")
    proc = config.get("process") or {}
    if proc.get("terminal") and not (console_socket or console_fd is not None):
        raise OCIRuntimeError("process.terminal is true: --console-socket is required "
                            "(or set terminal to false in config.json)")
    if console_socket and not proc.get("terminal"):
        raise OCIRuntimeError("--console-socket is only valid when process.terminal is true")
    nss = {}
    for ns in (config.get("linux") or {}).get("namespaces") or ():
        nss[ns["type"]] = ns.get("path")
    if "mount" not in nss and rootfs == "/":
        raise InvalidDocument("config.json: root.path: / without a mount namespace would mount the config's "
                              "mounts over the host's own directories")
    linux = config.get("linux") or {}
    cg = _cgroups.manager(linux, cid, systemd_cgroup)
    cg.check(linux.get("resources"), linux)  # what the host cannot do is refused before anything exists
    join = []
    try:
        for i, (typ, path) in enumerate(nss.items()):
            if path:
                try:
                    join.append((typ, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as e:
                    raise InvalidDocument(f"config.json: linux.namespaces ({typ}): path {path}: {e.strerror}") \
                        from None
        if console_socket:
            console_fd = _connect(console_socket)
        c = _state.new(root, cid)
    except BaseException:
        for _, fd in join:
            os.close(fd)
        raise
    try:
        if "mount" not in nss:  # mounts go to the host's namespace: remember what was there before
            c.write_file(HOST_MOUNTS, {"rootfs": rootfs, "before": _mounts_below(rootfs)})
        return _create(c, config, bundle, rootfs, nss, join, console_fd, pid_file, no_pivot, no_new_keyring,
                       preserve_fds, foreground, cg)
    except BaseException:
        _umount_host_mounts(c)
        c.remove()
        raise
    finally:
        for _, fd in join:
            try:
                os.close(fd)
            except OSError:
                pass


HOST_MOUNTS = "hostmounts.json"  # no mount namespace: the mounts init makes on the host, to undo


def _mounts_below(rootfs):
    """Mount points strictly below ``rootfs`` in our mount namespace, in mount order."""
    prefix = rootfs.rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            mp = line.split(b" ", 5)[4]
            if b"\\" in mp:  # octal escapes (\040 for a space...)
                mp = mp.decode("unicode_escape").encode("latin-1")
            mp = os.fsdecode(mp)
            if mp.startswith(prefix):
                out.append(mp)
    return out


def _umount_host_mounts(c):
    """Unmount what a container without a mount namespace mounted under its rootfs (newest first)."""
    info = c.read_file(HOST_MOUNTS)
    if not isinstance(info, dict):
        return
    rootfs, before = info.get("rootfs"), info.get("before")
    # only what pallet-runtime writes: an absolute, normalised rootfs that is not / (that would
    # be every mount of the host), the one state.json names when there is one
    if not isinstance(rootfs, str) or not rootfs.startswith("/") or os.path.normpath(rootfs) != rootfs \
            or rootfs in ("/", "//") or "\0" in rootfs or not isinstance(before, list) \
            or not all(isinstance(m, str) for m in before):
        os.write(2, f"pallet-runtime: warning: container {c.id!r}: {HOST_MOUNTS} is not pallet-runtime's: "
                    "no mount detached\n".encode())
        return
    if c.state is not None and c.state.get("rootfs") != rootfs:
        return
    from . import _sys

    before = set(before)
    for _ in range(3):  # stacked mounts: a detach can uncover an older one on the same point
        todo = [m for m in _mounts_below(rootfs) if m not in before]
        if not todo:
            return
        for mp in reversed(todo):
            try:
                _sys.umount2(mp, _sys.MNT_DETACH)
            except OSError:
                pass


def _connect(path):
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OCIRuntimeError(f"--console-socket {path}: {e.strerror}") from None
    return s.detach()


def _create(c, config, bundle, rootfs, nss, join, console_fd, pid_file, no_pivot, no_new_keyring,
            preserve_fds, foreground, cg):
    from . import _sys
    from . import cgroups as _cgroups
    from . import init
    from .sync import Channel
    from .spec import CLONE_FLAGS

    os.mkfifo(_state.FIFO, 0o622, dir_fd=c.fd)
    fifo_fd = c.open_fifo(os.O_PATH)
    os.chmod(f"/proc/self/fd/{fifo_fd}", 0o622)  # whatever the umask
    cr, pw = os.pipe()
    pr, cw = os.pipe()
    ctx = {
        "config": config, "bundle": bundle, "rootfs": rootfs, "id": c.id,
        "join": [(t, fd) for t, fd in join if t not in ("user", "pid", "time")],
        "new": [t for t, p in nss.items() if not p], "all_ns": nss,
        "no_pivot": no_pivot, "no_new_keyring": no_new_keyring, "preserve_fds": preserve_fds,
        "fifo_fd": fifo_fd, "console_fd": console_fd, "chan": Channel(cr, cw), "cgroups": cg,
        # held by the runtime only: the state lock must not live on in the container
        "close": [c.fd, pr, pw],
    }
    chan = Channel(pr, pw)
    pid = None
    userns = "user" in nss
    cg_applied = False
    try:
        c.write_file(_state.CGROUPS, cg.to_state())  # found by delete --force even if state.json is not
        lx = config.get("linux") or {}
        if userns:  # the intermediate child joins them itself: they must exist first
            cg_applied = True
            cg.apply(lx.get("resources"), lx)
            if foreground:
                _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)
            pid = _fork_via_userns(config, nss, join, ctx, chan)
        else:
            saved = None
            if "pid" in nss or "time" in nss:
                saved = [(t, os.open(f"/proc/self/ns/{t}", os.O_RDONLY | os.O_CLOEXEC))
                         for t in ("pid", "time") if t in nss]
            cg_applied = True
            cg.prepare()  # the v2 directory init is born in
            try:
                for t, _ in saved or ():
                    path_fd = dict(join).get(t)
                    if path_fd is not None:
                        _sys.setns(path_fd, CLONE_FLAGS[t])
                    else:
                        _sys.unshare(CLONE_FLAGS[t])
                        if t == "time":
                            set_time_offsets(lx.get("timeOffsets"))
                pid, placed = _cgroups.fork_in(cg)
                if pid == 0:
                    ctx["close"] += [fd for _, fd in saved or ()]
                    ctx["cg_placed"] = placed
                    init.main(ctx)
            finally:
                for t, fd in saved or ():
                    _sys.setns(fd, CLONE_FLAGS[t])
                    os.close(fd)
            # while init builds the root filesystem: make the cgroups and set the limits; init
            # moves itself in when it reads "cg" (see cgroups.fork_in)
            dirs = []

            def made():  # init may bind-mount them now (/sys/fs/cgroup) while we set limits
                chan.send("dirs")
                dirs.append(True)

            cg.apply(lx.get("resources"), lx, made)
            if not dirs:
                chan.send("dirs")
            chan.send("cg")
            import select  # noqa: F401  (for start: imported while init works)
        os.close(cr)
        os.close(cw)
        if console_fd is not None:
            os.close(console_fd)
        start_time = _state.proc_stat(pid)
        st = {"ociVersion": config["ociVersion"], "id": c.id, "pid": pid,
              "pid_start": start_time[1] if start_time else None, "bundle": bundle, "rootfs": rootfs,
              "created": _now(), "owner": "", "annotations": config.get("annotations") or {},
              "config": config, "cgroups": cg.to_state()}
        while True:
            msg = chan.recv()
            if msg is None:
                raise OCIRuntimeError("container init died while being created")
            if msg.startswith("error "):
                raise OCIRuntimeError(msg[6:])
            if msg == "hooks":
                hooks = config.get("hooks") or {}
                try:
                    if hooks.get("prestart") or hooks.get("createRuntime"):
                        from .hooks import run_hooks  # imported only when there are hooks

                        sb = _state_bytes(st, c.id, "created")  # what runc passes (and runtime-tools checks)
                        run_hooks(config, "prestart", sb)
                        run_hooks(config, "createRuntime", sb)
                except OCIRuntimeError:
                    chan.send("fail")
                    raise
                chan.send("ok " + _state_bytes(st, c.id, "created").decode())
            elif msg == "ready":
                break
            else:
                raise OCIRuntimeError(f"container init sent {msg!r}")
        c.write(st)
        if pid_file:
            _write_pid_file(pid_file, pid)
        return c, pid
    except BaseException:
        if pid:
            try:
                os.kill(pid, 9)
                if not userns:
                    os.waitpid(pid, 0)
            except OSError:
                pass
        if cg_applied:
            for p in cg.pids():
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
            try:
                cg.remove()
            except OCIRuntimeError:
                pass
        raise
    finally:
        chan.close()
        os.close(fifo_fd)


def _fork_via_userns(config, nss, join, ctx, chan):
    """An intermediate child makes the user namespace; we map ids; it forks init."""
    from . import _sys
    from .cgroups import fork_in
    from .spec import CLONE_FLAGS

    lx = config.get("linux") or {}
    ctx["wait_go"] = True
    mid, placed = fork_in(ctx["cgroups"])
    if mid == 0:
        try:
            try:  # cgroups first: inside the user namespace the host's cgroupfs is not ours to write
                ctx["cgroups"].join_self(placed)
            except Exception as e:
                ctx["chan"].send(f"error {e}")
                os._exit(1)
            fds = dict(join)
            if "user" in fds:
                _sys.setns(fds["user"], CLONE_FLAGS["user"])
            else:
                _sys.unshare(CLONE_FLAGS["user"])
                ctx["chan"].send("maps")
                if ctx["chan"].recv() != "ok":
                    os._exit(1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            for t in ("pid", "time"):
                if t in nss:
                    if t in fds:
                        _sys.setns(fds[t], CLONE_FLAGS[t])
                    else:
                        _sys.unshare(CLONE_FLAGS[t])
                        if t == "time" and lx.get("timeOffsets"):
                            # setresuid made us non-dumpable: /proc/self is the host root's until
                            dumpable = _sys.prctl(_sys.PR_GET_DUMPABLE)
                            _sys.prctl(_sys.PR_SET_DUMPABLE, 1)
                            set_time_offsets(lx["timeOffsets"])
                            _sys.prctl(_sys.PR_SET_DUMPABLE, dumpable)
            pid = os.fork()
            if pid == 0:
                from .init import main  # loaded by _create before the fork

                main(ctx)
            ctx["chan"].send(f"pid {pid}")
            os._exit(0)
        except BaseException as e:
            try:
                ctx["chan"].send(f"error user namespace: {getattr(e, 'strerror', None) or e}")
            finally:
                os._exit(1)
    try:
        while True:
            msg = chan.recv()
            if msg is None:
                raise OCIRuntimeError("container init died while its user namespace was set up")
            if msg.startswith("error "):
                raise OCIRuntimeError(msg[6:])
            if msg == "maps":
                for kind in ("uid", "gid"):
                    lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                                    for m in lx.get(f"{kind}Mappings") or ())
                    try:
                        with open(f"/proc/{mid}/{kind}_map", "w") as f:
                            f.write(lines)
                    except OSError as e:
                        raise OCIRuntimeError(f"linux.{kind}Mappings: cannot write {kind}_map: {e.strerror}") \
                            from None
                chan.send("ok")
            elif msg.startswith("pid "):
                pid = int(msg[4:])
                # init arms PDEATHSIG when it reads "go": its parent, the intermediate child,
                # must be gone by then, or its exit would kill init
                os.waitpid(mid, 0)
                mid = None
                chan.send("go")
                return pid
    finally:
        if mid is not None:
            os.waitpid(mid, 0)



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


def _write_pid_file(path, pid):
    path = os.path.abspath(path)
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise OCIRuntimeError(f"--pid-file {path}: {e.strerror}") from None


# ---------------------------------------------------------------- start

def start(root, cid):
    with _state.open_container(root, cid) as c:
        _start(c)


def _start(c):
    status = c.status()
    if status != "created":
        raise OCIRuntimeError(f"cannot start container {c.id!r}: it is {status}, not created")
    if not c.state["config"].get("process"):
        try:  # nothing to run: the waiting init goes, the container is stopped
            os.kill(c.state["pid"], 9)
        except OSError:
            pass
        raise OCIRuntimeError(f"cannot start container {c.id!r}: config.json has no process")
    import select

    fd = c.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        pid, start_time = c.state["pid"], c.state.get("pid_start")
        while not p.poll(100):
            if not _state.process_alive(pid, start_time):
                raise OCIRuntimeError(f"container {c.id!r} died before it was started")
        if not os.read(fd, 1):
            raise OCIRuntimeError(f"container {c.id!r} died before it was started")
    finally:
        os.close(fd)
        c.unlink(_state.FIFO)
    hooks = c.state["config"].get("hooks") or {}
    if hooks.get("poststart"):
        _warn_hooks(c, "poststart", "running")


def _warn_hooks(c, kind, status):
    """poststart/poststop: a failing hook is a warning and the others still run (runtime-spec)."""
    from .hooks import run_hook

    sb = _state_bytes(c.state, c.id, status)
    for i, hook in enumerate((c.state["config"].get("hooks") or {}).get(kind) or ()):
        try:
            run_hook(hook, sb, f"{kind}[{i}]")
        except OCIRuntimeError as e:
            os.write(2, f"pallet-runtime: warning: {e}\n".encode())


# ---------------------------------------------------------------- run

_FORWARD = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH


def run(root, cid, bundle, detach=False, keep=False, **kw):
    """create + start; in the foreground wait and return the container's exit code."""
    c, pid = create(root, cid, bundle, foreground=not detach, **kw)
    try:
        if not detach:
            import _signal

            def forward(sig, _frame):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

            for s in _FORWARD:
                _signal.signal(s, forward)
        _start(c)
    except BaseException:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        _destroy(c)
        raise
    if detach:
        c.close()
        return 0
    c.close()  # others may look at it while it runs
    code = _wait_for(pid)
    if not keep:
        try:
            with _state.open_container(root, cid) as c2:
                _destroy(c2)
        except OCIRuntimeError:
            pass
    return code


def _wait_for(pid):
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if got == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


# ---------------------------------------------------------------- kill, delete

def cgroup_manager(c):
    """The container's cgroup manager (from state.json), or None."""
    if c.state is None or not c.state.get("cgroups"):
        return None
    from . import cgroups as _cgroups

    return _cgroups.from_state(c.state["cgroups"])


def container_pids(c, mgr=None):
    """Every process in the container: its cgroup's, else the same pid namespace as init."""
    pid = c.state["pid"]
    mgr = mgr or cgroup_manager(c)
    if mgr is not None:
        pids = mgr.pids()
        if pids or not _state.process_alive(pid, c.state.get("pid_start")):
            return pids
    if not _state.process_alive(pid, c.state.get("pid_start")):
        return []
    nss = {ns["type"]: ns.get("path") for ns in (c.state["config"].get("linux") or {}).get("namespaces") or ()}
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


def kill(root, cid, sig, all_=False):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status not in ("created", "running", "paused"):
            raise OCIRuntimeError(f"container {cid!r} is not running")
        pids = container_pids(c) if all_ else [c.state["pid"]]
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
            except OSError as e:
                raise OCIRuntimeError(f"kill {p}: {e.strerror}") from None


def delete(root, cid, force=False):
    _state.check_id(cid)  # before anything: no path is ever built from an unchecked id
    try:
        c = _state.open_container(root, cid, allow_corrupt=force)
    except _state.NoSuchContainer:
        if force:
            return
        raise
    with c:
        if c.state is None:  # corrupt, --force: nothing we can trust but the directory (and cgroups.json)
            _remove_cgroups_of(c)
            _umount_host_mounts(c)
            c.remove()
            return
        status = c.status()
        if status in ("created", "running", "paused") and not force:  # the spec: only a stopped one
            raise OCIRuntimeError(f"cannot delete container {cid!r} that is {status}: stop it or use --force")
        _destroy(c)


def _remove_cgroups_of(c):
    """Kill what is in the cgroups named by ``cgroups.json`` and remove them (state.json unreadable)."""
    from . import cgroups as _cgroups

    mgr = _cgroups.from_state(c.read_file(_state.CGROUPS))
    if mgr is None:
        return
    for p in mgr.pids():
        try:
            os.kill(p, 9)
        except OSError:
            pass
    try:
        if mgr.frozen():
            mgr.thaw()
        mgr.remove()
    except OCIRuntimeError as e:
        os.write(2, f"pallet-runtime: warning: {e}\n".encode())


def _destroy(c):
    """Kill whatever is left, wait until it is gone, poststop hooks, remove cgroups and state."""
    import time

    if c.state is not None:
        mgr = cgroup_manager(c)
        pids = container_pids(c, mgr)
        for p in pids:
            try:
                os.kill(p, 9)
            except OSError:
                pass
        if mgr is not None and pids:
            try:
                if mgr.frozen():  # a paused container dies only once thawed
                    mgr.thaw()
            except OCIRuntimeError:
                pass
        deadline = time.monotonic() + 10
        for p in pids:
            while _state.process_alive(p) and time.monotonic() < deadline:
                try:  # ours to reap when we are its parent (run)
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.002)
        if (c.state["config"].get("hooks") or {}).get("poststop"):
            _warn_hooks(c, "poststop", "stopped")
        if mgr is not None:
            try:
                mgr.remove()
            except OCIRuntimeError as e:
                os.write(2, f"pallet-runtime: warning: {e}\n".encode())
    _umount_host_mounts(c)
    c.remove()


# ---------------------------------------------------------------- state, list, ps

def state(root, cid):
    with _state.open_container(root, cid, lock=False) as c:
        return c.oci_state()


def list_containers(root):
    out = []
    for cid in _state.list_ids(root):
        try:
            with _state.open_container(root, cid, lock=False) as c:
                out.append(c.oci_state())
        except OCIRuntimeError as e:
            out.append({"id": cid, "status": "unknown", "pid": 0, "bundle": "", "rootfs": "",
                        "created": "", "owner": "", "error": str(e)})
    return out


def ps(root, cid):
    with _state.open_container(root, cid, lock=False) as c:
        if c.status() == "stopped":
            return []
        return container_pids(c)


# ---------------------------------------------------------------- pause, resume, update, events

def _cgroup_of(c, what):
    mgr = cgroup_manager(c)
    if mgr is None:
        raise OCIRuntimeError(f"{what}: container {c.id!r} has no cgroups")
    return mgr


def pause(root, cid):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status != "running":
            raise OCIRuntimeError(f"cannot pause container {cid!r}: it is {status}, not running")
        _cgroup_of(c, "pause").freeze()


def resume(root, cid):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status != "paused":
            raise OCIRuntimeError(f"cannot resume container {cid!r}: it is {status}, not paused")
        _cgroup_of(c, "resume").thaw()


def update(root, cid, resources):
    """Apply ``resources`` (a linux.resources object, validated) and remember them in the state."""
    from . import cgroups as _cgroups
    from .spec import validate_resources

    validate_resources(resources, "resources")
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status not in ("created", "running", "paused"):
            raise OCIRuntimeError(f"cannot update container {cid!r}: it is {status}")
        mgr = _cgroup_of(c, "update")
        mgr.update(resources)
        st = dict(c.state)
        config = dict(st["config"])
        linux = dict(config.get("linux") or {})
        linux["resources"] = _cgroups.merge(linux.get("resources"), resources)
        config["linux"] = linux
        st["config"] = config
        c.write(st)


def stats(root, cid):
    """runc's ``events --stats`` object for the container."""
    with _state.open_container(root, cid, lock=False) as c:
        status = c.status()
        if status == "stopped":
            raise OCIRuntimeError(f"container {cid!r} is stopped")
        return {"type": "stats", "id": cid, "data": _cgroup_of(c, "events").stats()}


def oom_watch(root, cid):
    """An OOM watch on the container's memory cgroup (see ``cgroups.oom``), or None."""
    with _state.open_container(root, cid, lock=False) as c:
        mgr = cgroup_manager(c)
    if mgr is None:
        return None
    from .cgroups import oom

    return oom.watch(mgr)
