"""A container's ``/etc/hosts`` as podman 4.3 writes it (containers/common's ``etchosts``):

1. the ``--add-host`` entries;
2. the entries of the host's ``/etc/hosts`` (comments and lines without names dropped, each
   written ``IP<TAB>NAMES``);
3. then, each only with the names 1 and 2 do not already have: ``127.0.0.1 localhost``,
   ``::1 localhost``, ``host.containers.internal`` (the network's gateway on a bridge, else the
   host's own address), and the container's own names -- ``IP HOSTNAME NAME`` for each address
   on its networks, ``127.0.0.1 HOSTNAME NAME`` without any (``--network none``), nothing with
   the host's network.
"""

from __future__ import annotations

import os

BASE_FILE = "/etc/hosts"
INTERNAL = "host.containers.internal"


def parse(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) >= 2:
            out.append((fields[0], fields[1:]))
    return out


def host_address() -> str | None:
    """The host's address on its default route (no packet is sent: a UDP socket's connect only
    picks the source address), for ``host.containers.internal`` without a bridge."""
    from .._std import sock as socket  # not socket: its enums and selectors cost every run

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.200", 9))
        return s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()


def text(add_hosts: list[str], hostname: str, name: str, ips: list[str], host_net: bool,
         gateway: str | None, base_file: str = BASE_FILE) -> str:
    """``add_hosts`` are ``IP<TAB>NAME`` lines (containers/options.parse_add_host)."""
    entries = [(ip, names.split()) for ip, _, names in (h.partition("\t") for h in add_hosts)]
    try:
        with open(base_file, encoding="utf-8", errors="replace") as f:
            entries += parse(f.read(1 << 20))
    except OSError:
        pass
    taken = {n for _, names in entries for n in names}
    special = [("127.0.0.1", ["localhost"]), ("::1", ["localhost"])]
    internal = gateway or host_address()
    if internal:
        special.append((internal, [INTERNAL]))
    if ips:
        special += [(ip, [hostname, name]) for ip in ips]
    elif not host_net:
        special.append(("127.0.0.1", [hostname, name]))
    for ip, names in special:
        free = [n for n in names if n not in taken]
        if free:
            entries.append((ip, free))
    return "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in entries)


def add_mtab(rootfs: str, owner: tuple[int, int] | None = None) -> None:
    """podman's ``/etc/mtab -> /proc/mounts`` in a rootfs whose ``/etc`` has none (made by fd
    inside the root: a symlinked ``/etc`` cannot point it at the host's); ``owner``: its host
    uid and gid (a user namespace's root), else ours."""
    from .. import _rootfs

    root_fd = _rootfs.open_root(rootfs)
    try:
        try:
            etc = _rootfs.open_in_root(root_fd, "/etc", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return  # no /etc directory: nothing to add to (as podman)
        try:
            os.symlink("/proc/mounts", "mtab", dir_fd=etc)
            if owner:
                os.chown("mtab", *owner, dir_fd=etc, follow_symlinks=False)
        except FileExistsError:
            pass
        finally:
            os.close(etc)
    finally:
        os.close(root_fd)
