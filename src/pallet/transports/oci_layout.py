"""The ``oci:PATH[:REF]`` transport: an OCI image layout directory (several images in one).

``REF`` is the ``org.opencontainers.image.ref.name`` annotation of an ``index.json`` entry.
A source without REF uses the only image of the layout; ``@N`` selects the N-th entry.
A destination without REF adds an untagged entry.

Writing is crash-safe: blobs are staged in a hidden directory beside ``blobs/``, and only
``commit`` moves them in and replaces ``index.json`` whole (temp + fsync + rename), under a
lock on the layout directory; closing without commit leaves the layout byte-for-byte as it was.
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import InvalidDocument, InvalidReference, NotFound, Unsupported
from ..oci import digest as _digest
from ..oci import mediatype as mt
from . import _files
from .base import ImageDestination, ImageReference, ImageSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor
    from .base import SystemContext

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'

def valid_ref_name(name: str) -> bool:
    """The image-spec's grammar for ref names (annotations.md):
    ``[A-Za-z0-9]+((-|.|_|:|@|+|--)[A-Za-z0-9]+)*`` components joined by ``/``."""
    from ..oci.reference import ALNUM, runs

    return all(runs(c, ALNUM, _REF_SEPARATORS.__contains__) for c in name.split("/"))


_REF_SEPARATORS = frozenset(("-", ".", "_", ":", "@", "+", "--"))


def split_details(details: str, transport: str) -> tuple[str, str, int | None]:
    """``PATH[:REF]`` -> (path, ref name, source index or None), validated as containers/image does."""
    path, _, image = details.partition(":")
    if not path:
        raise InvalidReference(f"invalid image name {transport}:{details!r}: missing path (want {transport}:PATH[:REF])")
    index = None
    if image[:1] == "@" and image[1:].isascii() and image[1:].isdigit():
        index = int(image[1:])
        image = ""
    elif image and not valid_ref_name(image):
        raise InvalidReference(f"invalid image name {transport}:{details}: {image!r} is not a valid reference name "
                               "(letters, digits and . _ - : @ + / separators)")
    return path, image, index


def parse(details: str) -> "OCIReference":
    path, image, index = split_details(details, "oci")
    return OCIReference(path, image, index)


class OCIReference(ImageReference):
    transport = "oci"

    def __init__(self, path: str, image: str = "", source_index: int | None = None):
        self.path = path
        self.image = image
        self.source_index = source_index

    @property
    def resolved(self) -> str:
        return os.path.abspath(self.path)

    def string_within_transport(self) -> str:
        if self.source_index is not None:
            return f"{self.path}:@{self.source_index}"
        return f"{self.path}:{self.image}" if self.image else self.path

    def new_source(self, ctx: "SystemContext") -> "OCISource":
        return OCISource(self, ctx)

    def new_destination(self, ctx: "SystemContext") -> "OCIDestination":
        return OCIDestination(self, ctx)

    def delete(self, ctx: "SystemContext") -> None:
        delete_image(self, getattr(ctx, "oci_shared_blob_dir", None))


# --- reading -------------------------------------------------------------------------------


def blob_path(root: str, digest: str, shared: str | None = None) -> str:
    base = shared if shared else os.path.join(root, "blobs")
    return os.path.join(base, _digest.algorithm(digest), _digest.hex_part(digest))


def read_index(root: str, what: str) -> tuple[dict, list]:
    """The parsed ``index.json`` (as a dict, unknown fields kept) and its entries as Descriptors.

    NotFound when the layout or its index is missing; InvalidDocument naming the field when malformed.
    """
    from ..oci.manifest import Index

    path = os.path.join(root, INDEX_FILE)
    _files.check_dir(root, what)
    try:
        raw = _files.read_small(path)
    except FileNotFoundError:
        raise NotFound(f"{what}: {path} not found (not an OCI layout?)") from None
    except OSError as e:
        raise _files.os_error(e, f"reading {what}") from None
    try:
        idx = Index.from_bytes(raw, mt.OCI_INDEX)
    except InvalidDocument as e:
        raise InvalidDocument(f"{path}: {e}") from None
    return json.loads(raw), idx.manifests


def choose_entry(entries: list, ref: OCIReference, what: str) -> "Descriptor":
    if ref.source_index is not None:
        if ref.source_index >= len(entries):
            raise NotFound(f"{what}: invalid source index @{ref.source_index}, the layout has only "
                           f"{len(entries)} entries")
        return entries[ref.source_index]
    if ref.image:
        for d in entries:
            if d.annotations.get(REF_NAME) == ref.image:
                return d
        raise NotFound(f"{what}: no image tagged {ref.image!r} in the layout")
    if len(entries) == 1:
        return entries[0]
    if not entries:
        raise NotFound(f"{what}: the layout holds no image")
    names = sorted({d.annotations.get(REF_NAME, "") for d in entries} - {""})
    raise InvalidReference(f"{what}: the layout holds {len(entries)} images; choose one with "
                           f"oci:PATH:REF (names: {', '.join(names) or 'none'}) or oci:PATH:@N")


class OCISource(ImageSource):
    """Reads one image or index from a layout. Thread-safe: every blob read opens its own file."""

    def __init__(self, ref: OCIReference, ctx: "SystemContext | None" = None, what: str | None = None):
        self.reference = ref
        self.root = ref.resolved
        self.shared = getattr(ctx, "oci_shared_blob_dir", None) if ctx is not None else None
        self.what = what or str(ref)
        _, entries = read_index(self.root, self.what)
        self.descriptor = choose_entry(entries, ref, self.what)
        self._top: tuple[bytes, str] | None = None

    def _read_document(self, digest: str, what: str) -> bytes:
        for p in self._paths(digest):
            try:
                return _files.read_small(p)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise _files.os_error(e, f"reading {self.what}") from None
        raise NotFound(f"{self.what}: {what} {digest} not found in the layout")

    def _paths(self, digest: str) -> list[str]:
        paths = [blob_path(self.root, digest)]
        if self.shared:
            paths.insert(0, blob_path(self.root, digest, self.shared))
        return paths

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        from ..oci.manifest import guess_media_type

        if instance_digest is None:
            if self._top is None:
                d = self.descriptor
                raw = self._read_document(d.digest, "manifest")
                self._top = (raw, d.media_type or guess_media_type(raw))
            return self._top
        _digest.validate(instance_digest, "instance digest")
        media_type = ""
        top_raw, top_type = self.get_manifest()
        if top_type in mt.INDEXES:
            try:
                for d in json.loads(top_raw).get("manifests") or []:
                    if isinstance(d, dict) and d.get("digest") == instance_digest:
                        media_type = d.get("mediaType") or ""
                        break
            except ValueError:
                pass
        raw = self._read_document(instance_digest, "manifest")
        return raw, media_type or guess_media_type(raw)

    def get_blob(self, desc: "Descriptor"):
        from ..errors import BlobNotFound

        if not desc.digest:
            raise BlobNotFound(f"{self.what}: blob without a digest")
        _digest.validate(desc.digest, "blob digest")
        from .._fs import open_regular

        for p in self._paths(desc.digest):
            try:
                return open_regular(p)  # a FIFO or device planted as a blob is not opened
            except FileNotFoundError:
                continue
            except OSError as e:
                raise _files.os_error(e, f"reading {self.what}") from None
        raise BlobNotFound(f"{self.what}: blob {desc.digest} not found in the layout")


# --- writing -------------------------------------------------------------------------------


class OCIDestination(_files.StagingCleanup, ImageDestination):
    """Writes one image or index into a layout; see the module docstring for the crash-safety story."""

    supported_manifest_types = (mt.OCI_MANIFEST, mt.OCI_INDEX)
    supports_index = True

    def __init__(self, ref: OCIReference, ctx: "SystemContext | None" = None, what: str | None = None):
        if ref.source_index is not None:
            raise InvalidReference(f"{ref}: @N selects an image to read; a destination needs oci:PATH[:REF]")
        self.reference = ref
        self.root = ref.resolved
        self.shared = getattr(ctx, "oci_shared_blob_dir", None) if ctx is not None else None
        if self.shared:
            self.shared = os.path.abspath(self.shared)
        self.what = what or str(ref)
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise _files.LocalFileError(f"{self.what}: {self.root} exists and is not a directory")
        if os.path.exists(os.path.join(self.root, INDEX_FILE)):
            read_index(self.root, self.what)  # fail early on a malformed layout
        self._created: list[str] = []
        self._staging = None
        import threading

        self._lock = threading.Lock()
        self._top: "Descriptor | None" = None
        self._committed = False

    @property
    def blob_root(self) -> str:
        return self.shared or os.path.join(self.root, "blobs")

    def _stage(self):
        with self._lock:
            if self._staging is None:
                from ._blobs import Staging

                with _files.translate_errors(f"writing {self.what}"):
                    _files.make_dirs(self.root, self._created)
                    _files.make_dirs(self.blob_root, self._created)
                    self._staging = Staging(self.blob_root, self.what)
            return self._staging

    def _existing(self, digest: str) -> str | None:
        p = blob_path(self.root, digest, self.shared)
        return p if os.path.isfile(p) else None

    def try_reusing_blob(self, desc: "Descriptor", source=None) -> "Descriptor | None":
        if not desc.digest or not _digest.is_digest(desc.digest):
            return None
        staged = self._staging.size(desc.digest) if self._staging else None
        if staged is not None:
            return desc.replace(size=staged)
        p = self._existing(desc.digest)
        if p is None:
            return None
        try:
            return desc.replace(size=os.stat(p).st_size)
        except OSError:
            return None

    def put_blob(self, stream, desc: "Descriptor", *, is_config: bool = False) -> "Descriptor":
        staging = self._stage()
        digest, size = staging.put(stream, desc.digest, desc.size)
        return desc.replace(digest=digest, size=size)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        from ..oci.descriptor import Descriptor
        from ..oci.manifest import guess_media_type

        media_type = media_type or guess_media_type(raw) or mt.OCI_MANIFEST
        if media_type in mt.SCHEMA1:
            raise Unsupported(f"{self.what}: Docker schema 1 manifests cannot be stored in an OCI layout; "
                              "convert the image (--format oci)")
        staging = self._stage()
        digest, size = staging.put_bytes(raw)
        if instance_digest is not None:
            if digest != instance_digest and _digest.algorithm(instance_digest) == "sha256":
                raise InvalidDocument(f"{self.what}: manifest for instance {instance_digest} has digest {digest}")
            return
        ann = {REF_NAME: self.reference.image} if self.reference.image else None
        self._top = Descriptor(media_type, digest, size, annotations=ann)

    @property
    def manifest_descriptor(self) -> "Descriptor | None":
        """The index.json entry this destination adds (after ``put_manifest``)."""
        return self._top

    def commit(self) -> None:
        from ..oci.manifest import dumps

        if self._top is None:
            raise InvalidDocument(f"{self.what}: nothing to commit: no manifest was written")
        staging = self._stage()
        with _files.translate_errors(f"writing {self.what}"):
            dirs = set()
            for digest in staging.digests():
                final = blob_path(self.root, digest, self.shared)
                d = os.path.dirname(final)
                if d not in dirs:
                    os.makedirs(d, 0o755, exist_ok=True)
                    dirs.add(d)
                staging.publish(digest, final)
            for d in dirs:
                _files.fsync_dir(d)
            with _files.DirLock(self.root):
                if not os.path.exists(os.path.join(self.root, LAYOUT_FILE)):
                    _files.atomic_write(os.path.join(self.root, LAYOUT_FILE), LAYOUT_VERSION)
                if os.path.exists(os.path.join(self.root, INDEX_FILE)):
                    doc, _ = read_index(self.root, self.what)
                else:
                    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
                doc["manifests"] = add_entry(doc.get("manifests") or [], self._top.to_dict())
                _files.atomic_write(os.path.join(self.root, INDEX_FILE), dumps(doc))
        self._committed = True
        staging.discard()
        self._staging = None
        self._created.clear()


def add_entry(entries: list, new: dict) -> list:
    """``entries`` with ``new`` added: replaces the entry with the same ref name (in place), or an
    untagged entry with the same digest when ``new`` is untagged; appended otherwise."""
    out = list(entries)
    name = (new.get("annotations") or {}).get(REF_NAME)
    if name:
        hits = [i for i, e in enumerate(out) if isinstance(e, dict) and (e.get("annotations") or {}).get(REF_NAME) == name]
        if hits:
            out[hits[0]] = new
            for i in reversed(hits[1:]):
                del out[i]
            return out
    else:
        for i, e in enumerate(out):
            if isinstance(e, dict) and e.get("digest") == new["digest"] and not (e.get("annotations") or {}).get(REF_NAME):
                out[i] = new
                return out
    out.append(new)
    return out


# --- deleting ------------------------------------------------------------------------------


def _referenced(root: str, shared: str | None, entry: dict, out: set) -> None:
    """Add to ``out`` every blob digest reachable from ``entry`` (missing blobs are tolerated)."""
    todo = [entry]
    while todo:
        d = todo.pop()
        dig = d.get("digest") if isinstance(d, dict) else None
        if not isinstance(dig, str) or dig in out or not _digest.is_digest(dig):
            continue
        out.add(dig)
        media_type = d.get("mediaType") or ""
        if media_type and not (media_type in mt.ALL_MANIFESTS or media_type.endswith("+json")):
            continue  # a layer: nothing inside
        p = blob_path(root, dig, shared)
        try:
            if os.path.getsize(p) > _files.MAX_DOCUMENT:
                continue
            doc = json.loads(_files.read_small(p))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        for key in ("config", "subject"):
            if isinstance(doc.get(key), dict):
                todo.append(doc[key])
        for key in ("layers", "manifests", "blobs"):
            if isinstance(doc.get(key), list):
                todo.extend(x for x in doc[key] if isinstance(x, dict))


def delete_image(ref: OCIReference, shared: str | None = None) -> None:
    """Remove the image's index.json entry, then the blobs no other entry references.

    With a shared blob directory only the entry is removed (other layouts may use the blobs).
    """
    from ..oci.manifest import dumps

    root = ref.resolved
    what = str(ref)
    doc, entries = read_index(root, what)
    with _files.translate_errors(f"deleting {what}"):
        with _files.DirLock(root):
            doc, entries = read_index(root, what)
            victim = choose_entry(entries, ref, what)
            raw_entries = doc.get("manifests") or []
            pos = entries.index(victim)
            keep = raw_entries[:pos] + raw_entries[pos + 1:]
            doc["manifests"] = keep
            doomed: set = set()
            _referenced(root, shared, raw_entries[pos], doomed)
            live: set = set()
            for e in keep:
                _referenced(root, shared, e, live)
            _files.atomic_write(os.path.join(root, INDEX_FILE), dumps(doc))
            if shared:
                return
            for dig in doomed - live:
                try:
                    os.unlink(blob_path(root, dig))
                except FileNotFoundError:
                    pass
