"""The ``docker-archive:PATH[:REF]`` transport: ``docker save`` / ``docker load`` tar archives.

An archive holds ``manifest.json`` (a list of ``{"Config", "RepoTags", "Layers"}`` items), each
image's config (``HEX.json``) and its layers as tar files (``HEX.tar`` or ``ID/layer.tar``),
plus the legacy ``repositories`` file and per-layer ``ID/{VERSION,json,layer.tar}``.

Reading: REF is ``name:tag`` (matched against RepoTags) or ``@N`` (the N-th item); without REF
the archive must hold one image. Layers are served uncompressed (compressed ones are
decompressed on read), so their digests are the config's diffIDs; digests and sizes are
computed by streaming each member once, checked against the diffIDs, and cached. A
non-seekable or compressed input (``/dev/stdin``, a pipe, ``.tar.gz``) is spooled to a temp file.

Writing: Docker schema 2 only, one image, layers stored uncompressed
(``desired_compression = "none"``; a compressed layer handed over anyway is decompressed here).
Blobs are staged in a temp directory; ``commit`` writes the tar to a temp file beside PATH and
renames it (or streams it to ``/dev/stdout`` / a pipe). As skopeo, an existing non-empty
archive is not modified.
"""

from __future__ import annotations

import os
import threading

from ..errors import BlobNotFound, DigestMismatch, InvalidDocument, InvalidReference, NotFound, Unsupported
from ..oci import mediatype as mt
from .. import _fs
from . import _files
from .base import ImageDestination, ImageReference, ImageSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor
    from ..oci.reference import Named
    from .base import SystemContext

#: media type of an uncompressed Docker layer (what this transport stores and serves)
PLAIN_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"


def parse(details: str) -> "DockerArchiveReference":
    if not details:
        raise InvalidReference("invalid image name 'docker-archive:': want docker-archive:PATH[:NAME:TAG|:@N]")
    path, sep, rest = details.partition(":")
    if not path:
        raise InvalidReference(f"invalid image name docker-archive:{details}: missing path")
    named = None
    index = None
    if sep:
        if rest.startswith("@"):
            if not rest[1:].isdigit():
                raise InvalidReference(f"invalid image name docker-archive:{details}: invalid source index {rest!r} "
                                       "(want @N, N a number)")
            index = int(rest[1:])
        else:
            named = _tag_reference(rest, f"docker-archive:{details}")
    return DockerArchiveReference(path, named, index)


def _tag_reference(text: str, what: str) -> "Named":
    from ..oci import reference

    try:
        named = reference.parse(text)
    except InvalidReference as e:
        raise InvalidReference(f"invalid image name {what}: {e}") from None
    if named.digest:
        raise InvalidReference(f"invalid image name {what}: docker-archive does not support digest references")
    return named.tagged_or_latest()


def list_tags(ref: "DockerArchiveReference", ctx: "SystemContext | None" = None) -> list[str]:
    """The tags of every image in the archive, as skopeo's ``list-tags docker-archive:`` lists
    them: each RepoTags entry normalized (``docker.io/library/…``), ``@N`` for an untagged image."""
    from ..oci import reference

    archive = _Archive(ref.path, str(ref), _files.spool_limit(ctx))
    try:
        out = []
        for i, item in enumerate(archive.items):
            tags = []
            for t in item.get("RepoTags") or []:
                try:
                    named = reference.parse(t)
                except InvalidReference as e:
                    raise InvalidDocument(f"{ref}: {MANIFEST_FILE}[{i}].RepoTags: {t!r}: {e}") from None
                if named.tag and not named.digest:
                    tags.append(str(named))
            out.extend(tags or [f"@{i}"])
        return out
    finally:
        archive.close()


class DockerArchiveReference(ImageReference):
    transport = "docker-archive"

    def __init__(self, path: str, named: "Named | None" = None, source_index: int | None = None):
        self.path = path
        self.named = named
        self.source_index = source_index

    def string_within_transport(self) -> str:
        if self.source_index is not None:
            return f"{self.path}:@{self.source_index}"
        return f"{self.path}:{self.named}" if self.named else self.path

    def docker_reference(self):
        return self.named

    def new_source(self, ctx: "SystemContext") -> "DockerArchiveSource":
        return DockerArchiveSource(self, ctx)

    def new_destination(self, ctx: "SystemContext") -> "DockerArchiveDestination":
        return DockerArchiveDestination(self, ctx)


# --- reading -------------------------------------------------------------------------------

#: (st_dev, st_ino, st_size, st_mtime_ns, member offset) -> (digest, uncompressed size, compression)
_LAYER_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


class _Archive:
    """An opened archive: a seekable uncompressed tar file (maybe a spooled copy) and its member table."""

    def __init__(self, path: str, what: str, spool_limit: int = 0):
        from ..layer import stream as _stream
        from . import _tar

        self.what = what
        self.spooled = None
        self._spool_dir = None
        self._spool_limit = spool_limit
        try:
            f = open(path, "rb")
        except OSError as e:
            raise _files.os_error(e, f"reading {what}") from None
        try:
            with f, _files.translate_errors(f"reading {what}"):
                import stat

                st = os.fstat(f.fileno())
                if stat.S_ISDIR(st.st_mode):
                    raise _files.LocalFileError(f"{what}: {path} is a directory, not an archive")
                algo = None
                if stat.S_ISREG(st.st_mode):
                    algo = _stream.detect(f.read(8))
                    f.seek(0)
                if stat.S_ISREG(st.st_mode) and algo is None:
                    self.path = path
                else:
                    self.path = self._spool(f, _stream)
            self.members = _tar.scan(self.path, what)
            self.items = self._read_manifest()
        except BaseException:
            self.close()
            raise
        st = os.stat(self.path)
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _spool(self, f, _stream) -> str:
        """Copy a stream (maybe compressed) to an uncompressed file in this process's spool
        directory (removed on close, or by the next run after a SIGKILL); its path. The copy
        stops at the spool limit, and at once when the stream does not start as a tar."""
        self._spool_dir = _files.SpoolDir()
        tmp = os.path.join(self._spool_dir.path, "archive.tar")
        self.spooled = tmp
        with open(tmp, "wb") as out:
            src = _stream.open_decompressed(f)
            _files.spool_copy(src, out, self._spool_limit, self.what)
        return tmp

    def _read_manifest(self) -> list:
        from .._std import json

        from . import _tar

        if MANIFEST_FILE not in self.members:
            legacy = " (an old archive with only a 'repositories' file is not supported)" \
                if REPOSITORIES_FILE in self.members else ""
            raise InvalidDocument(f"{self.what}: not a docker-archive: {MANIFEST_FILE} missing{legacy}")
        m = _tar.resolve(self.members, MANIFEST_FILE, self.what)
        raw = self.read(m, MANIFEST_FILE)
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise InvalidDocument(f"{self.what}: {MANIFEST_FILE}: not valid JSON: {e}") from None
        if not isinstance(doc, list):
            raise InvalidDocument(f"{self.what}: {MANIFEST_FILE}: expected a list of images, got {type(doc).__name__}")
        for i, item in enumerate(doc):
            field = f"{MANIFEST_FILE}[{i}]"
            if not isinstance(item, dict):
                raise InvalidDocument(f"{self.what}: {field}: expected an object")
            if not isinstance(item.get("Config"), str) or not item["Config"]:
                raise InvalidDocument(f"{self.what}: {field}.Config: missing or not a string")
            layers = item.get("Layers")
            if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
                raise InvalidDocument(f"{self.what}: {field}.Layers: missing or not a list of strings")
            tags = item.get("RepoTags")
            if tags is not None and (not isinstance(tags, list) or not all(isinstance(x, str) for x in tags)):
                raise InvalidDocument(f"{self.what}: {field}.RepoTags: not a list of strings")
        return doc

    def read(self, member, name: str, limit: int = _files.MAX_DOCUMENT) -> bytes:
        from ._blobs import Section

        if member.size > limit:
            raise InvalidDocument(f"{self.what}: {name} is {member.size} bytes, too large for a metadata file")
        with _files.translate_errors(f"reading {self.what}"), Section(self.path, member.offset, member.size) as s:
            return s.read()

    def open(self, member):
        from ._blobs import Section

        with _files.translate_errors(f"reading {self.what}"):
            return Section(self.path, member.offset, member.size)

    def choose(self, ref: DockerArchiveReference) -> tuple[int, dict]:
        from ..oci import reference

        items = self.items
        if ref.source_index is not None:
            if ref.source_index >= len(items):
                raise NotFound(f"{self.what}: invalid source index @{ref.source_index}, the archive holds only "
                               f"{len(items)} image{'s' if len(items) != 1 else ''}")
            return ref.source_index, items[ref.source_index]
        if ref.named is not None:
            want = str(ref.named)
            for i, item in enumerate(items):
                for tag in item.get("RepoTags") or []:
                    try:
                        if str(reference.parse(tag).tagged_or_latest()) == want:
                            return i, item
                    except InvalidReference:
                        raise InvalidDocument(f"{self.what}: {MANIFEST_FILE}[{i}].RepoTags: invalid tag {tag!r}") from None
            raise NotFound(f"{self.what}: no image tagged {ref.named.familiar()} in the archive")
        if len(items) == 1:
            return 0, items[0]
        if not items:
            raise NotFound(f"{self.what}: the archive holds no image")
        tags = [t for item in items for t in (item.get("RepoTags") or [])]
        raise InvalidReference(f"{self.what}: the archive holds {len(items)} images; choose one with "
                               f"docker-archive:PATH:NAME:TAG or docker-archive:PATH:@N"
                               f"{' (tags: ' + ', '.join(tags) + ')' if tags else ''}")

    def layer_info(self, member) -> tuple[str, int, str | None]:
        """(digest, size, compression) of a layer member as served (uncompressed); computed once, cached."""
        from ..layer import stream as _stream

        key = self.identity + (member.offset,)
        with _CACHE_LOCK:
            hit = _LAYER_CACHE.get(key)
        if hit is not None:
            return hit
        with self.open(member) as sec:
            with _files.translate_errors(f"reading {self.what}"):
                try:
                    r = _stream.diff_id_of(sec)
                except Unsupported as e:
                    raise Unsupported(f"{self.what}: {member.name}: {e}") from None
        info = (r.digest, r.size, r.compression)
        with _CACHE_LOCK:
            if len(_LAYER_CACHE) > 4096:
                _LAYER_CACHE.clear()
            _LAYER_CACHE[key] = info
        return info

    def close(self) -> None:
        self.spooled = None
        if self._spool_dir is not None:
            self._spool_dir.close()
            self._spool_dir = None


class DockerArchiveSource(ImageSource):
    """One image of a docker-archive, as a synthesised Docker schema 2 manifest. Thread-safe."""

    def __init__(self, ref: DockerArchiveReference, ctx: "SystemContext | None" = None):
        self.reference = ref
        self.what = str(ref)
        self.archive = _Archive(ref.path, self.what, _files.spool_limit(ctx))
        try:
            self.index, self.item = self.archive.choose(ref)
        except BaseException:
            self.archive.close()
            raise
        self._lock = threading.Lock()
        self._manifest: bytes | None = None
        self._config: bytes = b""
        self._config_digest = ""
        self._layers: dict = {}  # digest -> (member, compression)

    @property
    def repo_tags(self) -> list[str]:
        return list(self.item.get("RepoTags") or [])

    def _prepare(self) -> None:
        with self._lock:
            if self._manifest is not None:
                return
            from ..oci import digest as _digest
            from ..oci.descriptor import Descriptor
            from ..oci.manifest import Manifest, load_json
            from . import _tar

            a = self.archive
            item = self.item
            field = f"{MANIFEST_FILE}[{self.index}]"
            cm = _tar.resolve(a.members, item["Config"], self.what)
            config = a.read(cm, item["Config"])
            doc = load_json(config, f"{self.what}: config {item['Config']}")
            rootfs = doc.get("rootfs")
            diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
            if not isinstance(diff_ids, list):
                raise InvalidDocument(f"{self.what}: config {item['Config']}: rootfs.diff_ids: missing or not a list")
            if len(diff_ids) != len(item["Layers"]):
                raise InvalidDocument(f"{self.what}: {field}.Layers: {len(item['Layers'])} layers, but the config "
                                      f"lists {len(diff_ids)} diff_ids")
            layers = []
            for i, (path, diff_id) in enumerate(zip(item["Layers"], diff_ids)):
                _digest.validate(diff_id, f"config.rootfs.diff_ids[{i}]")
                member = _tar.resolve(a.members, path, self.what)
                digest, size, algo = a.layer_info(member)
                if digest != diff_id:
                    raise DigestMismatch(f"{self.what}: layer {path} has digest {digest} but the config's "
                                         f"diff_ids[{i}] is {diff_id}")
                self._layers.setdefault(digest, (member, algo))
                layers.append(Descriptor(PLAIN_LAYER, digest, size))
            self._config = config
            self._config_digest = _digest.of_bytes(config)
            m = Manifest.build(mt.DOCKER_V2S2, Descriptor(mt.DOCKER_CONFIG, self._config_digest, len(config)), layers)
            self._manifest = m.raw

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        self._prepare()
        if instance_digest is not None:
            from ..oci import digest as _digest

            if instance_digest != _digest.of_bytes(self._manifest):
                raise NotFound(f"{self.what}: no manifest {instance_digest} (a docker-archive image has no manifest list)")
        return self._manifest, mt.DOCKER_V2S2

    def get_blob(self, desc: "Descriptor"):
        import io

        self._prepare()
        if desc.digest == self._config_digest:
            return io.BytesIO(self._config)
        hit = self._layers.get(desc.digest)
        if hit is None:
            raise BlobNotFound(f"{self.what}: blob {desc.digest} is not part of this image")
        member, algo = hit
        s = self.archive.open(member)
        if algo:
            from ..layer.stream import Decompress

            return Decompress(s, algo)
        return s

    def close(self) -> None:
        self.archive.close()


# --- writing -------------------------------------------------------------------------------


def _go_json(obj) -> bytes:
    """JSON as Go's json.Marshal writes a map: compact, keys sorted."""
    from .._std import json

    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def legacy_layers(layer_digests: list[str], config: bytes) -> list[tuple[str, str, bytes]]:
    """(layer ID, layer digest, v1 json) for the legacy per-layer directories, as skopeo writes them."""
    import hashlib
    from .._std import json

    out = []
    chain = ""
    last = ""
    try:
        cfg = json.loads(config)
    except ValueError:
        cfg = {}
    if not isinstance(cfg, dict):
        cfg = {}
    for i, dig in enumerate(layer_digests):
        layer_cfg: dict = {}
        if last:
            layer_cfg["parent"] = last
        if i == len(layer_digests) - 1:
            for attr in ("architecture", "config", "container", "container_config", "created", "docker_version", "os"):
                layer_cfg[attr] = cfg.get(attr)
        chain = dig if not chain else "sha256:" + hashlib.sha256(f"{chain} {dig}".encode()).hexdigest()
        layer_cfg["layer_id"] = chain
        layer_id = hashlib.sha256(_go_json(layer_cfg)).hexdigest()
        del layer_cfg["layer_id"]
        layer_cfg["id"] = layer_id
        out.append((layer_id, dig, _go_json(layer_cfg)))
        last = layer_id
    return out


class _ArchiveWriter:
    """Stages the blobs of one or more images and writes the archive at ``finish``: several
    images share one staging area, and layers or configs they share are written once."""

    def __init__(self, path: str, what: str):
        self.what = what
        self.path, self.stream = _files.output_target(path)
        parent = os.path.dirname(self.path)
        if os.path.isfile(self.path) and os.path.getsize(self.path) > 0:
            raise Unsupported(f"{self.what}: {self.path} already exists; docker-archive does not modify "
                              "existing archives (remove it first)")
        if not self.stream:
            if os.path.isdir(self.path):
                raise _files.LocalFileError(f"{self.what}: {self.path} is a directory, not an archive file")
            if not os.path.isdir(parent):
                raise _files.LocalFileError(f"{self.what}: directory {parent} does not exist")
        base = parent if not self.stream and os.access(parent, os.W_OK) else _files.big_temp_dir()
        from ._blobs import Staging

        with _files.translate_errors(f"writing {self.what}"):
            self.staging = Staging(base, self.what)
        self.aliases: dict[str, str] = {}  # digest as announced -> digest stored (decompressed here)
        self.lock = threading.Lock()
        self.images: list = []  # (manifest, tags)

    def stored(self, digest: str, what: str) -> str:
        with self.lock:
            stored = self.aliases.get(digest, digest)
        if self.staging.size(stored) is None:
            raise BlobNotFound(f"{self.what}: {what} {digest} was never written to the destination")
        return stored

    def finish(self) -> None:
        from ..oci import digest as _digest
        from ..oci.manifest import dumps
        from ._tar import TarWriter

        if not self.images:
            raise InvalidDocument(f"{self.what}: nothing to commit: no manifest was written")
        items, repositories, plan = [], {}, []
        for m, tags in self.images:
            config_digest = self.stored(m.config.digest, "config")
            layer_digests = [self.stored(x.digest, "layer") for x in m.layers]
            with _files.translate_errors(f"writing {self.what}"):
                config = _files.read_small(self.staging.path(config_digest))
            layer_paths = [_digest.hex_part(d) + ".tar" for d in layer_digests]
            config_path = _digest.hex_part(config_digest) + ".json"
            legacy = legacy_layers(layer_digests, config)
            items.append({"Config": config_path, "RepoTags": [f"{t.name}:{t.tag}" for t in tags],
                          "Layers": layer_paths})
            if legacy:
                for t in tags:
                    repositories.setdefault(t.name, {})[t.tag] = legacy[-1][0]
            plan.append((layer_digests, layer_paths, config_path, config, legacy))

        def write(out) -> None:
            tw = TarWriter(out, mode=0o444)
            done = set()
            for layer_digests, layer_paths, config_path, config, legacy in plan:
                for d, p in zip(layer_digests, layer_paths):
                    if p not in done:
                        done.add(p)
                        tw.add_file(p, self.staging.path(d))
                if config_path not in done:
                    done.add(config_path)
                    tw.add_bytes(config_path, config)
                for layer_id, d, v1 in legacy:
                    if layer_id in done:
                        continue
                    done.add(layer_id)
                    tw.add_symlink(f"{layer_id}/layer.tar", f"../{_digest.hex_part(d)}.tar")
                    tw.add_bytes(f"{layer_id}/VERSION", b"1.0")
                    tw.add_bytes(f"{layer_id}/json", v1)
            tw.add_bytes(MANIFEST_FILE, dumps(items))
            tw.add_bytes(REPOSITORIES_FILE, dumps(repositories))
            tw.close()

        with _files.translate_errors(f"writing {self.what}"):
            with _fs.output_file(self.path) as out:
                write(out)
        self.staging.discard()

    def discard(self) -> None:
        self.staging.discard()


class MultiImageArchive:
    """Several images in one docker-archive (``docker save a b``)::

        with MultiImageArchive("/tmp/out.tar") as archive:
            for src, name in ...:
                copy_image(src, archive.reference(name), ctx, ctx)
            archive.commit()

    Nothing is written unless ``commit`` is reached.
    """

    def __init__(self, path: str):
        self.writer = _ArchiveWriter(path, f"docker-archive:{path}")
        self.path = path

    def reference(self, name: str | None) -> "DockerArchiveReference":
        """A destination reference for the next image, tagged ``name`` (``NAME:TAG``) or untagged."""
        ref = DockerArchiveReference(self.path, _tag_reference(name, f"tag {name}") if name else None)
        ref.writer = self.writer
        return ref

    def commit(self) -> None:
        self.writer.finish()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.writer.discard()


class DockerArchiveDestination(ImageDestination):
    """Writes one image as a docker-archive (or one image of a :class:`MultiImageArchive`)."""

    supported_manifest_types = (mt.DOCKER_V2S2,)
    supports_index = False
    #: layers must be stored as plain tar: the copy engine decompresses them ("none")
    desired_compression = "none"
    #: blobs are staged in a temp directory, the tar is assembled at commit: any order, in parallel
    needs_ordered_blobs = False

    def __init__(self, ref: DockerArchiveReference, ctx: "SystemContext | None" = None):
        if ref.source_index is not None:
            raise InvalidReference(f"{ref}: @N selects an image to read; a destination needs "
                                   "docker-archive:PATH[:NAME:TAG]")
        self.reference = ref
        self.what = str(ref)
        shared = getattr(ref, "writer", None)
        self._owns = shared is None
        self._writer = shared or _ArchiveWriter(ref.path, self.what)
        self.tags = self._tags(ref, ctx)
        self._manifest = None

    def _tags(self, ref: DockerArchiveReference, ctx) -> list:
        tags = [ref.named] if ref.named is not None else []
        for t in (getattr(ctx, "docker_archive_additional_tags", None) or []):
            tags.append(_tag_reference(str(t), f"additional tag {t}"))
        seen, out = set(), []
        for t in tags:
            if str(t) not in seen:
                seen.add(str(t))
                out.append(t)
        return out

    def try_reusing_blob(self, desc: "Descriptor", source=None) -> "Descriptor | None":
        if not desc.digest:
            return None
        w = self._writer
        with w.lock:
            stored = w.aliases.get(desc.digest, desc.digest)
        size = w.staging.size(stored)
        if size is None:
            return None
        if stored != desc.digest:
            return desc.replace(digest=stored, size=size, media_type=PLAIN_LAYER)
        return desc.replace(size=size)

    def put_blob(self, stream, desc: "Descriptor", *, is_config: bool = False) -> "Descriptor":
        w = self._writer
        if is_config:
            digest, size = w.staging.put(stream, desc.digest, desc.size)
            return desc.replace(digest=digest, size=size)
        from ..layer import stream as _stream

        peek = _stream.Peek(stream)
        algo = _stream.detect(peek.peek(8))
        if algo in ("gzip", "zstd"):
            # the engine should have decompressed it (desired_compression = "none"); do it here anyway
            digest, size = w.staging.put(_stream.Decompress(peek, algo))
            if desc.digest:
                with w.lock:
                    w.aliases[desc.digest] = digest
            return desc.replace(digest=digest, size=size, media_type=PLAIN_LAYER)
        digest, size = w.staging.put(peek, desc.digest, desc.size)
        return desc.replace(digest=digest, size=size)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        from ..oci import manifest as _manifest

        if instance_digest is not None:
            raise Unsupported(f"{self.what}: a docker-archive holds single-platform images, not a multi-platform "
                              "index: copy one platform (without --all)")
        m = _manifest.parse(raw, media_type)
        if m.is_index:
            raise Unsupported(f"{self.what}: a docker-archive cannot store a manifest list; copy one platform")
        if isinstance(m, _manifest.Schema1Manifest):
            raise Unsupported(f"{self.what}: Docker schema 1 images must be converted (--format v2s2)")
        self._manifest = m

    def commit(self) -> None:
        if self._manifest is None:
            raise InvalidDocument(f"{self.what}: nothing to commit: no manifest was written")
        self._writer.images.append((self._manifest, self.tags))
        if self._owns:
            self._writer.finish()

    def close(self) -> None:
        if self._owns:
            self._writer.discard()
