"""``--debug`` build: the store's `created new image ID` line once per image buildah would
commit (bud.bats counts it): a stage only copied from is not one, a stage used as a base is."""

from __future__ import annotations

import pytest

from test_store_images import s  # noqa: F401  (a fixture: pallet's store)

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize("second, expected", [("FROM scratch\nCOPY --from=one /a /b\n", 1),
                                              ("FROM one\nCOPY a /b\n", 2)])
def test_created_image_lines_follow_buildah(s, tmp_path, second, expected):  # noqa: F811
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a\n")
    (ctx / "Dockerfile").write_text("FROM scratch AS one\nCOPY a /a\n" + second)
    p = s("--debug", "build", "--layers=false", str(ctx))  # with --layers every step is an image
    lines = [x for x in p.stderr.splitlines() if "created new image ID" in x]
    assert len(lines) == expected, p.stderr
    assert f'created new image ID "{p.stdout.split()[-1]}"' in lines[-1]  # the built image's, last
