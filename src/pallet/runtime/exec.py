"""``exec``: one more process in a running container.

The runtime enters the container's pid (and time) namespace for its children only,
forks, and goes back; the child joins the container's cgroups, then its user namespace
(when it has one), the other namespaces (mount last: its root becomes the container's),
sets rlimits, user, capabilities, ``no_new_privs`` and seccomp exactly as for the
container's init, and execs. It reports a failure over a close-on-exec pipe: EOF
without a message means the exec happened. Without ``--detach`` the runtime waits and
returns the process's exit status (128+signal when killed), forwarding signals.
"""

import os

from ..errors import OCIRuntimeError
from . import state as _state

_PROC_NS = {"network": "net", "mount": "mnt"}

#: the order namespaces are joined in (user first: it grants the rest; mount last)
_ORDER = ("user", "cgroup", "ipc", "uts", "network", "mount")


def process_from_args(config_proc, args, tty=False, cwd=None, env=(), user=None, caps=(), additional_gids=(),
                      no_new_privs=False, apparmor=None, process_label=None):
    """The process to exec, from the container's own process and runc exec's flags."""
    import copy

    p = copy.deepcopy(config_proc)
    p.pop("consoleSize", None)
    p["args"] = list(args)
    p["terminal"] = bool(tty)
    if cwd:
        p["cwd"] = cwd
    if env:
        p["env"] = list(p.get("env") or ()) + list(env)
    if user:
        u, _, g = user.partition(":")
        try:
            p["user"] = {"uid": int(u), "gid": int(g) if g else 0}
        except ValueError:
            raise OCIRuntimeError(f"--user {user!r}: give UID[:GID] as numbers") from None
    if additional_gids:
        try:
            p["user"]["additionalGids"] = [int(g) for g in additional_gids]
        except ValueError:
            raise OCIRuntimeError("--additional-gids: give numbers") from None
    if caps:
        c = p.setdefault("capabilities", {})
        for s in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            lst = c.setdefault(s, [])
            for cap in caps:
                cap = cap.upper() if cap.upper().startswith("CAP_") else "CAP_" + cap.upper()
                if cap not in lst:
                    lst.append(cap)
    if no_new_privs:
        p["noNewPrivileges"] = True
    if apparmor:
        p["apparmorProfile"] = apparmor
    if process_label:
        p["selinuxLabel"] = process_label
    return p


def load_process(path):
    from .._std import json as _json

    try:
        with open(path, "rb") as f:
            p = _json.loads(f.read())
    except OSError as e:
        raise OCIRuntimeError(f"--process {path}: {e.strerror}") from None
    except ValueError as e:
        raise OCIRuntimeError(f"--process {path}: not JSON: {e}") from None
    return p


def exec_(root, cid, proc, detach=False, pid_file=None, console_socket=None, preserve_fds=0, ignore_paused=False):
    """Run ``proc`` (a runtime-spec process object) in the container; returns the exit code (0 detached)."""
    from .container import cgroup_manager, connect_console_socket, forward_signals, wait_for_exit, write_pid_file

    _check_process(proc, console_socket)
    with _state.open_container(root, cid, lock=False) as c:
        status = c.status()
        if status == "paused" and not ignore_paused:
            raise OCIRuntimeError(f"cannot exec in container {cid!r}: it is paused (resume it first)")
        if status not in ("running", "created", "paused"):
            raise OCIRuntimeError(f"cannot exec in container {cid!r}: it is {status}")
    linux = c.state["config"].get("linux") or {}
    fds = _open_namespaces(cid, c.state["pid"], [ns["type"] for ns in linux.get("namespaces") or ()])
    try:
        manager = cgroup_manager(c)
        console_fd = connect_console_socket(console_socket) if console_socket else None
        try:
            pid = _fork_child(proc, fds, manager, console_fd, preserve_fds, linux, detach)
        finally:
            if console_fd is not None:
                os.close(console_fd)
    finally:
        for fd in fds.values():
            os.close(fd)
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    forward_signals(pid)
    return wait_for_exit(pid)


def _check_process(proc, console_socket):
    """``proc`` as config.json's ``process`` is checked (errors say ``exec:``), and the console flags."""
    from ..errors import InvalidDocument
    from .fields import check_strings, check_type
    from .spec import validate_process

    try:
        check_type(proc, dict, "process", True)
        check_strings(proc)
        validate_process(proc)
    except InvalidDocument as e:
        raise OCIRuntimeError(str(e).replace("config.json: ", "exec: ", 1)) from None
    if proc.get("terminal") and not console_socket:
        raise OCIRuntimeError("exec --tty: --console-socket is required (pallet-runtime does not relay a terminal)")
    if console_socket and not proc.get("terminal"):
        raise OCIRuntimeError("--console-socket is only valid with --tty (process.terminal)")


def _open_namespaces(cid, init_pid, types):
    """{type: fd} of init's namespaces (and ``root``: init's root, without a mount namespace)."""
    fds = {}
    try:
        for t in types:
            fds[t] = os.open(f"/proc/{init_pid}/ns/{_PROC_NS.get(t, t)}", os.O_RDONLY | os.O_CLOEXEC)
        if "mount" not in types:  # the host's mount namespace: init's root is a chroot, enter it too
            fds["root"] = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        for fd in fds.values():
            os.close(fd)
        raise OCIRuntimeError(f"exec: cannot open the namespaces of container {cid!r}: {e.strerror}") from None
    return fds


def _fork_child(proc, fds, manager, console_fd, preserve_fds, linux, detach):
    """Fork the child in the container's pid/time namespaces and cgroup (see ``_child``);
    its pid once it has exec'd, or its error (sent over a close-on-exec pipe) raised."""
    from .._std import syscalls as _sys
    from .cgroups import fork_in
    from .spec import CLONE_FLAGS

    seccomp = linux.get("seccomp")
    if seccomp:
        from . import seccomp as _seccomp

        _seccomp.check(seccomp)
    r, w = os.pipe2(os.O_CLOEXEC)
    saved = []
    try:
        if not detach:
            _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)
        for t in ("pid", "time"):
            if t in fds:
                saved.append((t, os.open(f"/proc/self/ns/{t}", os.O_RDONLY | os.O_CLOEXEC)))
                _sys.setns(fds[t], CLONE_FLAGS[t])
        try:
            pid, placed = fork_in(manager)
            if pid == 0:
                os.close(r)
                _child(proc, fds, manager, placed, console_fd, w, preserve_fds, seccomp, linux)
        finally:
            for t, fd in saved:
                try:
                    _sys.setns(fd, CLONE_FLAGS[t])
                except OSError:
                    # rootless: the host's pid namespace is not ours to join again; this process
                    # forks nothing more, so only its later children would have been affected
                    from .cgroups import rootless

                    if not rootless():
                        raise
                finally:
                    os.close(fd)
        os.close(w)
        w = None
        from .._fs import read_to_eof

        msg = read_to_eof(r)
        if msg:
            os.waitpid(pid, 0)
            raise OCIRuntimeError(msg.decode(errors="replace").strip())
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    return pid


def _child(proc, fds, mgr, placed, console_fd, w, preserve_fds, seccomp, lx):
    """In the forked child: join, set up, exec (never returns)."""
    from .._std import syscalls as _sys
    from .process import find_program, inherit_fds, process_env, set_user_and_caps
    from .spec import CLONE_FLAGS

    step = "cgroups"
    try:
        if proc.get("rlimits"):
            import resource  # noqa: F401  (before the mount namespace changes what 'import' sees)
        if proc.get("terminal"):
            import fcntl, socket, struct, termios  # noqa: F401,E401
        if seccomp:
            from . import seccomp as _seccomp

            filt = _seccomp.prepare(seccomp)
        if mgr is not None:
            mgr.join_self(placed)
        os.setsid()
        for t in _ORDER:
            if t in fds:
                step = f"joining the {t} namespace"
                _sys.setns(fds[t], CLONE_FLAGS[t])
        if "root" in fds:
            step = "chroot"
            os.fchdir(fds["root"])
            os.chroot(".")
        step = "process.cwd"
        os.chdir(proc["cwd"])
        if proc.get("terminal"):
            step = "console"
            _console(console_fd, proc)
        if proc.get("oomScoreAdj") is not None:
            step = "process.oomScoreAdj"
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(proc["oomScoreAdj"]))
        if proc.get("rlimits"):
            import resource

            for i, rl in enumerate(proc["rlimits"]):
                step = f"process.rlimits[{i}] ({rl['type']})"
                resource.setrlimit(getattr(resource, rl["type"]), (rl["soft"], rl["hard"]))
        env = process_env(proc)
        user = proc["user"]
        step = "process.args"
        path = find_program(proc["args"][0], env.get("PATH"), proc["cwd"])
        nnp = bool(proc.get("noNewPrivileges"))
        if seccomp and not nnp:  # without no_new_privs only CAP_SYS_ADMIN may load it: before caps go
            step = "linux.seccomp"
            _seccomp.load(filt, seccomp, nnp)
        step = "process.user"
        set_user_and_caps(proc, user["uid"], user["gid"], "user" in fds)
        if proc.get("noNewPrivileges"):
            _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)
        os.umask(user.get("umask", 0o022))
        inherit_fds(preserve_fds)
        if seccomp and nnp:
            step = "linux.seccomp"
            _seccomp.load(filt, seccomp, nnp)
        step = "exec"
        os.execve(path, proc["args"], env)
    except BaseException as e:
        from .sync import SetupError

        msg = str(e) if isinstance(e, (SetupError, OCIRuntimeError)) else \
            f"{step}: {getattr(e, 'strerror', None) or e}"
        try:
            os.write(w, f"exec: {msg}".encode())
        finally:
            os._exit(127 if step == "exec" else 1)


def _console(console_fd, proc):
    from .process import hand_over_console, open_console

    # /dev/ptmx of the container's devpts: its mount namespace is joined by now
    master, slave, _name = open_console(proc)
    hand_over_console(console_fd, master, slave)
