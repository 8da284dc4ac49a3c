"""Docker schema 1 sources (read-only: inspect, and conversion on copy) and terminal progress."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

import images
from conftest import need, release_all, run_pallet, unmount_under


def _layer(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), images.EPOCH
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def schema1_dir(tmp_path):
    """A dir: image with an unsigned schema 1 manifest: two layers and one throwaway entry."""
    d = tmp_path / "s1"
    d.mkdir()
    tars = [_layer({"a.txt": b"first\n"}), _layer({"b.txt": b"second\n"})]
    blobs = []
    for t in tars:
        gz = gzip.compress(t, mtime=0)
        digest = "sha256:" + hashlib.sha256(gz).hexdigest()
        (d / digest[7:]).write_bytes(gz)
        blobs.append(digest)
    empty = gzip.compress(_layer({}), mtime=0)
    empty_digest = "sha256:" + hashlib.sha256(empty).hexdigest()
    (d / empty_digest[7:]).write_bytes(empty)
    history = [  # newest first, as schema 1 lists them
        {"id": "c", "parent": "b", "created": "2020-01-03T00:00:00Z", "throwaway": True,
         "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
         "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, "architecture": "amd64", "os": "linux"},
        {"id": "b", "parent": "a", "created": "2020-01-02T00:00:00Z",
         "container_config": {"Cmd": ["/bin/sh", "-c", "echo second > b.txt"]}},
        {"id": "a", "created": "2020-01-01T00:00:00Z", "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD a"]}},
    ]
    manifest = {"schemaVersion": 1, "name": "test/s1", "tag": "latest", "architecture": "amd64",
                "fsLayers": [{"blobSum": empty_digest}, {"blobSum": blobs[1]}, {"blobSum": blobs[0]}],
                "history": [{"v1Compatibility": json.dumps(h)} for h in history]}
    (d / "manifest.json").write_text(json.dumps(manifest, indent=3))
    (d / "version").write_text("Directory Transport Version: 1.1\n")
    return str(d), tars


def test_schema1_inspect_and_convert(schema1_dir, tmp_path):
    src, tars = schema1_dir
    info = json.loads(run_pallet("inspect", f"dir:{src}").stdout)
    assert info["Architecture"] == "amd64" and info["Env"] == ["PATH=/bin"]
    assert info["Created"] == "2020-01-03T00:00:00Z"
    assert len(info["Layers"]) == 2  # the throwaway entry is not a layer
    digest = run_pallet("manifest-digest", os.path.join(src, "manifest.json")).stdout.strip()
    assert info["Digest"] == digest
    # copying as is keeps schema 1; converting makes a config with the right diffIDs
    run_pallet("copy", "-q", f"dir:{src}", f"dir:{tmp_path}/same")
    assert json.load(open(tmp_path / "same" / "manifest.json"))["schemaVersion"] == 1
    run_pallet("copy", "-q", "--format", "v2s2", f"dir:{src}", f"dir:{tmp_path}/v2s2")
    assert json.load(open(tmp_path / "v2s2" / "manifest.json"))["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    run_pallet("copy", "-q", f"dir:{src}", f"oci:{tmp_path}/conv:x")
    cfg = json.loads(subprocess.run([need("skopeo"), "inspect", "--config", f"oci:{tmp_path}/conv:x"],
                                    capture_output=True, text=True, check=True).stdout)
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    assert [h.get("empty_layer", False) for h in cfg["history"]] == [False, False, True]
    assert cfg["config"]["Cmd"] == ["sh"]
    subprocess.run([need("umoci"), "unpack", "--image", f"{tmp_path}/conv:x", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    assert (tmp_path / "bundle" / "rootfs" / "b.txt").read_text() == "second\n"


def test_schema1_into_the_store(schema1_dir, tmp_path):
    src, tars = schema1_dir
    root = ["--root", str(tmp_path / "store"), "--storage-driver", "vfs"]
    run_pallet(*root, "copy", "-q", f"dir:{src}", "local:s1:latest")
    path = run_pallet(*root, "image", "mount", "s1").stdout.strip()
    try:
        assert sorted(os.listdir(path)) == ["a.txt", "b.txt"]
    finally:
        release_all(lambda: run_pallet(*root, "image", "umount", "s1"), lambda: unmount_under(str(tmp_path / "store")))
    run_pallet(*root, "system", "check")
    run_pallet(*root, "rmi", "s1")


def test_progress_bars_on_a_terminal_and_lines_otherwise(tmp_path):
    layout = str(tmp_path / "src")
    images.make_layout(layout, "v1")
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    # a real pseudo-terminal, through util-linux's script(1)
    out = tmp_path / "tty.out"
    subprocess.run([need("script"), "-qec", f"{exe} copy oci:{layout}:v1 oci:{tmp_path}/a:x 2>&1", str(out)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    tty = out.read_text(errors="replace")
    assert "\x1b[" in tty and "Copying blob" in tty
    # not a terminal: one plain line per blob, on stderr only
    p = run_pallet("copy", f"oci:{layout}:v1", f"oci:{tmp_path}/b:x")
    assert p.stdout == "" and "\x1b" not in p.stderr
    assert len([line for line in p.stderr.splitlines() if line.startswith("Copying blob")]) == 3
