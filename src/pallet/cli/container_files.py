"""podman's verbs on a container's files: ``cp``, ``diff``, ``export``, ``commit``
(docs/containers.md). Exit codes as podman: 125 when pallet fails."""

from __future__ import annotations

import sys

VERBS = ("cp", "diff", "export", "commit")


def register(sub, only: str | None = None) -> None:
    from .container_common import add_verbs

    add_verbs(sub, {"cp": _cp, "diff": _diff, "export": _export, "commit": _commit}, only)


def _bool(text: str) -> bool:
    """A boolean flag's value as pflag takes it, ``-a=false`` included."""
    from .common import tls_verify_arg

    return tls_verify_arg(text[1:] if text.startswith("=") else text)


def _cp(podman, sub, name):
    p = podman(sub.add_parser(name, help="copy files between a container and the host ([CONTAINER:]PATH, "
                                         "'-': a tar on stdin/stdout)"))
    p.add_argument("source", metavar="[CONTAINER:]SRC_PATH")
    p.add_argument("dest", metavar="[CONTAINER:]DEST_PATH")
    p.add_argument("--archive", "-a", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="chown what is copied into a container to its primary uid/gid (default true)")
    for hidden in ("--pause", "--extract"):  # podman's deprecated flags, accepted and ignored
        p.add_argument(hidden, type=_bool, nargs="?", const=True, default=None, metavar="BOOL",
                       help="(deprecated, ignored: as podman 4.3)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a directory replace a non-directory and the other way round")
    p.set_defaults(func=cmd_cp)


def _diff(podman, sub, name):
    p = podman(sub.add_parser(name, help="what a container changed on its image (A added, C changed, D deleted)"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--format", metavar="FORMAT", help="json")
    p.set_defaults(func=cmd_diff)


def _export(podman, sub, name):
    p = podman(sub.add_parser(name, help="a container's root filesystem as a tar archive"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout, not a terminal)")
    p.set_defaults(func=cmd_export)


def _commit(podman, sub, name):
    p = podman(sub.add_parser(name, help="a new image from a container's changes"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", nargs="?", metavar="IMAGE")
    p.add_argument("--message", "-m", metavar="TEXT", help="the commit message (the history entry's comment)")
    p.add_argument("--author", "-a", metavar="NAME", help="the image's author")
    p.add_argument("--change", "-c", action="append", default=[], metavar="INSTRUCTION",
                   help="a Dockerfile instruction applied to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                        "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)")
    p.add_argument("--pause", "-p", action="store_true", help="pause the container while it is committed")
    p.add_argument("--format", "-f", default="oci", metavar="FORMAT", help="oci (default) or docker")
    p.add_argument("--squash", "-s", action="store_true", help="one layer with the whole tree")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the image ID")
    p.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    p.add_argument("--include-volumes", action="store_true", help="the container's mount points as image VOLUMEs")
    p.set_defaults(func=cmd_commit)


def _containers(args):
    from .container_common import open_containers

    return open_containers(args)


def cmd_cp(args) -> int:
    from ..containers import files
    from ..errors import UsageError

    src_ctr, src = files.split_arg(args.source)
    dst_ctr, dst = files.split_arg(args.dest)
    if not src or not dst:
        raise UsageError(f"invalid arguments \"{args.source}\", \"{args.dest}\": you must specify paths")
    if src_ctr is None and dst_ctr is None:
        raise UsageError("copying between two host paths is not supported: name a container as CONTAINER:PATH")
    ctrs = _containers(args)
    if src_ctr is not None and dst_ctr is not None:
        files.copy_between(ctrs, src_ctr, src, dst_ctr, dst, archive=args.archive, overwrite=args.overwrite)
    elif src_ctr is not None:
        if dst == "-" and sys.stdout.isatty():
            raise UsageError("refusing to write a tar archive to a terminal: redirect stdout")
        files.copy_out(ctrs, src_ctr, src, dst, out=sys.stdout.buffer, overwrite=args.overwrite)
    else:
        files.copy_in(ctrs, dst_ctr, dst, src, archive=args.archive, stdin=sys.stdin.buffer, overwrite=args.overwrite)
    return 0


def cmd_diff(args) -> int:
    from ..containers import files
    from ..errors import UsageError

    if args.format not in (None, "", "json"):
        raise UsageError(f"invalid --format {args.format!r}: want json")
    ctrs = _containers(args)
    from ..errors import ContainerNotFound, NotFound

    try:
        found = files.changes(ctrs, args.container)
    except ContainerNotFound:
        try:
            ctrs.store.image(args.container)
        except NotFound:
            raise ContainerNotFound(f"{args.container} not found: no container or image with that name or ID") \
                from None
        raise UsageError(f"{args.container} is an image: pallet diff compares a container with its image; "
                         "the diff of an image's layers is not supported yet") from None
    if args.format == "json":
        from .._std import json

        doc = {}
        for key, kind in (("changed", "C"), ("added", "A"), ("deleted", "D")):
            paths = [p for k, p in found if k == kind]
            if paths:
                doc[key] = paths
        print(json.dumps(doc, indent=5))  # podman 4.3's indent
        return 0
    for kind, path in found:
        print(f"{kind} {path}")
    return 0


def cmd_export(args) -> int:
    from ..containers import files
    from .common import export_to

    ctrs = _containers(args)
    if args.output:  # (to a terminal, podman's refusal comes before the lookup)
        ctrs.get(args.container)  # an unknown container leaves no file behind
    export_to(args.output, lambda f: files.export(ctrs, args.container, f),
              "refusing to export to terminal. Use -o flag or redirect")
    return 0


def cmd_commit(args) -> int:
    from ..builder.image import empty_config, load_config
    from ..builder.importing import apply_changes
    from ..builder.working import commit_image
    from ..containers.commit import apply_container
    from ..errors import UsageError

    if args.format not in ("oci", "docker"):
        raise UsageError(f"unrecognized image type {args.format!r}: want oci or docker")
    apply_changes({}, args.change)  # a bad --change is refused before anything is read or made
    names = []
    if args.image:
        from ..oci.reference import parse as parse_ref
        from ..errors import InvalidReference

        try:
            parse_ref(args.image)
        except (InvalidReference, ValueError) as e:
            raise UsageError(f"invalid image name {args.image!r}: {e}") from None
        names = [args.image]
    ctrs = _containers(args)
    c = ctrs.get(args.container)
    ctrs.check_has_layer(c, "commit")
    cid, meta = c["id"], c["metadata"]["pallet"]
    store = ctrs.store
    doc = load_config(store, store.image(c["image"])) if c.get("image") else empty_config()
    apply_container(doc.setdefault("config", {}), meta, ctrs.spec(cid), volumes=args.include_volumes)
    if args.author:
        doc["author"] = args.author
    apply_changes(doc, args.change)
    paused = False
    if args.pause and ctrs.state(cid).get("state") == "running" and not ctrs.state(cid).get("paused"):
        from ..containers.restart import pause, unpause

        pause(ctrs, cid)  # as `pallet pause`: the state says so while the layer is read
        paused = True
    try:
        rec = commit_image(store, cid, c.get("image"), doc, names, fmt=args.format, squash=args.squash,
                           created_by=" ".join(meta.get("create_command") or []) or "/bin/sh",
                           history_comment=args.message)
    finally:
        if paused:
            unpause(ctrs, cid)
    if args.iidfile:
        from .._fs import write_output

        write_output(args.iidfile, ("sha256:" + rec["id"]).encode(), what="--iidfile")
    print(rec["id"])
    return 0
