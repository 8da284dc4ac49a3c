"""Subnets: parsing what the user gives, and choosing a free one.

A new network's subnet (the default network's included) must overlap no route or address
already on the host: a machine that ran podman has its ``10.88.0.0/16`` bridge, and two
bridges on one subnet silently break both. The host's routes (every table) and addresses are
read from the kernel through ``ip -j``; the subnets of networks already defined count too
(their bridge may be down).
"""

from __future__ import annotations

import ipaddress

from ...errors import NetworkError, UsageError

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
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: not an IP address") from None


def host_networks() -> list:
    """Every IPv4/IPv6 destination routed on the host (all tables, default routes excepted)
    and every address's prefix, as ``ip_network``s."""
    import subprocess

    from ... import _json

    nets = []
    for family in ("-4", "-6"):
        for cmd in (["ip", "-j", family, "route", "show", "table", "all"], ["ip", "-j", family, "addr", "show"]):
            try:
                out = subprocess.run(cmd, capture_output=True, check=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                raise NetworkError(f"cannot read the host's routes ({' '.join(cmd)}): {e}") from None
            try:
                doc = _json.loads(out.decode() or "[]")
            except ValueError:
                raise NetworkError(f"cannot read the host's routes: {' '.join(cmd)} printed no JSON") from None
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
    raise NetworkError("no free subnet left in pallet's pools (10.88.0.0/16, 10.89.0.0-10.127.255.0/24, "
                       "10.128-254.0.0/16): give one with --subnet")
