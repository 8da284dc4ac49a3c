"""The README's demo must keep working: run it (without the install step) and check its story."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_offline_and_cleans_up():
    env = dict(os.environ, PALLET_DEMO_NO_INSTALL="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    # skopeo saw the same digests pallet did, for every transport the demo wrote
    lines = [line for line in out.splitlines() if " pallet sha256:" in line]
    assert len(lines) == 3
    for line in lines:
        mine, theirs = line.split(" pallet ")[1].split("  skopeo ")
        assert mine.strip() == theirs.strip()
    assert "mounted read-only at" in out and "root:x:0:0" in out
    assert "is mounted at" in p.stderr  # the refused rmi, with where it is mounted
    assert "Deleted:" in out
    assert "hello from a pallet build" in out  # built, then run through pallet-runtime
    with open("/proc/self/mounts") as f:
        assert "pallet-demo" not in f.read()
