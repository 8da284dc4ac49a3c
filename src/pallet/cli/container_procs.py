"""podman's verbs on running containers and their records: ``top``, ``stats``, ``port``,
``rename``, ``container prune`` (docs/containers.md). Exit codes as podman: 125 when pallet
fails."""

from __future__ import annotations

import sys

VERBS = ("top", "stats", "port", "rename")


def register(sub, only: str | None = None, group: bool = False) -> None:
    """The verbs; ``group``: under ``pallet container`` (which also has ``prune``)."""
    from .container_common import add_verbs

    adders = {"top": _top, "stats": _stats, "port": _port, "rename": _rename}
    if group:
        adders["prune"] = _prune
    add_verbs(sub, adders, only)


def _top(podman, sub, name):
    p = podman(sub.add_parser(name, help="a container's processes (psgo's descriptors: user pid ppid pcpu etime "
                                         "tty time args comm group nice pgid rss vsz state hpid huser caps...)"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("descriptors", nargs="*", metavar="DESCRIPTOR")
    p.set_defaults(func=cmd_top)


def _stats(podman, sub, name):
    p = podman(sub.add_parser(name, help="containers' resource use, every --interval seconds until interrupted "
                                         "(--no-stream: once)"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--no-stream", action="store_true", help="one sample, then exit")
    p.add_argument("--all", "-a", action="store_true", help="every container (as without names)")
    p.add_argument("--format", metavar="FORMAT", help="json, table or a Go template")
    p.add_argument("--interval", "-i", type=int, default=5, metavar="SECONDS", help="between samples (default 5)")
    p.add_argument("--no-reset", action="store_true", help="do not clear the terminal between samples")
    p.add_argument("--no-trunc", action="store_true", help="full container IDs")
    p.set_defaults(func=cmd_stats)


def _port(podman, sub, name):
    p = podman(sub.add_parser(name, help="a container's published ports, or the host side of one"))
    p.add_argument("container", nargs="?", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.add_argument("--all", "-a", action="store_true", help="every container's")
    p.set_defaults(func=cmd_port)


def _rename(podman, sub, name):
    p = podman(sub.add_parser(name, help="give a container a new name"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_rename)


def _prune(podman, sub, name):
    p = podman(sub.add_parser(name, help="remove every container that is not running"))
    p.add_argument("--force", "-f", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="label, label!, until")
    p.set_defaults(func=cmd_prune)


def _containers(args):
    from .container_common import open_containers

    return open_containers(args)


def _running(ctrs, text: str) -> tuple[dict, int]:
    from ..errors import ContainerStateError

    c = ctrs.get(text)
    st = ctrs.state(c["id"])
    if st.get("state") != "running" or not st.get("pid"):
        raise ContainerStateError("top can only be used on running containers")
    return c, st["pid"]


def id_names(ctrs, cid: str, descriptors: list) -> tuple[dict, dict]:
    """The container's user and group names by id (its /etc/passwd and /etc/group, read by fd in
    its root) when ``descriptors`` show any."""
    from .. import _rootfs
    from ..containers import procs
    from ..containers.files import Rootfs

    if not any(d in ("user", "ruser", "group", "rgroup") for d in descriptors):
        return {}, {}
    with Rootfs(ctrs, cid) as root:
        return tuple(procs.id_names((_rootfs.read_in_root(root.fd, f"/etc/{f}", 4 << 20) or b"").decode("utf-8",
                                                                                                          "replace"))
                     for f in ("passwd", "group"))


def cmd_top(args) -> int:
    from ..containers import procs
    from ._template import Struct, render_rows

    descriptors = procs.parse_descriptors(args.descriptors)
    ctrs = _containers(args)
    c, pid = _running(ctrs, args.container)
    users, groups = id_names(ctrs, c["id"], descriptors)
    rows = procs.top(pid, descriptors, users, groups)
    keys = [f"C{i}" for i in range(len(descriptors))]
    headers = {k: procs.DESCRIPTORS[d] for k, d in zip(keys, descriptors)}
    data = [Struct("top", dict(zip(keys, r))) for r in rows]
    print(render_rows("table " + "\t".join("{{." + k + "}}" for k in keys), data, headers, "top"))
    return 0


def _stats_row(c: dict, st: dict, s: dict, prev=None, no_trunc: bool = False) -> dict:
    """One container's row; ``prev``: ``(cpu_ns, monotonic time)`` of the last sample (the CPU %
    since then; without it, since the start, as podman's first sample)."""
    import time

    from ..containers.procs import go_duration, human_size
    from ._table import parse_time

    try:
        up = max(time.time() - parse_time(st.get("started_at")), 1e-9) if s["pids"] else 0
    except (TypeError, ValueError):
        up = 0
    avg = s["cpu_ns"] / 1e9 / up * 100 if up else 0.0
    pct = avg
    if prev is not None and s["pids"]:
        dt = time.monotonic() - prev[1]
        pct = (s["cpu_ns"] - prev[0]) / 1e9 / dt * 100 if dt > 0 else 0.0
    mem_pct = s["mem_usage"] / s["mem_limit"] * 100 if s["mem_limit"] else 0.0
    return {"ID": c["id"] if no_trunc else c["id"][:12], "Name": c["metadata"]["pallet"]["name"],
            "CPUPerc": f"{pct:.2f}%", "AVGCPU": f"{avg:.2f}%", "CPU": go_duration(s["cpu_ns"]),
            "MemUsage": f"{human_size(s['mem_usage'])} / {human_size(s['mem_limit'])}", "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": f"{human_size(s['net_rx'])} / {human_size(s['net_tx'])}",
            "BlockIO": f"{human_size(s['block_read'])} / {human_size(s['block_write'])}", "PIDS": str(s["pids"]),
            "MemUsageBytes": f"{s['mem_usage']} / {s['mem_limit']}", "UpTime": go_duration(int(up * 1e9))}


#: a container that is not running (podman's row of zeros)
_ZERO = {"cpu_ns": 0, "mem_usage": 0, "mem_limit": 0, "net_rx": 0, "net_tx": 0, "block_read": 0, "block_write": 0,
         "pids": 0}


def _sample(ctrs, targets: list, prev: dict, no_trunc: bool) -> list:
    import time

    from ..containers import procs

    rows = []
    for c in targets:
        st = ctrs.state(c["id"])
        s = _ZERO
        if st.get("state") == "running" and st.get("pid"):
            try:
                s = procs.stats(st["pid"])
            except OSError:  # it exited meanwhile
                s = _ZERO
        rows.append(_stats_row(c, st, s, prev.get(c["id"]), no_trunc))
        prev[c["id"]] = (s["cpu_ns"], time.monotonic())
    return rows


def _print_stats(rows: list, fmt: str | None) -> None:
    if fmt == "json":
        from .._std import json

        keys = (("id", "ID"), ("name", "Name"), ("cpu_time", "CPU"), ("cpu_percent", "CPUPerc"),
                ("avg_cpu", "AVGCPU"), ("mem_usage", "MemUsage"), ("mem_percent", "MemPerc"), ("net_io", "NetIO"),
                ("block_io", "BlockIO"), ("pids", "PIDS"))
        print(json.dumps([{k: r[f] for k, f in keys} for r in rows], indent=1), flush=True)
        return
    from ._template import Struct, render_rows

    headers = {"ID": "ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
               "NetIO": "NET IO", "BlockIO": "BLOCK IO", "PIDS": "PIDS", "CPU": "CPU TIME", "AVGCPU": "AVG CPU %",
               "UpTime": "UP TIME", "MemUsageBytes": "MEM USAGE / LIMIT"}
    fmt = fmt if fmt and fmt != "table" else \
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}" \
        "\t{{.CPU}}\t{{.AVGCPU}}"
    out = render_rows(fmt, [Struct("stats", r) for r in rows], headers, "stats")
    if out:
        print(out, flush=True)


def cmd_stats(args) -> int:
    """podman 4.3's: the named containers (a stopped one is a row of zeros), or every container;
    streamed every ``--interval`` seconds until interrupted, the CPU % since the last sample."""
    import time

    from ..errors import UsageError

    if args.interval < 1:
        raise UsageError(f"invalid --interval {args.interval}: must be at least 1 second")
    ctrs = _containers(args)
    if args.containers:
        targets = [ctrs.get(t) for t in args.containers]
    else:
        targets = sorted(ctrs.list(), key=lambda c: c["created"], reverse=True)
    prev: dict = {}
    rows = _sample(ctrs, targets, prev, args.no_trunc)
    if args.no_stream:
        _print_stats(rows, args.format)
        return 0
    reset = sys.stdout.isatty() and not args.no_reset
    try:
        while True:
            if reset:
                sys.stdout.write("\033[2J\033[H")
            _print_stats(rows, args.format)
            time.sleep(args.interval)
            if not args.containers:  # containers made or removed meanwhile
                targets = sorted(ctrs.list(), key=lambda c: c["created"], reverse=True)
            else:
                targets = [c for c in targets if c["id"] in {o["id"] for o in ctrs.list()}]
                if not targets:
                    return 0
            rows = _sample(ctrs, targets, prev, args.no_trunc)
    except KeyboardInterrupt:
        return 0


def cmd_port(args) -> int:
    from ..errors import UsageError

    if args.all and args.container and not args.private:
        args.private, args.container = args.container, None
    if not args.container and not args.all:
        raise UsageError("you must supply a running container name or id")
    want = None
    if args.private:
        num, _, proto = args.private.partition("/")
        if not (num.isascii() and num.isdigit()) or "/" in proto:
            raise UsageError(f"invalid port {args.private!r}: port formats are port/protocol")
        want = (int(num), proto or "tcp")
    ctrs = _containers(args)
    targets = [ctrs.get(args.container)] if args.container else sorted(ctrs.list(), key=lambda c: c["created"])
    found = any_ports = False
    for c in targets:
        if ctrs.state(c["id"]).get("state") != "running":
            continue
        for p in c["metadata"]["pallet"].get("publish") or []:
            any_ports = True
            host = p.get("host_ip") or "0.0.0.0"
            for i in range(p.get("range") or 1):
                cp, hp, proto = p["container_port"] + i, p["host_port"] + i, p.get("protocol", "tcp")
                prefix = f"{c['id'][:12]}\t" if args.all else ""
                if want is None:
                    print(f"{prefix}{cp}/{proto} -> {host}:{hp}")
                elif want == (cp, proto):
                    print(f"{prefix}{host}:{hp}")
                    found = True
    if want is not None and any_ports and not found:  # podman 4.3: a container without ports says nothing
        raise UsageError(f"failed to find published port \"{args.private}\"")
    return 0


def cmd_rename(args) -> int:
    from ..containers.container import META, check_name
    from ..errors import ContainerError, StoreError

    check_name(args.name)
    ctrs = _containers(args)
    c = ctrs.get(args.container)
    try:
        ctrs.store.rename_container(c["id"], args.name, META)
    except StoreError as e:
        if "already in use" in str(e):
            raise ContainerError(f"error renaming container {c['id']}: the container name \"{args.name}\" is already "
                                 "in use by another container: name or ID is already in use") from None
        raise
    return 0


def cmd_prune(args) -> int:
    import time

    from ..errors import ContainerNotFound, ContainerStateError
    from ._filters import match_labels, parse_until, split
    from ._table import parse_time

    tests = []
    for text in args.filter:
        key, neg, value = split(text, ("label", "until"), "container prune")
        if key == "label":
            tests.append(lambda c, v=value, n=neg: match_labels(v, c["metadata"]["pallet"].get("labels") or {}) != n)
        else:
            t = parse_until(value, time.time())
            tests.append(lambda c, t=t: parse_time(c["created"]) < t)
    if not args.force:
        print("WARNING! This will remove all non running containers.\nAre you sure you want to continue? [y/N] ",
              end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    ctrs = _containers(args)
    for c in sorted(ctrs.list(), key=lambda c: c["created"]):
        if ctrs.state(c["id"]).get("state") == "running" or not all(t(c) for t in tests):
            continue
        if (c["metadata"]["pallet"].get("pod") or {}).get("infra"):  # it goes with its pod (podman's)
            continue
        try:
            ctrs.remove(c["id"])
        except (ContainerNotFound, ContainerStateError):  # removed or started meanwhile
            continue
        print(c["id"])
    return 0
