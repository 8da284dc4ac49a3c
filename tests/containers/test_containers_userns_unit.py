"""containers/userns.py without the kernel: the flags' grammar and checks as podman 4.3 has
them for root, ``auto``'s choice of ranges, inspect's keys."""

from __future__ import annotations

import pytest

from pallet.containers import conf as conf_mod
from pallet.containers import userns
from pallet.errors import UsageError

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _as_root(monkeypatch):
    """podman's rules for root (keep-id refused), whoever runs the unit tests."""
    from pallet import _userns

    monkeypatch.setattr(_userns, "rootless_uid", lambda: None)


def test_maps_parse_and_one_stands_for_both():
    assert userns.parse(None, ["0:100000:65536,65536:5:1"], [], conf_mod.Conf()) == {
        "mode": "private", "uid": [[0, 100000, 65536], [65536, 5, 1]], "gid": [[0, 100000, 65536], [65536, 5, 1]]}
    got = userns.parse(None, [], ["0:200000:10"], conf_mod.Conf())
    assert got["uid"] == got["gid"] == [[0, 200000, 10]]
    got = userns.parse(None, ["0:1:5"], ["0:2:5"], conf_mod.Conf())
    assert (got["uid"], got["gid"]) == ([[0, 1, 5]], [[0, 2, 5]])
    assert userns.parse(None, ["0:1:1", "1:7:3"], [], conf_mod.Conf())["uid"] == [[0, 1, 1], [1, 7, 3]]


@pytest.mark.parametrize("uidmap,words", [
    ("foo", "want CONTAINER_ID:HOST_ID:SIZE"),
    ("0:1", "want CONTAINER_ID:HOST_ID:SIZE"),
    ("0:-1:5", "want CONTAINER_ID:HOST_ID:SIZE"),
    ("0:100000:0", "the size must not be 0"),
    ("0:4294967295:2", "ids out of range"),
    ("0:100000:100,50:200000:100", "50:200000:100 conflicts with other mappings (container ids 0-99 and 50-149"),
    ("0:100000:100,200:100050:100", "conflicts with other mappings (host ids 100000-100099 and 100050-100149"),
])
def test_bad_maps_name_the_flag(uidmap, words):
    with pytest.raises(UsageError) as e:
        userns.parse(None, [uidmap], [], conf_mod.Conf())
    assert words in str(e.value) and "--uidmap" in str(e.value)


@pytest.mark.parametrize("value,words", [
    ("keep-id", "keep-id is only supported in rootless mode"),
    ("nomap", "nomap is only supported in rootless mode"),
    ("bogus", "unrecognized namespace mode bogus passed"),
    ("auto:size=abc", "want auto[:size=N]"),
    ("auto:size=0", "want auto[:size=N]"),
    ("auto:uidmapping=0:1:1", "not supported by pallet yet"),
    ("container:", "unrecognized namespace mode"),
    ("ns:/no/such/ns", "cannot find specified user namespace path"),
])
def test_bad_userns_modes(value, words):
    with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("]", r"\]")):
        userns.parse(value, [], [], conf_mod.Conf())


def test_modes_and_the_conf_default():
    c = conf_mod.Conf()
    assert userns.parse("host", [], [], c) is None and userns.parse("", [], [], c) is None
    assert userns.parse("auto", [], [], c) == {"mode": "auto", "size": None}
    assert userns.parse("auto:size=2048", [], [], c) == {"mode": "auto", "size": 2048}
    assert userns.parse("ns:/proc/self/ns/user", [], [], c) == {"mode": "ns", "path": "/proc/self/ns/user"}
    assert userns.parse("container:web", [], [], c) == {"mode": "container", "target": "web"}
    for given in ("auto", "host", ""):  # podman: any --userns with a map
        with pytest.raises(UsageError, match="mutually exclusive"):
            userns.parse(given, ["0:1:1"], [], c)
    from_file = conf_mod.Conf({"userns": "auto:size=4096"}, {"userns": "/x.conf"})
    assert userns.parse(None, [], [], from_file) == {"mode": "auto", "size": 4096}
    assert userns.parse(None, ["0:1:1"], [], from_file)["mode"] == "private"  # a flag wins over the file
    with pytest.raises(UsageError, match=r"containers.conf /x.conf: \[containers\] userns"):
        userns.parse(None, [], [], conf_mod.Conf({"userns": "nomap"}, {"userns": "/x.conf"}))


def test_auto_takes_the_lowest_free_range(tmp_path):
    sub = tmp_path / "subuid"
    sub.write_text("someone:10:20\ncontainers:100000:5000\ncontainers:900000:100000\n")
    used = [{"uid": [[0, 100000, 1024]], "gid": [[0, 100000, 1024]]},
            {"uid": [[0, 102048, 1024]], "gid": [[0, 500, 1]]}]
    got = userns.allocate(1024, used, str(sub), str(sub))
    assert got == {"uid": [[0, 101024, 1024]], "gid": [[0, 100000 + 1024, 1024]]}
    # nothing fits in the first range any more: the second one
    got = userns.allocate(3000, used, str(sub), str(sub))
    assert got["uid"] == [[0, 900000, 3000]]
    with pytest.raises(UsageError, match="could not find enough available IDs"):
        userns.allocate(200000, used, str(sub), str(sub))
    sub.write_text("someone:100000:65536\n")
    with pytest.raises(UsageError, match=r'no ranges for user "containers" in .*subuid'):
        userns.allocate(1024, [], str(sub), str(sub))


def test_pick_never_overlaps_a_used_range():
    used = [(0, 10), (15, 5), (25, 100)]
    for size in range(1, 40):
        start = userns.pick([(0, 1000)], used, size, "uid")
        assert all(start + size <= u or u + n <= start for u, n in used)
        assert start >= 0


def test_auto_size_is_containers_storage_estimate():
    assert userns.auto_size(0, 0) == 1024
    assert userns.auto_size(65534, 100) == 65535


def test_user_must_be_mapped():
    m = {"uid": [[0, 100000, 1000]], "gid": [[0, 100000, 1000]]}
    userns.check_user(m, 0, 0, "")
    userns.check_user(m, 999, 999, "999")
    with pytest.raises(UsageError, match="container ID 0 cannot be mapped to a host ID.*no --user given"):
        userns.check_user({"uid": [[1, 100000, 10]], "gid": [[0, 1, 1]]}, 0, 0, "")
    with pytest.raises(UsageError, match="gid 5000 of the user 'app'"):
        userns.check_user(m, 5, 5000, "app")


def test_inspect_keys_are_podmans():
    assert userns.inspect(None) == {"UsernsMode": ""}
    got = userns.inspect({"mode": "private", "uid": [[0, 100000, 65536]], "gid": [[0, 200000, 10]]})
    assert got == {"UsernsMode": "private", "IDMappings": {"UidMap": ["0:100000:65536"], "GidMap": ["0:200000:10"]}}
    assert userns.inspect({"mode": "ns", "path": "/run/x", "uid": [[0, 1, 1]], "gid": [[0, 1, 1]]})["UsernsMode"] \
        == "ns:/run/x"


def test_cp_and_export_maps_make_unmapped_ids_nobodys():
    from pallet.errors import LayerError
    from pallet.layer.idmap import Tolerant, to_container, to_host

    m = [[0, 100000, 1000]]
    assert to_container(Tolerant(m), 100005) == 5 and to_host(Tolerant(m), 5) == 100005
    assert to_container(Tolerant(m), 0) == 65534  # a bind mount's host-root file, as the container sees it
    assert to_host(Tolerant(m), 5000) == 65534
    with pytest.raises(LayerError):  # commits stay strict
        to_container(m, 0)


def test_volume_U_option():
    from pallet.containers.options import parse_volume

    assert parse_volume("/tmp:/x:U")["chown"] is True
    assert parse_volume("vol:/x:ro,U") == {"volume": "vol", "destination": "/x", "readonly": True, "chown": True}
    assert "chown" not in parse_volume("/tmp:/x:ro")
    assert parse_volume("/tmp:/x:idmap")["idmap"] is True and parse_volume("v:/x:idmap")["idmap"] is True
