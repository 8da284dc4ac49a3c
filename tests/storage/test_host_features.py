"""Host features the suite depends on outside the runtime tests, probed on this machine: each
test checks pallet's behaviour for what the host has, either way (a missing feature refused
with a clear message is a pass)."""

from __future__ import annotations

import os
import shutil

import pytest

import images
from conftest import assert_overlay_refused, overlay_unavailable, run_pallet, unmount_under


@pytest.fixture
def store_root(tmp_path):
    root = str(tmp_path / "store")
    try:
        yield root
    finally:
        unmount_under(root)


def test_overlay_or_a_clear_refusal(tmp_path, store_root, root_required):
    """With overlayfs (upper dir on this filesystem), auto picks overlay and images mount; without
    it, auto falls back to vfs and an explicit overlay is refused in one line."""
    why = overlay_unavailable(str(tmp_path))
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "host"}])
    run_pallet("--root", store_root, "copy", "-q", f"oci:{layout}:v1", "local:host:v1")
    with open(os.path.join(store_root, "driver")) as f:
        assert f.read().strip() == ("vfs" if why else "overlay")
    if why:
        assert_overlay_refused(str(tmp_path / "explicit"))
        return
    path = run_pallet("--root", store_root, "image", "mount", "host:v1").stdout.strip()
    try:
        with open(os.path.join(path, "f")) as f:
            assert f.read() == "host"
    finally:
        run_pallet("--root", store_root, "image", "umount", "host:v1")


def test_free_space_reserve_on_this_disk(tmp_path, store_root):
    """The default free_space_reserve (32 MiB) against the disk the tests write to: a small
    layer goes in when there is room, or is refused naming the reserve when there is not."""
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "x" * 1000}])
    free = shutil.disk_usage(str(tmp_path)).free
    p = run_pallet("--root", store_root, "--storage-driver", "vfs", "copy", "-q", f"oci:{layout}:v1", "local:r:v1",
                   check=False)
    if free > (64 << 20):
        assert p.returncode == 0, p.stderr
    elif free < (32 << 20):
        assert p.returncode != 0 and "free_space_reserve" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    else:
        assert p.returncode == 0 or "free_space_reserve" in p.stderr, p.stderr
