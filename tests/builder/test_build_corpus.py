"""The Dockerfile corpus (tests/builder/build_corpus/*), built with pallet and with Debian's
``buildah bud``: the same files (paths, types, modes, owners, link targets, contents) and the
same config. ``@BASE@`` in a Dockerfile is the busybox test image in the test registry."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from buildtools import CORPUS, Buildah, PalletStore, compare_configs, compare_trees, make_busybox_layout
from conftest import need

CASES = sorted(d for d in os.listdir(CORPUS) if os.path.isfile(os.path.join(CORPUS, d, "Dockerfile")))


@pytest.fixture(scope="module")
def base(registry, tmp_path_factory):
    layout = str(tmp_path_factory.mktemp("bb") / "layout")
    make_busybox_layout(layout, "v1")
    import subprocess

    ref = f"{registry.host}/corpus/busybox"
    subprocess.run([need("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{ref}:v1"], check=True, capture_output=True)
    return ref


@pytest.fixture(scope="module")
def buildah(tmp_path_factory):
    b = Buildah(str(tmp_path_factory.mktemp("buildah")))
    yield b
    b.cleanup()


@pytest.fixture(scope="module")
def pallet(tmp_path_factory):
    s = PalletStore(str(tmp_path_factory.mktemp("pallet") / "store"))
    yield s
    s.unmount_all()


def _context(case: str, dest: str, base: str) -> str:
    shutil.copytree(os.path.join(CORPUS, case), dest, symlinks=True)
    meta_path = os.path.join(dest, "case.json")
    if os.path.exists(meta_path):  # what git cannot carry: empty directories, special mode bits
        with open(meta_path) as f:
            meta = json.load(f)
        for d in meta.get("dirs", []):
            os.makedirs(os.path.join(dest, d), exist_ok=True)
        for rel, mode in meta.get("modes", {}).items():
            os.chmod(os.path.join(dest, rel), int(mode, 8))
    path = os.path.join(dest, "Dockerfile")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("@BASE@", base + ":v1").replace("@BASE_REPO@", base))
    return dest


@pytest.mark.parametrize("case", CASES)
def test_corpus_matches_buildah(case, base, buildah, pallet, tmp_path):
    ctx = _context(case, str(tmp_path / "ctx"), base)
    meta = {}
    if os.path.exists(os.path.join(ctx, "case.json")):
        with open(os.path.join(ctx, "case.json")) as f:
            meta = json.load(f)
    fmt = meta.get("format", "oci")
    name = f"corpus-{case.replace('_', '-')}"
    extra = [a.replace("@CTX@", ctx) for a in meta.get("args", [])]  # @CTX@: the context's path
    # "bud": buildah's defaults (one layer per stage, as the buildah build below), else podman's
    # (a layer per step: the files must come out the same either way)
    verb = meta.get("pallet", "build")
    p = pallet(verb, "--tls-verify=false", "-t", name, *extra, ctx)
    assert "STEP 1/" in p.stdout
    buildah("bud", "--tls-verify=false", "--layers=false", "-t", name, *extra, ctx)
    ours, theirs = pallet.config(name), buildah.config(name, fmt)
    expect = meta.get("docker_expect", {})
    for k, v in expect.items():  # where buildah 1.28 differs from Docker's documented behaviour
        assert ours["config"].get(k) == v, k
        theirs["config"][k] = v
    assert compare_configs(ours, theirs) == []
    def entries(doc, text: bool):
        out = []
        for h in doc.get("history") or []:
            by = h.get("created_by", "")
            for verb in ("COPY", "ADD"):  # buildah names the sources by digest: the verb only
                if f"#(nop) {verb} " in by:
                    by = verb
            out.append((by.strip() if text else "", bool(h.get("empty_layer"))))
        return out

    if meta.get("history") or verb == "bud":
        # the history's layout (an entry per instruction, which ones own a layer) and the layers'
        # count when both sides layer alike; the entries' text too for a case that asks
        # ("history": true; pallet writes ENV and WORKDIR expanded, as Docker, where buildah
        # keeps the Dockerfile's text)
        text = meta.get("history") is True
        assert entries(ours, text) == entries(theirs, text)
        assert len(ours["rootfs"]["diff_ids"]) == len(theirs["rootfs"]["diff_ids"])
    assert ours["architecture"] == theirs["architecture"] and ours["os"] == theirs["os"]
    base_tree = pallet.tree(f"{base}:v1")
    diffs = compare_trees(pallet.tree(name), buildah.tree(name), base_tree)
    assert diffs == [], "\n".join(diffs)
    assert pallet.containers() == [] and pallet.mounts() == []
