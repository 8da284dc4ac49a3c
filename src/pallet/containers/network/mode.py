"""podman's ``--network`` values, checked before anything is created.

``none`` (a namespace with only ``lo``), ``host`` (the host's namespace), ``private`` /
``bridge`` (the default network), ``container:ID`` (another container's namespace),
``ns:PATH`` (a namespace file), or network names, each with podman 4's options
``NAME:ip=IP,ip6=IP,alias=NAME,interface_name=NAME,mac=MAC`` (repeat ``--network`` for more).
"""

from __future__ import annotations

from ...errors import UsageError

#: modes that give a container no network of pallet's, and so combine with nothing
ALONE = ("none", "host", "slirp4netns", "pasta")
_OPTS = ("ip", "ip6", "alias", "interface_name", "mac")


class NetworkMode:
    """``kind``: none, host, container, ns or bridge; ``target`` the container or path;
    ``networks``: {name: {"ips": [...], "aliases": [...], "interface": str|None, "mac": str|None}}."""

    __slots__ = ("kind", "target", "networks")

    def __init__(self, kind: str, target: str | None = None, networks: dict | None = None):
        self.kind, self.target, self.networks = kind, target, networks or {}

    def __repr__(self) -> str:
        return f"NetworkMode({self.kind!r}, {self.target!r}, {self.networks!r})"


#: slirp4netns's options podman 4.3 takes that pallet gives (the others are refused by name)
SLIRP_OPTIONS = ("allow_host_loopback",)


def slirp4netns_options(text: str) -> str:
    """``--network slirp4netns:OPT=V,...`` checked; returned as given (the mode's ``target``)."""
    for o in filter(None, text.split(",")):
        k, eq, v = o.partition("=")
        if k not in SLIRP_OPTIONS and k in ("cidr", "enable_ipv6", "mtu", "outbound_addr", "outbound_addr6",
                                            "port_handler"):
            raise UsageError(f"--network slirp4netns: option {k} is not supported by pallet yet "
                             "(allow_host_loopback is)")
        if k not in SLIRP_OPTIONS or v not in ("true", "false"):
            raise UsageError(f"invalid --network slirp4netns option {o!r}: want allow_host_loopback=true|false")
    return text


def slirp_allows_host_loopback(target: str | None) -> bool:
    """podman's rule: the host's 127.0.0.1 is reachable at 10.0.2.2 only when asked."""
    opts = dict(o.partition("=")[::2] for o in (target or "").split(",") if o)
    return opts.get("allow_host_loopback") == "true"


def parse(values: list[str], networks=None) -> NetworkMode:
    """The ``--network`` flags of one container; ``networks`` (a config.Networks), when given,
    resolves names (an unknown network is NetworkNotFound) and ``bridge`` to the default."""
    if not values:
        values = ["bridge"]
    special = [v for v in values if v in ALONE or v.startswith(("container:", "ns:", "slirp4netns:"))]
    if special and len(values) > 1:
        raise UsageError(f"--network {special[0]} cannot be combined with other --network values")
    v = values[0]
    if v in ("none", "host"):
        return NetworkMode(v)
    if v == "slirp4netns" or v.startswith("slirp4netns:"):
        return NetworkMode("slirp4netns", slirp4netns_options(v.partition(":")[2]))
    if v == "pasta" or v.startswith("pasta:"):
        raise UsageError(f"--network {v}: pasta is not supported by pallet yet (slirp4netns is)")
    if v.startswith("container:"):
        if not v[len("container:"):]:
            raise UsageError("invalid --network container: want container:NAME or container:ID")
        return NetworkMode("container", v[len("container:"):])
    if v.startswith("ns:"):
        path = v[3:]
        if not path.startswith("/"):
            raise UsageError(f"invalid --network {v!r}: ns: wants an absolute path")
        return NetworkMode("ns", path)
    from . import config, subnets  # not before: none and host need neither (nor ipaddress)

    out: dict = {}
    for v in values:
        name, _, opts = v.partition(":")
        if name in ("private", "bridge"):
            name = config.DEFAULT_NAME
        config.check_name(name)
        if name in out:
            raise UsageError(f"--network {name} is given twice")
        entry = {"ips": [], "aliases": [], "interface": None, "mac": None}
        for opt in opts.split(",") if opts else []:
            k, sep, val = opt.partition("=")
            if not sep or k not in _OPTS or not val:
                raise UsageError(f"invalid --network option {opt!r} in {v!r}: want {'=, '.join(_OPTS)}=VALUE")
            if k in ("ip", "ip6"):
                ip = subnets.parse_ip(val, f"--network {name} {k}")
                if (ip.version == 6) != (k == "ip6"):
                    raise UsageError(f"invalid --network {name} {k}={val}: wrong address family")
                entry["ips"].append(str(ip))
            elif k == "alias":
                config.check_name(val)
                entry["aliases"].append(val)
            elif k == "interface_name":
                config.check_ifname(val)
                entry["interface"] = val
            else:
                parts = val.split(":")
                if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                              for p in parts):
                    raise UsageError(f"invalid --network {name} mac={val!r}: want six hex pairs")
                entry["mac"] = val.lower()
        out[name] = entry
    if networks is not None:
        out = {networks.get(k)["name"]: e for k, e in out.items()}
    return NetworkMode("bridge", None, out)
