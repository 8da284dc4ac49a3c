"""Attacks on rootless mode's inputs: hostile /etc/subuid and /etc/subgid lines must give maps
the kernel takes (or none), never a traceback or a map that fails every start."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import wait_for
from pallet import _userns
from pallet.containers import userns

HOSTILE = ("me:\u00b2:5\n"              # a digit to str.isdigit, no number to int
           "me:100000:65536\n"
           "me:100000:65536\n"          # the same range again
           "me:150000:10\n"             # inside the first one
           "me:4294967000:65536\n"      # past the last id
           "me:0099999999999:1\n"       # eleven digits
           "me:200000:0\n"
           "me:999:5\n"                 # holds the user's own id (1000)
           "me:300000:10\n")


@pytest.mark.unit
def test_hostile_subuid_lines_are_skipped(tmp_path):
    sub = tmp_path / "subuid"
    sub.write_text(HOSTILE)
    uid_map, gid_map = _userns.rootless_maps("me", 1000, 1000, str(sub), str(sub))
    assert uid_map == gid_map == [[0, 1000, 1], [1, 100000, 65536], [65537, 300000, 10]]
    sub.write_text("containers:\u00b2:5\ncontainers:2147483647:2147483648\ncontainers:2147483647:1\n")
    assert userns.read_sub_ranges(str(sub)) == [(2147483647, 2147483648)]  # podman's rule for root: kept
    sub.write_bytes(b"me:\xff:1\n")
    assert _userns.rootless_maps("me", 1000, 1000, str(sub), str(sub))[0] == [[0, 1000, 1]]


def test_maps_from_hostile_lines_are_taken_by_the_kernel(tmp_path, root_required):
    """The map made from those lines written to a real new user namespace, as newuidmap writes
    it (overlapping ranges made the kernel refuse it: every rootless start failed)."""
    sub = tmp_path / "subuid"
    sub.write_text(HOSTILE + "".join(f"me:{400000 + 10 * i}:10\n" for i in range(400)))  # more than one write of a map holds
    uid_map, gid_map = _userns.rootless_maps("me", 1000, 1000, str(sub), str(sub))
    assert len(uid_map) < _userns.MAX_EXTENTS and len("".join(f"{a} {b} {c}\n" for a, b, c in uid_map)) < 4096
    p = subprocess.Popen(["unshare", "--user", "sh", "-c", "read x"], stdin=subprocess.PIPE)
    try:
        ours = os.readlink("/proc/self/ns/user")
        wait_for(lambda: os.readlink(f"/proc/{p.pid}/ns/user") != ours, 30, "the new user namespace")
        for kind, m in (("uid", uid_map), ("gid", gid_map)):
            with open(f"/proc/{p.pid}/{kind}_map", "w") as f:
                f.write("".join(f"{a} {b} {c}\n" for a, b, c in m))
            with open(f"/proc/{p.pid}/{kind}_map") as f:
                assert len(f.read().splitlines()) == len(m)
    finally:
        p.stdin.close()
        p.wait(30)
