"""The Linux syscalls Python 3.11 does not wrap, through ctypes.

Every function raises ``OSError`` (errno set) like ``os`` does, so callers handle one
kind of failure; the syscall numbers are x86_64's and aarch64's.
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

_M = os.uname().machine
if _M == "x86_64":
    SYS_pivot_root, SYS_capget, SYS_capset, SYS_mount_setattr = 155, 125, 126, 442
    SYS_keyctl = 250
elif _M == "aarch64":
    SYS_pivot_root, SYS_capget, SYS_capset, SYS_mount_setattr = 41, 90, 91, 442
    SYS_keyctl = 219
else:  # pragma: no cover - other architectures
    SYS_pivot_root = SYS_capget = SYS_capset = SYS_mount_setattr = SYS_keyctl = -1

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

MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000


def _check(ret, what, path=None):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}", path)
    return ret


_mount = _libc.mount
_mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)


def mount(source, target, fstype, flags=0, data=None):
    _check(_mount(source.encode() if source else None, target.encode(),
                  fstype.encode() if fstype else None, flags,
                  data.encode() if data else None), "mount", target)


_umount2 = _libc.umount2
_umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def umount2(target, flags=0):
    _check(_umount2(target.encode(), flags), "umount", target)


def unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd, nstype=0):
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


_syscall = _libc.syscall


def pivot_root(new_root, put_old):
    _check(_syscall(ctypes.c_long(SYS_pivot_root), ctypes.c_char_p(new_root.encode()),
                    ctypes.c_char_p(put_old.encode())), "pivot_root", new_root)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path, attr_set, attr_clr, recursive=True):
    a = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_syscall(ctypes.c_long(SYS_mount_setattr), ctypes.c_int(AT_FDCWD),
                    ctypes.c_char_p(path.encode()), ctypes.c_uint(AT_RECURSIVE if recursive else 0),
                    ctypes.byref(a), ctypes.c_size_t(ctypes.sizeof(a))), "mount_setattr", path)


_prctl = _libc.prctl
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


def prctl(option, a2=0, a3=0, a4=0, a5=0):
    return _check(_prctl(option, a2, a3, a4, a5), "prctl")


def sethostname(name):
    b = name.encode()
    _check(_libc.sethostname(ctypes.c_char_p(b), ctypes.c_size_t(len(b))), "sethostname")


def setdomainname(name):
    b = name.encode()
    _check(_libc.setdomainname(ctypes.c_char_p(b), ctypes.c_size_t(len(b))), "setdomainname")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


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
    _check(_syscall(ctypes.c_long(SYS_capset), ctypes.byref(h), ctypes.byref(d)), "capset")


def join_session_keyring(name):
    """A new session keyring for the container (keyctl JOIN_SESSION_KEYRING); ENOSYS is fine."""
    ret = _syscall(ctypes.c_long(SYS_keyctl), ctypes.c_int(1), ctypes.c_char_p(name.encode()))
    if ret < 0 and ctypes.get_errno() != 38:
        _check(ret, "keyctl(JOIN_SESSION_KEYRING)")
