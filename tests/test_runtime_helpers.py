"""Helpers for the pallet-runtime tests (no tests here): a busybox bundle, the two runtimes, cleanup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

VENV_BIN = os.path.dirname(sys.executable)
PALLET_RUNTIME = os.path.join(VENV_BIN, "pallet-runtime")
BUSYBOX = "/bin/busybox"


def need(tool: str) -> str:
    path = shutil.which(tool) or (tool if os.path.exists(tool) else None)
    if not path:
        pytest.fail(f"{tool} is not installed: apt-get install it (runc, busybox-static)")
    return path


def make_bundle(path: str, args: list[str] | None = None) -> str:
    """A busybox bundle at ``path`` with pallet-runtime's default config (no terminal)."""
    bb = need(BUSYBOX)
    rootfs = os.path.join(path, "rootfs")
    for d in ("bin", "etc", "tmp", "mnt"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n")
    subprocess.run([PALLET_RUNTIME, "spec", "--bundle", path], check=True)
    cfg = load_config(path)
    cfg["process"]["terminal"] = False
    if args:
        cfg["process"]["args"] = args
    save_config(path, cfg)
    return path


def load_config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def save_config(bundle: str, cfg: dict) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


class Runtime:
    """One runtime binary with its own state directory."""

    def __init__(self, binary: str, root: str):
        self.binary = binary
        self.root = root

    def __call__(self, *args, check=False, timeout=30, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        return subprocess.run([self.binary, "--root", self.root, *args], text=True, check=check,
                              timeout=timeout, **kw)

    def create(self, cid: str, bundle: str, *extra) -> subprocess.CompletedProcess:
        """``create`` with its stdio on files: the container inherits them and lives on."""
        out = os.path.join(bundle, f"{cid}.out")
        err = os.path.join(bundle, f"{cid}.err")
        with open(out, "w") as f, open(err, "w+") as e:
            r = subprocess.run([self.binary, "--root", self.root, "create", "--bundle", bundle, *extra, cid],
                               stdin=subprocess.DEVNULL, stdout=f, stderr=e, text=True, timeout=30)
            e.seek(0)
            r.stderr = e.read()
        return r

    def state(self, cid: str) -> dict:
        r = self("state", cid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def cleanup(self) -> None:
        """Remove every container, whatever happens to one of them (a teardown that raised
        half-way used to leave busy containers running): each delete is tried, a hung one
        is killed, then what is left of the state root goes."""
        if not os.path.isdir(self.root):
            return
        errors = []
        for cid in os.listdir(self.root):
            try:
                r = self("delete", "--force", cid, timeout=30)
                if r.returncode != 0 and os.path.isdir(os.path.join(self.root, cid)):
                    errors.append(f"{cid}: {r.stderr.strip()}")
            except Exception as e:  # noqa: BLE001  (a timeout: the next ones still go)
                errors.append(f"{cid}: {e}")
        shutil.rmtree(self.root, ignore_errors=True)
        return errors


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]
