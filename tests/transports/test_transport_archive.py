"""``oci-archive:`` and ``docker-archive:`` against skopeo: interop both ways, several images in
one archive, streams (/dev/stdin, /dev/stdout), crash safety and bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

import images
from conftest import TESTS, run_pallet
from pallet import errors
from pallet.oci.descriptor import Descriptor
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext
from test_transport_oci import (Exploding, check_oci_layout, dest, hidden_files, layout_blob, layout_entry, one_line,
                                push_layout, read_verified, sha, skopeo, skopeo_inspect, skopeo_raw, snapshot, source)

PLAIN_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path, monkeypatch):
    """Spool / extraction temp dirs go here, so tests can check they are cleaned up."""
    t = tmp_path / "spool"
    t.mkdir()
    monkeypatch.setenv("TMPDIR", str(t))
    yield str(t)
    assert os.listdir(t) == [], "temp files left behind"




def untar(path: str, into: str) -> str:
    os.makedirs(into)
    with tarfile.open(path) as tf:
        tf.extractall(into, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(into)
    return into


def config_of(root: str, tag: str | None = None) -> tuple[bytes, dict]:
    m = json.loads(layout_blob(root, layout_entry(root, tag)["digest"]))
    return layout_blob(root, m["config"]["digest"]), m


def write_tar(path: str, members: list) -> None:
    """members: (name, bytes) for files, (name, None) for dirs, (name, ("sym", target)) for symlinks."""
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif isinstance(data, tuple):
                ti.type = tarfile.SYMTYPE
                ti.linkname = data[1]
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))


# --- oci-archive -------------------------------------------------------------------------------

def test_oci_archive_pallet_writes_skopeo_reads(src_layout, multi_layout, tmp_path):
    out = str(tmp_path / "out.tar")
    with dest(f"oci-archive:{out}:v1") as d:
        digest, raw = push_layout(src_layout, d)
    assert skopeo_raw(f"oci-archive:{out}:v1") == raw
    assert skopeo_inspect(f"oci-archive:{out}:v1")["Digest"] == digest
    check_oci_layout(untar(out, str(tmp_path / "x")))
    skopeo("copy", "-q", f"oci-archive:{out}:v1", f"oci:{tmp_path}/back:v1")
    assert layout_entry(str(tmp_path / "back"), "v1")["digest"] == digest
    multi = str(tmp_path / "multi.tar")
    with dest(f"oci-archive:{multi}:m") as d:
        digest, raw = push_layout(multi_layout, d)
    assert skopeo_raw(f"oci-archive:{multi}:m") == raw
    skopeo("copy", "-q", "--all", f"oci-archive:{multi}:m", f"dir:{tmp_path}/d")
    assert (tmp_path / "d" / "manifest.json").read_bytes() == raw
    check_oci_layout(untar(multi, str(tmp_path / "y")))


def test_oci_archive_skopeo_writes_pallet_reads(src_layout, multi_layout, tmp_path):
    single, multi = str(tmp_path / "s.tar"), str(tmp_path / "m.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"oci-archive:{single}:t")
    skopeo("copy", "-q", "--all", f"oci:{multi_layout}:m", f"oci-archive:{multi}:m")
    for ref in (f"oci-archive:{single}:t", f"oci-archive:{single}"):
        with source(ref) as s:
            raw, media_type = s.get_manifest()
            assert raw == skopeo_raw(f"oci-archive:{single}:t")
            m = json.loads(raw)
            for d in [m["config"]] + m["layers"]:
                read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))
    with source(f"oci-archive:{multi}:m") as s:
        raw, media_type = s.get_manifest()
        assert raw == skopeo_raw(f"oci-archive:{multi}:m")
        assert media_type == "application/vnd.oci.image.index.v1+json"
        for inst in json.loads(raw)["manifests"]:
            iraw, _ = s.get_manifest(inst["digest"])
            assert sha(iraw) == inst["digest"]
            im = json.loads(iraw)
            for d in [im["config"]] + im["layers"]:
                read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))
    with pytest.raises(errors.NotFound):
        source(f"oci-archive:{single}:nope")


def test_oci_archive_interrupted_write_leaves_archive_unchanged(src_layout, tmp_path):
    out = str(tmp_path / "out.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"oci-archive:{out}:old")
    before = snapshot(str(tmp_path / "out.tar"))
    other = str(tmp_path / "other")
    images.make_layout(other, "latest", layers=[{"n": "new"}])
    with dest(f"oci-archive:{out}:new") as d:
        push_layout(other, d, commit=False)
    m = json.loads(layout_blob(other, layout_entry(other)["digest"]))
    layer = m["layers"][0]
    with dest(f"oci-archive:{out}:new") as d:
        with pytest.raises(errors.DigestMismatch):
            d.put_blob(Exploding(layout_blob(other, layer["digest"])),
                       Descriptor(layer["mediaType"], layer["digest"], layer["size"]))
    assert snapshot(out) == before
    assert hidden_files(str(tmp_path)) == []
    fresh = str(tmp_path / "fresh.tar")
    with dest(f"oci-archive:{fresh}:x") as d:
        push_layout(other, d, commit=False)
    assert not os.path.exists(fresh) and hidden_files(str(tmp_path)) == []


def test_oci_archive_unsafe_members_refused(src_layout, tmp_path):
    layout_files = []
    for dirpath, _, filenames in os.walk(src_layout):
        for n in filenames:
            p = os.path.join(dirpath, n)
            layout_files.append((os.path.relpath(p, src_layout), open(p, "rb").read()))
    cases = {
        "dotdot": ("../evil", b"x"),
        "absolute": ("/tmp/evil-absolute", b"x"),
        "nested": ("blobs/../../evil2", b"x"),
        "symlink": ("blobs/link", ("sym", "/etc/passwd")),
    }
    for label, member in cases.items():
        arch = str(tmp_path / f"{label}.tar")
        write_tar(arch, layout_files + [member])
        with pytest.raises(errors.InvalidDocument) as e:
            source(f"oci-archive:{arch}:latest")
        msg = one_line(e.value)
        assert ("unsafe" in msg or "link" in msg) and arch in msg, msg
    assert not os.path.exists(str(tmp_path.parent / "evil"))
    assert not os.path.exists("/tmp/evil-absolute")
    # sanity: the same files without the bad member read fine
    good = str(tmp_path / "good.tar")
    write_tar(good, layout_files)
    with source(f"oci-archive:{good}:latest") as s:
        s.get_manifest()


def test_oci_archive_missing_and_garbage(tmp_path):
    with pytest.raises(errors.NotFound) as e:
        source(f"oci-archive:{tmp_path}/nope.tar")
    assert e.value.exit_code == 2 and "nope.tar" in one_line(e.value)
    (tmp_path / "garbage.tar").write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(errors.InvalidDocument) as e:
        source(f"oci-archive:{tmp_path}/garbage.tar")
    one_line(e.value)
    write_tar(str(tmp_path / "empty.tar"), [("hello.txt", b"hi")])
    with pytest.raises(errors.NotFound) as e:
        source(f"oci-archive:{tmp_path}/empty.tar")
    assert "index.json" in one_line(e.value)
    with pytest.raises(errors.NotFound):
        dest(f"oci-archive:{tmp_path}/no/such/dir/x.tar")


# --- docker-archive: skopeo writes, pallet reads -------------------------------------------------

def test_docker_archive_skopeo_writes_pallet_reads(src_layout, tmp_path):
    arch = str(tmp_path / "sk.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"docker-archive:{arch}:example.com/foo/bar:v1")
    config, _ = config_of(src_layout)
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    sk = json.loads(skopeo_raw(f"docker-archive:{arch}"))
    for ref in (f"docker-archive:{arch}", f"docker-archive:{arch}:example.com/foo/bar:v1", f"docker-archive:{arch}:@0"):
        with source(ref) as s:
            raw, media_type = s.get_manifest()
            assert media_type == DOCKER_V2S2
            m = json.loads(raw)
            assert m["config"] == {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha(config)}
            assert m["config"] == sk["config"]
            assert [x["digest"] for x in m["layers"]] == diff_ids == [x["digest"] for x in sk["layers"]]
            assert [x["size"] for x in m["layers"]] == [x["size"] for x in sk["layers"]]
            assert all(x["mediaType"] == PLAIN_LAYER for x in m["layers"])
            assert read_verified(s, Descriptor(DOCKER_CONFIG, sha(config), len(config))) == config
            for x in m["layers"]:
                read_verified(s, Descriptor(x["mediaType"], x["digest"], x["size"]))
            assert s.repo_tags == ["example.com/foo/bar:v1"]
            with pytest.raises(errors.BlobNotFound):
                s.get_blob(Descriptor(PLAIN_LAYER, "sha256:" + "2" * 64, 1))
    assert skopeo_inspect(f"docker-archive:{arch}")["Layers"] == diff_ids


def _merge_archives(paths: list, out: str, tmp: str) -> None:
    """Several one-image docker archives -> one archive with several manifest.json items."""
    members, items, seen = [], [], set()
    for p in paths:
        with tarfile.open(p) as tf:
            for ti in tf.getmembers():
                if ti.name == "manifest.json":
                    items.extend(json.load(tf.extractfile(ti)))
                elif ti.name != "repositories" and ti.name not in seen:
                    seen.add(ti.name)
                    if ti.issym():
                        members.append((ti.name, ("sym", ti.linkname)))
                    elif ti.isfile():
                        members.append((ti.name, tf.extractfile(ti).read()))
    members.append(("manifest.json", json.dumps(items).encode()))
    write_tar(out, members)


def test_docker_archive_several_images(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    images.make_layout(a, "latest")
    images.make_layout(b, "latest", layers=[{"b.txt": "bee\n"}], arch="arm64")
    skopeo("copy", "-q", f"oci:{a}:latest", f"docker-archive:{tmp_path}/a.tar:img/a:1")
    skopeo("copy", "-q", f"oci:{b}:latest", f"docker-archive:{tmp_path}/b.tar:img/b:2")
    both = str(tmp_path / "both.tar")
    _merge_archives([f"{tmp_path}/a.tar", f"{tmp_path}/b.tar"], both, str(tmp_path))
    ca, _ = config_of(a)
    cb, _ = config_of(b)
    for ref, cfg in ((":@0", ca), (":@1", cb), (":img/a:1", ca), (":docker.io/img/b:2", cb)):
        with source(f"docker-archive:{both}{ref}") as s:
            m = json.loads(s.get_manifest()[0])
            assert m["config"]["digest"] == sha(cfg)
            for x in m["layers"]:
                read_verified(s, Descriptor(x["mediaType"], x["digest"], x["size"]))
    assert skopeo_inspect(f"docker-archive:{both}:@1")["Architecture"] == "arm64"
    with pytest.raises(errors.InvalidReference) as e:
        source(f"docker-archive:{both}")
    assert "2 images" in one_line(e.value) and "@N" in str(e.value)
    with pytest.raises(errors.NotFound) as e:
        source(f"docker-archive:{both}:@5")
    assert e.value.exit_code == 2 and "@5" in one_line(e.value)
    with pytest.raises(errors.NotFound) as e:
        source(f"docker-archive:{both}:img/c:3")
    assert "img/c:3" in one_line(e.value)
    # list-tags lists every image's tags as skopeo does, from the archive xz-compressed too
    import lzma

    with open(both, "rb") as f, open(both + ".xz", "wb") as g:
        g.write(lzma.compress(f.read()))
    for arch in (both, both + ".xz"):
        ours = json.loads(run_pallet("list-tags", f"docker-archive:{arch}").stdout)
        assert ours == json.loads(skopeo("list-tags", f"docker-archive:{arch}").stdout)
        assert ours == {"Tags": ["docker.io/img/a:1", "docker.io/img/b:2"]}


def test_docker_archive_compressed_layers_and_archive(tmp_path):
    tar1 = images.layer_tar({"one.txt": "1\n"})
    tar2 = images.layer_tar({"two.txt": b"2" * 50000})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(tar1), sha(tar2)]}}).encode()
    manifest = [{"Config": "cfg.json", "RepoTags": ["x/y:z"], "Layers": ["l1/layer.tar", "l2.tar.gz"]}]
    members = [("cfg.json", config), ("l1", None), ("l1/layer.tar", images.gz(tar1)), ("l2.tar.gz", images.gz(tar2)),
               ("manifest.json", json.dumps(manifest).encode())]
    arch = str(tmp_path / "c.tar")
    write_tar(arch, members)
    with open(arch, "rb") as f, open(arch + ".gz", "wb") as g:
        g.write(gzip.compress(f.read()))
    for ref in (f"docker-archive:{arch}", f"docker-archive:{arch}.gz:x/y:z"):
        with source(ref) as s:
            m = json.loads(s.get_manifest()[0])
            assert [(x["digest"], x["size"]) for x in m["layers"]] == [(sha(tar1), len(tar1)), (sha(tar2), len(tar2))]
            for x, data in zip(m["layers"], (tar1, tar2)):
                assert read_verified(s, Descriptor(x["mediaType"], x["digest"], x["size"])) == data
    skopeo("copy", "-q", f"docker-archive:{arch}", f"oci:{tmp_path}/sk:x")  # skopeo agrees it is valid


def test_docker_archive_from_stdin(src_layout, tmp_path):
    arch = str(tmp_path / "sk.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"docker-archive:{arch}:foo:bar")
    with source(f"docker-archive:{arch}") as s:
        want = s.get_manifest()[0]
    script = ("import sys, hashlib\n"
              "from pallet.transports import parse_reference\n"
              "from pallet.transports.base import SystemContext\n"
              "from pallet.layer.stream import Verifying\n"
              "from pallet.oci.manifest import parse\n"
              "with parse_reference('docker-archive:/dev/stdin:foo:bar').new_source(SystemContext()) as s:\n"
              "    raw, t = s.get_manifest()\n"
              "    m = parse(raw, t)\n"
              "    for d in [m.config] + m.layers:\n"
              "        Verifying(s.get_blob(d), d.digest, d.size).read()\n"
              "    sys.stdout.buffer.write(raw)\n")
    with open(arch, "rb") as f:  # a regular file as stdin
        p = subprocess.run([sys.executable, "-c", script], stdin=f, capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == want
    # a pipe: not seekable, spooled to a temp file (and the temp file removed)
    cat = subprocess.Popen(["cat", arch], stdout=subprocess.PIPE)
    p = subprocess.run([sys.executable, "-c", script], stdin=cat.stdout, capture_output=True)
    cat.stdout.close()
    cat.wait()
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == want


# --- docker-archive: pallet writes, skopeo reads -------------------------------------------------

def _v2s2_push(src_root: str, d) -> tuple[bytes, list]:
    """Drive a docker-archive destination as the copy engine does: plain layers, a v2s2 manifest."""
    config, m = config_of(src_root)
    cdesc = Descriptor(DOCKER_CONFIG, sha(config), len(config))
    d.put_blob(io.BytesIO(config), cdesc, is_config=True)
    layers = []
    for x in m["layers"]:
        data = layout_blob(src_root, x["digest"])
        if x["mediaType"].endswith("+gzip"):
            data = gzip.decompress(data)
        got = d.put_blob(io.BytesIO(data), Descriptor(PLAIN_LAYER, None, -1))
        assert got.digest == sha(data) and got.size == len(data)
        layers.append(got)
    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_V2S2, "config": cdesc.to_dict(docker=True),
                      "layers": [x.to_dict(docker=True) for x in layers]}).encode()
    d.put_manifest(raw, DOCKER_V2S2)
    d.commit()
    return config, [x.digest for x in layers]


def test_docker_archive_pallet_writes_skopeo_reads(src_layout, tmp_path):
    out = str(tmp_path / "out.tar")
    d = parse_reference(f"docker-archive:{out}:foo/bar:v1").new_destination(
        SystemContext(docker_archive_additional_tags=["example.com/other:2", "foo/bar:v1"]))
    assert d.desired_compression == "none" and d.supported_manifest_types == (DOCKER_V2S2,)
    assert not d.supports_index and not d.needs_ordered_blobs
    with d:
        config, layer_digests = _v2s2_push(src_layout, d)
    assert layer_digests == json.loads(config)["rootfs"]["diff_ids"]
    with tarfile.open(out) as tf:
        items = json.load(tf.extractfile("manifest.json"))
        repos = json.load(tf.extractfile("repositories"))
        names = tf.getnames()
    assert items == [{"Config": sha(config)[7:] + ".json",
                      "RepoTags": ["docker.io/foo/bar:v1", "example.com/other:2"],
                      "Layers": [x[7:] + ".tar" for x in layer_digests]}]
    assert set(repos) == {"docker.io/foo/bar", "example.com/other"}
    assert sum(n.endswith("/VERSION") for n in names) == 3
    info = skopeo_inspect(f"docker-archive:{out}")
    assert info["Layers"] == layer_digests
    sk = json.loads(skopeo_raw(f"docker-archive:{out}:example.com/other:2"))
    assert sk["config"]["digest"] == sha(config)
    skopeo("copy", "-q", f"docker-archive:{out}:foo/bar:v1", f"dir:{tmp_path}/back")
    assert (tmp_path / "back" / sha(config)[7:]).read_bytes() == config
    for digest in layer_digests:
        assert (tmp_path / "back" / digest[7:]).exists()
    assert hidden_files(str(tmp_path)) == []
    # the archive is not modified afterwards, as skopeo
    with pytest.raises(errors.Unsupported) as e:
        dest(f"docker-archive:{out}:foo/bar:v2")
    assert "already exists" in one_line(e.value)


def test_docker_archive_destination_decompresses_if_given_gzip(src_layout, tmp_path):
    """If handed compressed layers anyway (and an OCI manifest), the archive still holds plain tar."""
    out = str(tmp_path / "out.tar")
    with dest(f"docker-archive:{out}:a:b") as d:
        config, m = config_of(src_layout)
        for x in [m["config"]] + m["layers"]:
            got = d.put_blob(io.BytesIO(layout_blob(src_layout, x["digest"])),
                             Descriptor(x["mediaType"], x["digest"], x["size"]), is_config=(x is m["config"]))
            if x is not m["config"]:
                assert got.media_type == PLAIN_LAYER and got.digest != x["digest"]
                assert d.try_reusing_blob(Descriptor(x["mediaType"], x["digest"], x["size"])).digest == got.digest
        d.put_manifest(layout_blob(src_layout, layout_entry(src_layout)["digest"]), m["mediaType"])
        d.commit()
    assert skopeo_inspect(f"docker-archive:{out}")["Layers"] == json.loads(config)["rootfs"]["diff_ids"]


def test_docker_archive_to_stdout_and_full_disk(src_layout, tmp_path):
    script = ("import sys\n"
              "sys.path[:0] = [%r, %r]\n"
              "from test_transport_archive import _v2s2_push\n"
              "from pallet.transports import parse_reference\n"
              "from pallet.transports.base import SystemContext\n"
              "with parse_reference(sys.argv[1]).new_destination(SystemContext()) as d:\n"
              "    _v2s2_push(sys.argv[2], d)\n") % (os.path.dirname(os.path.abspath(__file__)), TESTS)
    out = str(tmp_path / "stdout.tar")
    with open(out, "wb") as f:
        p = subprocess.run([sys.executable, "-c", script, "docker-archive:/dev/stdout:s/t:u", src_layout],
                           stdout=f, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()
    config, _ = config_of(src_layout)
    assert json.loads(skopeo_raw(f"docker-archive:{out}:s/t:u"))["config"]["digest"] == sha(config)
    with dest("docker-archive:/dev/full:x/y:z") as d:
        with pytest.raises(errors.PalletError) as e:
            _v2s2_push(src_layout, d)
    assert "no space left on device" in one_line(e.value)


def test_docker_archive_interrupted_and_bad_destinations(src_layout, tmp_path):
    out = str(tmp_path / "out.tar")
    with dest(f"docker-archive:{out}:a:b") as d:
        config, m = config_of(src_layout)
        d.put_blob(io.BytesIO(config), Descriptor(DOCKER_CONFIG, sha(config), len(config)), is_config=True)
        x = m["layers"][0]
        with pytest.raises(errors.DigestMismatch):
            d.put_blob(Exploding(b"\0" * 5000), Descriptor(PLAIN_LAYER, "sha256:" + "3" * 64, 5000))
    assert not os.path.exists(out) and hidden_files(str(tmp_path)) == []
    with pytest.raises(errors.InvalidReference):
        dest(f"docker-archive:{out}:@1")
    with pytest.raises(errors.InvalidReference):
        parse_reference(f"docker-archive:{out}:foo@sha256:" + "a" * 64)
    with pytest.raises(errors.InvalidReference):
        parse_reference(f"docker-archive:{out}:@x")
    with pytest.raises(errors.InvalidReference):
        parse_reference("docker-archive:")
    with dest(f"docker-archive:{out}") as d:
        with pytest.raises(errors.Unsupported):
            d.put_manifest(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                       "manifests": []}).encode(), "application/vnd.oci.image.index.v1+json")
        with pytest.raises(errors.Unsupported):
            d.put_manifest(b"{}", DOCKER_V2S2, "sha256:" + "a" * 64)
    del x


def test_docker_archive_bad_input(src_layout, tmp_path):
    with pytest.raises(errors.NotFound) as e:
        source(f"docker-archive:{tmp_path}/none.tar")
    assert e.value.exit_code == 2 and "none.tar" in one_line(e.value)
    arch = str(tmp_path / "a.tar")

    def expect(members, exc, *words):
        write_tar(arch, members)
        with pytest.raises(exc) as e:
            with source(f"docker-archive:{arch}") as s:
                s.get_manifest()
        msg = one_line(e.value)
        for w in words:
            assert w in msg, msg

    tar1 = images.layer_tar({"f": "x"})
    cfg = json.dumps({"os": "linux", "architecture": "amd64",
                      "rootfs": {"type": "layers", "diff_ids": [sha(tar1)]}}).encode()
    good = [("c.json", cfg), ("l.tar", tar1)]
    expect([("repositories", b"{}")], errors.InvalidDocument, "manifest.json missing", "repositories")
    expect(good + [("manifest.json", b"[{not json")], errors.InvalidDocument, "manifest.json", "JSON")
    expect(good + [("manifest.json", b'{"Config": "c.json"}')], errors.InvalidDocument, "expected a list")
    expect(good + [("manifest.json", b'[{"Config": "c.json"}]')], errors.InvalidDocument, "manifest.json[0].Layers")
    expect(good + [("manifest.json", b'[{"Config": 5, "Layers": []}]')], errors.InvalidDocument, "manifest.json[0].Config")
    expect(good + [("manifest.json", b'[{"Config": "c.json", "Layers": ["missing.tar"]}]')], errors.NotFound,
           "missing.tar")
    expect(good + [("manifest.json", b'[{"Config": "c.json", "Layers": ["l.tar", "l.tar"]}]')],
           errors.InvalidDocument, "diff_ids")
    other = images.layer_tar({"g": "y"})
    expect([("c.json", cfg), ("l.tar", other), ("manifest.json", b'[{"Config": "c.json", "Layers": ["l.tar"]}]')],
           errors.DigestMismatch, "diff_ids[0]")
    expect(good + [("manifest.json", b'[]')], errors.NotFound, "no image")
    (tmp_path / "garbage").write_bytes(os.urandom(4096))
    with pytest.raises(errors.InvalidDocument) as e:
        source(f"docker-archive:{tmp_path}/garbage")
    one_line(e.value)


# --- command line ----------------------------------------------------------------------------

def test_cli_archive_round_trips(src_layout, multi_layout, tmp_path):
    config, _ = config_of(src_layout)
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    da = str(tmp_path / "p.tar")
    run_pallet("copy", f"oci:{src_layout}:latest", f"docker-archive:{da}:pallet/test:v1")
    assert skopeo_inspect(f"docker-archive:{da}")["Layers"] == diff_ids
    assert json.loads(skopeo_raw(f"docker-archive:{da}:pallet/test:v1"))["config"]["digest"] == sha(config)
    run_pallet("copy", f"docker-archive:{da}:pallet/test:v1", f"oci:{tmp_path}/o:x")
    check_oci_layout(str(tmp_path / "o"))
    assert config_of(str(tmp_path / "o"), "x")[0] == config
    sk = str(tmp_path / "sk.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"docker-archive:{sk}:a:b")
    run_pallet("copy", f"docker-archive:{sk}", f"oci-archive:{tmp_path}/oa.tar:t")
    assert skopeo_inspect(f"oci-archive:{tmp_path}/oa.tar:t")["Layers"] == skopeo_inspect(f"docker-archive:{sk}")["Layers"]
    # a multi-arch source: without --all the host's platform is picked; with --all it is refused
    run_pallet("copy", f"oci:{multi_layout}:m", f"docker-archive:{tmp_path}/one.tar")
    assert skopeo_inspect(f"docker-archive:{tmp_path}/one.tar")["Architecture"] == "amd64"
    p = run_pallet("copy", "--all", f"oci:{multi_layout}:m", f"docker-archive:{tmp_path}/all.tar", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert not os.path.exists(f"{tmp_path}/all.tar")
    run_pallet("copy", "--all", f"oci:{multi_layout}:m", f"oci-archive:{tmp_path}/all.tar:m")
    assert skopeo_raw(f"oci-archive:{tmp_path}/all.tar:m") == skopeo_raw(f"oci:{multi_layout}:m")
    p = run_pallet("inspect", f"docker-archive:{sk}:@3", check=False)
    assert p.returncode == 2 and "@3" in p.stderr


def test_oci_archive_from_stdin_pipe(src_layout, tmp_path):
    arch = str(tmp_path / "s.tar")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"oci-archive:{arch}:t")
    script = ("import sys\n"
              "from pallet.transports import parse_reference\n"
              "from pallet.transports.base import SystemContext\n"
              "with parse_reference('oci-archive:/dev/stdin:t').new_source(SystemContext()) as s:\n"
              "    sys.stdout.buffer.write(s.get_manifest()[0])\n")
    cat = subprocess.Popen(["cat", arch], stdout=subprocess.PIPE)
    p = subprocess.run([sys.executable, "-c", script], stdin=cat.stdout, capture_output=True)
    cat.stdout.close()
    cat.wait()
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == skopeo_raw(f"oci-archive:{arch}:t")


def test_docker_archive_new_docker_save_layout(tmp_path):
    """Docker 25+ `docker save`: an OCI layout inside, manifest.json pointing at blobs/sha256/..."""
    root = str(tmp_path / "plain")
    images.make_layout(root, "latest", compression="none")
    config, m = config_of(root)
    members = [("blobs", None), ("blobs/sha256", None)]
    for dirpath, _, filenames in os.walk(os.path.join(root, "blobs", "sha256")):
        for n in filenames:
            members.append((f"blobs/sha256/{n}", open(os.path.join(dirpath, n), "rb").read()))
    members += [("index.json", open(os.path.join(root, "index.json"), "rb").read()),
                ("oci-layout", open(os.path.join(root, "oci-layout"), "rb").read()),
                ("manifest.json", json.dumps([{"Config": "blobs/sha256/" + sha(config)[7:], "RepoTags": ["n:t"],
                                               "Layers": ["blobs/sha256/" + x["digest"][7:] for x in m["layers"]]}]).encode())]
    arch = str(tmp_path / "new.tar")
    write_tar(arch, members)
    with source(f"docker-archive:{arch}:n:t") as s:
        got = json.loads(s.get_manifest()[0])
        assert [x["digest"] for x in got["layers"]] == [x["digest"] for x in m["layers"]]
        assert got["config"]["digest"] == sha(config)
    assert skopeo_inspect(f"docker-archive:{arch}")["Layers"] == [x["digest"] for x in m["layers"]]
