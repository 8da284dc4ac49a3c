"""podman 4.3's ``pod`` verbs: create, start, stop, kill, restart, rm, ps, inspect, exists, top,
pause, unpause, prune (``containers/pods.py``); and what ``run``/``create --pod`` and ``rm --all``
need of pods. Exit codes as podman: 125 when pallet fails; ``pod rm`` 1 for an unknown pod,
``pod exists`` 1 when it does not.
"""

from __future__ import annotations

import sys

VERBS = ("pod",)
POD_EXIT = {"default": 125, "CommandNotFound": 127, "CommandNotRunnable": 126}
RM_EXIT = {"default": 125, "PodNotFound": 1}
EXISTS_EXIT = {"default": 125, "PodNotFound": 1}
#: pod ps --filter keys (podman's)
PS_FILTERS = ("id", "name", "label", "status", "ctr-names", "ctr-ids", "ctr-status", "ctr-number", "network")
POD_STATUSES = ("created", "running", "stopped", "exited", "dead", "paused", "degraded", "error")


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or POD_EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    if only not in (None, "pod"):
        return
    pod = _podman(sub.add_parser("pod", help="manage pods (containers sharing namespaces)",
                                 description="Manage pods: containers sharing network, IPC and UTS namespaces "
                                             "(--share) held by an infra container (catatonit -P), with one cgroup "
                                             "parent and the pod's published ports (see docs/containers.md)."))
    pod.set_defaults(func=_missing)
    psub = pod.add_subparsers(dest="pod_verb", metavar="COMMAND", parser_class=type(pod))

    p = _podman(psub.add_parser("create", help="create a pod (and its infra container)"))
    p.add_argument("pod_name", nargs="?", metavar="NAME", help="the pod's name (as --name)")
    p.add_argument("--name", "-n", metavar="NAME", help="the pod's name (default: a random one)")
    p.add_argument("--infra", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="make an infra container holding the shared namespaces (true)")
    p.add_argument("--no-infra", dest="infra", action="store_false", help="as --infra=false")
    p.add_argument("--infra-image", metavar="IMAGE", help="the infra container's image (default: containers.conf's "
                                                          "infra_image, else pallet's pause image with catatonit)")
    p.add_argument("--infra-command", metavar="COMMAND", help="the infra container's command (default: the image's)")
    p.add_argument("--infra-name", metavar="NAME", help="the infra container's name (default: POD_ID[:12]-infra)")
    p.add_argument("--publish", "-p", action="append", default=[], metavar="[[IP:]HOSTPORT:]CTRPORT[/PROTO]",
                   help="publish a port of the pod (repeatable)")
    p.add_argument("--network", "--net", action="append", default=[], metavar="MODE",
                   help="the pod's network: bridge, NAME, none, host")
    p.add_argument("--network-config-dir", metavar="DIR", help="where network definitions are")
    p.add_argument("--hostname", metavar="NAME", help="the pod's hostname (default: its name)")
    p.add_argument("--share", metavar="NAMESPACES", help="namespaces the members share: cgroup, ipc, net, pid, uts "
                                                         "(comma list; +LIST adds to the default ipc,net,uts)")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--cgroup-parent", metavar="PATH", help="the cgroup the pod's goes below (/pallet_parent)")
    p.add_argument("--exit-policy", default="continue", metavar="POLICY", help="continue or stop (recorded)")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP")
    p.add_argument("--dns", action="append", default=[], metavar="IP")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    p.add_argument("--dns-option", action="append", default=[], metavar="OPTION")
    p.add_argument("--replace", action="store_true", help="remove the pod of that --name first")
    p.add_argument("--mac-address", metavar="MAC", help="the infra container's MAC address on its network")
    p.add_argument("--ip", metavar="IP", help="the infra container's address on its network")
    p.add_argument("--pod-id-file", metavar="FILE", help="write the pod's ID to FILE")
    p.add_argument("--tls-verify", type=_bool, nargs="?", const=True, default=None, metavar="BOOL",
                   help="verify TLS when pulling the infra image")
    p.set_defaults(func=cmd_create)

    for verb, helptext, fn in (("start", "start pods (the infra container first)", cmd_start),
                               ("stop", "stop pods' containers (the infra container last)", cmd_stop),
                               ("restart", "stop and start pods", cmd_restart),
                               ("pause", "freeze pods' containers", cmd_pause),
                               ("unpause", "thaw pods' containers", cmd_unpause),
                               ("kill", "send a signal to pods' running containers", cmd_kill)):
        p = _podman(psub.add_parser(verb, help=helptext))
        p.add_argument("pods", nargs="*", metavar="POD")
        p.add_argument("--all", "-a", action="store_true")
        p.add_argument("--pod-id-file", action="append", default=[], metavar="FILE")
        if verb == "stop":
            p.add_argument("--time", "-t", type=int, metavar="SECONDS", help="before SIGKILL (each container's "
                                                                             "stop timeout)")
            p.add_argument("--ignore", "-i", action="store_true", help="no error for an unknown pod")
        if verb == "kill":
            p.add_argument("--signal", "-s", default="KILL", metavar="SIGNAL")
        p.set_defaults(func=fn)

    p = _podman(psub.add_parser("rm", aliases=["remove"], help="remove pods and their containers"), RM_EXIT)
    p.add_argument("pods", nargs="*", metavar="POD")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--force", "-f", action="store_true", help="stop running containers first; no error for an "
                                                              "unknown pod")
    p.add_argument("--ignore", "-i", action="store_true", help="no error for an unknown pod")
    p.add_argument("--time", "-t", type=int, metavar="SECONDS", help="stop timeout with --force")
    p.add_argument("--pod-id-file", action="append", default=[], metavar="FILE")
    p.set_defaults(func=cmd_rm)

    p = _podman(psub.add_parser("ps", aliases=["ls", "list"], help="list pods"))
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--format", metavar="FORMAT", help="json, table, or a Go template")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="id, name, label, status, ctr-names, ctr-ids, ctr-status, ctr-number, network")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--noheading", action="store_true")
    p.add_argument("--ctr-names", action="store_true", help="the containers' names")
    p.add_argument("--ctr-ids", action="store_true", help="the containers' IDs")
    p.add_argument("--ctr-status", action="store_true", help="the containers' states")
    p.add_argument("--ns", action="store_true", help="(accepted; the namespaces columns are not shown)")
    p.add_argument("--sort", default="created", metavar="KEY", help="created, id, name, number, status")
    p.set_defaults(func=cmd_ps)

    p = _podman(psub.add_parser("inspect", help="show pods as JSON"))
    p.add_argument("pods", nargs="*", metavar="POD")
    p.add_argument("--format", "-f", metavar="FORMAT", help="json or a Go template")
    p.add_argument("--latest", "-l", action="store_true", help="the pod created last")
    p.set_defaults(func=cmd_inspect)

    p = _podman(psub.add_parser("exists", help="exit 0 when the pod exists, 1 when not"), EXISTS_EXIT)
    p.add_argument("pod", metavar="POD")
    p.set_defaults(func=cmd_exists)

    p = _podman(psub.add_parser("top", help="the processes of a pod's running containers"))
    p.add_argument("pod", metavar="POD")
    p.add_argument("descriptors", nargs="*", metavar="DESCRIPTOR")
    p.set_defaults(func=cmd_top)

    p = _podman(psub.add_parser("prune", help="remove every pod none of whose containers runs"))
    p.add_argument("--force", "-f", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_prune)


def _bool(value: str) -> bool:
    from .common import tls_verify_arg

    return tls_verify_arg(value)


def _missing(args) -> int:
    from ..errors import UsageError

    raise UsageError("missing command 'pallet pod COMMAND' (create, start, stop, kill, restart, rm, ps, inspect, "
                     "exists, top, pause, unpause, prune)")


def _pods(args):
    from ..containers.pods import Pods
    from .container_common import open_containers

    return Pods(open_containers(args))


def _warn(message: str) -> None:
    print(f"WARN[0000] {message}" if not message.startswith("Port mappings") else message, file=sys.stderr)


def _targets(args, pods, every=None) -> list[str]:
    """The named pods, those of ``--pod-id-file`` files, or with ``--all`` every pod
    (``every(rec)``: only those)."""
    from ..errors import UsageError

    names = list(args.pods)
    for path in getattr(args, "pod_id_file", None) or []:
        try:
            with open(path, encoding="utf-8") as f:
                names.append(f.read(200).strip())
        except OSError as e:
            raise UsageError(f"reading pod ID file {path}: {e.strerror}") from None
    if args.all:
        if names:
            raise UsageError("--all and pods cannot be used together")
        return [r["id"] for r in pods.list() if every is None or every(r)]
    if not names:
        raise UsageError("you must provide at least one pod name or ID")
    return names


# -- create ----------------------------------------------------------------------------------

def options(args):
    from ..containers.pods import PodOptions
    from ..errors import UsageError
    from .common import key_values

    if args.pod_name and args.name and args.pod_name != args.name:
        raise UsageError("cannot specify a pod name both as --name and as an argument")
    return PodOptions(name=args.name or args.pod_name, infra=args.infra, infra_image=args.infra_image,
                      infra_command=args.infra_command, infra_name=args.infra_name, publish=args.publish,
                      networks=args.network, hostname=args.hostname, share=args.share,
                      labels=key_values(args.label, "--label"), cgroup_parent=args.cgroup_parent,
                      network_config_dir=args.network_config_dir, create_command=["pallet"] + sys.argv[1:],
                      exit_policy=args.exit_policy, add_hosts=args.add_host, dns=args.dns,
                      dns_search=args.dns_search, dns_options=args.dns_option, replace=args.replace,
                      mac_address=args.mac_address, ip=args.ip)


def cmd_create(args) -> int:
    from .containers import pull_fn

    o = options(args)
    pods = _pods(args)
    rec = pods.create(o, pull_fn(args, pods.store), warn=_warn)
    if args.pod_id_file:
        from .._fs import write_output

        try:
            write_output(args.pod_id_file, rec["id"].encode(), what="--pod-id-file")
        except BaseException:
            pods.remove(rec["id"], force=True)
            raise
    print(rec["id"])
    return 0


# -- life ------------------------------------------------------------------------------------

def _each(args, act) -> int:
    """Do ``act(pods, text)`` to each pod named (or every one, ``--all``), printing what it returns."""
    pods = _pods(args)
    for text in _targets(args, pods):
        print(act(pods, text))
    return 0


def cmd_start(args) -> int:
    return _each(args, lambda pods, text: pods.start(text, warn=_warn))


def cmd_stop(args) -> int:
    from ..containers.pods import PodNotFound

    def stop(pods, text):
        try:
            return pods.stop(text, args.time, warn=_warn)
        except PodNotFound:
            if not args.ignore:
                raise
            return text

    return _each(args, stop)


def cmd_restart(args) -> int:
    return _each(args, lambda pods, text: pods.restart(text, warn=_warn))


def cmd_pause(args) -> int:
    return _each(args, lambda pods, text: pods.pause(text, True))


def cmd_unpause(args) -> int:
    return _each(args, lambda pods, text: pods.pause(text, False))


def cmd_kill(args) -> int:
    from .containers import kill_signal

    sig = kill_signal(args.signal)
    return _each(args, lambda pods, text: pods.kill(text, sig))


def cmd_rm(args) -> int:
    from ..containers.pods import PodNotFound

    pods = _pods(args)
    for text in _targets(args, pods):
        try:
            print(pods.remove(text, force=args.force, timeout=args.time))
        except PodNotFound:
            if not (args.force or args.ignore or args.all):
                raise
    return 0


def cmd_prune(args) -> int:
    for pid in _pods(args).prune():
        print(pid)
    return 0


def cmd_exists(args) -> int:
    from ..containers.pods import PodNotFound

    try:
        _pods(args).get(args.pod)
    except PodNotFound:
        return 1  # silent, as podman's
    return 0


def cmd_top(args) -> int:
    from ..containers import procs
    from ._template import Struct, render_rows

    from .container_procs import id_names

    descriptors = procs.parse_descriptors(args.descriptors)
    pods = _pods(args)
    rows = []
    for cid, pid in pods.processes(args.pod):
        rows += procs.top(pid, descriptors, *id_names(pods.ctrs, cid, descriptors))
    keys = [f"C{i}" for i in range(len(descriptors))]
    headers = {k: procs.DESCRIPTORS[d] for k, d in zip(keys, descriptors)}
    data = [Struct("top", dict(zip(keys, r))) for r in rows]
    print(render_rows("table " + "\t".join("{{." + k + "}}" for k in keys), data, headers, "pod top"))
    return 0


# -- reports ---------------------------------------------------------------------------------

def cmd_inspect(args) -> int:
    from ..containers.pods import PodNotFound
    from ..errors import UsageError

    pods = _pods(args)
    if args.latest:
        if args.pods:
            raise UsageError("--latest and pods cannot be used together")
        recs = pods.list()[-1:]
        if not recs:
            raise UsageError("no pods to inspect")
    elif not args.pods:
        raise UsageError("you must provide at least one pod name or ID")
    else:
        try:
            recs = [pods.get(t) for t in args.pods]
        except PodNotFound:
            raise PodNotFound(f"inspecting object: no such pod {args.pods[0] if len(args.pods) == 1 else ''}"
                              .rstrip()) from None
    docs = [pods.inspect(r) for r in recs]
    if args.format and args.format != "json":
        from ._template import Struct, render

        for d in docs:
            view = dict(d, ID=d["Id"], Containers=[Struct("container", c, ID=c["Id"]) for c in d.get("Containers", [])],
                        Labels=d.get("Labels") or {})
            out = render(args.format, Struct("pod inspect", view, json_view=d), "pod inspect")
            print(out, end="" if out.endswith("\n") else "\n")
        return 0
    import json

    for d in docs:
        print(json.dumps(d, indent=5))
    return 0


def _ps_filter(texts: list[str]):
    """``pod ps --filter``: values of one key are alternatives, different keys must all match."""
    if not texts:
        return lambda e: True
    import re

    from ..errors import UsageError
    from ._filters import match_labels, split

    groups: dict = {}
    for text in texts:
        key, neg, value = split(text, PS_FILTERS, "pod ps")
        if key in ("id", "name", "ctr-names", "ctr-ids"):
            try:
                rx = re.compile(value)
            except re.error as e:
                raise UsageError(f"invalid filter {text!r}: {e}") from None
            field = {"id": lambda e: [e["Id"]], "name": lambda e: [e["Name"]],
                     "ctr-names": lambda e: [c["Names"] for c in e["Containers"]],
                     "ctr-ids": lambda e: [c["Id"] for c in e["Containers"]]}[key]
            test = lambda e, rx=rx, field=field: any(rx.search(v) for v in field(e))  # noqa: E731
        elif key == "status":
            if value not in POD_STATUSES:
                raise UsageError(f"invalid filter {text!r}: status must be one of {', '.join(POD_STATUSES)}")
            test = lambda e, v=value: e["Status"].lower() == v  # noqa: E731
        elif key == "ctr-status":
            test = lambda e, v=value: any(c["Status"] == v for c in e["Containers"])  # noqa: E731
        elif key == "ctr-number":
            if not value.isdigit():
                raise UsageError(f"invalid filter {text!r}: ctr-number wants a number")
            test = lambda e, v=int(value): len(e["Containers"]) == v  # noqa: E731
        elif key == "label":
            test = lambda e, v=value: match_labels(v, e["Labels"] or {})  # noqa: E731
        else:
            test = lambda e, v=value: v in e["Networks"]  # noqa: E731
        groups.setdefault(key, []).append((neg, test))
    return lambda e: all(any(t(e) != neg for neg, t in tests) for tests in groups.values())


PS_SORT = {"created": lambda e: e["Created"], "id": lambda e: e["Id"], "name": lambda e: e["Name"],
           "number": lambda e: len(e["Containers"]), "status": lambda e: e["Status"]}


def cmd_ps(args) -> int:
    from ..errors import UsageError
    from .common import print_ids_or_json
    from ._table import ago
    from ._template import Struct, render_rows

    if args.sort not in PS_SORT:
        raise UsageError(f"invalid option for --sort, options are: {', '.join(sorted(PS_SORT))}")
    keep = _ps_filter(args.filter)
    pods = _pods(args)
    entries = [e for e in (pods.ps_entry(r) for r in pods.list()) if keep(e)]
    entries.sort(key=PS_SORT[args.sort], reverse=args.sort == "created")  # podman's: newest first
    if print_ids_or_json(entries, args, indent=2):
        return 0

    def short(i: str) -> str:
        return i if args.no_trunc else i[:12]

    rows = []
    for e in entries:
        d = dict(e)
        d.update(ID=short(e["Id"]), InfraID=short(e["InfraId"]), Created=ago(e["Created"]),
                 NumberOfContainers=len(e["Containers"]),
                 ContainerNames=",".join(c["Names"] for c in e["Containers"]),
                 ContainerIds=",".join(short(c["Id"]) for c in e["Containers"]),
                 ContainerStatuses=",".join(c["Status"] for c in e["Containers"]),
                 Networks=",".join(e["Networks"]))
        rows.append(Struct("pod", d, json_view=e))
    fmt = args.format
    if not fmt or fmt == "table":
        cols = ["{{.ID}}", "{{.Name}}", "{{.Status}}", "{{.Created}}", "{{.InfraID}}"]
        if args.ctr_ids:
            cols.append("{{.ContainerIds}}")
        if args.ctr_names:
            cols.append("{{.ContainerNames}}")
        if args.ctr_status:
            cols.append("{{.ContainerStatuses}}")
        if not (args.ctr_ids or args.ctr_names or args.ctr_status):
            cols.append("{{.NumberOfContainers}}")
        fmt = "table " + "\t".join(cols)
    headers = {"ID": "POD ID", "Name": "NAME", "Status": "STATUS", "Created": "CREATED", "InfraID": "INFRA ID",
               "NumberOfContainers": "# OF CONTAINERS", "ContainerNames": "NAMES", "ContainerIds": "IDS",
               "ContainerStatuses": "STATUS", "Labels": "LABELS", "Networks": "NETWORKS", "Cgroup": "CGROUP"}
    out = render_rows(fmt, rows, headers, "pod ps", noheading=args.noheading)
    if out:
        print(out)
    return 0
