"""Attacks by device nodes in an image: an ``/etc/passwd`` or ``/etc/group`` that is a
character device must not be opened by pallet (as root, opening a watchdog starts it and a
tape rewinds when closed), only seen for what it is. Watched with inotify's IN_OPEN on the
nodes themselves (a look through an O_PATH fd is no open)."""

from __future__ import annotations

import os
import stat

import pytest

from pallet import _rootfs
from pallet._std import syscalls
from pallet.containers import rootless
from pallet.containers.container import Containers
from pallet.errors import ContainerError

IN_OPEN = 0x20


def test_device_nodes_as_passwd_and_group_are_never_opened(tmp_path, root_required):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    nodes = [root / "etc" / "passwd", root / "etc" / "group"]
    for n in nodes:  # /dev/null's numbers: harmless if a regression opens it
        os.mknod(n, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    ino = syscalls.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        for n in nodes:
            syscalls.inotify_add_watch(ino, str(n), IN_OPEN)
        assert _rootfs.read_in_root(str(root), "/etc/passwd") is None
        with pytest.raises(ContainerError, match="unable to find user app"):
            Containers.resolve_user(None, str(root), "app")       # run -u NAME
        rootless.keep_id_entries(str(root), 1000, 1000, None)      # --userns keep-id
        try:
            events = os.read(ino, 4096)
        except BlockingIOError:
            events = b""
        assert events == b"", "a device node in the image was opened"
    finally:
        os.close(ino)
    for n in nodes:
        st = os.lstat(n)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    # the check is not blind: an open of the node is seen
    ino = syscalls.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        syscalls.inotify_add_watch(ino, str(nodes[0]), IN_OPEN)
        os.close(os.open(nodes[0], os.O_RDONLY))
        assert os.read(ino, 4096)
    finally:
        os.close(ino)
