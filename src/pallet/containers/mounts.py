"""A container's volumes: named ones (``-v NAME:/PATH``, ``--mount type=volume,src=NAME``, made
when missing, as podman does), anonymous ones (``-v /PATH``, ``--mount type=volume`` without
``src``, and the image's ``VOLUME``s no other mount covers) -- their names (64 random hex digits)
are chosen before the container's record is written, so the record names them.

The container is recorded as a user of each (``volume rm`` refuses them) at create; ``start``
mounts the ones with ``-o`` options (``Volumes.mount``) and teardown lets them go; ``rm`` drops
the container as a user and, with ``-v`` (and ``run --rm``), removes its anonymous volumes.

Copy-up (podman's): the first time a volume is mounted into a container, when it is empty, it is
filled with what the image has at the mount point (owners, modes, links, xattrs: ``cp -a``), and
takes that directory's owner and mode. The image's directory is opened by fd inside the rootfs
(``pallet._rootfs``: a symlinked path cannot point the copy at a host directory).
"""

from __future__ import annotations

import os

from ..errors import VolumeInUse, VolumeNotFound


def add_image_volumes(meta: dict, img_cfg: dict) -> None:
    """The image's ``Volumes`` no bind, volume or tmpfs covers become anonymous volumes; every
    volume without a name gets one, and its ``source`` (the volume's ``_data``)."""
    from ..errors import UsageError

    taken: set = set()
    for key in ("binds", "tmpfs"):  # the same mount given twice is one mount (podman's)
        unique = []
        for m in meta[key]:
            if m not in unique:
                unique.append(m)
        meta[key] = unique
    for m in list(meta["binds"]) + list(meta["tmpfs"]):
        dst = os.path.normpath(m["destination"])
        if dst in taken:
            raise UsageError(f"{dst}: duplicate mount destination")
        taken.add(dst)
    vols = img_cfg.get("Volumes") if isinstance(img_cfg.get("Volumes"), dict) else {}
    for dst in sorted(vols):
        # a relative one is below / (podman's: the runtime puts it there), so buildah's
        # VOLUME ['/a', '/b'] (shell words [/a, and /b]) is at /[/a, and /b]; never / itself
        norm = os.path.normpath("/" + dst.lstrip("/")) if isinstance(dst, str) else "/"
        if norm != "/" and "\0" not in norm and norm not in taken:
            meta["binds"].append({"volume": None, "destination": norm, "readonly": False})
            taken.add(norm)
    for b in meta["binds"]:
        if "volume" in b and b["volume"] is None:
            b["volume"] = os.urandom(32).hex()
            b["anonymous"] = True


def parse_volumes_from(text: str) -> tuple[str, bool | None]:
    """``--volumes-from CTR[:OPTS]``, OPTS a comma list of ``ro``/``rw`` (once) and ``z``
    (once), podman's checks and words: ``(container, read-only)``, read-only None when
    neither ``ro`` nor ``rw`` is given (each mount keeps the source container's). ``z`` is
    accepted (SELinux relabelling: nothing to do here); alone it keeps the source's
    read-only mounts read-only (podman's drops their ``ro``)."""
    from ..errors import UsageError

    name, sep, opts = text.partition(":")
    if not name or "\0" in text:
        raise UsageError(f"invalid --volumes-from {text!r}: want CONTAINER[:ro|rw|z]")
    readonly = None
    if sep:
        seen_z = seen_rorw = False
        for opt in opts.split(","):
            if opt == "z":
                if seen_z:
                    raise UsageError("cannot set :z more than once in mount options")
                seen_z = True
            elif opt in ("ro", "rw"):
                if seen_rorw:
                    raise UsageError("cannot set ro or rw options more than once")
                seen_rorw, readonly = True, opt == "ro"
            else:
                raise UsageError(f"invalid option {_go_quote(opt)} specified - volumes from another container can "
                                 "only use z,ro,rw options")
    return name, readonly


def _go_quote(text: str) -> str:
    from .._std import json

    return json.dumps(text)


def add_volumes_from(get, specs, meta: dict) -> None:
    """``--volumes-from``: each container's (``get(name)``: its record) host binds and volumes
    (named, anonymous, its image's, its own ``--volumes-from``) at the same destinations, as
    podman gives them: a later container's over an earlier one's, the container's own ``-v``,
    ``--mount`` and ``--tmpfs`` over both, and they over the image's ``VOLUME``s (which
    ``add_image_volumes`` adds after). The volumes are shared, not copied: ``rm -v`` of either
    container leaves an anonymous one another container still uses."""
    if not specs:
        return
    import copy

    from ..errors import ContainerNotFound

    found: dict = {}
    for text in specs:
        name, readonly = parse_volumes_from(text)
        try:
            rec = get(name)
        except ContainerNotFound as e:
            raise ContainerNotFound(f"looking up container \"{name}\" for volumes-from: {e}") from None
        for b in (rec.get("metadata") or {}).get("pallet", {}).get("binds") or ():
            if not isinstance(b, dict) or not isinstance(b.get("destination"), str):
                continue
            m = copy.deepcopy(b)
            if readonly is not None:
                m["readonly"] = readonly
            found[os.path.normpath(m["destination"])] = m
    own = {os.path.normpath(m["destination"]) for m in list(meta["binds"]) + list(meta["tmpfs"])}
    meta["binds"] += [m for dst, m in found.items() if dst not in own]


def _volumes(store):
    from .volumes import Volumes

    return Volumes(store.graphroot)


def set_sources(store, meta: dict) -> None:
    vols = _volumes(store)
    for b in meta["binds"]:
        if "volume" in b:
            b["source"] = vols.mountpoint(b["volume"])


def claim(store, cid: str, meta: dict) -> None:
    """Make the missing volumes and record the container as their user."""
    vols = _volumes(store)
    for b in meta["binds"]:
        if "volume" not in b:
            continue
        try:
            vols.get(b["volume"])
        except VolumeNotFound:
            vols.create(b["volume"], ignore=True)
        vols.add_user(b["volume"], cid)


def release(store, cid: str, meta: dict, remove_anonymous: bool) -> list[str]:
    """Drop the container as a user (and remove its anonymous volumes when asked); the errors."""
    from ..errors import PalletError

    vols = _volumes(store)
    errors = []
    for b in meta.get("binds", ()):
        if "volume" not in b:
            continue
        try:
            vols.remove_user(b["volume"], cid)
            if remove_anonymous and b.get("anonymous"):
                vols.remove(b["volume"])
        except (VolumeNotFound, VolumeInUse):  # another container's too (--volumes-from): it stays
            pass
        except PalletError as e:
            errors.append(str(e))
    return errors


def mount_all(store, meta: dict) -> list[str]:
    """``Volumes.mount`` each (mounting those with ``-o`` options); the names mounted."""
    vols = _volumes(store)
    done = []
    try:
        for b in meta["binds"]:
            if "volume" in b:
                vols.mount(b["volume"])
                done.append(b["volume"])
    except BaseException:
        unmount_all(store, done)
        raise
    return done


def first_use_owner(store, rootfs: str, meta: dict, owner: tuple[int, int]) -> None:
    """podman's NeedsChown: the first container to mount a named volume gives its data
    directory to the owner and mode the image has at the mount point (resolved by fd in the
    rootfs), else to the container's user (``owner``: host ids); volumes made with ``-o
    uid=/gid=`` keep theirs."""
    import stat

    from .. import _rootfs
    from ..errors import ContainerError

    vols = _volumes(store)
    for b in meta["binds"]:
        if "volume" not in b or not vols.chowned(b["volume"]):
            continue
        data = vols.mountpoint(b["volume"])
        root_fd = _rootfs.open_root(rootfs)
        try:
            try:
                fd = _rootfs.open_in_root(root_fd, b["destination"], os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                fd = None
            try:
                st = os.fstat(fd) if fd is not None else None
                os.chown(data, *((st.st_uid, st.st_gid) if st is not None else owner), follow_symlinks=False)
                if st is not None:
                    os.chmod(data, stat.S_IMODE(st.st_mode))
            except OSError as e:
                raise ContainerError(f"volume {b['volume']}: setting its owner: {e.strerror}") from None
            finally:
                if fd is not None:
                    os.close(fd)
        finally:
            os.close(root_fd)


def copy_up(store, rootfs: str, meta: dict) -> None:
    """Fill each new, empty volume of the container from the image (``-v NAME:/PATH:nocopy``
    and ``--mount ...,volume-nocopy`` skip it)."""
    import stat

    from .. import _rootfs
    from ..errors import ContainerError

    vols = _volumes(store)
    for b in meta["binds"]:
        if "volume" not in b or b.get("nocopy") or not vols.get(b["volume"])["needs_copy_up"]:
            continue
        data = vols.mountpoint(b["volume"])
        if os.listdir(data):
            continue
        root_fd = _rootfs.open_root(rootfs)
        try:
            try:
                fd = _rootfs.open_in_root(root_fd, b["destination"], os.O_RDONLY | os.O_DIRECTORY)
            except OSError:  # nothing (or no directory) there in the image: still to copy up (podman's)
                _userns_owner(meta, data, None)
                continue
            try:
                # an empty directory leaves the copy-up for a later mount, as podman's NeedsCopyUp;
                # else this caller claims it (one of several starting at once)
                if not os.listdir(f"/proc/self/fd/{fd}") or not vols.copied_up(b["volume"]):
                    _userns_owner(meta, data, os.fstat(fd))
                    continue
                import subprocess

                st = os.fstat(fd)
                p = subprocess.run(["cp", "-a", "--", f"/proc/self/fd/{fd}/.", data + "/"], pass_fds=(fd,),
                                   capture_output=True)
                if p.returncode != 0:
                    msg = " ".join(p.stderr.decode("utf-8", "replace").split())
                    raise ContainerError(f"copying the image's {b['destination']} into volume {b['volume']}: {msg}")
                os.chown(data, st.st_uid, st.st_gid)
                os.chmod(data, stat.S_IMODE(st.st_mode))
            finally:
                os.close(fd)
        finally:
            os.close(root_fd)


def _userns_owner(meta: dict, data: str, st) -> None:
    """A user-namespace container's empty volume: its mount point's owner in the image (``st``,
    seen through the id-mapped layers: host ids), else the container's root (podman's), so
    that its root can write there."""
    from .userns import container_root

    root = container_root(meta)
    if root:
        os.chown(data, *((st.st_uid, st.st_gid) if st is not None else root))


def chown_sources(meta: dict, uid: int, gid: int) -> None:
    """podman's ``-v SRC:DST:U``: each such source, and everything below it, given to the
    container's user (``uid``/``gid`` as the host writes them: a user namespace's mapped
    ids). Walked by fd, symlinks never followed (their own owner is changed)."""
    from ..errors import ContainerError

    for b in meta["binds"]:
        if not b.get("chown"):
            continue
        src = b["source"]
        try:
            os.chown(src, uid, gid, follow_symlinks=False)
            if os.path.isdir(src) and not os.path.islink(src):
                for _d, dirs, files, dfd in os.fwalk(src, follow_symlinks=False):
                    for n in dirs + files:
                        os.chown(n, uid, gid, dir_fd=dfd, follow_symlinks=False)
        except OSError as e:
            raise ContainerError(f"chowning {src} for {b['destination']}:U: {e.strerror}") from None


def unmount_all(store, names) -> list[str]:
    from ..errors import PalletError

    vols = _volumes(store)
    errors = []
    for n in reversed(list(names or ())):
        try:
            vols.unmount(n)
        except VolumeNotFound:
            pass
        except PalletError as e:
            errors.append(str(e))
    return errors


def check_workdir(rootfs: str, cid: str, workdir: str | None, destinations) -> None:
    """``--workdir`` as podman 4.3 checks it at start: a directory the user named (not the
    image's ``WorkingDir``, which the runtime makes) must exist in the rootfs -- resolved by fd
    inside it -- unless a mount is at it, below it or above it (the runtime makes those);
    CommandNotRunnable (exit 126) with podman's words otherwise."""
    import stat

    from .. import _rootfs
    from ..errors import CommandNotRunnable

    if not workdir:
        return
    wd = os.path.normpath(workdir)
    for d in destinations:
        d = os.path.normpath(d)
        if wd == d or d.startswith(wd.rstrip("/") + "/") or wd.startswith(d.rstrip("/") + "/"):
            return
    root = _rootfs.open_root(rootfs)
    try:
        fd = _rootfs.open_in_root(root, wd)
    except FileNotFoundError:
        raise CommandNotRunnable(f'workdir "{workdir}" does not exist on container {cid}') from None
    except OSError as e:
        raise CommandNotRunnable(f'workdir "{workdir}" on container {cid}: {e.strerror}') from None
    finally:
        os.close(root)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise CommandNotRunnable(f'workdir "{workdir}" exists on container {cid}, but is not a directory')
    finally:
        os.close(fd)
