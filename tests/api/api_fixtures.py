"""What the Python API's tests share: the examples' image in the test registry (a module of
fixtures, imported by each test module: a conftest.py here would hide the suite's own)."""

from __future__ import annotations

import pytest

import buildtools


@pytest.fixture(scope="module")
def busybox(registry, tmp_path_factory):
    """The examples' image: a busybox image at REGISTRY/demo/busybox:1 (pushed through the API)."""
    import pallet

    layout = str(tmp_path_factory.mktemp("busybox") / "layout")
    buildtools.make_busybox_layout(layout, "1")
    ref = f"docker://{registry.host}/demo/busybox:1"
    pallet.copy(f"oci:{layout}:1", ref, tls_verify=False)
    return ref
