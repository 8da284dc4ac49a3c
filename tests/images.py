"""Test images made offline, byte-for-byte reproducible, written as OCI layouts.

Written with the standard library only (tarfile, gzip, json) so the tests do not use the
code they test to make their inputs. ``skopeo`` then moves them wherever a test needs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

EPOCH = 1700000000


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_tar(files: dict) -> bytes:
    """A tar of ``files``: name -> bytes (regular file), or a dict with type/target/mode.

    Types: "dir", "symlink" (target), "hardlink" (target), "file" (data), "whiteout"
    (writes ``.wh.NAME``), "opaque" (writes ``DIR/.wh..wh..opq``).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, spec in files.items():
            if isinstance(spec, (bytes, str)):
                spec = {"type": "file", "data": spec.encode() if isinstance(spec, str) else spec}
            t = spec["type"]
            if t == "whiteout":
                d, b = os.path.split(name)
                name = os.path.join(d, ".wh." + b)
                t = "file"
                spec = {"data": b""}
            elif t == "opaque":
                name = os.path.join(name, ".wh..wh..opq")
                t = "file"
                spec = {"data": b""}
            ti = tarfile.TarInfo(name)
            ti.mtime = EPOCH
            ti.uid = spec.get("uid", 0)
            ti.gid = spec.get("gid", 0)
            ti.mode = spec.get("mode", 0o755 if t == "dir" else 0o644)
            data = None
            if t == "dir":
                ti.type = tarfile.DIRTYPE
            elif t == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = spec["target"]
            elif t == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = spec["target"]
            else:
                data = spec.get("data", b"")
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


class Blobs:
    def __init__(self, root: str):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(self, data: bytes) -> tuple[str, int]:
        d = _sha(data)
        with open(os.path.join(self.root, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d, len(data)


def image(blobs: Blobs, layers: list[dict], arch: str = "amd64", variant: str = "", docker: bool = False,
          config_extra: dict | None = None, compression: str = "gzip") -> tuple[dict, bytes]:
    """Write an image's blobs; return (descriptor of its manifest, manifest bytes)."""
    layer_descs, diff_ids = [], []
    for files in layers:
        tar = layer_tar(files)
        diff_ids.append(_sha(tar))
        data = gz(tar) if compression == "gzip" else tar
        d, n = blobs.put(data)
        if docker:
            mt = "application/vnd.docker.image.rootfs.diff.tar.gzip"
        else:
            mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compression == "gzip" else "")
        layer_descs.append({"mediaType": mt, "digest": d, "size": n})
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"], "Labels": {"org.example.test": "yes"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    config.update(config_extra or {})
    cbytes = json.dumps(config, sort_keys=True).encode()
    cd, cn = blobs.put(cbytes)
    if docker:
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": cn, "digest": cd},
                    "layers": [{"mediaType": x["mediaType"], "size": x["size"], "digest": x["digest"]} for x in layer_descs]}
    else:
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                    "layers": layer_descs}
    mbytes = json.dumps(manifest).encode()
    md, mn = blobs.put(mbytes)
    desc = {"mediaType": manifest["mediaType"], "digest": md, "size": mn}
    plat = {"architecture": arch, "os": "linux"}
    if variant:
        plat["variant"] = variant
    desc["platform"] = plat
    return desc, mbytes


def write_index(root: str, entries: list[dict]) -> None:
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": entries}, f)


STANDARD_LAYERS = [
    {"etc": {"type": "dir"}, "etc/hostname": "pallet\n", "bin": {"type": "dir"},
     "bin/tool": {"type": "file", "data": b"#!/bin/sh\necho tool\n", "mode": 0o755},
     "bin/tool-link": {"type": "symlink", "target": "tool"},
     "bin/tool-hard": {"type": "hardlink", "target": "bin/tool"},
     "var": {"type": "dir"}, "var/cache": {"type": "dir"}, "var/cache/a": "a", "var/cache/b": "b",
     "tmp": {"type": "dir", "mode": 0o1777}, "data.bin": os.urandom(0) + bytes(range(256)) * 64},
    {"etc/hostname": {"type": "whiteout"}, "var/cache": {"type": "opaque"}, "var/cache/c": "c",
     "home": {"type": "dir"}, "home/user": {"type": "dir", "uid": 1000, "gid": 1000},
     "home/user/notes.txt": {"type": "file", "data": b"hello\n", "uid": 1000, "gid": 1000, "mode": 0o600}},
    {"big.bin": hashlib.sha256(b"seed").digest() * 4096},
]


def make_layout(root: str, tag: str = "latest", layers: list[dict] | None = None, **kw) -> dict:
    """An OCI layout at ``root`` holding one image tagged ``tag``; returns its descriptor."""
    blobs = Blobs(root)
    desc, _ = image(blobs, layers if layers is not None else STANDARD_LAYERS, **kw)
    desc = dict(desc)
    desc.pop("platform")
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    write_index(root, [desc])
    return desc


def one_layer_layout(root: str, tag: str, blob: bytes, diff_id: str, gzipped: bool, config: dict | None = None) -> None:
    """An OCI layout at ``root`` holding one image tagged ``tag`` whose one layer is ``blob`` as
    given (crafted bytes, gzip-compressed when ``gzipped``), with ``diff_id`` in its config
    (``config`` is the config's "config" object)."""
    blobs = Blobs(root)
    ld, ln = blobs.put(blob)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config or {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cd, cn = blobs.put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzipped else ""),
                                  "digest": ld, "size": ln}]}).encode()
    md, mn = blobs.put(man)
    write_index(root, [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                        "annotations": {"org.opencontainers.image.ref.name": tag}}])


def make_multiarch_layout(root: str, tag: str = "latest",
                          platforms=(("amd64", ""), ("arm64", "v8"), ("arm", "v7")), docker: bool = False) -> dict:
    """An OCI layout holding an index (or Docker manifest list) over several platforms."""
    blobs = Blobs(root)
    descs = []
    for arch, variant in platforms:
        d, _ = image(blobs, [{"arch.txt": f"{arch}{variant}\n"}], arch=arch, variant=variant, docker=docker)
        descs.append(d)
    mt = "application/vnd.docker.distribution.manifest.list.v2+json" if docker else "application/vnd.oci.image.index.v1+json"
    idx = json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": descs}).encode()
    d, n = blobs.put(idx)
    top = {"mediaType": mt, "digest": d, "size": n, "annotations": {"org.opencontainers.image.ref.name": tag}}
    write_index(root, [top])
    return top
