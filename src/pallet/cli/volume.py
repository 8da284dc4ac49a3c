"""podman's ``volume`` verbs: create, ls, inspect, rm, prune, exists, export, import, mount, unmount.

Volumes live in pallet's store, ``GRAPHROOT/volumes/NAME/_data`` (see docs/containers.md).
Exit codes as podman: 125 when pallet fails; ``rm`` 1 for an unknown volume and 2 for one in
use; ``exists`` 1 when it does not.
"""

from __future__ import annotations

VERBS = ("volume",)
VOLUME_EXIT = {"default": 125}
RM_EXIT = {"default": 125, "VolumeNotFound": 1, "VolumeInUse": 2}
EXISTS_EXIT = {"default": 125, "VolumeNotFound": 1}
LS_KEYS = ("name", "driver", "scope", "label", "opt", "until", "dangling")
PRUNE_KEYS = ("label", "until")


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or VOLUME_EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    if only not in (None, "volume"):
        return
    vol = _podman(sub.add_parser("volume", help="manage named volumes",
                                 description="Manage named volumes in pallet's store (GRAPHROOT/volumes/NAME/_data; "
                                             "see docs/containers.md)."))
    vol.set_defaults(func=cmd_missing)
    vsub = vol.add_subparsers(dest="volume_verb", metavar="COMMAND", parser_class=type(vol))

    p = _podman(vsub.add_parser("create", help="create a volume",
                                description="Create a volume. The local driver's -o type=TYPE,device=DEVICE,o=OPTIONS "
                                            "are mount(8)'s: the volume is mounted when first used."))
    p.add_argument("name", nargs="?", metavar="NAME", help="the volume's name (default: 64 random hex digits)")
    p.add_argument("--driver", default="local", metavar="DRIVER", help="local (the only driver)")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY[=VALUE]", help="a label (repeatable)")
    p.add_argument("--opt", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="type, device or o (mount(8)'s -t, device and -o)")
    p.add_argument("--ignore", action="store_true", help="no error when the volume exists already")
    p.set_defaults(func=cmd_create)

    p = _podman(vsub.add_parser("ls", aliases=["list"], help="list volumes"))
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="name, driver, scope, label, label!, opt, until, dangling (as podman's)")
    p.add_argument("--format", metavar="FORMAT", help="json, table, or a Go template")
    p.add_argument("--noheading", action="store_true", help="no header line")
    p.add_argument("--quiet", "-q", action="store_true", help="print only volume names")
    p.set_defaults(func=cmd_ls)

    p = _podman(vsub.add_parser("inspect", help="show volumes as JSON"))
    p.add_argument("volumes", nargs="*", metavar="VOLUME")
    p.add_argument("--all", "-a", action="store_true", help="every volume")
    p.add_argument("--format", "-f", metavar="FORMAT", help="json or a Go template over each volume")
    p.set_defaults(func=cmd_inspect)

    p = _podman(vsub.add_parser("rm", aliases=["remove"], help="remove volumes and their data"), RM_EXIT)
    p.add_argument("volumes", nargs="*", metavar="VOLUME")
    p.add_argument("--all", "-a", action="store_true", help="every volume")
    p.add_argument("--force", "-f", action="store_true", help="no error for an unknown volume")
    p.add_argument("--time", "-t", type=int, metavar="SECONDS", help="accepted for podman's scripts")
    p.set_defaults(func=cmd_rm)

    p = _podman(vsub.add_parser("prune", help="remove volumes no container uses"))
    p.add_argument("--force", "-f", action="store_true", help="do not ask")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="label, label!, until")
    p.set_defaults(func=cmd_prune)

    p = _podman(vsub.add_parser("exists", help="exit 0 when the volume exists, 1 when not"), EXISTS_EXIT)
    p.add_argument("volume", metavar="VOLUME")
    p.set_defaults(func=cmd_exists)

    p = _podman(vsub.add_parser("export", help="a volume's content as a tar archive"))
    p.add_argument("volume", metavar="VOLUME")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout, not a terminal)")
    p.set_defaults(func=cmd_export)

    p = _podman(vsub.add_parser("import", help="extract a tar archive into a volume (over its content)"))
    p.add_argument("volume", metavar="VOLUME")
    p.add_argument("source", metavar="TARBALL", help="a tar file, or - for stdin")
    p.set_defaults(func=cmd_import)

    p = _podman(vsub.add_parser("mount", help="mount volumes (those with -o options) and print their paths"))
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_mount)

    p = _podman(vsub.add_parser("unmount", aliases=["umount"], help="let go of what volume mount took"))
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_mount)


# -- helpers -------------------------------------------------------------------------------


def _volumes(args):
    from ..containers.volumes import Volumes
    from .store import store_options

    return Volumes(store_options(args).graphroot)


def _opts(values: list[str]) -> dict:
    """``-o`` values: ``KEY=VALUE`` (``copy``/``nocopy`` alone); as podman, ``-o o=a,b`` keeps its
    commas (only the first ``=`` splits)."""
    from .common import key_values

    bare = [v for v in values if v in ("copy", "nocopy")]
    out = key_values([v for v in values if v not in bare], "--opt", True)
    out.update((v, "") for v in bare)
    return out


def _struct(v: dict):
    """A volume as podman's Go struct (for --format templates)."""
    from ._template import Struct

    c = v["CreatedAt"]  # Go's time.Time.String() of it, nanoseconds kept
    created = c[:10] + " " + c[11:-1] + " +0000 UTC" if len(c) >= 20 and c[10] == "T" and c.endswith("Z") else c
    # the Go struct's fields are there when the JSON leaves them out (podman omits false/zero ones)
    return Struct("Volume", {"UID": 0, "GID": 0, "NeedsCopyUp": False, "NeedsChown": False, **v}, CreatedAt=created,
                  json_view=v)


def _filter(texts: list[str], keys: tuple, verb: str):
    """podman's volume filters, every value checked before anything is listed or removed; values
    of one key are alternatives (label: all must match), different keys all must match."""
    if not texts:
        return lambda rec: True
    import re
    import time

    from ..errors import UsageError
    from ._filters import match_labels, parse_bool, parse_until, split
    from ._table import parse_time

    groups: dict = {}
    now = time.time()
    for text in texts:
        key, neg, value = split(text, keys, verb)
        if neg and key != "label":
            raise UsageError(f"invalid filter {text!r}: only label can be negated (label!=)")
        if key == "name":
            try:
                rx = re.compile(value)
            except re.error as e:
                raise UsageError(f"invalid filter {text!r}: {e}") from None
            test = (lambda r, rx=rx: rx.search(r["name"]) is not None)
        elif key == "driver":
            test = (lambda r, v=value: r["driver"] == v)
        elif key == "scope":
            test = (lambda r, v=value: v == "local")
        elif key == "label":
            test = (lambda r, v=value, n=neg: match_labels(v, r["labels"]) != n)
            key = text  # every label filter must hold
        elif key == "opt":
            k, sep, want = value.partition("=")
            test = (lambda r, k=k, s=sep, w=want: k in r["options"] and (not s or r["options"][k] == w))
        elif key == "until":
            t = parse_until(value, now)

            def test(r, t=t):
                try:
                    return parse_time(r["created"]) < t
                except ValueError:
                    return False
        else:  # dangling
            want = parse_bool(key, value)
            test = (lambda r, w=want: (not r["users"]) == w)
        groups.setdefault(key, []).append(test)
    return lambda rec: all(any(t(rec) for t in tests) for tests in groups.values())


# -- verbs ---------------------------------------------------------------------------------


def cmd_missing(args) -> int:
    from ..errors import UsageError

    raise UsageError("missing command 'pallet volume COMMAND' (create, ls, inspect, rm, prune, exists, export, import, mount, "
                     "unmount)")


def cmd_create(args) -> int:
    from .common import key_values

    rec = _volumes(args).create(args.name, driver=args.driver, labels=key_values(args.label, "--label"),
                                options=_opts(args.opt), ignore=args.ignore)
    print(rec["name"])
    return 0


def cmd_ls(args) -> int:
    vols = _volumes(args)
    keep = _filter(args.filter, LS_KEYS, "volume ls")
    recs = [r for r in vols.list() if keep(r)]
    if args.quiet:
        if recs:
            print("\n".join(r["name"] for r in recs))
        return 0
    docs = [vols.inspect(r) for r in recs]
    if args.format == "json":
        from .common import print_json

        print_json(docs)
        return 0
    from ._reports import output

    fmt = args.format if args.format and args.format != "table" else "table {{.Driver}}\t{{.Name}}"
    rows = [_struct(d) for d in docs]
    fields = rows[0].keys() if rows else ("Name", "Driver", "Mountpoint", "CreatedAt", "Labels", "Scope", "Options",
                                          "MountCount", "NeedsCopyUp", "NeedsChown")
    output(fmt, rows, fields, {"Name": "VOLUME NAME"}, "volume ls", args.noheading)
    return 0


def inspect_one(args, name: str):
    """(JSON document, template data) of one volume, for the top-level ``inspect``."""
    vols = _volumes(args)
    doc = vols.inspect(vols.get(name))
    return doc, _struct(doc)


def cmd_inspect(args) -> int:
    from ..errors import UsageError

    vols = _volumes(args)
    if args.all == bool(args.volumes):
        raise UsageError("give VOLUME names or --all (not both)")
    from ..errors import VolumeNotFound

    try:
        recs = vols.list() if args.all else [vols.get(n) for n in args.volumes]  # every name checked first
    except VolumeNotFound as e:
        raise VolumeNotFound(f"inspecting object: no such volume {e.reference}", reference=e.reference) from None
    docs = [vols.inspect(r) for r in recs]
    if args.format and args.format != "json":
        from ._template import render

        for d in docs:
            out = render(args.format, _struct(d), "volume inspect")
            print(out, end="" if out.endswith("\n") else "\n")
        return 0
    from .common import print_json

    print_json(docs)
    return 0


def cmd_rm(args) -> int:
    import sys

    from ..errors import UsageError, VolumeInUse, VolumeNotFound

    if args.all == bool(args.volumes):
        raise UsageError("give VOLUME names or --all (not both)")
    vols = _volumes(args)
    names = [r["name"] for r in vols.list()] if args.all else args.volumes
    rc = 0
    for name in names:
        try:
            vols.remove(name, args.force)
            print(name)
        except VolumeNotFound as e:
            if args.force:
                continue
            print(f"Error: {e}", file=sys.stderr)
            rc = RM_EXIT["VolumeNotFound"]
        except VolumeInUse as e:  # podman goes on with the others and exits with the last code
            if args.force and _remove_users(args, vols, name):
                vols.remove(name, args.force)
                print(name)
                continue
            print(f"Error: {e}", file=sys.stderr)
            rc = RM_EXIT["VolumeInUse"]
    return rc


def _remove_users(args, vols, name: str) -> bool:
    """``volume rm --force``: the containers using the volume are removed first (stopped if
    running), as podman does. False when one of its users is not such a container."""
    from ..errors import PalletError
    from .container_common import open_containers

    try:
        ctrs = open_containers(args)
        for cid in list(vols.get(name).get("users") or ()):
            ctrs.remove(cid, force=True)
    except PalletError:  # no such container (or no store of containers here): the volume stays
        return False
    return True


def cmd_prune(args) -> int:
    import sys

    vols = _volumes(args)
    keep = _filter(args.filter, PRUNE_KEYS, "volume prune")
    if not args.force:
        print("WARNING! This will remove all volumes not used by at least one container. The following volumes "
              "will be removed:", flush=True)
        for r in vols.list():
            if not r["users"] and keep(r):
                print(r["name"])
        print("Are you sure you want to continue? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    for name in vols.prune(keep):
        print(name)
    return 0


def cmd_exists(args) -> int:
    _volumes(args).get(args.volume)
    return 0


def cmd_export(args) -> int:
    from .common import export_to

    vols = _volumes(args)
    vols.get(args.volume)  # an unknown volume leaves no file behind
    export_to(args.output, lambda f: vols.export(args.volume, f),
              "cannot write to terminal, use command-line redirection or the --output flag")
    return 0


def cmd_import(args) -> int:
    import sys

    from ..errors import UsageError

    vols = _volumes(args)
    vols.get(args.volume)
    if args.source == "-":
        vols.import_tar(args.volume, sys.stdin.buffer)
        return 0
    try:
        f = open(args.source, "rb")
    except OSError as e:
        raise UsageError(f"unable to read {args.source}: {e.strerror}") from None
    with f:
        vols.import_tar(args.volume, f)
    return 0


def cmd_mount(args) -> int:
    """``volume mount`` (prints each path) and ``volume unmount|umount`` (prints each name)."""
    vols = _volumes(args)
    for name in args.volumes:  # every name checked before any is mounted
        vols.get(name)
    for name in args.volumes:
        if args.volume_verb == "mount":
            print(vols.mount(name))
        else:
            vols.unmount(name)
            print(name)
    return 0
