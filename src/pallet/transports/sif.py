"""The ``sif:PATH`` transport: a Singularity Image Format file, read-only (as containers/image's).

A SIF file is a 128-byte header, a table of 585-byte object descriptors and the objects'
data (sylabs/sif v2, format version 01, all little-endian). The image is made from:

- the primary system partition (a squashfs), converted to one uncompressed tar layer by
  ``sqfs2tar`` (squashfs-tools-ng) without extracting it: owners, modes, xattrs and device
  nodes come from the squashfs itself, so no root and no fakeroot are needed (skopeo extracts
  with ``unsquashfs`` under ``fakeroot`` and tars the tree);
- the definition file, if there is exactly one: its ``%environment`` and ``%runscript``
  sections become ``/podman/runscript`` (appended to the layer, owned by root, mode 0755) and
  the image's ``Cmd``; without them ``Cmd`` is ``bash``;
- the header: the architecture, the modification time (``created``) and the file's UUID
  (in the history comment), in the config containers/image writes.

Every offset and size read from the file is checked against the file before it is used; the
squashfs is copied to this process's spool directory (``sqfs2tar`` needs a file of its own)
and the tar is spooled there too, both within the spool limit.
"""

from __future__ import annotations

import os
import struct

from ..errors import InvalidDocument, InvalidReference, Unsupported
from . import _files
from .base import ImageReference, ImageSource, SystemContext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..oci.descriptor import Descriptor

HEADER_SIZE = 128
DESCRIPTOR_SIZE = 585
MAGIC = b"SIF_MAGIC\x00"
VERSION = b"01\x00"
#: more descriptors than any SIF tool writes (sylabs' default is 48)
MAX_DESCRIPTORS = 1 << 16
#: the largest definition file read into memory
MAX_DEFFILE = 16 << 20

DATA_DEFFILE = 0x4001
DATA_PARTITION = 0x4004
FS_SQUASH = 1
PART_PRIMSYS = 2
FS_NAMES = {1: "Squashfs", 2: "Ext3", 3: "Archive", 4: "Raw", 5: "Encrypted squashfs"}

#: sylabs/sif's architecture codes -> Go's GOARCH names
ARCHES = {b"01": "386", b"02": "amd64", b"03": "arm", b"04": "arm64", b"05": "ppc64", b"06": "ppc64le",
          b"07": "mips", b"08": "mipsle", b"09": "mips64", b"10": "mips64le", b"11": "s390x", b"12": "riscv64"}

RUNSCRIPT_PATH = "podman/runscript"


def parse(details: str) -> "SifReference":
    if not details:
        raise InvalidReference("invalid image name 'sif:': missing path (want sif:PATH)")
    return SifReference(details)


class SifReference(ImageReference):
    transport = "sif"

    def __init__(self, path: str):
        self.path = path

    def string_within_transport(self) -> str:
        return self.path

    def new_source(self, ctx: SystemContext) -> "SifSource":
        return SifSource(self, ctx)

    def new_destination(self, ctx: SystemContext):
        raise Unsupported(f'{self}: "sif:" locations can only be read from, not written to')

    def delete(self, ctx: SystemContext) -> None:
        raise Unsupported(f"{self}: deleting images is not implemented for sif: images")


class SifObject:
    """One used descriptor: its data type, where its data is, and its type-specific bytes."""

    __slots__ = ("data_type", "offset", "size", "extra")

    def __init__(self, data_type: int, offset: int, size: int, extra: bytes):
        self.data_type = data_type
        self.offset = offset
        self.size = size
        self.extra = extra

    def partition(self) -> tuple[int, int, str]:
        """(file system type, partition type, architecture) of a partition object."""
        fstype, parttype = struct.unpack_from("<ii", self.extra)
        return fstype, parttype, ARCHES.get(self.extra[8:10], "unknown")


class SifFile:
    """The parsed header and descriptors of a SIF file (``f`` an open binary file)."""

    def __init__(self, f, what: str):
        self.what = what
        size = os.fstat(f.fileno()).st_size
        head = _read_at(f, 0, HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[32:42] != MAGIC:
            raise InvalidDocument(f"{what}: loading SIF file: invalid SIF magic")
        if head[42:45] != VERSION:
            raise InvalidDocument(f"{what}: loading SIF file: incompatible SIF version "
                                  f"{head[42:44].decode('ascii', 'replace')!r} (this reads version 01)")
        self.arch = ARCHES.get(head[45:47], "unknown")
        u = head[48:64].hex()
        self.uuid = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
        (self.created_at, self.modified_at, free, total, desc_off, desc_size,
         _data_off, _data_size) = struct.unpack_from("<8q", head, 64)
        if not 0 < total <= MAX_DESCRIPTORS or not 0 <= free <= total:
            raise InvalidDocument(f"{what}: loading SIF file: {total} descriptors ({free} free) is not a valid count")
        need = total * DESCRIPTOR_SIZE
        if desc_off < HEADER_SIZE or desc_size < need or desc_off + need > size:
            raise InvalidDocument(f"{what}: loading SIF file: the descriptor table (offset {desc_off}, "
                                  f"{total} entries) is not within the file's {size} bytes")
        table = _read_at(f, desc_off, need)
        if len(table) < need:
            raise InvalidDocument(f"{what}: loading SIF file: the descriptor table is truncated")
        self.objects: list[SifObject] = []
        self.no_objects = free == total
        for i in range(total):
            at = i * DESCRIPTOR_SIZE
            data_type, used = struct.unpack_from("<i?", table, at)
            if not used:
                continue
            offset, length = struct.unpack_from("<qq", table, at + 17)
            if offset < 0 or length < 0 or offset + length > size:
                raise InvalidDocument(f"{what}: loading SIF file: object {i + 1}'s data (offset {offset}, "
                                      f"{length} bytes) is not within the file's {size} bytes")
            self.objects.append(SifObject(data_type, offset, length, table[at + 201:at + 201 + 12]))

    def rootfs(self) -> SifObject:
        """The primary system partition (exactly one), as sylabs/sif's GetDescriptor finds it."""
        if self.no_objects:
            raise InvalidDocument(f"{self.what}: looking up rootfs from SIF file: no objects in image")
        found = [o for o in self.objects if o.data_type == DATA_PARTITION and o.partition()[1] == PART_PRIMSYS]
        if not found:
            raise InvalidDocument(f"{self.what}: looking up rootfs from SIF file: object not found")
        if len(found) > 1:
            raise InvalidDocument(f"{self.what}: looking up rootfs from SIF file: multiple objects found")
        fstype = found[0].partition()[0]
        if fstype != FS_SQUASH:
            raise Unsupported(f"{self.what}: the system partition is {FS_NAMES.get(fstype, f'type {fstype}')}: "
                              "only squashfs is supported")
        return found[0]

    def deffile(self) -> SifObject | None:
        """The definition file when there is exactly one (containers/image ignores several)."""
        found = [o for o in self.objects if o.data_type == DATA_DEFFILE]
        return found[0] if len(found) == 1 else None


def _read_at(f, offset: int, n: int) -> bytes:
    return os.pread(f.fileno(), n, offset)


def parse_deffile(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The ``%environment`` lines (blank and ``#`` lines dropped) and the ``%runscript`` lines
    of a definition file; any other ``%`` line ends a section (containers/image's parseDefFile)."""
    environment: list[bytes] = []
    runscript: list[bytes] = []
    state = None
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()  # the split's empty last piece, not a line of the file
    for line in lines:
        s = line.strip()
        if s == b"%environment":
            state = environment
        elif s == b"%runscript":
            state = runscript
        elif s.startswith(b"%"):
            state = None
        elif state is environment:
            if s and not s.startswith(b"#"):
                environment.append(s)
        elif state is runscript:
            runscript.append(s)
    return environment, runscript


def command_and_script(deffile: bytes | None) -> tuple[str, bytes | None]:
    """The image's command and the ``/podman/runscript`` to inject (None: nothing)."""
    environment, runscript = parse_deffile(deffile) if deffile is not None else ([], [])
    if not environment and not runscript:
        return "bash", None
    return "/" + RUNSCRIPT_PATH, b"#!/bin/bash\n" + b"\n".join(environment) + b"\n" + b"\n".join(runscript) + b"\n"


def _rfc3339(seconds: int) -> str:
    import time

    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "1970-01-01T00:00:00Z"


class SifSource(ImageSource):
    """Converts the SIF file once, at open; then serves its manifest, config and layer."""

    def __init__(self, ref: SifReference, ctx: SystemContext | None = None):
        self.reference = ref
        self.what = str(ref)
        self._spool = None
        try:
            self._convert(ctx)
        except BaseException:
            self.close()
            raise

    def _convert(self, ctx) -> None:
        from ..oci import digest as _digest
        from ..oci import mediatype as mt
        from ..oci.manifest import dumps

        try:
            f = open(self.reference.path, "rb")
        except OSError as e:
            raise _files.os_error(e, f"reading {self.what}") from None
        with f, _files.translate_errors(f"reading {self.what}"):
            sif = SifFile(f, self.what)
            rootfs = sif.rootfs()
            deffile_obj = sif.deffile()
            deffile = None
            if deffile_obj is not None:
                if deffile_obj.size > MAX_DEFFILE:
                    raise InvalidDocument(f"{self.what}: the definition file is {deffile_obj.size} bytes, "
                                          f"more than {MAX_DEFFILE} (refused)")
                deffile = _read_at(f, deffile_obj.offset, deffile_obj.size)
            command, script = command_and_script(deffile)
            limit = _files.spool_limit(ctx)
            if limit and rootfs.size > limit:
                raise _files.SpoolLimit(f"{self.what}: its squashfs of {rootfs.size} bytes is larger than the "
                                        f"spool limit of {limit} bytes (raise it with --spool-limit SIZE, 0 for none)")
            self._spool = _files.SpoolDir()
            squashfs = os.path.join(self._spool.path, "rootfs.squashfs")
            with open(squashfs, "wb") as out:
                _copy_range(f, rootfs.offset, rootfs.size, out)
        self._layer = os.path.join(self._spool.path, "rootfs.tar")
        _squashfs_to_tar(squashfs, self._layer, limit, self.what)
        os.unlink(squashfs)
        if script is not None:
            with _files.translate_errors(f"converting {self.what}"):
                _append_runscript(self._layer, script, sif.modified_at, self.what)
        with open(self._layer, "rb") as lf:
            h = _digest.hasher("sha256")
            size = 0
            while True:
                b = lf.read(1 << 20)
                if not b:
                    break
                h.update(b)
                size += len(b)
        layer_digest = "sha256:" + h.hexdigest()
        created = _rfc3339(sif.modified_at)
        config = {
            "created": created,
            "architecture": sif.arch,
            "os": "linux",
            "config": {"Cmd": [command]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [
                {"created": created, "created_by": f"/bin/sh -c #(nop) ADD file:{_digest.hex_part(layer_digest)} in /",
                 "comment": "imported from SIF, uuid: " + sif.uuid},
                {"created": created, "created_by": '/bin/sh -c #(nop) CMD ["bash"]', "empty_layer": True},
            ],
        }
        self._config = dumps(config)
        self._config_digest = _digest.of_bytes(self._config)
        self._layer_digest = layer_digest
        self._manifest = dumps({
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": self._config_digest, "size": len(self._config)},
            "layers": [{"mediaType": mt.OCI_LAYER, "digest": layer_digest, "size": size}],
        })

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        from ..oci import mediatype as mt

        if instance_digest is not None:
            raise Unsupported(f"{self.what}: manifest lists are not supported by the sif transport")
        return self._manifest, mt.OCI_MANIFEST

    def get_blob(self, desc: "Descriptor"):
        import io

        from ._blobs import open_blob

        if desc.digest == self._config_digest:
            return io.BytesIO(self._config)
        if desc.digest == self._layer_digest:
            return open_blob(self._layer, desc.digest, self.what)
        from ..errors import BlobNotFound

        raise BlobNotFound(f"{self.what}: no blob with digest {desc.digest} found")

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _copy_range(f, offset: int, size: int, out) -> None:
    """Copy ``size`` bytes of ``f`` from ``offset`` into the file ``out`` (in the kernel when it can)."""
    src, dst = f.fileno(), out.fileno()
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, min(size - done, 1 << 30), offset + done)
        except OSError:
            n = -1
        if n < 0:  # no copy_file_range across these file systems: read and write
            b = os.pread(src, min(size - done, 1 << 20), offset + done)
            n = len(b)
            out.write(b)
            out.flush()
        if n == 0:
            raise InvalidDocument(f"SIF file shrank while its squashfs was copied (at {offset + done})")
        done += n


def _squashfs_to_tar(squashfs: str, tar: str, limit: int, what: str) -> None:
    """``sqfs2tar -r . SQUASHFS`` spooled into ``tar`` within ``limit`` bytes: names ``./…``
    with a ``./`` entry for the root, as ``tar -C root -cpf FILE ./`` gives."""
    import shutil
    import subprocess

    prog = shutil.which("sqfs2tar")
    if prog is None:
        raise Unsupported(f"{what}: reading sif: images needs sqfs2tar (Debian package squashfs-tools-ng), "
                          "which is not installed")
    errf = open(os.path.join(os.path.dirname(tar), "sqfs2tar.err"), "w+b")
    with errf:
        proc = subprocess.Popen([prog, "-r", ".", squashfs], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errf)
        short = None
        try:
            with _files.translate_errors(f"converting {what}"), open(tar, "wb") as out:
                _files.spool_copy(proc.stdout, out, limit, f"converting {what}")
        except InvalidDocument as e:  # no tar came out: sqfs2tar's own words, below, say why
            short = e
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            errf.seek(0)
            msg = [ln for ln in errf.read(64 << 10).decode("utf-8", "replace").splitlines() if ln.strip()]
            raise InvalidDocument(f"{what}: converting rootfs from SquashFS to Tarball: sqfs2tar exited {rc}"
                                  + (f": {msg[-1].strip()}" if msg else ""))
        if short is not None:
            raise short


def _append_runscript(tar: str, script: bytes, mtime: int, what: str) -> None:
    """Append ``./podman/`` (unless the layer has that directory) and ``./podman/runscript``
    (root's, 0755) to the tar file in place of its end-of-archive marker."""
    import posixpath

    from ..errors import LayerError
    from ..layer import tar as _codec
    from ._tar import TarWriter

    have_dir = False
    with open(tar, "r+b") as f:
        tr = _codec.TarReader(f, seekable=True)
        end = 0
        try:
            while True:
                h = tr.next()
                if h is None:
                    break
                if posixpath.normpath("/" + os.fsdecode(h.name)) == "/podman" and h.type == _codec.DIR:
                    have_dir = True
                tr.skip()
                end = tr.offset()
        except LayerError as e:
            raise InvalidDocument(f"{what}: sqfs2tar wrote a corrupt tar: {e}") from None
        f.seek(end)
        f.truncate()
        tw = TarWriter(f, mtime=mtime)
        if not have_dir:
            tw.add_dir("./podman")
        tw.add_bytes("./" + RUNSCRIPT_PATH, script, mode=0o755)
        tw.close()


