"""Attacks on the network definitions and verbs: hostile names, files and values must give one
line naming the input, exit 125 (podman's), and touch nothing outside the config directory."""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_pallet

pytestmark = pytest.mark.unit  # definitions only: nothing is attached, no root, no peer tool


@pytest.fixture
def cfg(tmp_path):
    d = tmp_path / "networks"
    d.mkdir()
    return d


def _pallet(tmp_path, cfg, *args):
    return run_pallet("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "network",
                      "--network-config-dir", str(cfg), *args, check=False,
                      env={"PALLET_NETWORK_CONFIG_DIR": ""})


def _one_line(p, code=125):
    assert p.returncode == code, (p.returncode, p.stderr)
    assert p.stderr.startswith("Error: ") and len(p.stderr.strip().splitlines()) == 1
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr


def _default(cfg):
    """A default network written by hand, so no test here reads the host's routes."""
    (cfg / "pallet.json").write_text(json.dumps({"name": "pallet", "id": "b" * 64, "driver": "bridge",
                                                 "network_interface": "pallet0",
                                                 "subnets": [{"subnet": "10.250.0.0/16", "gateway": "10.250.0.1"}]}))


@pytest.mark.parametrize("name", ["../../escape", "/abs", "a/b", ".hidden", "-flag", "a b", "é", "x" * 201, "a\nb"])
def test_hostile_network_names(tmp_path, cfg, name):
    _default(cfg)
    p = _pallet(tmp_path, cfg, "create", "--subnet", "10.251.0.0/24", "--", name)
    _one_line(p)
    assert "invalid network name" in p.stderr
    assert sorted(os.listdir(cfg)) == ["pallet.json"] and not (tmp_path / "escape.json").exists()


@pytest.mark.parametrize("content, words", [
    ("[" * 100000, "nested too deeply"),
    ('{"name": "evil", "id": "' + "c" * 64 + '", "driver": "bridge", "subnets": [{"subnet": "10.9.0.0/24"}]}',
     "does not match the file name"),
    ('{"name": "evil", "id": "' + "c" * 64 + '", "driver": "bridge", "subnets": [{"subnet": "10.9.0.0/24", '
     '"lease_range": {"start_ip": 167772160}}]}', "start_ip"),
    ('{"name": "evil", "subnets": {"a": 1}}', "id"),
    ("\xff\xfe", "not valid JSON"),
    (" " * (1 << 20) + "{}", "larger than 1 MiB"),
])
def test_hostile_definition_files(tmp_path, cfg, content, words):
    _default(cfg)
    (cfg / "evil2.json").write_bytes(content.encode("utf-8", "surrogateescape") if content != "\xff\xfe"
                                     else b"\xff\xfe")
    for args in (["ls"], ["inspect", "pallet"], ["create", "--subnet", "10.252.0.0/24", "x"]):
        p = _pallet(tmp_path, cfg, *args)
        _one_line(p)
        assert "evil2.json" in p.stderr and words in p.stderr
    assert not (cfg / "x.json").exists()


def test_lookup_is_by_name_never_by_path(tmp_path, cfg):
    _default(cfg)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"name": "secret", "id": "d" * 64, "driver": "bridge",
                                  "subnets": [{"subnet": "10.253.0.0/24"}]}))
    for args in (["inspect", "../secret"], ["rm", "../secret"], ["exists", "../secret"]):
        p = _pallet(tmp_path, cfg, *args)
        assert p.returncode in (1, 125) and "network not found" in p.stderr
    assert secret.exists()


def test_ambiguous_and_empty_ids(tmp_path, cfg):
    _default(cfg)
    for i, c in enumerate("ab"):
        (cfg / f"n{i}.json").write_text(json.dumps({"name": f"n{i}", "id": "e" + c * 63, "driver": "bridge",
                                                    "subnets": [{"subnet": f"10.24{i}.0.0/24"}]}))
    p = _pallet(tmp_path, cfg, "inspect", "e")
    _one_line(p)
    assert "ambiguous" in p.stderr
    assert json.loads(_pallet(tmp_path, cfg, "inspect", "ea").stdout)[0]["name"] == "n0"
    _one_line(_pallet(tmp_path, cfg, "inspect", ""))


def test_filter_values_are_checked_first(tmp_path, cfg):
    _default(cfg)
    for f, words in (("name=(", "invalid filter"), ("until=soon", "until"), ("dangling=maybe", "dangling"),
                     ("driver=macvlan", "driver")):
        p = _pallet(tmp_path, cfg, "ls", "--filter", f)
        _one_line(p)
        assert words in p.stderr
    p = _pallet(tmp_path, cfg, "prune", "-f", "--filter", "name=x")
    _one_line(p)
    assert (cfg / "pallet.json").exists()
