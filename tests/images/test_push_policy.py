"""``push`` reads the store's own image whatever the trust policy says (buildah's and podman's
push force local storage to be accepted); every other source is still checked."""

from __future__ import annotations

import json
import os

import pytest

import images
from test_store_images import s  # noqa: F401  (a fixture: pallet's store)

pytestmark = pytest.mark.usefixtures("isolated")


def test_push_from_the_store_ignores_a_deny_all_policy(s, tmp_path):  # noqa: F811
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    s("copy", "-q", f"oci:{layout}:v1", "local:localhost/pushpol:v1")
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"default": [{"type": "reject"}]}))
    s("--policy", str(deny), "push", "-q", "localhost/pushpol:v1", f"dir:{tmp_path}/out")
    assert os.path.exists(tmp_path / "out" / "manifest.json")
    # the same image as the source of a copy (skopeo's verb) is checked, as are other sources
    p = s("--policy", str(deny), "copy", "-q", "local:localhost/pushpol:v1", f"dir:{tmp_path}/out2", check=False)
    assert p.returncode != 0 and "Source image rejected: Running image" in p.stderr
    assert not os.path.exists(tmp_path / "out2")
    p = s("--policy", str(deny), "copy", "-q", f"oci:{layout}:v1", "local:localhost/other:v1", check=False)
    assert p.returncode != 0 and "rejected by policy" in p.stderr
