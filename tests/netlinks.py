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
