"""Secrets by their published formats (cloud keys, registry and service tokens): each is found
in the file and layer that holds it; a string too short for its format is not. The values are
made up, shaped as each issuer documents its tokens."""

from __future__ import annotations

import hashlib
import json

import images
from test_scan import _scan
from test_storage import StoreCLI

B64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
SECRETS = {
    "etc/gcp.conf": ("secret-gcp-api-key", "key = AIza" + "SyA1b2C3d4E5f6G7h8I9j0K_L-M1n2O3p4q\n"),
    "etc/azure.env": ("secret-azure-storage-key", "AZ=DefaultEndpointsProtocol=https;AccountName=x;AccountKey="
                      + (B64 * 2)[:86] + "==;EndpointSuffix=core.windows.net\n"),
    "root/.gitlab": ("secret-gitlab-token", "token: glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn\n"),
    "root/.npmrc": ("secret-npm-token", "//registry.npmjs.org/:_authToken=npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\n"),
    "root/.pypirc": ("secret-pypi-token", "password = pypi-AgEIcHlwaS5vcmc" + "CJ" * 30 + "\n"),
    "srv/app/settings.py": ("secret-stripe-key", 'STRIPE = "sk_live_' + "4eC39HqLyjWDarjtT1zdp7dc" + '"\n'),
    "srv/app/sa.json": ("secret-private-key", json.dumps({"type": "service_account", "private_key":
                        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"})),
}
NEAR_MISSES = {
    "etc/short.txt": "AIzaShort glpat-short npm_short sk_live_short AccountKey=abc== pypi-AgEIcHlwaS5vcmcX\n",
    # a binary file (a NUL in its first 8 KiB): token formats are looked for in text files only...
    "usr/lib/libtoken.so": b"\x7fELF\x02\x01\x01\0" + b"npm_" + b"a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\n",
}
#: ...private keys, AWS, GitHub and Slack ones in every file
BINARY_KEY = {"usr/lib/libkey.so": b"\x7fELF\x02\x01\x01\0-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"}


def test_secret_formats_are_found_and_near_misses_are_not(tmp_path):
    layers = [{p: text for p, (_, text) in SECRETS.items()}, dict(NEAR_MISSES, **BINARY_KEY)]
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=layers, config_extra={"config": {"User": "1000", "Healthcheck": {
        "Test": ["CMD", "/bin/true"]}}})
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = _scan(store, "--format", "json", f"oci:{layout}:latest", rc=0)
        r = json.loads(p.stdout)["results"][0]
        layer0 = "sha256:" + hashlib.sha256(images.layer_tar(layers[0])).hexdigest()
        got = {(f["rule"], f["path"], f["layer"], f["severity"]) for f in r["policy"]}
        layer1 = "sha256:" + hashlib.sha256(images.layer_tar(layers[1])).hexdigest()
        assert got == {(rule, "/" + path, layer0, "high") for path, (rule, _) in SECRETS.items()} | {
            ("secret-private-key", "/usr/lib/libkey.so", layer1, "high")}
        _scan(store, "--fail-on", "high", f"oci:{layout}:latest", rc=3)
    finally:
        store.cleanup()
