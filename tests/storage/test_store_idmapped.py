"""A container with an id mapping (a user namespace's): the image's layers mounted id-mapped
(overlayfs with id-mapped lower layers on this kernel), the upper layer with host ids, its
changes read back with container ids, nothing mounted but the overlay; vfs refused."""

from __future__ import annotations

import os

import pytest

import images
from conftest import run_pallet, unmount_under

LAYERS = [{"etc/passwd": "root:x:0:0::/:/bin/sh\n", "srv/app": {"type": "file", "data": b"a", "uid": 7, "gid": 8}}]
IDMAP = {"uid": [[0, 100000, 65536]], "gid": [[0, 200000, 65536]]}


def _mounts_under(path: str) -> list:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


@pytest.fixture
def image_store(tmp_path, root_required):
    from pallet.storage.options import resolve
    from pallet.storage.store import Store

    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", LAYERS)
    root, run = str(tmp_path / "store"), str(tmp_path / "run")

    def open_store(driver):
        run_pallet("--root", root + driver, "--runroot", run + driver, "--storage-driver", driver,
                   "copy", f"oci:{layout}:v1", "local:localhost/img:v1")
        return Store(resolve(root + driver, run + driver, driver))

    yield open_store
    unmount_under(root + "overlay", root + "vfs")


def test_layers_are_id_mapped_and_changes_come_back_unshifted(image_store):
    from pallet.layer.tar import TarReader

    store = image_store("overlay")
    c = store.create_container("localhost/img:v1", "u10-store", idmap=IDMAP)
    assert store.container(c["id"])["idmap"] == IDMAP
    layer_dir = store.driver.layer_dir(c["id"])
    assert os.stat(layer_dir).st_uid == 100000  # a runtime in the namespace can reach merged/
    path = store.mount_container(c["id"])
    try:
        st = os.stat(os.path.join(path, "etc", "passwd"))
        assert (st.st_uid, st.st_gid) == (100000, 200000)  # the image's root file, mapped
        st = os.stat(os.path.join(path, "srv", "app"))
        assert (st.st_uid, st.st_gid) == (100007, 200008)
        root = os.stat(path)
        assert (root.st_uid, root.st_gid) == (100000, 200000)  # the upper dir's root is the mapped root's
        assert [m for m in _mounts_under(store.graphroot) if m != path] == []  # the clones are gone
        with open(os.path.join(path, "srv", "new"), "w") as f:
            f.write("n")
        os.chown(os.path.join(path, "srv", "new"), 101000, 201000)
        os.chown(os.path.join(path, "srv", "app"), 100009, 200009)  # a copy-up keeps host ids
    finally:
        store.umount_container(c["id"], force=True)
    assert _mounts_under(store.graphroot) == []
    assert not os.path.exists(os.path.join(layer_dir, "idmapped"))
    assert os.stat(os.path.join(layer_dir, "diff", "srv", "new")).st_uid == 101000
    owners = {}
    with store.container_changes(c["id"]) as stream:
        tr = TarReader(stream)
        while (h := tr.next()) is not None:
            owners[h.name.rstrip(b"/")] = (h.uid, h.gid)
    assert owners[b"srv/new"] == (1000, 1000) and owners[b"srv/app"] == (9, 9)
    store.remove_container(c["id"])


def test_vfs_refuses_a_mapping(image_store):
    from pallet.errors import StoreError

    store = image_store("vfs")
    with pytest.raises(StoreError, match="need the overlay driver"):
        store.create_container("localhost/img:v1", "u10-vfs", idmap=IDMAP)
    assert store.containers() == []
