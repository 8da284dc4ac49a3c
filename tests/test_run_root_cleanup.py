"""The suite removes the run roots its temporary stores left (``/run/pallet-stores/HASH``, with
the shared namespace directory mounted on itself), and keeps one that still holds a namespace."""

from __future__ import annotations

import os

from conftest import _leftover_run_roots, mounts_under, remove_run_roots, unmount_under


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


def test_what_the_suite_left_is_listed_then_removed(root_required, tmp_path):
    """The session's end check: a namespace in a store's derived run root, a mount in a directory
    the suite made, a container's cgroups in a state directory: each listed, then removed."""
    import json
    import subprocess

    from conftest import suite_leaks
    from pallet.containers.network import netns
    from pallet.storage.options import derived_runroot

    base, made = tmp_path / "base", tmp_path / "made"
    (base / "t0" / "root").mkdir(parents=True)
    (made / "mnt").mkdir(parents=True)
    rr = derived_runroot(str(base / "t0" / "root"))
    cid = f"pallet-build-leak-{os.urandom(4).hex()}"
    cg = f"/sys/fs/cgroup/pids/{cid}"
    state = base / "t0" / "run" / "build-runtime" / cid
    planted = base / "t1" / "run" / "oci" / "planted"  # a hostile test's: not a container's own cgroup
    try:
        ns = netns.create(rr, "t-leak")
        subprocess.run(["mount", "-t", "tmpfs", "t", str(made / "mnt")], check=True)
        os.mkdir(cg)
        state.mkdir(parents=True)
        (state / "cgroups.json").write_text(json.dumps({"kind": "v1", "paths": {"pids": cg}, "created": []}))
        planted.mkdir(parents=True)
        (planted / "cgroups.json").write_text(json.dumps({"kind": "v1", "paths": {"pids": "/sys/fs/cgroup/pids"}}))
        leaks = suite_leaks(str(base), [str(made)])
        assert sorted(line.split()[0] for line in leaks) == ["container", "mount", "mount"], leaks
        assert any(ns in line for line in leaks) and any(str(made / "mnt") in line for line in leaks)
        assert any(cg in line for line in leaks)
        assert not os.path.exists(rr) and not os.path.exists(made) and not os.path.exists(cg)
        assert suite_leaks(str(base), [str(made)]) == []
    finally:
        if os.path.exists(os.path.join(rr, "netns", "t-leak")):
            netns.remove(os.path.join(rr, "netns", "t-leak"))
        remove_run_roots([rr])
        unmount_under(str(tmp_path))
        if os.path.isdir(cg):
            os.rmdir(cg)
