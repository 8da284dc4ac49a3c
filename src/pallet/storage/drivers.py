"""Layer drivers: how a layer's files sit on disk and how a stack of layers is mounted.

``overlay`` keeps each layer's own files in ``overlay/ID/diff`` (whiteouts in overlay's
format: 0/0 character devices and the opaque xattr) and stacks them with kernel overlayfs
(a layer whose root is opaque ends the stack: the kernel ignores that xattr on a layer root);
``l/SHORT`` symlinks keep the lowerdir list short so images with many layers fit the mount
data limit (one page). ``vfs`` keeps a full copy of the root filesystem per layer and
mounts by bind mount: slower and bigger, but it works anywhere.
"""

from __future__ import annotations

import errno
import os

from ..errors import StoreError
from . import _mount

_PAGE = 4096
#: what apply_layer(whiteouts="overlay") marks opaque directories with
OPAQUE_XATTR = "trusted.overlay.opaque"
#: the same in a rootless store: overlay mounted in a user namespace reads ``user.overlay.*``
#: (its ``userxattr`` option, Linux 5.11 on), since ``trusted.*`` needs the host's CAP_SYS_ADMIN
USER_OPAQUE_XATTR = "user.overlay.opaque"


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _short_id() -> str:
    """26 base32 characters of 16 random bytes (``base64.b32encode``'s first 26, by hand:
    ``base64`` imports ``re``)."""
    n = int.from_bytes(os.urandom(16), "big") << 2  # 128 bits, padded to 130 = 26 x 5
    return "".join(_B32[(n >> (5 * i)) & 31] for i in range(25, -1, -1))


class Driver:
    name = ""
    #: whiteout format apply_layer must write
    whiteouts = "apply"
    #: the xattr marking an opaque directory in a layer (overlay)
    opaque_xattr = OPAQUE_XATTR

    def __init__(self, graphroot: str):
        self.graphroot = graphroot
        self.home = os.path.join(graphroot, self.name)
        os.makedirs(self.home, exist_ok=True)

    def layer_dir(self, layer_id: str) -> str:
        return os.path.join(self.home, layer_id)

    def stage(self, staging: str, parent_dir: str | None) -> str:
        """Prepare ``staging`` for a new layer on top of the layer at ``parent_dir``; returns the
        directory the layer's tar must be applied into."""
        raise NotImplementedError

    def install(self, staging: str, layer_id: str) -> dict:
        """Move a staged layer into place (the caller holds the store lock). Returns driver data."""
        raise NotImplementedError

    #: does a layer's ``./`` entry set its root's mode? containers/storage's vfs driver: yes;
    #: its overlay driver: no (measured with podman 4.3.1: a ``./`` entry of 0750 leaves 0555)
    root_entry_sets_mode = False

    def root_mode(self, parent: str | None) -> int:
        """The mode of a new layer's root directory (unless its ``./`` entry sets it, for the
        drivers where it does), as containers/storage's drivers make it: its parent layer's root
        mode, 0555 for a base layer. A container's own layer takes its image's top layer's the
        same way. Seen inside the container: ``stat -c %a /`` is 555, as in podman's."""
        if parent is None:
            return DEFAULT_ROOT_MODE
        try:
            return os.stat(self.diff_dir(parent)).st_mode & 0o7777
        except FileNotFoundError:
            return DEFAULT_ROOT_MODE

    def remove(self, layer_id: str, trash: str) -> None:
        """Take a layer's files out of the store (renamed into ``trash``, deleted later)."""
        d = self.layer_dir(layer_id)
        if os.path.lexists(d):
            os.rename(d, os.path.join(trash, f"{self.name}-{layer_id}-{os.urandom(4).hex()}"))

    def mount(self, chain: list[dict], target: str, writable: dict | None = None, idmap: dict | None = None,
              volatile: bool = False) -> None:
        """``volatile``: the container's writes need not survive a crash (a ``run --rm``): overlay
        then skips syncing its upper directory (at unmount too), as containers/storage does for
        podman's ``--rm`` containers."""
        raise NotImplementedError

    def diff_dir(self, layer_id: str) -> str:
        """The directory holding what this layer itself changed (overlay) or its whole tree (vfs)."""
        raise NotImplementedError


#: containers/storage's ``defaultPerms``: a base layer's root when its tar does not set one
DEFAULT_ROOT_MODE = 0o555


class OverlayDriver(Driver):
    name = "overlay"
    whiteouts = "overlay"

    def __init__(self, graphroot: str):
        from .._userns import rootless_uid

        super().__init__(graphroot)
        #: pallet runs rootless, in its user namespace: overlay's user.* xattrs (see USER_OPAQUE_XATTR)
        self.rootless = rootless_uid() is not None
        if self.rootless:
            self.opaque_xattr = USER_OPAQUE_XATTR
        os.makedirs(os.path.join(self.home, "l"), exist_ok=True)
        self._empty = os.path.join(self.home, "empty")
        os.makedirs(self._empty, exist_ok=True)

    def stage(self, staging: str, parent_dir: str | None) -> str:
        diff = os.path.join(staging, "diff")
        os.mkdir(diff, 0o755)
        return diff

    def install(self, staging: str, layer_id: str) -> dict:
        short = _short_id()
        with open(os.path.join(staging, "link"), "w") as f:
            f.write(short)
        dest = self.layer_dir(layer_id)
        os.rename(staging, dest)
        link = os.path.join(self.home, "l", short)
        os.symlink(f"../{layer_id}/diff", link)
        return {"link": short}

    def remove(self, layer_id: str, trash: str) -> None:
        try:
            with open(os.path.join(self.layer_dir(layer_id), "link")) as f:
                short = f.read().strip()
            if short and "/" not in short:
                os.unlink(os.path.join(self.home, "l", short))
        except FileNotFoundError:
            pass
        if self.rootless:
            from .idmapped import remove_chowned

            remove_chowned(self.home, layer_id, trash)
        super().remove(layer_id, trash)

    def diff_dir(self, layer_id: str) -> str:
        return os.path.join(self.layer_dir(layer_id), "diff")

    def root_opaque(self, layer_id: str) -> bool:
        """Is the layer's root directory opaque (it replaces everything below it)?"""
        try:
            return os.getxattr(self.diff_dir(layer_id), self.opaque_xattr) == b"y"
        except OSError:
            return False

    def mount(self, chain: list[dict], target: str, writable: dict | None = None, idmap: dict | None = None,
              volatile: bool = False) -> None:
        """Mount ``chain`` (layer records, top first) at ``target``; read-only unless ``writable``
        (a container layer record) is given, whose diff becomes the upper dir (``volatile``: with
        overlay's ``volatile`` option, kernel 5.10 on; mounted without it where it is refused).
        ``idmap`` (``{"uid": [[container, host, size], ...], "gid": ...}``, with ``writable``): the
        lower layers id-mapped to it (``idmapped``), for a container in a user namespace."""
        lowers = []
        for rec in chain:
            lowers.append(f"l/{rec['driver']['link']}")
            if self.root_opaque(rec["id"]):
                # the kernel honours the opaque xattr on directories inside a lower layer, not on
                # a layer's root: a layer whose root is opaque (".wh..wh..opq" at the top of its
                # tar) hides the layers below it by leaving them out of the mount
                break
        # a container's root keeps setuid (containers-storage's "nodev" only: `su`, `ping`,
        # Kubernetes' allowPrivilegeEscalation); a read-only image mount is nosuid too
        flags = _mount.MS_NODEV
        if writable is None:
            flags |= _mount.MS_RDONLY | _mount.MS_NOSUID
            if len(lowers) == 1:  # overlayfs wants two lowers when there is no upper dir
                lowers.append(os.path.relpath(self._empty, self.home))
            data = "lowerdir=" + ":".join(lowers)
        else:
            if not lowers:
                lowers = [os.path.relpath(self._empty, self.home)]
            wdir = self.layer_dir(writable["id"])
            os.makedirs(os.path.join(wdir, "work"), exist_ok=True)
            # a volatile mount leaves work/work/incompat/volatile, and overlay refuses the work
            # directory again while it is there (containers/storage removes it the same way)
            from .._fs import rmtree

            rmtree(os.path.join(wdir, "work", "work", "incompat", "volatile"))
            data = (f"lowerdir={':'.join(lowers)},upperdir={wdir}/diff,workdir={wdir}/work")
        if idmap and writable is not None and self.rootless:
            # rootless: the kernel will not id-map the host's filesystem for us; chowned copies
            from . import idmapped

            rel = idmapped.chowned_lowers(self.home, lowers, idmap)
            data = data.replace("lowerdir=" + ":".join(lowers), "lowerdir=" + ":".join(rel))
            self._mount(target, flags, data, len(chain), volatile=volatile)
            return
        if idmap and writable is not None:
            from . import idmapped

            scratch = os.path.join(self.layer_dir(writable["id"]), "idmapped")
            with idmapped.mapped_lowers([os.path.join(self.home, lw) for lw in lowers], scratch, idmap) as paths:
                rel = [os.path.relpath(p, self.home) for p in paths]
                try:
                    self._mount(target, flags, data.replace("lowerdir=" + ":".join(lowers),
                                                            "lowerdir=" + ":".join(rel)), len(chain),
                                volatile=volatile)
                except StoreError as e:
                    raise StoreError(f"{e} (overlayfs takes id-mapped layers from Linux 5.19: a user "
                                     "namespace's chowned copy of the image is not supported yet)") from None
            return
        self._mount(target, flags, data, len(chain), volatile=writable is not None and volatile)

    def _mount(self, target, flags, data, layers, volatile=False):
        if self.rootless:
            data += ",userxattr"
        if len(data) >= _PAGE:
            raise StoreError(f"too many layers to mount ({layers}): the overlay mount data exceeds a page")
        try:
            if volatile:
                try:
                    _mount.mount("overlay", target, "overlay", flags, data + ",volatile", cwd=self.home)
                    return
                except OSError as e:
                    if e.errno != errno.EINVAL:  # EINVAL: a kernel without it; mounted without
                        raise
            _mount.mount("overlay", target, "overlay", flags, data, cwd=self.home)
        except OSError as e:
            raise StoreError(f"mounting overlay at {target}: {e.strerror}") from None


class VfsDriver(Driver):
    name = "vfs"
    root_entry_sets_mode = True

    def stage(self, staging: str, parent_dir: str | None) -> str:
        root = os.path.join(staging, "root")
        if parent_dir is None:
            os.mkdir(root, 0o755)
        else:
            # a full copy of the parent: reflinks where the filesystem has them
            import subprocess

            p = subprocess.run(["cp", "-a", "--reflink=auto", parent_dir, root], capture_output=True, text=True)
            if p.returncode != 0:
                raise StoreError(f"copying layer {parent_dir}: {p.stderr.strip()}")
        return root

    def install(self, staging: str, layer_id: str) -> dict:
        os.rename(os.path.join(staging, "root"), self.layer_dir(layer_id))
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        return {}

    def diff_dir(self, layer_id: str) -> str:
        return self.layer_dir(layer_id)

    def mount(self, chain: list[dict], target: str, writable: dict | None = None, idmap: dict | None = None,
              volatile: bool = False) -> None:
        if idmap:
            raise StoreError("user namespaces need the overlay driver (id-mapped layers): the vfs driver's "
                             "chowned copies are not supported yet")
        src = self.layer_dir(writable["id"] if writable else chain[0]["id"])
        flags = _mount.MS_NODEV | (0 if writable else _mount.MS_NOSUID)  # as the overlay driver
        try:
            _mount.mount(src, target, None, _mount.MS_BIND)
            ro = 0 if writable else _mount.MS_RDONLY
            _mount.mount("none", target, None, _mount.MS_BIND | _mount.MS_REMOUNT | flags | ro)
        except OSError as e:
            try:
                _mount.umount(target, detach=True)
            except OSError:
                pass
            raise StoreError(f"bind-mounting layer at {target}: {e.strerror}") from None


def probe_overlay(graphroot: str) -> bool:
    """Can we stack overlay layers on this filesystem? Tries a real mount in a scratch dir."""
    import shutil
    import subprocess

    if not _mount.overlay_supported():
        subprocess.run(["modprobe", "overlay"], capture_output=True)
    probe = os.path.join(graphroot, f".probe-{os.urandom(4).hex()}")
    try:
        for d in ("l1", "l2", "up", "work", "merged"):
            os.makedirs(os.path.join(probe, d))
        data = f"lowerdir={probe}/l1:{probe}/l2,upperdir={probe}/up,workdir={probe}/work"
        from .._userns import rootless_uid

        if rootless_uid() is not None:  # in a user namespace: Linux 5.11 on, with user.* xattrs
            data += ",userxattr"
        _mount.mount("overlay", os.path.join(probe, "merged"), "overlay", 0, data)
        _mount.umount(os.path.join(probe, "merged"))
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


DRIVERS = {"overlay": OverlayDriver, "vfs": VfsDriver}
