"""Containers when pallet runs rootless (as an unprivileged user, in its user namespace: see
``pallet._userns.enter_rootless``), podman 4.3's rules: no cgroup limits on cgroup v1,
``--userns keep-id``'s maps and passwd entry.
"""

from __future__ import annotations

import os

from .._userns import rootless_uid

#: podman's warning, word for word, when limits are asked for where they cannot be set
LIMITS_IGNORED = "Resource limits are not supported and ignored on cgroups V1 rootless systems"


def no_cgroups() -> bool:
    """Rootless on a host without the unified hierarchy: the container gets no cgroup of its
    own, so no limit (the runtime's ``NoCgroups``)."""
    return rootless_uid() is not None and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def check_network(values: list[str]) -> None:
    """Rootless: the network modes pallet can give (netavark's bridges change the host's links
    and firewall: root's; user-mode networking is not written yet). One line, before anything."""
    if rootless_uid() is None:
        return
    v = (values or ["slirp4netns"])[0]  # podman's default for a rootless container
    if v in ("none", "host") or v.startswith(("container:", "ns:")):
        return
    from ..errors import UsageError

    raise UsageError(f"--network {v}: rootless networking (slirp4netns, podman's default for rootless "
                     "containers; pasta; bridges) is not supported by pallet yet: use --network none or host")


def check_userns(userns: str | None, uidmaps, gidmaps) -> None:
    """Rootless: user namespaces of a container's own are not written yet (the image's layers
    would need a copy chowned to the mapping: id-mapped mounts of the host's filesystems are the
    host root's to make)."""
    if rootless_uid() is None or not (uidmaps or gidmaps or (userns or "") not in ("", "host")):
        return
    from ..errors import UsageError

    what = f"--userns {userns}" if userns else "--uidmap/--gidmap"
    raise UsageError(f"{what}: not supported by pallet yet when rootless (the container gets pallet's own user "
                     "namespace: the user as root, its subordinate ids from 1)")
