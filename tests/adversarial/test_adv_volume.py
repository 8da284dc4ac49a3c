"""Attacks on named volumes: hostile names, options, labels and filters (one line, exit 125,
nothing written), hostile record files (one line naming the file and the field), and a store
tampered with (symlinks where the volume's directories were) that must not make pallet delete
or mount over anything outside the volume.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_pallet
from pallet.containers.volumes import Volumes
from pallet.errors import ConfigError, PalletError, UsageError, VolumeError

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "store")


def vol(root, *args, check=True):
    return run_pallet("--root", root, "volume", *args, check=check)


BAD_NAMES = ["../escape", "a/b", ".hidden", "-rf", "_x", "", "x" * 256, "a b", "a\nb", "ümlaut", "a:b", "..", "."]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_hostile_names_are_refused_before_anything_is_written(root, name):
    p = vol(root, "create", "--", name, check=False)
    assert p.returncode == 125, p.stderr
    assert p.stderr.startswith("Error: invalid volume name") and p.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(root, "volumes", ".volumes.json"))
    assert not os.path.exists(os.path.join(root, "escape"))


@pytest.mark.parametrize("name", ["../escape", "a\nb", "x" * 300, ".volumes.json", ".lock"])
def test_hostile_names_on_lookup_are_one_line(root, name):
    vol(root, "create", "real")
    for verb, rc in (("inspect", 125), ("rm", 1), ("exists", 1)):
        p = vol(root, verb, "--", name, check=False)
        assert p.returncode == rc, (verb, p.stderr)
        assert p.stderr.count("\n") <= 1 and "Traceback" not in p.stderr
    assert vol(root, "ls", "-q").stdout == "real\n"
    assert os.path.exists(os.path.join(root, "volumes", ".volumes.json"))


@pytest.mark.parametrize("args, words", [
    (["--driver", "nfs"], "unsupported volume driver 'nfs'"),
    (["--driver", ""], "unsupported volume driver"),
    (["-o", "size=1m"], "invalid mount option 'size'"),
    (["-o", "type"], "want KEY=VALUE"),
    (["-o", "=x"], "want KEY=VALUE"),
    (["-o", "type=tmpfs,ext4"], "invalid -o type="),
    (["-o", "type="], "invalid -o type="),
    (["-o", "type=tmpfs", "-o", "device=a\nb"], "without NUL or newline"),
    (["-o", "type=tmpfs", "-o", "o=size=1m,,ro"], "empty mount option"),
    (["-o", "type=none", "-o", "o=bind"], "needs -o device=/ABSOLUTE/PATH"),
    (["-o", "o=bind", "-o", "device=relative/dir"], "needs -o device=/ABSOLUTE/PATH"),
    (["-o", "device=/dev/sda1"], "needs -o type=TYPE"),
    (["-o", "o=uid=abc"], "uid wants a number"),
    (["-o", "o=gid=-1"], "gid wants a number"),
    (["-o", "o=uid=99999999999"], "uid wants a number"),
    (["-o", "o=uid=٣"], "uid wants a number"),
    (["-o", "o=nodev,uid=1"], "needs -o type=TYPE and -o device=DEVICE"),
    (["-o", "UID=0"], "invalid mount option 'UID'"),
    (["--label", "=v"], "invalid --label"),
])
def test_hostile_options_are_one_line_and_write_nothing(root, args, words):
    p = vol(root, "create", *args, "v", check=False)
    assert p.returncode in (125, 1) and p.stderr.count("\n") <= 2 and "Traceback" not in p.stderr, p.stderr
    if words:
        assert words in p.stderr
    assert not os.path.exists(os.path.join(root, "volumes", "v"))


def test_the_library_refuses_the_same_values():
    vols = Volumes("/nonexistent-pallet-root")
    for kw in ({"labels": {"": "x"}}, {"labels": {"k": "\0"}}, {"options": {"type": "tmpfs", "device": "\0"}},
               {"driver": "other"}):
        with pytest.raises(UsageError):
            vols.create("v", **kw)
    with pytest.raises(UsageError):
        vols.create(5)
    assert not os.path.exists("/nonexistent-pallet-root")


@pytest.mark.parametrize("text", ["name", "name=(", "dangling=maybe", "until=someday", "bogus=1", "driver!=local",
                                  "name!=x"])
def test_hostile_filters_are_one_line(root, text):
    vol(root, "create", "v")
    p = vol(root, "ls", "--filter", text, check=False)
    assert p.returncode == 125 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    p = vol(root, "prune", "-f", "--filter", text, check=False)
    assert p.returncode == 125 and p.stdout == ""
    assert vol(root, "ls", "-q").stdout == "v\n"


def _records(root):
    return os.path.join(root, "volumes", ".volumes.json")


@pytest.mark.parametrize("doc, field", [
    ("[" * 50000 + "]" * 50000, "nested too deeply"),
    ('{"volumes": []}', "volumes: want a JSON object"),
    ('[]', "volumes: want a JSON object"),
    ('{"volumes": {"../x": {}}}', "volumes.../x: invalid volume name"),
    ('{"volumes": {"v": 5}}', "volumes.v: want an object"),
    ('{"volumes": {"v": {"name": "w"}}}', "volumes.v.name: does not match"),
    ('{"volumes": {"v": {"name": "v", "driver": 1}}}', "volumes.v.driver"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {"a": 1}}}}',
     "volumes.v.labels"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {},'
     ' "options": {}, "users": "c1"}}}', "volumes.v.users"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {},'
     ' "options": {"UID": "x"}, "users": []}}}', "volumes.v.options.UID"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {},'
     ' "options": {}, "users": [], "mount_count": -1}}}', "volumes.v.mount_count"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {},'
     ' "options": {}, "users": [], "mount_count": true}}}', "volumes.v.mount_count"),
    ('{"volumes": {"v": {"name": "v", "driver": "local", "created": "", "boot_id": "", "labels": {},'
     ' "options": {}, "users": [], "mount_count": 0, "needs_copy_up": "yes"}}}', "volumes.v.needs_copy_up"),
    ("\xff\xfe", "not valid JSON"),
])
def test_hostile_record_files_name_the_file_and_field(root, doc, field):
    os.makedirs(os.path.join(root, "volumes"))
    with open(_records(root), "w", encoding="latin-1") as f:
        f.write(doc)
    for args in (("ls",), ("create", "x"), ("inspect", "v"), ("rm", "v"), ("prune", "-f")):
        p = vol(root, *args, check=False)
        assert p.returncode == 125, (args, p.stderr)
        line = p.stderr.strip()
        assert "\n" not in line and _records(root) in line and field in line, (args, line)
    with pytest.raises(ConfigError):
        Volumes(root).list()


def test_a_huge_record_file_is_not_read_whole(root):
    os.makedirs(os.path.join(root, "volumes"))
    with open(_records(root), "wb") as f:
        f.truncate((64 << 20) + 10)
    p = vol(root, "ls", check=False)
    assert p.returncode == 125 and "larger than 64 MiB" in p.stderr


def test_a_volume_replaced_by_a_symlink_is_neither_mounted_over_nor_emptied(root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "_data").mkdir(parents=True)
    (outside / "_data" / "precious").write_text("x")
    vol(root, "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "v")
    vdir = os.path.join(root, "volumes", "v")
    os.rmdir(os.path.join(vdir, "_data"))
    os.rmdir(vdir)
    os.symlink(outside, vdir)
    with pytest.raises(VolumeError, match="not a directory"):
        Volumes(root).mount("v")
    assert vol(root, "rm", "v").stdout == "v\n"  # the link goes, not what it points to
    assert sorted(os.listdir(os.path.join(root, "volumes"))) == [".lock", ".volumes.json"]
    assert (outside / "_data" / "precious").read_text() == "x"


def test_data_symlinks_inside_a_volume_are_removed_not_followed(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    vol(root, "create", "v")
    data = os.path.join(root, "volumes", "v", "_data")
    os.symlink(outside, os.path.join(data, "link"))
    os.makedirs(os.path.join(data, "deep", "er"))
    os.symlink(outside / "precious", os.path.join(data, "deep", "er", "flink"))
    assert vol(root, "rm", "v").stdout == "v\n"
    assert (outside / "precious").read_text() == "x" and not os.path.lexists(data)


def test_every_error_is_a_pallet_error(root):
    vols = Volumes(root)
    for call in (lambda: vols.get(None), lambda: vols.get(""), lambda: vols.remove(None), lambda: vols.mount("x"),
                 lambda: vols.add_user("x", "c"), lambda: vols.unmount("nope")):
        with pytest.raises(PalletError):
            call()
    assert json.loads(vol(root, "ls", "--format", "json").stdout) == []


def test_fuzzed_record_files_raise_only_pallet_errors(root):
    """Mutations of a valid record file (fixed seed, bounded time): reading, listing, creating,
    mounting and removing raise only PalletError subclasses."""
    import random
    import time

    vols = Volumes(root)
    vols.create("a", labels={"k": "v"}, options={"type": "tmpfs", "device": "tmpfs"})
    vols.create("b")
    vols.add_user("b", "c1")
    with open(_records(root), "rb") as f:
        good = f.read()
    rng = random.Random(1307)
    tokens = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"null", b"true", b"-1", b"1e999", b"\"../x\"", b"\\u0000",
              b"\xff", b"\"users\"", b"\"mount_count\"", b"\"volumes\"", b"5"]
    deadline = time.monotonic() + 10
    n = 0
    while time.monotonic() < deadline and n < 3000:
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and len(data) > 1:
                del data[i:i + rng.randint(1, 8)]
            data[i:i] = rng.choice(tokens)
        with open(_records(root), "wb") as f:
            f.write(data)
        for call in (vols.list, lambda: vols.get("a"), lambda: vols.add_user("a", "x"),
                     lambda: vols.remove("zz"), lambda: vols.prune(lambda r: False)):
            try:
                call()
            except PalletError:
                pass
        n += 1
    assert n > 50
