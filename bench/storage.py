#!/usr/bin/env python3
"""The local store, side by side with podman in the same run (issue 3's figures).

- pull of a multi-layer image (>= 250 MB compressed) into an empty store on tmpfs;
- ``images`` on a store holding 100 images;
- peak memory (max RSS) of the pull.

Run: .venv/bin/python bench/storage.py [--runs N] [--size-mb 260]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=260)
    ap.add_argument("--images", type=int, default=100)
    args = ap.parse_args()
    c.precompile()
    work = c.tmpfs_dir("pallet-bench-store-")
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write(CONTAINERS_CONF)
    c.ENV["CONTAINERS_CONF"] = conf
    reg = c.Registry(os.path.join(work, "reg"))
    results = []
    pr, pn = os.path.join(work, "pallet-root"), os.path.join(work, "podman-root")
    # podman refuses a run root longer than 50 characters
    prun = f"/run/pb-{os.getpid()}"

    def podman(*a):
        return ["podman", "--root", pn, "--runroot", prun, "--storage-driver", "overlay", *a]

    def pallet(*a):
        return [c.PALLET, "--root", pr, "--runroot", pr + "-run", "--storage-driver", "overlay", *a]

    def clean():
        for root in (pn, pr):
            if os.path.exists(root):
                subprocess.run(["umount", "-R", root], capture_output=True)
        subprocess.run(podman("system", "reset", "-f"), capture_output=True, env=c.ENV)
        for d in (pn, prun, pr, pr + "-run"):
            shutil.rmtree(d, ignore_errors=True)

    try:
        layout = os.path.join(work, "layout")
        per = max(1, args.size_mb // 4)
        c.out(f"making a {args.size_mb} MB image in 4 layers...")
        c.make_layout(layout, [per + 10, per, per - 10, per])
        ref = f"{reg.host}/bench/big:1"
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:big", f"docker://{ref}"],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(layout)
        results.append(c.ab("pull 4-layer image into an empty store (tmpfs)",
                            ("pallet", pallet("pull", "-q", "--tls-verify=false", ref)),
                            ("podman", podman("pull", "-q", "--tls-verify=false", ref)), args.runs, clean))
        rp = c.max_rss_mb(pallet("pull", "-q", "--tls-verify=false", ref), clean)
        rs = c.max_rss_mb(podman("pull", "-q", "--tls-verify=false", ref), clean)
        print(f"peak memory of the pull: pallet {rp:.0f} MB, podman {rs:.0f} MB, ratio {rp / rs:.2f}")
        results.append({"work": "peak RSS of pull (MB)", "pallet": round(rp), "podman": round(rs),
                        "ratio": round(rp / rs, 2)})
        clean()
        c.out(f"filling both stores with {args.images} small images...")
        small_refs = []
        for i in range(args.images):
            lay = os.path.join(work, f"small{i}")
            c.make_small_layout(lay, i)
            r = f"{reg.host}/bench/small{i}:1"
            subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{lay}:small", f"docker://{r}"],
                           check=True, stdout=subprocess.DEVNULL)
            shutil.rmtree(lay)
            small_refs.append(r)
        for r in small_refs:
            subprocess.run(pallet("pull", "-q", "--tls-verify=false", r), check=True, stdout=subprocess.DEVNULL,
                           env=c.ENV)
            subprocess.run(podman("pull", "-q", "--tls-verify=false", r), check=True, stdout=subprocess.DEVNULL,
                           env=c.ENV)
        results.append(c.ab(f"images on a store of {args.images} images",
                            ("pallet", pallet("images")), ("podman", podman("images")), max(10, args.runs * 2)))
        print(json.dumps(results, indent=2))
    finally:
        clean()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
