"""The pure parts of the file and process verbs: podman's cp destination rules and argument
split, psgo's descriptors, Go's duration and go-units' size text, the stats figures of a cgroup
tree laid out as v1 or v2, the commit config."""

from __future__ import annotations

import os

import pytest

from pallet.containers import commit, files, procs
from pallet.errors import UsageError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,want", [("ctr:/a", ("ctr", "/a")), ("/a:b", (None, "/a:b")), ("./x:y", (None, "./x:y")),
                                       ("-", (None, "-")), ("c:", ("c", "")), ("a:b:c", ("a", "b:c"))])
def test_split_arg_as_podman(text, want):
    assert files.split_arg(text) == want


class _St:
    def __init__(self, mode):
        self.st_mode = mode


DIR, REG, CHR = _St(0o40755), _St(0o100644), _St(0o20644)


@pytest.mark.parametrize("given,stat,src_dir,want", [
    ("/x/new", None, False, ("/x", "new")),
    ("/x/new", None, True, ("/x", "new")),
    ("/x/d", ("/x/d", DIR), True, ("/x/d", None)),
    ("/x/f", ("/real/f", REG), False, ("/real", "f")),
])
def test_destination_rules(given, stat, src_dir, want):
    d = files._plan(given, stat, src_dir, "on the host", lambda p: True)
    assert (d.dir_path, d.rename) == want


@pytest.mark.parametrize("given,stat,src_dir,words", [
    ("/x/new/", None, False, "could not be found"),
    ("/x/new", None, False, "could not be found"),  # its parent is missing
    ("/x/f", ("/x/f", REG), True, "must be a directory when copying a directory"),
    ("/x/new", None, None, "from stdin"),
    ("/x/f", ("/x/f", REG), None, "from stdin"),
    ("/dev/null", ("/dev/null", CHR), False, "must be a directory or a regular file"),
])
def test_destination_errors(given, stat, src_dir, words):
    with pytest.raises(UsageError, match=words):
        files._plan(given, stat, src_dir, "on the host", lambda p: False)


@pytest.mark.parametrize("ns,text", [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (944946102, "944.946102ms"),
                                     (10473900469, "10.473900469s"), (123 * 10**9, "2m3s"),
                                     (3600 * 10**9 + 5 * 10**8, "1h0m0.5s"), (-2000, "-2µs")])
def test_go_duration(ns, text):
    assert procs.go_duration(ns) == text


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (442400, "442.4kB"), (25280000000, "25.28GB"),
                                    (1234567, "1.235MB")])
def test_human_size(n, text):
    assert procs.human_size(n) == text


def test_descriptors():
    assert procs.parse_descriptors([]) == list(procs.DEFAULT_DESCRIPTORS)
    assert procs.parse_descriptors(["pid,comm", "%u"]) == ["pid", "comm", "user"]
    with pytest.raises(UsageError, match="unknown descriptor: bogus"):
        procs.parse_descriptors(["pid", "bogus"])


def test_top_of_this_process_namespace():
    """pallet's own PID namespace stands in for a container's: this process is listed with the
    descriptors' texts."""
    rows = procs.top(os.getpid(), ["hpid", "comm", "state", "etime", "pcpu", "tty", "capeff"], {}, {})
    mine = [r for r in rows if r[0] == str(os.getpid())]
    assert len(mine) == 1
    assert mine[0][2] in "RSD" and mine[0][3][-1] == "s" and float(mine[0][4]) >= 0


def test_stats_of_this_process():
    s = procs.stats(os.getpid())
    assert set(s) == {"cpu_ns", "mem_usage", "mem_limit", "net_rx", "net_tx", "block_read", "block_write", "pids"}
    assert s["cpu_ns"] > 0 and s["mem_limit"] > 0 and s["pids"] >= 1


def test_commit_config_takes_the_containers_settings():
    cfg = {"Env": ["PATH=/bin", "KEEP=1"], "Cmd": ["/bin/sh"], "Labels": {"a": "1"}}
    meta = {"entrypoint": '["/bin/tini", "--"]', "args": ["/bin/tini", "--", "serve"], "command": ["serve"],
            "user": "1000", "labels": {"b": "2"}, "stop_signal": 2,
            "publish": [{"container_port": 80, "protocol": "tcp", "range": 2, "host_port": 8080}]}
    spec = {"process": {"env": ["PATH=/usr/bin", "container=pallet"], "cwd": "/srv"}}
    commit.apply_container(cfg, meta, spec)
    assert cfg == {"Env": ["KEEP=1", "PATH=/usr/bin", "container=pallet"], "Entrypoint": ["/bin/tini", "--"],
                   "Cmd": ["serve"], "User": "1000", "WorkingDir": "/srv", "Labels": {"a": "1", "b": "2"},
                   "ExposedPorts": {"80/tcp": {}, "81/tcp": {}}, "StopSignal": "SIGINT"}
