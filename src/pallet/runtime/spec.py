"""The runtime ``config.json``: loading, validation, mount options (the default one comes from
``oci.runtime_spec``, the one generator of configs).

Pure (no I/O but reading the file). The config stays the plain dict the JSON parser
made: a model of dataclasses would cost start-up time on every ``run`` for nothing
the code below cannot check directly. :func:`validate` refuses everything that
breaks the runtime-spec *before* anything is created, naming the field
(``config.json: linux.namespaces[2].type: unknown namespace type "foo"``).
"""

from ..errors import InvalidDocument
from .caps import NUMBERS as CAP_NUMBERS
from .fields import bad, check_abspath, check_strings, check_strlist, check_type, check_uint, json_type

OCI_VERSION = "1.0.2-dev"

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

#: clone flag of each namespace type
CLONE_FLAGS = {
    "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
    "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080,
}

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

RLIMITS = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)

# mount(2) flags
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 16, 32, 64, 128
MS_NOSYMFOLLOW, MS_NOATIME, MS_NODIRATIME, MS_BIND = 256, 1024, 2048, 4096
MS_MOVE, MS_REC, MS_SILENT, MS_POSIXACL = 8192, 16384, 32768, 1 << 16
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 1 << 21, 1 << 23, 1 << 24, 1 << 25

#: option -> (clears the flag?, flag), as mount(8) and runc read them
MOUNT_FLAGS = {
    "acl": (False, MS_POSIXACL), "noacl": (True, MS_POSIXACL),
    "async": (True, MS_SYNCHRONOUS), "sync": (False, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME), "noatime": (False, MS_NOATIME),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV), "nodev": (False, MS_NODEV),
    "diratime": (True, MS_NODIRATIME), "nodiratime": (False, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC),
    "iversion": (False, MS_I_VERSION), "noiversion": (True, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "loud": (True, MS_SILENT), "silent": (False, MS_SILENT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID),
    "symfollow": (True, MS_NOSYMFOLLOW), "nosymfollow": (False, MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

# mount_setattr(2) attributes, for the recursive options (rro, rnosuid...)
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV, ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME, ATTR__ATIME = 0x0, 0x10, 0x20, 0x70
ATTR_NODIRATIME, ATTR_NOSYMFOLLOW = 0x80, 0x200000

#: option -> (clears?, attribute)
REC_ATTRS = {
    "rro": (False, ATTR_RDONLY), "rrw": (True, ATTR_RDONLY),
    "rnosuid": (False, ATTR_NOSUID), "rsuid": (True, ATTR_NOSUID),
    "rnodev": (False, ATTR_NODEV), "rdev": (True, ATTR_NODEV),
    "rnoexec": (False, ATTR_NOEXEC), "rexec": (True, ATTR_NOEXEC),
    "rnodiratime": (False, ATTR_NODIRATIME), "rdiratime": (True, ATTR_NODIRATIME),
    "rrelatime": (False, ATTR_RELATIME), "rnorelatime": (True, ATTR_RELATIME),
    "rnoatime": (False, ATTR_NOATIME), "ratime": (True, ATTR_NOATIME),
    "rstrictatime": (False, ATTR_STRICTATIME), "rnostrictatime": (True, ATTR_STRICTATIME),
    "rnosymfollow": (False, ATTR_NOSYMFOLLOW), "rsymfollow": (True, ATTR_NOSYMFOLLOW),
}

#: runc's own extensions
EXTENSIONS = ("tmpcopyup",)

ROOTFS_PROPAGATION = ("private", "rprivate", "slave", "rslave", "shared", "rshared",
                      "unbindable", "runbindable")


def parse_mount_options(options):
    """``(flags, propagation flags, (attr set, attr clear), data string, extensions)``."""
    flags = 0
    prop = []
    aset = aclr = 0
    data = []
    ext = []
    for o in options:
        f = MOUNT_FLAGS.get(o)
        if f is not None:
            if f[0]:
                flags &= ~f[1]
            else:
                flags |= f[1]
            continue
        p = PROPAGATION.get(o)
        if p is not None:
            prop.append(p)
            continue
        r = REC_ATTRS.get(o)
        if r is not None:
            if r[0]:
                aclr |= r[1] or ATTR__ATIME
                aset &= ~r[1]
            else:
                aset |= r[1]
                aclr &= ~r[1]
                if r[1] in (ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME):
                    aclr |= ATTR__ATIME
            continue
        if o in EXTENSIONS:
            ext.append(o)
            continue
        data.append(o)
    return flags, prop, (aset, aclr), ",".join(data), ext


# ---------------------------------------------------------------- the default spec

def default_spec(rootless=False, uid=0, gid=0):
    """What ``runc spec`` writes (``--rootless``: a user namespace mapping uid/gid), from the one
    runtime-spec generator, ``oci.runtime_spec`` (imported here only: run/create never load it)."""
    from ..oci.runtime_spec import default_config

    return default_config(rootless, uid, gid)


# ---------------------------------------------------------------- loading and validation

def load(bundle):
    """Read and validate ``BUNDLE/config.json``; returns the dict."""
    from .._std import json as _json

    path = bundle.rstrip("/") + "/config.json"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidDocument(f"{path}: no such file (is {bundle!r} an OCI bundle?)") from None
    except OSError as e:
        raise InvalidDocument(f"{path}: {e.strerror}") from None
    try:
        config = _json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidDocument(f"{path}: not JSON: {e}") from None
    validate(config)
    return config


def validate(config):
    """Refuse a config that breaks the runtime-spec (or asks for what we cannot do)."""
    if not isinstance(config, dict):
        bad("(document)", f"must be an object, not {json_type(config)}")
    check_strings(config)
    v = check_type(config.get("ociVersion"), str, "ociVersion", True)
    parts = v.split("-", 1)[0].split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] != "1":
        bad("ociVersion", f"{v!r} is not a runtime-spec 1.x version")
    root = check_type(config.get("root"), dict, "root", True)
    p = check_type(root.get("path"), str, "root.path", True)
    if not p:
        bad("root.path", "must not be empty")
    check_type(root.get("readonly"), bool, "root.readonly")
    check_type(config.get("hostname"), str, "hostname")
    check_type(config.get("domainname"), str, "domainname")
    check_type(config.get("annotations"), dict, "annotations")
    for k, v in (config.get("annotations") or {}).items():
        check_type(v, str, f"annotations.{k}", True)
    if config.get("process") is not None:  # optional at create; start refuses to run nothing
        validate_process(check_type(config.get("process"), dict, "process"))
    linux = check_type(config.get("linux"), dict, "linux") or {}
    userns = any(isinstance(n, dict) and n.get("type") == "user"
                 for n in check_type(linux.get("namespaces"), list, "linux.namespaces") or ())
    for i, m in enumerate(check_type(config.get("mounts"), list, "mounts") or ()):
        _validate_mount(m, f"mounts[{i}]", userns)
    hooks = check_type(config.get("hooks"), dict, "hooks")
    for name, lst in (hooks or {}).items():
        if name not in HOOKS:
            bad(f"hooks.{name}", f"unknown hook (known: {', '.join(HOOKS)})")
        for i, h in enumerate(check_type(lst, list, f"hooks.{name}") or ()):
            f = f"hooks.{name}[{i}]"
            check_type(h, dict, f, True)
            check_abspath(h.get("path"), f + ".path", True)
            check_strlist(h.get("args"), f + ".args")
            check_strlist(h.get("env"), f + ".env")
            t = check_type(h.get("timeout"), int, f + ".timeout")
            if t is not None and t <= 0:
                bad(f + ".timeout", "must be greater than zero")
    _validate_linux(check_type(config.get("linux"), dict, "linux") or {}, config)
    for key in ("solaris", "windows", "vm", "zos"):
        if config.get(key) is not None:
            bad(key, "is not for Linux")


def validate_process(process):
    check_type(process.get("terminal"), bool, "process.terminal")
    cs = check_type(process.get("consoleSize"), dict, "process.consoleSize")
    if cs is not None:
        check_uint(cs.get("height"), "process.consoleSize.height", True)
        check_uint(cs.get("width"), "process.consoleSize.width", True)
    args = check_strlist(process.get("args"), "process.args", True)
    if not args:
        bad("process.args", "must name the program to run")
    for i, e in enumerate(check_strlist(process.get("env"), "process.env") or ()):
        if "=" not in e:
            bad(f"process.env[{i}]", f"{e!r} is not KEY=VALUE")
    check_abspath(process.get("cwd"), "process.cwd", True)
    u = check_type(process.get("user"), dict, "process.user", True)
    check_uint(u.get("uid"), "process.user.uid", True)
    check_uint(u.get("gid"), "process.user.gid", True)
    check_uint(u.get("umask"), "process.user.umask")
    for i, g in enumerate(check_type(u.get("additionalGids"), list, "process.user.additionalGids") or ()):
        check_uint(g, f"process.user.additionalGids[{i}]", True)
    check_type(u.get("username"), str, "process.user.username")
    caps = check_type(process.get("capabilities"), dict, "process.capabilities")
    for s, lst in (caps or {}).items():
        if s not in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            bad(f"process.capabilities.{s}", "unknown capability set")
        for i, name in enumerate(check_strlist(lst, f"process.capabilities.{s}") or ()):
            if name not in CAP_NUMBERS:
                bad(f"process.capabilities.{s}[{i}]", f"unknown capability {name!r}")
    seen = set()
    for i, r in enumerate(check_type(process.get("rlimits"), list, "process.rlimits") or ()):
        f = f"process.rlimits[{i}]"
        check_type(r, dict, f, True)
        typ = check_type(r.get("type"), str, f + ".type", True)
        if typ not in RLIMITS:
            bad(f + ".type", f"unknown rlimit {typ!r}")
        if typ in seen:
            bad(f + ".type", f"{typ} is set twice")
        seen.add(typ)
        soft = check_uint(r.get("soft"), f + ".soft", True, 64)
        hard = check_uint(r.get("hard"), f + ".hard", True, 64)
        if soft > hard:
            bad(f + ".soft", f"soft limit {soft} is above the hard limit {hard}")
    check_type(process.get("noNewPrivileges"), bool, "process.noNewPrivileges")
    adj = check_type(process.get("oomScoreAdj"), int, "process.oomScoreAdj")
    if adj is not None and not -1000 <= adj <= 1000:
        bad("process.oomScoreAdj", f"{adj} is outside -1000..1000")
    if check_type(process.get("apparmorProfile"), str, "process.apparmorProfile"):
        bad("process.apparmorProfile", "AppArmor is not available on this host")
    if check_type(process.get("selinuxLabel"), str, "process.selinuxLabel"):
        bad("process.selinuxLabel", "SELinux is not available on this host")
    for key in ("ioPriority", "scheduler", "execCPUAffinity"):
        if process.get(key) is not None:
            bad(f"process.{key}", "is not supported by pallet-runtime yet")


#: what may be mounted inside /proc (runc's checkProcMount: lxcfs's files, CVE-2019-16884/19921)
PROC_MOUNTS_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                       "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                       "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled")


def clean_path(path):
    """``path`` made absolute and lexically clean (``.``, ``..``, double slashes), as Go's
    filepath.Clean("/" + path)."""
    out = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    return "/" + "/".join(out)


def check_proc_destination(dest, typ, is_bind, field):
    """Refuse a mount inside /proc but for ``proc`` on /proc itself (or a bind there, whose
    source the runtime checks is a procfs root) and runc's list of files lxcfs emulates."""
    d = clean_path(dest)
    if d == "/proc":
        if typ == "proc" or is_bind:
            return
        bad(field, f"{dest!r}: only a proc filesystem may be mounted on /proc, not {typ or 'this'!r}")
    if d.startswith("/proc/") and d not in PROC_MOUNTS_ALLOWED:
        bad(field, f"{dest!r} is inside /proc: refused (only {', '.join(PROC_MOUNTS_ALLOWED)})")


def _validate_mount(m, f, userns=False):
    check_type(m, dict, f, True)
    check_abspath(m.get("destination"), f + ".destination", True)
    typ = check_type(m.get("type"), str, f + ".type")
    check_type(m.get("source"), str, f + ".source")
    opts = check_strlist(m.get("options"), f + ".options") or ()
    for i, o in enumerate(opts):
        if not o or o != o.strip() or "," in o:
            bad(f"{f}.options[{i}]", f"bad mount option {o!r}")
    flags, _prop, _attrs, data, _ext = parse_mount_options(opts)
    if flags & MS_BIND or typ == "bind":  # filesystem options are the kernel's to ignore, as with runc
        if not m.get("source"):
            bad(f + ".source", "a bind mount needs a source")
    elif not typ:
        bad(f + ".type", "is required for a mount that is not a bind mount")
    check_proc_destination(m["destination"], typ, bool(flags & MS_BIND or typ == "bind"), f + ".destination")
    uid = _mappings(m.get("uidMappings"), f + ".uidMappings")
    gid = _mappings(m.get("gidMappings"), f + ".gidMappings")
    if uid or gid:  # an id-mapped bind mount (runtime-spec 1.1), as crun makes it
        if not (uid and gid):
            bad(f + ".uidMappings", "an id-mapped mount needs both uidMappings and gidMappings")
        if not (flags & MS_BIND or typ == "bind"):
            bad(f + ".uidMappings", "only bind mounts can be id-mapped by pallet-runtime")
        if not userns:
            bad(f + ".uidMappings", "id-mapped mounts need a user namespace with pallet-runtime (its source is "
                                    "cloned and mapped before the namespace is made)")


def _mappings(lst, f):
    for i, m in enumerate(check_type(lst, list, f) or ()):
        g = f"{f}[{i}]"
        check_type(m, dict, g, True)
        check_uint(m.get("containerID"), g + ".containerID", True)
        check_uint(m.get("hostID"), g + ".hostID", True)
        size = check_uint(m.get("size"), g + ".size", True)
        if size == 0:
            bad(g + ".size", "must not be zero")
    return lst


_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _validate_linux(lx, c):
    types = {}
    for i, ns in enumerate(check_type(lx.get("namespaces"), list, "linux.namespaces") or ()):
        f = f"linux.namespaces[{i}]"
        check_type(ns, dict, f, True)
        t = check_type(ns.get("type"), str, f + ".type", True)
        if t not in NAMESPACES:
            bad(f + ".type", f"unknown namespace type {t!r} (known: {', '.join(NAMESPACES)})")
        if t in types:
            bad(f + ".type", f"namespace {t!r} is listed twice")
        path = check_abspath(ns.get("path"), f + ".path")
        types[t] = path
    uid = _mappings(lx.get("uidMappings"), "linux.uidMappings")
    gid = _mappings(lx.get("gidMappings"), "linux.gidMappings")
    if (uid or gid) and "user" not in types:
        bad("linux.uidMappings", "id mappings need a user namespace")
    if "user" in types and types["user"] is None and not (uid and gid):
        bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    if c.get("hostname") and "uts" not in types:
        bad("hostname", "setting the hostname needs a private uts namespace")
    if c.get("domainname") and "uts" not in types:
        bad("domainname", "setting the domainname needs a private uts namespace")
    for i, d in enumerate(check_type(lx.get("devices"), list, "linux.devices") or ()):
        f = f"linux.devices[{i}]"
        check_type(d, dict, f, True)
        check_abspath(d.get("path"), f + ".path", True)
        t = check_type(d.get("type"), str, f + ".type", True)
        if t not in ("c", "b", "u", "p"):
            bad(f + ".type", f"unknown device type {t!r} (c, b, u or p)")
        check_type(d.get("major"), int, f + ".major", t != "p")
        check_type(d.get("minor"), int, f + ".minor", t != "p")
        check_uint(d.get("fileMode"), f + ".fileMode")
        check_uint(d.get("uid"), f + ".uid")
        check_uint(d.get("gid"), f + ".gid")
    sysctl = check_type(lx.get("sysctl"), dict, "linux.sysctl") or {}
    for k, v in sysctl.items():
        f = f"linux.sysctl.{k}"
        check_type(v, str, f, True)
        if k.startswith("net."):
            if "network" not in types:
                bad(f, "needs a private network namespace")
        elif k in _SYSCTL_IPC or k.startswith("fs.mqueue."):
            if "ipc" not in types:
                bad(f, "needs a private ipc namespace")
        elif k in ("kernel.hostname", "kernel.domainname"):
            bad(f, "set hostname/domainname in config.json instead")
        else:
            bad(f, "is not namespaced: it would change the host")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(check_strlist(lx.get(key), f"linux.{key}") or ()):
            check_abspath(path, f"linux.{key}[{i}]")
    prop = check_type(lx.get("rootfsPropagation"), str, "linux.rootfsPropagation")
    if prop is not None and prop not in ROOTFS_PROPAGATION:
        bad("linux.rootfsPropagation", f"unknown propagation {prop!r}")
    if "mount" not in types:  # the container shares the host's mount namespace (chroot, as runc)
        for key in ("maskedPaths", "readonlyPaths"):
            if lx.get(key):  # runc: "unable to restrict sys entries without a private MNT namespace"
                bad(f"linux.{key}", "needs a private mount namespace (it would change the host's mounts)")
        if prop is not None:
            bad("linux.rootfsPropagation", "needs a private mount namespace (it would change the host's mounts)")
        if (c.get("root") or {}).get("readonly"):
            bad("root.readonly", "needs a private mount namespace (it would remount the host's filesystem)")
    check_type(lx.get("cgroupsPath"), str, "linux.cgroupsPath")
    validate_resources(check_type(lx.get("resources"), dict, "linux.resources") or {})
    check_type(lx.get("mountLabel"), str, "linux.mountLabel")
    if lx.get("mountLabel"):
        bad("linux.mountLabel", "SELinux is not available on this host")
    if lx.get("seccomp") is not None:
        from .seccomp import check

        check(lx["seccomp"])
    offsets = check_type(lx.get("timeOffsets"), dict, "linux.timeOffsets")
    if offsets is not None:
        if "time" not in types:
            bad("linux.timeOffsets", "needs a new time namespace in linux.namespaces")
        if types["time"] is not None:
            bad("linux.timeOffsets", "cannot be set on a time namespace joined by path")
        for clock, off in offsets.items():
            f = f"linux.timeOffsets.{clock}"
            if clock not in ("boottime", "monotonic"):
                bad(f, "unknown clock (boottime or monotonic)")
            check_type(off, dict, f, True)
            _int64(off.get("secs"), f + ".secs")
            ns = check_uint(off.get("nanosecs"), f + ".nanosecs")
            if ns is not None and ns >= 1_000_000_000:
                bad(f + ".nanosecs", f"{ns} is not below 1000000000")
    if "time" in types:
        import os

        if not os.path.exists("/proc/self/timens_offsets"):
            bad("linux.namespaces", "time namespaces are not supported by this kernel")
    for key in ("intelRdt", "personality", "memoryPolicy", "netDevices"):
        if lx.get(key) is not None:
            bad(f"linux.{key}", "is not supported by pallet-runtime yet")


# ---------------------------------------------------------------- linux.resources

_I64 = 63


def _int64(value, field):
    check_type(value, int, field)
    if value is not None and not -(1 << 63) <= value < (1 << 63):
        bad(field, f"{value} is out of range")
    return value


def _dev_list(lst, f, key):
    for i, d in enumerate(check_type(lst, list, f) or ()):
        g = f"{f}[{i}]"
        check_type(d, dict, g, True)
        _int64(d.get("major"), g + ".major")
        _int64(d.get("minor"), g + ".minor")
        if d.get("major") is None or d.get("minor") is None:
            bad(g, "major and minor are required")
        if key == "weightDevice":
            check_uint(d.get("weight"), g + ".weight", bits=16)
            check_uint(d.get("leafWeight"), g + ".leafWeight", bits=16)
        else:
            check_uint(d.get("rate"), g + ".rate", True, 64)


def validate_resources(resources, field="linux.resources"):
    """Types and ranges of ``linux.resources`` (also what ``update --resources`` reads)."""
    check_type(resources, dict, field, True)
    check_strings(resources)
    for i, d in enumerate(check_type(resources.get("devices"), list, field + ".devices") or ()):
        g = f"{field}.devices[{i}]"
        check_type(d, dict, g, True)
        check_type(d.get("allow"), bool, g + ".allow", True)
        t = check_type(d.get("type"), str, g + ".type")
        if t is not None and t not in ("a", "c", "b"):
            bad(g + ".type", f"unknown device type {t!r} (a, c or b)")
        _int64(d.get("major"), g + ".major")
        _int64(d.get("minor"), g + ".minor")
        a = check_type(d.get("access"), str, g + ".access")
        if a is not None and (not a or not set(a) <= set("rwm")):
            bad(g + ".access", f"{a!r} is not a combination of r, w and m")
    m = check_type(resources.get("memory"), dict, field + ".memory")
    if m is not None:
        for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
            v = _int64(m.get(k), f"{field}.memory.{k}")
            if v is not None and v < -1:
                bad(f"{field}.memory.{k}", f"{v} is neither a size nor -1 (unlimited)")
        sw = check_uint(m.get("swappiness"), field + ".memory.swappiness", bits=64)
        if sw is not None and sw > 100:
            bad(field + ".memory.swappiness", f"{sw} is outside 0..100")
        for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
            check_type(m.get(k), bool, f"{field}.memory.{k}")
        lim, swap = m.get("limit"), m.get("swap")
        if lim not in (None, -1) and swap not in (None, -1) and swap < lim:
            bad(field + ".memory.swap", f"{swap} is below memory.limit {lim} (swap is memory plus swap)")
    c = check_type(resources.get("cpu"), dict, field + ".cpu")
    if c is not None:
        check_uint(c.get("shares"), field + ".cpu.shares", bits=64)
        _int64(c.get("quota"), field + ".cpu.quota")
        check_uint(c.get("burst"), field + ".cpu.burst", bits=64)
        check_uint(c.get("period"), field + ".cpu.period", bits=64)
        _int64(c.get("realtimeRuntime"), field + ".cpu.realtimeRuntime")
        check_uint(c.get("realtimePeriod"), field + ".cpu.realtimePeriod", bits=64)
        _int64(c.get("idle"), field + ".cpu.idle")
        for k in ("cpus", "mems"):
            v = check_type(c.get(k), str, f"{field}.cpu.{k}")
            if v and not set(v) <= set("0123456789,-"):
                bad(f"{field}.cpu.{k}", f"{v!r} is not a list like 0-3,7")
    p = check_type(resources.get("pids"), dict, field + ".pids")
    if p is not None:
        _int64(p.get("limit"), field + ".pids.limit")
    b = check_type(resources.get("blockIO"), dict, field + ".blockIO")
    if b is not None:
        for k in ("weight", "leafWeight"):
            v = check_uint(b.get(k), f"{field}.blockIO.{k}", bits=16)
            if v is not None and not 10 <= v <= 1000:
                bad(f"{field}.blockIO.{k}", f"{v} is outside 10..1000")
        for k in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                  "throttleWriteIOPSDevice"):
            _dev_list(b.get(k), f"{field}.blockIO.{k}", k)
    for i, h in enumerate(check_type(resources.get("hugepageLimits"), list, field + ".hugepageLimits") or ()):
        g = f"{field}.hugepageLimits[{i}]"
        check_type(h, dict, g, True)
        ps = check_type(h.get("pageSize"), str, g + ".pageSize", True)
        if not ps[:-2].isdigit() or ps[-2:] not in ("KB", "MB", "GB"):
            bad(g + ".pageSize", f"{ps!r} is not a page size like 2MB")
        check_uint(h.get("limit"), g + ".limit", True, 64)
    n = check_type(resources.get("network"), dict, field + ".network")
    if n is not None:
        check_uint(n.get("classID"), field + ".network.classID")
        for i, pr in enumerate(check_type(n.get("priorities"), list, field + ".network.priorities") or ()):
            g = f"{field}.network.priorities[{i}]"
            check_type(pr, dict, g, True)
            check_type(pr.get("name"), str, g + ".name", True)
            check_uint(pr.get("priority"), g + ".priority", True)
    for dev, lim in (check_type(resources.get("rdma"), dict, field + ".rdma") or {}).items():
        check_type(lim, dict, f"{field}.rdma.{dev}", True)
        check_uint(lim.get("hcaHandles"), f"{field}.rdma.{dev}.hcaHandles")
        check_uint(lim.get("hcaObjects"), f"{field}.rdma.{dev}.hcaObjects")
    for k, v in (check_type(resources.get("unified"), dict, field + ".unified") or {}).items():
        check_type(v, str, f"{field}.unified.{k}", True)
    known = ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified")
    for k in resources:
        if k not in known:
            bad(f"{field}.{k}", f"unknown resource (known: {', '.join(known)})")
