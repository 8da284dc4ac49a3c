"""The Python API (docs/python.md): every example of the document runs, against the real test
registry, and each call is checked directly: typed results whose JSON form is the command
line's, type hints that resolve, options left alone, errors with attributes, no printing."""

from __future__ import annotations

import copy
import dataclasses
import inspect as _inspect
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import typing

import pytest

from api_fixtures import busybox  # noqa: F401  (a fixture)
from conftest import run_pallet

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "python.md")
README = os.path.join(HERE, "..", "..", "README.md")
DOC_REGISTRY = "127.0.0.1:5000"
DOC_DIR = "/tmp/pallet-docs"

pytestmark = pytest.mark.usefixtures("isolated")


def _blocks() -> list[tuple[str, str]]:
    """(section title, code) of every ```python block of docs/python.md, in order, then README's."""
    text = open(DOC).read() + "\n## README\n" + open(README).read()
    out, section = [], "top"
    for m in re.finditer(r"^## ([^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if m.group(1):
            section = m.group(1).strip()
        else:
            out.append((section, m.group(2)))
    return out


BLOCKS = _blocks()


@pytest.fixture(scope="module")
def docdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pallet-docs"))
    yield d
    # the runtime example's container, should the example have failed half-way (default state root)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "pallet-runtime"), "delete", "--force",
                    "docs-demo"], capture_output=True)
    for store in ("store", "other-store"):  # nothing may stay running or mounted before the files go
        root = os.path.join(d, store)
        if os.path.isdir(root):
            run_pallet("--root", root, "rm", "--all", "--force", "-t", "0", check=False)
            run_pallet("--root", root, "image", "umount", "--all", check=False)
    if os.path.isdir(os.path.join(d, "host")):  # the system containers' example, had it failed
        run_pallet("--root", os.path.join(d, "store"), "uninstall", "docs-sys", "--host-root", os.path.join(d, "host"),
                   check=False)
    shutil.rmtree(d, ignore_errors=True)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_the_document_has_an_example_per_capability():
    titles = {t for t, _ in BLOCKS}
    for words in ("Inspect", "Copy", "pull", "push", "Save", "Mount", "Build", "Working containers",
                  "OCI runtime", "Run containers", "Volumes and networks", "Scan", "System containers", "Errors"):
        assert any(words in t for t in titles), words
    for code in ("pallet.inspect(", "pallet.copy(", "store.pull(", "store.images(", "store.image(", "store.tag(",
                 "store.push(", "store.remove(", "store.save(", ".load(", "store.mount(", "store.build(",
                 "store.working_container(", "wc.run(", "wc.copy(", "wc.commit(", "pallet.Container.create(",
                 "pallet.Container.run(", "store.containers.run(", ".exec_run(", ".logs(", ".inspect()",
                 ".stop(", ".wait()", ".remove()", "pallet.scan_image(", ".fails(", ".to_cyclonedx()",
                 "store.install_system(", "store.uninstall_system(", "store.volumes.create(",
                 "store.networks.create("):
        assert any(code in c for _, c in BLOCKS), code


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{i}-{t}" for i, (t, _) in enumerate(BLOCKS)])
def test_docs_example_runs(index, busybox, registry, docdir):
    """Each example, as a program of its own (a fresh interpreter); the library prints nothing:
    what is on stdout is the example's, and stderr stays empty unless the example set up logging."""
    title, code = BLOCKS[index]
    code = code.replace(DOC_REGISTRY, registry.host).replace(DOC_DIR, docdir)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=600)
    assert p.returncode == 0, f"{title}:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    assert p.stdout.strip(), title
    if "logging.basicConfig" in code:
        assert f"pallet: copy docker://{registry.host}/demo/busybox:1 -> oci:" in p.stderr
    else:
        assert p.stderr == "", f"{title}: printed on stderr: {p.stderr[-2000:]}"


# -- direct checks -------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    import pallet

    root = str(tmp_path / "store")
    with pallet.open_store(root, tls_verify=False) as s:
        yield s
    run_pallet("--root", root, "image", "umount", "--all", check=False)


def test_results_are_frozen_and_their_json_is_the_commands(store, busybox, registry, tmp_path):
    import pallet

    img = store.pull(busybox.removeprefix("docker://"))
    assert isinstance(img, pallet.ImageInfo) and dataclasses.is_dataclass(img)
    with pytest.raises(dataclasses.FrozenInstanceError):
        img.id = "x"  # type: ignore[misc]
    assert img.names == (f"{registry.host}/demo/busybox:1",) and img.containers == 0 and not img.dangling
    assert img.labels == {"org.opencontainers.image.title": "pallet demo"}

    cli = json.loads(run_pallet("--root", store.root, "images", "--format", "json").stdout)
    assert [i.as_dict() for i in store.images()] == cli
    assert json.loads(img.to_json()) == cli[0]
    d = img.as_dict()
    d["Id"] = "changed"  # a copy: the result does not change
    assert img.as_dict()["Id"] == img.id

    hist = store.history(img.id)
    assert all(isinstance(h, pallet.HistoryEntry) for h in hist)
    assert [h.as_dict() for h in hist] == json.loads(
        run_pallet("--root", store.root, "image", "history", "--format", "json", img.id).stdout)

    info = pallet.inspect(busybox, tls_verify=False)
    assert isinstance(info, pallet.InspectResult) and isinstance(info.layers[0], pallet.LayerInfo)
    assert info.as_dict() == json.loads(run_pallet("inspect", "--tls-verify=false", busybox).stdout)
    assert info.digest == img.digest and info.layers[0].digest == info.as_dict()["Layers"][0]

    r = pallet.copy(busybox, f"oci:{tmp_path}/layout:1", tls_verify=False, format="docker")
    assert isinstance(r, pallet.CopyResult)
    assert r.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert r.digest == pallet.inspect(f"oci:{tmp_path}/layout:1").digest
    assert pallet.inspect(pallet.parse_reference(f"oci:{tmp_path}/layout:1")).digest == r.digest


def _public_callables():
    import pallet.api as api

    for name in api.__all__:
        obj = getattr(api, name)
        if _inspect.isclass(obj):
            yield name, obj
            for mname, m in vars(obj).items():
                if not mname.startswith("_") or mname == "__init__":
                    f = m.__func__ if isinstance(m, (classmethod, staticmethod)) else m
                    if isinstance(f, property):
                        f = f.fget
                    if callable(f):
                        yield f"{name}.{mname}", f
        elif _inspect.isfunction(obj):
            yield name, obj


def test_type_hints_resolve_and_py_typed_ships():
    import importlib.resources

    import pallet

    seen = 0
    for name, obj in _public_callables():
        typing.get_type_hints(obj)  # raises NameError on a hint that does not resolve
        seen += 1
    assert seen > 60
    assert typing.get_type_hints(pallet.Store.pull)["return"] is pallet.ImageInfo
    assert typing.get_type_hints(pallet.ImageInfo)["names"] == tuple[str, ...]
    assert (importlib.resources.files("pallet") / "py.typed").is_file()
    for name in pallet.__all__:
        assert getattr(pallet, name) is not None
    with pytest.raises(AttributeError):
        pallet.no_such_name  # noqa: B018


def test_import_pallet_loads_no_api_until_used():
    code = ("import sys, pallet\n"
            "print('pallet.api' in sys.modules, 'dataclasses' in sys.modules)\n"
            "pallet.Context\n"
            "print('pallet.api' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.split() == ["False", "False", "True"]


def test_a_local_reference_carries_the_store_it_was_parsed_with(store, busybox, tmp_path):
    """containers/image's ParseStoreReference(store, ref): a local: reference holds its store,
    so every source and destination of one call works on that one open store (no second open of
    the same lock file), and transports alone do not parse local: (they never name the store)."""
    import pallet
    from pallet.transports import parse_reference as transports_parse
    from pallet.transports.base import SystemContext

    img = store.pull(busybox.removeprefix("docker://"))
    ref = pallet.parse_reference(f"local:{img.names[0]}", store=store)
    assert ref.store is store._store
    r = pallet.copy(ref, "local:localhost/copied:1", store=store)
    assert r.digest == img.digest
    assert store.image("localhost/copied:1").id == img.id
    run_pallet("--root", store.root, "copy", "-q", "local:localhost/copied:1", "local:localhost/copied:2")
    assert store.image("localhost/copied:2").id == img.id
    with pytest.raises(pallet.InvalidReference, match="names an image in a store"):
        transports_parse("local:localhost/copied:1")
    assert not hasattr(SystemContext(), "storage")


def test_options_are_never_changed(store, busybox, tmp_path):
    import pallet

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {busybox.removeprefix('docker://')}\nARG X\nLABEL x=$X\n")
    tags, args, labels = ["a:1", "b:2"], {"X": "1"}, {"l": "v"}
    before = copy.deepcopy((tags, args, labels))
    img = store.build(str(ctx), tags=tags, build_args=args, labels=labels)
    assert (tags, args, labels) == before
    assert img.labels["x"] == "1" and img.labels["l"] == "v"
    assert set(img.names) == {"localhost/a:1", "localhost/b:2"}

    context = pallet.Context(tls_verify=False)
    pallet.copy(busybox, f"oci:{tmp_path}/o:1", context=context)
    assert context == pallet.Context(tls_verify=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.tls_verify = True  # type: ignore[misc]
    with pytest.raises(pallet.UsageError, match="format: unknown format 'v2s1'"):
        pallet.copy(busybox, f"oci:{tmp_path}/o:2", context=context, format="v2s1")  # type: ignore[arg-type]


def test_errors_carry_reference_digest_and_exit_code(store, busybox, registry, tmp_path):
    import pallet

    with pytest.raises(pallet.NotFound) as e:
        store.image("nothing-here:1")
    assert e.value.reference == "nothing-here:1" and e.value.exit_code == 2
    assert str(e.value) == "nothing-here:1: image not known"  # the message is unchanged

    missing = f"docker://{registry.host}/demo/absent:1"
    with pytest.raises(pallet.NotFound) as e:
        pallet.inspect(missing, tls_verify=False)
    assert e.value.reference == missing

    with pytest.raises(pallet.InvalidReference) as e:
        pallet.copy("nonsense", f"oci:{tmp_path}/x")
    assert e.value.reference == "nonsense" and e.value.exit_code == 1

    # a layer whose bytes do not match its digest: the digest at fault is on the error
    layout = tmp_path / "layout"
    pallet.copy(busybox, f"oci:{layout}:1", tls_verify=False)
    layer = pallet.inspect(f"oci:{layout}:1").layers[0].digest
    blob = layout / "blobs" / "sha256" / layer.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(pallet.DigestMismatch) as e:
        pallet.copy(f"oci:{layout}:1", f"oci:{tmp_path}/out:1")
    assert e.value.digest == layer and e.value.reference == f"oci:{layout}:1"

    with store.working_container(busybox.removeprefix("docker://")) as wc:
        with pytest.raises(pallet.BuildError) as e:
            wc.run(["sh", "-c", "exit 7"])
        assert e.value.exit_code == 7
        assert wc.run(["sh", "-c", "exit 5"], check=False) == 5
    assert store.working_containers() == []


def test_debug_messages_go_to_the_logger_not_to_stderr(busybox, tmp_path, capfd):
    import pallet

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("pallet")
    h = Keep(level=logging.DEBUG)
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        pallet.copy(busybox, f"oci:{tmp_path}/l:1", tls_verify=False)
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    assert any(r.getMessage().startswith(f"copy {busybox} -> oci:") for r in records)
    assert all(r.levelno == logging.DEBUG and r.name == "pallet" for r in records)
    out, err = capfd.readouterr()
    assert out == "" and err == ""

    pallet.copy(busybox, f"oci:{tmp_path}/l:2", tls_verify=False)  # nobody listening: nothing anywhere
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_runtime_container_lifecycle(tmp_path, root_required):
    """Container.create/start/state/wait/kill/delete on a bundle whose config write_spec wrote;
    the state's JSON is pallet-runtime state's; wait gives up with an error of the hierarchy."""
    import pallet
    from test_runtime_helpers import PALLET_RUNTIME, Runtime, make_bundle

    bundle = make_bundle(str(tmp_path / "bundle"))
    cfg = pallet.write_spec(bundle, args=["sleep", "30"])
    assert cfg["process"]["args"] == ["sleep", "30"] and cfg["process"]["terminal"] is False
    rt = Runtime(PALLET_RUNTIME, str(tmp_path / "state"))
    try:
        c = pallet.Container.create(bundle, "api-life", root=rt.root)
        st = c.state()
        assert isinstance(st, pallet.ContainerState) and st.status == "created" and st.pid > 0
        assert st.as_dict() == rt.state("api-life")
        c.start()
        assert c.state().status == "running"
        assert [s.id for s in pallet.Container.list(root=rt.root)] == ["api-life"]
        with pytest.raises(pallet.WaitTimeout) as e:
            c.wait(timeout=0.2)
        assert isinstance(e.value, pallet.PalletError) and isinstance(e.value, TimeoutError)
        assert e.value.reference == "api-life"
        c.kill("KILL")
        assert c.wait(timeout=20).status == "stopped"
        c.delete()
        assert pallet.Container.list(root=rt.root) == []
        with pytest.raises(pallet.PalletError):
            pallet.Container("../escape", root=rt.root)
        pallet.write_spec(bundle, args=["sh", "-c", "exit 4"])
        assert pallet.Container.run(bundle, "api-run", root=rt.root) == 4
    finally:
        rt.cleanup()


def test_enable_debug_is_the_commands_debug(busybox, tmp_path):
    """pallet.enable_debug() prints what ``pallet --debug`` prints, through the same logger."""
    code = ("import pallet, sys\n"
            "pallet.enable_debug()\n"
            f"pallet.copy({busybox!r}, 'oci:{tmp_path}/d:1', tls_verify=False)\n"
            "print('--', file=sys.stderr, flush=True)\n"
            "pallet.enable_debug(False)\n"
            f"pallet.copy({busybox!r}, 'oci:{tmp_path}/d:2', tls_verify=False)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    first, _, second = p.stderr.partition("--\n")
    assert first.startswith(f"DEBUG copy {busybox} -> oci:") and second == "" and p.stdout == ""
    cli = run_pallet("--debug", "copy", "--src-tls-verify=false", busybox, f"oci:{tmp_path}/d:3")
    assert f"\nDEBUG copy {busybox} -> oci:" in cli.stderr


@pytest.fixture
def private_net(tmp_path, monkeypatch, root_required):
    """The command line's default network for RUN (no containers.conf netns: private, as root),
    its definitions in the test's own directory; a run root of the test's own."""
    monkeypatch.setenv("PALLET_NETWORK_CONFIG_DIR", str(tmp_path / "networks"))
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\n")
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    runroot = str(tmp_path / "run")
    yield runroot
    from conftest import unmount_under

    unmount_under(runroot)


def test_build_runs_steps_on_the_commands_default_network(busybox, tmp_path, private_net):
    """Store.build's default network is ``pallet build``'s: a private namespace on the default
    network (eth0 besides lo), not the host's; ``network=`` still chooses."""
    import pallet

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {busybox.removeprefix('docker://')}\n"
                                       "RUN ls /sys/class/net > /links\n")
    with pallet.open_store(str(tmp_path / "store"), runroot=private_net, tls_verify=False) as s:
        s.build(str(ctx), tags=["net-default:1"])
        s.build(str(ctx), tags=["net-none:1"], network="none", no_cache=True)
        for tag, links in (("net-default:1", ["eth0", "lo"]), ("net-none:1", ["lo"])):
            with s.mount(tag) as root:
                assert sorted(open(os.path.join(root, "links")).read().split()) == links, tag


def test_working_container_run_uses_the_commands_default_network(busybox, tmp_path, private_net):
    """WorkingContainer.run's default network is ``pallet builder run``'s: private."""
    import pallet

    with pallet.open_store(str(tmp_path / "store"), runroot=private_net, tls_verify=False) as s:
        with s.working_container(busybox.removeprefix("docker://")) as wc:
            out = tmp_path / "links"
            with open(out, "w") as f:
                wc.run(["ls", "/sys/class/net"], stdout=f)
            assert sorted(out.read_text().split()) == ["eth0", "lo"]
            with open(out, "w") as f:
                wc.run(["ls", "/sys/class/net"], stdout=f, network="none")
            assert out.read_text().split() == ["lo"]
