"""What runs in the container's init process until it execs the user program.

The runtime forks this process (see ``container``); it joins or creates namespaces,
builds the root filesystem, tells the runtime it is ready and then blocks opening
``exec.fifo`` for writing — which succeeds only when ``start`` opens it for reading.
Nothing here returns: the process either execs the user program or ``_exit``s after
reporting one line to the runtime over the sync pipe.
"""

import os

from . import _sys
from .spec import (CLONE_FLAGS, MS_BIND, MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY,
                   MS_REC, MS_REMOUNT, MS_SLAVE, MS_STRICTATIME, MS_NOATIME, MS_NODIRATIME, MS_RELATIME,
                   PROPAGATION, RLIMITS, ATTR_NOATIME, ATTR_NODEV, ATTR_NODIRATIME, ATTR_NOEXEC, ATTR_NOSUID,
                   ATTR_RDONLY, ATTR_STRICTATIME, ATTR__ATIME, parse_mount_options)


class SetupError(Exception):
    """A step failed; the message names the config field when there is one."""


class Chan:
    """Newline-framed messages over two pipes (child side or parent side)."""

    __slots__ = ("rfd", "wfd", "buf")

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""

    def send(self, msg):
        os.write(self.wfd, msg.replace("\n", " ").encode() + b"\n")

    def recv(self):
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


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
    c = ctx["config"]
    lx = c.get("linux") or {}
    chan = ctx["chan"]
    proc = c.get("process") or {}
    os.umask(0)
    # everything imported after pivot_root would be looked for inside the container
    from . import caps as _caps  # noqa: F401
    if c.get("hooks"):
        from . import hooks as _hooks  # noqa: F401
    if proc.get("terminal"):
        import fcntl, socket, struct, termios  # noqa: F401,E401
    seccomp = lx.get("seccomp")
    if seccomp:  # libseccomp is the host's: build the filter before the root changes
        ctx["step"] = "linux.seccomp"
        from . import seccomp as _seccomp

        try:
            filt = _seccomp.build(seccomp)
        except Exception as e:
            raise SetupError(str(e)) from None
    nnp = bool(proc.get("noNewPrivileges"))
    if ctx.get("wait_go"):
        if chan.recv() != "go":
            os._exit(1)
    else:  # the runtime makes the cgroups ("dirs") and moves us in ("cg") while we set up
        ctx["cg_wait"] = ["dirs", "cg"]
    _sys.prctl(_sys.PR_SET_PDEATHSIG, 9)
    os.setsid()
    hooks = c.get("hooks") or {}
    if not (hooks.get("createContainer") or hooks.get("startContainer")):
        # only what we exec later is bounded by it (not our own capabilities, nor mounts):
        # done now, while the runtime makes the cgroups, rather than after (hooks would inherit it)
        ctx["step"] = "process.capabilities.bounding"
        ctx["bounding_done"] = _drop_bounding(proc.get("capabilities"))
    else:
        from .caps import last_cap

        last_cap()  # read now, while /proc is the host's and the runtime makes the cgroups

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
            _joined_cgroups(ctx)
        _sys.unshare(flags)

    if not ctx["no_new_keyring"]:
        ctx["step"] = "session keyring"
        _sys.join_session_keyring("_ses." + ctx["id"])

    rootfs = ctx["rootfs"]
    ctx["step"] = "rootfs"
    late_ro = []
    prop = lx.get("rootfsPropagation")
    mntns = "mount" in ctx["all_ns"]
    if mntns:
        # propagation: nothing we mount may leak to the host
        # (unbindable would forbid binding the rootfs itself: that one is applied after pivot_root)
        _sys.mount(None, "/", None, MS_REC | (MS_PRIVATE if prop in ("private", "rprivate") else MS_SLAVE))
        _sys.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    # every mount, directory and device below is made relative to this fd, inside the root
    ctx["rootfd"] = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # else: the host's mount namespace, as runc: the mounts below are made under the rootfs on the
    # host (the runtime unmounts them at delete), the host's propagation is left alone, and the
    # root changes by chroot
    mounts = c.get("mounts") or ()
    ctx["defer_cg"] = _may_defer_cgroup_binds(c, lx, hooks)
    for i, m in enumerate(mounts):
        ctx["step"] = f"mounts[{i}] ({m['destination']})"
        _mount_one(ctx, rootfs, m, late_ro)

    # hooks in the runtime's namespaces (prestart, createRuntime), then ours (createContainer)
    state_json = None
    if any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
        ctx["step"] = "hooks"
        _joined_cgroups(ctx)  # hooks and everything after run inside the container's cgroups
        chan.send("hooks")
        reply = chan.recv()
        if reply is None or not reply.startswith("ok "):
            os._exit(1)
        state_json = reply[3:].encode()
        if hooks.get("createContainer"):
            from .hooks import run_hooks

            try:
                run_hooks(c, "createContainer", state_json)
            except Exception as e:
                raise SetupError(str(e)) from None
    # else no round trip, and no wait for the cgroups before "ready": the rest (devices,
    # pivot_root, paths, user, capabilities) overlaps the runtime's limits and move (what init
    # does here needs none of them: the device rules always allow mknod, as runc's)

    ctx["step"] = "devices"
    dev_is_bind = any(m["destination"].rstrip("/") == "/dev" and
                      (m.get("type") == "bind" or "bind" in (m.get("options") or ()) or
                       "rbind" in (m.get("options") or ())) for m in c.get("mounts") or ())
    _devices(ctx["rootfd"], rootfs, lx, "user" in ctx["all_ns"], dev_is_bind)
    binds = ctx.pop("cg_binds", None)
    if binds is not None:
        ctx["step"] = f"mounts[{len(mounts) - 1}] ({mounts[-1]['destination']})"
        binds()
    cwd = proc.get("cwd") or "/"
    os.close(_mkdir_all_in_root(ctx["rootfd"], cwd))
    os.close(ctx.pop("rootfd"))

    ctx["step"] = "cgroups"
    _joined_cgroups(ctx)
    ctx["step"] = "pivot_root" if mntns and not ctx["no_pivot"] else "chroot"
    os.chdir(rootfs)
    if not mntns:  # never move or pivot the host's root
        os.chroot(".")
    elif ctx["no_pivot"]:
        _sys.mount(rootfs, "/", None, MS_MOVE)
        os.chroot(".")
    else:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
        _sys.pivot_root(".", ".")
        os.fchdir(old)
        _sys.mount(None, ".", None, MS_SLAVE | MS_REC)
        _sys.umount2(".", _sys.MNT_DETACH)
        os.close(old)
    os.chdir("/")
    if prop in ("shared", "rshared", "unbindable", "runbindable"):
        _sys.mount(None, "/", None, PROPAGATION[prop])

    if proc.get("terminal"):
        ctx["step"] = "console"
        _console(ctx, proc)

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
    for i, p in enumerate(lx.get("readonlyPaths") or ()):
        ctx["step"] = f"linux.readonlyPaths[{i}] ({p})"
        _readonly(p)
    for i, p in enumerate(lx.get("maskedPaths") or ()):
        ctx["step"] = f"linux.maskedPaths[{i}] ({p})"
        _mask(p)
    for dest, flags in late_ro:  # real paths below the rootfs: now relative to the new /
        ctx["step"] = f"remounting {dest} read-only"
        _sys.mount(None, dest, None, flags | MS_REMOUNT | MS_RDONLY)
    if c["root"].get("readonly"):
        ctx["step"] = "root.readonly"
        _sys.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags("/"))

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

    if not proc:  # no process: created, but start has nothing to run (it kills us)
        _sys.prctl(_sys.PR_SET_PDEATHSIG, 0)
        _joined_cgroups(ctx)
        chan.send("ready")
        chan.close()
        os.open(f"/proc/self/fd/{ctx['fifo_fd']}", os.O_WRONLY | os.O_CLOEXEC)
        os._exit(1)

    # the program, as the user will run it
    ctx["step"] = "process"
    env = {}
    for e in proc.get("env") or ():
        k, _, v = e.partition("=")
        env[k] = v
    user = proc["user"]
    uid, gid = user["uid"], user["gid"]
    if "HOME" not in env:
        env["HOME"] = _home(uid)
    args = proc["args"]
    path = _lookup(args[0], env.get("PATH"), cwd)

    if seccomp and not nnp:  # without no_new_privs only CAP_SYS_ADMIN may load it: before caps go
        ctx["step"] = "linux.seccomp"
        _load_seccomp(filt, seccomp, nnp)
    ctx["step"] = "process.user"
    _set_user_and_caps(proc, uid, gid, "user" in ctx["all_ns"], ctx.get("bounding_done", False))
    ctx["step"] = "process.cwd"
    os.chdir(cwd)
    if proc.get("noNewPrivileges"):
        _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)
    _fds(ctx["preserve_fds"])
    os.umask(user.get("umask", 0o022))
    _sys.prctl(_sys.PR_SET_PDEATHSIG, 0)

    ctx["step"] = "exec.fifo"
    _joined_cgroups(ctx)  # created means in the container's cgroups
    chan.send("ready")
    chan.close()
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
            _load_seccomp(filt, seccomp, nnp)
        except SetupError as e:
            os.write(2, f"pallet-runtime: {e}\n".encode())
            os._exit(1)
    try:
        os.execve(path, args, env)
    except OSError as e:
        os.write(2, f"pallet-runtime: exec {args[0]}: {e.strerror}\n".encode())
        os._exit(127)


def _remount_attrs(flags):
    """``(attr_set, attr_clr)`` for mount_setattr that do what a bind remount with ``flags`` does."""
    aset = aclr = 0
    for ms, attr in ((MS_RDONLY, ATTR_RDONLY), (MS_NOSUID, ATTR_NOSUID), (MS_NODEV, ATTR_NODEV),
                     (MS_NOEXEC, ATTR_NOEXEC), (MS_NODIRATIME, ATTR_NODIRATIME)):
        if flags & ms:
            aset |= attr
        else:
            aclr |= attr
    aclr |= ATTR__ATIME  # relatime unless noatime or strictatime, as mount(2) does
    if flags & MS_NOATIME:
        aset |= ATTR_NOATIME
    elif flags & MS_STRICTATIME:
        aset |= ATTR_STRICTATIME
    return aset, aclr


def _may_defer_cgroup_binds(c, lx, hooks):
    """May the container's cgroup directories be bound at /sys/fs/cgroup after the devices are
    made (they exist only once the cgroup grace period is over: the devices need not wait)?
    Only when nothing could tell: no hooks, the cgroup mount is the last one, without
    propagation or recursive options, and it and the devices stay out of each other's way."""
    mounts = c.get("mounts") or ()
    if not mounts or mounts[-1].get("type") != "cgroup" or \
            any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
        return False
    _flags, prop, (aset, aclr), _data, _ext = parse_mount_options(mounts[-1].get("options") or ())
    dest = "/" + mounts[-1]["destination"].strip("/")
    if prop or aset or aclr or dest == "/" or dest.startswith("/dev"):
        return False
    return not any(("/" + d["path"].strip("/")).startswith(dest) for d in lx.get("devices") or ())


def _joined_cgroups(ctx, upto="cg"):
    """Wait until the runtime has made the container's cgroup directories ("dirs") or also
    set their limits ("cg"); on "cg" move ourselves in (``cgroups.fork_in``: no global lock,
    so no RCU grace period to wait for). The runtime does its part while we build the root
    filesystem; we wait only where it matters, at the latest before the root changes (the
    host's cgroupfs is out of sight after that)."""
    pending = ctx.get("cg_wait")
    while pending and upto in pending:
        msg = ctx["chan"].recv()
        if msg != pending.pop(0):
            os._exit(1)
        if msg == "cg":
            try:
                ctx["cgroups"].join_self(ctx.get("cg_placed", False))
            except Exception as e:  # OCIRuntimeError, naming the controller
                raise SetupError(str(e)) from None


def _load_seccomp(filt, seccomp, nnp):
    from . import seccomp as _seccomp

    try:
        _seccomp.load(filt, seccomp, nnp)
    except Exception as e:
        raise SetupError(str(e)) from None


# ---------------------------------------------------------------- root filesystem

_IN_ROOT = _sys.RESOLVE_IN_ROOT | _sys.RESOLVE_NO_MAGICLINKS
_O_PATH = os.O_PATH | os.O_CLOEXEC


def _rel(path):
    return "/".join(p for p in path.split("/") if p and p != ".") or "."


def _open_in_root(rfd, path, flags=_O_PATH):
    """``path`` opened inside the root open at ``rfd`` (openat2 RESOLVE_IN_ROOT: symlinks and
    ``..`` resolved as if it were ``/``; one atomic lookup, so a component swapped for a
    symlink to a host path still lands inside the root)."""
    return _sys.openat2(rfd, _rel(path), flags | os.O_CLOEXEC, _IN_ROOT)


def _mkdir_all_in_root(rfd, path, mode=0o755):
    """An O_PATH fd of the directory ``path`` inside the root, each missing component made
    with mkdirat relative to its parent's fd (never by a path string)."""
    parts = _rel(path).split("/") if _rel(path) != "." else []
    try:
        return _open_in_root(rfd, path, _O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    fd = os.dup(rfd)
    for i, name in enumerate(parts):
        sub = "/".join(parts[:i + 1])
        for _ in range(4):
            try:
                nfd = _open_in_root(rfd, sub, _O_PATH | os.O_DIRECTORY)
                break
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:  # raced, or a dangling symlink: look again
                    pass
        else:
            os.close(fd)
            raise SetupError(f"{path}: cannot make {sub!r} inside the root filesystem "
                             "(a dangling symlink, or it keeps changing)")
        os.close(fd)
        fd = nfd
    return fd


def _mkfile_in_root(rfd, path):
    """An O_PATH fd of ``path`` inside the root; an empty file is made (O_EXCL|O_NOFOLLOW,
    relative to the parent's fd) when nothing is there."""
    try:
        return _open_in_root(rfd, path)
    except FileNotFoundError:
        pass
    rel = _rel(path)
    parent, _, name = rel.rpartition("/")
    pfd = _mkdir_all_in_root(rfd, parent or ".")
    try:
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=pfd))
        except FileExistsError:
            pass
    finally:
        os.close(pfd)
    return _open_in_root(rfd, path)


def _fd_path(fd):
    return os.readlink(f"/proc/self/fd/{fd}")


def _mnt_id(fd):
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    return -1


def _inside(rootfs, real):
    r = rootfs.rstrip("/")
    return real == (r or "/") or real.startswith(r + "/")


def _check_inside(rootfs, fd, what):
    real = _fd_path(fd)
    if not _inside(rootfs, real):
        raise SetupError(f"{what}: resolves to {real}, outside the root filesystem {rootfs}")
    return real


def _landed(rfd, rootfs, dest, before_fd, what):
    """After a mount onto ``before_fd``: the destination, looked up again inside the root, must
    be the new mount and inside the rootfs (else something swapped a component meanwhile).
    Returns the fd of the mount's root."""
    fd = _open_in_root(rfd, dest)
    try:
        _check_inside(rootfs, fd, what)
        if _mnt_id(fd) == _mnt_id(before_fd):
            raise SetupError(f"{what}: the mount is not on its destination (a path component changed)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fdp(fd):
    return f"/proc/self/fd/{fd}"


_ST_TO_MS = ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME),
             (2048, MS_NODIRATIME), (4096, MS_RELATIME))


def _locked_flags(path):
    """The flags a bind remount must keep (in a user namespace the kernel insists)."""
    f = os.statvfs(path).f_flag
    out = 0
    for st, ms in _ST_TO_MS[1:]:
        if f & st:
            out |= ms
    return out


def _mount_one(ctx, rootfs, m, late_ro):
    """One mount: the destination is resolved and made inside the root by fd, the mount made
    onto /proc/self/fd/N, then checked to have landed inside the rootfs."""
    rfd = ctx["rootfd"]
    what = ctx["step"]
    dest = m["destination"]
    typ = m.get("type") or ""
    src = m.get("source") or ""
    flags, prop, (aset, aclr), data, ext = parse_mount_options(m.get("options") or ())
    bind = typ == "bind" or flags & MS_BIND
    if bind:
        if not src.startswith("/"):
            src = ctx["bundle"] + "/" + src
        dfd = _mkdir_all_in_root(rfd, dest) if os.path.isdir(src) else _mkfile_in_root(rfd, dest)
    else:
        dfd = _mkdir_all_in_root(rfd, dest)
    new = None
    try:
        real = _check_inside(rootfs, dfd, what)
        # /proc as the destination resolves now (a symlink in the rootfs can point there)
        _check_proc(real[len(rootfs.rstrip("/")):] or "/", typ, bind, src, what)
        if bind:
            _sys.mount(src, _fdp(dfd), None, MS_BIND | (flags & MS_REC))
            new = _landed(rfd, rootfs, dest, dfd, what)
            rest = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
            if rest:
                try:
                    _sys.mount(None, _fdp(new), None, MS_BIND | MS_REMOUNT | rest)
                except PermissionError:
                    _sys.mount(None, _fdp(new), None, MS_BIND | MS_REMOUNT | rest | _locked_flags(_fdp(new)))
        elif typ == "cgroup":
            new = _mount_cgroup(ctx, dfd, dest, flags, late_ro)
        else:
            if typ == "tmpfs" and flags & MS_RDONLY:  # submounts may follow: read-only at the end
                flags &= ~MS_RDONLY
                late_ro.append((dfd, flags))
            if "tmpcopyup" in ext and typ == "tmpfs":
                _tmpcopyup(_fdp(dfd), src, flags, data)
            else:
                _sys.mount(src or typ, _fdp(dfd), typ, flags, data or None)
            new = _landed(rfd, rootfs, dest, dfd, what)
        for p in prop:
            _sys.mount(None, _fdp(new), None, p)
        if aset or aclr:
            _sys.mount_setattr(_fdp(new), aset, aclr)
        if late_ro and late_ro[-1][0] == dfd:  # remounted read-only after pivot_root, by its real path
            late_ro[-1] = (_fd_path(new)[len(rootfs.rstrip("/")):] or "/", late_ro[-1][1])
    finally:
        os.close(dfd)
        if new is not None:
            os.close(new)


def _check_proc(dest, typ, bind, src, what):
    from ..errors import InvalidDocument
    from .spec import check_proc_destination

    try:
        check_proc_destination(dest, typ, bind, what)
    except InvalidDocument as e:
        raise SetupError(str(e).replace("config.json: ", "", 1)) from None
    if dest == "/proc" and typ != "proc" and not _is_procfs_root(src):
        raise SetupError(f"{what}: {src} is not the root of a proc filesystem: only proc may be mounted on /proc")


def _is_procfs_root(path):
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_ino != 1:
        return False
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[2] == dev and right.split()[0] == "proc":
                return True
    return False


def _tmpcopyup(dest, src, flags, data):
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="pallet-tmpcopyup.")
    try:
        _sys.mount(src or "tmpfs", tmp, "tmpfs", flags, data or None)
        for name in os.listdir(dest):
            s, d = f"{dest}/{name}", f"{tmp}/{name}"
            if os.path.isdir(s) and not os.path.islink(s):
                shutil.copytree(s, d, symlinks=True)
            else:
                shutil.copy2(s, d, follow_symlinks=False)
        _sys.mount(tmp, dest, None, MS_MOVE)
    finally:
        os.rmdir(tmp)


def _cgroup_sources(ctx, mounts):
    """{v1 mount name: the container's directory in it}, from the runtime's cgroup manager:
    they can be bound as soon as they exist, before we are moved in (and in a cgroup
    namespace, where /proc/self/cgroup says "/", they are still the right ones). None when
    a mounted hierarchy is not the manager's: then /proc/self/cgroup, once moved in."""
    cg = ctx.get("cgroups")
    if cg is None or getattr(cg, "kind", None) not in ("v1", "hybrid"):
        return None
    paths = cg.v1.paths if cg.kind == "hybrid" else cg.paths
    out = {}
    for mp, t in mounts:
        name = mp[len("/sys/fs/cgroup/"):]
        if not name or "/" in name or t == "cgroup2":
            continue
        key = name.split(",")[0]
        if key not in paths:
            return None
        out[name] = paths[key]
    return out


def _mount_cgroup(ctx, dfd, dest, flags, late_ro):
    """/sys/fs/cgroup: cgroup2 when the host is unified, else the v1 layout (hybrid too),
    each hierarchy showing the container's own cgroup. ``dfd``: the destination, open inside
    the root; returns the fd of what is mounted there."""
    rfd, rootfs, what = ctx["rootfd"], ctx["rootfs"], ctx["step"]
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype = right.split()[0]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                mounts.append((fields[4], fstype))
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t in mounts):
        _joined_cgroups(ctx)  # it shows our own cgroup: that must be the container's
        _sys.mount("cgroup2", _fdp(dfd), "cgroup2", flags)
        return _landed(rfd, rootfs, dest, dfd, what)
    sources = _cgroup_sources(ctx, mounts)
    if sources is None:
        _joined_cgroups(ctx)
        own = {}
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrl, path = line.rstrip("\n").split(":", 2)
                own[ctrl.replace("name=", "")] = path
    _sys.mount("tmpfs", _fdp(dfd), "tmpfs", (flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    cfd = _landed(rfd, rootfs, dest, dfd, what)  # our fresh tmpfs: the rest is made relative to it
    if flags & MS_RDONLY:
        late_ro.append((_fd_path(cfd)[len(rootfs.rstrip("/")):] or "/",
                        (flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC))
    todo = []
    try:
        for mp, t in mounts:
            name = mp[len("/sys/fs/cgroup/"):]
            if not name or "/" in name or t == "cgroup2":  # hybrid: the v2 'unified' stays hidden, as with runc
                continue
            source = sources[name] if sources is not None else mp + own.get(name, "/")
            os.mkdir(name, 0o755, dir_fd=cfd)
            todo.append((source, os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cfd)))
    except BaseException:
        for _, fd in todo:
            os.close(fd)
        os.close(cfd)
        raise

    bind_flags = flags | MS_NOSUID | MS_NODEV | MS_NOEXEC
    deferred = sources is not None and ctx.get("defer_cg")
    top = os.dup(cfd)

    def binds():
        try:
            _joined_cgroups(ctx, "dirs")  # the container's directories exist from then on
            for source, tfd in todo:
                _sys.mount(source, _fdp(tfd), None, MS_BIND | MS_REC)
                if not deferred:  # the new mount: through its path below our own tmpfs
                    mp = f"{_fdp(top)}/{os.path.basename(_fd_path(tfd))}"
                    _sys.mount(None, mp, None, MS_BIND | MS_REMOUNT | bind_flags)
            if deferred:  # the last mount: one mount_setattr for them all (and the tmpfs) instead
                try:
                    _sys.mount_setattr(_fdp(top), *_remount_attrs(bind_flags))
                except OSError:  # a kernel before 5.12, or flags it will not change: one by one
                    for _, tfd in todo:
                        mp = f"{_fdp(top)}/{os.path.basename(_fd_path(tfd))}"
                        _sys.mount(None, mp, None, MS_BIND | MS_REMOUNT | bind_flags)
        finally:
            for _, tfd in todo:
                os.close(tfd)
            os.close(top)

    if deferred:
        ctx["cg_binds"] = binds  # after the devices: the runtime makes the directories meanwhile
    else:
        binds()
    try:
        for name in os.listdir("/sys/fs/cgroup"):
            p = "/sys/fs/cgroup/" + name
            if os.path.islink(p):
                try:
                    os.symlink(os.readlink(p), name, dir_fd=cfd)
                except FileExistsError:
                    pass
    except OSError:
        pass
    return cfd


_DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                    ("urandom", 1, 9), ("tty", 5, 0))


def _devices(rfd, rootfs, lx, userns, dev_is_bind):
    """Device nodes and /dev's symlinks, each made relative to its directory's fd inside the
    root (mknodat/symlinkat: never through a path a rootfs writer could redirect)."""
    todo = [] if dev_is_bind else [(f"/dev/{n}", "c", ma, mi, 0o666, 0, 0) for n, ma, mi in _DEFAULT_DEVICES]
    for d in lx.get("devices") or ():
        todo.append((d["path"], d["type"], d.get("major", 0), d.get("minor", 0),
                     d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0)))
    for path, typ, major, minor, mode, uid, gid in todo:
        rel = _rel(path)
        parent, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            raise SetupError(f"device {path}: not a file name")
        pfd = _mkdir_all_in_root(rfd, parent or ".")
        try:
            _check_inside(rootfs, pfd, f"device {path}")
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise SetupError(f"device {path}: a directory is in the way") from None
            kind = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}[typ]
            try:
                if userns:
                    raise PermissionError
                os.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor) if typ != "p" else 0, dir_fd=pfd)
                os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            except PermissionError:  # in a user namespace: bind the host's node
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                                 dir_fd=pfd))
                tfd = os.open(name, _O_PATH | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    _sys.mount(path, _fdp(tfd), None, MS_BIND)
                finally:
                    os.close(tfd)
        finally:
            os.close(pfd)
    dev = _mkdir_all_in_root(rfd, "/dev")
    try:
        _check_inside(rootfs, dev, "/dev")
        links = [] if dev_is_bind else [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                                        ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
                                        ("pts/ptmx", "ptmx")]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for src, name in links:
            if name == "ptmx":
                try:
                    os.unlink(name, dir_fd=dev)
                except FileNotFoundError:
                    pass
            try:
                os.symlink(src, name, dir_fd=dev)
            except FileExistsError:
                pass
    finally:
        os.close(dev)


def _mask(path):
    try:
        if os.path.isdir(path):
            _sys.mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            _sys.mount("/dev/null", path, None, MS_BIND)
    except FileNotFoundError:
        pass


def _readonly(path):
    try:
        _sys.mount(path, path, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        return
    _sys.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | _locked_flags(path))


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


def _console(ctx, proc):
    master, slave, name = open_console(proc)
    rfd = os.open("/", _O_PATH | os.O_DIRECTORY)
    try:
        cfd = _mkfile_in_root(rfd, "/dev/console")
    finally:
        os.close(rfd)
    try:
        _sys.mount(name, _fdp(cfd), None, MS_BIND)
    finally:
        os.close(cfd)
    hand_over_console(ctx["console_fd"], master, slave)


# ---------------------------------------------------------------- the process

def _home(uid):
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 5 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def _lookup(prog, path, cwd):
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
    from .caps import NUMBERS

    m = 0
    for n in (caps or {}).get(name) or ():
        i = NUMBERS[n]
        if i <= top:
            m |= 1 << i
    return m


def _drop_bounding(caps):
    """Drop what process.capabilities.bounding lacks from the bounding set; True when done."""
    if caps is None:
        return False
    from .caps import last_cap

    top = last_cap()
    bounding = _cap_mask(caps, "bounding", top)
    for i in range(top + 1):
        if not bounding & (1 << i):
            _sys.prctl(_sys.PR_CAPBSET_DROP, i)
    return True


def _set_user_and_caps(proc, uid, gid, userns, bounding_done=False):
    from .caps import NUMBERS, last_cap

    caps = proc.get("capabilities")
    top = last_cap()

    def mask(name):
        return _cap_mask(caps, name, top)

    if caps is not None and not bounding_done:
        _drop_bounding(caps)
    _sys.prctl(_sys.PR_SET_KEEPCAPS, 1)
    groups = proc["user"].get("additionalGids") or []
    try:
        os.setgroups(groups)
    except PermissionError:
        if groups or not userns:
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


def _fds(preserve):
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
