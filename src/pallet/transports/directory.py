"""The ``dir:PATH`` transport: skopeo's directory format.

``manifest.json`` (the top-level manifest or index), ``HEX.manifest.json`` for the instances
of an index, every blob in a file named by the hex of its digest, and ``version``
("Directory Transport Version: 1.1"), signatures in ``signature-1``, ``-2``... (an
instance's in ``HEX.signature-N``). A directory holds one image: as skopeo, a destination
replaces what was there, and refuses a non-empty directory that is not a ``dir:`` image.

Unlike skopeo, which empties the directory first, the new image is staged in a hidden
subdirectory and moved in at ``commit`` (blobs first, ``manifest.json`` last, then stale files
removed), so a failed copy leaves the old image intact.
"""

from __future__ import annotations

import os

from ..errors import InvalidReference, NotFound
from ..oci import digest as _digest
from . import _files
from .base import ImageDestination, ImageReference, ImageSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor
    from .base import SystemContext

VERSION = b"Directory Transport Version: 1.1\n"
KNOWN_VERSIONS = (VERSION, b"Directory Transport Version: 1.0\n")
MANIFEST = "manifest.json"


def parse(details: str) -> "DirReference":
    if not details:
        raise InvalidReference("invalid image name 'dir:': missing path (want dir:PATH)")
    return DirReference(details)


def blob_name(digest: str) -> str:
    _digest.validate(digest, "blob digest")  # never build a path from an unchecked string
    return _digest.hex_part(digest)


def instance_manifest_name(digest: str) -> str:
    _digest.validate(digest, "instance digest")
    return _digest.hex_part(digest) + ".manifest.json"


def signature_name(index: int, instance_digest: str | None = None) -> str:
    """``signature-N`` (``index`` from 0), ``HEX.signature-N`` for an instance."""
    if instance_digest is None:
        return f"signature-{index + 1}"
    _digest.validate(instance_digest, "instance digest")
    return f"{_digest.hex_part(instance_digest)}.signature-{index + 1}"


class DirReference(ImageReference):
    transport = "dir"

    def __init__(self, path: str):
        self.path = path

    @property
    def resolved(self) -> str:
        return os.path.abspath(self.path)

    def string_within_transport(self) -> str:
        return self.path

    def new_source(self, ctx: "SystemContext") -> "DirSource":
        return DirSource(self)

    def new_destination(self, ctx: "SystemContext") -> "DirDestination":
        return DirDestination(self)


class DirSource(ImageSource):
    """Reads a ``dir:`` image. Thread-safe: each blob read opens its own file."""

    def __init__(self, ref: DirReference):
        self.reference = ref
        self.root = ref.resolved
        self.what = str(ref)
        _files.check_dir(self.root, self.what)
        if not os.path.exists(os.path.join(self.root, MANIFEST)):
            raise NotFound(f"{self.what}: {os.path.join(self.root, MANIFEST)} not found (not a dir: image?)")

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        from ..oci.manifest import guess_media_type

        name = MANIFEST if instance_digest is None else instance_manifest_name(instance_digest)
        path = os.path.join(self.root, name)
        try:
            raw = _files.read_small(path)
        except FileNotFoundError:
            what = "manifest" if instance_digest is None else f"manifest {instance_digest}"
            raise NotFound(f"{self.what}: {what} not found ({path})") from None
        except OSError as e:
            raise _files.os_error(e, f"reading {self.what}") from None
        return raw, guess_media_type(raw)

    def get_blob(self, desc: "Descriptor"):
        from ._blobs import open_blob

        return open_blob(os.path.join(self.root, blob_name(desc.digest)), desc.digest, self.what)

    def get_signatures(self, instance_digest: str | None = None) -> list[bytes]:
        from .signature import MAX_SIGNATURE_SIZE

        out = []
        while True:
            path = os.path.join(self.root, signature_name(len(out), instance_digest))
            try:
                out.append(_files.read_small(path, MAX_SIGNATURE_SIZE))
            except FileNotFoundError:
                return out
            except OSError as e:
                raise _files.os_error(e, f"reading {self.what}") from None


def _is_dir_image(root: str) -> bool:
    try:
        with open(os.path.join(root, "version"), "rb") as f:
            return f.read(256) in KNOWN_VERSIONS
    except OSError:
        return False


class DirDestination(_files.StagingCleanup, ImageDestination):
    """Writes one image (or index with its instances) as a ``dir:`` image; see the module docstring."""

    supported_manifest_types = ()  # any: the directory stores bytes as they come
    supports_index = True
    supports_signatures = True

    def __init__(self, ref: DirReference):
        import threading

        self.reference = ref
        self.root = ref.resolved
        self.what = str(ref)
        if os.path.exists(self.root):
            if not os.path.isdir(self.root):
                raise _files.LocalFileError(f"{self.what}: {self.root} exists and is not a directory")
            with _files.translate_errors(f"opening {self.what}"):
                entries = [e for e in os.listdir(self.root) if not e.startswith(".pallet-staging-")]
            if entries and not _is_dir_image(self.root):
                raise _files.LocalFileError(f"{self.what}: {self.root} is not empty and is not a dir: image "
                                            "(no valid 'version' file); refusing to overwrite it")
        self._created: list[str] = []
        self._staging = None
        self._lock = threading.Lock()
        self._manifests: dict[str, bytes] = {}  # file name -> bytes, written at commit
        self._committed = False

    def _stage(self):
        with self._lock:
            if self._staging is None:
                from ._blobs import Staging

                with _files.translate_errors(f"writing {self.what}"):
                    _files.make_dirs(self.root, self._created)
                    self._staging = Staging(self.root, self.what)
            return self._staging

    def try_reusing_blob(self, desc: "Descriptor", source=None) -> "Descriptor | None":
        if not desc.digest or not _digest.is_digest(desc.digest):
            return None
        staging = self._staging
        size = staging.size(desc.digest) if staging else None
        if size is None:
            old = os.path.join(self.root, blob_name(desc.digest))
            if not os.path.isfile(old):
                return None
            size = self._stage().adopt(desc.digest, old)  # the old image goes away at commit: keep a link
            if size is None:
                return None
        return desc.replace(size=size)

    def put_blob(self, stream, desc: "Descriptor", *, is_config: bool = False) -> "Descriptor":
        digest, size = self._stage().put(stream, desc.digest, desc.size)
        return desc.replace(digest=digest, size=size)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        self._stage()
        name = MANIFEST if instance_digest is None else instance_manifest_name(instance_digest)
        with self._lock:
            self._manifests[name] = bytes(raw)

    def put_signatures(self, signatures: list[bytes], instance_digest: str | None = None) -> None:
        self._stage()
        with self._lock:
            for i, sig in enumerate(signatures):
                self._manifests[signature_name(i, instance_digest)] = bytes(sig)

    def commit(self) -> None:
        from ..errors import InvalidDocument

        if MANIFEST not in self._manifests:
            raise InvalidDocument(f"{self.what}: nothing to commit: no manifest was written")
        staging = self._stage()
        root = self.root
        with _files.translate_errors(f"writing {self.what}"):
            wanted = {"version"} | set(self._manifests)
            for digest in staging.digests():
                name = blob_name(digest)
                wanted.add(name)
                staging.publish(digest, os.path.join(root, name))
            _files.fsync_dir(root)
            # instance manifests, then the top-level one: a reader never sees a manifest whose blobs are missing
            for name in sorted(self._manifests, key=lambda n: n == MANIFEST):
                _files.atomic_write(os.path.join(root, name), self._manifests[name])
            _files.atomic_write(os.path.join(root, "version"), VERSION)
            staging.discard()
            self._staging = None
            for entry in os.listdir(root):
                if entry in wanted:
                    continue
                p = os.path.join(root, entry)
                if os.path.isdir(p) and not os.path.islink(p):
                    if entry.startswith(".pallet-staging-"):
                        continue  # another writer's staging area
                    _files.rmtree_quiet(p)
                else:
                    os.unlink(p)
            _files.fsync_dir(root)
        self._committed = True
        self._created.clear()

