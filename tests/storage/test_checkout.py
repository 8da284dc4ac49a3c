"""``storage.checkout.checkout_image``: an image as a plain tree of hard links into the store,
compared with what the kernel shows when the same image is mounted (overlay: the layers
stacked by overlayfs; vfs: the top layer's bind mount) — whiteouts, opaque directories,
owners, modes, times, symlinks, hard links, xattrs."""

from __future__ import annotations

import os

import pytest

import images
from conftest import unmount_under
from test_layer_apply import snapshot

LAYERS = images.STANDARD_LAYERS + [
    # a directory replaced by a file, a file by a directory, a directory with content deleted
    {"var/cache": {"type": "whiteout"}, "var/cache2": "now a file", "bin/tool-link": {"type": "whiteout"},
     "bin/tool-link/x": "a dir where a symlink was", "home/user/notes.txt": {"type": "whiteout"},
     "etc/new": {"type": "file", "data": b"n", "mode": 0o640, "uid": 7, "gid": 8}},
]


def _tree(root: str) -> dict:
    t = snapshot(root)
    t[None] = [g for g in t[None] if len(g) > 1]  # a checkout's files all have store links
    return t


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_checkout_is_the_mounted_image_made_of_links(tmp_path, driver, root_required):
    from pallet.storage.checkout import checkout_image
    from pallet.storage.options import resolve
    from pallet.storage.store import Store
    from pallet.errors import StoreError

    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", LAYERS)
    root = str(tmp_path / "store")
    store = Store(resolve(root, str(tmp_path / "run"), driver))
    from conftest import run_pallet

    run_pallet("--root", root, "--runroot", str(tmp_path / "run"), "--storage-driver", driver,
               "copy", f"oci:{layout}:v1", "local:localhost/img:v1")
    dest = str(tmp_path / "co")
    try:
        res = checkout_image(store, "localhost/img:v1", dest)
        mounted = store.mount_image("localhost/img:v1")
        try:
            want = _tree(mounted)
        finally:
            store.umount_image("localhost/img:v1")
    finally:
        unmount_under(root)
    got = _tree(dest)
    assert sorted(k for k in got if k) == sorted(k for k in want if k)
    assert b"var/cache2" in want and b"bin/tool-link/x" in want and b"var/cache/c" not in want  # the layers applied
    for k in want:
        assert got[k] == want[k], k
    assert res["mode"] == "hardlink" and res["files"] > 0
    assert os.stat(os.path.join(dest, "big.bin")).st_nlink >= 2  # the store's file, not a copy
    # a destination that exists is refused, and a failed checkout leaves nothing
    with pytest.raises(StoreError, match="exists"):
        checkout_image(store, "localhost/img:v1", dest)
    with pytest.raises(Exception):
        checkout_image(store, "localhost/none:v1", str(tmp_path / "co2"))
    assert not os.path.exists(str(tmp_path / "co2"))


def test_checkout_across_filesystems_copies_and_says_so(tmp_path, root_required):
    """On another filesystem than the store no link can be made: a reflink where the filesystem
    has them, else a copy (tmpfs: a copy), with the same tree."""
    import tempfile

    from pallet.storage.checkout import checkout_image
    from pallet.storage.options import resolve
    from pallet.storage.store import Store
    from conftest import run_pallet

    other = tempfile.mkdtemp(dir="/dev/shm")
    try:
        if os.stat(other).st_dev == os.stat(str(tmp_path)).st_dev:
            pytest.fail("/dev/shm is on the tests' filesystem: no second filesystem to check out to")
        layout = str(tmp_path / "layout")
        images.make_layout(layout, "v1", LAYERS)
        root = str(tmp_path / "store")
        run_pallet("--root", root, "--runroot", str(tmp_path / "run"), "--storage-driver", "vfs",
                   "copy", f"oci:{layout}:v1", "local:localhost/img:v1")
        store = Store(resolve(root, str(tmp_path / "run"), "vfs"))
        near, far = str(tmp_path / "co"), os.path.join(other, "co")
        assert checkout_image(store, "localhost/img:v1", near)["mode"] == "hardlink"
        res = checkout_image(store, "localhost/img:v1", far)
        assert res["mode"] == "copy"
        a, b = snapshot(near), snapshot(far)
        a.pop(None), b.pop(None)
        assert a == b
        assert os.stat(os.path.join(far, "big.bin")).st_nlink == 1
    finally:
        import shutil

        shutil.rmtree(other, ignore_errors=True)
        unmount_under(str(tmp_path))
