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
    if rootless_uid() is None or not (uidmaps or gidmaps or (userns or "") not in ("", "host", "keep-id")):
        return
    from ..errors import UsageError

    what = f"--userns {userns}" if userns else "--uidmap/--gidmap"
    raise UsageError(f"{what}: not supported by pallet yet when rootless (the container gets pallet's own user "
                     "namespace: the user as root, its subordinate ids from 1)")


def adjust_mounts(doc: dict, host_network: bool) -> None:
    """Rootless: with the host's network, sysfs cannot be mounted (the host's network namespace
    is not pallet's user namespace's), so ``/sys`` is the host's, bound read-only (podman's); a
    namespace without gid 5 (no subordinate ids) mounts devpts without ``gid=5`` (podman's)."""
    if rootless_uid() is None:
        return
    tty_mapped = any(c <= 5 < c + n for c, _h, n in _ns_map("gid"))
    for m in doc.get("mounts") or ():
        if host_network and m.get("destination") == "/sys" and m.get("type") == "sysfs":
            m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        if not tty_mapped and m.get("type") == "devpts":
            m["options"] = [o for o in m.get("options") or () if o != "gid=5"]


def _ns_map(kind: str) -> list[list[int]]:
    with open(f"/proc/self/{kind}_map") as f:
        return [[int(x) for x in line.split()] for line in f if line.strip()]


def keep_id_maps(uid_map: list | None = None, gid_map: list | None = None) -> dict:
    """podman 4.3's ``--userns keep-id`` maps, relative to pallet's rootless namespace (whose
    ``uid_map``/``gid_map`` they are built from): the user's own id is itself inside (pallet's 0),
    the ids below it are pallet's from 1, those above it pallet's own, range by range."""
    from ..errors import UsageError

    out = {}
    for kind, ns in (("uid", uid_map or _ns_map("uid")), ("gid", gid_map or _ns_map("gid"))):
        own = next((h for c, h, n in ns if c == 0), None)
        top = max((c + n for c, _h, n in ns), default=0)  # pallet's ids are 0..top-1
        if own is None or own >= top or own == 0:  # container 0..own-1 are pallet's 1..own
            raise UsageError(f"--userns keep-id: the user's {kind} {own} does not fit the {top} ids of its "
                             f"namespace (add subordinate ids in /etc/sub{kind})")
        m = [[0, 1, own], [own, 0, 1]]
        for c, _h, n in sorted(ns):
            if c == 0 or c + n - 1 <= own:
                continue
            start = max(c, own + 1)
            m.append([start, start, c + n - start])
        out[kind] = m
    return out



def keep_id_entries(rootfs: str, uid: int, gid: int, workdir: str | None) -> None:
    """podman 4.3's keep-id entries, appended to the container's ``/etc/passwd`` and
    ``/etc/group`` (resolved by fd in its root; a file missing, not a regular file, or already
    naming the id is left as it is): ``NAME:*:UID:GID::WORKDIR:/bin/sh`` and ``GROUP:x:GID:NAME``,
    the names the host's. Written as the namespace's root: the container's layer gets the copy."""
    from .. import _rootfs

    from .._userns import host_name

    name = host_name("/etc/passwd", uid) or os.environ.get("USER") or str(uid)
    group = host_name("/etc/group", gid) or name
    root_fd = _rootfs.open_root(rootfs)
    try:
        for path, num, line in (("/etc/passwd", uid, f"{name}:*:{uid}:{gid}::{workdir or '/'}:/bin/sh\n"),
                                ("/etc/group", gid, f"{group}:x:{gid}:{name}\n")):
            try:  # a device node there is not even opened
                fd = _rootfs.open_file_in_root(root_fd, path, os.O_RDWR, follow_last=False)
            except OSError:
                continue
            if fd is None:
                continue
            try:
                data = b""
                while len(data) < (4 << 20) and (chunk := os.read(fd, 65536)):
                    data += chunk
                if any(p.split(b":")[2:3] == [str(num).encode()] for p in data.splitlines()):
                    continue
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, (b"\n" if data and not data.endswith(b"\n") else b"") + line.encode())
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
