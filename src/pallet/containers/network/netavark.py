"""``netavark setup`` / ``teardown``, as podman's libnetwork/netavark calls them.

``netavark --config RUNDIR [--aardvark-binary PATH] setup|teardown NETNS`` reads the network
options on stdin (``container_id``, ``container_name``, ``port_mappings``, ``networks``: per
network the interface name, static IPs and DNS aliases, ``network_info``: the networks' own
definitions) and prints, for setup, a JSON object per network: interfaces with MAC address and
addresses, and the DNS servers (aardvark-dns) and search domains. Errors come back as
``{"error": "..."}``; they are reported as one line naming netavark.
"""

from __future__ import annotations

import os

from ..._std import json as _json
from ...errors import ContainerNetworkError

#: where Debian and other distributions put podman's helpers (containers.conf helper_binaries_dir)
HELPER_DIRS = ("/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman")


def find_helper(name: str) -> str | None:
    """``$PALLET_<NAME>`` (e.g. PALLET_NETAVARK), then podman's helper directories, then PATH."""
    env = os.environ.get("PALLET_" + name.upper().replace("-", "_"))
    if env:
        return env
    for d in HELPER_DIRS + tuple(os.environ.get("PATH", "").split(os.pathsep)):
        p = os.path.join(d, name)
        if d and os.access(p, os.X_OK) and os.path.isfile(p):
            return p
    return None


class Subnet:
    __slots__ = ("ipnet", "gateway")

    def __init__(self, ipnet: str, gateway: str | None):
        self.ipnet, self.gateway = ipnet, gateway

    def as_dict(self) -> dict:
        return {"ipnet": self.ipnet, **({"gateway": self.gateway} if self.gateway else {})}


class Interface:
    __slots__ = ("name", "mac_address", "subnets")

    def __init__(self, name: str, mac_address: str, subnets: list):
        self.name, self.mac_address, self.subnets = name, mac_address, subnets


class StatusBlock:
    """What netavark set up on one network."""

    __slots__ = ("network", "interfaces", "dns_server_ips", "dns_search_domains")

    def __init__(self, network: str, interfaces: list, dns_server_ips: list, dns_search_domains: list):
        self.network, self.interfaces = network, interfaces
        self.dns_server_ips, self.dns_search_domains = dns_server_ips, dns_search_domains


def parse_reply(doc) -> dict:
    """netavark's setup reply -> {network name: StatusBlock}; a malformed reply is an error naming the field."""
    def bad(field):
        return ContainerNetworkError(f"netavark setup: unexpected reply: {field}")

    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    out = {}
    for net, block in doc.items():
        if not isinstance(block, dict):
            raise bad(net)
        ifaces = []
        raw = block.get("interfaces")
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise bad(f"{net}.interfaces")
        for name, iface in raw.items():
            if not isinstance(iface, dict) or not isinstance(iface.get("mac_address", ""), str):
                raise bad(f"{net}.interfaces.{name}")
            subs = []
            raw_subs = iface.get("subnets")
            if raw_subs is not None and not isinstance(raw_subs, list):
                raise bad(f"{net}.interfaces.{name}.subnets")
            for i, s in enumerate(raw_subs or []):
                if not isinstance(s, dict) or not isinstance(s.get("ipnet"), str) \
                        or not isinstance(s.get("gateway", ""), (str, type(None))):
                    raise bad(f"{net}.interfaces.{name}.subnets[{i}]")
                subs.append(Subnet(s["ipnet"], s.get("gateway")))
            ifaces.append(Interface(name, iface.get("mac_address", ""), subs))
        servers = block.get("dns_server_ips") or []
        domains = block.get("dns_search_domains") or []
        for field, v in (("dns_server_ips", servers), ("dns_search_domains", domains)):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise bad(f"{net}.{field}")
        out[net] = StatusBlock(net, ifaces, list(servers), list(domains))
    return out


#: one netavark at a time on this host, whatever the run root: the networks' bridges and
#: firewall chains are the host's, and two netavark runs on one network from two run roots
#: (two pallet stores, a build and a container) race ("iptables: Chain already exists", a
#: teardown that removes the bridge under the other's setup). podman serializes its own the same
#: way, by a lock in its one network run directory
HOST_LOCK = "/run/pallet-netavark.lock"  # in /run: only root makes files there


def _host_lock() -> int | None:
    """The host-wide lock, held (its fd: close it to release); None where it cannot be opened
    (not root: netavark would fail anyway)."""
    from ...storage.lock import lock_path

    try:
        return lock_path(HOST_LOCK)
    except OSError:
        return None


def _run(verb: str, run_dir: str, netns_path: str, options: dict) -> bytes:
    from ..._std import proc as subprocess  # subprocess's imports (locale, re...) cost every run

    binary = find_helper("netavark")
    if binary is None:
        raise ContainerNetworkError("netavark not found (in " + ", ".join(HELPER_DIRS) + " or PATH): install "
                           "Debian's netavark package")
    cmd = [binary, "--config", run_dir]
    aardvark = find_helper("aardvark-dns")
    if aardvark is not None:
        cmd += ["--aardvark-binary", aardvark]
    cmd += [verb, netns_path]
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    lock = _host_lock()
    try:
        # aardvark-dns, started by netavark, must not hold our pipes open
        p = subprocess.run(cmd, input=_json.dumps(options).encode(), capture_output=True, timeout=120)
    except OSError as e:
        raise ContainerNetworkError(f"cannot run {binary}: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ContainerNetworkError(f"netavark {verb} did not finish in 120 s") from None
    finally:
        if lock is not None:
            os.close(lock)
    if p.returncode != 0:
        text = (p.stdout or p.stderr).decode(errors="replace").strip()
        try:
            text = _json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ContainerNetworkError(f"netavark {verb} failed: {' '.join(str(text).split()) or 'exit code ' + str(p.returncode)}")
    return p.stdout


def setup(run_dir: str, netns_path: str, options: dict) -> dict:
    """``netavark setup``; on failure what it half made is torn down before the error is raised."""
    try:
        out = _run("setup", run_dir, netns_path, options)
    except BaseException:  # a failure, or Ctrl-C/SIGTERM while netavark ran: undo what it made
        try:
            _run("teardown", run_dir, netns_path, options)
        except ContainerNetworkError:
            pass  # netavark reports what it did not find; the setup's error is the one to show
        raise
    try:
        doc = _json.loads(out.decode())
    except (ValueError, UnicodeDecodeError):
        raise ContainerNetworkError("netavark setup: the reply is not JSON") from None
    return parse_reply(doc)


def teardown(run_dir: str, netns_path: str, options: dict) -> None:
    _run("teardown", run_dir, netns_path, options)
