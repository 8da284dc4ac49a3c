#!/usr/bin/env python3
"""Dockerfile builds, side by side with ``buildah bud`` in the same run (issue 5's figures).

- a build with a RUN, a 50 MB COPY and an ENV on a fresh store (base image pulled from a
  local registry), pallet vs ``buildah bud``;
- the same build again with the cache: pallet (cache on by default) vs ``buildah bud --layers``.

Both stores on tmpfs, overlay driver, runs interleaved (A B A B ...), medians and ratios.
Run: .venv/bin/python bench/build.py [--runs N] [--size-mb 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def _umount_under(prefix: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def _fresh(*dirs: str) -> None:
    for d in dirs:
        _umount_under(d)
        shutil.rmtree(d, ignore_errors=True)


def _run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--runtime", default=None, help="pallet's --runtime (default: pallet's own choice)")
    args = ap.parse_args()
    c.precompile()
    work = c.tmpfs_dir("pallet-bench-build-")
    reg = c.Registry(os.path.join(work, "registry"))
    try:
        layout = os.path.join(work, "busybox")
        subprocess.run([sys.executable, os.path.join(c.REPO, "scripts", "make-demo-image.py"), layout, "v1"],
                       check=True)
        base = f"{reg.host}/bench/busybox:v1"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                        f"docker://{base}"], check=True)
        ctx = os.path.join(work, "ctx")
        os.makedirs(ctx)
        with open(os.path.join(ctx, "big.bin"), "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {base}\nRUN echo built > /built.txt\nCOPY big.bin /data/big.bin\nENV BENCH=1\n")
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        benv = dict(c.ENV, CONTAINERS_CONF=conf, BUILDAH_ISOLATION="oci")
        proot, broot, brun = (os.path.join(work, n) for n in ("pallet", "broot", "brun"))
        pallet = [c.PALLET, "--root", proot, "--storage-driver", "overlay", "build", "--tls-verify=false",
                  "-t", "bench"] + (["--runtime", args.runtime] if args.runtime else []) + [ctx]
        buildah = ["buildah", "--root", broot, "--runroot", brun, "--storage-driver", "overlay", "bud",
                   "--tls-verify=false", "-t", "bench", ctx]
        buildah_layers = buildah[:8] + ["--layers"] + buildah[8:]
        fresh = {"pallet": [], "buildah": []}
        cached = {"pallet": [], "buildah": []}
        for _ in range(args.runs):
            _fresh(proot)
            fresh["pallet"].append(_run(pallet, c.ENV))
            cached["pallet"].append(_run(pallet, c.ENV))
            _fresh(broot, brun)
            fresh["buildah"].append(_run(buildah, benv))
            _run(buildah_layers, benv)  # fill buildah's layer cache, then time the cached build
            cached["buildah"].append(_run(buildah_layers, benv))
        _fresh(proot, broot, brun)
        for title, d in ((f"build RUN + {args.size_mb} MB COPY + ENV, fresh store (vs buildah bud)", fresh),
                         ("the same build again with the cache (vs buildah bud --layers)", cached)):
            a, b = statistics.median(d["pallet"]), statistics.median(d["buildah"])
            c.out(f"{title}: pallet {a:.3f} s, buildah {b:.3f} s, ratio pallet/buildah {a / b:.2f}")
    finally:
        reg.stop()
        _umount_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
