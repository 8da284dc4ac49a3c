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


def check_network(values: list[str]) -> list[str]:
    """Rootless: the ``--network`` values to use (none given: slirp4netns, podman's default for
    a rootless container); bridges and named networks refused (netavark changes the host's links
    and firewall: root's). One line, before anything is made."""
    from ..errors import UsageError

    v = (values or [""])[0]
    slirp = v == "slirp4netns" or v.startswith("slirp4netns:")
    if rootless_uid() is None:
        return values
    if not values:
        values, v, slirp = ["slirp4netns"], "slirp4netns", True
    if slirp:
        return values
    if v in ("none", "host") or v.startswith(("container:", "ns:", "pasta")):
        return values
    raise UsageError(f"--network {v}: bridges and networks need root (netavark changes the host's links and "
                     "firewall); rootless containers have slirp4netns (the default), none or host")


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


def host_sysfs(doc: dict) -> None:
    """Rootless with the host's network: sysfs cannot be mounted (the host's network namespace
    is not pallet's user namespace's), so ``/sys`` is the host's, bound read-only (podman's)."""
    if rootless_uid() is None:
        return
    for m in doc.get("mounts") or ():
        if m.get("destination") == "/sys" and m.get("type") == "sysfs":
            m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
