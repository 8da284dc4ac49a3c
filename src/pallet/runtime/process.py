"""The process a container runs, set up in init (and in ``exec``'s child) before the exec:
terminal, environment, program lookup, oomScoreAdj and rlimits, user and capabilities,
the fds it inherits, seccomp.
"""

import os

from .._std import syscalls as _sys
from .caps import NUMBERS, last_cap
from .rootfs import mount_console
from .spec import RLIMITS
from .sync import SetupError


def process_env(proc):
    """``process.env`` as a dict, ``HOME`` from the container's /etc/passwd when not set."""
    env = {}
    for e in proc.get("env") or ():
        k, _, v = e.partition("=")
        env[k] = v
    if "HOME" not in env:
        env["HOME"] = home_of(proc["user"]["uid"])
    return env


def set_limits(ctx, proc):
    """``process.oomScoreAdj`` and ``process.rlimits`` (of init, inherited by the program)."""
    if proc.get("oomScoreAdj") is not None:
        ctx["step"] = "process.oomScoreAdj"
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))
    if proc.get("rlimits"):
        for i, r in enumerate(proc["rlimits"]):
            ctx["step"] = f"process.rlimits[{i}] ({r['type']})"
            if r["type"] not in RLIMITS:
                raise SetupError(f"{ctx['step']}: not known to this system")
            try:
                _sys.setrlimit(RLIMITS.index(r["type"]), r["soft"], r["hard"])
            except ValueError as e:
                raise SetupError(f"{ctx['step']}: {e}") from None


def load_seccomp(seccomp_filter, seccomp, no_new_privs):
    from . import seccomp as _seccomp

    try:
        _seccomp.load(seccomp_filter, seccomp, no_new_privs)
    except Exception as e:
        raise SetupError(str(e)) from None



def open_console(proc):
    """A pty for ``process.terminal``: ``(master, slave, slave's path)``, sized as
    ``process.consoleSize`` asks (from the devpts of whatever mount namespace we are in)."""
    master, slave = os.openpty()
    cs = proc.get("consoleSize")
    if cs:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", cs["height"], cs["width"], 0, 0))
    return master, slave, os.ttyname(slave)


def hand_over_console(console_fd, master, slave):
    """Send the pty master over ``--console-socket`` and make the slave our stdio and
    controlling terminal (for init and for exec alike)."""
    import fcntl
    import socket
    import termios

    sock = socket.socket(fileno=console_fd)
    socket.send_fds(sock, [os.ttyname(slave).encode()], [master])
    sock.close()
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def attach_console(console_fd, proc):
    """init's ``process.terminal``: a pty from the container's devpts, bound at /dev/console,
    its master sent over ``--console-socket``, its slave our stdio."""
    master, slave, name = open_console(proc)
    mount_console(name)
    hand_over_console(console_fd, master, slave)


# ---------------------------------------------------------------- the process

def home_of(uid):
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 5 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def find_program(prog, path, cwd):
    """The program's path, or runc's words for why not — podman, conmon and CRI-O classify a
    runtime's error by them: "executable file not found in $PATH" / "no such file or
    directory" are exit 127, "permission denied" 126 (as with runc)."""
    if "/" in prog:
        full = prog if prog.startswith("/") else cwd.rstrip("/") + "/" + prog
        try:
            st = os.stat(full)
        except FileNotFoundError:
            raise SetupError(f'process.args[0]: exec: "{prog}": stat {full}: no such file or directory') from None
        except NotADirectoryError:
            raise SetupError(f'process.args[0]: exec: "{prog}": stat {full}: not a directory') from None
        if (st.st_mode & 0o170000) == 0o040000:
            raise SetupError(f'process.args[0]: exec: "{prog}": is a directory')
        if not os.access(full, os.X_OK):
            raise SetupError(f'process.args[0]: exec: "{prog}": permission denied')
        return full
    denied = False
    for d in (path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        full = (d or ".").rstrip("/") + "/" + prog
        if os.path.isfile(full):
            if os.access(full, os.X_OK):
                return full
            denied = True
    if denied:  # found, but not executable (Go's exec.LookPath says so too)
        raise SetupError(f'process.args[0]: exec: "{prog}": permission denied')
    raise SetupError(f'process.args[0]: exec: "{prog}": executable file not found in $PATH')


def _cap_mask(caps, name, top):
    m = 0
    for n in (caps or {}).get(name) or ():
        i = NUMBERS[n]
        if i <= top:
            m |= 1 << i
    return m


def drop_bounding(caps):
    """Drop what process.capabilities.bounding lacks from the bounding set; True when done."""
    if caps is None:
        return False
    top = last_cap()
    bounding = _cap_mask(caps, "bounding", top)
    for i in range(top + 1):
        if not bounding & (1 << i):
            _sys.prctl(_sys.PR_CAPBSET_DROP, i)
    return True


def _setgroups_denied():
    """A user namespace whose maker wrote "deny" to setgroups (a rootless pallet with no
    subordinate ids): no process in it may call setgroups, so none is needed for no groups."""
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def set_user_and_caps(proc, uid, gid, userns, bounding_done=False):
    """``process.user`` (ids, additional groups) and ``process.capabilities`` (every set)."""
    caps = proc.get("capabilities")
    top = last_cap()

    def mask(name):
        return _cap_mask(caps, name, top)

    if caps is not None and not bounding_done:
        drop_bounding(caps)
    _sys.prctl(_sys.PR_SET_KEEPCAPS, 1)
    groups = proc["user"].get("additionalGids") or []
    try:
        os.setgroups(groups)
    except PermissionError:
        if groups or not (userns or _setgroups_denied()):
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _sys.prctl(_sys.PR_SET_KEEPCAPS, 0)
    if caps is not None:
        try:
            _sys.capset(mask("effective"), mask("permitted"), mask("inheritable"))
        except PermissionError:
            own = _own_caps()
            missing = [n for n in NUMBERS if NUMBERS[n] <= top and (mask("permitted") | mask("effective")) &
                       ~own & (1 << NUMBERS[n])]
            raise SetupError("process.capabilities: the runtime itself lacks " + ", ".join(missing)
                             if missing else "process.capabilities: capset refused") from None
        _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_CLEAR_ALL)
        for n in caps.get("ambient") or ():
            i = NUMBERS[n]
            if i <= top:
                try:
                    _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_RAISE, i)
                except PermissionError:  # not in permitted and inheritable: as runc, not fatal
                    pass


def _own_caps():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return 0


def inherit_fds(preserve):
    """fds 3 .. 2+``preserve`` (``--preserve-fds``) are passed to the program, every other one
    above 2 is closed on exec."""
    keep = 3 + preserve
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if 3 <= fd < keep:
            os.set_inheritable(fd, True)
        elif fd >= keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
