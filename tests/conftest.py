"""Shared fixtures: real peers only (Debian's docker-registry, skopeo), never mocks.

A missing peer is a failure, not a skip: ``.ci/run`` installs them, and a suite that
silently skipped its interop tests would claim more than it checked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"

# tests/ mirrors src/pallet/: one folder per package (tests/runtime, tests/layer, ...), with the
# shared helpers (images.py, buildtools.py, ...) here. Module basenames are unique across the
# folders, and every folder is on sys.path, so a module that imports another area's helpers
# (``from test_storage import StoreCLI``) works whichever folder pytest is given.
TESTS = os.path.dirname(os.path.abspath(__file__))
for _area in sorted(os.listdir(TESTS)):
    _dir = os.path.join(TESTS, _area)
    if os.path.isdir(_dir) and not _area.startswith((".", "_")) and _dir not in sys.path:
        sys.path.append(_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is not installed: run .ci/run (it installs the peers) or apt-get install it")
    return path


@contextlib.contextmanager
def http_serving(handler, host: str = "127.0.0.1"):
    """A threading HTTP server on ``host`` (port chosen by the kernel) with ``handler`` (a
    ``BaseHTTPRequestHandler`` class; its request log is silenced): yields the server, stopped,
    closed and its thread joined after, even when the test failed."""
    import http.server
    import threading

    class Quiet(handler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer((host, 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def wait_for(predicate, timeout: float = 60, what: str = "the condition", interval: float = 0.02):
    """Poll ``predicate`` until it returns a true value (returned); fail naming ``what`` after
    ``timeout`` seconds. Timeouts are generous: they cost nothing when the condition comes
    quickly, and the suite must pass on a machine with a load average of 10+."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(*roots: str) -> list[str]:
    """The mount points at or below any of ``roots`` (from /proc/self/mountinfo), deepest first."""
    prefixes = [os.path.realpath(r).rstrip("/") for r in roots]
    with open("/proc/self/mountinfo") as f:
        points = [_unescape_mountinfo(line.split()[4]) for line in f]
    found = {m for m in points for p in prefixes if m == p or m.startswith(p + "/")}
    return sorted(found, key=lambda m: (m.count("/"), m), reverse=True)


def unmount_under(*roots: str) -> None:
    """Unmount everything a (possibly failed) test left mounted at or below ``roots``, deepest
    first, lazily (a busy mount still goes). Every mount is tried before an error is raised,
    and the error names what stayed mounted."""
    for _ in range(3):  # stacked mounts: one pass per layer of stacking
        points = mounts_under(*roots)
        if not points:
            return
        for m in points:
            subprocess.run(["umount", "-l", m], capture_output=True)
    left = mounts_under(*roots)
    if left:
        raise AssertionError(f"still mounted after teardown: {left}")


def release_all(*steps) -> None:
    """Run every teardown step even when earlier ones raise; raise the errors together at the
    end, so one failing step never leaves a process, mount or server behind."""
    errors = []
    for step in steps:
        try:
            step()
        except BaseException as e:  # noqa: BLE001 - collected and raised below
            errors.append(f"{getattr(step, '__qualname__', step)}: {type(e).__name__}: {e}")
    if errors:
        raise AssertionError("teardown failed: " + "; ".join(errors))


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a TCP socket listening on ``port`` (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                        return True
        except OSError:
            continue
    return False


class Registry:
    """A real docker-registry on 127.0.0.1 with its own storage, optionally with auth."""

    def __init__(self, workdir: str, auth: dict | None = None, port: int | None = None, extra: dict | None = None):
        self.workdir = workdir
        self.extra = extra or {}  # more top-level config sections (e.g. compatibility: schema1)
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.log = None
        # a free port can be taken by another process before the registry binds it (several
        # suites run on one machine): then it exits, and another free port is tried
        for attempt in range(5):
            if self._start(auth, port or free_port()):
                return
            if port:
                break
        self._failed("it exited: see its log")

    def _start(self, auth: dict | None, port: int) -> bool:
        import yaml

        self.port = port
        self.host = f"127.0.0.1:{self.port}"
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True},
                        "cache": {"blobdescriptor": "inmemory"}},
            "http": {"addr": self.host, "secret": "pallet-tests"},
        }
        if auth:
            config["auth"] = auth
        config.update(self.extra)
        self.config_path = os.path.join(self.workdir, "config.yml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(config, f)
        if self.log is not None:
            self.log.close()
        self.log = open(os.path.join(self.workdir, "registry.log"), "wb")
        self.proc = subprocess.Popen([need("docker-registry"), "serve", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            # our process listens on the port (not another one that took it), and answers
            if self.proc.poll() is not None:
                return True  # exited: the caller tries another port
            if not _listens(self.proc.pid, self.port):
                return False
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=5)
                return True
            except urllib.error.HTTPError:
                return True  # 401 with auth on: it is up
            except OSError:
                return False

        try:
            wait_for(up, 60, f"docker-registry to answer on {self.host}")
        except BaseException as e:
            self.stop()
            self._failed(str(e))
        if self.proc.poll() is not None:
            self.proc.wait()
            return False
        return True

    def _failed(self, why: str) -> None:
        self.stop()
        with open(os.path.join(self.workdir, "registry.log")) as f:
            pytest.fail(f"docker-registry did not start ({why}): {f.read()[-2000:]}")

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.log is not None:
                self.log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous registry shared by the session: use a unique repository name per test."""
    reg = Registry(str(tmp_path_factory.mktemp("registry")))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def make_registry(tmp_path_factory):
    """Factory for registries with their own config (auth modes); all stopped at teardown."""
    started = []

    def make(auth: dict | None = None, extra: dict | None = None) -> Registry:
        reg = Registry(str(tmp_path_factory.mktemp("registry")), auth, extra=extra)
        started.append(reg)
        return reg

    try:
        yield make
    finally:
        release_all(*(reg.stop for reg in started))


def htpasswd_registry(make_registry, tmp_path, repo: str) -> Registry:
    """A registry (from ``make_registry``) with Basic auth for bob:builder, holding the
    standard test image as ``REPO:v1`` (pushed with skopeo)."""
    import images

    htpasswd = tmp_path / "htpasswd"
    out = subprocess.run(["htpasswd", "-Bbn", "bob", "builder"], check=True, capture_output=True, text=True)
    htpasswd.write_text(out.stdout)
    reg = make_registry({"htpasswd": {"realm": "pallet-test", "path": str(htpasswd)}})
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bob:builder",
                    f"oci:{layout}:v1", f"docker://{reg.host}/{repo}:v1"], check=True, capture_output=True)
    return reg


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No registries.conf or credentials from the machine leak into a test: an empty
    registries.conf (returned, for tests that write one), a private HOME and XDG_RUNTIME_DIR.
    Modules use it with ``pytestmark = pytest.mark.usefixtures("isolated")``."""
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return conf


@pytest.fixture
def root_required():
    """Tests of owners, devices, xattrs and mounts need root: without it they fail, loudly."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (the suite runs as root: see .ci/run)")


@pytest.fixture
def src_layout(tmp_path):
    """An OCI layout with the standard test image, tagged "latest"."""
    import images

    root = str(tmp_path / "src")
    images.make_layout(root, "latest")
    return root


@pytest.fixture
def multi_layout(tmp_path):
    """An OCI layout with a three-platform index, tagged "m"."""
    import images

    root = str(tmp_path / "multi")
    images.make_multiarch_layout(root, "m")
    return root


@pytest.fixture(scope="session")
def skopeo():
    return need("skopeo")


def run_pallet(*args, check=True, input=None, env=None, base_env=None):
    """Run the installed ``pallet`` command (the console script of this venv); ``env`` is
    added to ``base_env`` (default: this process's environment)."""
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    if not os.path.exists(exe):
        exe = shutil.which("pallet")
    if not exe:
        pytest.fail("the pallet console script is not on PATH: pip install -e . in the venv")
    e = dict(os.environ if base_env is None else base_env)
    e.update(env or {})
    p = subprocess.run([exe, *args], capture_output=True, text=True, input=input, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"pallet {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


# -- a real Debian image (test_real_debian.py, test_scan.py) ------------------------------

@pytest.fixture(scope="session")
def debian_layout(tmp_path_factory):
    """A real Debian bookworm minbase root filesystem (mmdebstrap) as a one-layer OCI layout
    tagged ``bookworm``; made once per session (it takes a while)."""
    import gzip
    import hashlib

    import images

    work = tmp_path_factory.mktemp("debian")
    tar = str(work / "rootfs.tar")
    sources = "/etc/apt/sources.list.d/debian.sources"
    if not os.path.exists(sources):
        sources = "/etc/apt/sources.list"
    p = subprocess.run([need("mmdebstrap"), "--variant=minbase", "--mode=root", "--format=tar", "--quiet",
                        "bookworm", tar, sources], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"mmdebstrap failed (it needs the Debian mirror, as apt does): {p.stderr[-2000:]}"
    layout = str(work / "layout")
    h = hashlib.sha256()
    gz_path = str(work / "rootfs.tar.gz")
    with open(tar, "rb") as f, open(gz_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                                                         mtime=0) as g:
        while b := f.read(1 << 20):
            h.update(b)
            g.write(b)
    os.unlink(tar)
    with open(gz_path, "rb") as f:
        images.one_layer_layout(layout, "bookworm", f.read(), "sha256:" + h.hexdigest(), gzipped=True,
                                config={"Cmd": ["/bin/bash"]})
    os.unlink(gz_path)
    return layout



# -- the runtime tests' fixtures -----------------------------------------------------------

@pytest.fixture
def rt(tmp_path):
    """pallet-runtime with a state root in the test's tmp; what a test leaves is deleted."""
    from test_runtime_helpers import PALLET_RUNTIME, Runtime

    r = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    yield r
    r.cleanup()


@pytest.fixture
def bundle(tmp_path):
    """A busybox bundle (config.json from ``pallet-runtime spec``)."""
    from test_runtime_helpers import make_bundle

    return make_bundle(str(tmp_path / "bundle"))


@pytest.fixture
def open_dir():
    """A directory the mapped root (host uid 100000) can reach: pytest's own tmp is 0700."""
    import tempfile

    d = tempfile.mkdtemp(prefix="pallet-userns-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- test groups ---------------------------------------------------------------------------
# `pytest -m unit` runs the fast tests that need neither root, a peer tool nor a registry;
# `-m interop`, `-m root` and `-m slow` select the others (README: "Running the tests").
# A module opts in with ``pytestmark = pytest.mark.unit``; the older modules are listed here.
# interop and root are derived from the fixtures a test uses, so they cannot go stale.

_UNIT_MODULES = {"test_oci_model", "test_docker_unit"}
_UNIT_TESTS = {  # pure tests in modules that also hold interop ones
    "test_cli_startup": {"test_json_writes_and_reads_what_json_does", "test_json_errors_are_jsons",
                         "test_reference_grammar_is_distributions", "test_layout_ref_names_are_the_image_specs",
                         "test_registry_table_sniffing_matches_its_pattern", "test_parser_option_forms",
                         "test_parser_errors_say_what_argparse_says", "test_parser_subcommands_and_help"},
}
_ROOT_FIXTURES = {"root_required", "rt", "bundle", "open_dir"}
_INTEROP_FIXTURES = {"registry", "make_registry", "skopeo"}


# -- processes a test leaves -----------------------------------------------------------------

def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, from /proc/*/stat."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] != "Z":
                parent[int(name)] = int(fields[1])
    return parent


def _kids(pid: int) -> list[int] | None:
    """The live children of ``pid`` from /proc/PID/task/*/children; None without that file."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None  # a kernel without CONFIG_PROC_CHILDREN
        except OSError:
            continue
    live = []
    for k in kids:
        try:
            with open(f"/proc/{k}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] != "Z":
            live.append(k)
    return live


def _children_of(pids: set[int]) -> dict[int, int]:
    """pid -> parent pid of every live process whose parent is in ``pids``, transitively."""
    out: dict[int, int] = {}
    frontier = set(pids)
    parent = None
    while frontier:
        new = {}
        for pp in frontier:
            kids = _kids(pp) if parent is None else None
            if kids is None:
                if parent is None:
                    parent = _parents()
                kids = [p for p, q in parent.items() if q == pp]
            new.update({k: pp for k in kids if k not in out})
        out.update(new)
        frontier = set(new)
    return out


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Processes a test started and left running (a failed assert before its wait, a timed-out
    communicate) are killed with their descendants when the test ends, so a failure never
    leaves a busy process behind. Servers of wider-scoped fixtures exist before this runs
    and are kept; the test's own fixtures have released theirs before this teardown."""
    me = os.getpid()
    before = set(_children_of({me}))
    yield
    left = {p: pp for p, pp in _children_of({me}).items() if p not in before and pp not in before}
    if not left:
        return
    import signal

    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in (p for p, pp in left.items() if pp == me):
        def reaped(pid=pid) -> bool:
            try:
                return os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                return True  # reaped by its Popen
        wait_for(reaped, 60, f"process {pid}, left running by the test, to end after SIGKILL")


# -- host features ---------------------------------------------------------------------------
# A test that needs a host feature probes for it; where the feature is missing, pallet refusing
# with its clear message is the right behaviour and the test checks that instead (a pass,
# not a skip). Overlay: the kernel's overlayfs with an upper dir on pytest's tmp filesystem.

# debian_layout: its one test uses an overlay store; the build tests' PalletStore picks vfs
# where overlay does not work, as pallet's auto driver does
_OVERLAY_FIXTURES = {"overlay_store", "overlay_mount", "debian_layout"}
_overlay_probe: list = []


def overlay_unavailable(base: str) -> str | None:
    """None when an overlay mount with an upper dir works under ``base``; else why not."""
    if _overlay_probe:
        return _overlay_probe[0]
    import tempfile

    d = tempfile.mkdtemp(prefix="overlay-probe-", dir=base)
    why = None
    try:
        for n in ("l1", "l2", "up", "work", "merged"):
            os.mkdir(os.path.join(d, n))
        try:
            p = subprocess.run([shutil.which("mount") or "/usr/bin/mount", "-t", "overlay", "overlay", "-o",
                                f"lowerdir={d}/l1:{d}/l2,upperdir={d}/up,workdir={d}/work", f"{d}/merged"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                why = p.stderr.strip() or f"mount exited {p.returncode}"
        except OSError as e:
            why = f"mount: {e}"
    finally:
        release_all(lambda: unmount_under(d), lambda: shutil.rmtree(d, ignore_errors=True))
    _overlay_probe.append(why)
    return why


def _needs_overlay(item) -> bool:
    if set(getattr(item, "fixturenames", ())) & _OVERLAY_FIXTURES:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(params.get(k) == "overlay" for k in ("store", "driver"))


def assert_overlay_refused(root: str) -> None:
    """Without overlayfs, ``--storage-driver overlay`` is refused in one line saying why."""
    p = run_pallet("--root", root, "--storage-driver", "overlay", "images", check=False)
    err = p.stderr.strip()
    assert p.returncode != 0 and len(err.splitlines()) == 1, err
    assert "the overlay driver does not work on" in err and "--storage-driver vfs" in err, err


def _overlay_refusal_instead(item):
    def run(**kwargs):
        import tempfile

        with tempfile.TemporaryDirectory(dir=str(item.config._tmp_path_factory.getbasetemp())) as d:
            assert_overlay_refused(os.path.join(d, "store"))
    return run


def _leftover_run_roots(base: str, depth: int = 4) -> list[str]:
    """The run roots (``/run/pallet-stores/HASH``) that stores made under ``base`` left behind:
    a store opened with only ``--root`` derives its run root from the root's path."""
    from pallet.storage.options import derived_runroot

    found = []
    base = os.path.realpath(base)
    for top, dirs, _ in os.walk(base):
        if top[len(base):].count("/") >= depth:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]
        for d in dirs:
            rr = derived_runroot(os.path.join(top, d))
            if os.path.isdir(rr):
                found.append(rr)
    return found


def remove_run_roots(run_roots) -> list[str]:
    """Remove run roots nothing lives in any more: their namespace directory is unmounted
    when no namespace is mounted under it. One still holding a namespace or a mount is kept
    (a leak for its test to answer for) and returned."""
    kept = []
    for rr in run_roots:
        inner = mounts_under(rr)
        if any(m != os.path.join(rr, "netns") for m in inner) or any(
                os.scandir(os.path.join(rr, "netns")) if os.path.isdir(os.path.join(rr, "netns")) else ()):
            kept.append(rr)
            continue
        for m in inner:
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(rr, ignore_errors=True)
    return kept


# -- what the suite leaves on the host ---------------------------------------------------------
# The suite's stores live under pytest's base temp, or in directories its tests make with
# tempfile.mkdtemp (short run roots, for podman and conmon's socket paths); their run roots are
# those directories or derived from the stores' roots (/run/pallet-stores/HASH: outside the base
# temp). At the session's end, what any of them still holds -- a network namespace or another
# mount, a container's cgroups (a runtime state directory whose cgroups.json names cgroups that
# exist) -- was left by the suite: it is reported and the session fails, then it is removed, so
# the host does not collect them. Only those paths are looked at: other suites run on this host.

_MADE_TEMP: list[str] = []  # the directories tempfile.mkdtemp made in this session


def _record_mkdtemp() -> None:
    import tempfile

    if getattr(tempfile.mkdtemp, "_pallet_suite", False):
        return
    made = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        d = made(*args, **kwargs)
        _MADE_TEMP.append(os.path.abspath(d))
        return d

    mkdtemp._pallet_suite = True
    tempfile.mkdtemp = mkdtemp


def pytest_configure(config):
    _record_mkdtemp()


# a store's and an image's own trees, where no runtime state lives: not walked
_NO_STATE_HERE = {"overlay", "vfs", "blobs", "diff", "merged", "work", "staging", "layout", "rootfs", "mounts",
                  "overlay-layers", "volumes", "build-cache", "ctx", "regdata", "storage"}


def _leaked_cgroups(top_dir: str, depth: int = 5) -> dict[str, list[str]]:
    """State directory -> the cgroups named after its container that its ``cgroups.json``
    (pallet-runtime's) names and that exist, for every state directory at most ``depth`` levels
    below ``top_dir``."""
    import json

    found = {}
    top_dir = os.path.realpath(top_dir)
    for top, dirs, files in os.walk(top_dir):
        if top[len(top_dir):].count("/") >= depth:
            dirs[:] = []
        dirs[:] = [d for d in dirs if d not in _NO_STATE_HERE and not os.path.ismount(os.path.join(top, d))]
        if "cgroups.json" in files:
            try:
                with open(os.path.join(top, "cgroups.json")) as f:
                    doc = json.load(f)
                paths = list((doc.get("paths") or {}).values()) + [doc.get("path") or ""]
            except (OSError, ValueError, AttributeError):
                continue
            # a container's own cgroups are named after it (hostile tests plant other paths)
            cid = os.path.basename(top)
            live = [p for p in paths if isinstance(p, str) and p.startswith("/sys/fs/cgroup/")
                    and os.path.basename(p.rstrip("/")) == cid and "/.." not in p and os.path.isdir(p)]
            if live:
                found[top] = live
    return found


def _remove_container_state(state_dir: str) -> None:
    """``pallet-runtime delete --force`` on a state directory a test left (its processes killed,
    its cgroups removed)."""
    runtime = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
    subprocess.run([runtime, "--root", os.path.dirname(state_dir), "delete", "--force",
                    os.path.basename(state_dir)], capture_output=True, timeout=60)


def suite_leaks(base: str | None, made: list[str], clean: bool = True) -> list[str]:
    """What the suite's stores left: namespaces and mounts under ``base`` and the ``made``
    directories and in the stores' derived run roots, containers' cgroups; each as a line.
    With ``clean``, removed after they are listed."""
    dirs = ([base] if base and os.path.isdir(base) else []) + [d for d in made if os.path.isdir(d)]
    run_roots = []
    for d in dirs:
        run_roots += _leftover_run_roots(d)
    leaks = []
    for top in dirs + run_roots:
        for state_dir, cgroups in _leaked_cgroups(top).items():
            leaks.append(f"container {state_dir}: cgroups {', '.join(cgroups)}")
            if clean:
                _remove_container_state(state_dir)
    for rr in run_roots:
        inner = [m for m in mounts_under(rr) if m != os.path.join(rr, "netns")]
        leaks += [f"mount {m} (run root of a store under {base or 'a temporary directory'})" for m in inner]
    own = [m for m in mounts_under(*dirs) if not (m.endswith("/netns") and os.path.isdir(m) and not os.listdir(m))]
    leaks += [f"mount {m}" for m in own]
    if clean:
        for d in run_roots + dirs:
            try:
                unmount_under(d)
            except AssertionError as e:  # still mounted: listed, and nothing removed under it
                leaks.append(str(e))
        for d in run_roots + [d for d in made if os.path.isdir(d)]:
            if not mounts_under(d):  # (never a tree through a mount that stayed)
                shutil.rmtree(d, ignore_errors=True)
    return leaks


_LEAKS: list[str] = []


def pytest_sessionfinish(session, exitstatus):
    # the tests' stores live under pytest's base temp; their derived run roots do not
    if os.geteuid() != 0:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    try:
        base = str(factory.getbasetemp()) if factory else None
    except (OSError, ValueError):
        base = None
    _LEAKS[:] = suite_leaks(base, _MADE_TEMP)
    if _LEAKS and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _LEAKS:
        terminalreporter.section("left on the host by the suite (now removed): a test's cleanup missed them",
                                 sep="!", red=True)
        for line in _LEAKS:
            terminalreporter.write_line(line)
    if _overlay_probe and _overlay_probe[0]:
        terminalreporter.write_line("overlayfs does not work on this host's tmp filesystem: the tests that need it "
                                    "checked that pallet refuses the overlay driver clearly ("
                                    + _overlay_probe[0].splitlines()[0] + ")")


def pytest_collection_modifyitems(config, items):
    # unprivileged (the unit group's run) nothing can be mounted: those tests fail on root instead
    if os.geteuid() == 0 and any(_needs_overlay(i) for i in items):
        why = overlay_unavailable(str(config._tmp_path_factory.getbasetemp()))
        if why:
            for item in items:
                if _needs_overlay(item):
                    item.obj = _overlay_refusal_instead(item)
                    item.user_properties.append(("overlay-unavailable", why))
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if getattr(item, "module", None) else ""
        name = getattr(item, "originalname", item.name)
        fixtures = set(getattr(item, "fixturenames", ()))
        listed = module in _UNIT_MODULES or name in _UNIT_TESTS.get(module, ())
        if listed and not fixtures & (_ROOT_FIXTURES | _INTEROP_FIXTURES):
            item.add_marker(pytest.mark.unit)
        if fixtures & _ROOT_FIXTURES:
            item.add_marker(pytest.mark.root)
        if fixtures & _INTEROP_FIXTURES:
            item.add_marker(pytest.mark.interop)
        if item.get_closest_marker("unit") and fixtures & (_ROOT_FIXTURES | _INTEROP_FIXTURES):
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses {sorted(fixtures & (_ROOT_FIXTURES | _INTEROP_FIXTURES))}")
