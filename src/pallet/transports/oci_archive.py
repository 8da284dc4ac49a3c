"""The ``oci-archive:PATH[:REF]`` transport: a tar of an OCI image layout.

A source extracts the archive (streamed, safely) to a temp directory and reads it as ``oci:``;
a destination writes a layout in a temp directory and, at ``commit``, tars it to a temp file
beside PATH, fsyncs and renames it over PATH. The archive is replaced whole, as skopeo does.
"""

from __future__ import annotations

import os

from ..errors import InvalidReference, NotFound
from .. import _fs
from . import _files
from .base import ImageDestination, ImageReference, ImageSource, SystemContext
from .oci_layout import OCIDestination, OCIReference, OCISource, split_details

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor


def parse(details: str) -> "OCIArchiveReference":
    path, image, index = split_details(details, "oci-archive")
    return OCIArchiveReference(path, image, index)


def _inner_ctx(ctx: SystemContext | None) -> SystemContext:
    # a shared blob directory would put blobs outside the archive: never pass it on
    c = SystemContext()
    if ctx is not None:
        for k in SystemContext.__slots__:
            setattr(c, k, getattr(ctx, k))
    c.oci_shared_blob_dir = None
    return c


class OCIArchiveReference(ImageReference):
    transport = "oci-archive"

    def __init__(self, path: str, image: str = "", source_index: int | None = None):
        self.path = path
        self.image = image
        self.source_index = source_index

    def string_within_transport(self) -> str:
        if self.source_index is not None:
            return f"{self.path}:@{self.source_index}"
        return f"{self.path}:{self.image}" if self.image else self.path

    def new_source(self, ctx: SystemContext) -> "OCIArchiveSource":
        return OCIArchiveSource(self, ctx)

    def new_destination(self, ctx: SystemContext) -> "OCIArchiveDestination":
        return OCIArchiveDestination(self, ctx)


class OCIArchiveSource(ImageSource):
    def __init__(self, ref: OCIArchiveReference, ctx: SystemContext | None = None):
        from ._tar import extract_safely

        self.reference = ref
        what = str(ref)
        # in this process's locked spool directory: the next run removes it after a SIGKILL
        self._spool = _files.SpoolDir()
        self._tmp = self._spool.path
        try:
            try:
                f = open(ref.path, "rb")
            except OSError as e:
                raise _files.os_error(e, f"reading {what}") from None
            with f, _files.translate_errors(f"extracting {what}"):
                extract_safely(f, self._tmp, what, _files.spool_limit(ctx))
            self._inner = OCISource(OCIReference(self._tmp, ref.image, ref.source_index), _inner_ctx(ctx), what)
        except BaseException:
            self.close()
            raise

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        return self._inner.get_manifest(instance_digest)

    def get_blob(self, desc: "Descriptor"):
        return self._inner.get_blob(desc)

    def close(self) -> None:
        if self._tmp:
            self._spool.close()
            self._tmp = ""


class OCIArchiveDestination(ImageDestination):
    supported_manifest_types = OCIDestination.supported_manifest_types
    supports_index = True

    def __init__(self, ref: OCIArchiveReference, ctx: SystemContext | None = None):
        import tempfile

        if ref.source_index is not None:
            raise InvalidReference(f"{ref}: @N selects an image to read; a destination needs oci-archive:PATH[:REF]")
        self.reference = ref
        self.what = str(ref)
        self.path, self.stream = _files.output_target(ref.path)
        if os.path.isdir(self.path):
            raise _files.LocalFileError(f"{self.what}: {self.path} is a directory, not an archive file")
        parent = os.path.dirname(self.path)
        if not self.stream and not os.path.isdir(parent):
            raise NotFound(f"{self.what}: directory {parent} does not exist")
        # the layout lives beside the archive when possible (one file system, no tmpfs limits)
        base = parent if not self.stream and os.access(parent, os.W_OK) else _files.big_temp_dir()
        with _files.translate_errors(f"writing {self.what}"):
            self._tmp = tempfile.mkdtemp(prefix=".pallet-oci-archive-", dir=base)
        self._inner = OCIDestination(OCIReference(os.path.join(self._tmp, "layout"), ref.image),
                                     _inner_ctx(ctx), self.what)
        self._committed = False

    def try_reusing_blob(self, desc: "Descriptor", source=None):
        return self._inner.try_reusing_blob(desc, source)

    def put_blob(self, stream, desc: "Descriptor", *, is_config: bool = False) -> "Descriptor":
        return self._inner.put_blob(stream, desc, is_config=is_config)

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        self._inner.put_manifest(raw, media_type, instance_digest)

    def commit(self) -> None:
        self._inner.commit()
        layout = self._inner.root
        with _files.translate_errors(f"writing {self.what}"):
            with _fs.output_file(self.path) as out:
                write_layout_tar(layout, out)
        self._committed = True

    def close(self) -> None:
        self._inner.close()
        if self._tmp:
            _files.rmtree_quiet(self._tmp)
            self._tmp = ""


def write_layout_tar(root: str, out) -> None:
    """Tar an OCI layout directory: ``oci-layout``, ``index.json``, then ``blobs/`` (sorted, reproducible)."""
    from ._tar import TarWriter

    tw = TarWriter(out)
    tw.add_dir("blobs")
    blobs = os.path.join(root, "blobs")
    for algo in sorted(os.listdir(blobs)):
        d = os.path.join(blobs, algo)
        if algo.startswith(".") or not os.path.isdir(d):
            continue
        tw.add_dir(f"blobs/{algo}")
        for name in sorted(os.listdir(d)):
            if not name.startswith("."):
                tw.add_file(f"blobs/{algo}/{name}", os.path.join(d, name))
    tw.add_file("index.json", os.path.join(root, "index.json"))
    tw.add_file("oci-layout", os.path.join(root, "oci-layout"))
    tw.close()
