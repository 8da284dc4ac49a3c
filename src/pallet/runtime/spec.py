"""The runtime ``config.json``: the default one, loading, validation, mount options.

Pure (no I/O but reading the file). The config stays the plain dict the JSON parser
made: a model of dataclasses would cost start-up time on every ``run`` for nothing
the code below cannot check directly. :func:`validate` refuses everything that
breaks the runtime-spec *before* anything is created, naming the field
(``config.json: linux.namespaces[2].type: unknown namespace type "foo"``).
"""

from ..errors import InvalidDocument
from .caps import NUMBERS as CAP_NUMBERS

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
    """What ``runc spec`` writes (``--rootless``: a user namespace mapping uid/gid)."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {s: list(caps) for s in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pallet",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        linux = spec["linux"]
        linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        del linux["resources"]
        mounts = []
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m = {"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
            elif m["type"] == "cgroup":
                continue
            else:
                opts = [o for o in m.get("options", ()) if not o.startswith(("gid=", "uid="))]
                if "options" in m:
                    m = dict(m, options=opts)
            mounts.append(m)
        spec["mounts"] = mounts
    return spec


# ---------------------------------------------------------------- loading and validation

def load(bundle):
    """Read and validate ``BUNDLE/config.json``; returns the dict."""
    from . import _json

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


def _bad(field, problem):
    raise InvalidDocument(f"config.json: {field}: {problem}")


_TYPES = {str: "a string", bool: "a boolean", int: "an integer", list: "an array", dict: "an object"}


def _t(value, typ, field, required=False):
    """Check ``value`` is of ``typ`` (None allowed unless required); returns it."""
    if value is None:
        if required:
            _bad(field, "is required")
        return None
    if typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ)
    if not ok:
        _bad(field, f"must be {_TYPES[typ]}, not {_jtype(value)}")
    return value


def _jtype(v):
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(v), "null")


def _strlist(value, field, required=False):
    value = _t(value, list, field, required)
    for i, s in enumerate(value or ()):
        _t(s, str, f"{field}[{i}]", True)
    return value


def _uint(value, field, required=False, bits=32):
    _t(value, int, field, required)
    if value is not None and not 0 <= value < (1 << bits):
        _bad(field, f"{value} is out of range")
    return value


def _abspath(value, field, required=False):
    _t(value, str, field, required)
    if value is not None and not value.startswith("/"):
        _bad(field, f"{value!r} is not an absolute path")
    return value


MAX_DEPTH = 32  # a runtime-spec config nests ~6 levels; deeper is hostile (and would blow recursion later)


def _field(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out or "(document)"


def check_strings(c):
    """Every string of the document (keys too) is one the kernel can take: no NUL byte
    (args, env, paths, options, hostname... all end up as C strings). Also bounds the
    nesting. Iterative: a hostile document cannot blow the stack here."""
    stack = [(c, ())]
    while stack:
        obj, path = stack.pop()
        if len(path) > MAX_DEPTH:
            _bad(_field(path[:MAX_DEPTH]), f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(obj, dict):
            for k, v in obj.items():
                if "\0" in k:
                    _bad(_field(path), f"key {k!r} contains a NUL byte")
                if isinstance(v, str):
                    if "\0" in v:
                        _bad(_field(path + (k,)), f"{v!r} contains a NUL byte")
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (k,)))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, str):
                    if "\0" in v:
                        _bad(_field(path + (i,)), f"{v!r} contains a NUL byte")
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (i,)))


def validate(c):
    """Refuse a config that breaks the runtime-spec (or asks for what we cannot do)."""
    if not isinstance(c, dict):
        _bad("(document)", f"must be an object, not {_jtype(c)}")
    check_strings(c)
    v = _t(c.get("ociVersion"), str, "ociVersion", True)
    parts = v.split("-", 1)[0].split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] != "1":
        _bad("ociVersion", f"{v!r} is not a runtime-spec 1.x version")
    root = _t(c.get("root"), dict, "root", True)
    p = _t(root.get("path"), str, "root.path", True)
    if not p:
        _bad("root.path", "must not be empty")
    _t(root.get("readonly"), bool, "root.readonly")
    _t(c.get("hostname"), str, "hostname")
    _t(c.get("domainname"), str, "domainname")
    _t(c.get("annotations"), dict, "annotations")
    for k, v in (c.get("annotations") or {}).items():
        _t(v, str, f"annotations.{k}", True)
    if c.get("process") is not None:  # optional at create; start refuses to run nothing
        _validate_process(_t(c.get("process"), dict, "process"))
    for i, m in enumerate(_t(c.get("mounts"), list, "mounts") or ()):
        _validate_mount(m, f"mounts[{i}]")
    hooks = _t(c.get("hooks"), dict, "hooks")
    for name, lst in (hooks or {}).items():
        if name not in HOOKS:
            _bad(f"hooks.{name}", f"unknown hook (known: {', '.join(HOOKS)})")
        for i, h in enumerate(_t(lst, list, f"hooks.{name}") or ()):
            f = f"hooks.{name}[{i}]"
            _t(h, dict, f, True)
            _abspath(h.get("path"), f + ".path", True)
            _strlist(h.get("args"), f + ".args")
            _strlist(h.get("env"), f + ".env")
            t = _t(h.get("timeout"), int, f + ".timeout")
            if t is not None and t <= 0:
                _bad(f + ".timeout", "must be greater than zero")
    _validate_linux(_t(c.get("linux"), dict, "linux") or {}, c)
    for key in ("solaris", "windows", "vm", "zos"):
        if c.get(key) is not None:
            _bad(key, "is not for Linux")


def _validate_process(p):
    _t(p.get("terminal"), bool, "process.terminal")
    cs = _t(p.get("consoleSize"), dict, "process.consoleSize")
    if cs is not None:
        _uint(cs.get("height"), "process.consoleSize.height", True)
        _uint(cs.get("width"), "process.consoleSize.width", True)
    args = _strlist(p.get("args"), "process.args", True)
    if not args:
        _bad("process.args", "must name the program to run")
    for i, e in enumerate(_strlist(p.get("env"), "process.env") or ()):
        if "=" not in e:
            _bad(f"process.env[{i}]", f"{e!r} is not KEY=VALUE")
    _abspath(p.get("cwd"), "process.cwd", True)
    u = _t(p.get("user"), dict, "process.user", True)
    _uint(u.get("uid"), "process.user.uid", True)
    _uint(u.get("gid"), "process.user.gid", True)
    _uint(u.get("umask"), "process.user.umask")
    for i, g in enumerate(_t(u.get("additionalGids"), list, "process.user.additionalGids") or ()):
        _uint(g, f"process.user.additionalGids[{i}]", True)
    _t(u.get("username"), str, "process.user.username")
    caps = _t(p.get("capabilities"), dict, "process.capabilities")
    for s, lst in (caps or {}).items():
        if s not in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            _bad(f"process.capabilities.{s}", "unknown capability set")
        for i, name in enumerate(_strlist(lst, f"process.capabilities.{s}") or ()):
            if name not in CAP_NUMBERS:
                _bad(f"process.capabilities.{s}[{i}]", f"unknown capability {name!r}")
    seen = set()
    for i, r in enumerate(_t(p.get("rlimits"), list, "process.rlimits") or ()):
        f = f"process.rlimits[{i}]"
        _t(r, dict, f, True)
        typ = _t(r.get("type"), str, f + ".type", True)
        if typ not in RLIMITS:
            _bad(f + ".type", f"unknown rlimit {typ!r}")
        if typ in seen:
            _bad(f + ".type", f"{typ} is set twice")
        seen.add(typ)
        soft = _uint(r.get("soft"), f + ".soft", True, 64)
        hard = _uint(r.get("hard"), f + ".hard", True, 64)
        if soft > hard:
            _bad(f + ".soft", f"soft limit {soft} is above the hard limit {hard}")
    _t(p.get("noNewPrivileges"), bool, "process.noNewPrivileges")
    adj = _t(p.get("oomScoreAdj"), int, "process.oomScoreAdj")
    if adj is not None and not -1000 <= adj <= 1000:
        _bad("process.oomScoreAdj", f"{adj} is outside -1000..1000")
    if _t(p.get("apparmorProfile"), str, "process.apparmorProfile"):
        _bad("process.apparmorProfile", "AppArmor is not available on this host")
    if _t(p.get("selinuxLabel"), str, "process.selinuxLabel"):
        _bad("process.selinuxLabel", "SELinux is not available on this host")
    for key in ("ioPriority", "scheduler", "execCPUAffinity"):
        if p.get(key) is not None:
            _bad(f"process.{key}", "is not supported by pallet-runtime yet")


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
        _bad(field, f"{dest!r}: only a proc filesystem may be mounted on /proc, not {typ or 'this'!r}")
    if d.startswith("/proc/") and d not in PROC_MOUNTS_ALLOWED:
        _bad(field, f"{dest!r} is inside /proc: refused (only {', '.join(PROC_MOUNTS_ALLOWED)})")


def _validate_mount(m, f):
    _t(m, dict, f, True)
    _abspath(m.get("destination"), f + ".destination", True)
    typ = _t(m.get("type"), str, f + ".type")
    _t(m.get("source"), str, f + ".source")
    opts = _strlist(m.get("options"), f + ".options") or ()
    for i, o in enumerate(opts):
        if not o or o != o.strip() or "," in o:
            _bad(f"{f}.options[{i}]", f"bad mount option {o!r}")
    flags, _prop, _attrs, data, _ext = parse_mount_options(opts)
    if flags & MS_BIND or typ == "bind":  # filesystem options are the kernel's to ignore, as with runc
        if not m.get("source"):
            _bad(f + ".source", "a bind mount needs a source")
    elif not typ:
        _bad(f + ".type", "is required for a mount that is not a bind mount")
    check_proc_destination(m["destination"], typ, bool(flags & MS_BIND or typ == "bind"), f + ".destination")
    _t(m.get("uidMappings"), list, f + ".uidMappings")
    if m.get("uidMappings") or m.get("gidMappings"):
        _bad(f + ".uidMappings", "id-mapped mounts are not supported by pallet-runtime yet")


def _mappings(lst, f):
    for i, m in enumerate(_t(lst, list, f) or ()):
        g = f"{f}[{i}]"
        _t(m, dict, g, True)
        _uint(m.get("containerID"), g + ".containerID", True)
        _uint(m.get("hostID"), g + ".hostID", True)
        size = _uint(m.get("size"), g + ".size", True)
        if size == 0:
            _bad(g + ".size", "must not be zero")
    return lst


_SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _validate_linux(lx, c):
    types = {}
    for i, ns in enumerate(_t(lx.get("namespaces"), list, "linux.namespaces") or ()):
        f = f"linux.namespaces[{i}]"
        _t(ns, dict, f, True)
        t = _t(ns.get("type"), str, f + ".type", True)
        if t not in NAMESPACES:
            _bad(f + ".type", f"unknown namespace type {t!r} (known: {', '.join(NAMESPACES)})")
        if t in types:
            _bad(f + ".type", f"namespace {t!r} is listed twice")
        path = _abspath(ns.get("path"), f + ".path")
        types[t] = path
    uid = _mappings(lx.get("uidMappings"), "linux.uidMappings")
    gid = _mappings(lx.get("gidMappings"), "linux.gidMappings")
    if (uid or gid) and "user" not in types:
        _bad("linux.uidMappings", "id mappings need a user namespace")
    if "user" in types and types["user"] is None and not (uid and gid):
        _bad("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    if c.get("hostname") and "uts" not in types:
        _bad("hostname", "setting the hostname needs a private uts namespace")
    if c.get("domainname") and "uts" not in types:
        _bad("domainname", "setting the domainname needs a private uts namespace")
    for i, d in enumerate(_t(lx.get("devices"), list, "linux.devices") or ()):
        f = f"linux.devices[{i}]"
        _t(d, dict, f, True)
        _abspath(d.get("path"), f + ".path", True)
        t = _t(d.get("type"), str, f + ".type", True)
        if t not in ("c", "b", "u", "p"):
            _bad(f + ".type", f"unknown device type {t!r} (c, b, u or p)")
        _t(d.get("major"), int, f + ".major", t != "p")
        _t(d.get("minor"), int, f + ".minor", t != "p")
        _uint(d.get("fileMode"), f + ".fileMode")
        _uint(d.get("uid"), f + ".uid")
        _uint(d.get("gid"), f + ".gid")
    sysctl = _t(lx.get("sysctl"), dict, "linux.sysctl") or {}
    for k, v in sysctl.items():
        f = f"linux.sysctl.{k}"
        _t(v, str, f, True)
        if k.startswith("net."):
            if "network" not in types:
                _bad(f, "needs a private network namespace")
        elif k in _SYSCTL_IPC or k.startswith("fs.mqueue."):
            if "ipc" not in types:
                _bad(f, "needs a private ipc namespace")
        elif k in ("kernel.hostname", "kernel.domainname"):
            _bad(f, "set hostname/domainname in config.json instead")
        else:
            _bad(f, "is not namespaced: it would change the host")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_strlist(lx.get(key), f"linux.{key}") or ()):
            _abspath(path, f"linux.{key}[{i}]")
    prop = _t(lx.get("rootfsPropagation"), str, "linux.rootfsPropagation")
    if prop is not None and prop not in ROOTFS_PROPAGATION:
        _bad("linux.rootfsPropagation", f"unknown propagation {prop!r}")
    if "mount" not in types:  # the container shares the host's mount namespace (chroot, as runc)
        for key in ("maskedPaths", "readonlyPaths"):
            if lx.get(key):  # runc: "unable to restrict sys entries without a private MNT namespace"
                _bad(f"linux.{key}", "needs a private mount namespace (it would change the host's mounts)")
        if prop is not None:
            _bad("linux.rootfsPropagation", "needs a private mount namespace (it would change the host's mounts)")
        if (c.get("root") or {}).get("readonly"):
            _bad("root.readonly", "needs a private mount namespace (it would remount the host's filesystem)")
    _t(lx.get("cgroupsPath"), str, "linux.cgroupsPath")
    validate_resources(_t(lx.get("resources"), dict, "linux.resources") or {})
    _t(lx.get("mountLabel"), str, "linux.mountLabel")
    if lx.get("mountLabel"):
        _bad("linux.mountLabel", "SELinux is not available on this host")
    if lx.get("seccomp") is not None:
        from .seccomp import check

        check(lx["seccomp"])
    offsets = _t(lx.get("timeOffsets"), dict, "linux.timeOffsets")
    if offsets is not None:
        if "time" not in types:
            _bad("linux.timeOffsets", "needs a new time namespace in linux.namespaces")
        if types["time"] is not None:
            _bad("linux.timeOffsets", "cannot be set on a time namespace joined by path")
        for clock, off in offsets.items():
            f = f"linux.timeOffsets.{clock}"
            if clock not in ("boottime", "monotonic"):
                _bad(f, "unknown clock (boottime or monotonic)")
            _t(off, dict, f, True)
            _int64(off.get("secs"), f + ".secs")
            ns = _uint(off.get("nanosecs"), f + ".nanosecs")
            if ns is not None and ns >= 1_000_000_000:
                _bad(f + ".nanosecs", f"{ns} is not below 1000000000")
    if "time" in types:
        import os

        if not os.path.exists("/proc/self/timens_offsets"):
            _bad("linux.namespaces", "time namespaces are not supported by this kernel")
    for key in ("intelRdt", "personality", "memoryPolicy", "netDevices"):
        if lx.get(key) is not None:
            _bad(f"linux.{key}", "is not supported by pallet-runtime yet")


# ---------------------------------------------------------------- linux.resources

_I64 = 63


def _int64(value, field):
    _t(value, int, field)
    if value is not None and not -(1 << 63) <= value < (1 << 63):
        _bad(field, f"{value} is out of range")
    return value


def _dev_list(lst, f, key):
    for i, d in enumerate(_t(lst, list, f) or ()):
        g = f"{f}[{i}]"
        _t(d, dict, g, True)
        _int64(d.get("major"), g + ".major")
        _int64(d.get("minor"), g + ".minor")
        if d.get("major") is None or d.get("minor") is None:
            _bad(g, "major and minor are required")
        if key == "weightDevice":
            _uint(d.get("weight"), g + ".weight", bits=16)
            _uint(d.get("leafWeight"), g + ".leafWeight", bits=16)
        else:
            _uint(d.get("rate"), g + ".rate", True, 64)


def validate_resources(r, f="linux.resources"):
    """Types and ranges of ``linux.resources`` (also what ``update --resources`` reads)."""
    _t(r, dict, f, True)
    check_strings(r)
    for i, d in enumerate(_t(r.get("devices"), list, f + ".devices") or ()):
        g = f"{f}.devices[{i}]"
        _t(d, dict, g, True)
        _t(d.get("allow"), bool, g + ".allow", True)
        t = _t(d.get("type"), str, g + ".type")
        if t is not None and t not in ("a", "c", "b"):
            _bad(g + ".type", f"unknown device type {t!r} (a, c or b)")
        _int64(d.get("major"), g + ".major")
        _int64(d.get("minor"), g + ".minor")
        a = _t(d.get("access"), str, g + ".access")
        if a is not None and (not a or not set(a) <= set("rwm")):
            _bad(g + ".access", f"{a!r} is not a combination of r, w and m")
    m = _t(r.get("memory"), dict, f + ".memory")
    if m is not None:
        for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
            v = _int64(m.get(k), f"{f}.memory.{k}")
            if v is not None and v < -1:
                _bad(f"{f}.memory.{k}", f"{v} is neither a size nor -1 (unlimited)")
        sw = _uint(m.get("swappiness"), f + ".memory.swappiness", bits=64)
        if sw is not None and sw > 100:
            _bad(f + ".memory.swappiness", f"{sw} is outside 0..100")
        for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
            _t(m.get(k), bool, f"{f}.memory.{k}")
        lim, swap = m.get("limit"), m.get("swap")
        if lim not in (None, -1) and swap not in (None, -1) and swap < lim:
            _bad(f + ".memory.swap", f"{swap} is below memory.limit {lim} (swap is memory plus swap)")
    c = _t(r.get("cpu"), dict, f + ".cpu")
    if c is not None:
        _uint(c.get("shares"), f + ".cpu.shares", bits=64)
        _int64(c.get("quota"), f + ".cpu.quota")
        _uint(c.get("burst"), f + ".cpu.burst", bits=64)
        _uint(c.get("period"), f + ".cpu.period", bits=64)
        _int64(c.get("realtimeRuntime"), f + ".cpu.realtimeRuntime")
        _uint(c.get("realtimePeriod"), f + ".cpu.realtimePeriod", bits=64)
        _int64(c.get("idle"), f + ".cpu.idle")
        for k in ("cpus", "mems"):
            v = _t(c.get(k), str, f"{f}.cpu.{k}")
            if v and not set(v) <= set("0123456789,-"):
                _bad(f"{f}.cpu.{k}", f"{v!r} is not a list like 0-3,7")
    p = _t(r.get("pids"), dict, f + ".pids")
    if p is not None:
        _int64(p.get("limit"), f + ".pids.limit")
    b = _t(r.get("blockIO"), dict, f + ".blockIO")
    if b is not None:
        for k in ("weight", "leafWeight"):
            v = _uint(b.get(k), f"{f}.blockIO.{k}", bits=16)
            if v is not None and not 10 <= v <= 1000:
                _bad(f"{f}.blockIO.{k}", f"{v} is outside 10..1000")
        for k in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                  "throttleWriteIOPSDevice"):
            _dev_list(b.get(k), f"{f}.blockIO.{k}", k)
    for i, h in enumerate(_t(r.get("hugepageLimits"), list, f + ".hugepageLimits") or ()):
        g = f"{f}.hugepageLimits[{i}]"
        _t(h, dict, g, True)
        ps = _t(h.get("pageSize"), str, g + ".pageSize", True)
        if not ps[:-2].isdigit() or ps[-2:] not in ("KB", "MB", "GB"):
            _bad(g + ".pageSize", f"{ps!r} is not a page size like 2MB")
        _uint(h.get("limit"), g + ".limit", True, 64)
    n = _t(r.get("network"), dict, f + ".network")
    if n is not None:
        _uint(n.get("classID"), f + ".network.classID")
        for i, pr in enumerate(_t(n.get("priorities"), list, f + ".network.priorities") or ()):
            g = f"{f}.network.priorities[{i}]"
            _t(pr, dict, g, True)
            _t(pr.get("name"), str, g + ".name", True)
            _uint(pr.get("priority"), g + ".priority", True)
    for dev, lim in (_t(r.get("rdma"), dict, f + ".rdma") or {}).items():
        _t(lim, dict, f"{f}.rdma.{dev}", True)
        _uint(lim.get("hcaHandles"), f"{f}.rdma.{dev}.hcaHandles")
        _uint(lim.get("hcaObjects"), f"{f}.rdma.{dev}.hcaObjects")
    for k, v in (_t(r.get("unified"), dict, f + ".unified") or {}).items():
        _t(v, str, f"{f}.unified.{k}", True)
    known = ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified")
    for k in r:
        if k not in known:
            _bad(f"{f}.{k}", f"unknown resource (known: {', '.join(known)})")
