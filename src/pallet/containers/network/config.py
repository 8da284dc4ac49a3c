"""Network definitions: one ``NAME.json`` per network in netavark's (and podman 4's) JSON
format, in pallet's own directory so they never collide with podman's ``/etc/containers/networks``.

The directory: ``--network-config-dir``, else ``$PALLET_NETWORK_CONFIG_DIR``, else
``/etc/pallet/networks`` as root (podman's ``/etc/containers/networks``) and
``GRAPHROOT/networks`` rootless (as podman's rootless ``~/.local/share/containers/storage/networks``).
The default network ``pallet`` (bridge ``pallet0``) is written there the first time it is needed,
with a subnet chosen then (10.88.0.0/16 unless the host routes it or podman uses it). Every change holds
the directory's lock file.

Several definitions directories can be in use on one host (``--network-config-dir``, one per
store): each one other than ``/etc/pallet/networks`` names its bridges ``pl`` + six hex digits of
its path's digest + a number, and, as root, records itself in ``/var/lib/pallet/network-dirs`` so
that another directory's networks never take a subnet it holds while its bridges are down (a
record whose directory is gone is dropped when read).
"""

from __future__ import annotations

import os

from ..._fs import read_json_file
from ..._std import json as _json
from ...errors import ConfigError, ContainerNetworkError, NetworkNotFound, UsageError
from . import subnets

DEFAULT_NAME = "pallet"
BRIDGE_PREFIX = "pallet"
#: the definitions directory whose bridges are pallet0, pallet1...
STANDARD_DIR = "/etc/pallet/networks"
#: every definitions directory in use on this host, one small file each (root only)
DIRS_REGISTRY = "/var/lib/pallet/network-dirs"
#: a definition file is a few hundred bytes; a bigger one is refused, not read whole
MAX_DEFINITION = 1 << 20
#: netavark bridge options podman passes through (-o)
BRIDGE_OPTIONS = ("mtu", "vlan", "isolate", "metric")
_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NAME_REST = _NAME_FIRST + "_.-"


def default_config_dir(graphroot: str | None = None) -> str:
    env = os.environ.get("PALLET_NETWORK_CONFIG_DIR")
    if env:
        return os.path.abspath(env)
    from ..._userns import rootless_uid

    if rootless_uid() is None:
        return "/etc/pallet/networks"
    if graphroot is None:
        from ...storage.options import resolve

        graphroot = resolve().graphroot
    return os.path.join(graphroot, "networks")


def check_name(name: str) -> None:
    """podman's network name rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, at most 200 characters."""
    if (not isinstance(name, str) or not name or len(name) > 200 or name[0] not in _NAME_FIRST
            or any(c not in _NAME_REST for c in name)):
        raise UsageError(f"invalid network name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")


def _now() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def validate(doc, where: str) -> dict:
    """A network definition read from disk, checked field by field (the message names the file
    and the field)."""
    def bad(field, why):
        return ConfigError(f"{where}: {field}: {why}")

    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: want a JSON object, got {type(doc).__name__}")
    for key, kind in (("name", str), ("id", str), ("driver", str), ("network_interface", str), ("created", str)):
        if key in doc and not isinstance(doc[key], kind) or key in ("name", "id", "driver") and key not in doc:
            raise bad(key, "missing or not a string")
    check_name_cfg = doc["name"]
    try:
        check_name(check_name_cfg)
    except UsageError as e:
        raise bad("name", str(e)) from None
    if len(doc["id"]) != 64 or any(c not in "0123456789abcdef" for c in doc["id"]):
        raise bad("id", "want 64 lowercase hex digits")
    if doc["driver"] != "bridge":
        raise bad("driver", f"{doc['driver']!r} is not supported (only bridge)")
    for key in ("ipv6_enabled", "internal", "dns_enabled"):
        if key in doc and not isinstance(doc[key], bool):
            raise bad(key, "want true or false")
    for key in ("labels", "options", "ipam_options"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, dict) or not all(isinstance(x, str) for kv in v.items() for x in kv)):
            raise bad(key, "want an object of strings")
    subs = doc.get("subnets")
    if not isinstance(subs, list) or not subs:
        raise bad("subnets", "want a non-empty list")
    for i, s in enumerate(subs):
        f = f"subnets[{i}]"
        if not isinstance(s, dict):
            raise bad(f, "want an object")
        try:
            net = subnets.parse(s.get("subnet"), f"{f}.subnet")
            if "gateway" in s:
                gw = subnets.parse_ip(s["gateway"], f"{f}.gateway")
                if gw not in net:
                    raise UsageError(f"gateway {gw} is outside {net}")
            lr = s.get("lease_range")
            if lr is not None:
                if not isinstance(lr, dict):
                    raise UsageError("lease_range: want an object")
                for k in ("start_ip", "end_ip"):
                    if k in lr and subnets.parse_ip(lr[k], f"{f}.lease_range.{k}") not in net:
                        raise UsageError(f"lease_range.{k} is outside {net}")
        except UsageError as e:
            raise ConfigError(f"{where}: {e}") from None
    return doc


class Networks:
    """The network definitions in one directory."""

    def __init__(self, config_dir: str):
        self.dir = config_dir
        self._real = os.path.realpath(config_dir)
        if self._real == STANDARD_DIR:
            self.bridge_prefix = BRIDGE_PREFIX
        else:
            import hashlib

            self.bridge_prefix = "pl" + hashlib.sha256(self._real.encode("utf-8", "surrogateescape")).hexdigest()[:6]
        self.default_interface = self.bridge_prefix + "0"

    # -- reading -------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name + ".json")

    def list(self) -> list[dict]:
        """Every network, sorted by name (the default one written first if missing)."""
        self.ensure_default()
        return self._read_all()

    def _read_all(self) -> list[dict]:
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            path = os.path.join(self.dir, n)
            try:
                doc = read_json_file(path, MAX_DEFINITION, "a network definition")
            except FileNotFoundError:  # removed meanwhile
                continue
            doc = validate(doc, path)
            if doc["name"] + ".json" != n:
                raise ConfigError(f"{path}: name: {doc['name']!r} does not match the file name")
            out.append(doc)
        return out

    def get(self, name_or_id: str) -> dict:
        """By full name, full ID or unique ID prefix (podman's lookup)."""
        if not isinstance(name_or_id, str) or not name_or_id:
            raise NetworkNotFound("network name or ID is empty")
        nets = self.list()
        for n in nets:
            if n["name"] == name_or_id or n["id"] == name_or_id:
                return n
        hits = [n for n in nets if n["id"].startswith(name_or_id)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ContainerNetworkError(f"network ID prefix {name_or_id!r} is ambiguous: {', '.join(h['name'] for h in hits)}")
        raise NetworkNotFound(f"unable to find network with name or ID {name_or_id}: network not found")

    # -- writing -------------------------------------------------------------------------

    def _lock(self):
        from ...storage.lock import FileLock

        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        return FileLock(os.path.join(self.dir, ".lock")).exclusive()

    def _write(self, doc: dict) -> None:
        from ..._fs import write_atomic

        write_atomic(self._path(doc["name"]), (_json.dumps(doc, indent=5) + "\n").encode(), 0o644)
        self._register()

    def _registry_entry(self, real: str) -> str:
        import hashlib

        return os.path.join(DIRS_REGISTRY, hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32])

    def _register(self) -> None:
        """Record this directory for the other directories' subnet choices (root only; best effort:
        a host without the record only loses the cross-store check)."""
        from ..._userns import rootless_uid

        if rootless_uid() is not None or self._real == STANDARD_DIR:
            return
        entry = self._registry_entry(self._real)
        if os.path.exists(entry):
            return
        from ..._fs import write_atomic

        try:
            os.makedirs(DIRS_REGISTRY, mode=0o755, exist_ok=True)
            write_atomic(entry, self._real.encode("utf-8", "surrogateescape"), 0o644)
        except OSError:
            pass

    def _choose(self, taken: list, default: bool = False):
        """A free subnet: overlapping no route, no network here, podman's, and, while the pools
        last, none of another pallet store's (whose bridges are down now: a kept-around test
        store's claims must not exhaust the pools; bringing up a bridge whose subnet another
        device routes is refused at attach time, see ``subnets.check_not_routed_elsewhere``)."""
        others = self.other_subnets()
        try:
            return subnets.choose(taken + [s for s, _ in others], default=default)
        except ContainerNetworkError:
            return subnets.choose(taken + [s for s, what in others if not what.startswith("another pallet")],
                                  default=default)

    def other_subnets(self) -> list:
        """Subnets that other tools' and other pallet stores' networks hold, bridges up or down:
        [(ip_network, "what uses it")]."""
        out = subnets.other_tools()
        dirs = [] if self._real == STANDARD_DIR else [STANDARD_DIR]
        try:
            names = os.listdir(DIRS_REGISTRY)
        except OSError:
            names = []
        for n in names:
            entry = os.path.join(DIRS_REGISTRY, n)
            try:
                with open(entry, "rb") as f:
                    real = f.read(4097).decode("utf-8", "surrogateescape")
            except OSError:
                continue
            if real == self._real or real == STANDARD_DIR or not real.startswith("/"):
                continue
            if not os.path.isdir(real):  # the store is gone, and so are its networks
                try:
                    os.unlink(entry)
                except OSError:
                    pass
                continue
            dirs.append(real)
        return out + subnets.other_tools(dirs, podman_default=False, owner="another pallet store's")

    def ensure_default(self) -> None:
        if os.path.exists(self._path(DEFAULT_NAME)):
            return
        with self._lock():
            self._write_default()

    def _taken(self, nets) -> list:
        import ipaddress

        return [ipaddress.ip_network(s["subnet"]) for n in nets for s in n["subnets"]]

    def _new_doc(self, name, iface, subs, *, internal, dns, labels, options) -> dict:
        doc = {"name": name, "id": os.urandom(32).hex(), "driver": "bridge", "network_interface": iface,
               "created": _now(), "subnets": subs,
               "ipv6_enabled": any(":" in s["subnet"] for s in subs), "internal": internal, "dns_enabled": dns}
        if labels:
            doc["labels"] = dict(labels)
        if options:
            doc["options"] = dict(options)
        doc["ipam_options"] = {"driver": "host-local"}
        return doc

    def create(self, name: str | None = None, *, driver: str = "bridge", subnet_texts=(), gateways=(),
               ip_ranges=(), internal: bool = False, dns: bool = True, labels: dict | None = None,
               options: dict | None = None, interface: str | None = None, ignore: bool = False) -> dict:
        """A new bridge network (podman's ``network create``); every value is checked before
        anything is written, and a subnet must overlap no host route and no other network."""
        if driver != "bridge":
            raise UsageError(f"unsupported network driver {driver!r}: pallet makes bridge networks only")
        if name is not None:
            check_name(name)
        if interface is not None:
            check_ifname(interface)
        options = dict(options or {})
        for k in options:
            if k not in BRIDGE_OPTIONS:
                raise UsageError(f"unsupported bridge option {k!r} (-o): want {', '.join(BRIDGE_OPTIONS)}")
        if "mtu" in options and not (options["mtu"].isdigit() and 68 <= int(options["mtu"]) <= 65535):
            raise UsageError(f"invalid -o mtu={options['mtu']!r}: want a number from 68 to 65535")
        if "vlan" in options and not (options["vlan"].isdigit() and 0 <= int(options["vlan"]) <= 4094):
            raise UsageError(f"invalid -o vlan={options['vlan']!r}: want a number from 0 to 4094")
        if "isolate" in options and options["isolate"] not in ("true", "false", "strict"):
            raise UsageError(f"invalid -o isolate={options['isolate']!r}: want true, false or strict")
        if "metric" in options and not (options["metric"].isdigit() and int(options["metric"]) < 1 << 32):
            raise UsageError(f"invalid -o metric={options['metric']!r}: want a route metric (a number)")
        if len(gateways) > len(subnet_texts) or len(ip_ranges) > len(subnet_texts):
            raise UsageError("every --gateway and --ip-range needs a --subnet before it")
        nets = [subnets.parse(t) for t in subnet_texts]
        for i, a in enumerate(nets):
            for b in nets[i + 1:]:
                if a.overlaps(b):
                    raise UsageError(f"--subnet {a} and --subnet {b} overlap")
        subs_given = [_subnet(n, gateways[i] if i < len(gateways) else None,
                              ip_ranges[i] if i < len(ip_ranges) else None) for i, n in enumerate(nets)]
        with self._lock():
            self._write_default()
            existing = self._read_all()
            if name is not None and any(n["name"] == name for n in existing):
                if ignore:
                    return next(n for n in existing if n["name"] == name)
                raise ContainerNetworkError(f"network name {name} already used: network already exists")
            if name is None:
                used = {n["name"] for n in existing}
                name = next(f"{BRIDGE_PREFIX}{i}" for i in range(1, 1 << 20) if f"{BRIDGE_PREFIX}{i}" not in used)
            host = subnets.host_networks()
            # a --subnet given is checked against podman's (another pallet store's is this user's call:
            # bringing both up at once is refused at attach time)
            others = subnets.other_tools()
            taken_cfg = [(n["name"], s) for n in existing for s in self._taken([n])]
            for net in nets:
                for other, s in taken_cfg:
                    if s.version == net.version and s.overlaps(net):
                        raise ContainerNetworkError(f"subnet {net} is already used by network {other!r} ({s})")
                hit = subnets.overlapping(net, host)
                if hit is not None:
                    raise ContainerNetworkError(f"subnet {net} is already used on the host: it overlaps the route or "
                                       f"address {hit}")
                for s, what in others:
                    if s.version == net.version and s.overlaps(net):
                        raise ContainerNetworkError(f"subnet {net} is already used by {what} ({s})")
            if not subs_given:
                subs_given = [_subnet(self._choose(host + [s for _, s in taken_cfg]), None, None)]
            if interface is None:
                interface = self._free_interface(existing)
            elif any(n.get("network_interface") == interface for n in existing):
                raise ContainerNetworkError(f"bridge name {interface} is already used by another network")
            doc = self._new_doc(name, interface, subs_given, internal=internal, dns=dns, labels=labels or {},
                                options=options)
            self._write(doc)
            return doc

    def _write_default(self) -> None:
        """The default network, when missing (the lock held)."""
        if os.path.exists(self._path(DEFAULT_NAME)):
            return
        taken = subnets.host_networks() + self._taken(self._read_all())
        net = self._choose(taken, default=True)
        self._write(self._new_doc(DEFAULT_NAME, self.default_interface, [_subnet(net, None, None)],
                                  internal=False, dns=False, labels={}, options={}))

    def _free_interface(self, existing) -> str:
        used = {n.get("network_interface") for n in existing}
        try:
            used |= set(os.listdir("/sys/class/net"))
        except OSError:
            pass
        for i in range(1, 1 << 16):
            cand = f"{self.bridge_prefix}{i}"
            if cand not in used:
                return cand
        raise ContainerNetworkError("no free bridge name left")

    def remove(self, name: str) -> None:
        if name == DEFAULT_NAME:
            raise ContainerNetworkError(f"default network {DEFAULT_NAME} cannot be removed")
        with self._lock():
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                raise NetworkNotFound(f"unable to find network with name or ID {name}: network not found") from None


def check_ifname(name: str) -> None:
    """Refuse an interface name the kernel would (empty, over 15 characters, '/', ':', spaces)."""
    if not 0 < len(name) < 16 or any(c in "/: \t\n" or not c.isprintable() for c in name) or name in (".", ".."):
        raise UsageError(f"invalid interface name {name!r}: at most 15 characters, no '/', ':' or spaces")


def _subnet(net, gateway: str | None, ip_range: str | None) -> dict:
    """netavark's subnet object: the gateway defaults to the first address; ``--ip-range``
    (a CIDR inside the subnet) becomes the lease range."""
    if gateway is None:
        gw = next(net.hosts())
    else:
        gw = subnets.parse_ip(gateway, "--gateway")
        if gw.version != net.version or gw not in net:
            raise UsageError(f"invalid --gateway {gateway}: not inside subnet {net}")
        if gw == net.network_address or (net.version == 4 and gw == net.broadcast_address):
            raise UsageError(f"invalid --gateway {gateway}: the network or broadcast address of {net}")
    out = {"subnet": str(net), "gateway": str(gw)}
    if ip_range is not None:
        r = subnets.parse(ip_range, "--ip-range")
        if r.version != net.version or not r.subnet_of(net):
            raise UsageError(f"invalid --ip-range {ip_range}: not inside subnet {net}")
        hosts = list(_first_last(r, net))
        out["lease_range"] = {"start_ip": str(hosts[0]), "end_ip": str(hosts[1])}
    return out


def _first_last(r, net):
    first = r.network_address + (1 if r.network_address == net.network_address else 0)
    last = r.broadcast_address - (1 if net.version == 4 and r.broadcast_address == net.broadcast_address else 0)
    return first, last
