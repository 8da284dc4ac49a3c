"""The Linux syscalls Python 3.11 does not wrap, through ``_ctypes`` (not ``ctypes``).

Every function raises ``OSError`` (errno set) like ``os`` does, so callers handle one
kind of failure; the syscall numbers are x86_64's and aarch64's.

``import ctypes`` costs ~2.5 ms here (the package defines every C type, imports
``struct`` and sets up byte-order variants): a tenth of a whole ``run``, on its
critical path. The few types and foreign functions below are made straight from the
``_ctypes`` extension, which is what ``ctypes`` does too; calls behave the same
(``ctypes`` objects made elsewhere, as ``cgroups.ebpf`` passes to ``_syscall``, work).
"""

import os

import _ctypes
from _ctypes import Structure, byref, get_errno, sizeof


def _simple(name: str, code: str):
    """A simple C type as ctypes defines it (a ``_SimpleCData`` subclass with its type code)."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code})


c_int, c_uint, c_long, c_ulong = _simple("c_int", "i"), _simple("c_uint", "I"), _simple("c_long", "l"), \
    _simple("c_ulong", "L")
c_char_p, c_void_p, c_short, c_char = _simple("c_char_p", "z"), _simple("c_void_p", "P"), \
    _simple("c_short", "h"), _simple("c_char", "c")


def array(ctype, n: int):
    """The type of an array of ``n`` ``ctype`` (ctypes' ``ctype * n``)."""
    return type(f"{ctype.__name__}_Array_{n}", (_ctypes.Array,), {"_type_": ctype, "_length_": n})


c_uint32, c_uint64, c_size_t = c_uint, c_ulong, c_ulong  # LP64 (x86_64, aarch64)


class _FuncPtr(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _FuncPtrGIL(_ctypes.CFuncPtr):  # called holding the GIL (what ctypes.pythonapi functions are)
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO | _ctypes.FUNCFLAG_PYTHONAPI
    _restype_ = c_int


class _Lib:  # what CFuncPtr((name, lib)) reads: the dlopen handle
    _handle = _ctypes.dlopen(None, os.RTLD_LOCAL)


def _func(name, argtypes=None, restype=None, gil=False):
    f = (_FuncPtrGIL if gil else _FuncPtr)((name, _Lib))
    if argtypes is not None:
        f.argtypes = argtypes
    if restype is not None:
        f.restype = restype
    return f


_M = os.uname().machine
if _M == "x86_64":
    SYS_pivot_root, SYS_capget, SYS_capset, SYS_mount_setattr = 155, 125, 126, 442
    SYS_keyctl, SYS_prlimit64, SYS_seccomp = 250, 302, 317
elif _M == "aarch64":
    SYS_pivot_root, SYS_capget, SYS_capset, SYS_mount_setattr = 41, 90, 91, 442
    SYS_keyctl, SYS_prlimit64, SYS_seccomp = 219, 261, 277
else:  # pragma: no cover - other architectures
    SYS_pivot_root = SYS_capget = SYS_capset = SYS_mount_setattr = SYS_keyctl = SYS_prlimit64 = SYS_seccomp = -1

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

SYS_clone3 = 435  # the same number on every architecture (the generic table's)
CLONE_INTO_CGROUP = 0x200000000
SIGCHLD = 17

MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
SYS_open_tree, SYS_move_mount = 428, 429  # the generic table's, as clone3
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x04, 0x40
MOUNT_ATTR_IDMAP = 0x00100000


def _check(ret, what, path=None):
    if ret < 0:
        e = get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}", path)
    return ret


_mount = _func("mount", (c_char_p, c_char_p, c_char_p, c_ulong, c_char_p))


def mount(source, target, fstype, flags=0, data=None):
    _check(_mount(source.encode() if source else None, target.encode(),
                  fstype.encode() if fstype else None, flags,
                  data.encode() if data else None), "mount", target)


_umount2 = _func("umount2", (c_char_p, c_int))


def umount2(target, flags=0):
    _check(_umount2(target.encode(), flags), "umount", target)


_unshare = _func("unshare", (c_int,))
_setns = _func("setns", (c_int, c_int))


def unshare(flags):
    _check(_unshare(flags), "unshare")


def setns(fd, nstype=0):
    _check(_setns(fd, nstype), "setns")


_syscall = _func("syscall", restype=c_long)


class c_ushort(_ctypes._SimpleCData):
    _type_ = "H"


class _SockFprog(Structure):  # struct sock_fprog
    _fields_ = [("len", c_ushort), ("filter", c_char_p)]


SECCOMP_SET_MODE_FILTER = 1


def seccomp_set_mode_filter(program, flags=0):
    """``seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)``: install the classic BPF filter
    ``program`` (struct sock_filter records, 8 bytes each), as libseccomp's ``seccomp_load`` does."""
    if not program or len(program) % 8 or len(program) // 8 > 4096:
        raise OSError(22, "seccomp: not a BPF program")
    prog = _SockFprog(len(program) // 8, program)
    _check(_syscall(c_long(SYS_seccomp), c_uint(SECCOMP_SET_MODE_FILTER), c_uint(flags), byref(prog)), "seccomp")


def pivot_root(new_root, put_old):
    _check(_syscall(c_long(SYS_pivot_root), c_char_p(new_root.encode()),
                    c_char_p(put_old.encode())), "pivot_root", new_root)


SYS_openat2 = 437  # the generic table's number, on x86_64 and aarch64 alike
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x08, 0x10


class _OpenHow(Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64), ("resolve", c_uint64)]


def openat2(dirfd, path, flags, resolve, mode=0):
    """openat2(2): ``path`` looked up from ``dirfd`` under ``resolve`` (RESOLVE_IN_ROOT: as if
    ``dirfd`` were ``/``, symlinks and ``..`` included — the lookup never leaves it); a fd.
    EAGAIN (a concurrent rename the kernel could not rule out) is retried a few times."""
    how = _OpenHow(flags, mode, resolve)
    p = c_char_p(os.fsencode(path))
    for _ in range(32):
        fd = _syscall(c_long(SYS_openat2), c_int(dirfd), p, byref(how), c_size_t(sizeof(how)))
        if fd >= 0:
            return fd
        e = get_errno()
        if e != 11:  # EAGAIN
            break
    raise OSError(e, os.strerror(e), path)


class _MountAttr(Structure):
    _fields_ = [("attr_set", c_uint64), ("attr_clr", c_uint64),
                ("propagation", c_uint64), ("userns_fd", c_uint64)]


def mount_setattr(path, attr_set, attr_clr, recursive=True, dirfd=AT_FDCWD, userns_fd=0):
    """mount_setattr(2) on ``path`` (``""`` with ``dirfd``: that fd's mount); ``userns_fd``
    with ``MOUNT_ATTR_IDMAP``: the ids of the user namespace it names (a detached mount only)."""
    a = _MountAttr(attr_set, attr_clr, 0, userns_fd)
    flags = (AT_RECURSIVE if recursive else 0) | (0 if path else AT_EMPTY_PATH)
    _check(_syscall(c_long(SYS_mount_setattr), c_int(dirfd),
                    c_char_p(path.encode()), c_uint(flags),
                    byref(a), c_size_t(sizeof(a))), "mount_setattr", path)


def open_tree(path, recursive=True, dirfd=AT_FDCWD):
    """open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at ``path`` (its
    submounts too when ``recursive``), as a close-on-exec fd that move_mount attaches."""
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0) | (0 if path else AT_EMPTY_PATH)
    return _check(_syscall(c_long(SYS_open_tree), c_int(dirfd), c_char_p(os.fsencode(path)), c_uint(flags)),
                  "open_tree", path)


def move_mount(from_fd, to_fd, to_path=""):
    """move_mount(2): the (detached) mount ``from_fd`` onto ``to_path`` from ``to_fd`` (the fd
    itself when ``to_path`` is empty)."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | (0 if to_path else MOVE_MOUNT_T_EMPTY_PATH)
    _check(_syscall(c_long(SYS_move_mount), c_int(from_fd), c_char_p(b""), c_int(to_fd),
                    c_char_p(os.fsencode(to_path)), c_uint(flags)), "move_mount", to_path or None)


_prctl = _func("prctl", (c_int, c_ulong, c_ulong, c_ulong, c_ulong))


def prctl(option, a2=0, a3=0, a4=0, a5=0):
    return _check(_prctl(option, a2, a3, a4, a5), "prctl")


def sethostname(name):
    b = name.encode()
    _check(_func("sethostname")(c_char_p(b), c_size_t(len(b))), "sethostname")


def setdomainname(name):
    b = name.encode()
    _check(_func("setdomainname")(c_char_p(b), c_size_t(len(b))), "setdomainname")


class _CapHeader(Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32),
                ("inheritable", c_uint32)]


_CAP_V3 = 0x20080522


def capset(effective, permitted, inheritable):
    """Set this thread's three capability sets (bit masks of capability numbers)."""
    h = _CapHeader(_CAP_V3, 0)
    d = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        d[i].effective = (effective >> shift) & 0xFFFFFFFF
        d[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        d[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(c_long(SYS_capset), byref(h), byref(d)), "capset")


def join_session_keyring(name):
    """A new session keyring for the container (keyctl JOIN_SESSION_KEYRING); ENOSYS is fine."""
    ret = _syscall(c_long(SYS_keyctl), c_int(1), c_char_p(name.encode()))
    if ret < 0 and get_errno() != 38:
        _check(ret, "keyctl(JOIN_SESSION_KEYRING)")


class _Rlimit(Structure):
    _fields_ = [("cur", c_uint64), ("max", c_uint64)]


def setrlimit(resource, soft, hard):
    """prlimit64(0, resource, {soft, hard}) — ``resource.setrlimit`` without importing ``resource``
    (its numbers are the same on every Linux architecture: the order of ``spec.RLIMITS``).
    ValueError as ``resource.setrlimit`` raises it; -1 is unlimited."""
    lim = _Rlimit(soft & 0xFFFFFFFFFFFFFFFF, hard & 0xFFFFFFFFFFFFFFFF)
    if _syscall(c_long(SYS_prlimit64), c_int(0), c_int(resource), byref(lim), c_ulong(0)) < 0:
        e = get_errno()
        if e == 22:
            raise ValueError("current limit exceeds maximum limit")
        if e == 1:
            raise ValueError("not allowed to raise maximum limit")
        _check(-1, "setrlimit")


class _CloneArgs(Structure):
    _fields_ = [(name, c_uint64) for name in ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal",
                                             "stack", "stack_size", "tls", "set_tid", "set_tid_size",
                                             "cgroup")]


_clone3 = _func("syscall", restype=c_long, gil=True)  # fork() as os.fork calls it: holding the GIL
_before_fork = _func("PyOS_BeforeFork", (), restype=None, gil=True)
_after_fork_parent = _func("PyOS_AfterFork_Parent", (), restype=None, gil=True)
_after_fork_child = _func("PyOS_AfterFork_Child", (), restype=None, gil=True)


def fork_into_cgroup(cgroup_fd):
    """``os.fork()`` whose child starts in the cgroup v2 directory open at ``cgroup_fd``
    (clone3 with CLONE_INTO_CGROUP, Linux 5.7).

    Moving a process in later (a write to cgroup.procs) takes the kernel's global
    cgroup_threadgroup_rwsem for writing, and the first writer after a quiet spell waits for
    an RCU grace period: 5-20 ms on this machine, the largest single cost of starting a
    container. A child born in its cgroup takes that lock for reading only.

    Done the way os.fork does it (the interpreter's fork hooks around the call, which is
    made holding the GIL). The caller must be single-threaded: unlike glibc's fork(), the
    raw syscall does not take libc's internal locks first. OSError (ENOSYS on old kernels)
    when the kernel cannot; nothing was forked then."""
    return _clone3_fork(CLONE_INTO_CGROUP, cgroup_fd)


def fork_in_new_namespaces(flags):
    """``os.fork()`` whose child starts in new namespaces (clone3's ``CLONE_NEW*`` ``flags``: in
    a new pid namespace it is pid 1), the caller staying in its own. What ``unshare`` then a fork
    then a ``setns`` back does, for a caller that may not join its own namespaces again (a
    rootless runtime: the host's pid namespace is not its user namespace's). Done as
    :func:`fork_into_cgroup`, with the same rule: the caller must be single-threaded."""
    return _clone3_fork(flags, 0)


def _clone3_fork(flags, cgroup_fd):
    args = _CloneArgs(flags, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, cgroup_fd)
    _before_fork()
    pid = _clone3(c_long(SYS_clone3), byref(args), c_size_t(sizeof(args)))
    if pid == 0:
        _after_fork_child()
        return 0
    err = get_errno()
    _after_fork_parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


# -- inotify: a wait on a directory's changes (conmon's exit files) instead of polling -----------

IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200

_inotify_init1 = _func("inotify_init1", (c_int,))
_inotify_add_watch = _func("inotify_add_watch", (c_int, c_char_p, c_uint))


def inotify_init1(flags=0):
    """An inotify fd (``flags``: ``os.O_CLOEXEC``, ``os.O_NONBLOCK``); read it for events."""
    return _check(_inotify_init1(flags), "inotify_init1")


def inotify_add_watch(fd, path, mask):
    return _check(_inotify_add_watch(fd, os.fsencode(path), mask), "inotify_add_watch", path)
