"""``linux.seccomp`` through libseccomp (the PyPI package ``pyseccomp``, ctypes on libseccomp2).

``check`` is pure (the names of actions, operators, architectures and flags); ``build``
makes the libseccomp filter in the container's init before the root changes (libseccomp
is loaded from the host); ``load`` installs it as the last step before ``execve`` — or,
without ``noNewPrivileges``, before the capabilities are dropped (loading a filter then
needs CAP_SYS_ADMIN), as runc does.

As runc: syscall names libseccomp does not know are skipped (profiles list syscalls of
newer kernels), and rules whose action is the default action are skipped (libseccomp
refuses them). What libseccomp 2.5 cannot do is refused: the notify action and
``listenerPath`` (a seccomp agent), ``SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV``.

The compiled filter is cached (:func:`prepare`): making it (importing pyseccomp and ``ctypes``,
~400 rules through ctypes, libseccomp's BPF generation) cost ~30 ms of CPU in every
container's init with containers-common's profile. libseccomp's program for a profile is
exported once (``seccomp_export_bpf``, the bytes ``seccomp_load`` installs) into
:data:`CACHE_DIR`, named by the SHA-256 of everything it depends on: the profile, this
module's source, the libseccomp library file (its identity: an upgrade is another file), the
machine and the kernel release. A later container with the same profile installs those bytes
with the ``seccomp`` syscall and the flags libseccomp would pass (``load``); a directory or
file not owned by this user, writable by others, or a program of the wrong shape is not
used (libseccomp builds the filter as before).
"""

import os

from ..errors import InvalidDocument, OCIRuntimeError
from .fields import json_type

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32", "SCMP_ARCH_ARM": "ARM",
    "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64",
    "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64",
}
#: flag -> libseccomp attribute (pyseccomp.Attr), None when libseccomp 2.5 cannot set it
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC", "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": None}

EPERM = 1
_F = "config.json: linux.seccomp"

#: the programs libseccomp made, by key (root's: /run is a tmpfs, emptied at boot)
CACHE_DIR = "/run/pallet-runtime-seccomp"
#: the seccomp() flags libseccomp 2.5 passes for the spec's flags (linux/seccomp.h)
FLAG_BITS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
_LIBSECCOMP = tuple(f"{d}/libseccomp.so.2" for d in (
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
    "/lib64", "/usr/lib64", "/lib", "/usr/lib"))


def _bad(field, problem):
    raise InvalidDocument(f"{_F}{field}: {problem}")


def check(profile):
    """Refuse a ``linux.seccomp`` that breaks the spec or asks for what we cannot do."""
    def typ(v, t, field, what):
        if v is not None and (not isinstance(v, t) or (t is int and isinstance(v, bool))):
            _bad(field, f"must be {what}, not {json_type(v)}")
        return v

    if not isinstance(profile, dict):
        _bad("", f"must be an object, not {json_type(profile)}")
    da = typ(profile.get("defaultAction"), str, ".defaultAction", "a string")
    if da is None:
        _bad(".defaultAction", "is required")
    if da not in ACTIONS:
        _bad(".defaultAction", f"unknown action {da!r}")
    if da == "SCMP_ACT_NOTIFY":
        _bad(".defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    typ(profile.get("defaultErrnoRet"), int, ".defaultErrnoRet", "an integer")
    for i, a in enumerate(typ(profile.get("architectures"), list, ".architectures", "an array") or ()):
        if a not in ARCHES:
            _bad(f".architectures[{i}]", f"unknown architecture {a!r}")
    for i, fl in enumerate(typ(profile.get("flags"), list, ".flags", "an array") or ()):
        if fl not in FLAGS:
            _bad(f".flags[{i}]", f"unknown flag {fl!r}")
        if FLAGS[fl] is None:
            _bad(f".flags[{i}]", f"{fl} is not supported by this libseccomp (2.5)")
    if profile.get("listenerPath") or profile.get("listenerMetadata"):
        _bad(".listenerPath", "seccomp agents (SCMP_ACT_NOTIFY) are not supported by pallet-runtime")
    for i, r in enumerate(typ(profile.get("syscalls"), list, ".syscalls", "an array") or ()):
        f = f".syscalls[{i}]"
        typ(r, dict, f, "an object")
        names = typ(r.get("names"), list, f + ".names", "an array")
        if not names:
            _bad(f + ".names", "must name at least one syscall")
        for j, n in enumerate(names):
            typ(n, str, f"{f}.names[{j}]", "a string")
        act = typ(r.get("action"), str, f + ".action", "a string")
        if act not in ACTIONS:
            _bad(f + ".action", f"unknown action {act!r}")
        if act == "SCMP_ACT_NOTIFY":
            _bad(f + ".action", "SCMP_ACT_NOTIFY (a seccomp agent) is not supported by pallet-runtime")
        typ(r.get("errnoRet"), int, f + ".errnoRet", "an integer")
        for j, a in enumerate(typ(r.get("args"), list, f + ".args", "an array") or ()):
            g = f"{f}.args[{j}]"
            typ(a, dict, g, "an object")
            idx = typ(a.get("index"), int, g + ".index", "an integer")
            if idx is None or not 0 <= idx <= 5:
                _bad(g + ".index", "must be 0..5")
            if typ(a.get("value"), int, g + ".value", "an integer") is None:
                _bad(g + ".value", "is required")
            typ(a.get("valueTwo"), int, g + ".valueTwo", "an integer")
            if a.get("op") not in OPS:
                _bad(g + ".op", f"unknown operator {a.get('op')!r}")


def _lib():
    """pyseccomp, imported without ``ctypes.util``'s ldconfig (``_std.ctypes_util``: ~20 ms)."""
    from .._std.ctypes_util import import_with

    try:
        return import_with("pyseccomp")
    except ImportError:
        raise OCIRuntimeError("linux.seccomp: the pyseccomp package is missing (pip install pyseccomp)") from None
    except OSError as e:
        raise OCIRuntimeError(f"linux.seccomp: cannot load libseccomp ({e}): apt-get install libseccomp2") from None


def _action(lib, name, errno_ret):
    if name == "SCMP_ACT_ERRNO":
        return lib.ERRNO(EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return lib.TRACE(EPERM if errno_ret is None else errno_ret)
    return {"SCMP_ACT_KILL": lib.KILL_THREAD, "SCMP_ACT_KILL_THREAD": lib.KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": lib.KILL_PROCESS, "SCMP_ACT_TRAP": lib.TRAP, "SCMP_ACT_ALLOW": lib.ALLOW,
            "SCMP_ACT_LOG": lib.LOG}[name]


def build(profile):
    """The libseccomp filter for ``s`` (checked), ready to load."""
    lib = _lib()
    default = _action(lib, profile["defaultAction"], profile.get("defaultErrnoRet"))
    try:
        filt = lib.SyscallFilter(default)
        for a in profile.get("architectures") or ():
            try:
                filt.add_arch(getattr(lib.Arch, ARCHES[a]))
            except OSError as e:
                if e.errno != 17:  # EEXIST: the native one
                    raise OCIRuntimeError(f"linux.seccomp.architectures: {a}: {e.strerror}") from None
        for fl in profile.get("flags") or ():
            filt.set_attr(getattr(lib.Attr, FLAGS[fl]), 1)
        filt.set_attr(lib.Attr.CTL_NNP, 0)  # no_new_privs is the spec's to decide, set by init
    except OSError as e:
        raise OCIRuntimeError(f"linux.seccomp: {e.strerror}") from None
    for i, r in enumerate(profile.get("syscalls") or ()):
        act = _action(lib, r["action"], r.get("errnoRet"))
        if act == default:
            continue
        args = r.get("args") or ()
        conds = [lib.Arg(a["index"], OPS[a["op"]], a["value"] & (2**64 - 1), (a.get("valueTwo") or 0) & (2**64 - 1))
                 for a in args]
        # libseccomp wants one comparison per argument in a rule: the same index twice means
        # several rules (either matches), as runc does
        groups = [conds] if len({a["index"] for a in args}) == len(args) else [[c] for c in conds]
        for name in r["names"]:
            try:
                nr = lib.resolve_syscall(lib.Arch.NATIVE, name)
            except (OSError, ValueError):
                continue  # unknown to this libseccomp/arch: skipped, as runc
            if nr == -1:  # __NR_SCMP_ERROR (other negative numbers are libseccomp's multiplexed calls)
                continue
            for g in groups:
                try:
                    filt.add_rule(act, nr, *g)
                except OSError as e:
                    raise OCIRuntimeError(f"linux.seccomp.syscalls[{i}] ({name}): {e.strerror}") from None
    return filt


def _key(profile):
    """The cache's name for ``profile``'s program, or None (no libseccomp file found)."""
    from .._std.json import dumps
    from ..oci.digest import hasher

    for lib in _LIBSECCOMP:
        try:
            st = os.stat(lib)
            break
        except OSError:
            continue
    else:
        return None
    me = os.stat(__file__)
    u = os.uname()
    text = dumps([1, profile, [lib, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns],
                  [me.st_size, me.st_mtime_ns], u.machine, u.release], sort_keys=True, separators=(",", ":"))
    h = hasher("sha256", len(text))  # the C sha256, not OpenSSL's (~3 ms to load)
    h.update(text.encode())
    return h.hexdigest()


def _cache_dir(create=False):
    """An fd of :data:`CACHE_DIR` when it is ours and not writable by others, else None."""
    try:
        if create:
            os.makedirs(CACHE_DIR, 0o700, exist_ok=True)
        fd = os.open(CACHE_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    return fd


def _cached(key):
    dfd = _cache_dir()
    if dfd is None:
        return None
    try:
        fd = os.open(key + ".bpf", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not 0 < st.st_size <= 4096 * 8 \
                    or st.st_size % 8 or (st.st_mode & 0o170000) != 0o100000:
                return None
            data = os.read(fd, st.st_size + 1)
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    return data if len(data) == st.st_size else None


def _store(key, seccomp_filter):
    dfd = _cache_dir(create=True)
    if dfd is None:
        return
    tmp = f"{key}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            seccomp_filter.export_bpf(f)
        os.rename(tmp, key + ".bpf", src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
    finally:
        os.close(dfd)


def prepare(profile):
    """The filter for ``profile`` (checked), ready for :func:`load`: libseccomp's program from
    the cache (bytes), or else libseccomp's filter, whose program is then cached."""
    key = _key(profile)
    program = _cached(key) if key else None
    if program is not None:
        return program
    seccomp_filter = build(profile)
    if key:
        _store(key, seccomp_filter)
    return seccomp_filter


def load(seccomp_filter, profile, no_new_privs):
    try:
        if isinstance(seccomp_filter, bytes):  # libseccomp's program, cached: installed as seccomp_load does
            from .._std import syscalls as _sys

            _sys.seccomp_set_mode_filter(seccomp_filter, sum(FLAG_BITS[f] for f in profile.get("flags") or ()))
        else:
            seccomp_filter.load()
    except OSError as e:
        hint = "" if no_new_privs else " (without noNewPrivileges loading a filter needs CAP_SYS_ADMIN)"
        raise OCIRuntimeError(f"linux.seccomp: loading the filter: {e.strerror}{hint}") from None
