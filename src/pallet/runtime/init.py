"""What runs in the container's init process until it execs the user program.

The runtime forks this process (see ``container``); it joins or creates namespaces,
builds the root filesystem, tells the runtime it is ready and then blocks opening
``exec.fifo`` for writing — which succeeds only when ``start`` opens it for reading.
Nothing here returns: the process either execs the user program or ``_exit``s after
reporting one line to the runtime over the sync pipe.
"""

import os

from .._std import syscalls as _sys
from . import rootfs
from .caps import last_cap
from .process import (attach_console, drop_bounding, find_program, inherit_fds, load_seccomp, process_env,
                      set_limits, set_user_and_caps)
from .spec import CLONE_FLAGS
from .sync import SetupError, wait_for_cgroups


def main(ctx):
    """Entry point in the forked init process (never returns)."""
    chan = ctx["chan"]
    for fd in ctx.get("close") or ():
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        _init(ctx)
    except SetupError as e:
        _fail(chan, str(e))
    except OSError as e:
        _fail(chan, f"{ctx.get('step', 'init')}: {e.strerror or e}{': ' + e.filename if e.filename else ''}")
    except BaseException as e:  # a bug: still one line for the user
        _fail(chan, f"{ctx.get('step', 'init')}: internal error: {type(e).__name__}: {e}")
    os._exit(1)


def _fail(chan, msg):
    try:
        chan.send("error " + msg)
    except OSError:
        try:
            os.write(2, f"pallet-runtime: init: {msg}\n".encode())
        except OSError:
            pass
    os._exit(1)


def _init(ctx):
    """The sequence; each step sets ``ctx["step"]``, which names it in an error."""
    c = ctx["config"]
    lx = c.get("linux") or {}
    proc = c.get("process") or {}
    hooks = c.get("hooks") or {}
    seccomp_filter = _prepare(ctx, c, lx, proc, hooks)
    _enter_namespaces(ctx)
    late_ro = rootfs.mount_all(ctx, c, lx, hooks)
    state_json = _create_hooks(ctx, c, hooks)
    # without hooks no round trip, and no wait for the cgroups before "ready": the rest (devices,
    # pivot_root, paths, user, capabilities) overlaps the runtime's limits and move (what init
    # does here needs none of them: the device rules always allow mknod, as runc's)
    cwd = proc.get("cwd") or "/"
    rootfs.finish(ctx, c, lx, cwd)
    ctx["step"] = "cgroups"
    wait_for_cgroups(ctx)
    rootfs.change_root(ctx, lx)
    if proc.get("terminal"):
        ctx["step"] = "console"
        attach_console(ctx["console_fd"], proc)
    _names_and_sysctl(ctx, c, lx)
    rootfs.protect_paths(ctx, c, lx, late_ro)
    set_limits(ctx, proc)
    if not proc:  # no process: created, but start has nothing to run (it kills us)
        _sys.prctl(_sys.PR_SET_PDEATHSIG, 0)
        wait_for_cgroups(ctx)
        _ready(ctx)
        os.open(f"/proc/self/fd/{ctx['fifo_fd']}", os.O_WRONLY | os.O_CLOEXEC)
        os._exit(1)
    _run_process(ctx, c, proc, cwd, lx.get("seccomp"), seccomp_filter, state_json)


def _prepare(ctx, c, lx, proc, hooks):
    """Before anything changes: the modules needed later, the seccomp filter (built with the
    host's libseccomp), the hand-over with the runtime, the bounding set. Returns the filter."""
    os.umask(0)
    # everything imported after pivot_root would be looked for inside the container
    if c.get("hooks"):
        from . import hooks as _hooks  # noqa: F401
    if proc.get("terminal"):
        import fcntl, socket, struct, termios  # noqa: F401,E401
    seccomp = lx.get("seccomp")
    seccomp_filter = None
    if seccomp:  # libseccomp is the host's: build the filter before the root changes
        ctx["step"] = "linux.seccomp"
        from . import seccomp as _seccomp

        try:
            seccomp_filter = _seccomp.prepare(seccomp)
        except Exception as e:
            raise SetupError(str(e)) from None
    if ctx.get("wait_go"):
        if ctx["chan"].recv() != "go":
            os._exit(1)
    else:  # the runtime makes the cgroups ("dirs") and moves us in ("cg") while we set up
        ctx["cg_wait"] = ["dirs", "cg"]
    _sys.prctl(_sys.PR_SET_PDEATHSIG, 9)
    os.setsid()
    if not (hooks.get("createContainer") or hooks.get("startContainer")):
        # only what we exec later is bounded by it (not our own capabilities, nor mounts):
        # done now, while the runtime makes the cgroups, rather than after (hooks would inherit it)
        ctx["step"] = "process.capabilities.bounding"
        ctx["bounding_done"] = drop_bounding(proc.get("capabilities"))
    else:
        last_cap()  # read now, while /proc is the host's and the runtime makes the cgroups
    return seccomp_filter


def _enter_namespaces(ctx):
    """Join the namespaces given by path, make the new ones (user, pid and time are the
    runtime's doing), join the session keyring."""
    ctx["step"] = "linux.namespaces"
    for typ, fd in ctx["join"]:
        ctx["step"] = f"linux.namespaces ({typ})"
        _sys.setns(fd, CLONE_FLAGS[typ])
        os.close(fd)
    flags = 0
    for typ in ctx["new"]:
        if typ not in ("user", "pid", "time"):
            flags |= CLONE_FLAGS[typ]
    if flags:
        if flags & CLONE_FLAGS["cgroup"]:  # rooted at the container's cgroup: join first
            wait_for_cgroups(ctx)
        _sys.unshare(flags)
    if not ctx["no_new_keyring"]:
        ctx["step"] = "session keyring"
        _sys.join_session_keyring("_ses." + ctx["id"])


def _create_hooks(ctx, c, hooks):
    """Hooks in the runtime's namespaces (prestart, createRuntime: the runtime runs them),
    then ours (createContainer). Returns the state the runtime sent, for startContainer."""
    if not any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
        return None
    ctx["step"] = "hooks"
    wait_for_cgroups(ctx)  # hooks and everything after run inside the container's cgroups
    ctx["chan"].send("hooks")
    reply = ctx["chan"].recv()
    if reply is None or not reply.startswith("ok "):
        os._exit(1)
    state_json = reply[3:].encode()
    if hooks.get("createContainer"):
        from .hooks import run_hooks

        try:
            run_hooks(c, "createContainer", state_json)
        except Exception as e:
            raise SetupError(str(e)) from None
    return state_json


def _names_and_sysctl(ctx, c, lx):
    if c.get("hostname"):
        ctx["step"] = "hostname"
        _sys.sethostname(c["hostname"])
    if c.get("domainname"):
        ctx["step"] = "domainname"
        _sys.setdomainname(c["domainname"])
    for k, v in (lx.get("sysctl") or {}).items():
        ctx["step"] = f"linux.sysctl.{k}"
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(v)


def _ready(ctx):
    """Created: tell the runtime (in the container's cgroups by now) and close the channel."""
    ctx["chan"].send("ready")
    ctx["chan"].close()


def _run_process(ctx, c, proc, cwd, seccomp, seccomp_filter, state_json):
    """The program, as the user will run it: set up, report "ready", wait for ``start`` on
    exec.fifo, startContainer hooks, seccomp last when no_new_privs allows, exec."""
    ctx["step"] = "process"
    env = process_env(proc)
    user = proc["user"]
    args = proc["args"]
    path = find_program(args[0], env.get("PATH"), cwd)
    nnp = bool(proc.get("noNewPrivileges"))
    if seccomp and not nnp:  # without no_new_privs only CAP_SYS_ADMIN may load it: before caps go
        ctx["step"] = "linux.seccomp"
        load_seccomp(seccomp_filter, seccomp, nnp)
    ctx["step"] = "process.user"
    set_user_and_caps(proc, user["uid"], user["gid"], "user" in ctx["all_ns"], ctx.get("bounding_done", False))
    ctx["step"] = "process.cwd"
    os.chdir(cwd)
    if nnp:
        _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)
    inherit_fds(ctx["preserve_fds"])
    os.umask(user.get("umask", 0o022))
    _sys.prctl(_sys.PR_SET_PDEATHSIG, 0)

    ctx["step"] = "exec.fifo"
    wait_for_cgroups(ctx)  # created means in the container's cgroups
    _ready(ctx)
    fifo = os.open(f"/proc/self/fd/{ctx['fifo_fd']}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fifo, b"0")
    os.close(fifo)
    os.close(ctx["fifo_fd"])
    if (c.get("hooks") or {}).get("startContainer"):
        from .hooks import run_hooks

        try:
            run_hooks(c, "startContainer", state_json)
        except Exception as e:
            os.write(2, f"pallet-runtime: {e}\n".encode())
            os._exit(1)
    if seccomp and nnp:  # the last step before the program
        try:
            load_seccomp(seccomp_filter, seccomp, nnp)
        except SetupError as e:
            os.write(2, f"pallet-runtime: {e}\n".encode())
            os._exit(1)
    try:
        os.execve(path, args, env)
    except OSError as e:
        os.write(2, f"pallet-runtime: exec {args[0]}: {e.strerror}\n".encode())
        os._exit(127)
