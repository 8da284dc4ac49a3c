"""The container's root filesystem, built by init before it changes root: mounts, the
cgroup tree, devices, pivot_root/chroot, masked and read-only paths.

Everything made below the rootfs is resolved inside it by fd (:mod:`pallet._rootfs`, the one
resolver: ``openat2(RESOLVE_IN_ROOT)``), created relative to its parent's fd and mounted onto
``/proc/self/fd/N``; each mount is checked afterwards to have landed inside the rootfs (docs/runtime.md, symlink races).
Runs in init only: every module these functions import lazily is loaded before the root
changes.
"""

import os
import stat as _stat

from .. import _rootfs
from .._std import syscalls as _sys
from .spec import (MS_BIND, MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
                   MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_NOATIME, MS_NODIRATIME, MS_RELATIME, PROPAGATION,
                   ATTR_NOATIME, ATTR_NODEV, ATTR_NODIRATIME, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY, ATTR_STRICTATIME, ATTR__ATIME,
                   parse_mount_options)
from .sync import SetupError, wait_for_cgroups


# ---------------------------------------------------------------- the steps init runs

def mount_all(ctx, config, linux, hooks):
    """Make the rootfs a mount of its own (with a mount namespace), open it (``ctx["rootfd"]``)
    and make the config's mounts in order. Returns the mounts to make read-only after the
    root has changed: ``[(path below the new /, flags)]``."""
    rootfs = ctx["rootfs"]
    ctx["step"] = "rootfs"
    late_ro = []
    prop = linux.get("rootfsPropagation")
    if "mount" in ctx["all_ns"]:
        if prop in ("shared", "rshared"):
            # as runc: our copies of the host's shared mounts stay its peers, so what the
            # container mounts below a shared bind (Kubernetes' Bidirectional) reaches the host;
            # the mount holding the rootfs is made private first (pivot_root refuses a shared
            # parent, and nothing mounted in the rootfs itself may leak)
            _sys.mount(None, "/", None, MS_REC | MS_SHARED)
            _sys.mount(None, _mount_point_of(rootfs), None, MS_PRIVATE)
        else:
            # propagation: nothing we mount may leak to the host
            # (unbindable would forbid binding the rootfs itself: that one is applied after pivot_root)
            _sys.mount(None, "/", None, MS_REC | (MS_PRIVATE if prop in ("private", "rprivate") else MS_SLAVE))
    trees = ctx.get("trees")
    if trees:
        # a user namespace: the runtime cloned the rootfs (and the bind sources) while it could
        # still reach them, and made the rootfs our cwd; its clone goes over it, and is our root
        # fd from here on (the path may lead through directories the mapped root cannot enter)
        tree = trees.pop("rootfs")
        _sys.move_mount(tree, _sys.AT_FDCWD, ".")
        ctx["rootfd"], ctx["root_cwd"] = tree, os.dup(tree)
    else:
        if "mount" in ctx["all_ns"]:
            _sys.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
        # every mount, directory and device below is made relative to this fd, inside the root
        ctx["rootfd"] = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # else: the host's mount namespace, as runc: the mounts below are made under the rootfs on the
    # host (the runtime unmounts them at delete), the host's propagation is left alone, and the
    # root changes by chroot
    ctx["defer_cg"] = may_defer_cgroup_binds(config, linux, hooks)
    for i, m in enumerate(config.get("mounts") or ()):
        ctx["step"] = f"mounts[{i}] ({m['destination']})"
        mount_entry(ctx, rootfs, m, late_ro, (trees or {}).pop(i, None))
    return late_ro


def finish(ctx, config, linux, cwd):
    """Devices, the cgroup binds deferred until now, ``process.cwd``; closes ``ctx["rootfd"]``."""
    ctx["step"] = "devices"
    mounts = config.get("mounts") or ()
    dev_is_bind = any(m["destination"].rstrip("/") == "/dev" and
                      (m.get("type") == "bind" or "bind" in (m.get("options") or ()) or
                       "rbind" in (m.get("options") or ())) for m in mounts)
    make_devices(ctx["rootfd"], ctx["rootfs"], linux, "user" in ctx["all_ns"], dev_is_bind)
    binds = ctx.pop("cg_binds", None)
    if binds is not None:
        ctx["step"] = f"mounts[{len(mounts) - 1}] ({mounts[-1]['destination']})"
        binds()
    os.close(mkdir_all_in_root(ctx["rootfd"], cwd))
    os.close(ctx.pop("rootfd"))


def change_root(ctx, linux):
    """pivot_root into the rootfs (``--no-pivot``: move it onto / and chroot; no mount
    namespace: chroot only, never moving or pivoting the host's root)."""
    mntns = "mount" in ctx["all_ns"]
    ctx["step"] = "pivot_root" if mntns and not ctx["no_pivot"] else "chroot"
    root_cwd = ctx.pop("root_cwd", None)
    if root_cwd is not None:  # the rootfs' path may not be ours to walk (a user namespace)
        os.fchdir(root_cwd)
        os.close(root_cwd)
    else:
        os.chdir(ctx["rootfs"])
    if not mntns:  # never move or pivot the host's root
        os.chroot(".")
    elif ctx["no_pivot"]:
        _sys.mount(".", "/", None, MS_MOVE)
        os.chroot(".")
    else:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
        _sys.pivot_root(".", ".")
        os.fchdir(old)
        _sys.mount(None, ".", None, MS_SLAVE | MS_REC)
        _sys.umount2(".", _sys.MNT_DETACH)
        os.close(old)
    os.chdir("/")
    prop = linux.get("rootfsPropagation")
    if prop in ("shared", "rshared", "unbindable", "runbindable"):
        _sys.mount(None, "/", None, PROPAGATION[prop])


def protect_paths(ctx, config, linux, late_ro):
    """After the root changed: ``linux.readonlyPaths``, ``linux.maskedPaths``, the mounts made
    read-only last, ``root.readonly``."""
    for i, p in enumerate(linux.get("readonlyPaths") or ()):
        ctx["step"] = f"linux.readonlyPaths[{i}] ({p})"
        make_readonly(p)
    for i, p in enumerate(linux.get("maskedPaths") or ()):
        ctx["step"] = f"linux.maskedPaths[{i}] ({p})"
        mask_path(p)
    for dest, flags in late_ro:  # real paths below the rootfs: now relative to the new /
        ctx["step"] = f"remounting {dest} read-only"
        _sys.mount(None, dest, None, flags | MS_REMOUNT | MS_RDONLY)
    if config["root"].get("readonly"):
        ctx["step"] = "root.readonly"
        _sys.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags("/"))


def mount_console(name):
    """Bind the pty ``name`` at /dev/console of the (new) root."""
    rfd = os.open("/", _O_PATH | os.O_DIRECTORY)
    try:
        cfd = mkfile_in_root(rfd, "/dev/console")
    finally:
        os.close(rfd)
    try:
        _sys.mount(name, proc_fd_path(cfd), None, MS_BIND)
    finally:
        os.close(cfd)


# ---------------------------------------------------------------- mounts

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


def may_defer_cgroup_binds(config, linux, hooks):
    """May the container's cgroup directories be bound at /sys/fs/cgroup after the devices are
    made (they exist only once the cgroup grace period is over: the devices need not wait)?
    Only when nothing could tell: no hooks, the cgroup mount is the last one, without
    propagation or recursive options, and it and the devices stay out of each other's way."""
    mounts = config.get("mounts") or ()
    if not mounts or mounts[-1].get("type") != "cgroup" or \
            any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
        return False
    _flags, prop, (aset, aclr), _data, _ext = parse_mount_options(mounts[-1].get("options") or ())
    dest = "/" + mounts[-1]["destination"].strip("/")
    if prop or aset or aclr or dest == "/" or dest.startswith("/dev"):
        return False
    return not any(("/" + d["path"].strip("/")).startswith(dest) for d in linux.get("devices") or ())


_O_PATH = os.O_PATH | os.O_CLOEXEC


def _rel(path):
    return "/".join(p for p in path.split("/") if p and p != ".") or "."


# paths inside the root: pallet._rootfs, the one resolver (openat2 RESOLVE_IN_ROOT through the
# syscall stand-in, an fd walk where the kernel lacks it); what it cannot make is a SetupError

def open_in_root(rfd, path, flags=_O_PATH):
    """``path`` opened inside the root open at ``rfd`` (symlinks and ``..`` resolved as if it
    were ``/``; a component swapped for a symlink to a host path still lands inside it)."""
    return _rootfs.open_in_root(rfd, path, flags)


def mkdir_all_in_root(rfd, path, mode=0o755):
    """An O_PATH fd of the directory ``path`` inside the root, each missing component made
    with mkdirat relative to its parent's fd (never by a path string)."""
    try:
        return _rootfs.mkdir_all_in_root(rfd, path, mode, flags=_O_PATH)
    except OSError as e:
        raise SetupError(f"{path}: cannot make it a directory inside the root filesystem: "
                         f"{e.strerror or e}") from None


def mkfile_in_root(rfd, path):
    """An O_PATH fd of ``path`` inside the root; an empty file is made (O_EXCL|O_NOFOLLOW,
    relative to the parent's fd) when nothing is there."""
    try:
        return _rootfs.mkfile_in_root(rfd, path)
    except OSError as e:
        raise SetupError(f"{path}: cannot make a mount point inside the root filesystem: "
                         f"{e.strerror or e}") from None


def fd_real_path(fd):
    return os.readlink(f"/proc/self/fd/{fd}")


def _mount_id(fd):
    """The mount id of an fd (``mnt_id:`` of /proc/self/fdinfo/FD), read with one ``os.read``
    (twice per mount: a buffered file object each time cost more than the read)."""
    info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(info, 4096)
    finally:
        os.close(info)
    i = data.find(b"mnt_id:")
    return int(data[i + 7:data.index(b"\n", i)]) if i >= 0 else -1


def _inside(rootfs, real):
    r = rootfs.rstrip("/")
    return real == (r or "/") or real.startswith(r + "/")


def _check_inside(rootfs, fd, what):
    real = fd_real_path(fd)
    if not _inside(rootfs, real):
        raise SetupError(f"{what}: resolves to {real}, outside the root filesystem {rootfs}")
    return real


def _check_landed(rfd, rootfs, dest, before_fd, what):
    """After a mount onto ``before_fd``: the destination, looked up again inside the root, must
    be the new mount and inside the rootfs (else something swapped a component meanwhile).
    Returns the fd of the mount's root."""
    fd = open_in_root(rfd, dest)
    try:
        _check_inside(rootfs, fd, what)
        if _mount_id(fd) == _mount_id(before_fd):
            raise SetupError(f"{what}: the mount is not on its destination (a path component changed)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def proc_fd_path(fd):
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


def mount_entry(ctx, rootfs, mount, late_ro, tree=None):
    """One mount: the destination is resolved and made inside the root by fd, the mount made
    onto /proc/self/fd/N, then checked to have landed inside the rootfs. ``tree``: a bind
    mount's source cloned by the runtime before the user namespace (see ``mount_all``)."""
    rfd = ctx["rootfd"]
    what = ctx["step"]
    dest = mount["destination"]
    typ = mount.get("type") or ""
    src = mount.get("source") or ""
    flags, prop, (aset, aclr), data, ext = parse_mount_options(mount.get("options") or ())
    bind = typ == "bind" or flags & MS_BIND
    if bind:
        if not src.startswith("/"):
            src = ctx["bundle"] + "/" + src
        if mount.get("uidMappings") and tree is None:  # never bound unmapped instead
            raise SetupError(f"{what}: an id-mapped mount needs a new mount namespace in a user namespace")
        isdir = _stat.S_ISDIR(os.fstat(tree).st_mode) if tree is not None else os.path.isdir(src)
        dfd = mkdir_all_in_root(rfd, dest) if isdir else mkfile_in_root(rfd, dest)
    else:
        dfd = mkdir_all_in_root(rfd, dest)
    new = None
    try:
        real = _check_inside(rootfs, dfd, what)
        # /proc as the destination resolves now (a symlink in the rootfs can point there)
        _check_proc(real[len(rootfs.rstrip("/")):] or "/", typ, bind, src, what)
        if bind:
            if tree is not None:
                _sys.move_mount(tree, dfd)
            else:
                _sys.mount(src, proc_fd_path(dfd), None, MS_BIND | (flags & MS_REC))
            new = _check_landed(rfd, rootfs, dest, dfd, what)
            rest = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
            if rest:
                try:
                    _sys.mount(None, proc_fd_path(new), None, MS_BIND | MS_REMOUNT | rest)
                except PermissionError:
                    _sys.mount(None, proc_fd_path(new), None,
                               MS_BIND | MS_REMOUNT | rest | _locked_flags(proc_fd_path(new)))
        elif typ == "cgroup":
            new = _mount_cgroup(ctx, dfd, dest, flags, late_ro)
        else:
            if typ == "tmpfs" and flags & MS_RDONLY:  # submounts may follow: read-only at the end
                flags &= ~MS_RDONLY
                late_ro.append((dfd, flags))
            if "tmpcopyup" in ext and typ == "tmpfs":
                _tmpcopyup(proc_fd_path(dfd), src, flags, data)
            else:
                try:
                    _sys.mount(src or typ, proc_fd_path(dfd), typ, flags, data or None)
                except PermissionError:
                    if typ != "sysfs" or "user" not in ctx["all_ns"]:
                        raise
                    # a user namespace without a network namespace of its own may not mount
                    # sysfs: the host's /sys bound instead, as runc and crun do
                    _sys.mount("/sys", proc_fd_path(dfd), None, MS_BIND | MS_REC)
                    new = _check_landed(rfd, rootfs, dest, dfd, what)
                    _sys.mount(None, proc_fd_path(new), None, MS_BIND | MS_REMOUNT | (flags & ~MS_REC) |
                               _locked_flags(proc_fd_path(new)))
            if new is None:
                new = _check_landed(rfd, rootfs, dest, dfd, what)
        for p in prop:
            _sys.mount(None, proc_fd_path(new), None, p)
        if aset or aclr:
            _sys.mount_setattr(proc_fd_path(new), aset, aclr)
        if late_ro and late_ro[-1][0] == dfd:  # remounted read-only after pivot_root, by its real path
            late_ro[-1] = (fd_real_path(new)[len(rootfs.rstrip("/")):] or "/", late_ro[-1][1])
    finally:
        os.close(dfd)
        if new is not None:
            os.close(new)
        if tree is not None:
            os.close(tree)


def _check_proc(dest, typ, bind, src, what):
    from ..errors import InvalidDocument
    from .spec import check_proc_destination

    try:
        check_proc_destination(dest, typ, bind, what)
    except InvalidDocument as e:
        raise SetupError(str(e).replace("config.json: ", "", 1)) from None
    if dest == "/proc" and typ != "proc" and not _is_procfs_root(src):
        raise SetupError(f"{what}: {src} is not the root of a proc filesystem: only proc may be mounted on /proc")


def _mount_point_of(path):
    """The mount point (of this mount namespace) that holds ``path``: the longest one above it."""
    real = os.path.realpath(path)
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if "\\" in mp:  # octal escapes (\040 a space)
                mp = mp.encode().decode("unicode_escape")
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    return best


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
    from .cgroups.cgfs import cgroup_mounts  # read by the runtime before the fork: not read again

    joined = ctx["all_ns"].get("mount") is not None  # a namespace of its own: its mounts, read now
    mounts = [(mp, fstype) for mp, _root, fstype, _opts in cgroup_mounts(cached=not joined)
              if mp.startswith("/sys/fs/cgroup")]
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t in mounts):
        wait_for_cgroups(ctx)  # it shows our own cgroup: that must be the container's
        _sys.mount("cgroup2", proc_fd_path(dfd), "cgroup2", flags)
        return _check_landed(rfd, rootfs, dest, dfd, what)
    sources = _cgroup_sources(ctx, mounts)
    if sources is None:
        wait_for_cgroups(ctx)
        own = {}
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrl, path = line.rstrip("\n").split(":", 2)
                own[ctrl.replace("name=", "")] = path
    _sys.mount("tmpfs", proc_fd_path(dfd), "tmpfs", (flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    cfd = _check_landed(rfd, rootfs, dest, dfd, what)  # our fresh tmpfs: the rest is made relative to it
    if flags & MS_RDONLY:
        late_ro.append((fd_real_path(cfd)[len(rootfs.rstrip("/")):] or "/",
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
            wait_for_cgroups(ctx, "dirs")  # the container's directories exist from then on
            for source, tfd in todo:
                _sys.mount(source, proc_fd_path(tfd), None, MS_BIND | MS_REC)
                if not deferred:  # the new mount: through its path below our own tmpfs
                    mp = f"{proc_fd_path(top)}/{os.path.basename(fd_real_path(tfd))}"
                    _sys.mount(None, mp, None, MS_BIND | MS_REMOUNT | bind_flags)
            if deferred:  # the last mount: one mount_setattr for them all (and the tmpfs) instead
                try:
                    _sys.mount_setattr(proc_fd_path(top), *_remount_attrs(bind_flags))
                except OSError:  # a kernel before 5.12, or flags it will not change: one by one
                    for _, tfd in todo:
                        mp = f"{proc_fd_path(top)}/{os.path.basename(fd_real_path(tfd))}"
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


def make_devices(root_fd, rootfs, linux, userns, dev_is_bind):
    """Device nodes and /dev's symlinks, each made relative to its directory's fd inside the
    root (mknodat/symlinkat: never through a path a rootfs writer could redirect)."""
    todo = [] if dev_is_bind else [(f"/dev/{n}", "c", ma, mi, 0o666, 0, 0) for n, ma, mi in _DEFAULT_DEVICES]
    for d in linux.get("devices") or ():
        todo.append((d["path"], d["type"], d.get("major", 0), d.get("minor", 0),
                     d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0)))
    for path, typ, major, minor, mode, uid, gid in todo:
        rel = _rel(path)
        parent, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            raise SetupError(f"device {path}: not a file name")
        pfd = mkdir_all_in_root(root_fd, parent or ".")
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
                    _sys.mount(path, proc_fd_path(tfd), None, MS_BIND)
                finally:
                    os.close(tfd)
        finally:
            os.close(pfd)
    dev = mkdir_all_in_root(root_fd, "/dev")
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


def mask_path(path):
    try:
        if os.path.isdir(path):
            _sys.mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            _sys.mount("/dev/null", path, None, MS_BIND)
    except FileNotFoundError:
        pass


def make_readonly(path):
    try:
        _sys.mount(path, path, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        return
    _sys.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | _locked_flags(path))

