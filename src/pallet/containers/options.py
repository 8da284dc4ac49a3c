"""``run``/``create``'s flags beyond the basics, parsed and checked as podman 4.3 does, and
containers.conf's defaults under them: ``--ulimit``, ``--add-host``, ``--dns``,
``--dns-search``, ``--dns-option``, ``--security-opt``, ``--device``, ``--log-driver``/``--log-opt``,
``--cgroupns``/``--ipc``/``--pid``/``--uts`` (``host``, ``private``, ``container:ID``, ``ns:PATH``), ``--userns``/``--uidmap``/``--gidmap``, ``--mount``,
named and anonymous ``-v``.

:func:`resolve` turns them (with a :class:`~.conf.Conf`) into plain JSON values kept in the
container's record; :func:`spec_options` turns those into the keyword arguments of
``oci.runtime_spec.SpecOptions``. Every bad value is a :class:`UsageError` (exit 125) before
anything is made.
"""

from __future__ import annotations

import os

from ..errors import UsageError

#: go-units' ulimit names
ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack")
UNLIMITED = (1 << 64) - 1
#: podman's RLimitDefaultValue: nofile and nproc when neither containers.conf nor --ulimit sets them
RLIMIT_DEFAULT = 1048576
#: c/common's built-in default_capabilities (when no containers.conf file sets them)
BUILTIN_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
                "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
                "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE")
NAMESPACE_FLAGS = {"cgroupns": "cgroup", "ipc": "ipc", "pid": "pid", "uts": "uts"}
CAP_SYS_RESOURCE = 24


class Extra:
    """The flags this module handles (the CLI's values, unchecked)."""

    def __init__(self, *, ulimits=(), add_hosts=(), dns=(), dns_search=(), dns_options=(), security_opts=(),
                 devices=(), log_driver=None, log_opts=(), cgroupns=None, ipc=None, pid=None, uts=None,
                 userns=None, uidmap=(), gidmap=(), mounts=(), device_cgroup_rules=(), volumes_from=()):
        self.ulimits, self.add_hosts = list(ulimits), list(add_hosts)
        self.dns, self.dns_search, self.dns_options = list(dns), list(dns_search), list(dns_options)
        self.security_opts, self.devices = list(security_opts), list(devices)
        self.log_driver, self.log_opts = log_driver, list(log_opts)
        self.cgroupns, self.ipc, self.pid, self.uts = cgroupns, ipc, pid, uts
        self.userns, self.uidmap, self.gidmap = userns, list(uidmap), list(gidmap)
        self.mounts = list(mounts)
        self.device_cgroup_rules = list(device_cgroup_rules)
        #: ``--volumes-from CTR[:OPTS]`` (containers/mounts.py)
        self.volumes_from = list(volumes_from)


# -- single values ---------------------------------------------------------------------------

def parse_ulimit(text: str) -> tuple[str, int, int]:
    """``name=soft[:hard]`` (go-units): ``(RLIMIT_NAME, soft, hard)``; -1 is unlimited."""
    def bad(why):
        return UsageError(f"ulimit option \"{text}\" requires name=SOFT:HARD, failed to be parsed: {why}")

    name, eq, values = text.partition("=")
    if not eq:
        raise bad(f"invalid ulimit argument: {text}")
    if name not in ULIMITS:
        raise bad(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise bad(f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`")
    nums = []
    for p in parts:
        try:
            n = int(p, 10)
        except ValueError:
            raise bad(f"strconv.ParseInt: parsing {p!r}: invalid syntax") from None
        if n < -1 or n >= 1 << 63:
            raise bad(f"value {p} out of range")
        nums.append(UNLIMITED if n == -1 else n)
    soft = nums[0]
    hard = nums[1] if len(nums) == 2 else soft
    if soft > hard:
        raise bad(f"ulimit soft limit must be less than or equal to hard limit: {parts[0]} > {parts[1]}")
    return "RLIMIT_" + name.upper(), soft, hard


def parse_add_host(text: str) -> str:
    name, colon, ip = text.partition(":")
    if not colon or not name:
        raise UsageError(f"bad format for add-host: \"{text}\"")
    try:
        import ipaddress  # only for --add-host/--dns: run without them does not load it

        ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"invalid IP address in add-host: \"{ip}\"") from None
    if any(c.isspace() for c in name) or "\0" in name:
        raise UsageError(f"bad format for add-host: \"{text}\"")
    return f"{ip}\t{name}"


def parse_ip(text: str, flag: str) -> str:
    try:
        import ipaddress

        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{flag} {text}: {text} is not an ip address") from None


def _no_space(text: str, flag: str) -> str:
    if not text or any(c.isspace() for c in text) or "\0" in text:
        raise UsageError(f"invalid {flag} {text!r}")
    return text


def parse_security_opts(opts: list[str]) -> dict:
    """``no-new-privileges[=true|false]``, ``seccomp=unconfined|FILE``, ``label=…`` (no SELinux
    here: ``label=disable`` and others are accepted and change nothing, as podman on a host
    without SELinux), ``apparmor=…`` likewise. ``{"no_new_privileges": bool|None,
    "seccomp": None|"unconfined"|path}``."""
    out = {"no_new_privileges": None, "seccomp": None}
    for o in opts:
        if o.startswith("no-new-privileges:"):  # podman also takes the older colon form
            o = "no-new-privileges=" + o[len("no-new-privileges:"):]
        key, eq, value = o.partition("=")
        if key == "no-new-privileges" and (not eq or value in ("true", "false")):
            out["no_new_privileges"] = value != "false"
        elif key == "seccomp" and value:
            if value != "unconfined" and not value.startswith("/"):
                value = os.path.abspath(value)
            out["seccomp"] = value
        elif key in ("label", "apparmor") and value:
            pass
        elif key in ("mask", "unmask", "proc-opts", "systempaths") and value:
            raise UsageError(f"--security-opt {o}: not supported by pallet yet")
        else:  # podman's numbers: 1 without "=", 2 for an unknown key
            raise UsageError(f"invalid --security-opt {2 if eq else 1}: \"{o}\"")
    return out


def _parse_uint(text: str) -> int:
    """Go's strconv.ParseUint(text, 10, 64), with its error words."""
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) >= 1 << 64:
        raise UsageError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def parse_device_cgroup_rule(text: str) -> dict:
    """``--device-cgroup-rule 'TYPE MAJOR[:MINOR|:*] ACCESS'`` as podman 4.3: an allow rule of the
    device cgroup (no minor, or ``*``: every minor), with podman's error words."""
    parts = text.split(" ")
    if len(parts) != 3:
        raise UsageError(f"invalid device cgroup rule requires type, major:Minor, and access rules: "
                         f"{_go_quote(text)}")
    kind, numbers, access = parts
    if kind not in ("a", "b", "c"):
        raise UsageError(f"invalid device type in device-access-add: {kind}")
    major, colon, minor = numbers.partition(":")
    rule = {"allow": True, "type": kind, "major": _parse_uint(major)}
    if colon and minor != "*":
        rule["minor"] = _parse_uint(minor)
    for c in access:
        if c not in "rwm":
            raise UsageError(f"invalid device access in device-access-add: {c}")
    rule["access"] = access
    return rule


def _go_quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def parse_device(text: str) -> dict:
    """``HOST[:CONTAINER][:PERMISSIONS]``: the host device's type, numbers, mode and owner."""
    import stat

    parts = text.split(":")
    if len(parts) > 3 or not parts[0].startswith("/") or "\0" in text:
        raise UsageError(f"invalid device specification: {text}")
    src, dst, perms = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            dst = parts[1]
        else:
            perms = parts[1]
    elif len(parts) == 3:
        dst, perms = parts[1], parts[2]
    if not dst.startswith("/") or not perms or any(c not in "rwm" for c in perms):
        raise UsageError(f"invalid device specification: {text}")
    try:
        st = os.stat(src)
    except OSError as e:
        raise UsageError(f"stat {src}: {e.strerror.lower()}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--device {text}: a directory of devices is not supported by pallet yet")
    else:
        raise UsageError(f"--device {text}: {src} is not a device node")
    return {"path": dst, "source": src, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "file_mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "access": perms}


def parse_namespace(flag: str, value: str) -> str | None:
    """``host``, ``private`` (and ipc's ``shareable``), ``container:ID``, ``ns:PATH``: None (a new
    one), "host", "container:ID" or a path."""
    if value in ("private", "") or (flag == "ipc" and value == "shareable"):
        return None
    if value == "host":
        return "host"
    if value.startswith("ns:") and value[3:].startswith("/") and "\0" not in value:
        return value[3:]
    if value.startswith("container:") and len(value) > len("container:") and "\0" not in value:
        return value  # the container is looked up at create (it must exist) and at start (running)
    raise UsageError(f"invalid --{flag} {value!r}: want host, private, container:ID or ns:PATH")


def parse_log(driver: str, opts: list[str]) -> dict:
    """``--log-driver k8s-file|journald|none`` and its ``--log-opt``s: ``path=`` and ``max-size=``
    (k8s-file), ``tag=`` (journald: conmon's ``--log-tag``, the entries' ``CONTAINER_TAG`` and
    ``SYSLOG_IDENTIFIER``)."""
    if driver == "passthrough":
        raise UsageError(f"--log-driver {driver}: not supported by pallet (use k8s-file, journald or none)")
    if driver not in ("k8s-file", "journald", "none"):
        raise UsageError(f"invalid --log-driver {driver!r}: want k8s-file, journald or none")
    out = {"driver": driver, "path": None, "max_size": None}
    for o in opts:
        key, eq, value = o.partition("=")
        if not eq:
            raise UsageError(f"invalid --log-opt {o!r}: want KEY=VALUE")
        if key == "path":
            if not value.startswith("/") or "\0" in value:
                raise UsageError(f"invalid --log-opt {o!r}: the path must be absolute")
            if driver == "journald":
                raise UsageError(f"invalid --log-opt {o!r}: the journald driver writes to the journal, not a file")
            out["path"] = _log_file(os.path.normpath(value), o)
        elif key == "max-size":
            out["max_size"] = _size(value, f"--log-opt {o}")
        elif key == "tag":
            if "{{" in value:
                raise UsageError(f"--log-opt {o!r}: templates in the tag are not supported yet")
            if not value or "\0" in value or "\n" in value:
                raise UsageError(f"invalid --log-opt {o!r}: want a tag of one line")
            out["tag"] = value
        else:
            raise UsageError(f"invalid --log-opt {o!r}: unknown option {key!r} (path, max-size, tag)")
    return out


def _log_file(path: str, opt: str) -> str:
    """conmon appends to the log as root: its directory must exist (resolved now), and the file,
    when there, must be a regular file -- never written through a symlink, device or FIFO."""
    import stat

    parent, name = os.path.split(path)
    if not name or not os.path.isdir(parent):
        raise UsageError(f"invalid --log-opt {opt!r}: {parent}: no such directory")
    path = os.path.join(os.path.realpath(parent), name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"invalid --log-opt {opt!r}: {path} exists and is not a regular file")
    return path


def _size(text: str, what: str) -> int:
    """go-units' FromHumanSize, as podman parses ``--log-opt max-size``: ``N[.N][ ][k|m|g|t|p][i][b]``,
    decimal units (``9.057m`` is 9057000 bytes), case-insensitive."""
    import re

    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?) ?([kmgtp])?i?b?", text.strip(), re.I | re.ASCII)
    size = float(m.group(1)) * 1000 ** ("kmgtp".index(m.group(2).lower()) + 1 if m.group(2) else 0) if m else -1
    if not 0 <= size < 1 << 62:
        raise UsageError(f"invalid {what}: want a size such as 10m")
    return int(size)


# -- rlimits, capabilities -------------------------------------------------------------------

def _has_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return bool(mask >> bit & 1)


def _settable(kind: str, value: int) -> int:
    """podman's default for nofile/nproc, lowered to what this process may set: without
    CAP_SYS_RESOURCE no hard limit can rise above pallet's own (podman fails there instead),
    and nofile never above ``fs.nr_open``."""
    import resource

    res = resource.RLIMIT_NOFILE if kind == "RLIMIT_NOFILE" else resource.RLIMIT_NPROC
    if kind == "RLIMIT_NOFILE":
        try:
            with open("/proc/sys/fs/nr_open") as f:
                value = min(value, int(f.read().strip()))
        except (OSError, ValueError):
            pass
    from .._userns import rootless_uid

    # rootless: CAP_SYS_RESOURCE in pallet's user namespace raises no limit (the host's counts)
    if rootless_uid() is not None or not _has_cap(CAP_SYS_RESOURCE):
        hard = resource.getrlimit(res)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
    return value


def rlimits(flag_ulimits: list[str], conf) -> list[list]:
    """``--ulimit`` (which replaces containers.conf's ``default_ulimits``), then nofile and
    nproc at podman's default when neither set them."""
    out = []
    if flag_ulimits:
        out = [list(parse_ulimit(u)) for u in flag_ulimits]
    else:
        for u in conf.get("default_ulimits", []):
            try:
                out.append(list(parse_ulimit(u)))
            except UsageError as e:
                raise conf.bad("default_ulimits", str(e)) from None
    seen = {r[0] for r in out}
    for kind in ("RLIMIT_NOFILE", "RLIMIT_NPROC"):
        if kind not in seen:
            v = _settable(kind, RLIMIT_DEFAULT)
            out.append([kind, v, v])
    return out


def default_caps(conf) -> list[str]:
    from ..oci.runtime_spec import cap_name

    caps = conf.get("default_capabilities")
    if caps is None:
        return list(BUILTIN_CAPS)
    return [cap_name(c, "capability") for c in caps]


# -- volumes and --mount ---------------------------------------------------------------------

def parse_mount(text: str) -> dict:
    """``--mount type=bind|volume|tmpfs,src=,dst=,ro[=true|false],...`` -> a bind
    (``source``), a volume (``volume``: a name, None for an anonymous one) or a tmpfs."""
    fields: dict = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if key in fields and key != "opt":
            raise UsageError(f"invalid --mount {text!r}: {key} given twice")
        fields[key] = value if eq else None
    kind = fields.pop("type", None)
    dst = None
    for k in ("dst", "destination", "target"):
        if k in fields:
            dst = fields.pop(k)
    src = None
    for k in ("src", "source"):
        if k in fields:
            src = fields.pop(k)
    ro = False
    for k in ("ro", "readonly"):
        if k in fields:
            v = fields.pop(k)
            if v not in (None, "true", "false", "1", "0"):
                raise UsageError(f"invalid --mount {text!r}: {k}={v}: want true or false")
            ro = v in (None, "true", "1")
    if not dst or not dst.startswith("/") or "\0" in dst:
        raise UsageError(f"invalid --mount {text!r}: dst= must be an absolute path in the container")
    dst = os.path.normpath(dst)
    if kind == "bind":
        opts = []
        for k, v in fields.items():
            if k == "bind-propagation" and v in ("private", "rprivate", "shared", "rshared", "slave", "rslave"):
                opts.append(v)
            elif k in ("relabel", "z", "Z", "consistency"):
                pass
            else:
                raise UsageError(f"invalid --mount {text!r}: unknown option {k!r} for a bind mount")
        if not src:
            raise UsageError(f"invalid --mount {text!r}: a bind mount needs src=")
        return _bind(src, dst, ro, f"--mount {text}", opts)
    if kind == "volume":
        for k in fields:
            if k not in ("volume-nocopy", "z", "Z", "relabel"):
                raise UsageError(f"invalid --mount {text!r}: unknown option {k!r} for a volume")
        if src:
            from .volumes import check_name

            check_name(src)
        out = {"volume": src or None, "destination": dst, "readonly": ro}
        if "volume-nocopy" in fields:
            out["nocopy"] = True
        return out
    if kind == "tmpfs":
        opts = ["rw", "noexec", "nosuid", "nodev"] if not ro else ["ro", "noexec", "nosuid", "nodev"]
        for k, v in fields.items():
            if k == "tmpfs-size" and v and v.rstrip("kKmMgG%").isdigit() and len(v) - len(v.rstrip("kKmMgG%")) <= 1:
                opts.append(f"size={v}")
            elif k == "tmpfs-mode" and v and all(c in "01234567" for c in v):
                opts.append(f"mode={v}")
            elif k in ("notmpcopyup", "tmpcopyup"):
                pass
            else:
                raise UsageError(f"invalid --mount {text!r}: unknown option {k!r} for a tmpfs")
        if src:
            raise UsageError(f"invalid --mount {text!r}: a tmpfs takes no src=")
        return {"tmpfs": True, "destination": dst, "options": opts}
    raise UsageError(f"invalid --mount {text!r}: type= must be bind, volume or tmpfs")


def _bind(src: str, dst: str, ro: bool, what: str, propagation=()) -> dict:
    if not src.startswith("/") or "\0" in src:
        raise UsageError(f"invalid {what}: the host path must be absolute")
    if not os.path.exists(src):
        raise UsageError(f"invalid {what}: {src}: no such file or directory")
    out = {"source": os.path.realpath(src), "destination": dst, "readonly": ro}
    if propagation:
        out["options"] = list(propagation)
    return out


def parse_volume(text: str) -> dict:
    """``-v /HOST:/CTR[:OPTS]``, ``-v NAME:/CTR[:OPTS]`` (a named volume, made when missing, as
    podman does) or ``-v /CTR`` (an anonymous volume)."""
    parts = text.split(":")
    if len(parts) > 3 or "\0" in text or not text:
        raise UsageError(f"invalid -v {text!r}: want /HOST/PATH:/CONTAINER/PATH[:ro] or NAME:/PATH")
    if len(parts) == 1:
        if not parts[0].startswith("/"):
            raise UsageError(f"invalid -v {text!r}: the container path must be absolute")
        return {"volume": None, "destination": os.path.normpath(parts[0]), "readonly": False}
    src, dst = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    if not dst.startswith("/"):
        raise UsageError(f"invalid -v {text!r}: the container path must be absolute")
    for o in opts:
        if o not in ("ro", "rw", "z", "Z", "nocopy", "copy", "U", "idmap"):
            raise UsageError(f"invalid -v {text!r}: unknown option {o!r}")
    ro = "ro" in opts
    if src.startswith("/"):
        out = _bind(src, dst, ro, f"-v {text!r}")
        if "U" in opts:  # podman's: the source is chowned to the container's user at start
            out["chown"] = True
        if "idmap" in opts:  # id-mapped with the container's user namespace's maps
            out["idmap"] = True
        return out
    from .volumes import check_name

    try:
        check_name(src)
    except UsageError:
        raise UsageError(f"invalid -v {text!r}: {src!r} is neither an absolute host path nor a volume name") from None
    out = {"volume": src, "destination": os.path.normpath(dst), "readonly": ro}
    if "nocopy" in opts:
        out["nocopy"] = True
    if "U" in opts:
        out["chown"] = True
    if "idmap" in opts:
        out["idmap"] = True
    return out


# -- everything ------------------------------------------------------------------------------

def resolve(x: Extra, conf, network_mode: str, warn=None) -> dict:
    """The checked values kept in the container's record (``meta["extra"]``)."""
    out: dict = {}
    out["rlimits"] = rlimits(x.ulimits, conf)
    out["add_hosts"] = [parse_add_host(h) for h in x.add_hosts]
    dns = x.dns or conf.get("dns_servers", [])
    search = x.dns_search or conf.get("dns_searches", [])
    options = x.dns_options or conf.get("dns_options", [])
    if network_mode == "none":
        for flag, given in (("dns", x.dns), ("dns-search", x.dns_search), ("dns-option", x.dns_options)):
            if given:
                raise UsageError(f"conflicting options: {flag} and the network mode: none")
    out["dns"] = [parse_ip(d, "--dns") for d in dns]
    out["dns_search"] = [_no_space(s, "--dns-search") for s in search]
    out["dns_options"] = [_no_space(s, "--dns-option") for s in options]
    sec = parse_security_opts(x.security_opts)
    out["no_new_privileges"] = bool(sec["no_new_privileges"])
    seccomp = sec["seccomp"]
    if seccomp is None:
        seccomp = conf.get("seccomp_profile") or "default"
    out["seccomp"] = seccomp
    out["seccomp_explicit"] = sec["seccomp"] is not None
    out["devices"] = [parse_device(d) for d in x.devices]
    out["device_cgroup_rules"] = [parse_device_cgroup_rule(r) for r in x.device_cgroup_rules]
    log_driver = x.log_driver or conf.get("log_driver") or "k8s-file"
    try:
        out["log"] = parse_log(log_driver, x.log_opts)
    except UsageError as e:
        if x.log_driver:
            raise
        raise conf.bad("log_driver", str(e)) from None
    if conf.get("log_size_max") and conf.get("log_size_max") > 0 and out["log"]["max_size"] is None:
        out["log"]["max_size"] = conf.get("log_size_max")
    ns = {}
    for flag, kind in NAMESPACE_FLAGS.items():
        value = getattr(x, flag)
        if value is None:
            value = conf.get(flag + ("" if flag == "cgroupns" else "ns"), "") or ""
            if flag == "cgroupns" and not value:
                value = "private" if _cgroup2_only() else "host"  # podman's default by cgroup version
        ns[kind] = parse_namespace(flag, value)
    out["namespaces"] = ns
    from . import userns as userns_mod

    out["userns"] = userns_mod.parse(x.userns, x.uidmap, x.gidmap, conf)
    out["default_caps"] = default_caps(conf)
    out["sysctl"] = _sysctls(conf, network_mode, ns)
    # podman's: containers.conf's env (else c/common's built-in PATH), and TERM=xterm, under the image's
    out["default_env"] = list(conf.get("env", [])) + ["TERM=xterm"]
    out["no_hosts"] = bool(conf.get("no_hosts", False))
    return out


def _cgroup2_only() -> bool:
    """podman's default cgroupns is private on cgroup v2 only (host on v1 and hybrid)."""
    kind = ""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if left.split()[4] == "/sys/fs/cgroup" and right:
                    kind = right.split()[0]
    except (OSError, IndexError):
        return False
    return kind == "cgroup2"


def _sysctls(conf, network_mode: str, ns: dict) -> dict:
    """containers.conf's default_sysctls, less those a shared namespace would set on the host
    (podman's rule: net.* with the host network, kernel.*/fs.mqueue.* with the host's IPC)."""
    out = {}
    for s in conf.get("default_sysctls", []):
        k, _, v = s.partition("=")
        k, v = k.strip(), v.strip()
        if k.startswith("net.") and network_mode == "host":
            continue
        if k.startswith(("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")) and ns.get("ipc") == "host":
            continue
        if k.startswith(("kernel.hostname", "kernel.domainname")) and ns.get("uts") == "host":
            continue
        out[k] = v
    return out


def spec_options(extra: dict, privileged: bool, cap_add, cap_drop) -> dict:
    """The ``SpecOptions`` keyword arguments for ``extra`` (``meta["extra"]``)."""
    from ..oci import runtime_spec as rs

    kw: dict = {}
    kw["rlimits"] = tuple(rs.Rlimit(t, s, h) for t, s, h in extra["rlimits"])
    kw["no_new_privileges"] = extra["no_new_privileges"]
    kw["default_caps"] = tuple(extra["default_caps"])
    kw["default_env"] = tuple(extra["default_env"])
    kw["sysctl"] = dict(extra["sysctl"])
    kw["devices"] = tuple(rs.Device(d["path"], d["type"], d["major"], d["minor"], d["file_mode"], d["uid"],
                                    d["gid"], d["access"]) for d in extra["devices"])
    namespaces = []
    for t in ("pid", "network", "ipc", "uts", "mount", "cgroup"):
        v = extra["namespaces"].get(t, None) if t in ("pid", "ipc", "uts", "cgroup") else None
        if v == "host" or (t == "cgroup" and t not in extra["namespaces"]):
            continue
        # container:ID -> /proc/PID/ns/TYPE of that container, set when it starts
        namespaces.append(rs.Namespace(t, None if v and v.startswith("container:") else v))
    uns = extra.get("userns")
    if uns:  # its maps are set by create (auto's are chosen there); joined by path: the namespace's own
        namespaces.append(rs.Namespace("user", uns.get("path")))
        if uns["mode"] != "ns" and uns.get("uid"):
            kw["uid_mappings"] = tuple(rs.IDMap(*m) for m in uns["uid"])
            kw["gid_mappings"] = tuple(rs.IDMap(*m) for m in uns["gid"])
    kw["namespaces"] = tuple(namespaces)
    if extra["namespaces"].get("ipc") == "host":  # the host's shared memory and queues (podman's binds)
        kw["mounts"] = tuple(rs.Mount(d, "bind", d, ("rbind", "nosuid", "noexec", "nodev"))
                             for d in ("/dev/shm", "/dev/mqueue") if os.path.isdir(d))
    seccomp = extra["seccomp"]
    if seccomp != "unconfined" and (not privileged or extra["seccomp_explicit"]):
        from .seccomp_profile import load

        bounding = rs.capabilities(extra["default_caps"], cap_add, cap_drop, privileged=privileged)["bounding"]
        kw["seccomp"] = load(None if seccomp == "default" else seccomp, bounding)
    return kw
