"""podman's image verbs on the local store: pull, push, images, rmi, tag, untag, save, load,
``image ...`` (ls, rm, inspect, history, mount, umount, prune, ...) and ``system df/check``.

Exit codes follow podman: 125 when pallet itself fails; ``rmi`` says 1 for an unknown image
and 2 for an image in use.
"""

from __future__ import annotations

import sys

from . import common

PODMAN_EXIT = {"default": 125}
RMI_EXIT = {"default": 125, "ImageUnknown": 1, "ImageInUse": 2}


def open_store(args, create: bool = True):
    """The store the global flags (``--root``, ``--runroot``, ``--storage-driver``) name;
    ``create=False`` for read-only verbs: a missing or empty root stays so (they show nothing),
    and a root that is not a pallet store is refused before anything is written."""
    from ..storage.store import Store

    return Store(store_options(args), create=create)


_store = open_store  # this module's verbs' short name


def store_options(args):
    from ..storage.options import resolve

    return resolve(getattr(args, "root", None), getattr(args, "runroot", None), getattr(args, "storage_driver", None))


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or PODMAN_EXIT, usage_exit=125)
    return p


VERBS = ("pull", "push", "images", "rmi", "tag", "untag", "save", "load", "image", "system", "info", "history",
         "import", "search", "unshare", "version")


def register(sub, only: str | None = None) -> None:
    """Add this area's verbs (only ``only``, when given)."""
    for name, add in (("pull", _pull), ("push", _push), ("images", _images), ("rmi", _rmi), ("tag", _tag),
                      ("untag", _untag), ("save", _save), ("load", _load)):
        if only in (None, name):
            add(sub, name)
    if only in (None, "image"):
        _image_group(sub)
    if only in (None, "import"):
        _import(sub, "import")
    if only in (None, "search"):
        _search(sub, "search")
    if only in (None, "info"):
        _info(sub, "info")
    if only in (None, "history"):
        _history(sub, "history")
    if only in (None, "system"):
        _system_group(sub)
    if only in (None, "unshare"):
        _unshare(sub, "unshare")
    if only in (None, "version"):
        _version(sub, "version")


def _version(sub, name):
    p = _podman(sub.add_parser(name, help="show pallet's version in podman's layout"))
    p.add_argument("--format", "-f", metavar="FORMAT",
                   help="json, or a Go template over podman's fields (.Client.Version, .Server.Built, .Version...)")
    p.set_defaults(func=cmd_version)


def version_report() -> dict:
    """podman 4.3's version fields for pallet: ``Version`` is pallet's, ``APIVersion`` the podman
    release whose command lines pallet follows, ``GoVersion`` the Python running it, ``Built``
    0 (no build time is recorded: Debian's podman says the same)."""
    import platform

    from .._version import __version__
    from ..oci.platform import host

    h = host()
    return {"APIVersion": "4.3.1", "Version": __version__, "GoVersion": "python" + platform.python_version(),
            "GitCommit": "", "BuiltTime": "Thu Jan  1 00:00:00 1970", "Built": 0,
            "OsArch": f"{h.os}/{h.architecture}", "Os": h.os}


def cmd_version(args) -> int:
    """podman's ``version``: the fields under ``Client`` (and ``Server``: a local engine is both,
    so ``{{.Server.Version}}`` answers as podman's fallback to the client does), or at the top
    (podman's older templates, ``{{.Version}}``)."""
    v = version_report()
    if args.format == "json":  # podman's: one line
        from .._std import json

        print(json.dumps({"Client": v}, separators=(",", ":")))
    elif args.format:
        from ._template import Template, unescape

        text = Template(unescape(args.format), "version").execute(dict(v, Client=v, Server=v))
        print(text if text.endswith("\n") else text + "\n", end="")
    else:
        print("\n".join(f"{k + ':':<14}{x}" for k, x in (
            ("Client", "pallet"), ("Version", v["Version"]), ("API Version", v["APIVersion"]),
            ("Go Version", v["GoVersion"]), ("Built", v["BuiltTime"]), ("OS/Arch", v["OsArch"]))))
    return 0


def _unshare(sub, name):
    p = _podman(sub.add_parser(name, help="run COMMAND (default: $SHELL) in the rootless user and mount namespace, "
                               "as its root: the store's files with the ids containers see (podman unshare)"))
    p.add_argument("command", nargs="...", default=[], metavar="COMMAND")
    p.set_defaults(func=cmd_unshare)


def cmd_unshare(args) -> int:
    """The CLI entered the namespace already (``unshare`` is a rootless verb): exec the command."""
    import os

    from .._userns import rootless_uid
    from ..errors import PalletError, UsageError

    if rootless_uid() is None:
        raise UsageError("please use unshare with rootless")  # podman's words as root
    cmd = args.command or [os.environ.get("SHELL") or "/bin/sh"]
    sys.stdout.flush()
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        raise PalletError(f"exec {cmd[0]!r}: {e.strerror}") from None
    return 0


def _image_group(sub) -> None:
    image = _podman(sub.add_parser("image", help="manage images in the local store"))
    isub = image.add_subparsers(dest="image_verb", metavar="COMMAND", parser_class=type(image))
    _images(isub, "ls", aliases=["list"])
    _rmi(isub, "rm")
    _pull(isub, "pull")
    _push(isub, "push")
    _tag(isub, "tag")
    _untag(isub, "untag")
    _save(isub, "save")
    _load(isub, "load")
    _import(isub, "import")
    p = _podman(isub.add_parser("inspect", help="show images' details as JSON"))
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--format", "-f", metavar="TEMPLATE", help="json, or a Go template over each image's object")
    p.set_defaults(func=cmd_image_inspect)
    _history(isub, "history")
    p = _podman(isub.add_parser("mount", help="mount an image's root filesystem read-only; no IMAGE: list mounts"))
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--format", metavar="FORMAT", help="the listing as json, or a Go template over its fields")
    p.set_defaults(func=cmd_image_mount)
    p = _podman(isub.add_parser("umount", aliases=["unmount"], help="unmount an image mounted with image mount"))
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--force", "-f", action="store_true", help="unmount even if others still hold it")
    p.set_defaults(func=cmd_image_umount)
    p = _podman(isub.add_parser("prune", help="remove dangling (or, with -a, all unused) images"))
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--force", "-f", action="store_true", help="do not ask (pallet never asks)")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only images matching: label=KEY[=VALUE], label!=KEY[=VALUE], until=24h|TIME")
    p.set_defaults(func=cmd_prune)
    p = _podman(isub.add_parser("tree", help="show an image's layers as a tree, as podman prints them"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--whatrequires", action="store_true", help="show the images built on this one")
    p.set_defaults(func=cmd_image_tree)
    p = _podman(isub.add_parser("diff", help="files added (A), changed (C), deleted (D): against the image's "
                                "parent layer, or from the first image to the second"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("other", nargs="?", metavar="IMAGE2")
    p.add_argument("--format", metavar="FORMAT", choices=("json",), help="json: {added, changed, deleted}")
    p.set_defaults(func=cmd_image_diff)
    p = _podman(isub.add_parser("exists", help="exit 0 if the image is in the store, 1 if not"))
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_exists)
    p = _podman(isub.add_parser("sign", help="sign images where they are (simple signing, GnuPG), as podman"))
    p.add_argument("images", nargs="+", metavar="TRANSPORT:IMAGE")
    p.add_argument("--sign-by", metavar="KEY", help="the GnuPG key to sign with (required)")
    p.add_argument("--directory", "-d", metavar="DIR",
                   help="write the signatures under DIR (default: registries.d's lookaside-staging)")
    p.add_argument("--all", "-a", action="store_true", help="sign every instance of a manifest list")
    p.add_argument("--authfile", metavar="PATH")
    p.add_argument("--cert-dir", metavar="DIR")
    p.add_argument("--passphrase-file", metavar="FILE", help="the key's passphrase")
    p.set_defaults(func=cmd_image_sign)


def _history(sub, name):
    p = _podman(sub.add_parser(name, help="show the history of an image"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", metavar="FORMAT", help="json, or a Go template (table ... adds headers)")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--human", "-H", type=common.tls_verify_arg, nargs="?", const=True, default=True)
    p.set_defaults(func=cmd_history)


def _import(sub, name):
    p = _podman(sub.add_parser(name, help="make a one-layer image from a tarball (a file, or - for stdin)"))
    p.add_argument("path", metavar="PATH", help="a .tar, .tar.gz or .tar.zst file, or - (stdin); not a URL")
    p.add_argument("reference", nargs="?", metavar="REFERENCE", help="the image's name (default: none)")
    p.add_argument("--change", "-c", action="append", default=[], metavar="INSTRUCTION",
                   help="CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR, "
                        "as in a Dockerfile (repeatable)")
    p.add_argument("--message", "-m", metavar="TEXT", help="the history entry's comment")
    p.add_argument("--arch", metavar="ARCH")
    p.add_argument("--os", metavar="OS")
    p.add_argument("--variant", metavar="VARIANT")
    p.add_argument("--quiet", "-q", action="store_true", help="accepted: only the image ID is printed anyway")
    p.set_defaults(func=cmd_import)


def _search(sub, name):
    p = _podman(sub.add_parser(name, help="search a registry's catalog (/v2/_catalog) for repositories"))
    p.add_argument("term", metavar="TERM", help="REGISTRY/TEXT (repositories whose name contains TEXT), "
                   "or TEXT for each unqualified-search registry")
    p.add_argument("--format", metavar="FORMAT",
                   help="json, or a Go template over .Index .Name .Description .Stars .Official .Automated .Tag")
    p.add_argument("--limit", type=int, default=25, metavar="N", help="at most N results per registry (default 25)")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="stars=N, is-automated=BOOL, is-official=BOOL (as podman's)")
    p.add_argument("--list-tags", action="store_true",
                   help="list the tags of the repository TERM names (--format: json, else podman's table)")
    p.add_argument("--no-trunc", action="store_true", help="do not shorten descriptions")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_search)


def _info(sub, name):
    p = _podman(sub.add_parser(name, help="show the host and the store (podman info's keys that apply)"))
    p.add_argument("--format", "-f", metavar="FORMAT",
                   help="json, or a Go template over podman's fields (.Host.Arch, .Store.GraphRoot, ...)")
    p.set_defaults(func=cmd_info)


def _system_group(sub) -> None:
    system = _podman(sub.add_parser("system", help="store-wide information and maintenance"))
    ssub = system.add_subparsers(dest="system_verb", metavar="COMMAND", parser_class=type(system))
    p = _podman(ssub.add_parser("df", help="show the disk space the store uses"))
    p.add_argument("--format", metavar="FORMAT", help="json, or a Go template (table ... adds headers)")
    p.set_defaults(func=cmd_df)
    p = _podman(ssub.add_parser("check", help="verify every layer, image and container; --repair fixes"))
    p.add_argument("--repair", "-r", action="store_true", help="remove what is damaged")
    p.add_argument("--quick", "-q", action="store_true", help="do not re-hash blobs")
    p.set_defaults(func=cmd_check)
    _info(ssub, "info")
    p = _podman(ssub.add_parser("prune", help="remove dangling (with -a, all unused) images; asks unless -f"))
    p.add_argument("--all", "-a", action="store_true", help="remove every image no container uses")
    p.add_argument("--force", "-f", action="store_true", help="do not ask (without it, stdin must be a terminal)")
    p.set_defaults(func=cmd_system_prune)
    p = _podman(ssub.add_parser("reset", help="remove every container and image of the store; asks unless -f"))
    p.add_argument("--force", "-f", action="store_true", help="do not ask (without it, stdin must be a terminal)")
    p.set_defaults(func=cmd_system_reset)


def _pull(sub, name):
    p = _podman(sub.add_parser(name, help="pull an image from a registry (or any transport) into the store"))
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--all-tags", "-a", action="store_true", help="pull every tag of the repository")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform to pull from an index")
    p.add_argument("--arch", metavar="ARCH")
    p.add_argument("--os", metavar="OS")
    p.add_argument("--variant", metavar="VARIANT")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the image ID")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_pull)


def _push(sub, name):
    p = _podman(sub.add_parser(name, help="push an image from the store to a registry (or any transport)"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("destination", nargs="?", metavar="DESTINATION")
    p.add_argument("--format", "-f", choices=("oci", "v2s2", "docker"), default=None,
                   help="the manifest type to push: oci, or docker (v2s2; the layers converted as needed)")
    p.add_argument("--compression-format", choices=("gzip", "zstd"), default=None)
    p.add_argument("--compression-level", type=int, default=None)
    p.add_argument("--digestfile", metavar="PATH")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--remove-signatures", action="store_true", help="do not copy the image's signatures")
    p.add_argument("--sign-by", metavar="FINGERPRINT", help="sign the pushed image with this GPG key")
    p.add_argument("--sign-passphrase-file", metavar="PATH", help="the passphrase of the --sign-by key")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_push)


def _images(sub, name, aliases=()):
    p = _podman(sub.add_parser(name, aliases=list(aliases), help="list images in the store"))
    p.add_argument("names", nargs="?", metavar="IMAGE", help="only images matching this reference")
    p.add_argument("--all", "-a", action="store_true", help="also show intermediate images (build steps)")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY[!]=VALUE",
                   help="after/since, before, containers, dangling, digest, id, intermediate, label, manifest, "
                        "readonly, reference, until (as podman's)")
    p.add_argument("--format", metavar="FORMAT", help="json, table, or a Go template (table ... adds headers)")
    p.add_argument("--noheading", "-n", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true", help="print only image IDs")
    p.add_argument("--sort", choices=("created", "id", "repository", "size", "tag"), default="created")
    p.set_defaults(func=cmd_images)


def _rmi(sub, name):
    p = _podman(sub.add_parser(name, help="remove images from the store"), RMI_EXIT)
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--force", "-f", action="store_true",
                   help="also unmount the image and remove containers using it")
    p.add_argument("--ignore", "-i", action="store_true", help="ignore images that are not known")
    p.set_defaults(func=cmd_rmi)


def _tag(sub, name):
    p = _podman(sub.add_parser(name, help="add names to an image"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=cmd_tag)


def _untag(sub, name):
    p = _podman(sub.add_parser(name, help="remove names from an image (all of them if none given)"))
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=cmd_untag)


def _save(sub, name):
    p = _podman(sub.add_parser(name, help="save images to an archive"))
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--output", "-o", metavar="FILE", default=None, help="default: stdout (not a terminal)")
    p.add_argument("--format", default="docker-archive",
                   choices=("docker-archive", "oci-archive", "oci-dir", "docker-dir"))
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--compress", action="store_true", help="compress layers (oci-dir, docker-dir)")
    p.add_argument("--uncompressed", action="store_true",
                   help="accept uncompressed layers (oci-archive, oci-dir): an image stored with a Docker "
                        "manifest is saved with plain tar layers, one stored as OCI as it is (podman's); "
                        "refused with --compress")
    p.add_argument("--multi-image-archive", "-m", action="store_true",
                   help="accepted for podman compatibility: several images always go into one archive")
    p.set_defaults(func=cmd_save)


def _load(sub, name):
    p = _podman(sub.add_parser(name, help="load images from a docker-archive or oci-archive"))
    p.add_argument("--input", "-i", metavar="FILE|URL", default=None, help="an archive, or its http(s) URL (default: stdin)")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_load)


def _progress(args):
    from .common import progress as p

    return p(args)


# -- handlers ------------------------------------------------------------------------------

def cmd_pull(args) -> int:
    from ..images import pull as _pull
    from ..transports.copy import CopyOptions

    store = _store(args)
    ctx = common.context(args)
    if args.platform:
        from ..oci.platform import Platform

        p = Platform.parse(args.platform)
        ctx.override_os, ctx.override_arch, ctx.override_variant = p.os, p.architecture, p.variant
    ctx.override_arch = args.arch or ctx.override_arch
    ctx.override_os = args.os or ctx.override_os
    ctx.override_variant = args.variant or ctx.override_variant
    for text in args.images:
        options = CopyOptions(progress=_progress(args), policy=args.policy, insecure_policy=args.insecure_policy)
        say = None if args.quiet else (lambda line: (sys.stderr.write(line + "\n"), sys.stderr.flush()))
        images = _pull.pull(store, text, ctx, options, all_tags=args.all_tags, say=say)  # "Trying to pull X..."
        for img in images:
            print(img["id"])
    return 0


def cmd_push(args) -> int:
    from ..oci import mediatype as mt
    from ..images import push as _push
    from ..transports.copy import CopyOptions

    store = _store(args, create=False)
    fmt = "v2s2" if args.format == "docker" else args.format
    options = CopyOptions(format=mt.FORMAT_NAMES[fmt] if fmt else None,
                          compress_format=args.compression_format, compress_level=args.compression_level,
                          progress=_progress(args), policy=args.policy, insecure_policy=args.insecure_policy,
                          remove_signatures=args.remove_signatures, sign_by=args.sign_by,
                          sign_passphrase_file=args.sign_passphrase_file)
    result = _push.push(store, args.image, args.destination, common.context(args), common.context(args), options)
    if args.digestfile:
        from .._fs import write_output

        write_output(args.digestfile, result.digest.encode(), what="--digestfile")
    return 0


def _listed_names(rec: dict) -> list[str]:
    """The names ``images`` gives a row each: every tag; an image pulled by digest only, one
    per repository (TAG <none>), as podman lists them."""
    from ..storage.names import split_name

    return [n for n in rec["names"] if "@" not in n] or list({split_name(n)[0]: n for n in rec["names"]}.values())


def cmd_images(args) -> int:
    from ._filters import ImageFilter
    from ._table import ago, human_size, table

    store = _store(args, create=False)
    images = store.images()
    texts = list(args.filter) + ([f"reference={args.names}"] if args.names else [])
    want = ImageFilter(store, images, texts)  # every value checked before anything is listed
    hidden = set() if args.all else want.intermediate()
    images = [r for r in images if r["id"] not in hidden and want(r)]
    key = {"created": lambda r: r.get("created", ""), "id": lambda r: r["id"], "size": lambda r: r.get("size", 0),
           "repository": lambda r: r["names"][0] if r["names"] else "", "tag": lambda r: r["names"][0] if r["names"] else ""}
    images.sort(key=key[args.sort], reverse=args.sort == "created")
    if args.quiet:
        seen = []
        for r in images:
            i = "sha256:" + r["id"] if args.no_trunc else r["id"][:12]  # podman's
            if i not in seen:
                seen.append(i)
        if seen:
            print("\n".join(seen))
        return 0
    if args.format and args.format != "table":
        from ._reports import IMAGE_HEADERS, image_json, image_row, output

        users: dict = {}
        for c in store.containers():
            users[c.get("image")] = users.get(c.get("image"), 0) + 1
        docs = [(r, image_json(r, want.labels(r), users.get(r["id"], 0),
                               not r["names"] and r["id"] not in want.intermediate())) for r in images]
        if args.format == "json":
            common.print_json([d for _, d in docs])
            return 0
        rows = [image_row(d, n, args.no_trunc) for r, d in docs for n in (_listed_names(r) or [""])]
        if args.sort in ("repository", "tag"):  # podman sorts the rows, one per name
            rows.sort(key=lambda row: row["Repository" if args.sort == "repository" else "Tag"])
        output(args.format, rows, rows[0].keys() if rows else image_row(image_json(
            {"id": "", "names": [], "digest": "", "digests": []}, None, 0, False), "", False).keys(),
            IMAGE_HEADERS, "images", args.noheading)
        return 0
    from ..storage.names import split_name

    if not texts:  # the store's manifest lists are listed as images, as podman and buildah do
        from ..images.manifests import ManifestLists

        images += [dict(r, size=0) for r in ManifestLists(store).all()]
    rows = []
    for r in images:
        for n in _listed_names(r) or ["<none>:<none>"]:
            repo, tag = split_name(n)
            row = [repo, tag]
            if args.digests:
                from ..storage.info import digest_shown

                row.append(digest_shown(r) if r.get("digest") else "")
            row += ["sha256:" + r["id"] if args.no_trunc else r["id"][:12], ago(r.get("created")),
                    human_size(r.get("size", 0))]
            rows.append(row)
    if args.sort in ("repository", "tag"):  # podman sorts the rows, one per name
        rows.sort(key=lambda row: row[0 if args.sort == "repository" else 1])
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    text = table(headers, rows, args.noheading)
    if text:
        print(text)
    return 0


def cmd_rmi(args) -> int:
    from ..containers import pods as _pods
    from ..errors import PalletError
    from ..images import lineage as _lineage
    from .common import global_store_args as _global_args

    store = _store(args)
    # --all: in the order they came into the store (podman's; "added" has nanoseconds)
    targets = common.targets_or_all(
        args.images, args.all, lambda: [r["id"] for r in sorted(store.images(), key=lambda r: (
            str(r.get("added") or "")))], "rmi needs an image, or --all")
    worst = 0
    gone: set[str] = set()  # parents removed with an image (rmi -a lists them too)
    errors: list[str] = []
    untagged_all: list[str] = []
    deleted_all: list[str] = []  # podman's report: every Untagged line, then every Deleted line
    for text in targets:
        if text in gone:
            continue
        parents: list[str] = []
        try:
            try:
                try:  # the image's ancestors: those it leaves dangling go with it (podman's)
                    parents = _lineage.ancestors(store, store.image(text))
                except PalletError:
                    pass
                iid, untagged, deleted = _pods.remove_image(store, text, force=args.force, every_name=args.all,
                                                           global_args=_global_args(args))
            except PalletError as e:  # a manifest list of that name goes as podman's rmi removes one
                if type(e).__name__ != "ImageUnknown":
                    raise
                from ..images.manifests import ManifestLists

                lists = ManifestLists(store)
                if lists.find(text) is None:
                    raise
                rec = lists.delete(text)
                iid, untagged, deleted = rec["id"], rec["names"], True
        except PalletError as e:
            if (args.ignore or args.force) and type(e).__name__ == "ImageUnknown":  # podman: -f ignores too
                continue
            if len(targets) == 1:
                raise
            errors.append(str(e))
            code = RMI_EXIT.get(type(e).__name__, 125)
            worst = code if worst == 0 or code > worst else worst
            continue
        untagged_all += untagged
        if deleted:
            deleted_all.append(iid)
            for pid in _lineage.remove_dangling(store, parents) if parents else ():
                gone.add(pid)
                deleted_all.append(pid)
    for n in untagged_all:
        print(f"Untagged: {n}")
    for iid in deleted_all:
        print(f"Deleted: {iid}")
    sys.stdout.flush()
    if len(errors) == 1:
        print(f"Error: {errors[0]}", file=sys.stderr)
    elif errors:  # podman's (hashicorp's multierror) list
        print(f"Error: {len(errors)} errors occurred:\n\t" + "\n\t".join(f"* {e}" for e in errors), file=sys.stderr)
    return worst


def cmd_tag(args) -> int:
    _store(args).tag(args.image, args.names)
    return 0


def cmd_untag(args) -> int:
    _store(args).untag(args.image, args.names)
    return 0


def cmd_save(args) -> int:
    from ..errors import UsageError
    from ..images import archive as _archive
    from ..transports.copy import CopyOptions, Progress

    if args.compress and args.uncompressed:
        raise UsageError("save: --compress and --uncompressed are mutually exclusive")
    output = args.output
    if output is None:
        if sys.stdout.isatty():
            raise UsageError("refusing to write an archive to a terminal: use --output FILE or redirect stdout")
        output = "/dev/stdout"
    options = CopyOptions(progress=Progress(None) if args.quiet or output == "/dev/stdout" else _progress(args),
                          compress_format="gzip" if args.compress else None, decompress=args.uncompressed)
    _archive.save(_store(args, create=False), args.images, output, args.format, common.context(args), options)
    return 0


def cmd_load(args) -> int:
    from ..images import archive as _archive
    from ..transports.copy import CopyOptions, Progress

    src = args.input or "-"
    if src in ("-", "/dev/stdin") and sys.stdin.isatty():
        from ..errors import UsageError

        raise UsageError("no archive on stdin: use --input FILE")
    names = _archive.load(_store(args), src, common.context(args),
                     CopyOptions(progress=Progress(None) if args.quiet else _progress(args)))
    for n in names:
        print(f"Loaded image: {n}")
    return 0


def inspect_one(args, name: str):
    """(JSON document, template data) of one image of the store, for the top-level ``inspect``."""
    from ..storage import info
    from ._template import Struct

    doc = info.inspect_image(_store(args, create=False), name)
    return doc, _image_data(doc)


def _image_data(doc: dict):
    """An image's inspect document as template data: podman's Go struct names its ``Id`` key's
    field ``ID`` (``{{.ID}}``); ``{{json .}}`` is the document."""
    from ._template import Struct

    return Struct("inspect.ImageData", doc, ID=doc.get("Id"), json_view=doc)


def cmd_image_inspect(args) -> int:
    from ..storage import info

    from ..storage.store import ImageUnknown

    store = _store(args, create=False)
    tmpl = None
    if args.format and args.format != "json":
        from ._template import Template, unescape

        tmpl = Template(unescape(args.format), "image inspect")  # a bad template: refused before any lookup
    out, missing = [], None
    for text in args.images:
        try:
            out.append(info.inspect_image(store, text))
        except ImageUnknown as e:  # podman: what was found is printed, then the error
            missing = missing or e
    if tmpl is not None:
        texts = [tmpl.execute(_image_data(o)) for o in out]  # all, or an error and nothing
        print("".join(t if t.endswith("\n") else t + "\n" for t in texts), end="")
    else:
        common.print_json(out)
    if missing is not None:
        missing.message = f"inspecting object: {missing.message}"
        raise missing
    return 0


def cmd_history(args) -> int:
    from ..storage import info
    from ._table import ago, human_size, table

    rows = info.history(_store(args, create=False), args.image)
    if args.quiet:
        print("\n".join(r["id"] if args.no_trunc or r["id"] == "<missing>" else r["id"][:12] for r in rows))
        return 0
    if args.format == "json":
        common.print_json([{"id": r["id"], "created": r["created"], "createdBy": r["created_by"], "size": r["size"],
                            "comment": r["comment"], "tags": r["tags"]} for r in rows])
        return 0
    if args.format and args.format != "table":
        from ._reports import HISTORY_FIELDS, history_row, output

        output(args.format, [history_row(r, args.no_trunc, args.human) for r in rows], HISTORY_FIELDS,
               {"CreatedSince": "CREATED"}, "history")
        return 0
    body = []
    for r in rows:
        created_by = r["created_by"] if args.no_trunc or len(r["created_by"]) <= 45 else r["created_by"][:42] + "..."
        body.append([r["id"] if args.no_trunc or r["id"] == "<missing>" else r["id"][:12],
                     ago(r["created"]) if args.human else r["created"], created_by,
                     human_size(r["size"]) if args.human else str(r["size"]), r["comment"]])
    print(table(["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"], body))
    return 0


def cmd_image_mount(args) -> int:
    store = _store(args, create=bool(args.images))
    if not args.images:
        mounts = store.mounted_images()
        docs = [{"id": img["id"], "Names": img["names"], "Repositories": img["names"], "mountpoint": path}
                for img, path, _ in mounts]
        if args.format == "json":
            common.print_json(docs)
        elif args.format:
            from ._reports import output
            from ._template import Struct

            output(args.format, [Struct("images.mountReporter", d) for d in docs],
                   ("id", "Names", "Repositories", "mountpoint"), None, "mount")
        else:
            for img, path, _ in mounts:
                print(f"{img['names'][0] if img['names'] else img['id'][:12]} {path}")
        return 0
    for text in args.images:
        print(store.mount_image(text))
    return 0


def cmd_image_umount(args) -> int:
    store = _store(args)
    targets = common.targets_or_all(args.images, args.all,
                                    lambda: [img["id"] for img, _, _ in store.mounted_images()],
                                    "image umount needs an image, or --all")
    for text in targets:
        store.umount_image(text, force=args.force or args.all)
        print(store.image(text)["id"])
    return 0


def cmd_prune(args) -> int:
    from ..storage import info

    store = _store(args)
    keep = None
    if args.filter:
        from ._filters import PRUNE_KEYS, ImageFilter

        want = ImageFilter(store, store.images(), args.filter, PRUNE_KEYS, "image prune")
        keep = lambda rec: not want(rec)  # noqa: E731
    for iid in info.prune(store, all_unused=args.all, keep=keep):
        print(iid)
    return 0


def cmd_exists(args) -> int:
    from ..storage.store import ImageUnknown

    try:
        _store(args, create=False).image(args.image)
    except ImageUnknown:
        return 1
    return 0


def cmd_df(args) -> int:
    from ..storage import info
    from ._table import human_size, table

    u = info.disk_usage(_store(args, create=False))
    if args.format == "json":
        common.print_json([{"Type": "Images", "Total": u["images"]["total"], "Active": u["images"]["active"],
                            "Size": u["images"]["size"], "Reclaimable": u["images"]["reclaimable"]},
                           {"Type": "Containers", "Total": u["containers"]["total"],
                            "Active": u["containers"]["active"], "Size": u["containers"]["size"],
                            "Reclaimable": u["containers"]["reclaimable"]}])
        return 0
    if args.format and args.format != "table":
        from ._reports import DF_FIELDS, df_row, output

        none = {"total": 0, "active": 0, "size": 0, "reclaimable": 0}
        output(args.format, [df_row("Images", u["images"]), df_row("Containers", u["containers"]),
                             df_row("Local Volumes", none)], DF_FIELDS, None, "df")
        return 0
    rows = []
    for kind, key in (("Images", "images"), ("Containers", "containers"), ("Local Volumes", None)):
        if key is None:
            rows.append([kind, "0", "0", "0B", "0B (0%)"])
            continue
        d = u[key]
        pct = int(100 * d["reclaimable"] / d["size"]) if d["size"] else 0
        rows.append([kind, str(d["total"]), str(d["active"]), human_size(d["size"]),
                     f"{human_size(d['reclaimable'])} ({pct}%)"])
    print(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))
    return 0


def cmd_check(args) -> int:
    from ..storage.check import check

    problems = check(_store(args, create=args.repair), repair=args.repair, verify_blobs=not args.quick)
    for p in problems:
        print(("repaired: " if args.repair else "") + p)
    if problems and not args.repair:
        print(f"Error: {len(problems)} problem(s) found: run 'pallet system check --repair' to fix them "
              "by removing what is damaged", file=sys.stderr)
        return 1
    return 0


def cmd_info(args) -> int:
    from ..transports import registries_conf
    from . import _system

    store = _store(args, create=False)
    doc = _system.info(store, registries_conf.load(common.context(args)).unqualified_search_registries)
    if args.format == "json":
        common.print_json(doc)
    elif args.format:
        from ._template import Template, TemplateError, unescape

        tmpl = Template(unescape(args.format), "info")
        try:
            text = tmpl.execute(_system.go_view(doc))  # podman's fields: .Host.Arch
        except TemplateError as e:
            try:  # buildah's info is a map of the same keys (.host.arch), and its host has these two
                from ..oci.platform import host

                bdoc = dict(doc, host=dict(doc.get("host") or {}))
                bdoc["host"].setdefault("variant", host().variant or "")
                from ..builder.run import default_runtime

                bdoc["host"].setdefault("OCIRuntime", default_runtime())  # what build's RUN uses
                text = tmpl.execute(bdoc)
            except TemplateError:
                raise e from None
        print(text if text.endswith("\n") else text + "\n", end="")
    else:
        print(_system.yaml(doc))
    return 0


def cmd_system_prune(args) -> int:
    from . import _system
    from ._reports import df_size

    store = _store(args)
    if not args.force:
        _system.confirm(_system.PRUNE_WARNING.format(images="unused" if args.all else "dangling"), "system prune")
    removed, freed = _system.prune(store, args.all)
    if removed:
        print("Deleted Images")
        print("\n".join(removed))
    print(f"Total reclaimed space: {df_size(freed)}")
    return 0


def cmd_system_reset(args) -> int:
    from . import _system

    store = _store(args, create=False)
    if not args.force:
        _system.confirm(_system.RESET_WARNING.format(root=store.graphroot, runroot=store.runroot), "system reset")
    if not store.absent:
        _system.reset(store)
    return 0


def cmd_image_sign(args) -> int:
    from ..errors import UsageError
    from ..images import sign as _sign

    if not args.sign_by:
        raise UsageError("no identity provided: use --sign-by KEY")
    ctx = common.context(args)
    for text in args.images:
        _sign.sign(text, args.sign_by, ctx, directory=args.directory, every=args.all,
                   passphrase_file=args.passphrase_file)
    return 0


def cmd_image_tree(args) -> int:
    from ._imageviews import image_tree

    print(image_tree(_store(args, create=False), args.image, args.whatrequires))
    return 0


def cmd_image_diff(args) -> int:
    from ._imageviews import image_diff

    from ..storage.store import ImageUnknown

    try:
        found = image_diff(_store(args, create=False), args.image, args.other)
    except ImageUnknown as e:  # podman's wording
        e.message = f"{str(e).split(':', 1)[0]} not found: {e.message}"
        raise
    if args.format == "json":
        doc: dict = {}
        for kind, key in (("A", "added"), ("C", "changed"), ("D", "deleted")):
            paths = [p for k, p in found if k == kind]
            if paths:
                doc[key] = paths
        common.print_json(doc)
        return 0
    if found:
        print("\n".join(f"{k} {p}" for k, p in found))
    return 0


def cmd_import(args) -> int:
    from ..errors import UsageError
    from ..builder.importing import apply_changes, import_tarball

    if "://" in args.path:
        raise UsageError(f"import {args.path}: URLs are not fetched: download the tarball, then import the file")
    apply_changes({}, args.change)  # a bad --change is refused before the store or the file is opened
    if args.path == "-":
        if sys.stdin.isatty():
            raise UsageError("import -: no tarball on stdin (a terminal)")
        src = sys.stdin.buffer
    else:
        try:
            src = open(args.path, "rb")
        except OSError as e:
            raise UsageError(f"import {args.path}: {e.strerror}") from None
    from ..errors import PalletError

    with src:
        try:
            rec = import_tarball(_store(args), src, [args.reference] if args.reference else [], args.change,
                                 args.message, args.os, args.arch, args.variant)
        except PalletError as e:  # the tarball's own faults (truncated, not a tar) name it
            if not str(e).startswith("import "):
                e.message = f"import {args.path}: {e.message}"
            raise
    print(f"sha256:{rec['id']}")
    return 0


def cmd_search(args) -> int:
    from ..errors import UsageError
    from ..images import search as _search
    from ._template import Struct

    ctx = common.context(args)
    keep = _search.parse_filters(args.filter)  # checked before the registry is asked
    if args.list_tags:
        if args.filter:
            raise UsageError("search --list-tags takes no --filter")
        name, tags = _search.search_tags(args.term, ctx, args.limit)
        if args.format == "json":
            common.print_json([{"Name": name, "Tags": tags}])
            return 0
        from ._reports import output

        rows = [Struct("entities.listTagsEntry", {"Name": name, "Tag": t}) for t in tags]
        if not rows:
            return 0
        # podman 4.3 prints its table whatever other template --list-tags is given
        output("table {{.Name}}\t{{.Tag}}", rows, ("Name", "Tag"), None, "search")
        return 0
    results = [r.fields() for r in _search.search(args.term, ctx, args.limit, keep)]
    if not args.no_trunc:
        for r in results:
            if len(r["Description"]) > 44:
                r["Description"] = r["Description"][:41] + "..."
    if args.format == "json":
        if results:
            common.print_json(results)
        return 0
    if not results:  # podman prints nothing, not even the headers
        return 0
    from ._reports import output

    fields = ("Index", "Name", "Description", "Stars", "Official", "Automated", "Tag")
    output(args.format or "table {{.Name}}\t{{.Description}}", [Struct("entities.SearchReport", r) for r in results],
           fields, None, "search")
    return 0
