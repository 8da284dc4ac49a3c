"""The store: metadata, layers, images, containers, mounts — safe for many processes.

On-disk format and lock order: docs/storage.md. In short:

- ``GRAPHROOT/{layers,images,containers}.json`` hold the records; each is replaced whole
  (temp, fsync, rename) while the store lock is held exclusively, and a fresh writer token
  is stamped into the lock file so other processes know to reload.
- ``GRAPHROOT/blobs/sha256/HEX`` keeps every manifest, config and compressed layer blob an
  image was made from, so ``local:`` can hand out the exact bytes (pushes keep digests).
- Layers are keyed by chain ID; their files belong to the driver (``overlay/`` or ``vfs/``).
- New things are staged in ``GRAPHROOT/staging/PID-RAND`` (with a lock file held by the
  process that stages); a dead owner's staging dir is removed the next time a store opens.
- ``RUNROOT/storage.lock`` is the store lock; ``RUNROOT/locks/layer-ID.lock`` serialises the
  ingestion of one layer across processes; ``RUNROOT/mounts.json`` counts mounts.

Lock order: a layer lock (one at a time) before the store lock; never a layer lock while the
store lock is held.
"""

from __future__ import annotations

import contextlib
import os
import time

from .. import _json as json
from .. import _fs
from .._log import debug
from ..errors import DigestMismatch, NotFound, PalletError, StoreError
from . import _mount
from .drivers import DRIVERS, probe_overlay
from .lock import FileLock, lock_path, try_lock_path
from .options import StoreOptions, resolve


class ImageInUse(PalletError):
    """An image cannot be removed: a container uses it or it is mounted (podman's exit 2)."""

    exit_code = 2


class ImageUnknown(NotFound):
    """No image by that name or ID (podman's rmi exits 1 for this)."""


def _rmtree(path: str, ignore_errors: bool = True) -> None:
    import shutil  # not at the top: its imports (bz2, lzma) cost start-up time on every command

    shutil.rmtree(path, ignore_errors=ignore_errors)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def manifest_layer_blobs(raw: bytes) -> list[str]:
    """The layer blobs a stored (single-image) manifest names that the store must be able to
    produce: every layer's digest but foreign ones (fetched from their URLs). Lenient: the
    manifest was checked when it came in; only ``layers[].digest`` matters here."""
    from ..oci import mediatype as mt

    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    layers = doc.get("layers") if isinstance(doc, dict) else None
    out = []
    for d in layers if isinstance(layers, list) else ():
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            continue
        if d.get("urls") and mt.is_nondistributable(str(d.get("mediaType") or "")):
            continue
        out.append(d["digest"])
    return out


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs (hex) of a layer stack, base first: the OCI image-spec's ChainID."""
    out: list[str] = []
    for d in diff_ids:
        out.append(_chain_step(out[-1], d) if out else d.split(":", 1)[1])
    return out


def _chain_step(parent_chain_hex: str, diff_id: str) -> str:
    """The chain ID (hex) of a layer with ``diff_id`` on top of the chain ``parent_chain_hex``."""
    from ..oci.digest import of_bytes

    return of_bytes(f"sha256:{parent_chain_hex} {diff_id}".encode()).split(":", 1)[1]


class _State:
    __slots__ = ("layers", "images", "containers", "dirty", "after")

    def __init__(self, layers: dict, images: dict, containers: dict):
        self.layers = layers
        self.images = images
        self.containers = containers
        self.dirty: set[str] = set()
        #: file moves to do once the metadata is written (still under the lock): removing files
        #: only after the records no longer name them means a crash never leaves a record
        #: pointing at nothing, only unnamed files that the next start cleans up
        self.after: list = []


#: the store's format marker (GRAPHROOT/pallet-store): written when a store is made, checked
#: whenever one is opened, before anything is written
MARKER = "pallet-store"
FORMAT = 1
#: regular files where containers/storage (podman, buildah) makes its metadata directories: it
#: then refuses the root ("not a directory") instead of treating pallet's overlay/ as its own
DECOYS = ("overlay-images", "vfs-images")
#: what containers/storage (podman, buildah, skopeo's containers-storage:) makes in its root
_FOREIGN = ("storage.lock", "userns.lock", "libpod", "overlay-layers", "overlay-containers", "vfs-layers",
            "vfs-containers", "btrfs-images", "btrfs-layers", "zfs-images", "zfs-layers")


class Store:
    """One local store. Cheap to open; every operation takes the locks it needs.

    ``create=False`` (read-only verbs): a missing or empty root is not made into a store; it opens
    as an empty store (``absent``) and nothing is written, in the root or the run root."""

    FILES = ("layers", "images", "containers")

    def __init__(self, options: StoreOptions | None = None, create: bool = True):
        self.options = options or resolve()
        self.graphroot = self.options.graphroot
        self.runroot = self.options.runroot
        self._token: bytes | None = None
        self._state: _State | None = None
        self.absent = False
        kind = self._probe()  # reads only: nothing is written before the root is known to be ours
        if kind in ("missing", "empty") and not create:
            self.absent = True
            self.driver = None
            return
        try:
            os.makedirs(os.path.join(self.runroot, "locks"), 0o700, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the run root {self.runroot}: {e.strerror}") from None
        self._lock = FileLock(os.path.join(self.runroot, "storage.lock"))
        if kind != "pallet":
            self._adopt()
        try:
            for d in ("blobs/sha256", "staging", "mounts"):
                os.makedirs(os.path.join(self.graphroot, d), 0o700, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.graphroot}: {e.strerror}") from None
        self.driver = self._open_driver()
        self._clean_leftovers()

    # -- format ------------------------------------------------------------------------------

    def _probe(self) -> str:
        """What the root is: ``pallet`` (marked), ``legacy`` (a pallet store from before the
        marker), ``missing`` or ``empty``; anything else (another tool's root, a newer pallet's
        store) is refused here, having written nothing."""
        root = self.graphroot
        try:
            # not counted: .tmp files of a writer, and the lost+found of a filesystem made for the store
            names = [n for n in os.listdir(root) if not n.startswith(".") and n != "lost+found"]
        except FileNotFoundError:
            return "missing"
        except NotADirectoryError:
            raise StoreError(f"the store root {root} is not a directory") from None
        except OSError as e:
            raise StoreError(f"cannot read the store root {root}: {e.strerror}") from None
        if MARKER in names:
            self._check_marker()
            return "pallet"
        # the decoys are written first when a store is made: a process killed before the marker
        # left a root that is still empty for our purposes
        names = [n for n in names if not (n in DECOYS and os.path.isfile(os.path.join(root, n)))]
        if not names:
            return "empty"
        foreign = sorted(n for n in names if n in _FOREIGN or (n in DECOYS and os.path.isdir(os.path.join(root, n))))
        try:
            with open(os.path.join(root, "driver"), "rb") as f:
                ours = f.read(64).strip().decode("ascii", "replace") in DRIVERS
        except OSError:
            ours = False
        if ours and not foreign:
            return "legacy"
        if ours:
            raise StoreError(f"{root}: a pallet store that another tool has written into (containers-storage files: "
                             f"{', '.join(foreign[:3])}); pallet does not use it so: move those out of it, "
                             "or use another --root")
        what = (f"it holds containers-storage files ({', '.join(foreign[:3])}: a podman, buildah or cri-o store)"
                if foreign else f"it holds files pallet did not make ({', '.join(sorted(names)[:3])})")
        raise StoreError(f"{root} is not a pallet store: {what}, and pallet does not write into it: "
                         "use --root with an empty or new directory")

    def _check_marker(self) -> None:
        path = os.path.join(self.graphroot, MARKER)
        try:
            with open(path, "rb") as f:
                text = f.read(256).decode("ascii", "replace")
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror}") from None
        word, _, version = text.strip().partition(" ")
        if word != "pallet-store-format" or not version.isdigit():
            raise StoreError(f"{path}: not a pallet store format marker (want 'pallet-store-format N')")
        if int(version) > FORMAT:
            raise StoreError(f"the store at {self.graphroot} has format {int(version)}, made by a newer pallet; "
                             f"this pallet reads format {FORMAT}: use that newer pallet, or another --root")

    def _adopt(self) -> None:
        """Make a missing or empty root a store, or mark a store from before the marker; under the
        store lock, looking again first (another process may have done it meanwhile)."""
        try:
            os.makedirs(self.graphroot, 0o700, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.graphroot}: {e.strerror}") from None
        with self._lock.exclusive():
            if self._probe() == "pallet":
                return
            note = (b"This directory is a pallet store (see its pallet-store file), not a containers-storage "
                    b"root: podman and buildah must not use it.\n")
            for name in DECOYS:
                path = os.path.join(self.graphroot, name)
                if not os.path.lexists(path):
                    _fs.write_atomic(path, note, 0o644)
            _fs.write_atomic(os.path.join(self.graphroot, MARKER), f"pallet-store-format {FORMAT}\n".encode(), 0o644)

    # -- driver ------------------------------------------------------------------------------

    def _open_driver(self):
        marker = os.path.join(self.graphroot, "driver")
        want = self.options.driver
        try:
            with open(marker) as f:  # the common case: the store exists; no lock needed to read it
                recorded = f.read().strip()
            if recorded in DRIVERS and want in ("auto", recorded):
                return DRIVERS[recorded](self.graphroot)
        except FileNotFoundError:
            pass
        with self._lock.exclusive():
            try:
                with open(marker) as f:
                    recorded = f.read().strip()
            except FileNotFoundError:
                recorded = ""
            want = self.options.driver
            if recorded and want not in ("auto", recorded):
                if self._read("layers"):
                    raise StoreError(f"the store at {self.graphroot} uses the {recorded} driver, not {want}: "
                                     f"use --storage-driver {recorded} or another --root")
                recorded = ""
            if not recorded:
                if want == "auto":
                    want = "overlay" if probe_overlay(self.graphroot) else "vfs"
                elif want == "overlay" and not probe_overlay(self.graphroot):
                    raise StoreError(f"the overlay driver does not work on {self.graphroot} "
                                     "(no kernel overlayfs, or the filesystem cannot hold an upper dir): "
                                     "use --storage-driver vfs")
                _fs.write_atomic(marker, want.encode() + b"\n", 0o600)
                recorded = want
        return DRIVERS[recorded](self.graphroot)

    # -- metadata ----------------------------------------------------------------------------

    def _path(self, what: str) -> str:
        return os.path.join(self.graphroot, f"{what}.json")

    def _read(self, what: str) -> dict:
        try:
            with open(self._path(what), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as e:
            raise StoreError(f"{self._path(what)} is corrupt ({e}): run 'pallet system check --repair'") from None
        return doc

    def _load(self) -> _State:
        tok = self._lock.token()
        if self._state is None or tok != self._token:
            self._state = _State(self._read("layers"), self._read("images"), self._read("containers"))
            self._token = tok
        return self._state

    @contextlib.contextmanager
    def read(self):
        """The current records, under the shared store lock. Do not modify them."""
        if self.absent:  # no store there: nothing in it, and nothing to lock
            yield _State({}, {}, {})
            return
        with self._lock.shared():
            yield self._load()

    @contextlib.contextmanager
    def write(self):
        """The records under the exclusive store lock; mark changed tables in ``state.dirty``."""
        if self.absent:
            raise StoreError(f"internal: a read-only open of the store at {self.graphroot} was asked to write")
        with self._lock.exclusive():
            st = self._load()
            st.dirty = set()
            st.after = []
            try:
                yield st
            except BaseException:
                self._state = None  # in-memory changes are void; reload next time
                raise
            if st.dirty:
                for what in sorted(st.dirty):
                    table = getattr(st, what)
                    _fs.write_atomic(self._path(what), json.dumps(table, indent=1, sort_keys=True).encode(), 0o600)
                self._token = self._lock.touch()
            for fn in st.after:
                fn()
            st.after = []

    # -- staging and leftovers ---------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self):
        """A private scratch directory inside the store (same filesystem: renames are atomic)."""
        while True:
            # the lock first, then the directory: another process cleaning leftovers takes a
            # directory without a held lock for a dead one. And if it took our lock file in the
            # moment between our open and our lock (and removed it), the lock we hold is on an
            # unlinked file: try another name.
            path = os.path.join(self.graphroot, "staging", f"{os.getpid()}-{os.urandom(6).hex()}")
            fd = lock_path(path + ".lock")
            try:
                if os.fstat(fd).st_ino == os.stat(path + ".lock").st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            os.mkdir(path, 0o700)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path + ".lock")
            os.close(fd)
            raise
        try:
            yield path
        finally:
            _rmtree(path, ignore_errors=True)
            try:
                os.unlink(path + ".lock")
            except FileNotFoundError:
                pass
            os.close(fd)

    @contextlib.contextmanager
    def owner(self):
        """An owner for containers and mounts that must not outlive this process (a build's
        working containers, its image mounts): a staging entry held for the ``with`` block,
        whose name is the owner. When the process dies, the next open of the store finds the
        entry dead and removes what it owned (see :meth:`_reap`)."""
        with self.staging() as path:
            yield os.path.basename(path)

    def _owner_dead(self, owner: str, dead: set) -> bool:
        """Is ``owner`` (a staging entry name) known dead: found dead by this cleaner, or its lock
        file gone (a cleaner removed it)? A held lock, or one another cleaner holds, is alive."""
        if owner in dead:
            return True
        return not os.path.exists(os.path.join(self.graphroot, "staging", owner + ".lock"))

    def _reap(self, st: "_State", trash: str, dead: set) -> set:
        """Remove the containers and drop the image mounts whose owner is dead (store lock held,
        in a write). Returns the owners whose things could not all go (a mount still busy: a
        process the dead one started still uses it), for a later open to try again."""
        mounts = self._mounts()
        changed = False
        busy: set = set()
        for c in [c for c in st.containers.values() if c.get("owner")]:
            owner = c["owner"]
            if not self._owner_dead(owner, dead):
                continue
            m = mounts.get(f"container-{c['id']}")
            if m and _mount.is_mounted(m["path"]):
                try:
                    _mount.umount(m["path"])
                except OSError:
                    busy.add(owner)
                    continue
            debug(f"removing container {c['id'][:12]}: its owner {owner} is dead")
            try:
                self._remove_container(st, c, trash, mounts)
            except StoreError:  # its mount is busy: not now (this open must not fail for it)
                busy.add(owner)
                continue
            changed = True
        for key, m in list(mounts.items()):
            owners = m.get("owners") or {}
            for owner in [o for o in owners if self._owner_dead(o, dead)]:
                m["count"] -= owners.pop(owner)
                changed = True
            if m.get("owners") is not None and not owners:
                m.pop("owners")
            if m["count"] <= 0 and key.startswith("image-"):
                try:
                    self._unmount_key(mounts, key)
                except StoreError:
                    mounts[key] = m
                    m["count"] = max(m["count"], 0)
                    busy.update(o for o in dead)
        if changed:
            self._save_mounts(mounts)
        return busy

    def _clean_leftovers(self) -> None:
        """Remove what killed processes left behind.

        Every operation that adds or removes layer files holds a staging entry (a directory and
        its lock file) while it runs. An entry whose lock nobody holds belongs to a dead process:
        it is removed, and then (under the store lock) so is every layer directory or link no
        record names, which is what a kill between a rename and a metadata write leaves.
        """
        staging = os.path.join(self.graphroot, "staging")
        try:
            names = os.listdir(staging)
        except FileNotFoundError:
            return
        dead = []
        for name in names:
            if name.endswith(".lock"):
                fd = try_lock_path(os.path.join(staging, name))
                if fd is not None:  # its owner is gone
                    dead.append((name[: -len(".lock")], fd))
            elif not os.path.exists(os.path.join(staging, name + ".lock")):
                dead.append((name, None))
        if not dead:
            return
        try:
            with self.staging() as trash, self.write() as st:
                # what a dead owner had (a killed build's working containers and mounts) goes
                # first; an owner whose mount is still busy keeps its lock file, to try again
                busy = self._reap(st, trash, {name for name, _ in dead})
                for name, fd in dead:
                    _rmtree(os.path.join(staging, name), ignore_errors=True)
                    if fd is not None and name not in busy:
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(staging, name + ".lock"))
                st.after.append(lambda: self._remove_orphans(st))
        finally:
            for _, fd in dead:  # released only now: no other cleaner took them meanwhile
                if fd is not None:
                    os.close(fd)
        for name in os.listdir(self.graphroot):
            if name.startswith(".") and ".tmp-" in name and not _fs.temp_owner_alive(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.graphroot, name))

    def orphans(self, st: "_State") -> list[tuple[str, str]]:
        """(label, path) of layer directories and overlay links no record names."""
        drv = self.driver
        out = []
        for name in os.listdir(drv.home):
            if name not in ("l", "empty") and not name.startswith(".") and name not in st.layers:
                out.append((f"{drv.name}/{name}", os.path.join(drv.home, name)))
        if drv.name == "overlay":
            links = {(r.get("driver") or {}).get("link") for r in st.layers.values()}
            ldir = os.path.join(drv.home, "l")
            out.extend((f"overlay/l/{n}", os.path.join(ldir, n)) for n in os.listdir(ldir) if n not in links)
        return out

    def _remove_orphans(self, st: "_State") -> list[str]:
        """Delete what :meth:`orphans` finds (store lock held)."""
        found = self.orphans(st)
        for _, path in found:
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                _rmtree(path, ignore_errors=True)
        return [label for label, _ in found]

    # -- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        algo, hexpart = digest.split(":", 1)
        if algo != "sha256":
            raise StoreError(f"the store keeps sha256 blobs only, not {algo}")
        return os.path.join(self.graphroot, "blobs", "sha256", hexpart)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_blob_bytes(self, data: bytes, digest: str) -> None:
        """Store a small blob (manifest, config) whose digest the caller verified."""
        path = self.blob_path(digest)
        if not os.path.exists(path):
            _fs.write_atomic(path, data, 0o644)

    def open_blob(self, digest: str):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            from ..errors import BlobNotFound

            raise BlobNotFound(f"blob {digest} is not in the store") from None

    # -- layers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def layer_lock(self, layer_id: str):
        """Held while one process ingests a layer; others wait, then find it present."""
        fd = lock_path(os.path.join(self.runroot, "locks", f"layer-{layer_id}.lock"))
        try:
            yield
        finally:
            os.close(fd)

    def has_layer(self, layer_id: str) -> bool:
        with self.read() as st:
            return layer_id in st.layers

    def ingest_layer(self, stream, *, layer_id: str, parent: str | None, diff_id: str, blob_digest: str | None,
                     media_type: str, compression: str | None) -> dict:
        """Apply a layer blob stream (as pulled) into the store as ``layer_id`` (its chain ID).

        The compressed bytes are kept as a blob while they are decompressed and applied in one
        pass; the diffID must equal ``diff_id``. Call with ``layer_lock(layer_id)`` held.
        Nothing is visible unless it all succeeds.
        """
        return self._ingest(stream, parent=parent, compressed=True, compression=compression, diff_id=diff_id,
                            layer_id=layer_id, blob_digest=blob_digest, media_type=media_type)

    def add_layer_from_tar(self, tar_stream, *, parent: str | None, compression: str = "gzip",
                           media_type: str | None = None) -> dict:
        """A new layer from an uncompressed tar stream (a build step, a commit): it is applied,
        and compressed into the blob kept for pushes, in the same pass. Its ID is the chain ID
        of ``parent`` and the tar's digest; an identical existing layer is reused."""
        from ..oci import mediatype as mt

        return self._ingest(tar_stream, parent=parent, compressed=False, compression=compression,
                            media_type=media_type or mt.layer_type("oci", None if compression == "none" else compression))

    def _ingest(self, source, *, parent: str | None, compressed: bool, compression: str | None, media_type: str,
                diff_id: str | None = None, layer_id: str | None = None, blob_digest: str | None = None) -> dict:
        from ..layer import stream as _stream
        from ..layer.apply import apply_layer

        with self.staging() as staging:
            parent_dir = self.driver.layer_dir(parent) if parent and self.driver.name == "vfs" else None
            target = self.driver.stage(staging, parent_dir)
            blob_tmp = os.path.join(staging, "blob")
            with open(blob_tmp, "wb") as bf:
                opts = self.options  # a decompression bomb fills neither the store nor the disk
                guard = dict(path=staging, what=f"layer {blob_digest or diff_id}" if blob_digest or diff_id else "the new layer",
                             limit=opts.layer_size_limit, reserve=opts.free_space_reserve)
                if compressed:  # keep the bytes as they came, apply what they decompress to
                    sink = _stream.HashingWriter(bf, hash=blob_digest is None)  # a known digest is verified upstream
                    diff = _stream.DiffIDReader(_stream.Tee(source, sink), compression)
                    packer = None
                else:  # apply the tar, keep it compressed
                    sink = _stream.HashingWriter(bf)
                    packer = _stream.CompressingWriter(sink, None if compression == "none" else compression)
                    diff = _stream.DiffIDReader(_stream.Tee(source, packer), "none")
                plain = _stream.SpaceGuard(diff, **guard)
                stats = apply_layer(plain, target, whiteouts=self.driver.whiteouts)
                while plain.read(_stream.CHUNK):  # trailing padding, and the verification at EOF
                    pass
                if packer is not None:
                    packer.close()
                bf.flush()
            if diff_id is not None and diff.digest != diff_id:
                raise DigestMismatch(f"layer {blob_digest or diff_id}: uncompressed content has digest "
                                     f"{diff.digest}, but the image config says {diff_id}")
            diff_id = diff.digest
            if layer_id is None:
                layer_id = _chain_step(parent, diff_id) if parent else diff_id.split(":", 1)[1]
            _mount.syncfs(staging)
            blob_digest = blob_digest or sink.digest
            debug(f"layer {layer_id[:12]}: applied {stats.entries} entries ({stats.bytes} bytes) from {blob_digest}")
            with self.write() as st:
                if layer_id in st.layers:
                    return st.layers[layer_id]
                bpath = self.blob_path(blob_digest)
                if not os.path.exists(bpath):
                    os.rename(blob_tmp, bpath)
                drv = self.driver.install(staging, layer_id)
                rec = {"id": layer_id, "parent": parent, "diff_id": diff_id, "blob": blob_digest,
                       "blob_size": sink.size, "media_type": media_type, "size": stats.bytes,
                       "created": _now(), "driver": drv, "kind": "image"}
                st.layers[layer_id] = rec
                st.dirty.add("layers")
                return rec

    def add_layer_blob(self, stream, *, layer_id: str, diff_id: str, blob_digest: str, compression: str | None) -> None:
        """Keep another blob of a layer the store already has (the same diff as it came from
        another source: a docker-archive's uncompressed tar, another compression), so images
        whose manifests name it can be saved and pushed. The blob's digest is verified upstream;
        what it decompresses to must be the layer's diffID. The layer itself is not touched."""
        from ..layer import stream as _stream

        with self.staging() as staging:
            blob_tmp = os.path.join(staging, "blob")
            with open(blob_tmp, "wb") as bf:
                plain = _stream.Digesting(_stream.open_decompressed(_stream.Tee(stream, bf), compression))
                while plain.read(_stream.CHUNK):
                    pass
                bf.flush()
                os.fsync(bf.fileno())
            if plain.digest != diff_id:
                raise DigestMismatch(f"layer {blob_digest}: uncompressed content has digest {plain.digest}, "
                                     f"but the image config says {diff_id}")
            with self.write() as st:
                if layer_id not in st.layers:
                    raise StoreError(f"layer {layer_id[:12]} was removed while its blob {blob_digest} was "
                                     "being stored; try again")
                bpath = self.blob_path(blob_digest)
                if not os.path.exists(bpath):
                    os.rename(blob_tmp, bpath)

    def layer_chain(self, st: _State, top: str | None) -> list[dict]:
        """Records from ``top`` down to the base (top first); StoreError if one is missing."""
        out = []
        cur = top
        while cur:
            rec = st.layers.get(cur)
            if rec is None:
                raise StoreError(f"layer {cur[:12]} is missing from the store: run 'pallet system check --repair'")
            out.append(rec)
            cur = rec.get("parent")
        return out

    # -- images ------------------------------------------------------------------------------

    def add_image(self, *, config: bytes, config_digest: str, manifest: bytes, manifest_digest: str,
                  media_type: str, layers: list[str], names: list[str], signatures: list[bytes] | None = None,
                  blobs: list[str] | None = None, keep_digest: bool = False) -> dict:
        """Record an image whose layers are all in the store; names move from other images.
        ``signatures`` (simple signing, kept as blobs) replace the manifest's when given.
        ``blobs``: the layer blobs the manifest names (all in the store), kept while the image
        is. ``keep_digest``: an image already stored keeps the manifest it is pushed and saved
        with (a load adds the archive's manifest without replacing the pulled one)."""
        from ..oci import digest as _digest

        self.put_blob_bytes(config, config_digest)
        self.put_blob_bytes(manifest, manifest_digest)
        sig_digests = None
        if signatures is not None:
            sig_digests = []
            for sig in signatures:
                d = _digest.of_bytes(sig)
                self.put_blob_bytes(sig, d)
                sig_digests.append(d)
        image_id = config_digest.split(":", 1)[1]
        try:
            created = json.loads(config).get("created") or _now()
        except ValueError:
            created = _now()
        with self.write() as st:
            for lid in layers:
                if lid not in st.layers:
                    raise StoreError(f"layer {lid[:12]} vanished while the image was being stored; try again")
            for b in blobs or ():
                if not os.path.exists(self.blob_path(b)):
                    raise StoreError(f"blob {b} vanished while the image was being stored; try again")
            known = image_id in st.images
            rec = st.images.get(image_id) or {"id": image_id, "names": [], "digests": [], "manifests": {},
                                              "created": created, "added": _now()}
            rec["config"] = config_digest
            rec["layers"] = list(layers)
            rec["top_layer"] = layers[-1] if layers else None
            if not (keep_digest and known and rec.get("digest") in rec["manifests"]):
                rec["digest"] = manifest_digest
            if blobs:
                rec["blobs"] = sorted(set(rec.get("blobs") or ()) | set(blobs))
            if manifest_digest not in rec["digests"]:
                rec["digests"].append(manifest_digest)
            rec["manifests"][manifest_digest] = media_type
            if sig_digests is not None:
                rec.setdefault("signatures", {})[manifest_digest] = sig_digests
            rec["size"] = sum(st.layers[lid].get("size", 0) for lid in layers)
            for name in names:
                self._move_name(st, name, rec)
            st.images[image_id] = rec
            st.dirty.add("images")
            return rec

    def _move_name(self, st: _State, name: str, rec: dict) -> None:
        for other in st.images.values():
            if other is not rec and name in other["names"]:
                other["names"].remove(name)
        if name not in rec["names"]:
            rec["names"].append(name)

    def lookup_image(self, st: _State, text: str) -> dict:
        """The image record ``text`` names (see names.py), or ImageUnknown."""
        from . import names as _names

        t = text.removeprefix("sha256:") if text.startswith("sha256:") else text
        if len(t) == 64 and t in st.images:
            return st.images[t]
        named, short = _names.candidates(text)
        if named is not None:
            def names_repo(rec) -> bool:  # does the image have a name in this repository?
                if short:
                    return any(_names.name_matches_short(n, (short[0], None, None)) for n in rec["names"])
                return any(_names.split_name(n)[0] == named.name for n in rec["names"])

            if named.digest:
                # by the name it was pulled as (repo@digest: the digest may be an index's), or by a
                # manifest it has in a repository it is named in
                def named_as(rec) -> bool:
                    return any(n.endswith("@" + named.digest) and (
                        _names.name_matches_short(n, (short[0], None, None)) if short
                        else n == f"{named.name}@{named.digest}") for n in rec["names"])

                found = [rec for rec in st.images.values()
                         if named_as(rec) or (named.digest in rec["digests"] and names_repo(rec))]
            else:
                full = str(named)
                found = [rec for rec in st.images.values() if full in rec["names"]]
                if not found and short:
                    found = [rec for rec in st.images.values()
                             if any(_names.name_matches_short(n, short) for n in rec["names"])]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise StoreError(f"{text!r} is ambiguous: it matches images "
                                 + ", ".join(sorted(r["id"][:12] for r in found)))
        if _names.is_id_like(text):
            found = [rec for iid, rec in st.images.items() if iid.startswith(t)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise StoreError(f"image ID prefix {t!r} is ambiguous: use more characters")
        raise ImageUnknown(f"{text}: image not known")

    def image(self, text: str) -> dict:
        with self.read() as st:
            return dict(self.lookup_image(st, text))

    def images(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.images.values()]

    def layers(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.layers.values()]

    def containers(self) -> list[dict]:
        with self.read() as st:
            return [dict(r) for r in st.containers.values()]

    def tag(self, text: str, names: list[str]) -> dict:
        from . import names as _names

        qualified = [str(_names.qualify(n)) for n in names]
        with self.write() as st:
            rec = self.lookup_image(st, text)
            for n in qualified:
                self._move_name(st, n, rec)
            st.dirty.add("images")
            return dict(rec)

    def untag(self, text: str, names: list[str]) -> dict:
        from . import names as _names

        with self.write() as st:
            rec = self.lookup_image(st, text)
            if not names:
                rec["names"] = []
            for n in names:
                q = str(_names.qualify(n))
                if q not in rec["names"]:
                    raise NotFound(f"{n}: tag not known for image {rec['id'][:12]}")
                rec["names"].remove(q)
            st.dirty.add("images")
            return dict(rec)

    def remove_image(self, text: str, force: bool = False, every_name: bool = False) -> tuple[str, list[str], bool]:
        """Remove an image (or, named by one of several names, just that name).

        An image with several names named by ID is refused unless ``force`` or ``every_name``
        (``rmi --all``). Returns (id, untagged names, deleted?)."""
        from . import names as _names

        with self.staging() as trash, self.write() as st:
            rec = self.lookup_image(st, text)
            iid = rec["id"]
            by_name = not (_names.is_id_like(text) and (iid.startswith(text.removeprefix("sha256:"))))
            if by_name and len(rec["names"]) > 1 and not force:
                named, short = _names.candidates(text)
                stored = str(_names.qualify(text)) if named is not None else None
                name = stored if stored in rec["names"] else next(
                    (n for n in rec["names"] if short and _names.name_matches_short(n, short)), None)
                if name:
                    rec["names"].remove(name)
                    st.dirty.add("images")
                    return iid, [name], False
            if not by_name and len(rec["names"]) > 1 and not (force or every_name):
                raise ImageInUse(f"image {iid[:12]} has {len(rec['names'])} names: remove them by name, "
                                 "or use --force")
            mounts = self._mounts()
            untagged = self._drop_image(st, rec, trash, mounts, force, text)
            self._save_mounts(mounts)
            self._gc(st, trash)
        return iid, untagged, True

    def _drop_image(self, st: _State, rec: dict, trash: str, mounts: dict, force: bool, text: str) -> list[str]:
        """Remove the image ``rec`` (under the write lock; the caller saves ``mounts`` and collects
        garbage); without ``force`` an image a container uses or a mount holds is refused."""
        iid = rec["id"]
        users = [c for c in st.containers.values() if c["image"] == iid]
        mounted = mounts.get(f"image-{iid}")
        if mounted and not _mount.is_mounted(mounted["path"]):
            mounted = None
        if not force:
            if users:
                raise ImageInUse(f"image {iid[:12]} is in use by container "
                                 f"{users[0]['names'][0] if users[0]['names'] else users[0]['id'][:12]}: "
                                 "remove the container first, or use --force")
            if mounted:
                raise ImageInUse(f"image {iid[:12]} is mounted at {mounted['path']}: "
                                 f"run 'pallet image umount {text}' first, or use --force")
        for c in users:
            self._remove_container(st, c, trash, mounts)
        if mounted:
            self._unmount_key(mounts, f"image-{iid}")
        untagged = list(rec["names"])
        del st.images[iid]
        st.dirty.add("images")
        return untagged

    def prune_images(self, select) -> list[str]:
        """Remove, under one hold of the write lock, the images ``select(images, in_use)`` picks
        (``images``: the records; ``in_use``: IDs a container uses or a mount holds), round after
        round while a round removed something; returns the IDs removed. Deciding and removing
        under the same lock is what keeps a concurrent build's image, or its working container,
        from going between the two (``image prune`` racing ``build``)."""
        removed: list[str] = []
        if self.absent:
            return removed
        with self.staging() as trash, self.write() as st:
            mounts = self._mounts()
            while True:
                in_use = {c["image"] for c in st.containers.values()}
                in_use.update(m.get("image") for k, m in mounts.items()
                              if k.startswith("image-") and _mount.is_mounted(m["path"]))
                batch = [iid for iid in select(list(st.images.values()), in_use) if iid in st.images
                         and iid not in in_use]
                if not batch:
                    break
                for iid in batch:
                    self._drop_image(st, st.images[iid], trash, mounts, False, iid)
                    removed.append(iid)
            if removed:
                self._save_mounts(mounts)
                self._gc(st, trash)
        return removed

    def _gc(self, st: _State, trash: str) -> None:
        """Remove layers no image or container needs, and blobs nothing refers to."""
        keep: set[str] = set()
        for rec in st.images.values():
            keep.update(rec.get("layers") or [])
        for c in st.containers.values():
            keep.add(c["layer"])
            keep.update(r["id"] for r in self.layer_chain(st, st.layers.get(c["layer"], {}).get("parent")))
        for lid in [lid for lid in st.layers if lid not in keep]:
            del st.layers[lid]
            st.dirty.add("layers")
            st.after.append(lambda lid=lid: self.driver.remove(lid, trash))
        blobs: set[str] = set()
        for rec in st.images.values():
            blobs.add(rec["config"])
            blobs.update(rec["digests"])
            blobs.update(rec.get("blobs") or ())
            for sigs in (rec.get("signatures") or {}).values():
                blobs.update(sigs)
        for layer in st.layers.values():
            if layer.get("blob"):
                blobs.add(layer["blob"])
        bdir = os.path.join(self.graphroot, "blobs", "sha256")

        def drop_blobs():
            for hexpart in os.listdir(bdir):
                if "sha256:" + hexpart not in blobs and not hexpart.startswith("."):
                    os.rename(os.path.join(bdir, hexpart), os.path.join(trash, "blob-" + hexpart))

        st.after.append(drop_blobs)

    # -- mounts ------------------------------------------------------------------------------

    def _mounts(self) -> dict:
        try:
            with open(os.path.join(self.runroot, "mounts.json"), "rb") as f:
                doc = json.loads(f.read())
            return doc if isinstance(doc, dict) else {}
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # rebuilt from what is really mounted

    def _save_mounts(self, mounts: dict) -> None:
        _fs.write_atomic(os.path.join(self.runroot, "mounts.json"), json.dumps(mounts, indent=1).encode(), 0o600)

    def _unmount_key(self, mounts: dict, key: str) -> None:
        m = mounts.pop(key, None)
        if m and _mount.is_mounted(m["path"]):
            try:
                _mount.umount(m["path"])
            except OSError as e:
                raise StoreError(f"unmounting {m['path']}: {e.strerror} (is a process using it?)") from None
        if m:
            with contextlib.suppress(OSError):
                os.rmdir(m["path"])

    def mount_image(self, text: str, owner: str | None = None) -> str:
        """Mount an image's root filesystem read-only (nodev, nosuid); counted across processes.
        ``owner`` (from :meth:`owner`): its references are dropped when that process dies."""
        with self.write() as st:
            rec = self.lookup_image(st, text)
            key = f"image-{rec['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            path = os.path.join(self.graphroot, "mounts", rec["id"])
            if m and _mount.is_mounted(m["path"]):
                m["count"] += 1
            elif _mount.is_mounted(path):  # mounted by a process killed before it counted
                m = mounts[key] = {"path": path, "count": 1, "image": rec["id"]}
            else:
                os.makedirs(path, 0o755, exist_ok=True)
                chain = self.layer_chain(st, rec.get("top_layer"))
                # counted (with its owner) before it is made: a process killed in between leaves
                # a count for a mount that is not there, which is seen as stale, never a mount
                # nobody knows of
                m = mounts[key] = {"path": path, "count": 1, "image": rec["id"]}
                if owner:
                    m["owners"] = {owner: 1}
                self._save_mounts(mounts)
                owner = None
                try:
                    if chain:
                        self.driver.mount(chain, path)
                    else:  # an image with no layers: an empty, read-only tree
                        _mount.mount("tmpfs", path, "tmpfs", _mount.MS_RDONLY | _mount.MS_NODEV | _mount.MS_NOSUID,
                                     "size=4k,mode=755")
                except BaseException:
                    mounts.pop(key, None)
                    self._save_mounts(mounts)
                    raise
            if owner:
                owners = m.setdefault("owners", {})
                owners[owner] = owners.get(owner, 0) + 1
            self._save_mounts(mounts)
            return m["path"]

    def umount_image(self, text: str, force: bool = False, owner: str | None = None) -> bool:
        """Drop one mount reference (all with ``force``); unmounts at zero. True if unmounted."""
        with self.write() as st:
            rec = self.lookup_image(st, text)
            key = f"image-{rec['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            if not m:
                raise StoreError(f"image {text} is not mounted")
            owners = m.get("owners") or {}
            if owner in owners:
                owners[owner] -= 1
                if owners[owner] <= 0:
                    del owners[owner]
            m["count"] -= 1
            done = force or m["count"] <= 0 or not _mount.is_mounted(m["path"])
            if done:
                self._unmount_key(mounts, key)
            self._save_mounts(mounts)
            return done

    def mounted_images(self) -> list[tuple[dict, str, int]]:
        with self.read() as st:
            out = []
            for key, m in self._mounts().items():
                if key.startswith("image-") and m.get("image") in st.images and _mount.is_mounted(m["path"]):
                    out.append((dict(st.images[m["image"]]), m["path"], m["count"]))
            return out

    # -- containers --------------------------------------------------------------------------

    def create_container(self, image: str | None, name: str | None = None, kind: str = "container",
                         metadata: dict | None = None, owner: str | None = None) -> dict:
        """A container: a writable layer on an image (None: on nothing, like ``scratch``).
        ``owner`` (from :meth:`owner`): the container goes when that owner's process dies."""
        cid = os.urandom(32).hex()
        with self.staging() as staging:
            with self.read() as st:
                rec = self.lookup_image(st, image) if image else None
                top = rec.get("top_layer") if rec else None
                parent_dir = self.driver.layer_dir(top) if top and self.driver.name == "vfs" else None
                self.driver.stage(staging, parent_dir)
            with self.write() as st:
                if name and any(name in c["names"] for c in st.containers.values()):
                    raise StoreError(f"the container name {name!r} is already in use")
                if rec and rec["id"] not in st.images:
                    raise ImageUnknown(f"{image}: image was removed meanwhile")
                drv = self.driver.install(staging, cid)
                st.layers[cid] = {"id": cid, "parent": top, "diff_id": None, "blob": None, "size": 0,
                                  "created": _now(), "driver": drv, "kind": "container"}
                c = {"id": cid, "names": [name] if name else [], "image": rec["id"] if rec else None,
                     "layer": cid, "created": _now(), "kind": kind, "metadata": metadata or {}}
                if owner:
                    c["owner"] = owner
                st.containers[cid] = c
                st.dirty.update(("layers", "containers"))
                return dict(c)

    def lookup_container(self, st: _State, text: str) -> dict:
        for c in st.containers.values():
            if text in c["names"] or c["id"] == text:
                return c
        found = [c for c in st.containers.values() if len(text) >= 3 and c["id"].startswith(text)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"{text}: no such container")

    def container(self, text: str) -> dict:
        with self.read() as st:
            return dict(self.lookup_container(st, text))

    def update_container(self, text: str, **changes) -> dict:
        with self.write() as st:
            c = self.lookup_container(st, text)
            c.update(changes)
            st.dirty.add("containers")
            return dict(c)

    def mount_container(self, text: str) -> str:
        with self.write() as st:
            c = self.lookup_container(st, text)
            key = f"container-{c['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            path = self._container_mount_path(c)
            if m and _mount.is_mounted(m["path"]):
                m["count"] += 1
            elif _mount.is_mounted(path):  # mounted by a process killed before it counted
                m = mounts[key] = {"path": path, "count": 1, "container": c["id"]}
            else:
                os.makedirs(path, 0o755, exist_ok=True)
                layer = st.layers[c["layer"]]
                chain = self.layer_chain(st, layer.get("parent"))
                m = mounts[key] = {"path": path, "count": 1, "container": c["id"]}
                self._save_mounts(mounts)  # counted before it is made (see mount_image)
                try:
                    self.driver.mount(chain, path, writable=layer)
                except BaseException:
                    mounts.pop(key, None)
                    self._save_mounts(mounts)
                    raise
            self._save_mounts(mounts)
            return m["path"]

    def _container_mount_path(self, c: dict) -> str:
        return os.path.join(self.driver.layer_dir(c["layer"]), "merged") if self.driver.name == "overlay" \
            else os.path.join(self.graphroot, "mounts", c["id"])

    def umount_container(self, text: str, force: bool = False) -> bool:
        with self.write() as st:
            c = self.lookup_container(st, text)
            key = f"container-{c['id']}"
            mounts = self._mounts()
            m = mounts.get(key)
            if not m:
                return True
            m["count"] -= 1
            done = force or m["count"] <= 0
            if done:
                self._unmount_key(mounts, key)
            self._save_mounts(mounts)
            return done

    def container_mountpoint(self, text: str) -> str | None:
        with self.read() as st:
            c = self.lookup_container(st, text)
            m = self._mounts().get(f"container-{c['id']}")
            return m["path"] if m and _mount.is_mounted(m["path"]) else None

    def remove_container(self, text: str) -> str:
        with self.staging() as trash, self.write() as st:
            c = self.lookup_container(st, text)
            mounts = self._mounts()
            self._remove_container(st, c, trash, mounts)
            self._save_mounts(mounts)
        return c["id"]

    def _remove_container(self, st: _State, c: dict, trash: str, mounts: dict) -> None:
        self._unmount_key(mounts, f"container-{c['id']}")
        path = self._container_mount_path(c)
        if _mount.is_mounted(path):  # mounted, never counted: its process was killed in between
            try:
                _mount.umount(path)
            except OSError as e:
                raise StoreError(f"unmounting {path}: {e.strerror} (is a process using it?)") from None
        del st.containers[c["id"]]
        st.layers.pop(c["layer"], None)
        st.after.append(lambda: self.driver.remove(c["layer"], trash))
        st.dirty.update(("layers", "containers"))

    def container_diff_dir(self, text: str) -> str:
        with self.read() as st:
            c = self.lookup_container(st, text)
            return self.driver.diff_dir(c["layer"])
