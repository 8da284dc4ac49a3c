"""podman's ``network`` verbs: create, ls, inspect, rm, connect, disconnect, prune, exists.

Definitions live in pallet's own directory (``--network-config-dir``, ``$PALLET_NETWORK_CONFIG_DIR``,
default ``/etc/pallet/networks`` as root), run-time state (attachments, addresses, aardvark-dns)
under ``RUNROOT/networks``. Exit codes as podman: 125 when pallet fails; ``rm`` 1 for an unknown
network and 2 for one in use; ``exists`` 1 when it does not.
"""

from __future__ import annotations

VERBS = ("network",)
NETWORK_EXIT = {"default": 125}
RM_EXIT = {"default": 125, "NetworkNotFound": 1, "NetworkInUse": 2}
EXISTS_EXIT = {"default": 125, "NetworkNotFound": 1}


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or NETWORK_EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    if only not in (None, "network"):
        return
    net = _podman(sub.add_parser("network", help="manage container networks (netavark bridges)",
                                 description="Manage pallet's container networks: netavark bridge networks defined "
                                             "in pallet's own directory (see docs/containers.md)."))
    net.add_argument("--network-config-dir", metavar="DIR",
                     help="where network definitions are kept (default: $PALLET_NETWORK_CONFIG_DIR, "
                          "/etc/pallet/networks as root, GRAPHROOT/networks otherwise)")
    net.set_defaults(func=cmd_missing)
    nsub = net.add_subparsers(dest="network_verb", metavar="COMMAND", parser_class=type(net))

    p = _podman(nsub.add_parser("create", help="create a bridge network",
                                description="Create a bridge network; without --subnet one is chosen that overlaps "
                                            "no route or address on the host and no other network."))
    p.add_argument("name", nargs="?", metavar="NAME", help="the network's name (default palletN)")
    p.add_argument("--driver", "-d", default="bridge", metavar="DRIVER", help="bridge (the only driver)")
    p.add_argument("--subnet", action="append", default=[], metavar="CIDR", help="subnet (repeatable)")
    p.add_argument("--gateway", action="append", default=[], metavar="IP", help="gateway of the --subnet before it")
    p.add_argument("--ip-range", action="append", default=[], metavar="CIDR",
                   help="addresses given to containers, inside the --subnet before it")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("--disable-dns", action="store_true", help="no aardvark-dns name resolution on the network")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)")
    p.add_argument("--opt", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="bridge option: mtu, vlan, isolate, metric")
    p.add_argument("--interface-name", metavar="NAME", help="the bridge's name (default palletN)")
    p.add_argument("--ignore", action="store_true", help="no error when the network exists already")
    p.add_argument("--ipv6", action="store_true", help="accepted for podman's scripts; give an IPv6 --subnet")
    p.set_defaults(func=cmd_create)

    p = _podman(nsub.add_parser("ls", aliases=["list"], help="list networks"))
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="name, id, driver, label, label!, until, dangling (as podman's)")
    p.add_argument("--format", metavar="FORMAT", help="json, table, or a Go template")
    p.add_argument("--noheading", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true", help="print only network names")
    p.set_defaults(func=cmd_ls)

    p = _podman(nsub.add_parser("inspect", help="show networks' definitions as JSON"))
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("--format", "-f", metavar="FORMAT", help="a Go template over each network")
    p.set_defaults(func=cmd_inspect)

    p = _podman(nsub.add_parser("rm", aliases=["remove"], help="remove networks"), RM_EXIT)
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.add_argument("--force", "-f", action="store_true", help="also disconnect the containers using it")
    p.add_argument("--time", "-t", type=int, metavar="SECONDS", help="accepted for podman's scripts")
    p.set_defaults(func=cmd_rm)

    p = _podman(nsub.add_parser("connect", help="connect a container to a network"))
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--alias", action="append", default=[], metavar="NAME", help="another DNS name on this network")
    p.add_argument("--ip", metavar="IP", help="the IPv4 address on this network")
    p.add_argument("--ip6", metavar="IP", help="the IPv6 address on this network")
    p.set_defaults(func=cmd_connect)

    p = _podman(nsub.add_parser("disconnect", help="disconnect a container from a network"))
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--force", "-f", action="store_true", help="accepted for podman's scripts")
    p.set_defaults(func=cmd_disconnect)

    p = _podman(nsub.add_parser("prune", help="remove networks no container uses"))
    p.add_argument("--force", "-f", action="store_true", help="do not ask")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="label, label!, until")
    p.set_defaults(func=cmd_prune)

    p = _podman(nsub.add_parser("exists", help="exit 0 when the network exists, 1 when not"), EXISTS_EXIT)
    p.add_argument("network", metavar="NETWORK")
    p.set_defaults(func=cmd_exists)


# -- helpers -------------------------------------------------------------------------------


def _networks(args):
    from ..containers.network.config import Networks, default_config_dir

    d = getattr(args, "network_config_dir", None)
    if not d:
        graph = None
        if getattr(args, "root", None):
            import os

            graph = os.path.abspath(args.root)
        d = default_config_dir(graph)
    return Networks(d)


def _endpoints(args, networks):
    from ..containers.network.endpoints import Endpoints
    from .store import store_options

    return Endpoints(networks, store_options(args).runroot)


def _struct(doc: dict, no_trunc: bool = True):
    """A network as podman's Go struct (types.Network), for --format templates (``network ls``
    shows 12 digits of the ID unless --no-trunc, as podman's ListPrintReports)."""
    from ._template import Struct

    subs = [Struct("Subnet", Subnet=s["subnet"], Gateway=s.get("gateway", ""),
                   LeaseRange=Struct("LeaseRange", StartIP=s["lease_range"].get("start_ip", ""),
                                     EndIP=s["lease_range"].get("end_ip", "")) if s.get("lease_range") else None)
            for s in doc["subnets"]]
    return Struct("Network", Name=doc["name"], ID=doc["id"] if no_trunc else doc["id"][:12], Driver=doc["driver"],
                  NetworkInterface=doc.get("network_interface", ""), Created=doc.get("created", ""), Subnets=subs,
                  IPv6Enabled=doc.get("ipv6_enabled", False), Internal=doc.get("internal", False),
                  DNSEnabled=doc.get("dns_enabled", False), Labels=doc.get("labels") or {},
                  Options=doc.get("options") or {}, IPAMOptions=doc.get("ipam_options") or {}, json_view=doc)


def _created(doc: dict) -> float:
    from ._table import parse_time

    try:
        return parse_time(doc.get("created", ""))
    except Exception:  # noqa: BLE001 - a definition without a readable time sorts as the oldest
        return 0.0


def _filter(texts: list[str], keys: tuple, verb: str, users):
    """podman's network filters, every value checked before anything is listed or removed."""
    if not texts:
        return lambda d: True
    import re
    import time

    from ..errors import UsageError
    from ._filters import match_labels, parse_bool, parse_until, split

    tests = []
    now = time.time()
    for text in texts:
        key, neg, value = split(text, keys, verb)
        if key in ("name", "id"):
            try:
                rx = re.compile(value)
            except re.error as e:
                raise UsageError(f"invalid filter {text!r}: {e}") from None
            field = "name" if key == "name" else "id"
            tests.append((neg, lambda d, rx=rx, f=field: rx.search(d[f]) is not None))
        elif key == "driver":
            if value != "bridge":
                raise UsageError(f"invalid filter {text!r}: unsupported driver {value!r}")
            tests.append((neg, lambda d, v=value: d["driver"] == v))
        elif key == "label":
            tests.append((neg, lambda d, v=value: match_labels(v, d.get("labels") or {})))
        elif key == "until":
            t = parse_until(value, now)
            tests.append((neg, lambda d, t=t: _created(d) < t))
        elif key == "dangling":
            want = parse_bool(key, value)
            tests.append((neg, lambda d, w=want: (not users(d["name"])) == w))
    return lambda d: all(f(d) != neg for neg, f in tests)


# -- verbs ---------------------------------------------------------------------------------


def cmd_missing(args) -> int:
    from ..errors import UsageError

    raise UsageError("missing command 'pallet network COMMAND' (create, ls, inspect, rm, connect, disconnect, "
                     "prune, exists)")


def cmd_create(args) -> int:
    from .common import key_values

    networks = _networks(args)
    doc = networks.create(args.name, driver=args.driver, subnet_texts=args.subnet, gateways=args.gateway,
                          ip_ranges=args.ip_range, internal=args.internal, dns=not args.disable_dns,
                          labels=key_values(args.label, "--label"), options=key_values(args.opt, "--opt"),
                          interface=args.interface_name, ignore=args.ignore)
    print(doc["name"])
    return 0


def cmd_ls(args) -> int:
    networks = _networks(args)
    nets = networks.list()
    eps = None

    def users(name):
        nonlocal eps
        if eps is None:
            eps = _endpoints(args, networks)
        return eps.users(name)

    keep = _filter(args.filter, ("name", "id", "driver", "label", "until", "dangling"), "network ls", users)
    nets = [n for n in nets if keep(n)]
    if args.quiet:
        if nets:
            print("\n".join(n["name"] for n in nets))
        return 0
    if args.format == "json":
        from .common import print_json

        print_json(nets)
        return 0
    from ._reports import output

    fmt = args.format if args.format and args.format != "table" else "table {{.ID}}\t{{.Name}}\t{{.Driver}}"
    rows = [_struct(n, args.no_trunc) for n in nets]
    fields = rows[0].keys() if rows else _struct({"name": "", "id": "", "driver": "", "subnets": []}).keys()
    output(fmt, rows, fields, {"ID": "NETWORK ID"}, "network ls", args.noheading)
    return 0


def inspect_one(args, name: str):
    """(JSON document, template data) of one network, for the top-level ``inspect``."""
    doc = _networks(args).get(name)
    return doc, _struct(doc)


def cmd_inspect(args) -> int:
    networks = _networks(args)
    docs = [networks.get(n) for n in args.networks]  # every name checked before anything is printed
    if args.format and args.format != "json":
        from ._template import render

        for d in docs:
            out = render(args.format, _struct(d), "network inspect")
            print(out if out.endswith("\n") else out, end="" if out.endswith("\n") else "\n")
        return 0
    from .common import print_json

    print_json(docs)
    return 0


def cmd_rm(args) -> int:
    from ..errors import NetworkInUse, NetworkNotFound

    networks = _networks(args)
    eps = _endpoints(args, networks)
    rc = 0
    for name in args.networks:
        try:
            print(eps.remove_network(name, args.force))
        except (NetworkNotFound, NetworkInUse) as e:  # podman goes on with the others and exits with the last code
            if args.force and isinstance(e, NetworkNotFound):
                continue  # podman 4.3: rm --force of a network that does not exist is no error
            import sys

            print(f"Error: {e}", file=sys.stderr)
            rc = RM_EXIT[type(e).__name__]
    return rc


def cmd_connect(args) -> int:
    networks = _networks(args)
    ips = [x for x in (args.ip, args.ip6) if x]
    from ..containers.network.subnets import parse_ip

    for x in ips:
        parse_ip(x, "--ip")
    _endpoints(args, networks).connect(args.container, args.network, args.alias, ips)
    return 0


def cmd_disconnect(args) -> int:
    networks = _networks(args)
    _endpoints(args, networks).disconnect(args.container, args.network)
    return 0


def cmd_prune(args) -> int:
    import sys

    networks = _networks(args)
    eps = _endpoints(args, networks)
    keep = _filter(args.filter, ("label", "until"), "network prune", eps.users)
    if not args.force:
        print("WARNING! This will remove all networks not used by at least one container.\n"
              "Are you sure you want to continue? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    for name in eps.prune(keep):
        print(name)
    return 0


def cmd_exists(args) -> int:
    _networks(args).get(args.network)
    return 0
