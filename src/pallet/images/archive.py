"""``save`` (images to a docker-archive, oci-archive, OCI layout or dir) and ``load``
(every image of an archive into the store), as podman does."""

from __future__ import annotations

import os

from ..errors import InvalidDocument, InvalidReference, NetworkError, NotFound, UsageError
from ..storage.names import qualify
from ..storage.transport import LocalReference
from ..transports.copy import CopyOptions, copy_image
from .pull import pull_one
from .refs import parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store
    from ..transports.base import SystemContext


def save(store: "Store", images: list[str], output: str, fmt: str, ctx: "SystemContext",
         options: CopyOptions | None = None) -> None:
    """Write images to an archive (docker-archive, oci-archive) or a directory (oci-dir, docker-dir)."""
    options = options or CopyOptions()
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
        copy_image(LocalReference(store, None, rec["id"]), parse_reference(f"dir:{output}"), ctx, ctx, options)
        return
    if fmt == "docker-archive":
        from ..transports.docker_archive import MultiImageArchive

        options.format = "application/vnd.docker.distribution.manifest.v2+json"
        with MultiImageArchive(output) as archive:
            for text, rec in recs:
                copy_image(LocalReference(store, None, rec["id"]), archive.reference(_archive_tag(text, rec)), ctx, ctx,
                           options)
            archive.commit()
        return
    # OCI: one layout holding every image, each under its name (or ID) as the ref name
    import shutil
    import tempfile

    uncompressed = options.decompress
    options.decompress = False

    def oci_options(rec: dict) -> CopyOptions:
        # podman's --uncompressed: an image stored with a Docker manifest is converted, its layers
        # written as plain tar; one stored as OCI keeps its layers as they are (what podman does)
        from ..oci import mediatype as mt

        options.decompress = uncompressed and rec["manifests"].get(rec["digest"]) != mt.OCI_MANIFEST
        return options

    if fmt == "oci-dir":
        for text, rec in recs:
            oci_options(rec)
            copy_image(LocalReference(store, None, rec["id"]), parse_reference(f"oci:{output}:{_archive_tag(text, rec) or rec['id']}"),
                       ctx, ctx, options)
        return
    from .. import _fs
    from ..transports import _files

    target, stream = _fs.output_target("/dev/stdout" if output == "-" else output)
    tmp = tempfile.mkdtemp(prefix=".pallet-save-", dir=_files.big_temp_dir() if stream else os.path.dirname(target))
    try:
        layout = os.path.join(tmp, "layout")
        for text, rec in recs:
            oci_options(rec)
            copy_image(LocalReference(store, None, rec["id"]),
                       parse_reference(f"oci:{layout}:{_archive_tag(text, rec) or rec['id']}"), ctx, ctx, options)
        _tar_dir(layout, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _archive_tag(text: str, rec: dict) -> str | None:
    """The name an image is saved under: the one the user typed if it names it, else its first
    name; none when the user named it by ID (podman's: it loads back as <none>)."""
    from ..storage.names import is_id_like

    tagged = [n for n in rec["names"] if "@" not in n]  # an archive's tags cannot hold a digest
    try:
        q = str(qualify(text))
        if q in tagged:
            return q
    except InvalidReference:
        pass
    if is_id_like(text) and rec["id"].startswith(text.removeprefix("sha256:")):
        return None
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

    url = archive.startswith(("http://", "https://"))
    if url or archive in ("-", "/dev/stdin") or (os.path.exists(archive) and
                                                 not stat.S_ISREG(os.stat(archive).st_mode)):
        with store.staging() as spool:  # locked: a SIGKILLed load's spool is removed by the next run
            path = os.path.join(spool, "archive.tar")
            if url:  # podman's: an archive at a URL is downloaded first
                import urllib.error
                import urllib.request

                try:
                    with http_only_opener(archive).open(archive, timeout=60) as src:
                        _spool(src, path, archive, ctx)
                except urllib.error.HTTPError as e:
                    raise NotFound(f"{archive}: {e.code} {e.reason}") from None
                except (urllib.error.URLError, OSError) as e:
                    raise NetworkError(f"{archive}: {getattr(e, 'reason', None) or e.strerror or e}") from None
            else:
                import sys

                what = "standard input" if archive in ("-", "/dev/stdin") else archive
                with open(sys.stdin.buffer.fileno() if archive == "-" else archive, "rb",
                          closefd=archive != "-") as src:
                    _spool(src, path, what, ctx)
            return load(store, path, ctx, options)
    options = options or CopyOptions()
    kind = _archive_kind(archive)
    loaded = []
    if kind == "docker-archive":
        for i, tags in enumerate(_docker_archive_tags(archive)):
            ref = parse_reference(f"docker-archive:{archive}:@{i}")
            img = pull_one(store, ref, tags[0] if tags else None, ctx, options, keep_digest=True)
            if len(tags) > 1:
                store.tag(img["id"], tags[1:])
            if tags:
                loaded.extend(str(qualify(t)) for t in tags)
            else:
                loaded.append("sha256:" + img["id"])
        return loaded
    # oci-archive: every ref name in the layout
    names = []
    idx = _member_json(archive, "index.json")
    if not isinstance(idx, dict) or not isinstance(idx.get("manifests", []), list):
        raise InvalidDocument(f"{archive}: index.json is not an image index")
    for m in idx.get("manifests", []):
        ann = m.get("annotations") if isinstance(m, dict) else None
        ref_name = ann.get("org.opencontainers.image.ref.name") if isinstance(ann, dict) else None
        names.append(ref_name if isinstance(ref_name, str) else None)
    for ref_name in names:
        src = parse_reference(f"oci-archive:{archive}" + (f":{ref_name}" if ref_name else ""))
        img = pull_one(store, src, ref_name if ref_name and not ref_name.startswith("sha256") else None, ctx, options,
                        keep_digest=True)
        loaded.append(str(qualify(ref_name)) if ref_name and img["names"] else "sha256:" + img["id"])
    return loaded


def http_only_opener(url: str):
    """urllib's opener for a URL the user gave (``load -i URL``, build's ``ADD URL`` and context
    URL) whose redirects go to http and https only, as Go's client (podman's, buildah's) follows
    them: urllib's own would follow one to ftp:// (a request to any host and port the
    redirecting server names, in another protocol)."""
    import urllib.parse
    import urllib.request

    class HTTPOnly(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
                raise NetworkError(f"{url}: redirected to {newurl}: only http and https redirects are followed")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HTTPOnly)


def _spool(src, path: str, what: str, ctx) -> None:
    """Copy an archive stream (maybe compressed) into the staging file ``path``."""
    from ..layer import stream as _stream
    from ..transports import _files

    with open(path, "wb") as f:
        try:
            _files.spool_copy(_stream.open_decompressed(src), f, _files.spool_limit(ctx), what)
        except InvalidDocument as e:  # podman's words, which scripts match
            raise InvalidDocument(f"payload does not match any of the supported image formats: {e}") from None


def _clean(name: str) -> str:
    """A member name as the archive transports read it: ``./index.json`` is ``index.json``
    (``tar -C DIR -cf x.tar .`` writes such names; podman loads them)."""
    import posixpath

    return posixpath.normpath("/" + name).lstrip("/")


def _member(tf, name: str):
    """The last member called ``name`` (see :func:`_clean`); KeyError when there is none."""
    for m in reversed(tf.getmembers()):
        if _clean(m.name) == name:
            return m
    raise KeyError(name)


def _member_json(path: str, name: str):
    """The JSON document ``name`` of the archive ``path`` (at most the transports'
    ``MAX_DOCUMENT``), one-line errors naming it."""
    from .._std import json
    import tarfile

    from ..transports import _files

    MAX_DOCUMENT = _files.MAX_DOCUMENT
    with tarfile.open(path) as tf:
        try:
            f = tf.extractfile(_member(tf, name))
        except KeyError:
            raise NotFound(f"{path}: no {name} in the archive") from None
        data = f.read(MAX_DOCUMENT + 1) if f else b""
    if len(data) > MAX_DOCUMENT:
        raise InvalidDocument(f"{path}: {name} is larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InvalidDocument(f"{path}: {name} is not valid JSON: {e}") from None


def _docker_archive_tags(path: str) -> list[list[str]]:
    """RepoTags of every image in a docker-archive's manifest.json."""
    doc = _member_json(path, "manifest.json")
    if not isinstance(doc, list):
        raise UsageError(f"{path}: manifest.json is not a list")
    out = []
    for item in doc:
        tags = item.get("RepoTags") if isinstance(item, dict) else None
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise InvalidDocument(f"{path}: manifest.json: RepoTags must be a list of strings")
        out.append(list(tags or []))
    return out


def _archive_kind(path: str) -> str:
    import tarfile

    try:
        with tarfile.open(path) as tf:
            names = {_clean(n) for n in tf.getnames()[:2000]}
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as e:
        raise UsageError(f"payload does not match any of the supported image formats: {path}: not a "
                         f"docker-archive or oci-archive ({'not a tar archive' if isinstance(e, tarfile.ReadError) else e})") from None
    if "manifest.json" in names:
        return "docker-archive"
    if "index.json" in names or "oci-layout" in names:
        return "oci-archive"
    raise UsageError(f"payload does not match any of the supported image formats: {path}: not a docker-archive "
                     "or oci-archive (no manifest.json or index.json)")
