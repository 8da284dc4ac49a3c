"""Store operations that involve transports: pull, push, save, load (podman's verbs)."""

from __future__ import annotations

import os

from ..errors import InvalidReference, NotFound, PalletError, UsageError
from ..transports import has_transport as _has_transport
from ..transports import parse_reference
from ..transports.copy import CopyOptions, copy_image
from .names import qualify
from .transport import LocalReference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..transports.base import SystemContext
    from .store import Store


def _local_name_for(src_ref) -> str | None:
    """The name a pulled image gets, as podman names images from non-registry transports."""
    named = src_ref.docker_reference()
    if named is not None:
        return str(named.tagged_or_latest()) if not named.digest else str(named)
    if src_ref.transport in ("oci", "oci-archive"):
        ref = getattr(src_ref, "image", None)
        if isinstance(ref, str) and ref:
            try:
                return str(qualify(ref))
            except InvalidReference:
                pass
    if src_ref.transport == "dir":
        base = os.path.basename(os.path.normpath(getattr(src_ref, "path", "") or ""))
        try:
            return str(qualify(base.lower())) if base else None
        except InvalidReference:
            return None
    return None


def pull(store: "Store", text: str, ctx: "SystemContext", options: CopyOptions | None = None,
         all_tags: bool = False) -> list[dict]:
    """Pull ``text`` (a name, resolved through registries.conf, or transport:details) into the store."""
    options = options or CopyOptions()
    options.multi_arch = "system"
    ctx.storage = store.options
    if _has_transport(text):
        src = parse_reference(text)
        if all_tags:
            if src.transport != "docker":
                raise UsageError("--all-tags works with registries only")
            return _pull_all_tags(store, src.docker_reference(), ctx, options)
        name = _local_name_for(src)
        return [_pull_one(store, src, name, ctx, options)]
    from ..transports import registries_conf

    conf = registries_conf.load(ctx)
    resolution = conf.resolve_short_name(text)
    if all_tags:
        named = resolution.candidates[0]
        if named.tag and named.tag != "latest" or named.digest or ":" in text.rsplit("/", 1)[-1]:
            raise UsageError("--all-tags takes a repository name without a tag or digest")
        return _pull_all_tags(store, named.repo_only(), ctx, options)
    candidates, chosen = registries_conf.choose_candidates(resolution)
    errors = []
    for named in candidates:
        src = parse_reference(f"docker://{named}")
        try:
            done = [_pull_one(store, src, str(named), ctx, options)]
            if chosen:  # the prompt's answer becomes an alias, as containers/image records it
                short = text.split("@", 1)[0]
                if ":" in short.rsplit("/", 1)[-1]:
                    short = short.rsplit(":", 1)[0]
                registries_conf.record_alias(short, named.name)
            return done
        except PalletError as e:
            errors.append(f"{named}: {e}")
            if not isinstance(e, NotFound) and len(candidates) == 1:
                raise
    if len(errors) == 1:
        raise NotFound(errors[0]) if all("unknown" in e or "not found" in e for e in errors) else PalletError(errors[0])
    raise PalletError(f"pulling {text}: every candidate failed: " + "; ".join(errors))


def _pull_all_tags(store, named, ctx, options) -> list[dict]:
    from ..transports import docker

    tags = docker.list_tags(docker.parse("//" + named.name), ctx)
    if not tags:
        raise NotFound(f"{named.name}: the repository has no tags")
    return [_pull_one(store, parse_reference(f"docker://{named.with_tag(t)}"), str(named.with_tag(t)), ctx, options)
            for t in tags]


def _pull_one(store, src, name: str | None, ctx, options, keep_digest: bool = False) -> dict:
    """Copy ``src`` into the store under ``name`` (``REPO@DIGEST`` by digest; None: no name).
    ``keep_digest``: an image already stored keeps the manifest it pushes with (loads)."""
    named = qualify(name) if name else None
    ctx.storage = store.options
    # by digest from a registry: it checked the digest (of the manifest, or of the index the
    # image was chosen from), and the image is named REPO@DIGEST, as podman names it
    dest = LocalReference(named, None, keep_digest=keep_digest, digest_verified=src.transport == "docker")
    return copy_image(src, dest, ctx, ctx, options).committed


def push(store: "Store", image: str, destination: str | None, src_ctx: "SystemContext",
         dest_ctx: "SystemContext", options: CopyOptions | None = None):
    """Push a stored image to ``destination`` (default: the registry its name points at)."""
    options = options or CopyOptions()
    rec = store.image(image)
    src_ctx.storage = store.options
    src = LocalReference(None, rec["id"])
    if destination is None:
        named = qualify(image) if not image.startswith("sha256:") else None
        if named is None or named.domain == "localhost":
            raise UsageError(f"{image}: no registry in the name: give a destination such as docker://HOST/REPO:TAG")
        destination = f"docker://{named}"
    elif not _has_transport(destination):
        destination = "docker://" + destination
    dest = parse_reference(destination)
    return copy_image(src, dest, src_ctx, dest_ctx, options)


def save(store: "Store", images: list[str], output: str, fmt: str, ctx: "SystemContext",
         options: CopyOptions | None = None) -> None:
    """Write images to an archive (docker-archive, oci-archive) or a directory (oci-dir, docker-dir)."""
    options = options or CopyOptions()
    ctx.storage = store.options
    if not images:
        raise UsageError("save needs at least one image")
    if fmt not in ("docker-archive", "oci-archive", "oci-dir", "docker-dir"):
        raise UsageError(f"unknown save format {fmt!r}: want docker-archive, oci-archive, oci-dir or docker-dir")
    if len(images) > 1 and fmt in ("docker-dir",):
        raise UsageError("docker-dir holds one image")
    if fmt == "docker-dir":
        options.format = "application/vnd.docker.distribution.manifest.v2+json"
    else:  # archives and layouts cannot hold signatures: saved without them, as podman does
        options.remove_signatures = True
    recs = [(text, store.image(text)) for text in images]
    if fmt == "docker-dir":
        text, rec = recs[0]
        copy_image(LocalReference(None, rec["id"]), parse_reference(f"dir:{output}"), ctx, ctx, options)
        return
    if fmt == "docker-archive":
        from ..transports.docker_archive import MultiImageArchive

        options.format = "application/vnd.docker.distribution.manifest.v2+json"
        with MultiImageArchive(output) as archive:
            for text, rec in recs:
                copy_image(LocalReference(None, rec["id"]), archive.reference(_archive_tag(text, rec)), ctx, ctx,
                           options)
            archive.commit()
        return
    # OCI: one layout holding every image, each under its name (or ID) as the ref name
    import shutil
    import tempfile

    if fmt == "oci-dir":
        for text, rec in recs:
            copy_image(LocalReference(None, rec["id"]), parse_reference(f"oci:{output}:{_archive_tag(text, rec) or rec['id']}"),
                       ctx, ctx, options)
        return
    from .. import _fs
    from ..transports import _files

    target, stream = _fs.output_target("/dev/stdout" if output == "-" else output)
    tmp = tempfile.mkdtemp(prefix=".pallet-save-", dir=_files.big_temp_dir() if stream else os.path.dirname(target))
    try:
        layout = os.path.join(tmp, "layout")
        for text, rec in recs:
            copy_image(LocalReference(None, rec["id"]),
                       parse_reference(f"oci:{layout}:{_archive_tag(text, rec) or rec['id']}"), ctx, ctx, options)
        _tar_dir(layout, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _archive_tag(text: str, rec: dict) -> str | None:
    """The name an image is saved under: the one the user typed if it names it, else its first name."""
    tagged = [n for n in rec["names"] if "@" not in n]  # an archive's tags cannot hold a digest
    try:
        q = str(qualify(text))
        if q in tagged:
            return q
    except InvalidReference:
        pass
    return tagged[0] if tagged else None


def _tar_dir(directory: str, output: str) -> None:
    """Tar ``directory``'s contents to ``output`` (a file the user named: see ``_fs.output_file``)."""
    import tarfile

    from .. import _fs

    with _fs.output_file("/dev/stdout" if output == "-" else output) as f:
        with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for root, dirs, files in os.walk(directory):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    full = os.path.join(root, name)
                    tf.add(full, arcname=os.path.relpath(full, directory), recursive=False)


def load(store: "Store", archive: str, ctx: "SystemContext", options: CopyOptions | None = None) -> list[str]:
    """Load every image of a docker-archive or oci-archive into the store; returns the names loaded.

    ``archive`` may be ``-`` or a pipe: it is spooled into the store's staging area first (an
    archive is read more than once), and the spool goes when the load ends, however it ends.
    """
    import stat

    if archive in ("-", "/dev/stdin") or (os.path.exists(archive) and not stat.S_ISREG(os.stat(archive).st_mode)):
        import sys

        from ..transports import _files

        with store.staging() as spool:  # locked: a SIGKILLed load's spool is removed by the next run
            path = os.path.join(spool, "archive.tar")
            what = "standard input" if archive in ("-", "/dev/stdin") else archive
            with open(sys.stdin.buffer.fileno() if archive == "-" else archive, "rb", closefd=archive != "-") as src, \
                    open(path, "wb") as f:
                from ..layer import stream as _stream

                _files.spool_copy(_stream.open_decompressed(src), f, _files.spool_limit(ctx), what)
            return load(store, path, ctx, options)
    options = options or CopyOptions()
    ctx.storage = store.options
    kind = _archive_kind(archive)
    loaded = []
    if kind == "docker-archive":
        for i, tags in enumerate(_docker_archive_tags(archive)):
            ref = parse_reference(f"docker-archive:{archive}:@{i}")
            img = _pull_one(store, ref, tags[0] if tags else None, ctx, options, keep_digest=True)
            if len(tags) > 1:
                store.tag(img["id"], tags[1:])
            if tags:
                loaded.extend(str(qualify(t)) for t in tags)
            else:
                loaded.append("sha256:" + img["id"])
        return loaded
    # oci-archive: every ref name in the layout
    from .. import _json as json
    import tarfile

    names = []
    with tarfile.open(archive) as tf:
        try:
            member = tf.getmember("index.json")
        except KeyError:
            raise NotFound(f"{archive}: not an oci-archive (no index.json)") from None
        f = tf.extractfile(member)
        idx = json.loads(f.read()) if f else {}
    for m in idx.get("manifests", []):
        ref_name = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        names.append(ref_name)
    for ref_name in names:
        src = parse_reference(f"oci-archive:{archive}" + (f":{ref_name}" if ref_name else ""))
        img = _pull_one(store, src, ref_name if ref_name and not ref_name.startswith("sha256") else None, ctx, options,
                        keep_digest=True)
        loaded.append(str(qualify(ref_name)) if ref_name and img["names"] else "sha256:" + img["id"])
    return loaded


def _docker_archive_tags(path: str) -> list[list[str]]:
    """RepoTags of every image in a docker-archive's manifest.json."""
    from .. import _json as json
    import tarfile

    with tarfile.open(path) as tf:
        f = tf.extractfile("manifest.json")
        doc = json.loads(f.read()) if f else []
    if not isinstance(doc, list):
        raise UsageError(f"{path}: manifest.json is not a list")
    return [list(item.get("RepoTags") or []) if isinstance(item, dict) else [] for item in doc]


def _archive_kind(path: str) -> str:
    import tarfile

    try:
        with tarfile.open(path) as tf:
            names = set(tf.getnames()[:2000])
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as e:
        raise UsageError(f"{path}: not a docker-archive or oci-archive: {e}") from None
    if "manifest.json" in names:
        return "docker-archive"
    if "index.json" in names or "oci-layout" in names:
        return "oci-archive"
    raise UsageError(f"{path}: not a docker-archive or oci-archive (no manifest.json or index.json)")
