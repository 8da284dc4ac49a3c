"""The ``oci:`` transport against skopeo: what pallet writes skopeo reads with the same digests,
what skopeo writes pallet reads; crash safety, concurrency, delete, bad input.

The helpers at the top (driving a destination from an on-disk layout, a schema-level layout
check, tree snapshots) are shared by the archive and dir transport tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

import images
from conftest import need, run_pallet, unmount_under
from pallet import errors
from pallet.layer.stream import Verifying
from pallet.oci.descriptor import Descriptor
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"


# --- shared helpers --------------------------------------------------------------------------

def skopeo(*args, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([need("skopeo"), *args], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
    return p


def skopeo_raw(ref: str) -> bytes:
    return skopeo("inspect", "--raw", ref).stdout


def skopeo_inspect(ref: str) -> dict:
    return json.loads(skopeo("inspect", ref).stdout)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layout_blob(root: str, digest: str) -> bytes:
    alg, hexpart = digest.split(":", 1)
    with open(os.path.join(root, "blobs", alg, hexpart), "rb") as f:
        return f.read()


def layout_entry(root: str, tag: str | None = None) -> dict:
    with open(os.path.join(root, "index.json")) as f:
        entries = json.load(f)["manifests"]
    if tag is None:
        assert len(entries) == 1
        return entries[0]
    return next(e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == tag)


def push_layout(src_root: str, dest, tag: str | None = None, commit: bool = True) -> tuple[str, bytes]:
    """Drive ``dest`` directly with the image ``tag`` of an on-disk OCI layout (no pallet source
    involved): config and layers, instance manifests, then the top manifest; commit.
    Returns (top digest, top raw manifest)."""
    entry = layout_entry(src_root, tag)
    top = layout_blob(src_root, entry["digest"])

    def put_image(raw: bytes, instance: str | None) -> None:
        m = json.loads(raw)
        for i, d in enumerate([m["config"]] + m["layers"]):
            desc = Descriptor(d["mediaType"], d["digest"], d["size"])
            with open(os.path.join(src_root, "blobs", *d["digest"].split(":")), "rb") as f:
                got = dest.put_blob(Verifying(f, d["digest"], d["size"]), desc, is_config=(i == 0))
            assert got.digest == d["digest"] and got.size == d["size"]
        dest.put_manifest(raw, m.get("mediaType") or OCI_MANIFEST, instance)

    doc = json.loads(top)
    if "manifests" in doc:
        for inst in doc["manifests"]:
            put_image(layout_blob(src_root, inst["digest"]), inst["digest"])
        dest.put_manifest(top, doc["mediaType"], None)
    else:
        put_image(top, None)
    if commit:
        dest.commit()
    return sha(top), top


def snapshot(path: str) -> dict:
    """Every file (bytes), directory and symlink under ``path`` (or the bytes of a single file)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {".": f.read()}
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        out[rel + "/"] = None
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                out[os.path.join(rel, n)] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as f:
                    out[os.path.join(rel, n)] = f.read()
    return out


def hidden_files(path: str) -> list:
    return [os.path.join(d, n) for d, dn, fn in os.walk(path) for n in dn + fn if n.startswith(".")]


def read_verified(src, desc: Descriptor) -> bytes:
    with Verifying(src.get_blob(desc), desc.digest, desc.size) as s:
        return s.read()


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, text
    return text


_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")
_MT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def _check_descriptor(d, where: str, problems: list) -> None:
    if not isinstance(d, dict):
        problems.append(f"{where}: not an object")
        return
    if not isinstance(d.get("mediaType"), str) or not _MT_RE.match(d["mediaType"]):
        problems.append(f"{where}.mediaType: {d.get('mediaType')!r}")
    if not isinstance(d.get("digest"), str) or not _DIGEST_RE.match(d["digest"]):
        problems.append(f"{where}.digest: {d.get('digest')!r}")
    if not isinstance(d.get("size"), int) or isinstance(d.get("size"), bool) or d["size"] < 0:
        problems.append(f"{where}.size: {d.get('size')!r}")
    ann = d.get("annotations")
    if ann is not None and not (isinstance(ann, dict) and all(isinstance(v, str) for v in ann.values())):
        problems.append(f"{where}.annotations: not a map of strings")
    plat = d.get("platform")
    if plat is not None and not (isinstance(plat, dict) and isinstance(plat.get("os"), str)
                                 and isinstance(plat.get("architecture"), str)):
        problems.append(f"{where}.platform: needs os and architecture strings")


def check_oci_layout(root: str, shared: str | None = None) -> int:
    """A schema-level check of an OCI image layout (image-spec: image-layout, index, manifest,
    config, descriptor): required fields and types, every reachable blob present with the right
    size and digest, no temp files left. Returns the number of documents checked."""
    problems: list = []
    with open(os.path.join(root, "oci-layout")) as f:
        header = json.load(f)
    if not isinstance(header.get("imageLayoutVersion"), str):
        problems.append("oci-layout.imageLayoutVersion: missing")
    with open(os.path.join(root, "index.json"), "rb") as f:
        index = json.loads(f.read())
    checked = 0

    def blob(d, where):
        alg, hexpart = d["digest"].split(":", 1)
        p = os.path.join(shared, alg, hexpart) if shared else os.path.join(root, "blobs", alg, hexpart)
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            problems.append(f"{where}: blob {d['digest']} missing")
            return None
        if len(data) != d["size"]:
            problems.append(f"{where}: size {len(data)} != {d['size']}")
        if hashlib.new(alg, data).hexdigest() != hexpart:
            problems.append(f"{where}: digest mismatch")
        return data

    def walk_index(doc, where):
        nonlocal checked
        checked += 1
        if doc.get("schemaVersion") != 2:
            problems.append(f"{where}.schemaVersion: {doc.get('schemaVersion')!r}")
        if doc.get("mediaType") not in (None, OCI_INDEX, DOCKER_LIST):
            problems.append(f"{where}.mediaType: {doc.get('mediaType')!r}")
        if not isinstance(doc.get("manifests"), list):
            problems.append(f"{where}.manifests: missing")
            return
        for i, d in enumerate(doc["manifests"]):
            w = f"{where}.manifests[{i}]"
            _check_descriptor(d, w, problems)
            data = blob(d, w)
            if data is None:
                continue
            sub = json.loads(data)
            if d["mediaType"] in (OCI_INDEX, DOCKER_LIST):
                walk_index(sub, w)
            else:
                walk_manifest(sub, w)

    def walk_manifest(doc, where):
        nonlocal checked
        checked += 1
        if doc.get("schemaVersion") != 2:
            problems.append(f"{where}.schemaVersion: {doc.get('schemaVersion')!r}")
        _check_descriptor(doc.get("config"), where + ".config", problems)
        if not isinstance(doc.get("layers"), list):
            problems.append(f"{where}.layers: missing")
            return
        for i, d in enumerate(doc["layers"]):
            _check_descriptor(d, f"{where}.layers[{i}]", problems)
            blob(d, f"{where}.layers[{i}]")
        cfg = blob(doc["config"], where + ".config")
        if cfg is not None:
            checked += 1
            c = json.loads(cfg)
            for key in ("architecture", "os"):
                if not isinstance(c.get(key), str):
                    problems.append(f"{where}.config.{key}: missing")
            rootfs = c.get("rootfs") or {}
            if rootfs.get("type") != "layers" or not isinstance(rootfs.get("diff_ids"), list):
                problems.append(f"{where}.config.rootfs: malformed")
            elif len(rootfs["diff_ids"]) != len(doc["layers"]):
                problems.append(f"{where}.config.rootfs.diff_ids: count differs from layers")

    walk_index(index, "index.json")
    problems.extend(f"temp file left: {p}" for p in hidden_files(root))
    assert not problems, "\n".join(problems)
    return checked




def dest(ref: str, **ctx):
    return parse_reference(ref).new_destination(SystemContext(**ctx))


def source(ref: str, **ctx):
    return parse_reference(ref).new_source(SystemContext(**ctx))


# --- pallet writes, skopeo reads -------------------------------------------------------------

def test_oci_write_single_read_by_skopeo(src_layout, tmp_path):
    out = str(tmp_path / "out")
    with dest(f"oci:{out}:v1") as d:
        digest, raw = push_layout(src_layout, d)
    assert check_oci_layout(out) == 3
    assert skopeo_raw(f"oci:{out}:v1") == raw
    info = skopeo_inspect(f"oci:{out}:v1")
    assert info["Digest"] == digest
    m = json.loads(raw)
    assert info["Layers"] == [x["digest"] for x in m["layers"]]
    skopeo("copy", "-q", f"oci:{out}:v1", f"oci:{tmp_path}/again:x")
    assert layout_entry(str(tmp_path / "again"), "x")["digest"] == digest
    entry = layout_entry(out, "v1")
    assert entry == {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw),
                     "annotations": {REF_NAME: "v1"}}


def test_oci_write_multiarch_index_read_by_skopeo(multi_layout, tmp_path):
    out = str(tmp_path / "out")
    with dest(f"oci:{out}:multi") as d:
        digest, raw = push_layout(multi_layout, d)
    check_oci_layout(out)
    entry = layout_entry(out, "multi")
    assert entry["mediaType"] == OCI_INDEX and entry["digest"] == digest
    assert skopeo_raw(f"oci:{out}:multi") == raw
    skopeo("copy", "-q", "--all", f"oci:{out}:multi", f"dir:{tmp_path}/d")
    assert open(tmp_path / "d" / "manifest.json", "rb").read() == raw
    for inst in json.loads(raw)["manifests"]:
        assert (tmp_path / "d" / (inst["digest"][7:] + ".manifest.json")).exists()


def test_oci_several_images_and_tag_replacement(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    images.make_layout(a, "latest")
    images.make_layout(b, "latest", layers=[{"b.txt": "b\n"}], arch="arm64")
    out = str(tmp_path / "out")
    with dest(f"oci:{out}:v1") as d:
        da, _ = push_layout(a, d)
    with dest(f"oci:{out}:v2") as d:
        db, _ = push_layout(b, d)
    assert [e["annotations"][REF_NAME] for e in json.load(open(f"{out}/index.json"))["manifests"]] == ["v1", "v2"]
    assert skopeo_inspect(f"oci:{out}:v1")["Digest"] == da
    assert skopeo_inspect(f"oci:{out}:v2")["Digest"] == db
    with dest(f"oci:{out}:v1") as d:  # retag v1 to image b: the entry is replaced in place
        push_layout(b, d)
    entries = json.load(open(f"{out}/index.json"))["manifests"]
    assert [(e["annotations"][REF_NAME], e["digest"]) for e in entries] == [("v1", db), ("v2", db)]
    assert skopeo_inspect(f"oci:{out}:v1")["Architecture"] == "arm64"
    check_oci_layout(out)


def test_oci_untagged_destination_and_source_selection(src_layout, tmp_path):
    out = str(tmp_path / "out")
    with dest(f"oci:{out}") as d:
        digest, raw = push_layout(src_layout, d)
    entry = layout_entry(out)
    assert entry["digest"] == digest and "annotations" not in entry
    assert skopeo_inspect(f"oci:{out}")["Digest"] == digest
    with source(f"oci:{out}") as s:
        assert s.get_manifest() == (raw, OCI_MANIFEST)
    with dest(f"oci:{out}") as d:  # the same untagged image again: no duplicate entry
        push_layout(src_layout, d)
    assert len(json.load(open(f"{out}/index.json"))["manifests"]) == 1
    other = str(tmp_path / "other")
    images.make_layout(other, "latest", layers=[{"x": "y"}])
    with dest(f"oci:{out}:t") as d:
        d2, raw2 = push_layout(other, d)
    with pytest.raises(errors.InvalidReference) as e:
        source(f"oci:{out}")
    assert "2 images" in one_line(e.value) and "t" in str(e.value)
    with source(f"oci:{out}:@1") as s:
        assert s.get_manifest()[0] == raw2
    with source(f"oci:{out}:@0") as s:
        assert s.get_manifest()[0] == raw


# --- skopeo writes, pallet reads -------------------------------------------------------------

def test_oci_read_what_skopeo_wrote(src_layout, multi_layout, tmp_path):
    sk = str(tmp_path / "sk")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"oci:{sk}:single")
    skopeo("copy", "-q", "--all", f"oci:{multi_layout}:m", f"oci:{sk}:multi")
    with source(f"oci:{sk}:single") as s:
        raw, media_type = s.get_manifest()
        assert raw == skopeo_raw(f"oci:{sk}:single") and media_type == OCI_MANIFEST
        m = json.loads(raw)
        for d in [m["config"]] + m["layers"]:
            data = read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))
            assert len(data) == d["size"]
        assert sha(raw) == skopeo_inspect(f"oci:{sk}:single")["Digest"]
    with source(f"oci:{sk}:multi") as s:
        raw, media_type = s.get_manifest()
        assert raw == skopeo_raw(f"oci:{sk}:multi") and media_type == OCI_INDEX
        for inst in json.loads(raw)["manifests"]:
            iraw, itype = s.get_manifest(inst["digest"])
            assert sha(iraw) == inst["digest"] and itype == inst["mediaType"]
            im = json.loads(iraw)
            for d in [im["config"]] + im["layers"]:
                read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))
        with pytest.raises(errors.NotFound):
            s.get_manifest("sha256:" + "0" * 64)


def test_oci_shared_blob_dir(src_layout, tmp_path):
    out, shared = str(tmp_path / "out"), str(tmp_path / "shared")
    with dest(f"oci:{out}:v1", oci_shared_blob_dir=shared) as d:
        digest, raw = push_layout(src_layout, d)
    assert not os.listdir(os.path.join(out, "blobs")) if os.path.isdir(os.path.join(out, "blobs")) else True
    check_oci_layout(out, shared=shared)
    assert (tmp_path / "shared" / "sha256" / digest[7:]).exists()
    skopeo("copy", "-q", "--src-shared-blob-dir", shared, f"oci:{out}:v1", f"oci:{tmp_path}/plain:x")
    check_oci_layout(str(tmp_path / "plain"))
    with source(f"oci:{out}:v1", oci_shared_blob_dir=shared) as s:
        m = json.loads(s.get_manifest()[0])
        read_verified(s, Descriptor(m["config"]["mediaType"], m["config"]["digest"], m["config"]["size"]))


# --- crash safety, concurrency, reuse --------------------------------------------------------

class Exploding:
    """A stream that yields some bytes then fails as the copy engine's verifier does."""

    def __init__(self, data: bytes):
        self.data = data
        self.sent = False

    def read(self, n=-1):
        if not self.sent:
            self.sent = True
            return self.data[: len(self.data) // 2]
        raise errors.DigestMismatch("blob: digest mismatch: expected sha256:..., got sha256:...")


def test_oci_interrupted_write_leaves_layout_unchanged(src_layout, tmp_path):
    out = str(tmp_path / "out")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"oci:{out}:old")
    before = snapshot(out)
    other = str(tmp_path / "other")
    images.make_layout(other, "latest", layers=[{"new.txt": "new\n"}, {"more.txt": b"x" * 100000}])
    # 1: blobs and manifest written, closed without commit
    with dest(f"oci:{out}:old") as d:
        push_layout(other, d, commit=False)
    assert snapshot(out) == before
    # 2: a blob stream fails mid-way (corrupt data): put_blob raises, nothing is left
    m = json.loads(layout_blob(other, layout_entry(other)["digest"]))
    layer = m["layers"][1]
    data = layout_blob(other, layer["digest"])
    with dest(f"oci:{out}:old") as d:
        with pytest.raises(errors.DigestMismatch):
            d.put_blob(Exploding(data), Descriptor(layer["mediaType"], layer["digest"], layer["size"]))
        with pytest.raises(errors.DigestMismatch):  # wrong data for the announced digest
            d.put_blob(Verifying(open(os.path.join(other, "blobs", "sha256", layer["digest"][7:]), "rb"),
                                 "sha256:" + "1" * 64), Descriptor(layer["mediaType"], "sha256:" + "1" * 64, -1))
        assert d.try_reusing_blob(Descriptor(layer["mediaType"], layer["digest"], layer["size"])) is None
    assert snapshot(out) == before
    assert hidden_files(out) == []
    # 3: a new layout that is never committed leaves no directory behind
    fresh = str(tmp_path / "deep" / "fresh")
    with dest(f"oci:{fresh}:x") as d:
        push_layout(other, d, commit=False)
    assert not os.path.exists(str(tmp_path / "deep"))


def test_oci_concurrent_put_blob_and_reuse(tmp_path):
    out = str(tmp_path / "out")
    blobs = [os.urandom(200000 + i) for i in range(8)]
    d = dest(f"oci:{out}:c")
    results, failures = [], []

    def put(data):
        try:
            results.append(d.put_blob(Verifying(__import__("io").BytesIO(data), sha(data), len(data)),
                                      Descriptor("application/vnd.oci.image.layer.v1.tar", sha(data), len(data))))
        except BaseException as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=put, args=(b,)) for b in blobs + blobs]  # each blob twice, at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(results) == 16
    for b in blobs:
        got = d.try_reusing_blob(Descriptor("x/y", sha(b), -1))
        assert got is not None and got.size == len(b)
    assert d.try_reusing_blob(Descriptor("x/y", sha(b"nope"), -1)) is None
    d.close()
    assert not os.path.exists(out)


def test_oci_try_reusing_blob_sees_existing_layout(src_layout):
    m = json.loads(layout_blob(src_layout, layout_entry(src_layout)["digest"]))
    with dest(f"oci:{src_layout}:other") as d:
        for x in [m["config"]] + m["layers"]:
            got = d.try_reusing_blob(Descriptor(x["mediaType"], x["digest"], -1))
            assert got is not None and got.size == x["size"] and got.digest == x["digest"]


def test_oci_delete(tmp_path):
    base = {"base.txt": "shared\n"}
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    images.make_layout(a, "latest", layers=[base, {"a.txt": "a\n"}])
    images.make_layout(b, "latest", layers=[base, {"b.txt": "b\n"}])
    out = str(tmp_path / "out")
    with dest(f"oci:{out}:a") as d:
        da, raw_a = push_layout(a, d)
    with dest(f"oci:{out}:b") as d:
        db, raw_b = push_layout(b, d)
    ma, mb = json.loads(raw_a), json.loads(raw_b)
    parse_reference(f"oci:{out}:a").delete(SystemContext())
    entries = json.load(open(f"{out}/index.json"))["manifests"]
    assert [e["annotations"][REF_NAME] for e in entries] == ["b"]
    check_oci_layout(out)
    present = set(os.listdir(f"{out}/blobs/sha256"))
    assert ma["layers"][0]["digest"][7:] in present  # shared with b
    assert ma["layers"][1]["digest"][7:] not in present
    assert da[7:] not in present and ma["config"]["digest"][7:] not in present
    assert skopeo_inspect(f"oci:{out}:b")["Digest"] == db
    assert skopeo("inspect", f"oci:{out}:a", check=False).returncode != 0
    with pytest.raises(errors.NotFound):
        parse_reference(f"oci:{out}:a").delete(SystemContext())


# --- bad input -------------------------------------------------------------------------------

def test_oci_bad_references():
    for text in ("oci:", "oci::tag", "oci:/x:bad name", "oci:/x:-lead"):
        with pytest.raises(errors.InvalidReference) as e:
            parse_reference(text)
        one_line(e.value)
    ref = parse_reference("oci:/some/path:repo/name:1.0")
    assert (ref.path, ref.image) == ("/some/path", "repo/name:1.0")
    assert str(ref) == "oci:/some/path:repo/name:1.0"
    with pytest.raises(errors.InvalidReference):
        parse_reference("oci:/x:@1").new_destination(SystemContext())


def test_oci_missing_and_malformed(src_layout, tmp_path):
    with pytest.raises(errors.NotFound) as e:
        source(f"oci:{tmp_path}/nothing:latest")
    assert e.value.exit_code == 2 and "nothing" in one_line(e.value)
    with pytest.raises(errors.NotFound) as e:
        source(f"oci:{src_layout}:nosuchtag")
    assert "nosuchtag" in one_line(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.NotFound) as e:
        source(f"oci:{tmp_path}/empty")
    assert "index.json" in one_line(e.value)

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.json").write_text("{not json")
    with pytest.raises(errors.InvalidDocument) as e:
        source(f"oci:{bad}")
    assert "index.json" in one_line(e.value)
    (bad / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:nothex", "size": 3}]}))
    with pytest.raises(errors.InvalidDocument) as e:
        source(f"oci:{bad}")
    assert "manifests[0].digest" in one_line(e.value)
    (bad / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": "3"}]}))
    with pytest.raises(errors.InvalidDocument) as e:
        dest(f"oci:{bad}:x")  # a destination refuses to merge into a malformed index too
    assert "manifests[0].size" in one_line(e.value)
    (bad / "index.json").write_text(json.dumps({"manifests": []}))
    with pytest.raises(errors.InvalidDocument) as e:
        source(f"oci:{bad}")
    assert "schemaVersion" in one_line(e.value)

    # a manifest blob missing from the layout; a layer blob missing
    entry = layout_entry(src_layout)
    m = json.loads(layout_blob(src_layout, entry["digest"]))
    os.unlink(os.path.join(src_layout, "blobs", "sha256", m["layers"][0]["digest"][7:]))
    with source(f"oci:{src_layout}") as s:
        with pytest.raises(errors.BlobNotFound) as e:
            s.get_blob(Descriptor(m["layers"][0]["mediaType"], m["layers"][0]["digest"], 1))
        one_line(e.value)
    os.unlink(os.path.join(src_layout, "blobs", "sha256", entry["digest"][7:]))
    with source(f"oci:{src_layout}") as s:
        with pytest.raises(errors.NotFound) as e:
            s.get_manifest()
        one_line(e.value)

    # index.json that is a directory; a layout path that is a file
    weird = tmp_path / "weird"
    (weird / "index.json").mkdir(parents=True)
    with pytest.raises(errors.PalletError) as e:
        source(f"oci:{weird}")
    assert "index.json" in one_line(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.PalletError) as e:
        dest(f"oci:{tmp_path}/file:x")
    one_line(e.value)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs: a real full disk (the suite runs as root, as .ci/run does)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (needs root): {p.stderr.decode().strip()}")
    try:
        yield str(mnt)
    finally:
        unmount_under(str(mnt))


def test_oci_full_disk_is_one_line_error(tmp_path, small_tmpfs):
    big = str(tmp_path / "big")
    images.make_layout(big, "latest", layers=[{"blob.bin": os.urandom(600 * 1024)}])
    out = os.path.join(small_tmpfs, "layout")
    with dest(f"oci:{out}:x") as d:
        with pytest.raises(errors.PalletError) as e:
            push_layout(big, d)
    assert "no space left on device" in one_line(e.value)
    assert os.listdir(small_tmpfs) == []


def test_oci_permission_denied_is_one_line_error(src_layout, tmp_path):
    """Run as an unprivileged user (root would bypass the permission bits)."""
    need("setpriv")
    os.chmod(tmp_path, 0o755)
    os.chmod(src_layout, 0o700)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        shutil.which("pallet") or os.path.join(os.path.dirname(sys.executable), "pallet"),
                        "inspect", f"oci:{src_layout}:latest"], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied" in lines[0], p.stderr


# --- command line ----------------------------------------------------------------------------

def test_cli_copy_oci_round_trip(src_layout, multi_layout, tmp_path):
    out = str(tmp_path / "out")
    run_pallet("copy", f"oci:{src_layout}:latest", f"oci:{out}:t")
    check_oci_layout(out)
    assert skopeo_raw(f"oci:{out}:t") == skopeo_raw(f"oci:{src_layout}:latest")
    run_pallet("copy", "--all", f"oci:{multi_layout}:m", f"oci:{out}:m")
    check_oci_layout(out)
    assert skopeo_raw(f"oci:{out}:m") == skopeo_raw(f"oci:{multi_layout}:m")
    skopeo("copy", "-q", "--all", f"oci:{out}:m", f"oci:{tmp_path}/sk:m")
    p = run_pallet("inspect", "--raw", f"oci:{tmp_path}/sk:m")
    assert p.stdout.encode() == skopeo_raw(f"oci:{out}:m") or p.stdout.strip().encode() == skopeo_raw(f"oci:{out}:m").strip()
    p = run_pallet("inspect", f"oci:{tmp_path}/missing:x", check=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = run_pallet("inspect", f"oci:{out}", check=False)
    assert p.returncode == 1 and "choose one" in p.stderr
