#!/usr/bin/env python3
"""Image transport, side by side with skopeo in the same run (issue 2's figures).

- copy of a multi-layer image (>= 250 MB compressed) from the registry to oci: on tmpfs;
- inspect of a remote image (plain HTTP, and over verified TLS with --cert-dir);
- peak memory (max RSS) of the copy.

Run: .venv/bin/python bench/transport.py [--runs N] [--size-mb 260]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=260, help="about this many MB compressed, in 4 layers")
    args = ap.parse_args()
    c.precompile()
    work = c.tmpfs_dir("pallet-bench-")
    reg = c.Registry(os.path.join(work, "reg"))
    results = []
    try:
        layout = os.path.join(work, "layout")
        per = max(1, args.size_mb // 4)
        c.out(f"making a {args.size_mb} MB image in 4 layers...")
        c.make_layout(layout, [per + 10, per, per - 10, per])
        ref = f"docker://{reg.host}/bench/big:1"
        import subprocess

        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:big", ref], check=True,
                       stdout=subprocess.DEVNULL)
        dest = os.path.join(work, "dest")

        def clean():
            shutil.rmtree(dest, ignore_errors=True)

        results.append(c.ab("copy registry -> oci: (tmpfs)",
                            ("pallet", [c.PALLET, "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{dest}:x"]),
                            ("skopeo", ["skopeo", "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{dest}:x"]),
                            args.runs, clean))
        results.append(c.ab("inspect remote image",
                            ("pallet", [c.PALLET, "inspect", "--tls-verify=false", "--no-tags", ref]),
                            ("skopeo", ["skopeo", "inspect", "--tls-verify=false", "--no-tags", ref]),
                            max(10, args.runs * 4)))
        treg = c.Registry(os.path.join(work, "treg"), tls=True)
        try:
            small = os.path.join(work, "small")
            c.make_small_layout(small, 1)
            tref = f"docker://{treg.host}/bench/small:1"
            subprocess.run(["skopeo", "copy", "-q", "--dest-cert-dir", treg.cert_dir, f"oci:{small}:small", tref],
                           check=True)
            results.append(c.ab("inspect remote image over TLS (verified, --cert-dir)",
                                ("pallet", [c.PALLET, "inspect", "--cert-dir", treg.cert_dir, "--no-tags", tref]),
                                ("skopeo", ["skopeo", "inspect", "--cert-dir", treg.cert_dir, "--no-tags", tref]),
                                max(10, args.runs * 4)))
        finally:
            treg.stop()
        rp = c.max_rss_mb([c.PALLET, "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{dest}:x"], clean)
        rs = c.max_rss_mb(["skopeo", "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{dest}:x"], clean)
        print(f"peak memory of the copy: pallet {rp:.0f} MB, skopeo {rs:.0f} MB, ratio {rp / rs:.2f}")
        results.append({"work": "peak RSS of copy (MB)", "pallet": round(rp), "skopeo": round(rs),
                        "ratio": round(rp / rs, 2)})
        print(json.dumps(results, indent=2))
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
