"""Rootless mode's pure parts: the maps from /etc/subuid and /etc/subgid, the network values a
rootless container gets, slirp4netns' options and what it cannot publish (the real namespaces,
slirp4netns and podman side by side: test_rootless.py)."""

from __future__ import annotations

import pytest

from pallet import _userns
from pallet.containers import rootless
from pallet.containers.network import mode, sandbox
from pallet.errors import UsageError

pytestmark = pytest.mark.unit


def test_maps_follow_podman_the_user_as_0_then_its_ranges(tmp_path):
    sub = tmp_path / "subuid"
    sub.write_text("alice:100000:65536\nbob:300000:10\n1001:200000:65536\nalice:bad:1\nalice:5:0\n\n")
    gsub = tmp_path / "subgid"
    gsub.write_text("alice:400000:100\n")
    uid_map, gid_map = _userns.rootless_maps("alice", 1001, 1002, str(sub), str(gsub))
    assert uid_map == [[0, 1001, 1], [1, 100000, 65536], [65537, 200000, 65536]]  # by name and by number
    assert gid_map == [[0, 1002, 1], [1, 400000, 100]]
    assert _userns.rootless_maps("carol", 1003, 1003, str(sub), str(tmp_path / "missing")) == \
        ([[0, 1003, 1]], [[0, 1003, 1]])


def test_rootless_uid_outside_and_as_real_root(monkeypatch):
    monkeypatch.setattr(_userns.os, "geteuid", lambda: 1001)
    assert _userns.rootless_uid() == 1001 and _userns.host_euid() == 1001
    monkeypatch.setattr(_userns.os, "geteuid", lambda: 0)
    monkeypatch.setenv(_userns.ROOTLESS_ENV, "1001")
    monkeypatch.setattr(_userns, "in_initial_userns", lambda: True)
    assert _userns.rootless_uid() is None  # the variable alone makes no root rootless
    monkeypatch.setattr(_userns, "in_initial_userns", lambda: False)
    assert _userns.rootless_uid() == 1001 and _userns.host_euid() == 1001
    monkeypatch.setenv(_userns.ROOTLESS_ENV, "x1")
    assert _userns.rootless_uid() is None


def test_network_values_for_a_rootless_container(monkeypatch):
    monkeypatch.setattr(rootless, "rootless_uid", lambda: 1001)
    assert rootless.check_network([]) == ["slirp4netns"]  # podman's rootless default
    for ok in (["none"], ["host"], ["container:web"], ["ns:/x"], ["slirp4netns:allow_host_loopback=true"]):
        assert rootless.check_network(ok) == ok
    for bad in (["bridge"], ["mynet"], ["mynet", "other"]):
        with pytest.raises(UsageError, match="need root"):
            rootless.check_network(bad)
    monkeypatch.setattr(rootless, "rootless_uid", lambda: None)
    assert rootless.check_network([]) == [] and rootless.check_network(["bridge"]) == ["bridge"]


def test_userns_flags_refused_rootless_only(monkeypatch):
    monkeypatch.setattr(rootless, "rootless_uid", lambda: 1001)
    rootless.check_userns(None, [], [])
    rootless.check_userns("host", [], [])
    rootless.check_userns("keep-id", [], [])
    for userns, maps in (("keep-id:uid=5", []), ("auto", []), ("nomap", []), (None, ["0:1:10"])):
        with pytest.raises(UsageError, match="not supported by pallet yet when rootless"):
            rootless.check_userns(userns, maps, [])
    monkeypatch.setattr(rootless, "rootless_uid", lambda: None)
    rootless.check_userns("keep-id", [], [])  # root: userns.parse gives podman's own refusal


def test_slirp4netns_mode_and_options():
    m = mode.parse(["slirp4netns"])
    assert (m.kind, m.target) == ("slirp4netns", "")
    m = mode.parse(["slirp4netns:allow_host_loopback=true"])
    assert m.kind == "slirp4netns" and mode.slirp_allows_host_loopback(m.target)
    assert not mode.slirp_allows_host_loopback("allow_host_loopback=false")
    assert not mode.slirp_allows_host_loopback(None)
    for bad, words in ((["slirp4netns:mtu=1500"], "option mtu is not supported by pallet yet"),
                       (["slirp4netns:port_handler=rootlesskit"], "port_handler is not supported"),
                       (["slirp4netns:allow_host_loopback=yes"], "want allow_host_loopback=true"),
                       (["slirp4netns:bogus"], "invalid --network slirp4netns option"),
                       (["slirp4netns", "none"], "cannot be combined"),
                       (["slirp4netns:allow_host_loopback=true", "web"], "cannot be combined"),
                       (["pasta"], "pasta is not supported by pallet yet")):
        with pytest.raises(UsageError, match=words):
            mode.parse(bad)


def test_what_slirp4netns_cannot_publish():
    sandbox.check_slirp_ports([{"host_ip": "127.0.0.1", "container_port": 80, "host_port": 8080, "range": 1,
                                "protocol": "tcp"}, {"host_ip": "", "container_port": 53, "host_port": 5353,
                                                     "range": 2, "protocol": "udp"}])
    with pytest.raises(UsageError, match="IPv6 host addresses"):
        sandbox.check_slirp_ports([{"host_ip": "::1", "container_port": 80, "host_port": 8080, "protocol": "tcp"}])
    with pytest.raises(UsageError, match="tcp and udp only"):
        sandbox.check_slirp_ports([{"host_ip": "", "container_port": 80, "host_port": 8080, "protocol": "sctp"}])


def test_keep_id_maps_as_podman_builds_them():
    ns_uid = [[0, 1001, 1], [1, 100000, 65536], [65537, 200000, 65536]]
    ns_gid = [[0, 1002, 1], [1, 300000, 1500]]
    got = rootless.keep_id_maps(ns_uid, ns_gid)
    # podman 4.3's, seen as uid_map in its keep-id container on this machine (uid 1001)
    assert got["uid"] == [[0, 1, 1001], [1001, 0, 1], [1002, 1002, 64535], [65537, 65537, 65536]]
    assert got["gid"] == [[0, 1, 1002], [1002, 0, 1], [1003, 1003, 498]]  # the namespace's ids up to 1500
    with pytest.raises(UsageError, match="does not fit"):
        rootless.keep_id_maps([[0, 1001, 1], [1, 100000, 10]], ns_gid)  # 11 ids: 1001 is not among them
