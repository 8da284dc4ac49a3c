"""Helpers for the build tests: a busybox base in the test registry, pallet and buildah
stores in temp dirs, and comparing two images' files and configs."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import http_serving, need, overlay_unavailable, release_all, unmount_under

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "builder", "build_corpus")
PALLET = os.path.join(os.path.dirname(sys.executable), "pallet")

#: what buildah's RUN leaves behind that is not image content
BUILDAH_STUBS = {"/etc/hosts", "/etc/resolv.conf", "/run", "/run/.containerenv", "/etc/hostname"}

CONFIG_KEYS = ("Env", "Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal",
               "Healthcheck")

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""


def make_busybox_layout(path: str, tag: str = "v1") -> None:
    subprocess.run([sys.executable, os.path.join(HERE, "..", "scripts", "make-demo-image.py"), path, tag], check=True)


#: containers.conf of the pallet builds here: RUN steps on the host's network (see PalletStore)
HOST_NETNS_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builder", "containers-netns-host.conf")


class PalletStore:
    def __init__(self, root: str, driver: str | None = None):
        self.root = root
        # overlay, or vfs where the host has no overlayfs (as pallet's auto choice does)
        self.driver = driver or ("vfs" if overlay_unavailable(os.path.dirname(root)) else "overlay")

    def args(self, *a) -> list[str]:
        return [PALLET, "--root", self.root, "--storage-driver", self.driver, *a]

    def env(self, extra=None) -> dict:
        """The environment of this store's pallet commands: builds keep the host's network unless
        a test asks (containers.conf's netns): a private one attaches every RUN to the default
        network through netavark (half a second each, and bridges other test runs share)."""
        e = dict(os.environ)
        e.setdefault("CONTAINERS_CONF", HOST_NETNS_CONF)
        e.update(extra or {})
        return e

    def __call__(self, *a, check=True, input=None, env=None, cwd=None):
        e = self.env(env)
        p = subprocess.run(self.args(*a), capture_output=True, text=True, input=input, env=e, cwd=cwd)
        if check and p.returncode != 0:
            raise AssertionError(f"pallet {' '.join(a)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    def store(self):
        from pallet.storage.options import resolve
        from pallet.storage.store import Store

        return Store(resolve(self.root, None, self.driver))

    def config(self, name: str) -> dict:
        s = self.store()
        rec = s.image(name)
        with s.open_blob(rec["config"]) as f:
            return json.loads(f.read())

    def manifest(self, name: str) -> tuple[dict, str]:
        s = self.store()
        rec = s.image(name)
        with s.open_blob(rec["digest"]) as f:
            return json.loads(f.read()), rec["digest"]

    def tree(self, name: str) -> dict:
        path = self("image", "mount", name).stdout.strip()
        try:
            return walk(path)
        finally:
            self("image", "umount", name)

    def layer_blobs(self, name: str) -> list[str]:
        s = self.store()
        m, _ = self.manifest(name)
        return [s.blob_path(d["digest"]) for d in m["layers"]]

    def unmount_all(self) -> None:
        unmount_under(self.root)

    def containers(self) -> list:
        return self.store().containers()

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(self.root)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A busybox OCI layout (tag v1), once per module that imports this fixture."""
    layout = str(tmp_path_factory.mktemp("bb") / "layout")
    make_busybox_layout(layout, "v1")
    return layout


@pytest.fixture
def pallet(tmp_path, base):
    """A pallet store of its own holding the busybox base as localhost/busybox:v1."""
    s = PalletStore(str(tmp_path / "store"))
    s("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
    yield s
    s.unmount_all()



class Buildah:
    def __init__(self, workdir: str):
        self.root = os.path.join(workdir, "root")
        self.runroot = os.path.join(workdir, "runroot")
        self.conf = os.path.join(workdir, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.exe = need("buildah")

    def __call__(self, *a, check=True, cwd=None):
        env = dict(os.environ, CONTAINERS_CONF=self.conf, BUILDAH_ISOLATION="oci")
        p = subprocess.run([self.exe, "--root", self.root, "--runroot", self.runroot, "--storage-driver", "vfs", *a],
                           capture_output=True, text=True, env=env, cwd=cwd)
        if check and p.returncode != 0:
            raise AssertionError(f"buildah {' '.join(a)} exited {p.returncode}:\n{p.stderr[-3000:]}")
        return p

    def config(self, name: str, fmt: str) -> dict:
        doc = json.loads(self("inspect", "--type", "image", name).stdout)
        return doc["Docker"] if fmt == "docker" else doc["OCIv1"]

    def tree(self, name: str) -> dict:
        ctr = self("from", "--pull-never", name).stdout.strip().splitlines()[-1]
        try:
            path = self("mount", ctr).stdout.strip()
            return walk(path)
        finally:
            self("rm", ctr, check=False)

    def cleanup(self) -> None:
        release_all(lambda: self("rm", "--all", check=False), lambda: unmount_under(self.root, self.runroot))


def walk(root: str) -> dict:
    """path -> (type, mode, uid, gid, link target or content digest)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(d, n)
            rel = "/" + os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                what = ("l", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    what = ("f", hashlib.sha256(f.read()).hexdigest()[:16])
            elif stat.S_ISDIR(st.st_mode):
                what = ("d", "")
            else:
                what = ("o", st.st_rdev)
            out[rel] = (what[0], oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, what[1])
    return out


def compare_trees(ours: dict, theirs: dict, base: dict) -> list[str]:
    diffs = []
    for p in sorted(set(ours) | set(theirs)):
        if p in BUILDAH_STUBS or p.startswith("/run/") and p not in ours:
            if p not in base:
                continue
        a, b = ours.get(p), theirs.get(p)
        if p in ("/etc", "/run") and a and b and a[0] == b[0]:
            continue  # buildah's stubs touch these
        if a != b:
            diffs.append(f"{p}: pallet {a} buildah {b}")
    return diffs


def compare_configs(ours: dict, theirs: dict) -> list[str]:
    a = ours.get("config") or {}
    b = theirs.get("config") or {}
    diffs = []
    for k in CONFIG_KEYS:
        va, vb = a.get(k), b.get(k)
        if k == "Labels":
            va = {x: y for x, y in (va or {}).items() if x != "io.buildah.version"} or None
            vb = {x: y for x, y in (vb or {}).items() if x != "io.buildah.version"} or None
        if k in ("ExposedPorts", "Volumes", "Labels", "Healthcheck", "Env", "Entrypoint", "Cmd"):
            va, vb = va or None, vb or None
        if k in ("WorkingDir", "User", "StopSignal"):
            va, vb = va or "", vb or ""
        if va != vb:
            diffs.append(f"{k}: pallet {va!r} buildah {vb!r}")
    return diffs


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1 (nothing leaves the machine); yields
    (directory, base URL), the server stopped after."""
    import http.server

    served = tmp_path / "http"
    served.mkdir()

    class Served(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

    with http_serving(Served) as srv:
        yield served, f"http://127.0.0.1:{srv.server_address[1]}"
