"""Attachments of network namespaces to networks, with their addresses (podman's IPAM).

Run-time state under ``RUNROOT/networks`` (gone after a reboot, as the namespaces are):
``endpoints/ID.json`` per attached container (its namespace, networks with interface, addresses
and aliases, published ports: what ``teardown`` needs again) and ``ipam.json`` (per network, the
addresses in use). The same directory is netavark's ``--config`` (aardvark-dns keeps its
per-network files there). Every change holds ``.lock``; a failed setup is torn down and its
addresses released, so nothing is left half made.
"""

from __future__ import annotations

import ipaddress
import os

from ..._std import json as _json
from ...errors import ConfigError, ContainerNetworkError, UsageError
from . import netavark, netns, subnets
from .config import Networks


def _check_id(cid: str) -> None:
    if not isinstance(cid, str) or len(cid) != 64 or any(c not in "0123456789abcdef" for c in cid):
        raise UsageError(f"invalid container ID {cid!r}: want 64 lowercase hex digits")


class Endpoints:
    def __init__(self, networks: Networks, runroot: str):
        self.networks = networks
        self.run_dir = os.path.join(runroot, "networks")
        self._dir = os.path.join(self.run_dir, "endpoints")

    # -- state ---------------------------------------------------------------------------

    def _lock(self):
        from ...storage.lock import FileLock

        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        return FileLock(os.path.join(self.run_dir, ".lock")).exclusive()

    def _read(self, path: str, default):
        try:
            with open(path, "rb") as f:
                return _json.loads(f.read().decode())
        except FileNotFoundError:
            return default
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"{path}: unreadable network state: {e}") from None

    def _write(self, path: str, doc) -> None:
        from ..._fs import write_atomic

        write_atomic(path, _json.dumps(doc).encode(), 0o600, durable=False)  # the run root's: volatile

    def _endpoint(self, path: str) -> dict | None:
        doc = self._read(path, None)
        if doc is None:
            return None
        ok = (isinstance(doc, dict) and all(isinstance(doc.get(k), str) for k in ("id", "name", "netns"))
              and isinstance(doc.get("ports"), list) and isinstance(doc.get("networks"), dict)
              and all(isinstance(v, dict) and isinstance(v.get("interface"), str) and isinstance(v.get("ips"), list)
                      and isinstance(v.get("aliases"), list) for v in doc["networks"].values()))
        if not ok:
            raise ConfigError(f"{path}: malformed network state (want id, name, netns, ports, networks)")
        return doc

    def _ipam(self, path: str) -> dict:
        doc = self._read(path, {})
        if not isinstance(doc, dict) or not all(isinstance(v, dict) and all(
                isinstance(ip, str) and isinstance(o, str) for ip, o in v.items()) for v in doc.values()):
            raise ConfigError(f"{path}: malformed address allocations (want {{network: {{ip: container}}}})")
        return doc

    def get(self, cid: str) -> dict | None:
        _check_id(cid)
        return self._endpoint(os.path.join(self._dir, cid + ".json"))

    def list(self) -> list[dict]:
        try:
            names = sorted(os.listdir(self._dir))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(".json"):
                doc = self._endpoint(os.path.join(self._dir, n))
                if doc is not None:
                    out.append(doc)
        return out

    def find(self, name_or_id: str) -> dict:
        """An attached container by name, ID or unique ID prefix."""
        eps = self.list()
        hits = [e for e in eps if e["name"] == name_or_id or e["id"] == name_or_id] or \
               [e for e in eps if name_or_id and e["id"].startswith(name_or_id)]
        if len(hits) != 1:
            raise ContainerNetworkError(f"no such container {name_or_id!r}" if not hits else
                               f"container ID prefix {name_or_id!r} is ambiguous")
        return hits[0]

    def users(self, network: str) -> list[dict]:
        return [e for e in self.list() if network in e["networks"]]

    # -- addresses -----------------------------------------------------------------------

    def _allocate(self, ipam: dict, net: dict, cid: str, wanted: list[str]) -> list[str]:
        used = ipam.setdefault(net["name"], {})
        out = []
        for s in net["subnets"]:
            sub = ipaddress.ip_network(s["subnet"])
            gw = ipaddress.ip_address(s["gateway"]) if s.get("gateway") else None
            want = [ipaddress.ip_address(w) for w in wanted if ipaddress.ip_address(w) in sub]
            if want:
                ip = want[0]
                if ip == gw or ip == sub.network_address or (sub.version == 4 and ip == sub.broadcast_address):
                    raise ContainerNetworkError(f"IP address {ip} is reserved in network {net['name']}")
                if str(ip) in used:
                    raise ContainerNetworkError(f"IP address {ip} is already in use in network {net['name']}")
            else:
                lr = s.get("lease_range") or {}
                lo = ipaddress.ip_address(lr["start_ip"]) if "start_ip" in lr else sub.network_address + 1
                hi = ipaddress.ip_address(lr["end_ip"]) if "end_ip" in lr else (
                    sub.broadcast_address - (1 if sub.version == 4 else 0))
                ip = None
                cur = lo
                while cur <= hi:
                    if cur != gw and str(cur) not in used:
                        ip = cur
                        break
                    cur += 1
                if ip is None:
                    raise ContainerNetworkError(f"no free IP address left in network {net['name']} ({sub})")
            used[str(ip)] = cid
            out.append(str(ip))
        for w in wanted:
            if w not in out:
                raise ContainerNetworkError(f"IP address {w} is not inside any subnet of network {net['name']}")
        return out

    def _release(self, ipam: dict, network: str, cid: str) -> None:
        used = ipam.get(network, {})
        for ip in [ip for ip, owner in used.items() if owner == cid]:
            del used[ip]
        if not used:
            ipam.pop(network, None)

    # -- netavark options ----------------------------------------------------------------

    @staticmethod
    def _options(ep: dict, names: list[str], info: dict) -> dict:
        return {"container_id": ep["id"], "container_name": ep["name"], "port_mappings": ep["ports"] or None,
                "networks": {n: {"interface_name": ep["networks"][n]["interface"],
                                 "static_ips": ep["networks"][n]["ips"],
                                 "aliases": ep["networks"][n]["aliases"],
                                 **({"static_mac": ep["networks"][n]["mac"]} if ep["networks"][n].get("mac") else {})}
                             for n in names},
                "network_info": {n: info[n] for n in names}}

    # -- the operations ------------------------------------------------------------------

    def attach(self, cid: str, name: str, netns_path: str, networks: dict, ports: list | None = None) -> dict:
        """Attach the namespace at ``netns_path`` to ``networks`` ({name or ID: {"aliases": [...],
        "ips": [...]}}), with ``ports`` (netavark port mappings) published; returns
        {network: StatusBlock}. Nothing is left behind when it fails."""
        _check_id(cid)
        if not networks:
            raise UsageError("no network to attach to")
        defs = {}
        for key, opts in networks.items():
            net = self.networks.get(key)
            defs[net["name"]] = (net, opts or {})
        with self._lock():
            path = os.path.join(self._dir, cid + ".json")
            if os.path.exists(path):
                raise ContainerNetworkError(f"container {cid[:12]} is already attached: connect it to more networks instead")
            if any(e["name"] == name for e in self.list()):
                raise ContainerNetworkError(f"the container name {name!r} is already in use on pallet's networks")
            ep = {"id": cid, "name": name, "netns": netns_path, "ports": list(ports or []), "networks": {}}
            return self._setup(ep, defs, path)

    def _setup(self, ep: dict, defs: dict, path: str) -> dict:
        ipam_path = os.path.join(self.run_dir, "ipam.json")
        ipam = self._ipam(ipam_path)
        # addresses of containers with no attachment (a pallet killed mid-setup) are free again:
        # the lock is held, so no other setup is between allocating and recording
        live = {e["id"] for e in self.list()} | {ep["id"]}
        for net in list(ipam):
            for owner in {o for o in ipam[net].values() if o not in live}:
                self._release(ipam, net, owner)
        taken = {v["interface"] for v in ep["networks"].values()}
        n = 0
        for net, _ in defs.values():
            subnets.check_not_routed_elsewhere(net)
        for netname, (net, opts) in defs.items():
            iface = opts.get("interface")
            if iface is None:
                while f"eth{n}" in taken:
                    n += 1
                iface = f"eth{n}"
            elif iface in taken:
                raise ContainerNetworkError(f"interface name {iface} is used twice in container {ep['name']}")
            taken.add(iface)
            aliases = list(opts.get("aliases") or [])
            if net.get("dns_enabled"):
                aliases = [a for a in [ep["name"], ep["id"][:12]] if a not in aliases] + aliases
            ep["networks"][netname] = {"interface": iface, "aliases": aliases, "mac": opts.get("mac") or None,
                                       "ips": self._allocate(ipam, net, ep["id"], list(opts.get("ips") or []))}
        self._write(ipam_path, ipam)
        options = self._options(ep, list(defs), {k: v[0] for k, v in defs.items()})
        try:
            result = netavark.setup(self.run_dir, ep["netns"], options)
        except BaseException:
            for netname in defs:
                ep["networks"].pop(netname, None)
                self._release(ipam, netname, ep["id"])
            self._write(ipam_path, ipam)
            raise
        for netname, block in result.items():
            if netname in ep["networks"]:
                ep["networks"][netname]["mac"] = block.interfaces[0].mac_address if block.interfaces else None
                ep["networks"][netname]["dns_servers"] = block.dns_server_ips
        self._write(path, ep)
        return result

    def connect(self, container: str, network: str, aliases=(), ips=()) -> dict:
        """podman's ``network connect``: one more network for an attached container."""
        net = self.networks.get(network)
        with self._lock():
            ep = self.find(container)
            if net["name"] in ep["networks"]:
                raise ContainerNetworkError(f"container {ep['name']} is already connected to network {net['name']}")
            return self._setup(ep, {net["name"]: (net, {"aliases": list(aliases), "ips": list(ips)})},
                               os.path.join(self._dir, ep["id"] + ".json"))

    def disconnect(self, container: str, network: str) -> None:
        """podman's ``network disconnect``: tear one network down."""
        net = self.networks.get(network)
        with self._lock():
            ep = self.find(container)
            if net["name"] not in ep["networks"]:
                raise ContainerNetworkError(f"container {ep['name']} is not connected to network {net['name']}")
            self._teardown(ep, [net["name"]])

    def detach(self, cid: str) -> None:
        """Tear down every network of a container (its namespace stays: the caller removes it)."""
        _check_id(cid)
        with self._lock():
            ep = self.get(cid)
            if ep is None:
                return
            self._teardown(ep, list(ep["networks"]))

    def remove_network(self, name_or_id: str, force: bool = False) -> str:
        """podman's ``network rm``: refused while containers use it (NetworkInUse), unless
        ``force``, which disconnects them first. Returns the name."""
        from ...errors import NetworkInUse

        net = self.networks.get(name_or_id)
        users = self.users(net["name"])
        if users and not force:
            raise NetworkInUse(f"{net['name']!r} has associated containers with it. Use -f to forcibly "
                               "disconnect them: network is being used")
        for ep in users:
            self.disconnect(ep["id"], net["name"])
        self.networks.remove(net["name"])
        return net["name"]

    def prune(self, keep=lambda net: True) -> list[str]:
        """podman's ``network prune``: every network no container uses (and ``keep`` selects),
        the default one excepted. Returns the names removed."""
        from .config import DEFAULT_NAME

        gone = []
        for n in self.networks.list():
            if n["name"] != DEFAULT_NAME and keep(n) and not self.users(n["name"]):
                self.networks.remove(n["name"])
                gone.append(n["name"])
        return gone

    def _teardown(self, ep: dict, names: list[str]) -> None:
        info = {}
        for n in names:
            try:
                info[n] = self.networks.get(n)
            except ContainerNetworkError:  # removed with -f meanwhile: its definition is in no file any more
                info[n] = ep["networks"][n].get("definition") or {"name": n}
        ipam_path = os.path.join(self.run_dir, "ipam.json")
        err = None
        options = self._options(ep, names, info)
        if netns.is_mounted(ep["netns"]):
            try:
                netavark.teardown(self.run_dir, ep["netns"], options)
            except ContainerNetworkError as e:
                err = e
        else:
            # the namespace is gone, and its veths with it; netavark still has the bridge (when
            # nobody else is on it), the rules and the DNS entries to remove. It does that from a
            # stand-in namespace holding an interface of each name it will delete (it stops at
            # the first it cannot find)
            stand_in = netns.create(os.path.dirname(self.run_dir), "teardown-" + ep["id"][:12])
            try:
                netns.add_placeholders(stand_in, [ep["networks"][n]["interface"] for n in names])
                netavark.teardown(self.run_dir, stand_in, options)
            except ContainerNetworkError as e:
                err = e
            finally:
                netns.remove(stand_in)
        ipam = self._ipam(ipam_path)
        for n in names:
            self._release(ipam, n, ep["id"])
            ep["networks"].pop(n, None)
        self._write(ipam_path, ipam)
        path = os.path.join(self._dir, ep["id"] + ".json")
        if ep["networks"]:
            self._write(path, ep)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if err is not None:
            raise err
