"""A container's volumes: named ones (``-v NAME:/PATH``, ``--mount type=volume,src=NAME``, made
when missing, as podman does), anonymous ones (``-v /PATH``, ``--mount type=volume`` without
``src``, and the image's ``VOLUME``s no other mount covers) -- their names (64 random hex digits)
are chosen before the container's record is written, so the record names them.

The container is recorded as a user of each (``volume rm`` refuses them) at create; ``start``
mounts the ones with ``-o`` options (``Volumes.mount``) and teardown lets them go; ``rm`` drops
the container as a user and, with ``-v`` (and ``run --rm``), removes its anonymous volumes.
"""

from __future__ import annotations

import os

from ..errors import VolumeNotFound


def add_image_volumes(meta: dict, img_cfg: dict) -> None:
    """The image's ``Volumes`` no bind, volume or tmpfs covers become anonymous volumes; every
    volume without a name gets one, and its ``source`` (the volume's ``_data``)."""
    taken = {os.path.normpath(b["destination"]) for b in meta["binds"]}
    taken |= {os.path.normpath(t["destination"]) for t in meta["tmpfs"]}
    vols = img_cfg.get("Volumes") if isinstance(img_cfg.get("Volumes"), dict) else {}
    for dst in sorted(vols):
        if isinstance(dst, str) and dst.startswith("/") and "\0" not in dst and os.path.normpath(dst) not in taken:
            meta["binds"].append({"volume": None, "destination": os.path.normpath(dst), "readonly": False})
            taken.add(os.path.normpath(dst))
    for b in meta["binds"]:
        if "volume" in b and b["volume"] is None:
            b["volume"] = os.urandom(32).hex()
            b["anonymous"] = True


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
        except VolumeNotFound:
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
