"""docker:// against Debian's docker-registry (anonymous), with skopeo as the interop partner."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

import images
from conftest import run_pallet
from faultproxy import FaultProxy, Rule
from pallet import errors
from pallet.layer.stream import Verifying
from pallet.oci import digest as _digest
from pallet.oci import manifest as _manifest
from pallet.oci.descriptor import Descriptor
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext
from pallet.transports.docker import list_tags


pytestmark = pytest.mark.usefixtures("isolated")


def ctx(**kw):
    kw.setdefault("tls_verify", False)
    kw.setdefault("retry_delay", 0.01)
    return SystemContext(**kw)


def skopeo_push(layout, tag, dest, *extra):
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", *extra, f"oci:{layout}:{tag}",
                    f"docker://{dest}"], check=True, capture_output=True)


def skopeo_inspect(ref, raw=False):
    args = ["skopeo", "inspect", "--tls-verify=false"] + (["--raw"] if raw else []) + [f"docker://{ref}"]
    p = subprocess.run(args, check=True, capture_output=True)
    return p.stdout if raw else json.loads(p.stdout)


def read_all(src, desc):
    with Verifying(src.get_blob(desc), desc.digest, desc.size) as s:
        return s.read()


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_read_what_skopeo_pushed(registry, tmp_path, skopeo, fmt):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    dest = f"{registry.host}/interop/read-{fmt}:v1"
    skopeo_push(layout, "v1", dest, "--format", fmt)
    ref = parse_reference(f"docker://{dest}")
    with ref.new_source(ctx()) as src:
        raw, media_type = src.get_manifest()
        assert raw == skopeo_inspect(dest, raw=True)
        assert media_type == ("application/vnd.oci.image.manifest.v1+json" if fmt == "oci"
                              else "application/vnd.docker.distribution.manifest.v2+json")
        m = _manifest.parse(raw, media_type)
        assert m.digest == skopeo_inspect(dest)["Digest"]
        config = json.loads(read_all(src, m.config))
        assert config["config"]["Labels"] == {"org.example.test": "yes"}
        for layer in m.layers:
            assert _digest.of_bytes(read_all(src, layer)) == layer.digest
        assert src.head_manifest()[0] == m.digest
        # by digest, the bytes are verified against it
        by_digest = parse_reference(f"docker://{registry.host}/interop/read-{fmt}@{m.digest}")
        with by_digest.new_source(ctx()) as src2:
            assert src2.get_manifest() == (raw, media_type)


def test_multiarch_index(registry, tmp_path, skopeo):
    layout = str(tmp_path / "multi")
    images.make_multiarch_layout(layout, "m")
    dest = f"{registry.host}/interop/multi:m"
    skopeo_push(layout, "m", dest, "--all")
    with parse_reference(f"docker://{dest}").new_source(ctx()) as src:
        raw, media_type = src.get_manifest()
        idx = _manifest.parse(raw, media_type)
        assert idx.is_index and len(idx.manifests) == 3
        for d in idx.manifests:
            mraw, mtype = src.get_manifest(d.digest)
            assert _digest.of_bytes(mraw) == d.digest
            m = _manifest.parse(mraw, mtype)
            arch = json.loads(read_all(src, m.config))["architecture"]
            assert arch == d.platform.architecture


def _layout_blobs(layout):
    """(manifest raw, media type, {digest: bytes}) of the single image in an OCI layout."""
    index = json.load(open(os.path.join(layout, "index.json")))
    d = index["manifests"][0]

    def blob(dg):
        with open(os.path.join(layout, "blobs", "sha256", dg.split(":")[1]), "rb") as f:
            return f.read()

    return blob(d["digest"]), d["mediaType"], blob


def test_push_then_skopeo_reads(registry, tmp_path, skopeo):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    raw, media_type, blob = _layout_blobs(layout)
    m = _manifest.parse(raw, media_type)
    dest = f"{registry.host}/interop/pushed:v1"
    ref = parse_reference(f"docker://{dest}")
    import io

    with ref.new_destination(ctx()) as dst:
        assert dst.supported_manifest_types == ()
        for i, d in enumerate([m.config] + m.layers):
            assert dst.try_reusing_blob(d) is None
            data = blob(d.digest)
            stream = Verifying(io.BytesIO(data), d.digest, d.size)
            if i == 1:  # as if recompressed: digest and size unknown -> streamed PATCH
                got = dst.put_blob(stream, Descriptor(d.media_type, None, -1))
                assert (got.digest, got.size) == (d.digest, d.size)
            else:
                assert dst.put_blob(stream, d).digest == d.digest
            assert dst.try_reusing_blob(d).size == d.size
        dst.put_manifest(raw, media_type)
        dst.commit()
    assert skopeo_inspect(dest, raw=True) == raw
    assert skopeo_inspect(dest)["Digest"] == m.digest
    # skopeo can pull every blob back (a full copy verifies them)
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{dest}",
                    f"oci:{tmp_path / 'back'}:v1"], check=True, capture_output=True)


def test_push_index_instances_by_digest(registry, tmp_path, skopeo):
    layout = str(tmp_path / "multi")
    images.make_multiarch_layout(layout, "m")
    src_ref = parse_reference(f"oci:{layout}:m") if False else None  # noqa: F841 (oci: is another engineer's)
    index = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]

    def blob(dg):
        with open(os.path.join(layout, "blobs", "sha256", dg.split(":")[1]), "rb") as f:
            return f.read()

    import io

    top_raw = blob(index["digest"])
    idx = _manifest.parse(top_raw, index["mediaType"])
    dest = f"{registry.host}/interop/pushed-index:m"
    with parse_reference(f"docker://{dest}").new_destination(ctx()) as dst:
        for inst in idx.manifests:
            mraw = blob(inst.digest)
            m = _manifest.parse(mraw, inst.media_type)
            for d in [m.config] + m.layers:
                if dst.try_reusing_blob(d) is None:
                    dst.put_blob(io.BytesIO(blob(d.digest)), d)
            dst.put_manifest(mraw, inst.media_type, inst.digest)
        dst.put_manifest(top_raw, idx.media_type)
    assert skopeo_inspect(dest, raw=True) == top_raw
    p = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-arch", "arm64",
                        f"docker://{dest}"], check=True, capture_output=True)
    assert json.loads(p.stdout)["Architecture"] == "arm64"


def test_parallel_blob_reads(registry, tmp_path, skopeo):
    layers = [{f"f{i}": os.urandom(200_000 + i)} for i in range(6)]
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=layers)
    dest = f"{registry.host}/interop/parallel:v1"
    skopeo_push(layout, "v1", dest)
    with parse_reference(f"docker://{dest}").new_source(ctx()) as src:
        m = _manifest.parse(*src.get_manifest())
        results, failures = {}, []

        def worker(d):
            try:
                for _ in range(3):
                    results[d.digest] = len(read_all(src, d))
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(e)

        threads = [threading.Thread(target=worker, args=(d,)) for d in m.layers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        assert results == {d.digest: d.size for d in m.layers}
        idle = sum(len(p._idle) for p in src.client.transport._pools.values())
        assert 1 <= idle <= 8  # connections were kept alive and pooled, not one per request


def _push_tags(registry, repo, tags, tmp_path):
    layout = str(tmp_path / f"layout-{repo.replace('/', '-')}")
    images.make_layout(layout, "v1", layers=[{"x": "y"}])
    raw, media_type, blob = _layout_blobs(layout)
    m = _manifest.parse(raw, media_type)
    import io

    first = parse_reference(f"docker://{registry.host}/{repo}:{tags[0]}")
    with first.new_destination(ctx()) as dst:
        for d in [m.config] + m.layers:
            dst.put_blob(io.BytesIO(blob(d.digest)), d)
    for t in tags:
        with parse_reference(f"docker://{registry.host}/{repo}:{t}").new_destination(ctx()) as dst:
            dst.put_manifest(raw, media_type)
    return m


def test_list_tags_paginated(registry, tmp_path, skopeo):
    tags = ["a", "b", "c", "d", "e"]
    _push_tags(registry, "tags/many", tags, tmp_path)
    ref = parse_reference(f"docker://{registry.host}/tags/many:a")
    proxy = FaultProxy(registry.host)
    try:
        # registry 2.8 ignores ?n= for tags; the proxy answers as a paginating registry does
        base = "/v2/tags/many/tags/list"
        for key, page, nxt in (("list?n=2", ["a", "b"], "b"), ("last=b", ["c", "d"], "d"), ("last=d", ["e"], None)):
            link = {"Link": f'<{base}?last={nxt}&n=2>; rel="next"'} if nxt else {}
            proxy.add(Rule("status", "GET", key, code=200, headers=link,
                           body=json.dumps({"name": "tags/many", "tags": page}).encode()))
        via = parse_reference(f"docker://{proxy.host}/tags/many:a")
        assert list_tags(via, ctx(), page_size=2) == tags
        pages = proxy.entries("/tags/list")
        assert [e["path"] for e in pages] == [f"{base}?n=2", f"{base}?last=b&n=2", f"{base}?last=d&n=2"]
    finally:
        proxy.stop()
    assert sorted(list_tags(ref.named.repo_only(), ctx())) == tags
    p = run_pallet("list-tags", "--tls-verify=false", f"docker://{registry.host}/tags/many")
    ours = json.loads(p.stdout)
    theirs = json.loads(subprocess.run(["skopeo", "list-tags", "--tls-verify=false",
                                        f"docker://{registry.host}/tags/many"],
                                       check=True, capture_output=True).stdout)
    assert ours["Repository"] == theirs["Repository"] == f"{registry.host}/tags/many"
    assert sorted(ours["Tags"]) == sorted(theirs["Tags"])


def test_not_found_errors(registry, tmp_path):
    _push_tags(registry, "nf/repo", ["v1"], tmp_path)
    with parse_reference(f"docker://{registry.host}/nf/repo:nope").new_source(ctx()) as src:
        with pytest.raises(errors.NotFound) as ei:
            src.get_manifest()
    assert str(ei.value) == (f"reading manifest nope in {registry.host}/nf/repo: "
                             "manifest unknown: manifest unknown")  # as skopeo says it
    assert ei.value.exit_code == 2
    with parse_reference(f"docker://{registry.host}/nf/missing:v1").new_source(ctx()) as src:
        with pytest.raises(errors.NotFound, match="manifest unknown"):
            src.get_manifest()
        with pytest.raises(errors.BlobNotFound, match="blob unknown"):
            src.get_blob(Descriptor("x", "sha256:" + "0" * 64, 1))
    p = run_pallet("list-tags", "--tls-verify=false", f"docker://{registry.host}/nf/missing", check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Error: listing tags" in p.stderr
    p = run_pallet("list-tags", "--tls-verify=false", f"docker://{registry.host}/nf/repo:v1", check=False)
    assert p.returncode == 1 and "no tag or digest allowed" in p.stderr


def test_manifest_digest_mismatch(registry, tmp_path):
    m = _push_tags(registry, "mismatch/repo", ["v1"], tmp_path)
    proxy = FaultProxy(registry.host)
    try:
        proxy.add(Rule("corrupt", "GET", f"/manifests/{m.digest}"))
        ref = parse_reference(f"docker://{proxy.host}/mismatch/repo@{m.digest}")
        with ref.new_source(ctx()) as src:
            with pytest.raises(errors.DigestMismatch) as ei:
                src.get_manifest()
        assert f"not the requested {m.digest}" in str(ei.value)
        # the instance path verifies too
        proxy.add(Rule("corrupt", "GET", f"/manifests/{m.digest}"))
        with parse_reference(f"docker://{proxy.host}/mismatch/repo:v1").new_source(ctx()) as src:
            with pytest.raises(errors.DigestMismatch):
                src.get_manifest(m.digest)
    finally:
        proxy.stop()
    # a destination named by digest refuses a manifest with another digest
    layout_raw = b'{"schemaVersion":2}'
    dst_ref = parse_reference(f"docker://{registry.host}/mismatch/repo@{m.digest}")
    with dst_ref.new_destination(ctx()) as dst:
        with pytest.raises(errors.DigestMismatch, match="destination reference asks for"):
            dst.put_manifest(layout_raw, "application/vnd.oci.image.manifest.v1+json")


def test_corrupt_upload_is_cancelled(registry, tmp_path):
    import io

    data = os.urandom(300_000)
    good = _digest.of_bytes(data)
    bad = data[:1000] + b"X" + data[1001:]
    proxy = FaultProxy(registry.host)
    try:
        ref = parse_reference(f"docker://{proxy.host}/upload/corrupt:v1")
        with ref.new_destination(ctx()) as dst:
            for desc in (Descriptor("application/octet-stream", good, len(data)),
                         Descriptor("application/octet-stream", None, -1)):
                stream = Verifying(io.BytesIO(bad), good, len(data))
                with pytest.raises(errors.DigestMismatch):
                    dst.put_blob(stream, desc)
            assert dst.try_reusing_blob(Descriptor("application/octet-stream", good, len(data))) is None
            assert dst.try_reusing_blob(Descriptor("x", _digest.of_bytes(bad), len(bad))) is None
        cancels = [e for e in proxy.entries("/blobs/uploads/", "DELETE")]
        assert len(cancels) == 2 and all(e["status"] == 204 for e in cancels)
    finally:
        proxy.stop()


def test_cross_repository_mount(registry, tmp_path):
    m = _push_tags(registry, "mount/source", ["v1"], tmp_path)
    proxy = FaultProxy(registry.host)
    try:
        src_ref = parse_reference(f"docker://{proxy.host}/mount/source:v1")
        with parse_reference(f"docker://{proxy.host}/mount/dest:v1").new_destination(ctx()) as dst:
            for d in [m.config] + m.layers:
                assert dst.try_reusing_blob(d, src_ref) is not None
            with parse_reference(f"docker://{proxy.host}/mount/source:v1").new_source(ctx()) as src:
                dst.put_manifest(*src.get_manifest())
        mounts = [e for e in proxy.entries("/mount/dest/blobs/uploads/", "POST") if "mount=" in e["path"]]
        assert len(mounts) == 1 + len(m.layers) and all(e["status"] == 201 for e in mounts)
        assert not proxy.entries("/mount/dest/blobs/uploads/", "PUT")
    finally:
        proxy.stop()
    assert skopeo_inspect(f"{registry.host}/mount/dest:v1")["Digest"] == m.digest


def test_delete(registry, tmp_path):
    _push_tags(registry, "del/repo", ["v1"], tmp_path)
    ref = parse_reference(f"docker://{registry.host}/del/repo:v1")
    ref.delete(ctx())
    with ref.new_source(ctx()) as src:
        with pytest.raises(errors.NotFound):
            src.get_manifest()


def test_connection_refused_and_tls(registry):
    from conftest import free_port

    port = free_port()
    ref = parse_reference(f"docker://127.0.0.1:{port}/x:1")
    with ref.new_source(ctx(retry_times=0)) as src:
        with pytest.raises(errors.NetworkError) as ei:
            src.get_manifest()
    assert str(ei.value) == f"pinging container registry 127.0.0.1:{port}: 127.0.0.1:{port}: connection refused"
    # TLS is required by default: a plain-HTTP registry is refused with a hint
    with parse_reference(f"docker://{registry.host}/x:1").new_source(SystemContext(retry_times=0)) as src:
        with pytest.raises(errors.NetworkError, match="TLS error.*--tls-verify=false"):
            src.get_manifest()


def test_registries_conf_insecure_rewrite_and_mirrors(registry, tmp_path, isolated):
    m = _push_tags(registry, "conf/real", ["v1"], tmp_path)
    isolated.write_text(f"""
[[registry]]
prefix = "example.test/app"
location = "{registry.host}/conf/real"
insecure = true

[[registry]]
prefix = "mirrored.test/app"
location = "127.0.0.1:1/dead"
insecure = true
[[registry.mirror]]
location = "{registry.host}/conf/missing"
insecure = true
[[registry.mirror]]
location = "{registry.host}/conf/real"
insecure = true
""")
    no_tls_flag = SystemContext(retry_delay=0.01)  # tls_verify None: registries.conf decides
    with parse_reference("docker://example.test/app:v1").new_source(no_tls_flag) as src:
        assert _manifest.parse(*src.get_manifest()).digest == m.digest
        assert str(src.named) == f"{registry.host}/conf/real:v1"
    with parse_reference("docker://mirrored.test/app:v1").new_source(no_tls_flag) as src:
        raw, mtype = src.get_manifest()
        assert _digest.of_bytes(raw) == m.digest
        assert src.named.path == "conf/real"  # the first mirror lacked it, the second had it
        assert len(read_all(src, m.layers[0])) == m.layers[0].size
    assert sorted(list_tags("example.test/app", no_tls_flag)) == ["v1"]
