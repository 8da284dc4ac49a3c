"""The store's debug line for each image it makes (containers/image's `created new image ID`,
which buildah's bud.bats counts): once per new image, never for one already stored."""

from __future__ import annotations

import pytest

import images
from test_store_images import s  # noqa: F401  (a fixture: pallet's store)

pytestmark = pytest.mark.usefixtures("isolated")


def test_created_new_image_id_once_per_new_image(s, tmp_path):  # noqa: F811
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    p = s("--debug", "copy", "-q", f"oci:{layout}:v1", "local:localhost/dbg:v1")
    iid = s("images", "-q", "--no-trunc", "localhost/dbg:v1").stdout.strip().removeprefix("sha256:")
    lines = [x for x in p.stderr.splitlines() if "created new image ID" in x]
    assert lines == [f'DEBUG created new image ID "{iid}" with metadata "{{}}"']
    # the same image again (another name): not new, not logged
    p = s("--debug", "copy", "-q", f"oci:{layout}:v1", "local:localhost/dbg:v2")
    assert "created new image ID" not in p.stderr
    # without --debug: nothing
    assert "created new image ID" not in s("copy", "-q", f"oci:{layout}:v1", "local:localhost/dbg:v3").stderr
