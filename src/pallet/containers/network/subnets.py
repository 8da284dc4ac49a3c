"""Subnets: parsing what the user gives, and choosing a free one.

A new network's subnet (the default network's included) must overlap no route or address
already on the host: a machine that ran podman has its ``10.88.0.0/16`` bridge, and two
bridges on one subnet silently break both. The host's routes (every table) and addresses are
read from the kernel through ``ip -j``; the subnets of networks already defined count too
(their bridge may be down).
"""

from __future__ import annotations

import ipaddress
import os

from ...errors import ContainerNetworkError, UsageError

#: where the default network's subnet is chosen: podman's 10.88.0.0/16 first, then further /16s
DEFAULT_POOL = ["10.88.0.0/16"] + [f"10.{i}.0.0/16" for i in range(128, 255)]
#: where user networks' subnets are chosen: /24s from podman's 10.89.0.0/16 pool onwards
USER_POOL_START, USER_POOL_END, USER_PREFIX = "10.89.0.0", "10.127.255.255", 24


def parse(text: str, what: str = "--subnet"):
    """A subnet in CIDR notation (``10.1.2.0/24``, ``fd00::/64``); host bits must be zero."""
    if not isinstance(text, str) or "/" not in text:
        raise UsageError(f"invalid {what} {text!r}: want an address range in CIDR notation, e.g. 10.90.0.0/24")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise UsageError(f"invalid {what} {text!r}: {e}") from None
    if net.network_address != ipaddress.ip_interface(text).ip:
        raise UsageError(f"invalid {what} {text!r}: host bits are set (did you mean {net}?)")
    if net.num_addresses < 4:
        raise UsageError(f"invalid {what} {text!r}: too small for a gateway and a container (at most /30 for IPv4)")
    if net.is_loopback or net.is_multicast or net.network_address.is_unspecified:
        raise UsageError(f"invalid {what} {text!r}: a loopback, multicast or unspecified range cannot be a network")
    return net


def parse_ip(text: str, what: str):
    if not isinstance(text, str):  # ipaddress takes integers too: a JSON number is not an address
        raise UsageError(f"invalid {what} {text!r}: not an IP address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: not an IP address") from None


def host_networks() -> list:
    """Every IPv4/IPv6 destination routed on the host (all tables, default routes excepted)
    and every address's prefix, as ``ip_network``s."""
    import subprocess

    from ..._std import json as _json

    nets = []
    for family in ("-4", "-6"):
        for cmd in (["ip", "-j", family, "route", "show", "table", "all"], ["ip", "-j", family, "addr", "show"]):
            try:
                out = subprocess.run(cmd, capture_output=True, check=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                raise ContainerNetworkError(f"cannot read the host's routes ({' '.join(cmd)}): {e}") from None
            try:
                doc = _json.loads(out.decode() or "[]")
            except ValueError:
                raise ContainerNetworkError(f"cannot read the host's routes: {' '.join(cmd)} printed no JSON") from None
            for entry in doc if isinstance(doc, list) else []:
                if not isinstance(entry, dict):
                    continue
                if "addr_info" in entry:
                    for a in entry.get("addr_info") or []:
                        if isinstance(a, dict) and "local" in a and "prefixlen" in a:
                            _add(nets, f"{a['local']}/{a['prefixlen']}")
                    continue
                dst = entry.get("dst")
                if not isinstance(dst, str) or dst == "default":
                    continue
                _add(nets, dst if "/" in dst else dst + ("/32" if ":" not in dst else "/128"))
    return nets


#: where podman keeps network definitions (netavark's format, then CNI's), as containers.conf's defaults
PODMAN_NETWORK_DIRS = ("/etc/containers/networks", "/etc/cni/net.d")
#: podman's default network when containers.conf does not change it: podman0 on this subnet
PODMAN_DEFAULT_SUBNET = "10.88.0.0/16"


def other_tools(dirs=PODMAN_NETWORK_DIRS, podman_default: bool | None = None, owner: str = "podman's") -> list:
    """Subnets podman will use whose bridges may be down now: its netavark and CNI network
    files, and (when podman is installed) its default network's 10.88.0.0/16, which podman only
    keeps in memory. [(ip_network, "what uses it")]; unreadable files are skipped (not ours)."""
    from ..._std import json as _json

    out = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if not n.endswith((".json", ".conflist", ".conf")):
                continue
            path = os.path.join(d, n)
            try:
                with open(path, "rb") as f:
                    doc = _json.loads(f.read(1 << 20).decode("utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            for text in _subnet_strings(doc):
                try:
                    out.append((ipaddress.ip_network(text, strict=False), f"{owner} network in {path}"))
                except ValueError:
                    pass
    if podman_default is None:
        import shutil

        podman_default = shutil.which("podman") is not None
    if podman_default:
        out.append((ipaddress.ip_network(PODMAN_DEFAULT_SUBNET), "podman's default network (podman0)"))
    return out


def _subnet_strings(doc) -> list:
    """"subnet" values of a netavark network (subnets[].subnet) or a CNI config
    (plugins[].ipam.ranges[][].subnet, ipam.subnet), whatever else the file holds."""
    found = []
    if not isinstance(doc, dict):
        return found
    for s in doc.get("subnets") or [] if isinstance(doc.get("subnets"), list) else []:
        if isinstance(s, dict) and isinstance(s.get("subnet"), str):
            found.append(s["subnet"])
    plugins = doc.get("plugins") if isinstance(doc.get("plugins"), list) else [doc]
    for pl in plugins:
        ipam = pl.get("ipam") if isinstance(pl, dict) else None
        if not isinstance(ipam, dict):
            continue
        if isinstance(ipam.get("subnet"), str):
            found.append(ipam["subnet"])
        for rng in ipam.get("ranges") or [] if isinstance(ipam.get("ranges"), list) else []:
            for r in rng if isinstance(rng, list) else []:
                if isinstance(r, dict) and isinstance(r.get("subnet"), str):
                    found.append(r["subnet"])
    return found


def _add(nets: list, text: str) -> None:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return
    if net.prefixlen == 0 or net.is_link_local and net.version == 6:  # fe80::/64 is on every link
        return
    nets.append(net)


def overlapping(net, taken) -> object | None:
    """The first of ``taken`` that overlaps ``net`` (same family), or None."""
    for t in taken:
        if t.version == net.version and net.overlaps(t):
            return t
    return None


def choose(taken, default: bool = False):
    """The first candidate subnet overlapping none of ``taken``: for the default network a /16
    (10.88.0.0/16 when free), else a /24 from 10.89.0.0 upwards."""
    if default:
        candidates = (ipaddress.ip_network(c) for c in DEFAULT_POOL)
    else:
        start = int(ipaddress.ip_address(USER_POOL_START))
        end = int(ipaddress.ip_address(USER_POOL_END))
        step = 1 << (32 - USER_PREFIX)
        candidates = (ipaddress.ip_network((a, USER_PREFIX)) for a in range(start, end, step))
    taken = [t for t in taken if t.version == 4]
    for cand in candidates:
        if overlapping(cand, taken) is None:
            return cand
    raise ContainerNetworkError("no free subnet left in pallet's pools (10.88.0.0/16, 10.89.0.0-10.127.255.0/24, "
                       "10.128-254.0.0/16): give one with --subnet")


def kernel_routes() -> list:
    """The routes of this network namespace's main table as [(ip_network, device)], read from
    ``/proc/net/route`` and ``/proc/net/ipv6_route`` (no ``ip`` process: this runs on every
    attachment whose bridge is down). Default routes and IPv6 link-local ones are left out."""
    out = []
    try:
        with open("/proc/net/route", "rb") as f:
            lines = f.read(1 << 22).decode("ascii", "replace").splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        try:
            dev, dst, mask = parts[0], int(parts[1], 16), int(parts[7], 16)
            prefix = bin(mask).count("1")
            if prefix:
                addr = ipaddress.IPv4Address(int.from_bytes(dst.to_bytes(4, "little"), "big"))
                out.append((ipaddress.ip_network((addr, prefix), strict=False), dev))
        except (IndexError, ValueError):
            continue
    try:
        with open("/proc/net/ipv6_route", "rb") as f:
            lines = f.read(1 << 22).decode("ascii", "replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        try:
            prefix = int(parts[1], 16)
            net = ipaddress.ip_network((ipaddress.IPv6Address(int(parts[0], 16)), prefix), strict=False)
            if prefix and not net.is_link_local and not net.is_multicast and prefix < 128:
                out.append((net, parts[-1]))
        except (IndexError, ValueError):
            continue
    return out


def check_not_routed_elsewhere(network: dict) -> None:
    """Refuse to bring up a network's bridge when another device already routes one of its
    subnets (another store's or tool's bridge on the same subnet): both would silently break."""
    iface = network.get("network_interface") or ""
    if not iface or os.path.exists(os.path.join("/sys/class/net", iface)):
        return  # the bridge is up: its subnets were checked when it came up
    routes = kernel_routes()
    for s in network.get("subnets") or []:
        try:
            net = ipaddress.ip_network(s.get("subnet"), strict=False)
        except (TypeError, ValueError, AttributeError):
            continue
        for r, dev in routes:
            if r.version == net.version and r.overlaps(net) and dev != iface:
                raise ContainerNetworkError(
                    f"network {network.get('name')}: subnet {net} is already routed through {dev} ({r}): "
                    f"another network on this host uses it; remove one or give this one another --subnet")
