#!/usr/bin/env python3
"""``pallet scan``'s figures (issue 9), side by side in one run:

- ``pallet scan --scanner openscap`` of a Debian tree against ``oscap`` run by hand with its
  probes rooted in the same mounted tree (target: at most 1.1x; ``--openscap`` only: it needs
  mmdebstrap and ssg-debian);
- matching a 1,000-package inventory against 100,000 OSV records (target: under 1 s);
- inventory + SBOM + secrets of a four-layer image of ``--size-mb`` (mixed text and binary
  files), against ``tar -xzOf`` reading the same layers once (target: at most 1.5x), and the
  scan's peak RSS (target: under 200 MB).

Run as root: .venv/bin/python bench/scan.py [--records 100000] [--packages 1000] [--size-mb 250]
[--openscap] [--runs 5] [--scan-only] [--vs-src OTHER_CHECKOUT/src]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import _common as c  # noqa: E402


def bench_match(work: str, n_records: int, n_packages: int) -> float:
    from pallet.scan import vulndb
    from pallet.storage.options import StoreOptions
    from pallet.storage.store import Store

    rnd = random.Random(7)
    names = [f"pkg{i}" for i in range(n_records // 20)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(n_records):
            eco = ("PyPI", "npm", "Debian:12")[i % 3]
            z.writestr(f"R-{i}.json", json.dumps({"id": f"R-{i}", "modified": "2024-01-01T00:00:00Z", "affected": [
                {"package": {"ecosystem": eco, "name": rnd.choice(names)},
                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                             {"fixed": f"{rnd.randint(1, 9)}.{rnd.randint(0, 9)}.0"}]}]}]}))
    zpath = os.path.join(work, "osv.zip")
    with open(zpath, "wb") as f:
        f.write(buf.getvalue())
    store = Store(StoreOptions(os.path.join(work, "root"), os.path.join(work, "run"), "vfs"))
    t = time.monotonic()
    vulndb.import_records(store, [zpath], lambda *a: None)
    print(f"import of {n_records} records: {time.monotonic() - t:.2f} s")
    pkgs = [{"ecosystem": ("PyPI", "npm", "Debian")[i % 3], "name": rnd.choice(names), "version": "4.5.0",
             "source": None, "path": "/x"} for i in range(n_packages)]
    for p in pkgs:
        p["source"] = p["name"]
    t = time.monotonic()
    found = vulndb.match(store, {"VERSION_ID": "12"}, pkgs, lambda *a: None)
    took = time.monotonic() - t
    print(f"match of {n_packages} packages against {n_records} records: {took:.3f} s ({len(found)} findings)")
    return took


def bench_scan(work: str, size_mb: int, runs: int = 1, vs_src: str | None = None) -> None:
    """The scan against ``tar -xzOf`` of the same layers, ``runs`` rounds interleaved (medians);
    with ``vs_src`` (another checkout's ``src``, e.g. ``git worktree add /tmp/old REV``) the same
    scan run by that code too, in the same rounds: before/after in one run."""
    import images

    rnd = random.Random(11)
    per_layer = size_mb * (1 << 20) // 4
    layers = []
    for li in range(4):
        files, total, i = {}, 0, 0
        while total < per_layer:
            n = rnd.choice((2000, 20000, 200000, 900000))
            data = (os.urandom(n) if i % 2 else (b"line of text %d with words\n" % i) * (n // 26))
            files[f"data/l{li}/f{i}"] = data
            total += len(data)
            i += 1
        layers.append(files)
    layout = os.path.join(work, "layout")
    images.make_layout(layout, layers=layers)
    blobs = os.path.join(layout, "blobs", "sha256")
    with open(os.path.join(layout, "index.json")) as f:
        man_digest = json.load(f)["manifests"][0]["digest"][7:]
    with open(os.path.join(blobs, man_digest)) as f:
        layer_files = [os.path.join(blobs, d["digest"][7:]) for d in json.load(f)["layers"]]
    root = os.path.join(work, "store")
    opts = ["--root", root, "--runroot", os.path.join(work, "runroot"), "--storage-driver", "overlay"]
    base = [c.PALLET] + opts
    subprocess.run(base + ["pull", "-q", f"oci:{layout}:latest"], check=True, capture_output=True, env=c.ENV)
    scan = ["scan", "--format", "cyclonedx", "--output", os.path.join(work, "sbom.json"), "localhost/latest:latest"]
    tools = {"scan": base + scan,
             "tar": ["sh", "-c", " && ".join(f"tar -xzOf {lf} >/dev/null" for lf in layer_files)]}
    if vs_src:
        subprocess.run([sys.executable, "-m", "compileall", "-q", vs_src], check=True, stdout=subprocess.DEVNULL)
        tools["scan-vs"] = ["env", f"PYTHONPATH={os.path.abspath(vs_src)}", sys.executable, "-c",
                            "import sys; from pallet.cli.main import main; sys.exit(main())"] + opts + scan
    med = c.interleaved_medians(tools, runs, 1)
    # through time(1): Linux keeps a process's peak RSS across execve, so a child of this
    # (large) process would report this one's peak; time's own child starts small
    rss_file = os.path.join(work, "rss")
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + base + scan, check=True,
                   stdout=subprocess.DEVNULL, env=c.ENV)
    with open(rss_file) as f:
        rss_kb = int(f.read().split()[-1])
    print(f"scan of a 4-layer {size_mb} MB image (store image): {med['scan']:.2f} s; tar -xzOf of its layers: "
          f"{med['tar']:.2f} s; ratio {med['scan'] / med['tar']:.2f} (target <= 1.5; medians of {runs}, "
          f"interleaved); the scan's peak RSS {rss_kb / 1024:.0f} MB (target < 200)")
    if vs_src:
        print(f"  the same scan by {vs_src}: {med['scan-vs']:.2f} s (ratio {med['scan-vs'] / med['tar']:.2f}); "
              f"this code / that code {med['scan'] / med['scan-vs']:.2f}")
    subprocess.run(["sh", "-c", f"grep ' {root}' /proc/self/mountinfo | cut -d' ' -f5 | xargs -r umount -l"])


def bench_openscap(work: str, runs: int) -> None:
    import images

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "scan"))
    from test_scan import add_layer

    tar = os.path.join(work, "rootfs.tar")
    subprocess.run(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", "--quiet", "bookworm", tar,
                    "/etc/apt/sources.list.d/debian.sources"], check=True, capture_output=True)
    with open(tar, "rb") as f:
        data = f.read()
    one = os.path.join(work, "one")
    import hashlib

    images.one_layer_layout(one, "bookworm", images.gz(data), "sha256:" + hashlib.sha256(data).hexdigest(), gzipped=True)
    layout = os.path.join(work, "layout")
    add_layer(one, layout, {"etc/debian_version": "11.7\n",
                            "etc/os-release": 'ID=debian\nVERSION_ID="11"\nPRETTY_NAME="Debian GNU/Linux 11"\n'}, "deb11")
    base = [c.PALLET, "--root", os.path.join(work, "store"), "--runroot", os.path.join(work, "runroot"),
            "--storage-driver", "overlay"]
    image = subprocess.run(base + ["pull", "-q", f"oci:{layout}:deb11"], check=True, capture_output=True, text=True,
                           env=c.ENV).stdout.strip()
    mnt = subprocess.run(base + ["image", "mount", image], check=True, capture_output=True, text=True,
                         env=c.ENV).stdout.strip()
    ds = "/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml"
    profile = "xccdf_org.ssgproject.content_profile_standard"
    hand_dir = os.path.join(work, "hand")
    os.makedirs(hand_dir)
    # oscap exits 2 when a rule fails: that is a result, not a failure
    hand = ["sh", "-c", f'cd {hand_dir} && OSCAP_PROBE_ROOT={mnt} oscap xccdf eval --profile {profile} '
                        f'--results-arf arf.xml --report report.html {ds} >/dev/null; [ $? -le 2 ]']
    ours = base + ["scan", "--scanner", "openscap", "--results-dir", os.path.join(work, "results"), image]
    med = c.interleaved_medians({"pallet": ours, "oscap": hand}, runs, 1)
    print(f"openscap of a Debian tree (standard profile): pallet {med['pallet']:.2f} s, oscap by hand "
          f"{med['oscap']:.2f} s; ratio {med['pallet'] / med['oscap']:.2f} (target <= 1.1)")
    subprocess.run(base + ["image", "umount", image], check=True, capture_output=True, env=c.ENV)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--packages", type=int, default=1000)
    ap.add_argument("--size-mb", type=int, default=250)
    ap.add_argument("--openscap", action="store_true", help="only the OpenSCAP comparison")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scan-only", action="store_true", help="only the inventory + SBOM + secrets scan")
    ap.add_argument("--vs-src", metavar="DIR", help="also time the scan by another checkout's src (before/after)")
    a = ap.parse_args()
    c.precompile()
    if a.openscap:
        with tempfile.TemporaryDirectory() as work:
            bench_openscap(work, a.runs)
        return
    if not a.scan_only:
        with tempfile.TemporaryDirectory() as work:
            bench_match(work, a.records, a.packages)
    with tempfile.TemporaryDirectory() as work:
        bench_scan(work, a.size_mb, a.runs, a.vs_src)


if __name__ == "__main__":
    main()
