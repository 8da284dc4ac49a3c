"""Shared fixtures: real peers only (Debian's docker-registry, skopeo), never mocks.

A missing peer is a failure, not a skip: ``.ci/run`` installs them, and a suite that
silently skipped its interop tests would claim more than it checked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is not installed: run .ci/run (it installs the peers) or apt-get install it")
    return path


class Registry:
    """A real docker-registry on 127.0.0.1 with its own storage, optionally with auth."""

    def __init__(self, workdir: str, auth: dict | None = None, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        import yaml

        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True},
                        "cache": {"blobdescriptor": "inmemory"}},
            "http": {"addr": self.host, "secret": "pallet-tests"},
        }
        if auth:
            config["auth"] = auth
        self.config_path = os.path.join(workdir, "config.yml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(config, f)
        self.log = open(os.path.join(workdir, "registry.log"), "wb")
        self.proc = subprocess.Popen([need("docker-registry"), "serve", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401 with auth on: it is up
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(os.path.join(workdir, "registry.log")) as f:
                        pytest.fail(f"docker-registry did not start: {f.read()[-2000:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous registry shared by the session: use a unique repository name per test."""
    reg = Registry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    reg.stop()


@pytest.fixture
def make_registry(tmp_path_factory):
    """Factory for registries with their own config (auth modes); all stopped at teardown."""
    started = []

    def make(auth: dict | None = None) -> Registry:
        reg = Registry(str(tmp_path_factory.mktemp("registry")), auth)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


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


def pytest_collection_modifyitems(config, items):
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
