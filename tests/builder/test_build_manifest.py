"""Manifest lists in the store (issue 16): ``build --manifest``, ``manifest create|add|remove|
inspect|exists|rm|push`` as podman and buildah use them, lists among ``images`` and removed by
``rmi``; pushed lists read back by skopeo from an OCI layout and a real registry."""

from __future__ import annotations

import json
import subprocess

from buildtools import PalletStore, base, pallet  # noqa: F401  (fixtures)
from conftest import need


def _ctx(tmp_path, dockerfile: str, name: str = "ctx") -> str:
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return str(ctx)


def test_build_manifest_and_the_verbs(pallet, tmp_path, registry):
    # -q: the ID alone on stdout (RUN's own stdout dropped, as buildah)
    iid = pallet("build", "-q", "--manifest", "testlist", "-t", "arch-test",
                 _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo hello\n")).stdout.strip()
    assert len(iid) == 64, iid
    digest = pallet.store().image(iid)["digest"]
    doc = json.loads(pallet("manifest", "inspect", "testlist").stdout)
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [(m["digest"], m["platform"]["os"]) for m in doc["manifests"]] == [(digest, "linux")]
    assert "localhost/testlist" in pallet("images").stdout
    # a second build into the same list adds its image
    iid2 = pallet("build", "-q", "--manifest", "testlist",
                  _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN touch /two\n", "c2")).stdout.strip()
    doc = json.loads(pallet("manifest", "inspect", "testlist").stdout)
    assert [m["digest"] for m in doc["manifests"]] == [digest, pallet.store().image(iid2)["digest"]]

    # create (with an image), exists, add with a platform, remove, rm; errors change nothing
    pallet("manifest", "create", "--format", "oci", "other", "arch-test")
    assert pallet("manifest", "exists", "other").returncode == 0
    p = pallet("manifest", "exists", "nothere", check=False)
    assert p.returncode == 1 and p.stderr == ""
    pallet("manifest", "add", "--arch", "arm64", "--variant", "v8", "other", iid2)
    doc = json.loads(pallet("manifest", "inspect", "other").stdout)
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert doc["manifests"][1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    pallet("manifest", "remove", "other", digest)
    assert len(json.loads(pallet("manifest", "inspect", "other").stdout)["manifests"]) == 1
    for args, said in ((("manifest", "create", "other"), "already in use"),
                       (("manifest", "create", "arch-test"), "already in use by an image"),
                       (("manifest", "create", "third", "no-such-image"), "no-such-image"),
                       (("manifest", "add", "other", "docker://example.com/x"), "not supported yet"),
                       (("manifest", "inspect", "nothere"), "nothere")):
        p = pallet(*args, check=False)
        assert p.returncode == 125 and said in p.stderr and p.stderr.count("\n") == 1, (args, p.stderr)
    assert pallet("manifest", "exists", "third", check=False).returncode == 1

    # push: every instance, then the list; skopeo reads both back
    skopeo = need("skopeo")
    layout = tmp_path / "oci"
    pallet("manifest", "push", "testlist", f"oci:{layout}:l")
    raw = json.loads(subprocess.run([skopeo, "inspect", "--raw", f"oci:{layout}:l"], capture_output=True, text=True,
                                    check=True).stdout)
    assert [m["digest"] for m in raw["manifests"]] == [m["digest"] for m in doc["manifests"]] or \
        len(raw["manifests"]) == 2
    ref = f"{registry.host}/build/manifest-list:t"
    pallet("manifest", "push", "--tls-verify=false", "--rm", "testlist", f"docker://{ref}")
    raw = json.loads(subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                                    capture_output=True, text=True, check=True).stdout)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert len(raw["manifests"]) == 2
    assert pallet("manifest", "exists", "testlist", check=False).returncode == 1  # --rm

    # rmi removes a list (not its images); rm several, one unknown: 125, the others gone
    out = pallet("rmi", "other").stdout
    assert "Untagged: localhost/other:latest" in out and "Deleted:" in out
    assert "arch-test" in pallet("images").stdout
    pallet("manifest", "create", "a1")
    p = pallet("manifest", "rm", "a1", "nothere", check=False)
    assert p.returncode == 125 and pallet("manifest", "exists", "a1", check=False).returncode == 1
