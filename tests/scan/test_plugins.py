"""Scanner images (atomic's plug-in model): a tiny scanner image built by pallet from a local
busybox base, declared in a scanners.d of the test's own, run without network over targets
mounted read-only at /scanin/ID, writing to /scanout (the results directory)."""

from __future__ import annotations

import json
import os
import shutil

import tempfile

import pytest

import images
from buildtools import make_busybox_layout
from conftest import mounts_under, need, release_all, run_pallet, unmount_under
from test_scan import SMALL_LAYERS

SCAN_SH = r"""set -u
for d in /scanin/*; do
  id=${d##*/}
  (cd "$d" && find . -type f | sed 's|^\.||' | sort) > "/scanout/$id/files.txt"
  if touch "$d/written-by-scanner" 2>/dev/null; then echo writable; else echo read-only; fi > "/scanout/$id/ro.txt"
done
tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /scanout/netdevs.txt
echo scanned
"""


class Store:
    """A pallet store with a short run root of its own (conmon's socket paths are short)."""

    def __init__(self, root: str, runroot: str, scanners: str):
        self.root, self.runroot, self.scanners = root, runroot, scanners

    def __call__(self, *args, check=True, rc=None):
        env = dict(os.environ, PALLET_SCANNERS_DIR=self.scanners)
        p = run_pallet("--root", self.root, "--runroot", self.runroot, *args, check=False, env=env)
        if rc is not None:
            assert p.returncode == rc, p.stdout + p.stderr
        elif check:
            assert p.returncode == 0, p.stdout + p.stderr
        return p


@pytest.fixture
def store(tmp_path):
    need("conmon")
    runroot = tempfile.mkdtemp(prefix="psc-")
    scanners = tmp_path / "scanners.d"
    scanners.mkdir()
    s = Store(str(tmp_path / "root"), runroot, str(scanners))
    try:
        yield s
    finally:
        release_all(lambda: s("rm", "-a", "-f", "-t", "0", check=False),
                    lambda: unmount_under(s.root), lambda: unmount_under(runroot),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))


def test_scanner_image_reads_targets_read_only_without_network(tmp_path, store):
    base = str(tmp_path / "busybox")
    make_busybox_layout(base, "v1")
    store("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "scan.sh").write_text(SCAN_SH)
    (ctx / "Containerfile").write_text('FROM localhost/busybox:v1\nCOPY scan.sh /scan.sh\nCMD ["/bin/sh", "/scan.sh"]\n')
    store("build", "-q", "-t", "localhost/lister:1", "-f", str(ctx / "Containerfile"), str(ctx))
    (tmp_path / "scanners.d" / "lister.yaml").write_text(
        "name: lister\nimage: localhost/lister:1\ndefault_scan: files\nscans:\n"
        "  - name: files\n    description: list every file\n"
        "  - name: fail\n    command: [/bin/sh, -c, 'echo broken >&2; exit 4']\n")
    (tmp_path / "scanners.d" / "broken.yaml").write_text("name: [not a name\n")

    layout = str(tmp_path / "small")
    images.make_layout(layout, layers=SMALL_LAYERS)
    image_id = store("pull", "-q", f"oci:{layout}:latest").stdout.strip()
    mnt = store("image", "mount", image_id).stdout.strip()
    truth = sorted("/" + os.path.relpath(os.path.join(d, n), mnt) for d, _, ns in os.walk(mnt) for n in ns)
    store("image", "umount", image_id)

    p = store("scan", "--list")
    assert any(line.split()[:2] == ["lister", "localhost/lister:1"] for line in p.stdout.splitlines())
    assert "broken.yaml" in p.stderr  # a declaration that does not parse: a warning naming it

    rd = str(tmp_path / "results")
    p = store("scan", "--scanner", "lister", "--format", "json", "--results-dir", rd, image_id)
    (r,) = json.loads(p.stdout)["results"]
    assert r["scanner"] == "lister" and r["scan_type"] == "files" and r["image"]["id"] == image_id
    (run,) = os.listdir(os.path.join(rd, "lister"))
    out = os.path.join(rd, "lister", run)
    assert r["results_dir"] == os.path.join(out, image_id) and sorted(r["files"]) == ["files.txt", "ro.txt"]
    with open(os.path.join(out, image_id, "files.txt")) as f:
        assert f.read().split() == truth
    with open(os.path.join(out, image_id, "ro.txt")) as f:
        assert f.read().strip() == "read-only"
    with open(os.path.join(out, "netdevs.txt")) as f:
        assert f.read().split() == ["lo"]  # no network but loopback
    with open(os.path.join(out, "scanner.log")) as f:
        assert "scanned" in f.read()

    # a transport reference and a store image in one run: two directories under /scanout
    p = store("scan", "--scanner", "lister", "--format", "json", "--results-dir", rd, image_id, f"oci:{layout}:latest")
    assert [len(x["files"]) for x in json.loads(p.stdout)["results"]] == [2, 2]

    # the scanner failing, a scan type it does not have, a scanner nobody declared: one line, 125
    p = store("scan", "--scanner", "lister", "--scan-type", "fail", image_id, rc=125)
    assert "exited 4" in p.stderr and "scanner.log" in p.stderr and p.stderr.count("\n") == 1
    p = store("scan", "--scanner", "lister", "--scan-type", "nope", image_id, rc=125)
    assert "--scan-type nope" in p.stderr
    p = store("scan", "--scanner", "nobody", image_id, rc=125)
    assert "no such scanner" in p.stderr and p.stderr.count("\n") == 1

    # nothing left: no container, no mount, the image unchanged
    assert store("ps", "-a", "-q").stdout.strip() == ""
    # (the run root's netns directory stays a mount point, as podman's; the fixture drops it)
    assert mounts_under(store.root) == [] and mounts_under(store.runroot + "/") in ([], [store.runroot + "/netns"])
    mnt = store("image", "mount", image_id).stdout.strip()
    assert not os.path.exists(os.path.join(mnt, "written-by-scanner"))
    store("image", "umount", image_id)

