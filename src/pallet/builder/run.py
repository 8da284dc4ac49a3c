"""RUN: a command in a working container through an OCI runtime's command line.

We write the bundle's ``config.json`` ourselves (the working container's mount is the root,
the network :mod:`.network` gives, ``/etc/hosts`` and ``/etc/resolv.conf`` bound read-only
from temp files so they never land in a layer) and call ``RUNTIME run --bundle DIR ID``,
whose exit status is the command's. Mount points the runtime had to create in the root (a
volume's target, ``/etc/hosts`` in an image without one) are removed afterwards, so they do
not end up in the layer either.
"""

from __future__ import annotations

import os
import shutil
import stat as _stat
import subprocess
import sys

from .._std import json
from .. import _rootfs
from .._fs import drop_owner_lock, hold_owner_lock
from ..errors import BuildError, PalletError
from . import hooks as _hooks

_runtime_cache: dict[str, tuple[str, str | None]] = {}


def _default_choice() -> tuple[str, str | None]:
    """(the runtime RUN uses without ``--runtime``, where that choice came from). buildah 1.28's
    order: ``$PALLET_BUILD_RUNTIME`` (pallet's own), ``$BUILDAH_RUNTIME``, containers.conf's
    ``[engine] runtime`` (a name its ``[engine.runtimes]`` table gives a path for, else one on
    PATH); with none of them pallet-runtime when its console script is installed and answers,
    else runc."""
    if "default" in _runtime_cache:
        return _runtime_cache["default"]
    for var in ("PALLET_BUILD_RUNTIME", "BUILDAH_RUNTIME"):
        if os.environ.get(var):
            choice: tuple[str, str | None] = (os.environ[var], f"${var}")
            break
    else:
        from ..containers import conf as _conf

        conf = _conf.load()
        name = conf.runtime
        if name:
            found = next((p for p in conf.runtimes.get(name, ()) if os.path.isabs(p) and os.access(p, os.X_OK)
                          and not os.path.isdir(p)), None)
            choice = (found or name, conf.where("runtime"))
        else:
            choice = ("runc", None)
            exe = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
            if os.path.exists(exe) and _answers(exe):
                choice = (exe, None)
    _runtime_cache["default"] = choice
    return choice


def default_runtime() -> str:
    """The runtime RUN uses without ``--runtime`` (see :func:`_default_choice`)."""
    return _default_choice()[0]


def _answers(exe: str) -> bool:
    """Whether ``exe features`` exits 0 with a JSON object. The answer is kept (root only, in
    ``containers.conf``'s host cache directory) keyed by the identity of the script, of the
    interpreter and of the module it runs (path, device, inode, size, mtime, ctime):
    a build then does not start a whole runtime process (~8 ms of CPU) to learn what the last
    one learnt, and any change to the installation asks again. Only a positive answer is kept,
    one file per script path (several installations do not take turns overwriting one)."""
    from ..containers import conf as _conf

    key = _probe_key(exe)
    cache_dir = _conf.host_cache_dir() if key is not None else None
    name = "build-runtime-" + _conf.short_hash(os.fsencode(exe)) + ".json"
    path = os.path.join(cache_dir, name) if cache_dir else None
    if path is not None:
        try:
            with open(path, "rb") as f:
                if json.loads(f.read(1 << 16)) == key:
                    return True
        except (OSError, ValueError, RecursionError):
            pass
    try:
        p = subprocess.run([exe, "features"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if p.returncode != 0 or not p.stdout.strip().startswith(b"{"):
        return False
    if path is not None and _probe_key(exe) == key:
        from .. import _fs

        try:  # volatile (/run): no fsync; a failure only means no cache
            _fs.write_atomic(path, json.dumps(key).encode(), 0o600, durable=False)
        except OSError:
            pass
    return True


def _probe_key(exe: str) -> list | None:
    """What the probe's answer depends on: the console script, the interpreter it names
    (through symlinks: this process's, as the script is this installation's) and the module
    it runs (``pallet.cli.runtime``; its path only, nothing imported for it)."""
    from ..containers.conf import files_identity

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return files_identity([exe, os.path.realpath(sys.executable), os.path.join(pkg, "cli", "runtime.py")])


def runtime_path(name: str | None) -> str:
    where = "use --runtime NAME|PATH"
    if not name:
        name, origin = _default_choice()
        if origin:
            where = origin
    if "/" in name:
        if not os.access(name, os.X_OK):
            raise BuildError(f"the runtime {name} is not an executable file ({where})")
        return name
    if name == "pallet-runtime":
        exe = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
        if os.path.exists(exe):
            return exe
    found = shutil.which(name)
    if not found:
        raise BuildError(f'OCI runtime "{name}" not found ({where})')  # podman's words
    return found


class RunExtras:
    """What ``build``'s resource and security flags ask of every RUN step (buildah's
    ``--cpu-shares``, ``--memory``, ``--ulimit``, ``--cap-add``, ``--device``, ``--dns``,
    ``--add-host``, ``--shm-size``, ``--cgroup-parent``, ``--pid``/``--ipc``/``--uts`` host ...),
    already checked: :func:`run_extras` makes one from the flags' texts."""

    def __init__(self, *, resources=None, rlimits=(), cap_add=(), cap_drop=(), devices=(), dns=(),
                 dns_search=(), dns_options=(), add_hosts=(), no_hosts: bool = False, shm_size: int | None = None,
                 cgroup_parent: str | None = None, host_namespaces=(), seccomp=None,
                 no_new_privileges: bool = False, runtime_flags=(), hooks=(), default_caps=None):
        self.resources = resources            # oci.runtime_spec.Resources or None
        self.rlimits = tuple(rlimits)         # oci.runtime_spec.Rlimit
        self.cap_add = tuple(cap_add)
        self.cap_drop = tuple(cap_drop)
        self.devices = tuple(devices)         # (host path, container path, permissions)
        self.dns = tuple(dns)
        self.dns_search = tuple(dns_search)
        self.dns_options = tuple(dns_options)
        self.add_hosts = tuple(add_hosts)     # (name, address)
        self.no_hosts = no_hosts
        self.shm_size = shm_size
        self.cgroup_parent = cgroup_parent
        self.host_namespaces = frozenset(host_namespaces)  # of pid, ipc, uts, cgroup
        #: None: containers.conf's seccomp_profile, else containers-common's (buildah's default);
        #: "unconfined": no filter; else a profile's path (containers-common's format)
        self.seccomp = seccomp
        self.no_new_privileges = no_new_privileges
        self.runtime_flags = tuple(runtime_flags)
        self.hooks = tuple(hooks)             # --hooks-dir's, as builder.hooks.load reads them
        #: containers.conf's default_capabilities (None: oci.runtime_spec.DEFAULT_CAPS)
        self.default_caps = tuple(default_caps) if default_caps is not None else None


NO_EXTRAS = RunExtras()


def _size(text: str, flag: str, minus_one: bool = False) -> int:
    from ..errors import UsageError
    from ..storage.options import parse_size

    if minus_one and text.strip() == "-1":
        return -1
    try:
        return parse_size(text, flag)
    except PalletError:
        raise UsageError(f"invalid {flag} {text!r}: want a size such as 64m or 1g") from None


_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
            "rtprio", "rttime", "sigpending", "stack", "as")


def parse_ulimit(text: str):
    """``NAME=SOFT[:HARD]`` (as podman's and buildah's ``--ulimit``; -1 is unlimited)."""
    from ..errors import UsageError
    from ..oci.runtime_spec import Rlimit

    name, sep, value = text.partition("=")
    soft, _, hard = value.partition(":")
    hard = hard or soft

    def num(t):
        t = t.strip()
        if t == "-1" or t == "unlimited":
            return (1 << 64) - 1
        if not t.isdigit():
            raise UsageError(f"invalid --ulimit {text!r}: want NAME=SOFT[:HARD] with numbers")
        return int(t)

    if not sep or name.lower() not in _ULIMITS:
        raise UsageError(f"invalid --ulimit {text!r}: want NAME=SOFT[:HARD], NAME one of {', '.join(_ULIMITS)}")
    s, h = num(soft), num(hard)
    if s > h:
        raise UsageError(f"invalid --ulimit {text!r}: the soft limit is above the hard limit")
    return Rlimit(name.lower(), s, h)


def parse_device(text: str) -> tuple[str, str, str]:
    """``HOST[:CONTAINER][:PERMISSIONS]`` (as ``--device``)."""
    from ..errors import UsageError

    parts = text.split(":")
    perms = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") and not parts[-1].startswith("/"):
        perms = parts.pop()
    if len(parts) == 1:
        parts.append(parts[0])
    if len(parts) != 2 or not parts[0].startswith("/") or not parts[1].startswith("/"):
        raise UsageError(f"invalid --device {text!r}: want /HOST/PATH[:/CONTAINER/PATH][:PERMISSIONS]")
    if not os.path.exists(parts[0]):
        raise UsageError(f"--device {text}: {parts[0]}: no such file or directory")
    return parts[0], parts[1], perms


def run_extras(*, cpu_shares=None, cpu_period=None, cpu_quota=None, cpuset_cpus=None, cpuset_mems=None,
               memory=None, memory_swap=None, shm_size=None, ulimits=(), cap_add=(), cap_drop=(), devices=(),
               dns=(), dns_search=(), dns_options=(), add_hosts=(), no_hosts=False, network="host",
               cgroup_parent=None, pid=None, ipc=None, uts=None, cgroupns=None, security_opts=(),
               runtime_flags=(), hooks_dirs=()) -> RunExtras:
    """A :class:`RunExtras` from build's flags (texts as typed), each checked: a wrong one is a
    :class:`UsageError` naming it."""
    from ..errors import UsageError
    from ..oci.runtime_spec import Resources

    if network == "none":
        for flag, given in (("--dns", dns), ("--dns-option", dns_options), ("--dns-search", dns_search)):
            if given:
                raise UsageError(f"the {flag} option cannot be used with --network=none")
    if no_hosts and add_hosts:
        raise UsageError("--no-hosts and --add-host conflict, can not be used together")
    hosts = []
    for h in add_hosts:
        name, sep, addr = h.partition(":")
        if not sep or not name or not addr or any(c.isspace() for c in h):
            raise UsageError(f"invalid --add-host {h!r}: want HOST:IP")
        hosts.append((name, addr))
    for d in dns:
        import ipaddress

        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise UsageError(f"invalid --dns {d!r}: not an IP address") from None
    for what, v in (("--dns-search", dns_search), ("--dns-option", dns_options)):
        for x in v:
            if not x or any(c.isspace() for c in x):
                raise UsageError(f"invalid {what} {x!r}")
    mem = _size(memory, "--memory") if memory else None
    swap = _size(memory_swap, "--memory-swap", minus_one=True) if memory_swap else None
    if swap is not None and swap != -1 and mem is not None and swap < mem:
        raise UsageError("--memory-swap must be at least --memory (or -1 for unlimited swap)")
    if swap is not None and mem is None and swap != -1:
        raise UsageError("--memory-swap needs --memory")
    for flag, v in (("--cpuset-cpus", cpuset_cpus), ("--cpuset-mems", cpuset_mems)):
        if v is not None and (not v or not all(c.isdigit() or c in ",-" for c in v)):
            raise UsageError(f"invalid {flag} {v!r}: want a list such as 0-3,5")
    for flag, v in (("--cpu-shares", cpu_shares), ("--cpu-period", cpu_period), ("--cpu-quota", cpu_quota)):
        if v is not None and v < (-1 if flag == "--cpu-quota" else 0):
            raise UsageError(f"invalid {flag} {v}: negative")
    res = Resources(memory=mem, memory_swap=swap, cpu_shares=cpu_shares or None, cpu_quota=cpu_quota or None,
                    cpu_period=cpu_period or None, cpuset_cpus=cpuset_cpus or None, cpuset_mems=cpuset_mems or None)
    host_ns = []
    for flag, v, ns in (("--pid", pid, "pid"), ("--ipc", ipc, "ipc"), ("--uts", uts, "uts"),
                        ("--cgroupns", cgroupns, "cgroup")):
        if v in (None, "", "private"):
            continue
        if v != "host":
            raise UsageError(f"invalid {flag} {v!r}: want private or host")
        host_ns.append(ns)
    if cgroup_parent is not None and (not cgroup_parent or ".." in cgroup_parent.split("/")
                                      or "\0" in cgroup_parent):
        raise UsageError(f"invalid --cgroup-parent {cgroup_parent!r}")
    seccomp, nnp = None, False
    for so in security_opts:
        k, sep, v = so.partition("=") if "=" in so else so.partition(":")
        if k == "seccomp" and sep:
            if v != "unconfined":
                from ..containers.seccomp_profile import load
                from ..oci.runtime_spec import DEFAULT_CAPS

                try:  # read and checked now (converted for each step's capabilities, cached)
                    load(v, DEFAULT_CAPS)
                except PalletError as e:
                    raise UsageError(f"--security-opt {so}: {e}") from None
            seccomp = v
        elif k == "no-new-privileges" and (not sep or v in ("true", "")):
            nnp = True
        elif k in ("label", "apparmor", "mask", "unmask") and sep:
            continue  # no SELinux or AppArmor here; masks: the runtime's defaults stay (see docs/build.md)
        else:
            raise UsageError(f"invalid --security-opt {so!r}: want seccomp=PATH|unconfined, no-new-privileges, "
                             "label=..., apparmor=...")
    # containers.conf's [containers] defaults, as buildah gives them to RUN steps: the
    # capabilities, and the ulimits when no --ulimit is given
    from ..containers import conf as _conf
    from ..oci.runtime_spec import cap_name

    conf = _conf.load()
    caps = conf.get("default_capabilities")
    try:
        default_caps = [cap_name(c, "capability") for c in caps] if caps is not None else None
    except PalletError as e:
        raise conf.bad("default_capabilities", str(e)) from None
    if not ulimits:
        try:
            rlimits = [parse_ulimit(u) for u in conf.get("default_ulimits", [])]
        except PalletError as e:
            raise conf.bad("default_ulimits", str(e)) from None
    else:
        rlimits = [parse_ulimit(u) for u in ulimits]
    return RunExtras(resources=res if res.to_dict() else None, rlimits=rlimits, default_caps=default_caps,
                     cap_add=_caps(cap_add), cap_drop=_caps(cap_drop), devices=[parse_device(d) for d in devices],
                     dns=dns, dns_search=dns_search, dns_options=dns_options, add_hosts=hosts, no_hosts=no_hosts,
                     shm_size=_size(shm_size, "--shm-size") if shm_size else None, cgroup_parent=cgroup_parent,
                     host_namespaces=host_ns, seccomp=seccomp, no_new_privileges=nnp, runtime_flags=runtime_flags,
                     hooks=_hooks.load(list(hooks_dirs)) if hooks_dirs else ())


def _seccomp(x: RunExtras) -> dict | None:
    """A RUN step's ``linux.seccomp``, as buildah's: containers.conf's ``seccomp_profile`` or
    containers-common's profile (no file: no filter), converted as podman does for the step's
    bounding set; none with ``seccomp=unconfined``."""
    if x.seccomp == "unconfined":
        return None
    from ..containers import conf as _conf
    from ..containers.seccomp_profile import load
    from ..oci import runtime_spec as rs

    path = x.seccomp
    if path is None:
        path = _conf.load().get("seccomp_profile") or None
    default = x.default_caps if x.default_caps is not None else rs.DEFAULT_CAPS
    bounding = rs.capabilities(default, x.cap_add, x.cap_drop)["bounding"]
    return load(path, bounding)


def _caps(items) -> list[str]:
    """``--cap-add cap_sys_ptrace`` or ``CHOWN,DAC_OVERRIDE``: names, as given (the spec
    generator checks and normalises them)."""
    return [c.strip() for it in items for c in it.split(",") if c.strip()]


def human_size(n: float) -> str:
    """docker/go-units' HumanSize: decimal units, 4 significant digits (``352.5kB``); also
    ``system df``'s sizes."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def _go_seconds(s: float) -> str:
    """A duration rounded to the millisecond, as Go prints one (0s, 12ms, 1.234s)."""
    ms = round(s * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    return f"{ms / 1000:g}s"


class RusageMeter:
    """``--log-rusage``: what the build's reaped children (runtimes, RUN commands, helpers)
    used, as buildah 1.28's stage executor logs it: made when a stage starts (before its base
    image is pulled), :meth:`log` before each instruction and once when the stage ends, each
    line the use since the one before in ``pkg/rusage.FormatDiff``'s words (``0s(system)
    3ms(user) 52ms(elapsed) 0B input 4.096kB output``)."""

    def __init__(self, out):
        self.out = out
        self.t0, self.r0 = self._now()

    @staticmethod
    def _now():
        import resource
        import time

        return time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)

    def log(self) -> None:
        t, r = self._now()
        self.out(f"{_go_seconds(r.ru_stime - self.r0.ru_stime)}(system) "
                 f"{_go_seconds(r.ru_utime - self.r0.ru_utime)}(user) "
                 f"{_go_seconds(t - self.t0)}(elapsed) "
                 f"{human_size((r.ru_inblock - self.r0.ru_inblock) * 512)} input "
                 f"{human_size((r.ru_oublock - self.r0.ru_oublock) * 512)} output")
        self.t0, self.r0 = t, r


class RunOptions:
    __slots__ = ("env", "cwd", "user", "network", "mounts", "hostname", "runtime", "state_root", "stdin",
                 "stdout", "stderr", "runroot", "graphroot", "network_config_dir", "extras", "shared_network",
                 "release_network")

    def __init__(self, *, env: list[str] | None = None, cwd: str = "/", user: tuple = (0, 0, []),
                 network: str = "host", mounts: list[dict] | None = None, hostname: str = "",
                 runtime: str | None = None, state_root: str | None = None, stdin=None, stdout=None, stderr=None,
                 runroot: str | None = None, graphroot: str | None = None, network_config_dir: str | None = None,
                 extras: RunExtras | None = None, shared_network=None, release_network: bool = False):
        self.extras = extras or NO_EXTRAS
        #: a build's network.BuildNetworks: the command joins its namespace on ``network``
        #: (None: a namespace is attached for this one command and torn down after it);
        #: ``release_network``: its last user, which starts the teardown once the command exited
        self.shared_network = shared_network
        self.release_network = release_network
        self.env = list(env or [])
        self.cwd = cwd or "/"
        self.user = user
        self.network = network or "host"
        self.mounts = list(mounts or [])
        self.hostname = hostname
        self.runtime = runtime
        self.state_root = state_root
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        #: for a network other than host/none (builder/network.py): the store's run root and
        #: graph root, and the networks' directory (None: the containers' default)
        self.runroot = runroot
        self.graphroot = graphroot
        self.network_config_dir = network_config_dir


def spec(rootfs: str, argv: list[str], o: RunOptions, hosts: str | None, resolv: str, netns: str | None = None,
         cid: str = "") -> dict:
    """The bundle's config, from the one runtime-spec generator (``oci.runtime_spec``): buildah's
    capabilities (effective only for root), masked and read-only paths, a network namespace
    unless host networking (``netns``: the attached one to join), ``/etc/hosts`` (unless
    ``--no-hosts``: ``hosts`` None) and ``/etc/resolv.conf`` bound read-only, and the build's
    :class:`RunExtras` (resources, limits, capabilities, devices, namespaces shared with the host,
    ``/dev/shm``'s size, the cgroup parent)."""
    from ..oci import runtime_spec as rs

    x = o.extras
    uid, gid, extra = o.user
    namespaces = [rs.Namespace(t) for t in ("pid", "ipc", "uts", "mount") if t not in x.host_namespaces]
    if o.network != "host":
        namespaces.append(rs.Namespace("network", netns))
    mounts = [rs.Mount.bind(resolv, "/etc/resolv.conf", readonly=True)]
    if hosts is not None:
        mounts.insert(0, rs.Mount.bind(hosts, "/etc/hosts", readonly=True))
    # the container's own cgroups at /sys/fs/cgroup, read-only, as buildah mounts them (the
    # host's /sys bound for host networking would show the host's root cgroups there)
    mounts.append(rs.Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")))
    if x.shm_size is not None:
        mounts.append(rs.Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777",
                                                            f"size={x.shm_size}")))
    mounts += [rs.Mount.bind(src, dst) for src, dst, _perms in x.devices]
    mounts += [rs.Mount(m["destination"], m.get("type"), m.get("source"), m.get("options") or ()) for m in o.mounts]
    cgroups_path = None
    if x.cgroup_parent:
        cgroups_path = "/" + "/".join(p for p in x.cgroup_parent.split("/") if p) + "/" + (cid or "pallet-build")
    options = rs.SpecOptions(rootfs=rootfs, command=argv, env=o.env, user=rs.User(uid, gid, tuple(extra)), workdir=o.cwd,
                             hostname=o.hostname, mounts=mounts, namespaces=namespaces, rlimits=x.rlimits,
                             cap_add=x.cap_add, cap_drop=x.cap_drop, resources=x.resources,
                             default_caps=x.default_caps if x.default_caps is not None else rs.DEFAULT_CAPS,
                             cgroups_path=cgroups_path, seccomp=_seccomp(x), no_new_privileges=x.no_new_privileges)
    doc = rs.generate(options)
    if x.hooks:
        hooks = _hooks.for_step(x.hooks, argv[0] if argv else "", any(m.get("type") == "bind" for m in o.mounts))
        if hooks:
            doc["hooks"] = hooks
    if uid != 0:  # buildah's rule: a non-root user's --cap-add goes to the bounding set only
        caps = doc["process"]["capabilities"]
        doc["process"]["capabilities"] = {"bounding": caps["bounding"], "effective": [], "permitted": []}
    rules = [_device_rule(src, perms) for src, _dst, perms in x.devices]
    rules = [r for r in rules if r is not None]
    if rules:  # the devices cgroup lets the container use them (the runtime's defaults stay)
        doc["linux"].setdefault("resources", {}).setdefault("devices", []).extend(rules)
    return doc


def _device_rule(path: str, perms: str) -> dict | None:
    """A devices-cgroup rule allowing a device node (None for a directory of them: each node
    the runtime's defaults do not allow stays denied)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if _stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif _stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"allow": True, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "access": perms}


def _hosts_file(path: str, hostname: str, host_net: bool, ips=(), add_hosts=()) -> None:
    from .._fs import text_lines

    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if host_net:
        lines = text_lines("/etc/hosts", lines)
    lines += [f"{addr}\t{name}" for name, addr in add_hosts]
    lines += [f"{ip}\t{hostname}" for ip in ips] or [f"127.0.1.1\t{hostname}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _resolv_file(path: str, host_net: bool, attached=None, extras: RunExtras = NO_EXTRAS) -> None:
    """The host's resolv.conf with the host's network; on a network, the network's DNS servers
    and the host's nameservers that are not on its loopback (unreachable from the namespace);
    then ``--dns``, ``--dns-search``, ``--dns-option`` replace the lines of their kind."""
    text = ""
    if host_net or attached is not None:
        try:
            with open("/etc/resolv.conf") as f:
                text = f.read()
        except OSError:
            text = ""
    if attached is not None:
        lines = [f"nameserver {d}" for d in attached.dns]
        for line in text.splitlines():
            w = line.split()
            if w[:1] == ["nameserver"] and len(w) > 1 and (w[1].startswith("127.") or w[1] == "::1"):
                continue
            lines.append(line)
        text = "\n".join(lines) + "\n"
    lines = text.splitlines()
    # --dns, --dns-search, --dns-option replace the host's lines of their kind
    for word, given in (("nameserver", [f"nameserver {d}" for d in extras.dns]),
                        ("search", [f"search {' '.join(extras.dns_search)}"] if extras.dns_search else []),
                        ("options", [f"options {' '.join(extras.dns_options)}"] if extras.dns_options else [])):
        if given:
            lines = [ln for ln in lines if ln.split()[:1] != [word]] + given
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def run(rootfs: str, argv: list[str], o: RunOptions, scratch_dir: str) -> int:
    """Run ``argv`` with ``rootfs`` as its root; returns its exit status."""
    if not argv:
        raise BuildError("nothing to run: no command given")
    runtime = runtime_path(o.runtime)
    bundle = os.path.join(scratch_dir, "bundle-" + os.urandom(4).hex())
    os.makedirs(bundle, 0o700)
    cid = "pallet-build-" + os.urandom(8).hex()
    attached = own = None
    try:
        if o.shared_network is not None and o.shared_network.shares(o.network):
            attached = o.shared_network.get(o.network)
        elif o.network not in ("host", "none"):
            from .network import Attached

            attached = own = Attached(o.network, o.runroot or scratch_dir, o.network_config_dir, o.graphroot,
                                      o.hostname or cid).__enter__()
        hosts = os.path.join(bundle, "hosts")
        resolv = os.path.join(bundle, "resolv.conf")
        _hosts_file(hosts, o.hostname or "pallet", o.network == "host", attached.ips if attached else (),
                    o.extras.add_hosts)
        _resolv_file(resolv, o.network == "host", attached, o.extras)
        doc = spec(rootfs, argv, o, None if o.extras.no_hosts else hosts, resolv,
                   attached.path if attached else None, cid)
        # stubs for what is not image content go again afterwards; for a RUN --mount's target
        # the parent directories stay (0755), and for a build volume (-v) the mount point
        # itself too (an empty directory or file), as buildah leaves them. All made and
        # removed by fd inside the root (pallet._rootfs), never through a path string
        root_fd = _rootfs.open_root(rootfs)
        created: list = []
        try:
            # /run is there for the command, and stays as buildah leaves it (its .containerenv goes)
            _make_parents(root_fd, "/run/.containerenv")
            for m in o.mounts:
                if m.get("keep"):
                    _make_parents(root_fd, m["destination"])
                if m.get("keep") == "target":
                    _make_target(root_fd, m["destination"], os.path.isdir(m["source"]))
            created = _missing_mountpoints(root_fd, doc["mounts"])
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(doc, f)
            cmd = [runtime] + ["--" + f.lstrip("-") for f in o.extras.runtime_flags]
            owner = None
            if o.state_root:
                os.makedirs(o.state_root, 0o700, exist_ok=True)
                cmd += ["--root", o.state_root]
                reap_run_containers(o.state_root)
                owner = hold_owner_lock(_owners(o.state_root), cid, json.dumps(cmd).encode())
            try:
                rc = _run_runtime(cmd, cid, bundle, o)
            finally:
                if o.release_network and o.shared_network is not None:
                    o.shared_network.release()  # torn down while the runtime deletes, the layer is made
                if left_behind(o.state_root, cid):
                    subprocess.run(cmd + ["delete", "--force", cid], capture_output=True)
                if owner is not None:
                    drop_owner_lock(_owners(o.state_root), cid, owner)
                _remove_created(created)
        finally:
            for pfd, _rel in created:
                os.close(pfd)
            os.close(root_fd)
        return rc
    finally:
        try:
            if own is not None:
                own.close()
        finally:
            shutil.rmtree(bundle, ignore_errors=True)


def _run_runtime(cmd: list[str], cid: str, bundle: str, o: RunOptions) -> int:
    """``RUNTIME run``, waited for; its exit status. Interrupted (SIGINT, or any exception while
    waiting), the container is killed through the runtime (``RUNTIME kill ID KILL``) and the
    runtime is left to reap it and delete its state before the exception goes on: killing the
    runtime instead (what ``subprocess.run`` does) orphans the container's init to the host's
    pid 1, and until that reaps it the kernel keeps the container's copies of the working
    container's mounts, so its unmount fails (EBUSY) and the working container stays."""
    try:
        p = subprocess.Popen(cmd + ["run", "--bundle", bundle, cid], cwd=bundle,
                             stdin=o.stdin if o.stdin is not None else subprocess.DEVNULL,
                             stdout=o.stdout, stderr=o.stderr)
    except OSError as e:
        raise BuildError(f"starting the runtime {cmd[0]}: {e.strerror}") from None
    try:
        return p.wait()
    except BaseException:
        stop_runtime_run(cmd, cid, p)
        raise


#: how long an interrupted RUN's runtime has, after ``kill ID KILL``, to reap the container
#: and exit before it is killed itself (seconds; twice)
STOP_WAIT = 5.0


def stop_runtime_run(cmd: list[str], cid: str, p: subprocess.Popen) -> None:
    """Stop the container of a foreground ``RUNTIME run`` (``p``): ``RUNTIME kill ID KILL``, and
    ``p`` waited for. Tried twice (the first kill can come before the runtime wrote the
    container's state); a runtime still there then is killed (``left_behind`` finds what it
    leaves). Never raises but for a second interrupt."""
    for _ in range(2):
        if p.poll() is not None:
            return
        try:
            subprocess.run(cmd + ["kill", cid, "KILL"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            p.wait(timeout=STOP_WAIT)
            return
        except subprocess.TimeoutExpired:
            pass
    p.kill()
    p.wait()


def left_behind(state_root: str | None, cid: str) -> bool:
    """Whether the runtime may still hold state for ``cid`` after ``run`` returned, so that a
    ``delete --force`` has something to do. A foreground ``run`` deletes its container when
    the command exits (runc, crun, pallet-runtime); one killed or failed half-way leaves
    ``STATE_ROOT/ID`` (the OCI runtimes' layout under ``--root``), and only then is the
    delete, a whole runtime process (~8 ms of CPU), needed. Without a state root of ours
    (the runtime's default root, whose layout we do not know): always."""
    if not state_root:
        return True
    try:
        os.lstat(os.path.join(state_root, cid))
    except FileNotFoundError:
        return False
    except OSError:  # unreadable: the runtime decides
        pass
    return True


# -- a killed build's RUN container ----------------------------------------------------------
# A build killed mid-RUN (SIGKILL: no teardown) left the runtime's state and cgroups of its RUN
# container, which nothing else deletes (the store knows no runtime state). Each RUN container
# has an owner lock, ``STATE_ROOT-owners/ID.lock``, held while the build runs it and naming the
# runtime command (``_fs.hold_owner_lock``); the next RUN in the same state root deletes the
# containers whose lock is free.

def _owners(state_root: str) -> str:
    return state_root.rstrip("/") + "-owners"


def reap_run_containers(state_root: str) -> list[str]:
    """Delete (``RUNTIME delete --force``: its processes killed, its cgroups removed) the RUN
    containers under ``state_root`` whose build died; returns their IDs."""
    from .._fs import read_json_file, reap_orphaned_locks

    def clean(stem: str) -> bool:
        cid = os.path.basename(stem)
        if not cid.startswith("pallet-build-"):
            return False
        try:
            cmd = read_json_file(stem + ".lock", 1 << 20, "a RUN container's owner lock")
        except (OSError, ValueError, PalletError):
            cmd = None
        if not (isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd) and os.path.isabs(cmd[0])):
            return True  # nothing to run: the lock goes
        if not os.path.isdir(os.path.join(state_root, cid)):
            return True
        try:
            p = subprocess.run(cmd + ["delete", "--force", cid], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False  # tried again by the next RUN
        return p.returncode == 0 or not os.path.isdir(os.path.join(state_root, cid))

    return reap_orphaned_locks(_owners(state_root), clean)


def _in_root(what: str, dest: str, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise BuildError(f"{what} {dest}: cannot make it in the container's root filesystem: "
                         f"{e.strerror or e}") from None


def _make_parents(root_fd: int, dest: str) -> None:
    """The directories above the mount target ``dest`` (0755), made by fd inside the root."""
    parent = "/".join(p for p in dest.split("/") if p).rpartition("/")[0]
    if parent:
        os.close(_in_root("the mount target", dest, _rootfs.mkdir_all_in_root, root_fd, parent, 0o755))


def _make_target(root_fd: int, dest: str, is_dir: bool) -> None:
    """The mount target ``dest`` itself: a directory (0755) or an empty file (0644)."""
    try:  # whatever is there already (a file where a directory is bound): the runtime decides
        os.close(_rootfs.open_in_root(root_fd, dest))
        return
    except OSError:
        pass
    make = _rootfs.mkdir_all_in_root if is_dir else _rootfs.mkfile_in_root
    os.close(_in_root("the mount target", dest, make, root_fd, dest))


def _missing_mountpoints(root_fd: int, mounts: list[dict]) -> list[tuple[int, tuple[str, ...]]]:
    """What the runtime will create in the root for these mounts: ``(fd, names)`` pairs, an
    ``O_PATH`` fd of the deepest directory that exists (caller closes) and the chain of
    missing names below it, each missing path once."""
    out: list = []
    seen: set = set()
    for m in mounts:
        parts = [p for p in m["destination"].split("/") if p and p != "."]
        if ".." in parts:
            continue  # the spec generator refuses these; nothing to tidy
        fd, i = None, len(parts)
        while i >= 0:  # the longest prefix that exists, as the runtime will look it up
            try:
                fd = _rootfs.open_in_root(root_fd, "/".join(parts[:i]) or ".")
                break
            except OSError:
                i -= 1
        if fd is None or i == len(parts):
            if fd is not None:
                os.close(fd)
            continue
        key = (os.readlink(_rootfs.fd_path(fd)), tuple(parts[i:]))
        if key in seen or not _stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            continue
        seen.add(key)
        out.append((fd, tuple(parts[i:])))
    return out


def _remove_created(created: list[tuple[int, tuple[str, ...]]]) -> None:
    """Remove the mount points the runtime made (empty directories, empty files), deepest
    first, each looked up below its existing parent's fd following no symlink (a RUN step
    that replaced one with a link to elsewhere has that link left alone, not followed)."""
    todo = sorted(((pfd, names[:k]) for pfd, names in created for k in range(1, len(names) + 1)),
                  key=lambda t: len(t[1]), reverse=True)
    for pfd, names in todo:
        try:
            dfd = _rootfs.open_beneath(pfd, "/".join(names[:-1]), os.O_PATH | os.O_DIRECTORY) \
                if len(names) > 1 else os.dup(pfd)
        except OSError:
            continue
        try:
            st = os.stat(names[-1], dir_fd=dfd, follow_symlinks=False)
            if _stat.S_ISDIR(st.st_mode):
                os.rmdir(names[-1], dir_fd=dfd)
            elif _stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(names[-1], dir_fd=dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
