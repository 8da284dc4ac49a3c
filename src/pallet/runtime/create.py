"""``create``: check the bundle, reserve ``ROOT/ID``, fork the container's init (see ``init``)
and answer it over the sync pipe until it is ready: cgroups, user namespace id maps,
prestart/createRuntime hooks. The process model is in ``container``'s docstring."""

import os

from ..errors import InvalidDocument, OCIRuntimeError
from . import state as _state
from .container import (HOST_MOUNTS, connect_console_socket, mounts_below, set_time_offsets, state_bytes,
                        timestamp, umount_host_mounts, write_pid_file)


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
            console_fd = connect_console_socket(console_socket)
        c = _state.new(root, cid)
    except BaseException:
        for _, fd in join:
            os.close(fd)
        raise
    try:
        if "mount" not in nss:  # mounts go to the host's namespace: remember what was there before
            c.write_file(HOST_MOUNTS, {"rootfs": rootfs, "before": [i for i, _ in mounts_below(rootfs)]})
        return _create(c, config, bundle, rootfs, nss, join, console_fd, pid_file, no_pivot, no_new_keyring,
                       preserve_fds, foreground, cg)
    except BaseException:
        umount_host_mounts(c)
        c.remove()
        raise
    finally:
        for _, fd in join:
            try:
                os.close(fd)
            except OSError:
                pass


def _create(c, config, bundle, rootfs, nss, join, console_fd, pid_file, no_pivot, no_new_keyring,
            preserve_fds, foreground, cg):
    """Fork init and answer it until it is ready; on failure kill it and remove its cgroups."""
    from .._std import syscalls as _sys
    from . import init  # noqa: F401  (loaded before the fork: the child only runs it)
    from .sync import Channel

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
    made = {"pid": None, "cgroups": False}  # what a failure must undo
    try:
        c.write_file(_state.CGROUPS, cg.to_state())  # found by delete --force even if state.json is not
        lx = config.get("linux") or {}
        if "user" in nss:  # the intermediate child joins them itself: they must exist first
            made["cgroups"] = True
            cg.apply(lx.get("resources"), lx)
            if foreground:
                _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)
            from .userns import fork_via_userns  # only with a user namespace

            made["pid"] = fork_via_userns(config, nss, join, ctx, chan)
        else:
            _fork_in_namespaces(ctx, chan, cg, nss, join, lx, made)
        os.close(cr)
        os.close(cw)
        if console_fd is not None:
            os.close(console_fd)
        pid = made["pid"]
        start_time = _state.proc_stat(pid)
        st = {"ociVersion": config["ociVersion"], "id": c.id, "pid": pid,
              "pid_start": start_time[1] if start_time else None, "bundle": bundle, "rootfs": rootfs,
              "created": timestamp(), "owner": "", "annotations": config.get("annotations") or {},
              "config": config, "cgroups": cg.to_state()}
        _answer_init(chan, config, st)
        c.write(st)
        if pid_file:
            write_pid_file(pid_file, pid)
        return c, pid
    except BaseException:
        _undo(made, "user" in nss, cg)
        raise
    finally:
        chan.close()
        os.close(fifo_fd)


def _fork_in_namespaces(ctx, chan, cg, nss, join, linux, made):
    """Without a user namespace: enter the new (or joined) pid and time namespaces for our
    children only, fork init into the v2 cgroup, go back; then make the cgroups and set the
    limits while init builds the root filesystem (it moves itself in on "cg")."""
    from .._std import syscalls as _sys
    from . import cgroups as _cgroups
    from . import init
    from .spec import CLONE_FLAGS

    saved = None
    # rootless (in a user namespace of an unprivileged user): the host's pid namespace cannot be
    # joined again once left, so init is cloned straight into its new one
    new_pid = "pid" in nss and dict(join).get("pid") is None and _cgroups.rootless()
    if "pid" in nss or "time" in nss:
        saved = [(t, os.open(f"/proc/self/ns/{t}", os.O_RDONLY | os.O_CLOEXEC))
                 for t in ("pid", "time") if t in nss and not (t == "pid" and new_pid)]
    made["cgroups"] = True
    cg.prepare()  # the v2 directory init is born in
    try:
        for t, _ in saved or ():
            path_fd = dict(join).get(t)
            if path_fd is not None:
                _sys.setns(path_fd, CLONE_FLAGS[t])
            else:
                _sys.unshare(CLONE_FLAGS[t])
                if t == "time":
                    set_time_offsets(linux.get("timeOffsets"))
        if new_pid:
            pid, placed = _sys.fork_in_new_namespaces(CLONE_FLAGS["pid"]), False
        else:
            pid, placed = _cgroups.fork_in(cg)
        if pid == 0:
            ctx["close"] += [fd for _, fd in saved or ()]
            ctx["cg_placed"] = placed
            init.main(ctx)
        made["pid"] = pid
    finally:
        for t, fd in saved or ():
            _sys.setns(fd, CLONE_FLAGS[t])
            os.close(fd)
    # while init builds the root filesystem: make the cgroups and set the limits; init
    # moves itself in when it reads "cg" (see cgroups.fork_in)
    dirs = []

    def made_dirs():  # init may bind-mount them now (/sys/fs/cgroup) while we set limits
        chan.send("dirs")
        dirs.append(True)

    cg.apply(linux.get("resources"), linux, made_dirs)
    if not dirs:
        chan.send("dirs")
    chan.send("cg")
    import select  # noqa: F401  (for start: imported while init works)


def _answer_init(chan, config, state):
    """The runtime's side of the sync pipe until init is "ready": prestart/createRuntime
    hooks when it asks ("hooks"), its error as ours."""
    while True:
        msg = chan.recv_from_init("container init died while being created")
        if msg == "hooks":
            hooks = config.get("hooks") or {}
            try:
                if hooks.get("prestart") or hooks.get("createRuntime"):
                    from .hooks import run_hooks  # imported only when there are hooks

                    sb = state_bytes(state, state["id"], "created")  # what runc passes (and runtime-tools checks)
                    run_hooks(config, "prestart", sb)
                    run_hooks(config, "createRuntime", sb)
            except OCIRuntimeError:
                chan.send("fail")
                raise
            chan.send("ok " + state_bytes(state, state["id"], "created").decode())
        elif msg == "ready":
            return
        else:
            raise OCIRuntimeError(f"container init sent {msg!r}")


def _undo(made, userns, cg):
    """A failed create: kill init (reaped when it is our child) and whatever is in its
    cgroups, and remove them."""
    pid = made["pid"]
    if pid:
        try:
            os.kill(pid, 9)
            if not userns:
                os.waitpid(pid, 0)
        except OSError:
            pass
    if made["cgroups"]:
        for p in cg.pids():
            try:
                os.kill(p, 9)
            except OSError:
                pass
        try:
            cg.remove()
        except OCIRuntimeError:
            pass
