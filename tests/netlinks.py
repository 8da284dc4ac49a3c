"""pallet's links on the host, for tests that check nothing is left behind."""

from __future__ import annotations

import json
import re
import subprocess

#: pallet's bridge names: palletN (/etc/pallet/networks) or pl + six hex digits + N (any other directory)
_BRIDGE = re.compile(r"^(pallet|pl[0-9a-f]{6})\d+$")


def is_pallet_bridge(name: str) -> bool:
    return bool(_BRIDGE.match(name or ""))


def pallet_links(config_dir: str | None = None) -> set:
    """pallet's bridges and the veths on them (other engineers' podman may add and remove its
    own links meanwhile: those are not compared). With ``config_dir``, only the bridges of that
    network configuration directory (``pl`` + its hash, as pallet names them) and their veths:
    other pallets on the host (another store's tests, a container kept up on ``pallet0``) may
    add and remove theirs meanwhile."""
    mine = is_pallet_bridge
    if config_dir is not None:
        from pallet.containers.network.config import Networks

        prefix = Networks(config_dir).bridge_prefix

        def mine(name: str) -> bool:
            return is_pallet_bridge(name) and name.startswith(prefix) and name[len(prefix):].isdigit()

    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True, text=True).stdout
    return {l["ifname"] for l in json.loads(out) if mine(l["ifname"]) or mine(str(l.get("master", "")))}


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
