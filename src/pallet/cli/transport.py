"""Verbs that move and look at images without a store: inspect, copy, sync, delete,
manifest-digest, standalone-sign, standalone-verify (skopeo's verbs, flags and exit codes)."""

from __future__ import annotations

import sys

from . import common


VERBS = ("inspect", "copy", "sync", "delete", "manifest-digest", "standalone-sign", "standalone-verify")


def register(sub, only: str | None = None) -> None:
    """Add this area's verbs (only ``only``, when given: the CLI builds just what it parses)."""
    for name, add in (("inspect", _add_inspect), ("copy", _add_copy), ("sync", _add_sync),
                      ("delete", _add_delete), ("manifest-digest", _add_manifest_digest),
                      ("standalone-sign", _add_standalone_sign), ("standalone-verify", _add_standalone_verify)):
        if only is None or only == name:
            add(sub)


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="inspect an image (no pull): manifest, config and tags; or local objects",
                       description="Show the metadata of an image in any transport as JSON, without pulling it "
                                   "(skopeo's inspect). Names without a transport are the store's objects, as "
                                   "podman inspect shows them: a container, an image, a volume or a network, "
                                   "looked up in that order (--type narrows it).")
    p.add_argument("image", metavar="IMAGE", nargs="*",
                   help="transport:details, e.g. docker://host/repo:tag, oci:DIR:TAG; or NAME... of local objects")
    p.add_argument("--latest", "-l", action="store_true", help="local objects: the container created last")
    p.add_argument("--type", "-t", choices=("all", "container", "image", "volume", "network"), default=None,
                   help="local objects: which kind to look for (default all)")
    p.add_argument("--raw", action="store_true", help="print the raw manifest (or with --config, the raw config)")
    p.add_argument("--config", action="store_true", help="print the image config instead")
    p.add_argument("--no-tags", "-n", action="store_true", help="do not list the repository's tags")
    p.add_argument("--format", "-f", metavar="TEMPLATE", help="a Go template over the JSON output's fields, e.g. '{{.Digest}}'")
    p.add_argument("--authfile", metavar="PATH", help="path of the authentication file")
    common.add_registry_flags(p)
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_inspect)


def _add_copy(sub) -> None:
    p = sub.add_parser("copy", help="copy an image from one location to another",
                       description="Copy an image between docker://, oci:, oci-archive:, docker-archive:, dir: "
                                   "and local: (the pallet store), or from a sif: file, converting and recompressing as asked.")
    p.add_argument("source", metavar="SOURCE-IMAGE")
    p.add_argument("destination", metavar="DESTINATION-IMAGE")
    p.add_argument("--all", "-a", action="store_true", help="copy every image of a multi-platform index")
    p.add_argument("--multi-arch", choices=("system", "all", "index-only"), default=None,
                   help="with an index: copy the image for this system (default), all of them, or the index only")
    p.add_argument("--format", "-f", choices=("oci", "v2s2", "v2s1"), default=None,
                   help="manifest type of the destination")
    p.add_argument("--dest-compress-format", choices=("gzip", "zstd"), default=None,
                   help="recompress layers with this algorithm")
    p.add_argument("--dest-compress-level", type=int, default=None, metavar="N", help="compression level")
    p.add_argument("--dest-compress", action="store_true", help="compress layers when the source has them plain")
    p.add_argument("--dest-decompress", action="store_true", help="store layers uncompressed")
    p.add_argument("--preserve-digests", action="store_true", help="fail rather than change any digest")
    p.add_argument("--digestfile", metavar="PATH", help="write the digest of the written manifest to PATH")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing while copying")
    p.add_argument("--image-parallel-copies", type=int, default=6, metavar="N", help="layers copied at once (6)")
    p.add_argument("--additional-tag", action="append", default=[], metavar="NAME:TAG",
                   help="extra tags for a docker-archive: destination")
    p.add_argument("--remove-signatures", action="store_true", help="do not copy the source's signatures")
    p.add_argument("--sign-by", metavar="FINGERPRINT", help="sign the image with this GPG key (simple signing)")
    p.add_argument("--sign-passphrase-file", metavar="PATH", help="the passphrase of the --sign-by key")
    p.add_argument("--sign-identity", metavar="REFERENCE",
                   help="the docker reference the signature vouches for (default: the destination's)")
    p.add_argument("--authfile", metavar="PATH", help="authentication file for both sides")
    p.add_argument("--src-shared-blob-dir", metavar="DIR", help="shared blob directory of an oci: source")
    p.add_argument("--dest-shared-blob-dir", metavar="DIR", help="shared blob directory of an oci: destination")
    common.add_registry_flags(p, "src")
    common.add_registry_flags(p, "dest")
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_copy)


def _add_sync(sub) -> None:
    p = sub.add_parser("sync", help="copy many images: all tags of a repository, a directory, or a YAML list",
                       description="Synchronise images between registries and local directories.")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("destination", metavar="DESTINATION")
    p.add_argument("--src", "-s", required=True, choices=("docker", "dir", "yaml"), help="source type")
    p.add_argument("--dest", "-d", required=True, choices=("docker", "dir", "oci"), help="destination type")
    p.add_argument("--all", "-a", action="store_true", help="copy every image of multi-platform indexes")
    p.add_argument("--scoped", action="store_true", help="keep the full source name under the destination")
    p.add_argument("--keep-going", action="store_true", help="go on after an image fails; exit 1 at the end")
    p.add_argument("--format", "-f", choices=("oci", "v2s2", "v2s1"), default=None)
    p.add_argument("--dry-run", action="store_true", help="say what would be copied, copy nothing")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--preserve-digests", action="store_true")
    p.add_argument("--remove-signatures", action="store_true", help="do not copy the source's signatures")
    p.add_argument("--sign-by", metavar="FINGERPRINT", help="sign every image with this GPG key")
    p.add_argument("--sign-passphrase-file", metavar="PATH", help="the passphrase of the --sign-by key")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p, "src")
    common.add_registry_flags(p, "dest")
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_sync)


def _add_delete(sub) -> None:
    p = sub.add_parser("delete", help="delete an image from a registry or layout",
                       description="Delete the image a reference names (registry manifests are deleted by digest).")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    common.add_retry_flags(p)
    p.set_defaults(func=cmd_delete)


def _add_manifest_digest(sub) -> None:
    p = sub.add_parser("manifest-digest", help="print the digest of a manifest file",
                       description="Compute the digest of a manifest file as a registry would.")
    p.add_argument("manifest", metavar="MANIFEST-FILE")
    p.set_defaults(func=cmd_manifest_digest)


def _add_standalone_sign(sub) -> None:
    p = sub.add_parser("standalone-sign", help="sign a manifest file (simple signing), without an image",
                       description="Write a signature of MANIFEST as stored at DOCKER-REFERENCE, made with the "
                                   "GPG key KEY-FINGERPRINT of your keyring.")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("reference", metavar="DOCKER-REFERENCE")
    p.add_argument("fingerprint", metavar="KEY-FINGERPRINT")
    p.add_argument("--output", "-o", required=True, metavar="SIGNATURE", help="where to write the signature")
    p.add_argument("--passphrase-file", metavar="PATH", help="the passphrase of the key")
    p.set_defaults(func=cmd_standalone_sign)


def _add_standalone_verify(sub) -> None:
    p = sub.add_parser("standalone-verify", help="verify a signature of a manifest file",
                       description="Check that SIGNATURE is a good signature of MANIFEST at DOCKER-REFERENCE by "
                                   "one of KEY-FINGERPRINTS (comma-separated) of your keyring, or of "
                                   "--public-key-file.")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("reference", metavar="DOCKER-REFERENCE")
    p.add_argument("fingerprints", metavar="KEY-FINGERPRINTS")
    p.add_argument("signature", metavar="SIGNATURE")
    p.add_argument("--public-key-file", metavar="PATH", help="trust the keys in this file, not your keyring")
    p.set_defaults(func=cmd_standalone_verify)


def _read_file(path: str, what: str, limit: int = 16 << 20) -> bytes:
    from ..errors import PalletError

    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise PalletError(f"reading {what} {path}: {e.strerror}") from None
    if len(data) > limit:
        raise PalletError(f"{what} {path} is too large")
    return data


def cmd_standalone_sign(args) -> int:
    from .._fs import write_output
    from ..oci import reference
    from ..oci.manifest import digest_of
    from ..transports import signature

    raw = _read_file(args.manifest, "manifest")
    named = reference.parse(args.reference)
    sig = signature.sign(signature.payload(str(named), digest_of(raw)), args.fingerprint, args.passphrase_file)
    write_output(args.output, sig, what="--output")
    return 0


def cmd_standalone_verify(args) -> int:
    import subprocess

    from ..errors import PalletError
    from ..oci import digest as _digest
    from ..oci import reference
    from ..oci.manifest import digest_of
    from ..transports import signature

    raw = _read_file(args.manifest, "manifest")
    sig = _read_file(args.signature, "signature", signature.MAX_SIGNATURE_SIZE)
    wanted = [f.strip().upper() for f in args.fingerprints.split(",") if f.strip()]
    if args.public_key_file:
        keys = [_read_file(args.public_key_file, "public key file")]
    else:
        if not wanted:
            raise PalletError("standalone-verify: no key fingerprint given")
        r = subprocess.run(["gpg", "--batch", "--no-tty", "--export", *wanted], capture_output=True)
        if r.returncode != 0 or not r.stdout:
            raise PalletError(f"standalone-verify: no key {', '.join(wanted)} in your keyring")
        keys = [r.stdout]
    content, fpr = signature.verify(sig, keys)
    if wanted and fpr.upper() not in wanted:
        raise signature.SignatureError(f"signature by key {fpr}, not one of {', '.join(wanted)}")
    claim = signature.parse_payload(content)
    algo = _digest.algorithm(_digest.validate(claim.manifest_digest, "docker-manifest-digest"))
    got = digest_of(raw) if algo == "sha256" else _digest.of_bytes(raw, algo)
    if got != claim.manifest_digest:
        raise signature.SignatureError(f"the signature is for manifest {claim.manifest_digest}, not {got}")
    if str(reference.parse(claim.docker_reference)) != str(reference.parse(args.reference)):
        raise signature.SignatureError(f"the signature is for {claim.docker_reference}, not {args.reference}")
    # skopeo 1.9.3's line, word for word: scripts take the digest as its 4th field
    print(f"Signature verified, digest {claim.manifest_digest}")
    return 0


def _parse_ref(text: str, args=None, write: bool = False):
    """A reference; a ``local:`` one names an image in the store the global flags name, opened
    once per command (both sides of ``copy local:A local:B`` share it: a second open of the
    same store in one process would wait on its own lock)."""
    if text.startswith("local:"):
        from ..images.refs import parse_reference

        store = getattr(args, "_local_store", None)
        if store is None or (write and store.absent):
            from .store import open_store

            store = args._local_store = open_store(args, create=write)
        return parse_reference(text, store)
    from ..transports import parse_reference

    return parse_reference(text)


# -- inspect -------------------------------------------------------------------------------

def cmd_inspect(args) -> int:
    from ..errors import UsageError
    from ..transports import has_transport
    from ..transports import inspect as _inspect

    if getattr(args, "latest", False):  # podman's -l: the container created last
        if args.image:
            raise UsageError("--latest and containers cannot be used together")
        from .containers import latest_container
        from .objects import inspect_local

        return inspect_local(args, [latest_container(args)], "container")
    if not args.image:
        raise UsageError("the following arguments are required: IMAGE (or --latest)")
    if args.type or not all(has_transport(t) or t.startswith("local:") for t in args.image):
        if args.raw or args.config or args.no_tags:
            raise UsageError("--raw, --config and --no-tags are for an image given with its transport "
                             "(docker://, oci:...), not for local objects")
        from .objects import inspect_local

        return inspect_local(args, args.image, args.type or "all")
    if len(args.image) != 1:
        raise UsageError("exactly one argument expected")
    ref = _parse_ref(args.image[0], args)
    ctx = common.context(args)
    if args.format and (args.raw or args.config):
        raise UsageError("--format cannot be used with --raw or --config")
    if args.raw and not args.config:
        raw, _ = _inspect.raw_manifest(ref, ctx)
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return 0
    if args.config:
        raw = _inspect.raw_config(ref, ctx)
        if args.raw:
            sys.stdout.buffer.write(raw)
        else:
            from .._std import json

            sys.stdout.write(json.dumps(json.loads(raw), indent=4) + "\n")
        sys.stdout.flush()
        return 0
    info = _inspect.inspect(ref, ctx, tags=not args.no_tags)
    if args.format:
        from ._template import Struct, Template, unescape

        text = Template(unescape(args.format), "inspect").execute(Struct("main.inspectOutput", info))
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        common.print_json(info)
    return 0


# -- copy ----------------------------------------------------------------------------------

def copy_options(args):
    from ..oci import mediatype as mt
    from ..transports.copy import CopyOptions

    multi_arch = getattr(args, "multi_arch", None)
    multi = multi_arch or ("all" if getattr(args, "all", False) else "system")
    if getattr(args, "all", False) and multi_arch not in (None, "all"):
        from ..errors import UsageError

        raise UsageError("--all and --multi-arch cannot be used together")
    return CopyOptions(
        format=mt.FORMAT_NAMES[args.format] if args.format else None,
        multi_arch=multi,
        compress_format=getattr(args, "dest_compress_format", None) or
        ("gzip" if getattr(args, "dest_compress", False) else None),
        compress_level=getattr(args, "dest_compress_level", None),
        decompress=getattr(args, "dest_decompress", False),
        preserve_digests=args.preserve_digests,
        parallel=getattr(args, "image_parallel_copies", 6),
        progress=common.progress(args),
        additional_tags=getattr(args, "additional_tag", []),
        policy=getattr(args, "policy", None), insecure_policy=getattr(args, "insecure_policy", False),
        remove_signatures=getattr(args, "remove_signatures", False), sign_by=getattr(args, "sign_by", None),
        sign_passphrase_file=getattr(args, "sign_passphrase_file", None),
        sign_identity=getattr(args, "sign_identity", None),
    )


def cmd_copy(args) -> int:
    from ..transports.copy import copy_image

    # the destination first: a local: one opens the store for writing, and the source shares it
    dest = _parse_ref(args.destination, args, write=True)
    src = _parse_ref(args.source, args)
    options = copy_options(args)
    if args.dest_compress_format and args.dest_decompress:
        from ..errors import UsageError

        raise UsageError("--dest-compress-format and --dest-decompress cannot be used together")
    src_ctx = common.context(args, "src")
    dest_ctx = common.context(args, "dest")
    src_ctx.oci_shared_blob_dir = args.src_shared_blob_dir
    dest_ctx.oci_shared_blob_dir = args.dest_shared_blob_dir
    dest_ctx.docker_archive_additional_tags = list(args.additional_tag)
    result = copy_image(src, dest, src_ctx, dest_ctx, options)
    if args.digestfile:
        from .._fs import write_output

        write_output(args.digestfile, result.digest.encode(), what="--digestfile")
    return 0


# -- sync ----------------------------------------------------------------------------------

def cmd_sync(args) -> int:
    from ..transports.sync import sync

    options = copy_options(args)
    src_ctx = common.context(args, "src")
    dest_ctx = common.context(args, "dest")
    out = (lambda line: print(line, file=sys.stderr, flush=True)) if not args.quiet else None
    failures = sync(args.src, args.source, args.dest, args.destination, src_ctx, dest_ctx, options,
                    scoped=args.scoped, keep_going=args.keep_going, dry_run=args.dry_run, log=out)
    return 1 if failures else 0


# -- delete, manifest-digest ---------------------------------------------------------------

def cmd_delete(args) -> int:
    ref = _parse_ref(args.image, args, write=True)
    ref.delete(common.context(args))
    return 0


def cmd_manifest_digest(args) -> int:
    from ..oci.manifest import digest_of

    try:
        with open(args.manifest, "rb") as f:
            raw = f.read()
    except OSError as e:  # a missing file is not a missing image: exit 1, as skopeo
        from ..errors import PalletError

        raise PalletError(f"reading manifest {args.manifest}: {e.strerror}") from None
    print(digest_of(raw))
    return 0
