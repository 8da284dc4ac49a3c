"""Attacks on podman-style containers: an image's /etc/passwd or /etc/group that points out of
its rootfs (a symlink, absolute or with ..) must not make pallet read a host file when it
resolves ``-u NAME``; hostile passwd entries are one-line errors."""

from __future__ import annotations

import os

import pytest

from pallet.containers.container import Containers
from pallet.errors import ContainerError

pytestmark = pytest.mark.unit


def _rootfs(tmp_path, target: str):
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("intruder:x:0:0::/:/bin/sh\n")
    (outside / "group").write_text("wheel:x:0:intruder\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink(target.replace("OUTSIDE", str(outside)), root / "etc" / "passwd")
    os.symlink(target.replace("OUTSIDE", str(outside)).replace("passwd", "group"), root / "etc" / "group")
    return str(root)


@pytest.mark.parametrize("target", ["OUTSIDE/passwd", "../../host-etc/passwd", "/../../host-etc/passwd"])
def test_user_names_are_never_read_from_outside_the_rootfs(tmp_path, target):
    root = _rootfs(tmp_path, target)
    with pytest.raises(ContainerError, match="unable to find user intruder"):
        Containers.resolve_user(None, root, "intruder")
    with pytest.raises(ContainerError, match="unable to find group wheel"):
        Containers.resolve_user(None, root, "0:wheel")


def test_an_inside_symlink_is_followed_inside(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc" / "real").mkdir(parents=True)
    (root / "etc" / "real" / "passwd").write_text("app:x:1000:1000::/:/bin/sh\n")
    os.symlink("/etc/real/passwd", root / "etc" / "passwd")  # absolute: relative to the rootfs
    assert Containers.resolve_user(None, str(root), "app") == (1000, 1000, [])


@pytest.mark.parametrize("text", ["app:x:1000", "app:x:-1:0", "app:x:4294967296:0", "app:x:１２:0"])
def test_hostile_passwd_entries_are_one_line_errors(tmp_path, text):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(text + "\n")
    (root / "etc" / "group").mkdir()  # not a file: ignored
    with pytest.raises(ContainerError) as e:
        Containers.resolve_user(None, str(root), "app")
    assert "\n" not in str(e.value) and "app" in str(e.value)


@pytest.mark.parametrize("hostname", ["a\tb", "a b", "a/b", "h" * 65, "\u00e9t\u00e9", "", "a\0b"])
def test_hostname_check(hostname):
    from pallet.containers.container import check_hostname
    from pallet.errors import UsageError

    with pytest.raises(UsageError, match="invalid --hostname"):
        check_hostname(hostname)
    check_hostname("my-host.example")


def test_hostile_hostnames_are_refused_before_anything_is_made(tmp_path):
    """--hostname is written into the container's /etc/hosts and /etc/hostname: a newline added
    host entries of the caller's choosing there (run and pod create)."""
    from conftest import run_pallet

    hostname = "a\n6.6.6.6 evil.example"
    root = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "--storage-driver", "vfs"]
    for args in (("run", "--rm", "--hostname", hostname, "localhost/none:v1", "true"),
                 ("pod", "create", "--hostname", hostname)):
        p = run_pallet(*root, *args, check=False)
        assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
        assert "--hostname" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert run_pallet(*root, "ps", "-a", "-q").stdout == "" and run_pallet(*root, "pod", "ps", "-q").stdout == ""
