"""``pallet._fs``: crash-safe replacement of files (temp file, rename), durable or volatile."""

from __future__ import annotations

import os

import pytest

from pallet import _fs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("durable", [True, False])
def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path, durable):
    p = tmp_path / "state.json"
    p.write_text("old")
    _fs.write_atomic(str(p), b"new", 0o600, durable=durable)
    assert p.read_text() == "new"
    assert oct(p.stat().st_mode & 0o777) == oct(0o600)
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_failed_write_keeps_the_old_content(tmp_path, durable):
    p = tmp_path / "state.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with _fs.atomic_file(str(p), durable=durable) as f:
            f.write(b"half")
            raise RuntimeError("writer died")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_only_durable_writes_are_flushed(tmp_path, monkeypatch):
    """Durable: the file and its directory are fsynced (a power cut keeps the new content);
    volatile run-root state skips both (a reboot voids it anyway)."""
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    _fs.write_atomic(str(tmp_path / "a"), b"x")
    assert len(synced) == 2 and synced[1] == str(tmp_path)
    synced.clear()
    _fs.write_atomic(str(tmp_path / "b"), b"x", durable=False)
    assert synced == []
    _fs.write_atomic(str(tmp_path / "c"), b"x", sync_dir=False)  # the caller syncs the directory once
    assert len(synced) == 1 and os.path.dirname(synced[0]) == str(tmp_path)  # the file (its temp name), not the dir


def test_rmtree_removes_a_tree_and_never_follows_a_symlink(tmp_path):
    """``_fs.rmtree`` (shutil.rmtree(ignore_errors=True) without shutil): the whole tree goes,
    read-only directories included; symlinks in it are removed, their targets kept; a path that
    is itself a symlink, a file or missing is left alone."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep").write_text("x")
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("1")
    (tree / "a" / "dirlink").symlink_to(outside)
    (tree / "a" / "filelink").symlink_to(outside / "sub" / "keep")
    (tree / "a" / "b" / "c").chmod(0o500)
    link = tmp_path / "link"
    link.symlink_to(outside)
    _fs.rmtree(str(link))
    assert link.is_symlink() and (outside / "sub" / "keep").exists()
    _fs.rmtree(str(outside / "sub" / "keep"))  # not a directory
    _fs.rmtree(str(tmp_path / "missing"))
    _fs.rmtree(str(tree))
    assert not tree.exists() and not tree.is_symlink()
    assert (outside / "sub" / "keep").read_text() == "x"


def test_reap_orphaned_locks_cleans_only_what_no_process_holds(tmp_path):
    """The one reaper behind spools' and builds' leftovers: a lock nobody holds is its owner's
    death; a held one (flock is per open file, so a second open here stands for a live process)
    is left alone; a failed clean keeps the lock file for the next try; dot names are scratch."""
    import fcntl

    for n in ("dead", "alive", "retry", ".scratch"):
        (tmp_path / f"{n}.lock").write_text("")
        (tmp_path / n).mkdir()
    held = os.open(tmp_path / "alive.lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    seen = []

    def clean(stem):
        seen.append(os.path.basename(stem))
        if stem.endswith("retry"):
            return False
        os.rmdir(stem)
        return True

    try:
        assert _fs.reap_orphaned_locks(str(tmp_path), clean) == ["dead"]
    finally:
        os.close(held)
    assert sorted(seen) == ["dead", "retry"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".scratch", ".scratch.lock", "alive", "alive.lock",
                                                          "retry", "retry.lock"]
    assert _fs.reap_orphaned_locks(str(tmp_path / "missing"), clean) == []
