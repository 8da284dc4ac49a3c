"""pallet's links on the host, for tests that check nothing is left behind."""

from __future__ import annotations

import json
import re
import subprocess

#: pallet's bridge names: palletN (/etc/pallet/networks) or pl + six hex digits + N (any other directory)
_BRIDGE = re.compile(r"^(pallet|pl[0-9a-f]{6})\d+$")


def is_pallet_bridge(name: str) -> bool:
    return bool(_BRIDGE.match(name or ""))


def pallet_links() -> set:
    """pallet's bridges and the veths on them (other engineers' podman may add and remove its
    own links meanwhile: those are not compared)."""
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True, text=True).stdout
    return {l["ifname"] for l in json.loads(out)
            if is_pallet_bridge(l["ifname"]) or is_pallet_bridge(str(l.get("master", "")))}


def drop_netavark_rules(subnet: str) -> None:
    """Remove netavark's firewall rules for ``subnet`` (its NAT chain, the jump to it, the
    forward rules): for a test that breaks a network on purpose, so that netavark's own
    teardown cannot remove them."""
    def rules(table):
        out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        return out.splitlines()

    chains = set()
    for line in rules("nat"):
        parts = line.split()
        if parts[:2] == ["-A", "POSTROUTING"] and "-s" in parts and parts[parts.index("-s") + 1] == subnet:
            chains.add(parts[-1])
            subprocess.run(["iptables", "-t", "nat", "-D", *parts[1:]], capture_output=True)
    for chain in chains:
        if chain.startswith("NETAVARK-"):
            subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
            subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)
    for line in rules("filter"):
        parts = line.split()
        if parts[:2] == ["-A", "NETAVARK_FORWARD"] and subnet in parts:
            subprocess.run(["iptables", "-D", *parts[1:]], capture_output=True)
