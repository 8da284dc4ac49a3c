"""Attacks on and corruption of the local store: each reproduced through the real command,
checking the store (or a foreign one) is left as it should be and the user gets one line."""

from __future__ import annotations

import json
import os

import pytest

from test_store_images import _image
from test_storage import StoreCLI

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def s(tmp_path):
    st = StoreCLI(str(tmp_path / "store"), "overlay")
    yield st
    st.cleanup()


def test_check_finds_a_manifest_naming_a_blob_the_store_lacks(s, registry, tmp_path):
    """What save -> load in one store used to leave: a second manifest (the archive's, with plain
    tar layers) whose blobs were never kept. check must see it; --repair forgets that manifest
    and keeps the image, which still saves."""
    ref = _image(registry, tmp_path, "adv/blobless")
    s("pull", "-q", "--tls-verify=false", ref)
    archive = str(tmp_path / "a.tar")
    s("save", "-o", archive, ref)
    s("load", "-i", archive)
    with open(os.path.join(s.root, "images.json")) as f:
        (rec,) = json.load(f).values()
    assert len(rec["manifests"]) == 2
    other = next(d for d in rec["manifests"] if d != rec["digest"])
    with open(os.path.join(s.root, "blobs", "sha256", other.split(":", 1)[1])) as f:
        plain_blob = json.load(f)["layers"][0]["digest"]
    os.unlink(os.path.join(s.root, "blobs", "sha256", plain_blob.split(":", 1)[1]))
    p = s("system", "check", check=False)
    assert p.returncode == 1
    assert f"manifest {other} names layer blob {plain_blob}" in p.stdout
    s("system", "check", "--repair")
    s("system", "check")
    with open(os.path.join(s.root, "images.json")) as f:
        (rec,) = json.load(f).values()
    assert list(rec["manifests"]) == [rec["digest"]] and rec["digests"] == [rec["digest"]]
    s("save", "-o", str(tmp_path / "b.tar"), ref)
