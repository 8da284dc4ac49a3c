"""``pallet._std.importer`` against importlib: the modules it loads look as importlib's do, and
it leaves to importlib every module whose pyc is missing, stale or not a timestamp pyc."""

import os
import py_compile
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

MODULES = ("pallet.cli.runtime", "pallet.runtime.run", "pallet.runtime.cgroups", "pallet.runtime.cgroups.fs1",
           "pallet.runtime.init", "pallet._std.syscalls", "pallet.oci.capabilities")

_SHOW = """
import sys
{install}
for m in {mods!r}:
    __import__(m)
for name in sorted(n for n in sys.modules if n.startswith("pallet.") and n != "pallet._std.importer"):
    m = sys.modules[name]
    s = m.__spec__
    print(name, m.__file__, m.__cached__, m.__package__, getattr(m, "__path__", None), s.origin, s.parent,
          s.has_location, sorted(k for k in vars(m) if k not in ("__loader__", "__spec__", "__builtins__", "importer")),
          type(m.__loader__).__name__ if not isinstance(m.__loader__, type) else m.__loader__.__name__)
"""


def _show(install):
    code = _SHOW.format(install=install, mods=MODULES)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.rsplit(" ", 1) for line in out.stdout.splitlines()]


def test_modules_it_loads_are_what_importlib_makes():
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(__import__("pallet").__file__)],
                   check=True, timeout=120)  # the pycs are current (the finder needs them)
    plain = _show("")
    lean = _show("from pallet._std import importer; importer.install()")
    assert [a for a, _ in lean] == [a for a, _ in plain]  # the same modules, files, paths and names
    assert {loader for _, loader in plain} == {"SourceFileLoader"}
    loaded = [a.split()[0] for a, loader in lean if loader == "PalletLoader"]
    # everything imported after install() (the package pallet and pallet._std came before it)
    assert set(loaded) >= set(MODULES) - {"pallet._std.syscalls"} and "pallet.runtime" in loaded


def _finder():
    from pallet._std.importer import PalletFinder

    return PalletFinder


def test_it_leaves_missing_stale_and_hash_based_pycs_to_importlib(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("X = 1\n")
    find = _finder().find_spec
    assert find("pallet.mod", [str(tmp_path)]) is None  # no pyc yet: importlib compiles it
    py_compile.compile(str(src), cfile=str(tmp_path / "__pycache__" / f"mod.{sys.implementation.cache_tag}.pyc"))
    spec = find("pallet.mod", [str(tmp_path)])
    assert spec is not None and spec.origin == str(src) and spec.cached.endswith(".pyc")
    assert find("other.mod", [str(tmp_path)]) is None and find("pallet.nothing", [str(tmp_path)]) is None
    src.write_text("X = 22\n")  # changed since: size (and mtime) differ from the pyc's record
    assert find("pallet.mod", [str(tmp_path)]) is None
    py_compile.compile(str(src), cfile=spec.cached, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert find("pallet.mod", [str(tmp_path)]) is None  # hash-based: importlib checks those


def test_a_package_is_found_with_its_path(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    py_compile.compile(str(pkg / "__init__.py"),
                       cfile=str(pkg / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"))
    spec = _finder().find_spec("pallet.pkg", [str(tmp_path)])
    assert spec.submodule_search_locations == [str(pkg)] and spec.origin == str(pkg / "__init__.py")


def _env():
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # pycs and snapshots written


_SNAP = """
import sys
from pallet._std import importer
importer.install(record=True)
n = importer.preload({name!r})
{body}
"""


def _snap(name, body):
    out = subprocess.run([sys.executable, "-c", _SNAP.format(name=name, body=body)], capture_output=True, text=True,
                         timeout=60, env=_env())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_snapshot_gives_the_modules_importlib_would_and_is_used_only_while_every_source_matches():
    """``preload`` executes a command's modules from one file, without importlib's bookkeeping:
    written by ``save_snapshot`` when missing, used next time with the same modules, files,
    names and attributes (submodules bound to their packages) as importlib's; a snapshot whose
    source no longer matches, a foreign or truncated file, or a module that raises: nothing of
    it is kept, the modules load one by one."""
    import marshal

    from pallet._std import importer

    name = f"test-snapshot-{os.getpid()}"
    top = os.path.dirname(__import__("pallet").__file__)
    path = f"{top}/__pycache__/{name}.{sys.implementation.cache_tag}.snapshot"
    if not os.access(f"{top}/__pycache__", os.W_OK):  # an unprivileged user: nothing can be saved there
        assert _snap(name, f"for m in {MODULES!r}: __import__(m)\nimporter.save_snapshot()\nprint(n)") == "0\n"
        assert not os.path.exists(path)
        return
    subprocess.run([sys.executable, "-m", "compileall", "-q", top], check=True, timeout=120, env=_env())
    show = _SHOW.split("\n", 3)[3].format(mods=MODULES)
    try:
        assert _snap(name, f"for m in {MODULES!r}: __import__(m)\nprint(n)\nimporter.save_snapshot()") == "0\n"
        with open(path, "rb") as f:
            magic, entries = marshal.loads(f.read())
        assert {e[0] for e in entries} >= set(MODULES) - {"pallet._std.syscalls"}
        preloaded = _snap(name, "print(n)\n" + show)
        n, *lines = preloaded.splitlines()
        assert int(n) == len(entries)
        plain = _show("")
        assert [line.rsplit(" ", 1)[0] for line in lines] == [a for a, _ in plain]
        # a module it lacks is loaded one by one, and not added (a config's own modules are not
        # executed for every later command)
        assert _snap(name, "import pallet.runtime.hooks\nimporter.save_snapshot()\nprint(n)") == f"{len(entries)}\n"
        with open(path, "rb") as f:
            assert marshal.loads(f.read())[1] == entries

        def write(entries, magic=magic):
            with open(path, "wb") as f:
                f.write(marshal.dumps((magic, tuple(entries))))

        mod, source, mtime, size, code = entries[-1]
        write(list(entries[:-1]) + [(mod, source, mtime + 1, size, code)])  # a source changed since
        assert _snap(name, "print(n, [m for m in sys.modules if m.startswith('pallet.runtime')])") == "0 []\n"
        write([(1, 2, 3, 4, 5)] + list(entries))  # not even the right types
        assert _snap(name, "print(n)") == "0\n"
        write(entries, b"not ours")
        assert _snap(name, "print(n)") == "0\n"
        with open(path, "wb") as f:
            f.write(marshal.dumps((magic, tuple(entries)))[:1000])
        assert _snap(name, "print(n)") == "0\n"
        st = os.stat(importer.__file__)
        write([("pallet.snapshot_boom", importer.__file__, st.st_mtime_ns, st.st_size,
               compile("raise ValueError", "x", "exec"))])
        assert _snap(name, "print(n, 'pallet.snapshot_boom' in sys.modules)") == "0 False\n"
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_no_snapshot_is_written_without_bytecode_writing():
    name = f"test-snapshot-b-{os.getpid()}"
    code = _SNAP.format(name=name, body="import pallet.runtime.run\nimporter.save_snapshot()")
    out = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 0, out.stderr
    top = os.path.dirname(__import__("pallet").__file__)
    assert not [f for f in os.listdir(f"{top}/__pycache__") if f.startswith(name)]


def test_a_process_that_does_not_record_keeps_no_code_and_writes_no_snapshot():
    """``pallet`` installs the finder without recording: no code objects kept, nothing saved."""
    name = f"test-snapshot-r-{os.getpid()}"
    body = "import pallet.runtime.run\nimporter.save_snapshot()\nprint(len(importer._loaded))"
    code = _SNAP.format(name=name, body=body)
    code = code.replace("importer.install(record=True)", "importer.install()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 0 and out.stdout == "0\n", out.stderr
    top = os.path.dirname(__import__("pallet").__file__)
    assert not [f for f in os.listdir(f"{top}/__pycache__") if f.startswith(name)]
