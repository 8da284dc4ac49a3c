"""podman's and buildah's ``manifest`` verbs: create, add, remove, inspect, push, rm, exists, on
the store's manifest lists (``images.manifests``). Exit codes as podman: 125 when pallet fails,
``exists`` 1 for a list that is not there."""

from __future__ import annotations

import sys

from . import common

VERBS = ("manifest",)
MANIFEST_EXIT = {"default": 125}


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or MANIFEST_EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    if only not in (None, "manifest"):
        return
    top = _podman(sub.add_parser("manifest", help="manage manifest lists (multi-platform images) in the store"))
    top.set_defaults(func=cmd_missing)
    msub = top.add_subparsers(dest="manifest_verb", metavar="COMMAND", parser_class=type(top))

    p = _podman(msub.add_parser("create", help="create a manifest list, optionally with images"))
    p.add_argument("name", metavar="LIST")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="images in the store to add")
    p.add_argument("--all", action="store_true", help="accepted (the images added are the store's)")
    p.add_argument("--amend", "-a", action="store_true", help="add to the list of that name if there is one")
    p.add_argument("--format", choices=("oci", "v2s2", "docker"), default=None,
                   help="the list's type: docker (a manifest list, the default) or oci (an image index)")
    p.set_defaults(func=cmd_create)

    p = _podman(msub.add_parser("add", help="add an image in the store to a manifest list"))
    p.add_argument("list", metavar="LIST")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--all", action="store_true", help="accepted (the image added is the store's)")
    p.add_argument("--arch", metavar="ARCH", help="the instance's architecture (default: its config's)")
    p.add_argument("--os", metavar="OS", help="the instance's OS (default: its config's)")
    p.add_argument("--variant", metavar="VARIANT")
    p.add_argument("--os-version", metavar="VERSION")
    p.add_argument("--features", action="append", default=[], metavar="FEATURE")
    p.add_argument("--os-features", action="append", default=[], metavar="FEATURE")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_add)

    p = _podman(msub.add_parser("remove", help="remove an instance (by digest) from a manifest list"))
    p.add_argument("list", metavar="LIST")
    p.add_argument("digest", metavar="DIGEST")
    p.set_defaults(func=cmd_remove)

    p = _podman(msub.add_parser("inspect", help="show a manifest list as JSON"))
    p.add_argument("list", metavar="LIST")
    p.add_argument("--tls-verify", metavar="BOOL", help="accepted (lists in the store only)")
    p.add_argument("--authfile", metavar="PATH", help="accepted (lists in the store only)")
    p.set_defaults(func=cmd_inspect)

    p = _podman(msub.add_parser("push", help="push a manifest list and its images"))
    p.add_argument("list", metavar="LIST")
    p.add_argument("destination", nargs="?", metavar="DESTINATION")
    p.add_argument("--all", nargs="?", const="true", default="true", metavar="BOOL",
                   help="push every image the list names (default true)")
    p.add_argument("--rm", action="store_true", help="remove the list from the store once pushed")
    p.add_argument("--format", "-f", choices=("oci", "v2s2", "docker"), default=None,
                   help="the manifests' type: oci or docker (v2s2)")
    p.add_argument("--digestfile", metavar="PATH", help="write the list's digest there")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--remove-signatures", action="store_true")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    p.set_defaults(func=cmd_push)

    p = _podman(msub.add_parser("rm", help="remove manifest lists from the store (not their images)"))
    p.add_argument("lists", nargs="+", metavar="LIST")
    p.set_defaults(func=cmd_rm)

    p = _podman(msub.add_parser("exists", help="exit 0 when the manifest list exists, 1 when not"))
    p.add_argument("list", metavar="LIST")
    p.set_defaults(func=cmd_exists)


def _lists(args, create: bool = True):
    from ..images.manifests import ManifestLists
    from .store import open_store

    return ManifestLists(open_store(args, create=create))


def cmd_missing(args) -> int:
    from ..errors import UsageError

    raise UsageError("missing command 'pallet manifest COMMAND' (create, add, remove, inspect, push, rm, exists)")


def cmd_create(args) -> int:
    rec = _lists(args).create(args.name, args.images, oci=args.format == "oci", amend=args.amend)
    print(rec["id"])
    return 0


def cmd_add(args) -> int:
    lists = _lists(args)
    lists.add(args.list, args.image, os_=args.os, arch=args.arch, variant=args.variant,
                              features=args.features, os_features=args.os_features, os_version=args.os_version,
                              annotations=common.key_values(args.annotation, "--annotation"))
    print(lists.get(args.list)["id"])
    return 0


def cmd_remove(args) -> int:
    lists = _lists(args)
    lists.remove_instance(args.list, args.digest)
    print(lists.get(args.list)["id"])
    return 0


def cmd_inspect(args) -> int:
    raw, _ = _lists(args, False).document(args.list)
    sys.stdout.write(raw.decode())
    return 0


def cmd_push(args) -> int:
    from ..errors import UsageError
    from ..oci import mediatype as mt
    from ..transports.copy import CopyOptions

    lists = _lists(args, False)
    rec = lists.get(args.list)
    dest = args.destination
    if dest is None:
        name = rec["names"][0] if rec["names"] else ""
        if not name or name.startswith("localhost/"):
            raise UsageError(f"{args.list}: no registry in the name: give a destination such as docker://HOST/REPO:TAG")
        dest = "docker://" + name
    fmt = "v2s2" if args.format == "docker" else args.format
    options = CopyOptions(format=mt.FORMAT_NAMES[fmt] if fmt else None, progress=common.progress(args),
                          policy=args.policy, insecure_policy=args.insecure_policy,
                          remove_signatures=args.remove_signatures)
    result = lists.push(args.list, dest, common.context(args), common.context(args), options,
                        all_=args.all.lower() not in ("false", "0"))
    if args.digestfile:
        from .._fs import write_output

        write_output(args.digestfile, result.digest.encode(), what="--digestfile")
    if args.rm:
        lists.delete(rec["id"])
    return 0


def cmd_rm(args) -> int:
    from ..errors import PalletError

    lists = _lists(args, False)
    worst = 0
    for text in args.lists:
        try:
            rec = lists.delete(text)
        except PalletError as e:
            if len(args.lists) == 1:
                raise
            print(f"Error: {e}", file=sys.stderr)
            worst = 125 if worst == 0 else worst
            continue
        print(f"Untagged: {rec['names'][0]}" if rec["names"] else rec["id"])
        print(f"Deleted: {rec['id']}")
    return worst


def cmd_exists(args) -> int:
    return 0 if _lists(args, False).find(args.list) is not None else 1  # silent, as podman
