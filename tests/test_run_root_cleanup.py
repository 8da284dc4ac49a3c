"""The suite removes the run roots its temporary stores left (``/run/pallet-stores/HASH``, with
the shared namespace directory mounted on itself), and keeps one that still holds a namespace."""

from __future__ import annotations

import os

from conftest import _leftover_run_roots, mounts_under, remove_run_roots


def test_leftover_run_roots_are_unmounted_and_removed(root_required, tmp_path):
    from pallet.containers.network import netns
    from pallet.storage.options import derived_runroot

    empty_root, busy_root = tmp_path / "a" / "root", tmp_path / "b" / "root"
    empty_root.mkdir(parents=True)
    busy_root.mkdir(parents=True)
    empty_rr, busy_rr = derived_runroot(str(empty_root)), derived_runroot(str(busy_root))
    try:
        netns.shared_dir(netns.netns_dir(empty_rr))
        path = netns.create(busy_rr, "t-cleanup")
        assert mounts_under(empty_rr) and mounts_under(busy_rr)
        assert sorted(_leftover_run_roots(str(tmp_path))) == sorted([empty_rr, busy_rr])

        kept = remove_run_roots([empty_rr, busy_rr])
        assert kept == [busy_rr]  # a namespace still mounted there: a leak, not ours to hide
        assert not os.path.exists(empty_rr) and not mounts_under(empty_rr)
        assert os.path.exists(path)
    finally:
        if os.path.exists(os.path.join(busy_rr, "netns", "t-cleanup")):
            netns.remove(os.path.join(busy_rr, "netns", "t-cleanup"))
        remove_run_roots([busy_rr, empty_rr])
    assert not os.path.exists(busy_rr) and not mounts_under(busy_rr)
