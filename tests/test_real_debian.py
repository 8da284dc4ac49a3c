"""A real Debian root filesystem (mmdebstrap, minbase: ~90 packages, a dpkg database, device
nodes, hardlinks, setuid files) through the whole chain: registry -> store -> read-only mount,
compared with umoci's unpack of the same image, and run by pallet-runtime and runc."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import need, release_all
from test_storage import StoreCLI, push_layout


def _listing(root: str) -> list[str]:
    out = subprocess.run(["find", ".", "-printf", "%p %y %m %U %G %l\\n"], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    return sorted(out.splitlines())


def test_debian_through_registry_store_mount_and_runtimes(debian_layout, registry, tmp_path):
    ref = push_layout(registry, debian_layout, "bookworm", "real/debian")
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("pull", "-q", "--tls-verify=false", ref)
        mnt = store("image", "mount", ref).stdout.strip()
        bundle = str(tmp_path / "bundle")
        subprocess.run([need("umoci"), "unpack", "--image", f"{debian_layout}:bookworm", bundle], check=True,
                       capture_output=True)
        ours, umoci = _listing(mnt), _listing(os.path.join(bundle, "rootfs"))
        # the root directory: containers/storage (podman's) makes an overlay layer's root 0555
        # whatever the layer's own ./ entry says, and pallet does as it does; umoci keeps 0755
        assert ours[0] == ". d 555 0 0 " and umoci[0].startswith(". d ")
        assert ours[1:] == umoci[1:]
        with open(os.path.join(mnt, "var/lib/dpkg/status")) as f:
            installed = f.read().count("Status: install ok installed")
        assert installed > 50
        store("image", "umount", ref)
        store("system", "check")
        with open(os.path.join(bundle, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/sh", "-c", "dpkg -l | grep -c ^ii; cat /etc/debian_version"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        import sys

        runtime = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
        ours = subprocess.run([runtime, "--root", str(tmp_path / "rt"), "run", "--bundle", bundle, "deb"],
                              capture_output=True, text=True, timeout=600)
        theirs = subprocess.run([need("runc"), "--root", str(tmp_path / "runc"), "run", "--bundle", bundle, "deb"],
                                capture_output=True, text=True, timeout=600)
        assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
        assert ours.stdout == theirs.stdout and ours.stdout.split()[0] == str(installed)
    finally:
        import sys

        # a container a timed-out run left is killed and deleted before the store goes
        release_all(
            lambda: subprocess.run([os.path.join(os.path.dirname(sys.executable), "pallet-runtime"), "--root",
                                    str(tmp_path / "rt"), "delete", "--force", "deb"], capture_output=True, timeout=120),
            lambda: subprocess.run([need("runc"), "--root", str(tmp_path / "runc"), "delete", "--force", "deb"],
                                   capture_output=True, timeout=120),
            store.cleanup)
