"""--cidfile and run's supervision flags, the pure parts (containers/cidfile.py, runflags.py)."""

from __future__ import annotations

import os

import pytest

from pallet.containers import cidfile, runflags
from pallet.errors import ContainerError, Unsupported, UsageError

pytestmark = pytest.mark.unit


def test_cidfile_is_made_once_and_never_through_a_link(tmp_path):
    path = str(tmp_path / "cid")
    assert cidfile.check_absent(path) == path
    cidfile.write(path, "abc123")
    assert open(path).read() == "abc123"
    with pytest.raises(ContainerError, match="container id file exists"):
        cidfile.check_absent(path)
    with pytest.raises(ContainerError, match="container id file exists"):
        cidfile.write(path, "other")
    target = tmp_path / "target"
    target.write_text("keep")
    os.symlink(target, tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for name in ("link", "dangling"):
        with pytest.raises(ContainerError, match="exists"):
            cidfile.check_absent(str(tmp_path / name))
        with pytest.raises(ContainerError, match="exists"):
            cidfile.write(str(tmp_path / name), "x")
    assert target.read_text() == "keep" and not os.path.lexists(tmp_path / "nowhere")
    with pytest.raises(ContainerError, match="does not exist"):
        cidfile.check_absent(str(tmp_path / "no" / "dir"))


def test_cidfile_read(tmp_path):
    f = tmp_path / "cid"
    f.write_text("abc123\nmore\n")
    assert cidfile.read(str(f)) == "abc123"  # the first line, as podman
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ContainerError, match="not a regular file"):
        cidfile.read(str(tmp_path / "fifo"))
    (tmp_path / "big").write_bytes(b"a" * (cidfile.MAX + 1))
    with pytest.raises(ContainerError, match="larger than"):
        cidfile.read(str(tmp_path / "big"))
    (tmp_path / "junk").write_bytes(b"../../etc\n")
    with pytest.raises(ContainerError, match="no container ID"):
        cidfile.read(str(tmp_path / "junk"))
    with pytest.raises(FileNotFoundError):
        cidfile.read(str(tmp_path / "none"))
    assert cidfile.targets(["a"], [str(f), str(tmp_path / "none")], ignore=True) == ["a", "abc123"]
    with pytest.raises(ContainerError, match="reading CIDFile"):
        cidfile.targets([], [str(tmp_path / "none")])


def test_runflags_meta(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert runflags.meta(None) == {} and runflags.meta(runflags.RunFlags()) == {}
    m = runflags.meta(runflags.RunFlags(cidfile="c", sdnotify="conmon", cgroups="no-conmon", timeout=5,
                                        no_hosts=True, health_on_failure="restart"))
    assert m == {"cidfile": os.path.abspath("c"), "sdnotify": "conmon", "timeout": 5, "no_hosts": True,
                 "health_on_failure": "restart"}
    assert runflags.meta(runflags.RunFlags(pod="p")) == {}  # --pod is pods.Pods.join's
    for kw, err in (({"sdnotify": "x"}, UsageError), ({"cgroups": "split"}, Unsupported),
                    ({"cgroups": "x"}, UsageError), ({"timeout": -1}, UsageError), ({"preserve_fds": -1}, UsageError),
                    ({"health_on_failure": "x"}, UsageError), ({"pidfile": ""}, UsageError)):
        with pytest.raises(err):
            runflags.meta(runflags.RunFlags(**kw))
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    with pytest.raises(Unsupported, match="not supported yet"):
        runflags.meta(runflags.RunFlags(sdnotify="container"))
    assert runflags.conmon_args({"timeout": 3}, 2) == ["-T", "3", "--runtime-opt", "--preserve-fds",
                                                       "--runtime-opt", "2"]


def test_notify_abstract_and_path_sockets(tmp_path, monkeypatch):
    import socket

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert runflags.notify("READY=1") is False
    name = f"pallet-test-{os.getpid()}"
    for addr, env in (("\0" + name, "@" + name), (str(tmp_path / "s"), str(tmp_path / "s"))):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(addr)
        try:
            monkeypatch.setenv("NOTIFY_SOCKET", env)
            assert runflags.notify("READY=1") is True
            assert s.recv(100) == b"READY=1"
        finally:
            s.close()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "none"))
    with pytest.raises(ContainerError, match="notifying systemd"):
        runflags.notify("READY=1")
