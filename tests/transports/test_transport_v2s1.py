"""``copy --format v2s1``: Docker schema 1, signed, as skopeo writes it. The unsigned payload is
skopeo's byte for byte (same digest); a registry that verifies schema 1 signatures takes pallet's;
skopeo reads what pallet wrote; destinations that cannot hold schema 1 refuse it up front."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest

import images
from conftest import run_pallet
from pallet.transports import schema1

HISTORY = [
    {"created": "2023-11-14T22:13:20Z", "created_by": "layer 0", "comment": "made <here> & now"},
    {"created": "2023-11-14T22:13:20.500000000Z", "created_by": "/bin/sh -c #(nop) ENV X=1", "empty_layer": True},
    {"created": "2023-11-14T22:13:21.25+02:00", "created_by": "layer 1", "author": "someone"},
    {"created_by": "layer 2"},
    {"created": "2023-11-14T22:13:22Z", "created_by": '/bin/sh -c #(nop) CMD ["sh"]', "empty_layer": True},
]


@pytest.fixture
def layout(tmp_path):
    root = str(tmp_path / "src")
    images.make_layout(root, "v1", config_extra={"history": HISTORY})
    return root


def unsigned(raw: bytes) -> dict:
    doc = json.loads(raw)
    assert len(doc.pop("signatures")) == 1
    return doc


def skopeo_digest(skopeo: str, ref: str, *flags: str) -> str:
    out = subprocess.run([skopeo, "inspect", *flags, ref], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["Digest"]


def test_v2s1_is_skopeos_payload(layout, tmp_path, skopeo):
    run_pallet("copy", "--format", "v2s1", f"oci:{layout}:v1", f"dir:{tmp_path}/p")
    subprocess.run([skopeo, "copy", "-q", "--format", "v2s1", f"oci:{layout}:v1", f"dir:{tmp_path}/s"],
                   check=True, capture_output=True)
    assert sorted(os.listdir(tmp_path / "p")) == sorted(os.listdir(tmp_path / "s"))  # layers + the empty one
    assert schema1.GZIPPED_EMPTY_LAYER_DIGEST[7:] in os.listdir(tmp_path / "p")
    p = (tmp_path / "p" / "manifest.json").read_bytes()
    s = (tmp_path / "s" / "manifest.json").read_bytes()
    assert unsigned(p) == unsigned(s)
    # the digest is over the unsigned bytes: equal digests mean the same bytes
    assert skopeo_digest(skopeo, f"dir:{tmp_path}/p") == skopeo_digest(skopeo, f"dir:{tmp_path}/s")
    doc = unsigned(p)
    assert len(doc["fsLayers"]) == len(HISTORY) and doc["schemaVersion"] == 1
    top = json.loads(doc["history"][0]["v1Compatibility"])
    assert top["throwaway"] is True and top["config"]["Cmd"] == ["/bin/sh"]
    # each reads the other's back into an image it can convert
    subprocess.run([skopeo, "copy", "-q", f"dir:{tmp_path}/p", f"oci:{tmp_path}/back:x"], check=True,
                   capture_output=True)
    run_pallet("copy", f"dir:{tmp_path}/s", f"oci:{tmp_path}/pback:x")
    # and pallet copies a schema 1 image as it is when asked for v2s1 again
    run_pallet("copy", "--format", "v2s1", f"dir:{tmp_path}/s", f"dir:{tmp_path}/again")
    assert (tmp_path / "again" / "manifest.json").read_bytes() == s


def test_v2s1_registry_verifies_pallets_signature(layout, tmp_path, make_registry, skopeo):
    """docker/distribution checks a schema 1 manifest's JWS signature when it accepts one: pallet's
    passes, the same manifest with one byte of its signature changed does not."""
    reg = make_registry(extra={"compatibility": {"schema1": {"enabled": True}}})
    ref = f"docker://{reg.host}/v2s1/app:t"
    run_pallet("copy", "--format", "v2s1", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    raw = run_pallet("inspect", "--raw", "--tls-verify=false", ref).stdout.encode()
    doc = unsigned(raw)
    assert doc["name"] == "v2s1/app" and doc["tag"] == "t"
    p = (tmp_path / "local")
    run_pallet("copy", "--format", "v2s1", f"oci:{layout}:v1", f"dir:{p}")
    assert skopeo_digest(skopeo, ref, "--tls-verify=false") != ""  # skopeo reads it from the registry
    subprocess.run([skopeo, "copy", "-q", "--src-tls-verify=false", ref, f"oci:{tmp_path}/back:x"], check=True,
                   capture_output=True)
    i = raw.index(b'"signature":"') + len(b'"signature":"')
    bad = raw[:i] + (b"A" if raw[i:i + 1] != b"A" else b"B") + raw[i + 1:]
    req = urllib.request.Request(f"http://{reg.host}/v2/v2s1/app/manifests/bad", data=bad, method="PUT",
                                 headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert b"MANIFEST_UNVERIFIED" in e.value.read()


def test_v2s1_refused_where_it_cannot_be_stored(layout, multi_layout, tmp_path):
    p = run_pallet("copy", "--format", "v2s1", f"oci:{layout}:v1", f"oci:{tmp_path}/out:x", check=False)
    assert p.returncode == 1 and "cannot store Docker schema 1" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not os.path.exists(tmp_path / "out" / "index.json")
    p = run_pallet("copy", "--all", "--format", "v2s1", f"oci:{multi_layout}:m", f"dir:{tmp_path}/d", check=False)
    assert p.returncode == 1 and "cannot be written as Docker schema 1" in p.stderr
    assert not os.path.exists(tmp_path / "d" / "manifest.json")


@pytest.mark.unit
def test_v2s1_signature_is_a_valid_libtrust_jws():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    def unb64(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    history = HISTORY[:2] + [{"created_by": "last", "empty_layer": True}]
    config = json.dumps({"architecture": "arm64", "os": "linux", "history": history,
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    raw, empty = schema1.build(config, ["sha256:" + "2" * 64], "lib/app", "1")
    assert empty and raw.endswith(b"}")
    signed = schema1.sign(raw, now=0)
    sig = json.loads(signed)["signatures"][0]
    prot = json.loads(unb64(sig["protected"]))
    assert prot["time"] == "1970-01-01T00:00:00Z"
    # the payload is the signed document without its signatures: formatLength bytes + the tail
    assert signed[:prot["formatLength"]] + unb64(prot["formatTail"]) == raw
    jwk = sig["header"]["jwk"]
    assert sig["header"]["alg"] == "ES256" and jwk["crv"] == "P-256" and len(jwk["kid"].split(":")) == 12
    key = ec.EllipticCurvePublicNumbers(int.from_bytes(unb64(jwk["x"]), "big"), int.from_bytes(unb64(jwk["y"]), "big"),
                                        ec.SECP256R1()).public_key()
    rs = unb64(sig["signature"])
    key.verify(encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")),
               (sig["protected"] + "." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()).encode(),
               ec.ECDSA(hashes.SHA256()))
    doc = json.loads(raw)
    ids = [json.loads(h["v1Compatibility"]) for h in doc["history"]]
    # newest first, chained; the newest is the config itself
    assert ids[0]["parent"] == ids[1]["id"] and ids[1]["parent"] == ids[2]["id"] and "parent" not in ids[2]
    assert ids[0]["architecture"] == "arm64" and ids[0]["throwaway"] is True and "history" not in ids[0]
    assert ids[2]["comment"] == "made <here> & now" and ids[1]["throwaway"] is True
    assert ids[1]["created"] == "2023-11-14T22:13:20.5Z"  # Go's time: the fraction without its zeros
    assert ids[1]["container_config"] == {"Cmd": ["/bin/sh -c #(nop) ENV X=1"]}
    assert rb"made \\u003chere\\u003e \\u0026 now" in raw  # Go's HTML escaping, then the string's own


@pytest.mark.unit
def test_v2s1_refuses_an_image_without_history():
    from pallet import errors

    with pytest.raises(errors.Unsupported, match="0 history entries"):
        schema1.build(b'{"architecture":"amd64","os":"linux"}', ["sha256:" + "2" * 64])
    with pytest.raises(errors.InvalidDocument, match="more than the 0 distributed layers"):
        schema1.build(json.dumps({"history": [{"created_by": "x"}]}).encode(), [])
