#!/usr/bin/env python3
"""Make a small busybox OCI image layout offline, from Debian's busybox-static.

Standard library only, reproducible (fixed mtimes), so the demo needs no network:
    make-demo-image.py DIR TAG
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

EPOCH = 1700000000


def blob(root, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def main(root, tag):
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=None, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, EPOCH, link
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            add(d, mode=0o1777 if d == "tmp" else 0o755)
        with open("/bin/busybox", "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, 0o755, f.read())
        for a in sorted(set(applets)):
            if a != "busybox":
                add(f"bin/{a}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    tar = raw.getvalue()
    layer = blob(root, gzip.compress(tar, 6, mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = {"created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": {"org.opencontainers.image.title": "pallet demo"}},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
              "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "make-demo-image.py"}]}
    cfg = blob(root, json.dumps(config).encode())
    cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": [layer]}
    m = blob(root, json.dumps(manifest).encode())
    m["mediaType"] = manifest["mediaType"]
    m["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [m]}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
