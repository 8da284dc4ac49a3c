"""Attacks on the transports and the registry client, kept as regressions: hostile JSON in
the configuration files and image documents, registries that lie or stall."""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_pallet

pytestmark = pytest.mark.usefixtures("isolated")

DEEP = "[" * 50000 + "]" * 50000


def _one_line_error(p, *words):
    assert p.returncode != 0, p.stdout
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _empty_layout(root, index_text='{"schemaVersion":2,"manifests":[]}'):
    os.makedirs(os.path.join(root, "blobs", "sha256"))
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(root, "index.json"), "w") as f:
        f.write(index_text)


# --- JSON nested 50k deep, wrong JSON types (issue 14.11) --------------------------------------

def test_deep_index_json_names_the_file(tmp_path):
    lay = str(tmp_path / "l")
    _empty_layout(lay, '{"schemaVersion":2,"manifests":' + DEEP + "}")
    p = run_pallet("inspect", f"oci:{lay}", check=False)
    _one_line_error(p, "index.json", "nested too deeply")


def test_deep_policy_json_names_the_file(tmp_path):
    lay = str(tmp_path / "l")
    _empty_layout(lay)
    pol = tmp_path / "policy.json"
    pol.write_text(DEEP)
    p = run_pallet("--policy", str(pol), "copy", f"oci:{lay}", f"dir:{tmp_path / 'd'}", check=False)
    _one_line_error(p, str(pol), "nested too deeply")


@pytest.mark.parametrize("doc, field", [
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": 5}, "transports"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": []}}, "transports.oci"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"": 7}}}, "transports.oci"),
    ({"default": [5]}, "default[0]"),
    ({"default": [{"type": 5}]}, "default[0].type"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"": [
        {"type": "signedBy", "keyType": "GPGKeys", "keyData": "AA==",
         "signedIdentity": {"type": "exactReference", "dockerReference": [1]}}]}}},
     "signedIdentity.dockerReference"),
    ({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": {"a": 1}}]}, "default[0].keyPath"),
])
def test_policy_wrong_types_name_the_field(tmp_path, doc, field):
    lay = str(tmp_path / "l")
    _empty_layout(lay)
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps(doc))
    p = run_pallet("--policy", str(pol), "copy", f"oci:{lay}", f"dir:{tmp_path / 'd'}", check=False)
    _one_line_error(p, str(pol), field)


@pytest.mark.parametrize("doc, words", [
    ({"auths": []}, ["auths"]),
    ({"auths": {"127.0.0.1:1": {"auth": 5}}}, ["auths['127.0.0.1:1'].auth"]),
    ({"auths": {"127.0.0.1:1": {"auth": "", "identitytoken": ["x"]}}}, ["identitytoken"]),
    ({"auths": {"127.0.0.1:1": "x"}}, ["auths['127.0.0.1:1']"]),
    ({"credHelpers": 5}, ["credHelpers"]),
    ({"credsStore": 5}, ["credsStore"]),
])
def test_auth_json_wrong_types_name_the_field(tmp_path, doc, words):
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(doc))
    p = run_pallet("inspect", "--authfile", str(auth), "docker://127.0.0.1:1/x", check=False)
    _one_line_error(p, str(auth), *words)


def test_deep_auth_json_names_the_file(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths":' + DEEP + "}")
    p = run_pallet("inspect", "--authfile", str(auth), "docker://127.0.0.1:1/x", check=False)
    _one_line_error(p, str(auth), "nested too deeply")


def test_deep_manifest_in_layout(tmp_path):
    import hashlib

    lay = str(tmp_path / "l")
    raw = ('{"schemaVersion":2,"config":' + DEEP + "}").encode()
    dg = hashlib.sha256(raw).hexdigest()
    _empty_layout(lay, json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{dg}",
        "size": len(raw), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    with open(os.path.join(lay, "blobs", "sha256", dg), "wb") as f:
        f.write(raw)
    p = run_pallet("inspect", f"oci:{lay}:t", check=False)
    _one_line_error(p, "nested too deeply")
