#!/usr/bin/env python3
"""System containers (issue 11): ``install --system`` of a 50 MB image already in the store,
against pulling the same image from a registry on 127.0.0.1 into an empty store (the issue's
bound: the install must take at most the pull's time, its checkout being hard links, not a
copy). Both on tmpfs, interleaved.

Run: .venv/bin/python bench/system.py [--runs N] [--size-mb 50]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size-mb", type=int, default=50)
    args = ap.parse_args()
    c.precompile()
    work = c.tmpfs_dir("pallet-bench-system-")
    reg = c.Registry(os.path.join(work, "reg"))
    store, pull_store = os.path.join(work, "store"), os.path.join(work, "pull-store")
    host = os.path.join(work, "host")

    def pallet(root, *a):
        return [c.PALLET, "--root", root, "--runroot", root + "-run", "--storage-driver", "overlay", *a]

    def clean_pull():
        subprocess.run(["umount", "-R", pull_store], capture_output=True)
        for d in (pull_store, pull_store + "-run"):
            shutil.rmtree(d, ignore_errors=True)

    def clean_install():
        shutil.rmtree(host, ignore_errors=True)
        os.makedirs(os.path.join(host, "etc/systemd/system"))

    try:
        layout = os.path.join(work, "layout")
        c.out(f"making a {args.size_mb} MB image in 2 layers...")
        c.make_layout(layout, [args.size_mb // 2, args.size_mb - args.size_mb // 2])
        subprocess.run(pallet(store, "copy", f"oci:{layout}:big", "local:localhost/bench/base:1"), check=True,
                       stdout=subprocess.DEVNULL, env=c.ENV)
        ctx = os.path.join(work, "ctx")
        os.makedirs(ctx)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write('FROM localhost/bench/base:1\nCMD ["/data/0/file0000.bin"]\n')
        subprocess.run(pallet(store, "build", "-q", "-t", "localhost/bench/svc:1", ctx), check=True,
                       stdout=subprocess.DEVNULL, env=c.ENV)
        ref = f"{reg.host}/bench/svc:1"
        subprocess.run(pallet(store, "push", "--tls-verify=false", "localhost/bench/svc:1", f"docker://{ref}"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=c.ENV)
        shutil.rmtree(layout)
        install = pallet(store, "install", "--system", "--name", "svc", "--host-root", host, "localhost/bench/svc:1")
        pull = pallet(pull_store, "pull", "-q", "--tls-verify=false", ref)
        rows = [c.ab(f"install --system of a {args.size_mb} MB image in the store vs pulling it",
                     ("install", install), ("pull", pull), args.runs,
                     setup=lambda: (clean_install(), clean_pull()))]
        clean_install()
        p = subprocess.run(install, capture_output=True, text=True, env=c.ENV)
        rows.append({"install output": p.stdout.strip()})
        print(json.dumps(rows, indent=2))
    finally:
        clean_pull()
        subprocess.run(["umount", "-R", store], capture_output=True)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
