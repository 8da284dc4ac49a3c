"""The one writer of runtime-spec ``config.json`` documents: pure, no I/O.

Two entry points:

* :func:`default_config` -- what ``runc spec`` (and ``pallet-runtime spec [--rootless]``) writes;
* :func:`generate` -- a config from an image config (its ``config`` object: Entrypoint, Cmd,
  Env, WorkingDir, User) plus typed, frozen :class:`SpecOptions`, as podman's
  ``pkg/specgen/generate`` and buildah's ``run_linux.go`` do: the build's RUN steps use it
  today, podman-style ``run``, system containers and the CRI server will.

Nothing here reads a file: a user *name* is resolved by a callback the caller passes
(``resolve_user("name[:group]") -> (uid, gid, additional gids)``, reading the rootfs'
``/etc/passwd`` and ``/etc/group``). The result is a plain dict, ready for ``json.dumps``; the
runtime validates it (``pallet.runtime.spec.validate``) as it validates any config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping  # not typing (~2 ms): the same classes

from ..errors import InvalidDocument, UsageError
from .capabilities import NAMES as CAPABILITIES

#: the runtime-spec version :func:`generate` writes
OCI_VERSION = "1.0.2"
#: the version ``runc spec`` writes (and so :func:`default_config`)
RUNC_SPEC_VERSION = "1.0.2-dev"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: podman's and buildah's default capabilities (containers.conf ``default_capabilities``)
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT")
#: podman's and buildah's masked and read-only paths (containers/common)
MASKED_PATHS = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/fs/selinux",
                "/sys/dev/block")
READONLY_PATHS = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: ``runc spec``'s
RUNC_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
RUNC_MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                     "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi")
RUNC_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

UserResolver = Callable[[str], "tuple[int, int, list[int] | tuple[int, ...]]"]


def _strs(value, what: str, error=UsageError) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not all(isinstance(v, str) for v in value):
        raise error(f"{what}: must be a list of strings, not {value!r}")
    return tuple(value)


def _abspath(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise UsageError(f"{what}: {value!r} is not an absolute path")
    return value


# ---------------------------------------------------------------- the option types

_NEW_DICT = object()  # the default of a field that gets a fresh empty dict


class _Value:
    """An immutable value with fields, as ``dataclass(frozen=True)`` makes them (by position
    or keyword, class-attribute defaults, ``__post_init__`` checks, ``==``, ``hash``,
    ``repr``; assigning raises AttributeError), without importing ``dataclasses`` (with
    ``inspect``: ~10 ms of every build with a RUN step). The fields are the class's own
    annotations, in order."""

    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._fields = tuple(cls.__dict__.get("__annotations__", ()))
        cls._defaults = {f: cls.__dict__[f] for f in cls._fields if f in cls.__dict__}

    def __init__(self, *args, **kw):
        cls = type(self)
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments but {len(args)} were given")
        values = dict(zip(fields, args))
        for k, v in kw.items():
            if k not in fields:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {k!r}")
            if k in values:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {k!r}")
            values[k] = v
        for f in fields:
            if f not in values:
                if f not in cls._defaults:
                    raise TypeError(f"{cls.__name__}() missing required argument: {f!r}")
                d = cls._defaults[f]
                values[f] = {} if d is _NEW_DICT else d
            object.__setattr__(self, f, values[f])
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} ({type(self).__name__} is immutable)")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete field {name!r} ({type(self).__name__} is immutable)")

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return f"{type(self).__qualname__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"


class Namespace(_Value):
    """A namespace the container gets: a new one, or joined by ``path`` (``/proc/PID/ns/net``)."""

    type: str
    path: str | None = None

    def __post_init__(self):
        if self.type not in NAMESPACE_TYPES:
            raise UsageError(f"namespace {self.type!r}: unknown (known: {', '.join(NAMESPACE_TYPES)})")
        if self.path is not None:
            _abspath(self.path, f"namespace {self.type} path")

    def to_dict(self) -> dict:
        return {"type": self.type, **({"path": self.path} if self.path else {})}


#: a new pid, network, ipc, uts and mount namespace (runc's and podman's default set)
DEFAULT_NAMESPACES = tuple(Namespace(t) for t in ("pid", "network", "ipc", "uts", "mount"))


class Mount(_Value):
    """A ``mounts[]`` entry, written as given; :meth:`bind` and :meth:`tmpfs` make the usual ones."""

    destination: str
    type: str | None = "bind"
    source: str | None = None
    options: tuple[str, ...] = ()

    def __post_init__(self):
        # written as given (the runtime refuses a relative one, naming the field); bind() and
        # tmpfs() want an absolute path
        if not isinstance(self.destination, str) or not self.destination or "\0" in self.destination:
            raise UsageError(f"mount destination {self.destination!r}: not a path")
        object.__setattr__(self, "options", _strs(self.options, f"mount {self.destination} options"))

    @classmethod
    def bind(cls, source: str, destination: str, *, readonly: bool = False, options=()) -> "Mount":
        """A recursive bind (``rbind`` unless ``bind`` is among ``options``), ``ro`` if ``readonly``."""
        opts = _strs(options, f"mount {_abspath(destination, 'mount destination')} options")
        if "bind" not in opts and "rbind" not in opts:
            opts = ("rbind",) + opts
        if readonly and "ro" not in opts:
            opts += ("ro",)
        return cls(destination, "bind", source, opts)

    @classmethod
    def tmpfs(cls, destination: str, *, options=("rw", "nosuid", "nodev", "noexec")) -> "Mount":
        """A tmpfs (podman's ``--tmpfs`` options unless given: ``size=``, ``mode=`` ...)."""
        return cls(_abspath(destination, "mount destination"), "tmpfs", "tmpfs",
                   _strs(options, f"mount {destination} options"))

    def to_dict(self) -> dict:
        out = {"destination": self.destination}
        if self.type is not None:
            out["type"] = self.type
        if self.source is not None:
            out["source"] = self.source
        if self.options:
            out["options"] = list(self.options)
        return out


class User(_Value):
    """Resolved ids of the process."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()

    def __post_init__(self):
        for v, what in ((self.uid, "uid"), (self.gid, "gid"), *((g, "additional gid") for g in self.additional_gids)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
                raise UsageError(f"user: {what} {v!r} is not a number in 0..4294967295")
        object.__setattr__(self, "additional_gids", tuple(self.additional_gids))


class IDMap(_Value):
    container_id: int
    host_id: int
    size: int

    def to_dict(self) -> dict:
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.size}


class Rlimit(_Value):
    type: str  # RLIMIT_NOFILE or nofile
    soft: int
    hard: int

    def to_dict(self) -> dict:
        t = self.type.upper()
        return {"type": t if t.startswith("RLIMIT_") else "RLIMIT_" + t, "hard": self.hard, "soft": self.soft}


class Device(_Value):
    """A ``linux.devices`` node (podman's ``--device``), allowed in the device cgroup with ``access``."""

    path: str
    type: str  # c, b, u, p
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    access: str = "rwm"

    def __post_init__(self):
        _abspath(self.path, "device path")
        if self.type not in ("c", "b", "u", "p"):
            raise UsageError(f"device {self.path}: type {self.type!r} is not c, b, u or p")
        if not self.access or any(c not in "rwm" for c in self.access):
            raise UsageError(f"device {self.path}: access {self.access!r} is not made of r, w and m")

    def to_dict(self) -> dict:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}

    def rule(self) -> dict:
        return {"allow": True, "type": self.type, "major": self.major, "minor": self.minor, "access": self.access}


class Resources(_Value):
    """The cgroup limits podman's run flags set (``--memory``, ``--memory-swap``, ``--cpu-shares``,
    ``--cpu-quota``, ``--cpu-period``, ``--pids-limit``, ``--cpuset-cpus``, ``--cpuset-mems``) and
    the CRI's LinuxContainerResources; None leaves one unset."""

    memory: int | None = None
    memory_swap: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    pids_limit: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None

    def to_dict(self) -> dict:
        out: dict = {}
        mem = {k: v for k, v in (("limit", self.memory), ("swap", self.memory_swap)) if v is not None}
        cpu = {k: v for k, v in (("shares", self.cpu_shares), ("quota", self.cpu_quota),
                                 ("period", self.cpu_period), ("cpus", self.cpuset_cpus),
                                 ("mems", self.cpuset_mems)) if v is not None}
        if mem:
            out["memory"] = mem
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None:
            out["pids"] = {"limit": self.pids_limit}
        return out


class SpecOptions(_Value):
    """What the user asks on top of the image config (podman run's flags, a build's RUN step).

    ``command`` replaces the image's Cmd; ``entrypoint`` replaces its Entrypoint *and*, when
    not empty, drops its Cmd (Docker's and podman's rule). ``env`` entries override the image's by name. ``user`` is
    ``"uid[:gid]"``/``"name[:group]"`` (names need the resolver) or a resolved :class:`User`.
    ``mounts`` replace a default mount with the same destination and go after the defaults.
    ``masked_paths``/``readonly_paths`` None: podman's lists (none when ``privileged``).
    ``default_env`` goes under the image's Env (containers.conf's ``env``), ``default_caps``
    replaces :data:`DEFAULT_CAPS` (its ``default_capabilities``); ``devices`` are created and
    allowed in the device cgroup; ``sysctl`` is ``linux.sysctl``.
    """

    rootfs: str = "rootfs"
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    default_env: tuple[str, ...] = ()
    user: "str | User | None" = None
    workdir: str | None = None
    terminal: bool = False
    hostname: str = ""
    default_mounts: bool = True
    mounts: tuple[Mount, ...] = ()
    namespaces: tuple[Namespace, ...] = DEFAULT_NAMESPACES
    uid_mappings: tuple[IDMap, ...] = ()
    gid_mappings: tuple[IDMap, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    default_caps: tuple[str, ...] = DEFAULT_CAPS
    privileged: bool = False
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    seccomp: Mapping | None = None
    readonly_rootfs: bool = False
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    annotations: Mapping[str, str] = _NEW_DICT
    cgroups_path: str | None = None
    resources: Resources | None = None
    devices: tuple[Device, ...] = ()
    oom_score_adj: int | None = None
    sysctl: Mapping[str, str] = _NEW_DICT
    rootfs_propagation: str | None = None
    oci_version: str = OCI_VERSION

    def __post_init__(self):
        for name in ("command", "entrypoint", "masked_paths", "readonly_paths"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _strs(v, name.replace("_", " ")))
        for name in ("env", "default_env", "cap_add", "cap_drop", "default_caps"):
            object.__setattr__(self, name, _strs(getattr(self, name), name.replace("_", " ")))
        for name in ("mounts", "namespaces", "uid_mappings", "gid_mappings", "rlimits", "devices"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "annotations", dict(self.annotations))
        object.__setattr__(self, "sysctl", dict(self.sysctl))
        for k, v in self.sysctl.items():
            if not isinstance(k, str) or not k or "/" in k or ".." in k or not isinstance(v, str):
                raise UsageError(f"sysctl {k!r}: want a name such as net.ipv4.ip_forward and a string value")
        for e in self.env + self.default_env:
            if "=" not in e or e.startswith("="):
                raise UsageError(f"env: {e!r} is not KEY=VALUE")
        if self.workdir is not None:
            _abspath(self.workdir, "workdir")
        seen = set()
        for ns in self.namespaces:
            if ns.type in seen:
                raise UsageError(f"namespace {ns.type!r} is given twice")
            seen.add(ns.type)


# ---------------------------------------------------------------- the pieces

def process_args(image: Mapping, command=None, entrypoint=None) -> list[str]:
    """Entrypoint + Cmd as Docker documents them: ``command`` replaces Cmd; ``entrypoint``
    replaces Entrypoint and, when not empty, drops the image's Cmd (``--entrypoint ""`` only
    clears the Entrypoint: Docker's merge and podman's makeCommand); nothing at all is an error."""
    ep = list(entrypoint) if entrypoint is not None else list(_image_list(image, "Entrypoint"))
    if command:
        cmd = list(command)
    elif entrypoint:
        cmd = []
    else:
        cmd = list(_image_list(image, "Cmd"))
    args = ep + cmd
    if not args:
        raise UsageError("no command: the image has neither Entrypoint nor Cmd, and none was given")
    return args


def _image_list(image: Mapping, key: str) -> tuple[str, ...]:
    v = image.get(key)
    return () if v is None else _strs(v, f"image config: {key}", InvalidDocument)


def merge_env(image_env, env=(), *, path: str = DEFAULT_PATH) -> list[str]:
    """The image's Env with ``env`` over it by name (in place; new names appended), and
    ``PATH`` first when neither sets it."""
    out: list[str] = []
    index: dict[str, int] = {}
    for e in list(image_env) + list(env):
        k = e.partition("=")[0]
        if k in index:
            out[index[k]] = e
        else:
            index[k] = len(out)
            out.append(e)
    if "PATH" not in index:
        out.insert(0, "PATH=" + path)
    return out


def to_user(user: "str | User | None", resolver: UserResolver | None = None) -> User:
    """``User`` of ``"uid[:gid]"`` (pure) or ``"name[:group]"`` (through ``resolver``, which
    reads the rootfs' passwd/group: e.g. a numeric uid's primary group and extra groups)."""
    if isinstance(user, User):
        return user
    text = "" if user is None else user
    if not isinstance(text, str):
        raise InvalidDocument(f"image config: User: must be a string, not {text!r}")
    if "\0" in text:
        raise UsageError(f"user: {text!r} contains a NUL byte")
    if resolver is not None:
        uid, gid, extra = resolver(text or "0")
        return User(uid, gid, tuple(extra))
    name, _, group = text.partition(":")
    if (name or "0").isdigit() and (not group or group.isdigit()):
        return User(int(name or "0"), int(group or "0"))
    raise UsageError(f"user {text!r}: names need the container's /etc/passwd (no resolver given)")


def cap_name(name: str, what: str) -> str:
    """``CAP_X`` of ``x``/``X``/``CAP_X`` (or ``ALL``); unknown names are a UsageError."""
    if not isinstance(name, str):
        raise UsageError(f"{what}: {name!r} is not a capability name")
    n = name.upper()
    if not n.startswith("CAP_") and n != "ALL":
        n = "CAP_" + n
    if n != "ALL" and n not in CAPABILITIES:
        raise UsageError(f"{what}: unknown capability {name!r}")
    return n


def capabilities(default=DEFAULT_CAPS, add=(), drop=(), *, privileged: bool = False, uid: int = 0) -> dict:
    """``process.capabilities``: the default set less ``drop`` plus ``add`` (``ALL`` in either
    means every capability), every one when privileged. A non-root user keeps the bounding set
    and has effective/permitted/inheritable/ambient only what was added (podman's rule: ambient, or
    exec drops them)."""
    added = [cap_name(c, "cap-add") for c in add]
    dropped = [cap_name(c, "cap-drop") for c in drop]
    both = [c for c in added if c in dropped and c != "ALL"]
    if both:
        raise UsageError(f"capability {both[0]} cannot be both added and dropped")
    if privileged or "ALL" in added:
        caps = list(CAPABILITIES)
    elif "ALL" in dropped:
        caps = []
    else:
        caps = [c for c in default if c not in dropped]
    if not privileged:
        for c in added:
            if c != "ALL" and c not in caps:
                caps.append(c)
        if "ALL" not in dropped:
            caps = [c for c in caps if c not in dropped]
    if uid == 0:
        eff = caps
    elif privileged or "ALL" in added:
        eff = list(CAPABILITIES)
    else:
        eff = [c for c in added if c != "ALL"]
    if uid != 0 and eff:  # a non-root user keeps them across exec only as ambient ones (podman's sets)
        return {"bounding": list(caps), "effective": list(eff), "inheritable": list(eff), "permitted": list(eff),
                "ambient": list(eff)}
    return {"bounding": list(caps), "effective": list(eff), "permitted": list(eff)}


def default_mounts(*, sysfs: bool = True, privileged: bool = False) -> list[Mount]:
    """podman's and buildah's: /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys --
    a sysfs with a new network namespace (``sysfs``), else the host's /sys bound read-only."""
    ro = () if privileged else ("ro",)
    return [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        (Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev") + ro) if sysfs else
         Mount("/sys", "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev") + ro)),
    ]


def _clean(path: str) -> str:
    if not path.startswith("/"):
        return path
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")


#: syscalls :func:`default_seccomp` refuses with EPERM: what Docker's and containers/common's
#: default profiles leave out for a container without CAP_SYS_ADMIN-like needs (kernel modules,
#: kexec, reboot, swap, clocks, accounting, keyrings, BPF, perf, handles, userfaultfd, obsolete calls)
SECCOMP_DENIED = ("acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
                  "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
                  "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "move_pages",
                  "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open", "personality",
                  "pivot_root", "process_vm_readv", "process_vm_writev", "quotactl", "reboot", "request_key",
                  "set_mempolicy", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount",
                  "umount2", "uselib", "userfaultfd", "ustat", "vm86", "vm86old")


def default_seccomp() -> dict:
    """The CRI's RuntimeDefault profile: every syscall allowed but :data:`SECCOMP_DENIED` (EPERM).
    A deny list, shorter than Docker's allow list: it keeps what a container must not do to the
    host out, with ``Seccomp: 2`` in the container's status."""
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                              "SCMP_ARCH_ARM"],
            "syscalls": [{"names": list(SECCOMP_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}


# ---------------------------------------------------------------- the generator

def generate(options: SpecOptions = SpecOptions(), image: Mapping | None = None, *,
             resolve_user: UserResolver | None = None) -> dict:
    """A runtime ``config.json`` (dict) for ``image`` (an image config's ``config`` object, or
    an ``oci.config.ImageConfig``) with ``options`` on top. ``resolve_user("user[:group]")``
    returns ``(uid, gid, additional gids)`` from the rootfs' passwd/group files ("0" for the
    image's default, root); without it only numeric users are accepted."""
    o = options
    if image is not None and hasattr(image, "doc"):
        image = image.doc.get("config") or {}
    image = image or {}
    if not isinstance(image, Mapping):
        raise InvalidDocument(f"image config: config must be an object, not {type(image).__name__}")
    user = to_user(o.user if o.user is not None else image.get("User"), resolve_user)
    args = process_args(image, o.command, o.entrypoint)
    env = merge_env(list(o.default_env) + list(_image_list(image, "Env")), o.env)
    new_ns = {ns.type for ns in o.namespaces if ns.path is None}
    if o.hostname and "uts" in new_ns and not any(e.startswith("HOSTNAME=") for e in env):
        env.append("HOSTNAME=" + o.hostname)
    if o.terminal and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    workdir = o.workdir or image.get("WorkingDir") or "/"
    if not isinstance(workdir, str) or "\0" in workdir:
        raise InvalidDocument(f"image config: WorkingDir: {workdir!r} is not a path")
    if not workdir.startswith("/"):  # an image's relative WorkingDir is relative to the root
        workdir = "/" + workdir

    u = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        u["additionalGids"] = list(user.additional_gids)
    process = {
        "terminal": o.terminal,
        "user": u,
        "args": args,
        "env": env,
        "cwd": workdir,
        "capabilities": capabilities(o.default_caps, o.cap_add, o.cap_drop, privileged=o.privileged, uid=user.uid),
        "noNewPrivileges": o.no_new_privileges,
    }
    if o.rlimits:
        process["rlimits"] = [r.to_dict() for r in o.rlimits]
    if o.oom_score_adj is not None:
        process["oomScoreAdj"] = o.oom_score_adj

    mine = {_clean(m.destination) for m in o.mounts}
    # a sysfs of its own with a network namespace of its own, new or joined (the runtime mounts it
    # inside the namespace, so it shows the container's interfaces), else the host's /sys bound
    own_net = any(ns.type == "network" for ns in o.namespaces)
    mounts = [m for m in (default_mounts(sysfs=own_net, privileged=o.privileged)
                          if o.default_mounts else ()) if m.destination not in mine]
    mounts += o.mounts

    linux: dict = {"namespaces": [ns.to_dict() for ns in o.namespaces]}
    if o.uid_mappings:
        linux["uidMappings"] = [m.to_dict() for m in o.uid_mappings]
    if o.gid_mappings:
        linux["gidMappings"] = [m.to_dict() for m in o.gid_mappings]
    if o.cgroups_path:
        linux["cgroupsPath"] = o.cgroups_path
    if o.sysctl:
        linux["sysctl"] = dict(o.sysctl)
    if o.rootfs_propagation:
        linux["rootfsPropagation"] = o.rootfs_propagation
    res = o.resources.to_dict() if o.resources is not None else {}
    # the device cgroup, as runtime-tools' generator (podman, buildah, CRI-O, containerd): every
    # device denied, then the container's own (the runtime adds its default allowlist after);
    # a privileged container may use any device
    res["devices"] = [{"allow": bool(o.privileged), "access": "rwm"}] + [d.rule() for d in o.devices]
    if o.devices:
        linux["devices"] = [d.to_dict() for d in o.devices]
    linux["resources"] = res
    if o.seccomp is not None:  # given explicitly: kept even when privileged
        from .._std import json  # a deep copy of JSON data (``copy`` imports ``weakref``)

        linux["seccomp"] = json.loads(json.dumps(dict(o.seccomp)))
    masked = o.masked_paths if o.masked_paths is not None else (() if o.privileged else MASKED_PATHS)
    readonly = o.readonly_paths if o.readonly_paths is not None else (() if o.privileged else READONLY_PATHS)
    linux["maskedPaths"] = list(masked)
    linux["readonlyPaths"] = list(readonly)

    config = {
        "ociVersion": o.oci_version,
        "process": process,
        "root": {"path": o.rootfs, "readonly": o.readonly_rootfs},
    }
    if "uts" in new_ns:
        config["hostname"] = o.hostname or "pallet"
    config["mounts"] = [m.to_dict() for m in mounts]
    if o.annotations:
        config["annotations"] = dict(o.annotations)
    config["linux"] = linux
    return config


def default_config(rootless: bool = False, uid: int = 0, gid: int = 0) -> dict:
    """What ``runc spec`` writes (``--rootless``: a user namespace mapping ``uid``/``gid`` to
    root, no network namespace, /sys bound, no cgroup mount, no device rules)."""
    spec = {
        "ociVersion": RUNC_SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=" + DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {s: list(RUNC_CAPS) for s in ("bounding", "effective", "permitted", "ambient")},
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
            "maskedPaths": list(RUNC_MASKED_PATHS),
            "readonlyPaths": list(RUNC_READONLY_PATHS),
        },
    }
    if rootless:
        linux = spec["linux"]
        linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
        linux["uidMappings"] = [IDMap(0, uid, 1).to_dict()]
        linux["gidMappings"] = [IDMap(0, gid, 1).to_dict()]
        del linux["resources"]
        mounts = []
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m = Mount("/sys", "none", "/sys", ("rbind", "nosuid", "noexec", "nodev", "ro")).to_dict()
            elif m["type"] == "cgroup":
                continue
            elif "options" in m:
                m = dict(m, options=[o for o in m["options"] if not o.startswith(("gid=", "uid="))])
            mounts.append(m)
        spec["mounts"] = mounts
    return spec
