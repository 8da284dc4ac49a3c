"""Decompression bombs and full disks (issue 14.9): a layer may expand to at most
``layer_size_limit`` bytes and must leave ``free_space_reserve`` free on the store's
filesystem; either way the error names the layer and the limit, and nothing stays in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zlib

import pytest

from conftest import run_pallet, unmount_under
from pallet.errors import ConfigError
from pallet.storage.options import parse_size, resolve

MiB = 1 << 20


def put_layer_file(layout: str, path: str, diff_id: str, media_type: str, tag: str = "t") -> str:
    """Make ``layout`` an OCI layout holding one image whose one layer is the file ``path``
    (moved into the layout's blobs); returns the layer's digest."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MiB), b""):
            h.update(b)
    ld = "sha256:" + h.hexdigest()
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    os.rename(path, os.path.join(blobs, ld[7:]))

    def put(data: bytes) -> tuple[str, int]:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d[7:]), "wb") as f:
            f.write(data)
        return d, len(data)

    cd, cn = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
    md, mn = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                        "size": cn},
                             "layers": [{"mediaType": media_type, "digest": ld,
                                         "size": os.path.getsize(os.path.join(blobs, ld[7:]))}]}).encode())
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                       "digest": md, "size": mn,
                                                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return ld


def write_layer(path: str, size: int, fill: bytes, gzip_it: bool) -> str:
    """A one-file tar layer of ``size`` bytes of ``fill`` repeated, written as a stream (never
    held in memory), gzip-compressed or not; returns its diffID."""
    import tarfile

    ti = tarfile.TarInfo("payload")
    ti.size = size
    header = ti.tobuf(tarfile.PAX_FORMAT)
    diff = hashlib.sha256()
    comp = zlib.compressobj(9, zlib.DEFLATED, 31) if gzip_it else None
    chunk = (fill * (MiB // len(fill) + 1))[:MiB]
    with open(path, "wb") as out:
        def emit(b: bytes) -> None:
            diff.update(b)
            out.write(comp.compress(b) if comp else b)

        emit(header)
        left = size
        while left:
            n = min(left, MiB)
            emit(chunk[:n])
            left -= n
        emit(bytes(-size % 512) + bytes(1024))
        if comp:
            out.write(comp.flush())
    return "sha256:" + diff.hexdigest()


def store_is_empty(root: str, driver: str) -> None:
    assert run_pallet("--root", root, "--storage-driver", driver, "images", "-q").stdout.strip() == ""
    assert os.listdir(os.path.join(root, driver)) in ([], ["l", "empty"], ["empty", "l"])
    if driver == "overlay":
        assert os.listdir(os.path.join(root, driver, "l")) == []
    assert [n for n in os.listdir(os.path.join(root, "staging")) if not n.endswith(".lock")] == []
    assert os.listdir(os.path.join(root, "blobs", "sha256")) == []


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_gzip_bomb_stops_at_the_layer_size_limit(tmp_path, driver):
    """A ~300 KB gzip layer that expands to 256 MiB, with a limit of 8 MiB."""
    blob = str(tmp_path / "bomb.gz")
    diff_id = write_layer(blob, 256 * MiB, b"\0", gzip_it=True)
    assert os.path.getsize(blob) < 1 * MiB
    layout = str(tmp_path / "oci")
    digest = put_layer_file(layout, blob, diff_id, "application/vnd.oci.image.layer.v1.tar+gzip")
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage.options.pallet]\nlayer_size_limit = "8MiB"\n')
    root = str(tmp_path / "store")
    p = run_pallet("--root", root, "--storage-driver", driver, "copy", "-q", f"oci:{layout}:t", "local:bomb",
                   check=False, env={"PALLET_STORAGE_CONF": str(conf)})
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert digest in err and "layer_size_limit of 8 MiB" in err, err
    store_is_empty(root, driver)


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        yield str(mnt)
    finally:
        unmount_under(str(mnt))


def test_free_space_reserve_on_a_small_tmpfs_store(tmp_path, small_tmpfs):
    """A store on a 24 MiB tmpfs with a 8 MiB reserve: a 1 MiB layer goes in, a 20 MiB one is
    stopped (while being written) before the filesystem is full, and leaves nothing behind."""
    conf = tmp_path / "storage.conf"
    conf.write_text("[storage.options.pallet]\nfree_space_reserve = 8388608\n")
    env = {"PALLET_STORAGE_CONF": str(conf)}
    root = os.path.join(small_tmpfs, "store")
    tar = "application/vnd.oci.image.layer.v1.tar"
    small = str(tmp_path / "small.tar")
    small_layout = str(tmp_path / "oci-small")
    put_layer_file(small_layout, small, write_layer(small, MiB, b"s", gzip_it=False), tar)
    run_pallet("--root", root, "--storage-driver", "vfs", "copy", "-q", f"oci:{small_layout}:t", "local:small",
               env=env)
    big = str(tmp_path / "big.tar")
    big_layout = str(tmp_path / "oci-big")
    digest = put_layer_file(big_layout, big, write_layer(big, 20 * MiB, b"big!", gzip_it=False), tar)
    p = run_pallet("--root", root, "--storage-driver", "vfs", "copy", "-q", f"oci:{big_layout}:t", "local:big",
                   check=False, env=env)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert digest in err and "free_space_reserve of 8 MiB" in err, err
    st = os.statvfs(small_tmpfs)
    assert st.f_bavail * st.f_frsize > 20 * MiB  # everything the refused layer wrote is gone
    out = run_pallet("--root", root, "--storage-driver", "vfs", "images", env=env).stdout
    assert "small" in out and "big" not in out
    assert [n for n in os.listdir(os.path.join(root, "staging")) if not n.endswith(".lock")] == []


@pytest.mark.parametrize("text,want", [(0, 0), (1234, 1234), ("512", 512), ("64M", 64 * MiB), ("64MiB", 64 * MiB),
                                       ("10GB", 10 << 30), ("1t", 1 << 40), ("2 KiB", 2048)])
def test_sizes_parse(text, want):
    assert parse_size(text, "x") == want


@pytest.mark.parametrize("bad", ["-5", -5, "5X", "1.5G", "", True, 3.0, "0x10"])
def test_bad_sizes_are_config_errors(bad):
    with pytest.raises(ConfigError, match="storage.options.pallet.layer_size_limit"):
        parse_size(bad, "storage.conf: storage.options.pallet.layer_size_limit")


def test_limits_are_read_from_storage_conf(tmp_path, monkeypatch):
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "vfs"\n[storage.options.pallet]\nlayer_size_limit = "1G"\n'
                    "free_space_reserve = 0\n")
    monkeypatch.setenv("PALLET_STORAGE_CONF", str(conf))
    o = resolve(str(tmp_path / "r"))
    assert (o.driver, o.layer_size_limit, o.free_space_reserve) == ("vfs", 1 << 30, 0)
    conf.write_text('[storage.options.pallet]\nfree_space_reserve = "lots"\n')
    with pytest.raises(ConfigError, match="free_space_reserve"):
        resolve(str(tmp_path / "r"))


def test_one_diffid_helper_for_every_form(tmp_path):
    """issue 15: the diffID is computed by one helper in its pull and push forms (store and
    docker-archive read, copy tees): gzip, zstd and plain blobs give the same diffID and size."""
    import io

    from pallet.layer import stream as lstream

    plain = str(tmp_path / "l.tar")
    diff_id = write_layer(plain, 3 * MiB + 5, b"abc", gzip_it=False)
    with open(plain, "rb") as f:
        tar = f.read()
    for algo in (None, "gzip", "zstd"):
        blob = tar if algo is None else lstream.Compress(io.BytesIO(tar), algo).read()
        r = lstream.diff_id_of(io.BytesIO(blob))
        assert (r.digest, r.size, r.compression) == (diff_id, len(tar), algo)
        w = lstream.DiffIDWriter()
        for i in range(0, len(blob), 7777):
            w.write(blob[i:i + 7777])
        w.close()
        assert (w.digest, w.size) == (diff_id, len(tar))
    gz = lstream.Compress(io.BytesIO(tar), "gzip").read()
    r = lstream.diff_id_of(io.BytesIO(gz), "none")  # "none": taken as it is, never sniffed
    assert (r.digest, r.size) == ("sha256:" + hashlib.sha256(gz).hexdigest(), len(gz))
