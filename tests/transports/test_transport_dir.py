"""The ``dir:`` transport against skopeo: interop both ways (OCI, Docker schema 2, multi-arch),
replacing an old image safely, refusing foreign directories, bad input."""

from __future__ import annotations

import json
import os

import pytest

import images
from conftest import run_pallet
from pallet import errors
from pallet.oci.descriptor import Descriptor
from pallet.transports import parse_reference
from test_transport_oci import (Exploding, dest, hidden_files, layout_blob, layout_entry, one_line, push_layout,
                                read_verified, sha, skopeo, skopeo_inspect, skopeo_raw, snapshot, source)

VERSION = b"Directory Transport Version: 1.1\n"




def expected_files(raw: bytes, src_root: str, instances: bool = False) -> set:
    doc = json.loads(raw)
    names = {"manifest.json", "version"}
    docs = [doc]
    if "manifests" in doc:
        docs = []
        for inst in doc["manifests"]:
            names.add(inst["digest"][7:] + ".manifest.json")
            docs.append(json.loads(layout_blob(src_root, inst["digest"])))
    for m in docs:
        for d in [m["config"]] + m["layers"]:
            names.add(d["digest"][7:])
    return names


def test_dir_pallet_writes_skopeo_reads(src_layout, tmp_path):
    out = str(tmp_path / "out")
    with dest(f"dir:{out}") as d:
        digest, raw = push_layout(src_layout, d)
    assert set(os.listdir(out)) == expected_files(raw, src_layout)
    assert open(os.path.join(out, "version"), "rb").read() == VERSION
    assert open(os.path.join(out, "manifest.json"), "rb").read() == raw
    assert skopeo_raw(f"dir:{out}") == raw
    assert skopeo_inspect(f"dir:{out}")["Digest"] == digest
    skopeo("copy", "-q", f"dir:{out}", f"oci:{tmp_path}/back:x")
    assert layout_entry(str(tmp_path / "back"), "x")["digest"] == digest


def test_dir_pallet_writes_multiarch(multi_layout, tmp_path):
    out = str(tmp_path / "out")
    with dest(f"dir:{out}") as d:
        digest, raw = push_layout(multi_layout, d)
    assert set(os.listdir(out)) == expected_files(raw, multi_layout)
    assert skopeo_raw(f"dir:{out}") == raw
    skopeo("copy", "-q", "--all", f"dir:{out}", f"oci:{tmp_path}/back:m")
    assert layout_entry(str(tmp_path / "back"), "m")["digest"] == digest


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_dir_skopeo_writes_pallet_reads(src_layout, tmp_path, fmt):
    out = str(tmp_path / "sk")
    skopeo("copy", "-q", "--format", fmt, f"oci:{src_layout}:latest", f"dir:{out}")
    with source(f"dir:{out}") as s:
        raw, media_type = s.get_manifest()
        assert raw == skopeo_raw(f"dir:{out}")
        want = {"oci": "application/vnd.oci.image.manifest.v1+json",
                "v2s2": "application/vnd.docker.distribution.manifest.v2+json"}[fmt]
        assert media_type == want
        assert sha(raw) == skopeo_inspect(f"dir:{out}")["Digest"]
        m = json.loads(raw)
        for d in [m["config"]] + m["layers"]:
            read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))


def test_dir_skopeo_writes_multiarch_pallet_reads(multi_layout, tmp_path):
    out = str(tmp_path / "sk")
    skopeo("copy", "-q", "--all", f"oci:{multi_layout}:m", f"dir:{out}")
    with source(f"dir:{out}") as s:
        raw, media_type = s.get_manifest()
        assert raw == skopeo_raw(f"dir:{out}") and media_type == "application/vnd.oci.image.index.v1+json"
        for inst in json.loads(raw)["manifests"]:
            iraw, itype = s.get_manifest(inst["digest"])
            assert sha(iraw) == inst["digest"] and itype == inst["mediaType"]
            im = json.loads(iraw)
            for d in [im["config"]] + im["layers"]:
                read_verified(s, Descriptor(d["mediaType"], d["digest"], d["size"]))
        with pytest.raises(errors.NotFound) as e:
            s.get_manifest("sha256:" + "4" * 64)
        one_line(e.value)


def test_dir_replaces_old_image_and_reuses_blobs(src_layout, tmp_path):
    out = str(tmp_path / "out")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"dir:{out}")
    old = set(os.listdir(out))
    other = str(tmp_path / "other")
    base = images.STANDARD_LAYERS[0]
    images.make_layout(other, "latest", layers=[base, {"new.txt": "new\n"}])
    m = json.loads(layout_blob(other, layout_entry(other)["digest"]))
    with dest(f"dir:{out}") as d:
        shared = m["layers"][0]
        got = d.try_reusing_blob(Descriptor(shared["mediaType"], shared["digest"], -1))
        assert got is not None and got.size == shared["size"]  # the old image has the base layer
        digest, raw = push_layout(other, d)
    assert set(os.listdir(out)) == expected_files(raw, other)
    assert old - set(os.listdir(out))  # stale blobs of the old image are gone
    assert skopeo_inspect(f"dir:{out}")["Digest"] == digest
    assert hidden_files(out) == []


def test_dir_interrupted_write_leaves_old_image(src_layout, tmp_path):
    out = str(tmp_path / "out")
    skopeo("copy", "-q", f"oci:{src_layout}:latest", f"dir:{out}")
    before = snapshot(out)
    other = str(tmp_path / "other")
    images.make_layout(other, "latest", layers=[{"x": "y"}])
    with dest(f"dir:{out}") as d:
        push_layout(other, d, commit=False)
    assert snapshot(out) == before
    m = json.loads(layout_blob(other, layout_entry(other)["digest"]))
    x = m["layers"][0]
    with dest(f"dir:{out}") as d:
        with pytest.raises(errors.DigestMismatch):
            d.put_blob(Exploding(layout_blob(other, x["digest"])), Descriptor(x["mediaType"], x["digest"], x["size"]))
    assert snapshot(out) == before
    fresh = str(tmp_path / "fresh")
    with dest(f"dir:{fresh}") as d:
        push_layout(other, d, commit=False)
    assert not os.path.exists(fresh)


def test_dir_refuses_foreign_directory(src_layout, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(errors.PalletError) as e:
        dest(f"dir:{foreign}")
    assert "not a dir: image" in one_line(e.value)
    assert (foreign / "precious.txt").read_text() == "keep me"
    (foreign / "version").write_text("Something else\n")
    with pytest.raises(errors.PalletError):
        dest(f"dir:{foreign}")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(errors.PalletError) as e:
        dest(f"dir:{tmp_path}/afile")
    one_line(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with dest(f"dir:{empty}") as d:  # an empty directory is fine
        push_layout(src_layout, d)
    assert skopeo_inspect(f"dir:{empty}")["Digest"]


def test_dir_bad_input(tmp_path):
    with pytest.raises(errors.InvalidReference):
        parse_reference("dir:")
    with pytest.raises(errors.NotFound) as e:
        source(f"dir:{tmp_path}/none")
    assert e.value.exit_code == 2 and "none" in one_line(e.value)
    (tmp_path / "nomanifest").mkdir()
    with pytest.raises(errors.NotFound) as e:
        source(f"dir:{tmp_path}/nomanifest")
    assert "manifest.json" in one_line(e.value)
    d = tmp_path / "broken"
    d.mkdir()
    (d / "manifest.json").write_text('{"schemaVersion": 2, "config": {}}')
    with source(f"dir:{d}") as s:
        raw, _ = s.get_manifest()  # bytes are returned as stored; parsing names the field
        from pallet.oci.manifest import parse

        with pytest.raises(errors.InvalidDocument) as e:
            parse(raw, "application/vnd.oci.image.manifest.v1+json")
        assert "config" in one_line(e.value)
        with pytest.raises(errors.BlobNotFound) as e:
            s.get_blob(Descriptor("x/y", "sha256:" + "5" * 64, 1))
        one_line(e.value)
        with pytest.raises(errors.InvalidDocument):
            s.get_blob(Descriptor("x/y", "sha256:../../etc/passwd", 1))


def test_cli_dir_round_trips(src_layout, multi_layout, tmp_path):
    out = str(tmp_path / "d")
    run_pallet("copy", f"oci:{src_layout}:latest", f"dir:{out}")
    assert skopeo_raw(f"dir:{out}") == skopeo_raw(f"oci:{src_layout}:latest")
    run_pallet("copy", "--all", f"oci:{multi_layout}:m", f"dir:{out}")  # replaces the single image
    assert skopeo_raw(f"dir:{out}") == skopeo_raw(f"oci:{multi_layout}:m")
    run_pallet("copy", "--all", f"dir:{out}", f"oci:{tmp_path}/o:m")
    assert skopeo_raw(f"oci:{tmp_path}/o:m") == skopeo_raw(f"oci:{multi_layout}:m")
    sk = str(tmp_path / "sk")
    skopeo("copy", "-q", "--format", "v2s2", f"oci:{src_layout}:latest", f"dir:{sk}")
    p = run_pallet("inspect", f"dir:{sk}")
    assert json.loads(p.stdout)["Digest"] == skopeo_inspect(f"dir:{sk}")["Digest"]
    p = run_pallet("copy", f"oci:{src_layout}:latest", f"dir:{src_layout}", check=False)
    assert p.returncode == 1 and "not a dir: image" in p.stderr
