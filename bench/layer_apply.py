"""Apply a ~200 MB tar layer with pallet vs GNU ``tar -x``, on tmpfs, interleaved A B A B.

    sudo .venv/bin/python bench/layer_apply.py [--rounds 5] [--mb 200] [--gzip]

The layer mixes big random files, many small text files, directories, symlinks and
hardlinks (a realistic spread of entry sizes: per-entry overhead and raw copy speed both
count). Both sides read the tar from a file on the same tmpfs and write owners, modes and
mtimes. ``--gzip`` compares ``apply_layer(open_decompressed(...))`` (isal) with ``tar -xzf``.
Prints medians and the ratio pallet/tar (lower is better for pallet).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from pallet.layer import stream as lstream  # noqa: E402
from pallet.layer.apply import apply_layer  # noqa: E402


def make_layer(path: str, mb: int) -> tuple[int, int]:
    """Half the bytes in 4 MiB random files, half in ~6 KiB text files; returns (bytes, entries)."""
    rnd = os.urandom(4 << 20)
    entries = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, data=None, type=tarfile.REGTYPE, link=""):
            nonlocal entries
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.type, ti.linkname = 1700000000, type, link
            ti.mode = 0o755 if type == tarfile.DIRTYPE else 0o644
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
            entries += 1

        add("big", type=tarfile.DIRTYPE)
        for i in range(max(1, (mb // 2) // 4)):
            add(f"big/blob{i:03d}", rnd[i % 7:] + rnd[: i % 7])
        small_total, i = 0, 0
        while small_total < (mb << 20) // 2:
            if i % 200 == 0:
                add(f"small/d{i // 200:04d}", type=tarfile.DIRTYPE) if i else (
                    add("small", type=tarfile.DIRTYPE), add("small/d0000", type=tarfile.DIRTYPE))
            data = (f"line {i} " * 800).encode()[: 2048 + (i * 97) % 8192]
            add(f"small/d{i // 200:04d}/f{i:06d}.txt", data)
            if i % 50 == 0:
                add(f"small/d{i // 200:04d}/l{i:06d}", type=tarfile.SYMTYPE, link=f"f{i:06d}.txt")
                add(f"small/d{i // 200:04d}/h{i:06d}", type=tarfile.LNKTYPE, link=f"small/d{i // 200:04d}/f{i:06d}.txt")
            small_total += len(data)
            i += 1
    return os.path.getsize(path), entries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (owners, and a tmpfs mount)")
    base = tempfile.mkdtemp(prefix="pallet-bench-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", base], check=True)
    try:
        tar = os.path.join(base, "layer.tar")
        size, entries = make_layer(tar, args.mb)
        src = tar
        if args.gzip:
            subprocess.run(["gzip", "-k", "-6", tar], check=True)
            src = tar + ".gz"
        print(f"layer: {size / 1e6:.0f} MB uncompressed, {entries} entries"
              + (f", {os.path.getsize(src) / 1e6:.0f} MB gzip" if args.gzip else ""))

        def run_pallet(dest):
            with open(src, "rb") as f:
                s = lstream.Digesting(lstream.open_decompressed(f))
                apply_layer(s, dest)

        def run_pallet_nodigest(dest):
            with open(src, "rb") as f:
                apply_layer(lstream.open_decompressed(f), dest)

        def run_tar(dest):
            subprocess.run(["tar", "-x", *(["-z"] if args.gzip else []), "-f", src,
                            "-C", dest, "--numeric-owner", "-p"], check=True)

        times = {"pallet": [], "pallet-nodigest": [], "tar": []}
        order = [("pallet", run_pallet), ("tar", run_tar), ("pallet-nodigest", run_pallet_nodigest)]
        for r in range(args.rounds):
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                dest = os.path.join(base, f"out-{name}")
                os.mkdir(dest)
                t0 = time.perf_counter()
                fn(dest)
                times[name].append(time.perf_counter() - t0)
                shutil.rmtree(dest)
        med = {k: statistics.median(v) for k, v in times.items()}
        labels = {"pallet": "pallet apply + diffID", "pallet-nodigest": "pallet apply", "tar": "tar -x"}
        for k, v in times.items():
            print(f"{labels[k]:22} median {med[k] * 1000:5.0f} ms ({size / med[k] / 1e6:4.0f} MB/s)  runs "
                  + " ".join(f"{t * 1000:.0f}" for t in v))
        print(f"ratio pallet/tar: {med['pallet'] / med['tar']:.2f} with the diffID digest, "
              f"{med['pallet-nodigest'] / med['tar']:.2f} without")
    finally:
        subprocess.run(["umount", base], check=True)
        os.rmdir(base)


if __name__ == "__main__":
    main()
