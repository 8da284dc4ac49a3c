"""The copy engine and the transport verbs, end to end through ``pallet``, with skopeo as the judge."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

import images
from conftest import need, run_pallet, wait_for
from faultproxy import FaultProxy, Rule


pytestmark = pytest.mark.usefixtures("isolated")


def skopeo(*args) -> str:
    return subprocess.run([need("skopeo"), *args], capture_output=True, text=True, check=True).stdout


def sk_inspect(ref: str, *extra) -> dict:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, ref))


def sk_raw(ref: str) -> dict:
    return json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref))


def tree_bytes(root: str) -> dict:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture
def layout(tmp_path):
    path = str(tmp_path / "src")
    images.make_layout(path, "v1")
    return path


@pytest.fixture
def multi(tmp_path):
    path = str(tmp_path / "multi")
    images.make_multiarch_layout(path, "ml")
    return path


def test_roundtrip_keeps_digests(layout, registry, tmp_path):
    ref = f"docker://{registry.host}/copy/rt:v1"
    p = run_pallet("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    assert p.stdout == "" and "Copying blob" in p.stderr and "Writing manifest" in p.stderr
    # containers/image's lines, in its order (skopeo's own suite looks for the first and third)
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("Copying ")]
    assert lines == ["Getting image source signatures", "Writing manifest to image destination",
                     "Storing signatures"], p.stderr
    want = sk_inspect(f"oci:{layout}:v1")["Digest"]
    assert sk_inspect(ref)["Digest"] == want
    run_pallet("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/back:x")
    assert sk_inspect(f"oci:{tmp_path}/back:x")["Digest"] == want


def test_inspect_matches_skopeo(layout, registry):
    ref = f"docker://{registry.host}/copy/insp:v1"
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    mine = json.loads(run_pallet("inspect", "--tls-verify=false", ref).stdout)
    theirs = sk_inspect(ref)
    for key, value in theirs.items():
        assert mine[key] == value, key
    assert [d["Digest"] for d in mine["LayersData"]] == theirs["Layers"]
    assert list(mine)[:3] == ["Name", "Digest", "RepoTags"]
    raw = run_pallet("inspect", "--raw", "--tls-verify=false", ref).stdout
    assert json.loads(raw) == sk_raw(ref)
    cfg = json.loads(run_pallet("inspect", "--config", "--tls-verify=false", ref).stdout)
    assert cfg == json.loads(skopeo("inspect", "--config", "--tls-verify=false", ref))
    fmt = run_pallet("inspect", "--tls-verify=false", "--format", "{{.Digest}} {{.Architecture}}", ref).stdout
    assert fmt == f"{theirs['Digest']} amd64\n"


def test_format_conversion_both_ways(layout, registry, tmp_path):
    ref = f"docker://{registry.host}/copy/conv:v2s2"
    run_pallet("copy", "-q", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    raw = sk_raw(ref)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {x["mediaType"] for x in raw["layers"]} == {"application/vnd.docker.image.rootfs.diff.tar.gzip"}
    # the config is the same bytes: same image ID
    assert raw["config"]["digest"] == sk_raw(f"oci:{layout}:v1")["config"]["digest"]
    run_pallet("copy", "-q", "--format", "oci", "--src-tls-verify=false", ref, f"oci:{tmp_path}/back:x")
    back = sk_raw(f"oci:{tmp_path}/back:x")
    assert back["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # converting back gives the original manifest bytes' digest (Go-compatible serialisation)
    assert sk_inspect(f"oci:{tmp_path}/back:x")["Layers"] == sk_inspect(f"oci:{layout}:v1")["Layers"]


def test_zstd_recompression_keeps_diffids(layout, tmp_path):
    run_pallet("copy", "-q", "--dest-compress-format", "zstd", f"oci:{layout}:v1", f"oci:{tmp_path}/z:v1")
    raw = sk_raw(f"oci:{tmp_path}/z:v1")
    assert {x["mediaType"] for x in raw["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    for x in raw["layers"]:
        with open(os.path.join(tmp_path, "z", "blobs", "sha256", x["digest"][7:]), "rb") as f:
            assert f.read(4) == b"\x28\xb5\x2f\xfd"
    # skopeo copies it (1.9 cannot convert zstd to Docker formats); the layers decompress to the diffIDs
    skopeo("copy", "-q", f"oci:{tmp_path}/z:v1", f"dir:{tmp_path}/d")
    import zstandard

    cfg = json.loads(skopeo("inspect", "--config", f"dir:{tmp_path}/d"))
    got = []
    for x in raw["layers"]:
        with open(os.path.join(tmp_path, "d", x["digest"][7:]), "rb") as f:
            plain = zstandard.ZstdDecompressor().stream_reader(f).read()
        got.append("sha256:" + hashlib.sha256(plain).hexdigest())
    assert got == cfg["rootfs"]["diff_ids"]
    # zstd cannot be described by Docker schema 2
    p = run_pallet("copy", "--format", "v2s2", "--dest-compress-format", "zstd", f"oci:{layout}:v1",
                   f"oci:{tmp_path}/bad:x", check=False)
    assert p.returncode == 1 and "zstd" in p.stderr


def test_gzip_recompression_with_level(layout, tmp_path):
    run_pallet("copy", "-q", "--dest-decompress", f"oci:{layout}:v1", f"oci:{tmp_path}/plain:v1")
    assert {x["mediaType"] for x in sk_raw(f"oci:{tmp_path}/plain:v1")["layers"]} == \
        {"application/vnd.oci.image.layer.v1.tar"}
    run_pallet("copy", "-q", "--dest-compress-format", "gzip", "--dest-compress-level", "9",
               f"oci:{tmp_path}/plain:v1", f"oci:{tmp_path}/gz:v1")
    assert {x["mediaType"] for x in sk_raw(f"oci:{tmp_path}/gz:v1")["layers"]} == \
        {"application/vnd.oci.image.layer.v1.tar+gzip"}
    skopeo("copy", "-q", f"oci:{tmp_path}/gz:v1", f"dir:{tmp_path}/check")


def test_preserve_digests_refuses_and_writes_nothing(layout, tmp_path):
    dest = str(tmp_path / "dest")
    p = run_pallet("copy", "--preserve-digests", "--format", "v2s2", f"oci:{layout}:v1", f"oci:{dest}:x", check=False)
    assert p.returncode == 1 and "--preserve-digests" in p.stderr and p.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(dest, "index.json"))
    run_pallet("copy", "-q", "--preserve-digests", f"oci:{layout}:v1", f"oci:{dest}:x")


def test_digestfile_and_quiet(layout, tmp_path):
    df = str(tmp_path / "digest")
    p = run_pallet("copy", "--quiet", "--digestfile", df, f"oci:{layout}:v1", f"oci:{tmp_path}/d:x")
    assert p.stdout == "" and p.stderr == ""
    assert open(df).read() == sk_inspect(f"oci:{tmp_path}/d:x")["Digest"]


def test_multi_arch_modes(multi, registry, tmp_path):
    ref = f"docker://{registry.host}/copy/multi:1"
    run_pallet("copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{multi}:ml", ref)
    idx = sk_raw(ref)
    assert len(idx["manifests"]) == 3 and idx["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sk_inspect(ref)["Digest"] == sk_inspect(f"oci:{multi}:ml")["Digest"]
    # one platform, chosen by the override flags (arm/v7)
    run_pallet("--override-arch", "arm", "--override-variant", "v7", "copy", "-q", "--src-tls-verify=false",
               ref, f"oci:{tmp_path}/arm:x")
    got = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path}/arm:x"))
    assert (got["architecture"], got["variant"]) == ("arm", "v7")
    # the index only
    run_pallet("copy", "-q", "--multi-arch", "index-only", "--src-tls-verify=false", ref, f"oci:{tmp_path}/idx:x")
    assert sk_raw(f"oci:{tmp_path}/idx:x") == idx
    # to a Docker manifest list and back
    run_pallet("copy", "-q", "--all", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{multi}:ml",
               f"docker://{registry.host}/copy/list:1")
    lst = sk_raw(f"docker://{registry.host}/copy/list:1")
    assert lst["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert all(m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json" for m in lst["manifests"])
    run_pallet("copy", "-q", "--all", "--format", "oci", "--src-tls-verify=false",
               f"docker://{registry.host}/copy/list:1", f"oci:{tmp_path}/back:x")
    assert sk_raw(f"oci:{tmp_path}/back:x")["mediaType"] == "application/vnd.oci.image.index.v1+json"
    # no image for this platform
    p = run_pallet("--override-arch", "s390x", "copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/none:x",
                   check=False)
    # as skopeo: exit 1 (the image exists, not for this platform), containers/image's words
    assert p.returncode == 1 and "s390x" in p.stderr
    want = 'choosing image instance: no image found in image index for architecture s390x, variant "", OS linux'
    assert want in p.stderr
    p = run_pallet("--override-arch", "s390x", "inspect", "--tls-verify=false", ref, check=False)
    theirs = subprocess.run(["skopeo", "--override-arch", "s390x", "inspect", "--tls-verify=false", ref],
                            capture_output=True, text=True)
    assert p.returncode == theirs.returncode == 1
    assert f"parsing manifest for image: {want}" in p.stderr
    assert f"parsing manifest for image: {want}" in theirs.stderr.replace('\\"', '"')  # skopeo's is logrus-quoted


def test_reads_what_skopeo_wrote_as_docker_list(multi, tmp_path):
    skopeo("copy", "-q", "--all", "--format", "v2s2", f"oci:{multi}:ml", f"dir:{tmp_path}/sk")
    # the same docker list, copied as is, keeps its digest
    run_pallet("copy", "-q", "--all", f"dir:{tmp_path}/sk", f"dir:{tmp_path}/mine-dir")
    assert sk_inspect(f"dir:{tmp_path}/mine-dir")["Digest"] == sk_inspect(f"dir:{tmp_path}/sk")["Digest"]
    # into oci: it becomes an OCI index; unlike skopeo, the config bytes (the image ID) are kept
    run_pallet("copy", "-q", "--all", f"dir:{tmp_path}/sk", f"oci:{tmp_path}/mine:x")
    for arch in ("amd64", "arm64"):
        mine = sk_raw_over(f"oci:{tmp_path}/mine:x", arch)
        theirs = sk_raw_over(f"dir:{tmp_path}/sk", arch)
        assert mine["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert mine["config"]["digest"] == theirs["config"]["digest"]
        assert [x["digest"] for x in mine["layers"]] == [x["digest"] for x in theirs["layers"]]


def sk_raw_over(ref: str, arch: str) -> dict:
    """The raw manifest skopeo picks for ``arch`` from an index."""
    idx = json.loads(skopeo("inspect", "--raw", ref))
    digest = next(m["digest"] for m in idx["manifests"] if m["platform"]["architecture"] == arch)
    kind, _, rest = ref.partition(":")
    path = rest.rsplit(":", 1)[0] if kind == "oci" else rest
    blob = os.path.join(path, "blobs", "sha256", digest[7:]) if kind == "oci" else \
        os.path.join(path, digest[7:] + ".manifest.json")
    with open(blob) as f:
        return json.load(f)


def test_corrupt_blob_fails_and_leaves_the_destination_as_it_was(layout, registry, tmp_path):
    ref = f"{registry.host}/copy/corrupt:v1"
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{ref}")
    dest = str(tmp_path / "dest")
    other = str(tmp_path / "other")
    images.make_layout(other, "old", layers=[{"x": "y"}])
    run_pallet("copy", "-q", f"oci:{other}:old", f"oci:{dest}:old")
    before = tree_bytes(dest)
    layer = sk_raw(f"docker://{ref}")["layers"][2]["digest"]
    proxy = FaultProxy(registry.host)
    try:
        proxy.add(Rule("corrupt", "GET", f"/blobs/{layer}", times=100))
        p = run_pallet("copy", "--src-tls-verify=false", "--retry-times", "0", f"docker://{proxy.host}/copy/corrupt:v1",
                       f"oci:{dest}:new", check=False)
    finally:
        proxy.stop()
    assert p.returncode == 1 and "digest mismatch" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert tree_bytes(dest) == before


def test_broken_connection_is_resumed(registry, tmp_path):
    big = str(tmp_path / "big")
    images.make_layout(big, "v1", layers=[{"big.bin": os.urandom(4 << 20)}], compression="none")
    ref = f"{registry.host}/copy/resume:v1"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{big}:v1", f"docker://{ref}")
    layer = sk_raw(f"docker://{ref}")["layers"][0]["digest"]
    proxy = FaultProxy(registry.host)
    try:
        proxy.add(Rule("reset", "GET", f"/blobs/{layer}", after=1 << 20))
        run_pallet("copy", "-q", "--src-tls-verify=false", f"docker://{proxy.host}/copy/resume:v1",
                   f"oci:{tmp_path}/out:x")
        ranges = [e for e in proxy.entries(f"/blobs/{layer}") if e.get("status") == 206]
    finally:
        proxy.stop()
    assert ranges, "the second request must be a Range request"
    assert sk_inspect(f"oci:{tmp_path}/out:x")["Digest"] == sk_inspect(f"docker://{ref}")["Digest"]


def test_sync_repository_yaml_and_dir(layout, registry, tmp_path):
    for tag in ("a", "b"):
        run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{registry.host}/sync/src:{tag}")
    out = str(tmp_path / "mirror")
    run_pallet("sync", "-q", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
               f"{registry.host}/sync/src", out)
    assert sorted(os.listdir(out)) == ["src:a", "src:b"]
    assert sk_inspect(f"dir:{out}/src:a")["Digest"] == sk_inspect(f"oci:{layout}:v1")["Digest"]
    # dir back to a registry namespace
    run_pallet("sync", "-q", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", out,
               f"{registry.host}/synced")
    assert sk_inspect(f"docker://{registry.host}/synced/src:b")["Digest"] == sk_inspect(f"oci:{layout}:v1")["Digest"]
    # a YAML list, with a tag regex, into OCI layouts
    y = tmp_path / "sync.yml"
    y.write_text(f"{registry.host}:\n  tls-verify: false\n  images:\n    sync/src: [a]\n"
                 f"  images-by-tag-regex:\n    sync/src: ^b$\n")
    run_pallet("sync", "-q", "--src", "yaml", "--dest", "oci", str(y), str(tmp_path / "oci"))
    assert sk_inspect(f"oci:{tmp_path}/oci/src:b")["Digest"] == sk_inspect(f"oci:{layout}:v1")["Digest"]
    # one bad source: fails, or goes on with --keep-going and exits 1
    y.write_text(f"{registry.host}:\n  tls-verify: false\n  images:\n    sync/src: [a, nope]\n")
    p = run_pallet("sync", "--keep-going", "--src", "yaml", "--dest", "dir", str(y), str(tmp_path / "k"), check=False)
    assert p.returncode == 1 and os.path.isdir(tmp_path / "k" / "src:a")
    # --dry-run says what skopeo says, with its from="..." to="..." fields, and copies nothing
    src = f"{registry.host}/sync/src:a"
    args = ["sync", "--dry-run", "--src", "docker", "--dest", "dir", "--scoped", "--src-tls-verify=false", src,
            str(tmp_path / "dry")]
    p = run_pallet(*args)
    assert not os.path.exists(tmp_path / "dry")
    theirs = subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True)
    fields = f'from="docker://{src}" to="dir:{tmp_path}/dry/{src}"'
    for text in (p.stdout + p.stderr, theirs.stdout + theirs.stderr):
        assert "Would have copied image ref 1/1" in text and fields in text, text
        assert "Would have synced 1 images from 1 sources" in text, text


def test_delete_and_manifest_digest(layout, registry, tmp_path):
    ref = f"docker://{registry.host}/copy/del:v1"
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    raw = run_pallet("inspect", "--raw", "--tls-verify=false", ref).stdout
    mf = tmp_path / "m.json"
    mf.write_text(raw)
    assert run_pallet("manifest-digest", str(mf)).stdout == skopeo("manifest-digest", str(mf))
    run_pallet("delete", "--tls-verify=false", ref)
    p = run_pallet("inspect", "--tls-verify=false", ref, check=False)
    assert p.returncode == 2 and p.stderr.startswith("Error: ")
    # deleting from an oci: layout
    run_pallet("copy", "-q", f"oci:{layout}:v1", f"oci:{tmp_path}/l:keep")
    run_pallet("copy", "-q", f"oci:{layout}:v1", f"oci:{tmp_path}/l:gone")
    run_pallet("delete", f"oci:{tmp_path}/l:gone")
    refs = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.load(open(tmp_path / "l" / "index.json"))["manifests"]]
    assert refs == ["keep"]


@pytest.mark.parametrize("args,code,words", [
    (["inspect", "docker://"], 1, "invalid"),
    # no transport: podman's inspect of the store's objects (125), saying why it is no reference
    (["inspect", "nottransport:x"], 125, "unknown transport"),
    (["inspect", "busybox"], 125, "transport:details"),
    (["inspect", "docker://Upper/Case"], 1, "lowercase"),
    (["inspect", "oci:/nonexistent/path:x"], 2, "/nonexistent/path"),
    (["copy", "oci:/nonexistent:x"], 1, "required"),
    (["copy", "--format", "v3", "oci:/a:x", "oci:/b:x"], 1, "invalid choice"),
    (["manifest-digest", "/nonexistent.json"], 1, "nonexistent"),
    (["copy", "oci:/nonexistent:x", "oci:/tmp/unused:x"], 2, "/nonexistent"),  # the image is missing
    (["inspect", "--bogus", "docker://x/y"], 1, "unrecognized"),
])
def test_bad_input_is_one_clear_line(args, code, words):
    p = run_pallet(*args, check=False)
    assert p.returncode == code, p.stderr
    assert p.stderr.startswith("Error: ") and words in p.stderr
    assert "Traceback" not in p.stderr


def test_malformed_manifest_names_the_field(tmp_path, layout):
    bad = str(tmp_path / "bad")
    run_pallet("copy", "-q", f"oci:{layout}:v1", f"oci:{bad}:v1")
    idx = json.load(open(os.path.join(bad, "index.json")))
    mpath = os.path.join(bad, "blobs", "sha256", idx["manifests"][0]["digest"][7:])
    doc = json.load(open(mpath))
    doc["layers"][1]["digest"] = "sha256:nothex"
    data = json.dumps(doc).encode()
    new = hashlib.sha256(data).hexdigest()
    with open(os.path.join(bad, "blobs", "sha256", new), "wb") as f:
        f.write(data)
    idx["manifests"][0].update(digest="sha256:" + new, size=len(data))
    json.dump(idx, open(os.path.join(bad, "index.json"), "w"))
    p = run_pallet("inspect", f"oci:{bad}:v1", check=False)
    assert p.returncode == 1 and "layers[1].digest" in p.stderr


def test_trust_policy(layout, registry, tmp_path):
    pol = tmp_path / "policy.json"
    ref = f"docker://{registry.host}/policy/img:v1"
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", ref)
    pol.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}],
                               "transports": {"docker": {f"{registry.host}/policy": [{"type": "reject"}]}}}))
    p = run_pallet("--policy", str(pol), "copy", "--src-tls-verify=false", ref, f"oci:{tmp_path}/x:y", check=False)
    # containers/image's words, which skopeo's own tests grep for, then the file and scope
    assert p.returncode == 1 and f"Source image rejected: Running image {ref} is rejected by policy." in p.stderr
    assert "rejected by the policy in" in p.stderr and str(pol) in p.stderr
    assert not os.path.exists(tmp_path / "x")
    # other repositories follow the default; --insecure-policy overrides
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{registry.host}/other/img:v1")
    run_pallet("--policy", str(pol), "copy", "-q", "--src-tls-verify=false", f"docker://{registry.host}/other/img:v1",
               f"oci:{tmp_path}/ok:y")
    run_pallet("--policy", str(pol), "--insecure-policy", "copy", "-q", "--src-tls-verify=false", ref,
               f"oci:{tmp_path}/forced:y")
    # signatures cannot be checked yet: refused, with the reason
    pol.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]}))
    p = run_pallet("--policy", str(pol), "copy", f"oci:{layout}:v1", f"oci:{tmp_path}/s:y", check=False)
    assert p.returncode == 1 and "signedBy" in p.stderr
    pol.write_text("{")
    p = run_pallet("--policy", str(pol), "copy", f"oci:{layout}:v1", f"oci:{tmp_path}/s:y", check=False)
    assert p.returncode == 1 and "invalid JSON" in p.stderr


def test_debug_goes_to_stderr(layout, tmp_path):
    p = run_pallet("--debug", "copy", "-q", f"oci:{layout}:v1", f"oci:{tmp_path}/d:x")
    assert p.stdout == "" and "DEBUG copy oci:" in p.stderr and "layers" in p.stderr
    assert run_pallet("copy", "-q", f"oci:{layout}:v1", f"oci:{tmp_path}/e:x").stderr == ""


def test_terminated_copy_cleans_up(registry, tmp_path):
    import signal
    import sys
    import time

    from faultproxy import FaultProxy as _Proxy

    big = str(tmp_path / "big")
    images.make_layout(big, "v1", layers=[{"big.bin": os.urandom(3 << 20)}], compression="none")
    ref = f"{registry.host}/copy/term:v1"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{big}:v1", f"docker://{ref}")
    layer = sk_raw(f"docker://{ref}")["layers"][0]["digest"]
    dest = str(tmp_path / "dest")
    images.make_layout(dest, "old", layers=[{"x": "y"}])
    before = tree_bytes(dest)
    proxy = _Proxy(registry.host)
    try:
        proxy.add(Rule("slow", "GET", f"/blobs/{layer}", after=3000))
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        p = subprocess.Popen([exe, "copy", "-q", "--src-tls-verify=false", f"docker://{proxy.host}/copy/term:v1",
                              f"oci:{dest}:new"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # terminated while it receives the (slow) layer
        wait_for(lambda: p.poll() is not None or any(e["status"] for e in proxy.entries(f"/blobs/{layer}", "GET")),
                 60, "the copy to start receiving the layer")
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    finally:
        proxy.stop()
    assert p.returncode == 143
    assert tree_bytes(dest) == before, "a terminated copy leaves the layout as it was, with no temp files"


def test_a_bad_destination_is_not_a_missing_image(layout):
    p = run_pallet("copy", f"oci:{layout}:v1", "docker-archive:/nonexistent/dir/x.tar", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr  # 2 is kept for a missing image
