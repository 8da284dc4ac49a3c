#!/usr/bin/env python3
"""``ps -a`` with N created containers (100 by default): pallet vs podman 4.3 (issue 10's
target: at most podman's time), each on its own store in a temp dir, the demo busybox image
(scripts/make-demo-image.py). Timed INTERLEAVED (pallet, podman, pallet, ...), medians and the
ratio; also ``ps -a --format json``, and pallet's time at a tenth of the containers, to show
how it scales (one store read, then one small state file per container: no subprocess, no
lock per container).

Run (as root): .venv/bin/python bench/ps.py [--runs 21] [--containers 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402
from build import CONTAINERS_CONF, _umount_under  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--containers", type=int, default=100)
    args = ap.parse_args()
    c.precompile()
    work = tempfile.mkdtemp(prefix="pallet-bench-ps-")
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write(CONTAINERS_CONF)
    env = dict(c.ENV, CONTAINERS_CONF=conf)
    layout = os.path.join(work, "layout")
    subprocess.run([sys.executable, os.path.join(c.REPO, "scripts", "make-demo-image.py"), layout, "v1"], check=True)
    pallet = [c.PALLET, "--root", os.path.join(work, "p"), "--runroot", os.path.join(work, "pr")]
    small = [c.PALLET, "--root", os.path.join(work, "s"), "--runroot", os.path.join(work, "sr")]
    podman = ["podman", "--root", os.path.join(work, "q"), "--runroot", os.path.join(work, "qr"),
              "--storage-driver", "overlay"]
    try:
        for tool, n in ((pallet, args.containers), (podman, args.containers), (small, max(1, args.containers // 10))):
            iid = subprocess.run(tool + ["pull", "-q", f"oci:{layout}:v1"], check=True, capture_output=True, env=env,
                                 text=True).stdout.split()[-1]
            for i in range(n):
                r = subprocess.run(tool + ["create", "--network", "none", "--name", f"ps-bench-{i}", iid, "true"],
                                   capture_output=True, env=env, text=True)
                if r.returncode:
                    sys.exit(f"{tool[0]} create: {r.stderr.strip()}")
        c.out(f"ps -a with {args.containers} created containers, interleaved, {args.runs} runs each, medians:")
        for extra in ([], ["--format", "json"]):
            med = c.interleaved_medians({"pallet": pallet + ["ps", "-a"] + extra, "podman": podman + ["ps", "-a"] + extra,
                                         f"pallet, {max(1, args.containers // 10)} containers": small + ["ps", "-a"] + extra},
                                        args.runs, 2, env)
            c.out(f"  ps -a {' '.join(extra)}".rstrip())
            for name, m in med.items():
                c.out(f"    {name:22s} {m * 1000:7.1f} ms")
            c.out(f"    pallet/podman {med['pallet'] / med['podman']:.2f} (target <= 1.00)")
    finally:
        for tool in (pallet, small):
            subprocess.run(tool + ["rm", "-a", "-f", "-t", "0"], capture_output=True, env=env)
        subprocess.run(podman + ["rm", "-a", "-f", "-t", "0"], capture_output=True, env=env)
        _umount_under(work + "/")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
