"""``build -t TRANSPORT:REF`` (buildah's): the image goes there, none is left in the store, and
the policy is not evaluated on the store's image being copied out."""

from __future__ import annotations

import json
import os

import pytest

from test_store_images import s  # noqa: F401  (a fixture: pallet's store)

pytestmark = pytest.mark.usefixtures("isolated")


def test_build_tag_with_a_transport_commits_there(s, tmp_path):  # noqa: F811
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (ctx / "a").write_text("a\n")
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"default": [{"type": "reject"}]}))
    out = tmp_path / "out"
    s("--policy", str(deny), "build", "-q", "-t", f"dir:{out}", str(ctx))
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["layers"]) == 1
    assert json.loads(s("images", "--format", "json").stdout or "[]") == []
    # a bad transport reference is said before anything is built
    p = s("build", "-t", "oci:", str(ctx), check=False)
    assert p.returncode == 125 and "tag oci:" in p.stderr
    assert not os.path.exists(tmp_path / "oci")
