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

from .._std import json
from .. import _fs
from .._log import debug
from ..errors import PalletError, StoreError
from . import _mount
from .containerstore import ContainerStore
from .drivers import DRIVERS, probe_overlay
from .imagestore import ImageStore
from .layerstore import LayerStore
from .lock import FileLock, lock_path, try_lock_path
from .mountstore import MountStore
from .options import StoreOptions, resolve
from .records import ImageInUse, ImageUnknown, chain_ids, manifest_layer_blobs  # noqa: F401  (the store's API)
from .records import State as _State
from .records import rmtree as _rmtree


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


class Store(LayerStore, ImageStore, MountStore, ContainerStore):
    """One local store. Cheap to open; every operation takes the locks it needs.

    This class opens the store (format marker, driver, records and their lock, staging,
    leftovers of dead processes); its operations come from one part per concern:
    :class:`LayerStore` (blobs, layers), :class:`ImageStore` (images, names, prune),
    :class:`MountStore` (image mounts), :class:`ContainerStore` (containers).

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
        # pallet's named volumes (GRAPHROOT/volumes) may come before the store: `volume create` on a
        # new root makes only them (a podman root has its libpod/ and locks beside them: foreign)
        names = [n for n in names if not (n == "volumes" and os.path.isdir(os.path.join(root, n))
                                          and not os.path.islink(os.path.join(root, n)))]
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
                for what in sorted(st.dirty):  # each file flushed; their directory once, after
                    table = getattr(st, what)
                    _fs.write_atomic(self._path(what), json.dumps(table, separators=(",", ":"), sort_keys=True).encode(),
                                     0o600, sync_dir=False)
                _fs.fsync_dir(self.graphroot)
                self._token = self._lock.touch()
            for fn in st.after:
                fn()
            st.after = []

    # -- staging and leftovers ---------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self):
        """A private scratch directory inside the store (same filesystem: renames are atomic)."""
        path, fd = _fs.locked_scratch_name(os.path.join(self.graphroot, "staging"), lock_path)
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
        entry dead and removes what it owned (see :meth:`_reap`). Left by an exception (an
        interrupt can come between the store writing a container and its maker knowing it),
        what it still owns is removed on the way out; what cannot go yet (a mount still busy)
        is left to the next open, which finds the owner dead."""
        name = None
        try:
            with self.staging() as path:
                name = os.path.basename(path)
                yield name
        except BaseException:
            if name is not None:
                self._release_owner(name)
            raise

    def _release_owner(self, name: str) -> None:
        """Remove what the (finished) owner ``name`` still owns; if something cannot go, its
        lock file stays, unlocked, for the next open of the store to find dead and reap."""
        try:
            with self.staging() as trash, self.write() as st:
                busy = self._reap(st, trash, {name})
        except (OSError, PalletError) as e:
            debug(f"removing what {name} owned: {e}")
            busy = {name}
        if busy:
            with contextlib.suppress(OSError):
                os.close(os.open(os.path.join(self.graphroot, "staging", name + ".lock"),
                                 os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))

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
                    # a dead process's staging may hold mounts (a scan's temporary store mounts
                    # its image there): unmounted first, deepest first, never removed through
                    for m in sorted(_mount.mounts_under(os.path.join(staging, name)), key=len, reverse=True):
                        with contextlib.suppress(OSError):
                            _mount.umount(m, detach=True)
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














































