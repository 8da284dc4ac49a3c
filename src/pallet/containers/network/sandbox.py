"""A container's network, from its ``--network`` mode to a namespace path (what ``run`` will call).

- ``none``: a new namespace with only ``lo``; published ports are refused (nothing to publish on).
- ``host``: no namespace of its own (path None); published ports are discarded with a warning,
  as podman does.
- ``container:ID``: the namespace of another attached container (by name, ID or prefix).
- ``ns:PATH``: that namespace file.
- ``slirp4netns[:allow_host_loopback=true]`` (podman's default for a rootless container): a new
  namespace whose ``tap0`` slirp4netns (Debian's package, run as the user: no privilege) connects
  to the host's network in user mode, podman's addresses (10.0.2.100, gateway 10.0.2.2, DNS
  10.0.2.3); the host's loopback at 10.0.2.2 only with ``allow_host_loopback=true``. Its pid is
  kept beside the namespace file (``NAME.slirp4netns.pid``); teardown stops it.
- networks (``bridge`` = the default network): a new namespace attached through netavark; when
  the attachment fails the namespace is removed again.
"""

from __future__ import annotations

import os

from ...errors import ContainerNetworkError, UsageError
from . import netns
from .mode import NetworkMode


# ``endpoints`` below: an endpoints.Endpoints (or, for none/host, an object with ``run_dir`` and
# ``detach``); not imported here, so ``--network none`` loads neither it nor ``ipaddress``


class Sandbox:
    __slots__ = ("netns_path", "owned", "results")

    def __init__(self, netns_path: str | None, owned: bool, results: dict | None = None):
        #: the namespace the container joins (None: the host's)
        self.netns_path = netns_path
        #: whether it was made for this container (and goes with it)
        self.owned = owned
        #: netavark's StatusBlocks per network (bridge mode)
        self.results = results or {}


def setup(endpoints, cid: str, name: str, mode: NetworkMode, port_mappings: list | None = None,
          warn=None, background=None, userns: str | None = None):
    """The container's sandbox for ``mode``. With ``background`` (``background(fn)`` runs ``fn``
    elsewhere and returns a handle whose ``result()`` gives ``fn()``'s result or raises its
    error) netavark's attachment, the slow part of a bridge, runs through it, and the handle is
    returned: ``netns_path`` and ``owned`` at once (the namespace itself is made here first, so
    no other thread forks), ``result()`` gives the Sandbox. ``userns``: the container's user
    namespace file; a namespace made here belongs to it."""
    runroot = os.path.dirname(endpoints.run_dir)
    if mode.kind == "host":
        if port_mappings and warn is not None:
            warn("Port mappings have been discarded as one of the Host, Container, Pod, and None network "
                 "modes are in use")
        return _ready(Sandbox(None, False), background)
    if mode.kind in ("container", "ns"):
        if port_mappings:
            raise UsageError(f"published ports cannot be used with --network {mode.kind}:{mode.target}: "
                             "publish them on the container that owns the namespace")
        if mode.kind == "container":
            return _ready(Sandbox(endpoints.find(mode.target)["netns"], False), background)
        if not os.path.exists(mode.target):
            raise ContainerNetworkError(f"network namespace {mode.target} does not exist")
        return _ready(Sandbox(mode.target, False), background)
    if mode.kind == "none":
        if port_mappings:
            raise UsageError("published ports cannot be used with --network none: it has only lo")
        return _ready(Sandbox(netns.create(runroot, cid[:12], userns), True), background)
    if mode.kind == "slirp4netns":
        path = netns.create(runroot, cid[:12], userns)
        try:
            start_slirp4netns(path, mode.target, port_mappings or [])
        except BaseException:
            netns.remove(path)
            raise
        return _ready(Sandbox(path, True), background)
    for net in mode.networks:  # every network named exists, before anything is made
        endpoints.networks.get(net)
    path = netns.create(runroot, cid[:12], userns)

    def attach() -> Sandbox:
        try:
            results = endpoints.attach(cid, name, path, mode.networks, port_mappings)
        except BaseException:
            netns.remove(path)
            raise
        return Sandbox(path, True, results)

    if background is None:
        return attach()
    handle = background(attach)
    handle.netns_path, handle.owned = path, True
    return handle


class _Ready:
    def __init__(self, value: Sandbox):
        self.value = value
        self.netns_path, self.owned = value.netns_path, value.owned

    def result(self):
        return self.value


def _ready(sandbox: Sandbox, background):
    return sandbox if background is None else _Ready(sandbox)


def teardown(endpoints, cid: str, sandbox_path: str | None, owned: bool) -> None:
    """Detach every network of ``cid`` and remove its namespace when it owned one: removed even
    when netavark's teardown fails (the detach releases the addresses and the record either
    way; a namespace left would keep its veth, and so the bridge, on the host)."""
    try:
        endpoints.detach(cid)
    finally:
        if owned and sandbox_path:
            try:
                stop_slirp4netns(sandbox_path)
            finally:
                netns.remove(sandbox_path)


SLIRP4NETNS = "/usr/bin/slirp4netns"
#: podman's slirp4netns addresses (its default cidr 10.0.2.0/24)
SLIRP_DNS = "10.0.2.3"


def _slirp_pidfile(netns_path: str) -> str:
    return netns_path + ".slirp4netns.pid"


def start_slirp4netns(netns_path: str, options: str | None, port_mappings: list, timeout: float = 10.0) -> int:
    """slirp4netns for the namespace at ``netns_path`` (podman's flags: ``--configure``, MTU
    65520, ``--disable-host-loopback`` unless allowed), in a session of its own so it outlives
    this pallet; returns once it says it is ready (``--ready-fd``), its pid recorded, and each
    published port forwarded through its API socket (``add_hostfwd``, podman's
    ``port_handler=slirp4netns``: the host port is slirp4netns' own socket, as the user)."""
    import select

    from .mode import slirp_allows_host_loopback

    if not os.access(SLIRP4NETNS, os.X_OK):
        raise ContainerNetworkError(f"--network slirp4netns needs {SLIRP4NETNS} (Debian's slirp4netns package)")
    argv = ["slirp4netns", "--configure", "--mtu=65520", "--netns-type=path", "--ready-fd=3"]
    api = _slirp_pidfile(netns_path)[:-len(".pid")] + ".sock"
    if port_mappings:
        if len(api) >= 108:
            raise ContainerNetworkError(f"-p: the slirp4netns API socket path {api} is too long for a unix socket")
        argv.append(f"--api-socket={api}")
    if not slirp_allows_host_loopback(options):
        argv.append("--disable-host-loopback")
    argv += [netns_path, "tap0"]
    r, w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(SLIRP4NETNS, argv, os.environ, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                           (os.POSIX_SPAWN_DUP2, err_w, 2), (os.POSIX_SPAWN_DUP2, w, 3)])
    except OSError as e:
        for fd in (r, w, null, err_r, err_w):
            os.close(fd)
        raise ContainerNetworkError(f"cannot start {SLIRP4NETNS}: {e.strerror}") from None
    os.close(w)
    os.close(null)
    os.close(err_w)
    try:
        ready, _, _ = select.select([r], [], [], timeout)
        got = os.read(r, 1) if ready else b""
        if got != b"1":
            os.set_blocking(err_r, False)
            try:
                err = os.read(err_r, 4096).decode(errors="replace").strip().splitlines()
            except BlockingIOError:
                err = []
            _stop(pid)
            why = "; ".join(err[-3:]) if err else ("no answer in %gs" % timeout if not ready else "it exited")
            raise ContainerNetworkError(f"slirp4netns for {netns_path} failed: {why}")
    finally:
        os.close(r)
        os.close(err_r)
    from ..._fs import write_atomic

    write_atomic(_slirp_pidfile(netns_path), f"{pid}\n".encode(), 0o600, durable=False)
    if port_mappings:
        try:
            _forward_ports(api, port_mappings)
        except BaseException:
            stop_slirp4netns(netns_path)
            raise
    return pid


#: the container's address on slirp4netns' network (podman's, from its default cidr)
SLIRP_GUEST = "10.0.2.100"


def check_slirp_ports(port_mappings: list) -> None:
    """What slirp4netns cannot publish (yet), refused when the container is created."""
    for m in port_mappings:
        if ":" in (m.get("host_ip") or ""):
            raise UsageError(f"-p [{m['host_ip']}]:...: IPv6 host addresses through slirp4netns are not "
                             "supported by pallet yet")
        for proto in str(m.get("protocol") or "tcp").split(","):
            if proto not in ("tcp", "udp"):
                raise UsageError(f"-p .../{proto}: slirp4netns forwards tcp and udp only")


def _forward_ports(api: str, port_mappings: list) -> None:
    """``add_hostfwd`` for every published port (tcp and udp; each port of a range)."""
    from ..._std import json
    from ..._std import sock as socket

    check_slirp_ports(port_mappings)
    for m in port_mappings:
        host_ip = m.get("host_ip") or "0.0.0.0"
        for proto in str(m.get("protocol") or "tcp").split(","):
            for i in range(m.get("range") or 1):
                req = {"execute": "add_hostfwd", "arguments": {
                    "proto": proto, "host_addr": host_ip, "host_port": m["host_port"] + i,
                    "guest_addr": SLIRP_GUEST, "guest_port": m["container_port"] + i}}
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(api)
                    s.sendall(json.dumps(req).encode())
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                except OSError as e:
                    raise ContainerNetworkError(f"-p: slirp4netns' API socket {api}: {e.strerror}") from None
                finally:
                    s.close()
                try:
                    answer = json.loads(data.decode() or "{}")
                except ValueError:
                    answer = {}
                if not isinstance(answer, dict) or "return" not in answer:
                    err = answer.get("error") if isinstance(answer, dict) else None
                    desc = err.get("desc") if isinstance(err, dict) else data.decode(errors="replace")[:200]
                    raise ContainerNetworkError(f"failed to expose ports via slirp4netns: {host_ip}:"
                                                f"{m['host_port'] + i}/{proto}: {desc}")


def _stop(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:  # ours when this pallet started it (a foreground run's failure): not left a zombie
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop_slirp4netns(netns_path: str) -> None:
    """Stop the slirp4netns recorded beside ``netns_path`` (none: nothing to do); a recycled
    pid is never signalled (its name and namespace argument are checked)."""
    pidfile = _slirp_pidfile(netns_path)
    try:
        with open(pidfile) as f:
            text = f.read(32).strip()
    except FileNotFoundError:
        return
    pid = int(text) if text.isascii() and text.isdigit() else 0
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        if pid > 1 and args[0] == b"slirp4netns" and netns_path.encode() in args:
            _stop(pid)
    except OSError:
        pass
    for f in (pidfile, pidfile[:-len(".pid")] + ".sock"):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
