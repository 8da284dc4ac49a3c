"""The runtime's seams, checked on the source: what ``pallet-runtime run`` loads stays light,
no runtime module imports another module's private names, and there is no import circle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import pallet

pytestmark = pytest.mark.unit

SRC = os.path.dirname(pallet.__file__)
HEAVY = ("argparse", "json", "re", "enum", "socket", "threading", "gettext", "locale", "http.client", "ssl")

# what `pallet-runtime create/run/start/kill/delete` and the container's init import
RUN_PATH = ("pallet.cli.runtime", "pallet.cli.runtime_args", "pallet.runtime.run", "pallet.runtime.create",
            "pallet.runtime.start", "pallet.runtime.delete", "pallet.runtime.kill", "pallet.runtime.query",
            "pallet.runtime.init", "pallet.runtime.rootfs", "pallet.runtime.process", "pallet.runtime.sync",
            "pallet.runtime.spec", "pallet.runtime.fields", "pallet.runtime.cgroups.fs1",
            "pallet.runtime.cgroups.fs2", "pallet.runtime.cgroups.hybrid")


def _modules():
    """{module name: path} of pallet.runtime and the pallet-runtime command line."""
    out = {}
    for root, _dirs, files in os.walk(os.path.join(SRC, "runtime")):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), os.path.dirname(SRC))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(root, f)
    for f in os.listdir(os.path.join(SRC, "cli")):
        if f.startswith("runtime") and f.endswith(".py"):
            out["pallet.cli." + f[:-3]] = os.path.join(SRC, "cli", f)
    return out


def _imports(mods):
    """[(importer, imported module, name or None)] for every import, lazy ones included."""
    out = []
    for name, path in mods.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1])
                    target = base + ("." + node.module if node.module else "")
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in mods:  # `from . import init`: a module, not a name
                        out.append((name, full, None))
                    else:
                        out.append((name, target, alias.name))
            elif isinstance(node, ast.Import):
                out.extend((name, alias.name, None) for alias in node.names)
    return out


def test_run_path_imports_none_of_the_heavy_modules():
    code = (f"import sys\nfor m in {RUN_PATH!r}: __import__(m)\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


#: loaded only when the config or the verb asks for them, never on create/run/start/delete's path
CONDITIONAL = ("pallet.runtime.userns", "pallet.runtime.hooks", "pallet.runtime.seccomp", "pallet.runtime.exec",
               "pallet.runtime.control", "pallet.runtime.features", "pallet.runtime.cgroups.ebpf",
               "pallet.runtime.cgroups.oom", "pallet.oci.runtime_spec", "pallet.cli.runtime_cmds", "pallet._userns")


def test_run_path_loads_no_stand_in_module_and_stays_within_its_module_count():
    """Every module is a tenth of a millisecond of each container start (issue 15: the runtime
    split had added 17, and ``run`` took 1.10-1.12x the CPU it took before): the run path loads
    no re-exporting shim (``pallet._json``, ``runtime._sys``, ``runtime._json``), not the version,
    none of the modules a config or a verb asks for by itself (user namespaces, hooks, seccomp,
    exec...), and no more pallet modules than after the issue's last gap was closed."""
    code = (f"import sys\nfor m in {RUN_PATH!r}: __import__(m)\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('pallet'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert not {"pallet._json", "pallet.runtime._sys", "pallet.runtime._json", "pallet._version"} & set(loaded), loaded
    assert not set(CONDITIONAL) & set(loaded), loaded
    assert len(loaded) <= 33, loaded


def test_the_console_script_runs_without_gc_and_loads_the_run_path_through_the_lean_importer():
    """What made ``run`` cheaper than before the split, kept: ``run_main`` turns the cyclic GC off
    (its collections were ~5 % of a run's instructions, and init inherited them) and installs
    ``_std.importer``; every run-path module but the few imported before it is loaded by that
    finder (half importlib's instructions each), so none slips back to importlib's machinery."""
    code = f"""
import os, sys, gc
from pallet.cli import runtime
from pallet._std.importer import PalletFinder, PalletLoader

def main(preload=False):
    for m in {RUN_PATH!r}:
        __import__(m)
    slow = sorted(n for n, m in sys.modules.items() if n.startswith("pallet") and m.__loader__ is not PalletLoader)
    print(gc.isenabled(), PalletFinder in sys.meta_path, preload, " ".join(slow))
    return 0

runtime.main = main
runtime.run_main()
"""
    subprocess.run([sys.executable, "-m", "compileall", "-q", SRC], check=True, timeout=120)  # as installed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    gc_on, installed, preload, *slow = out.stdout.split()
    assert (gc_on, installed, preload) == ("False", "True", "True")  # the lifecycle verbs from a snapshot
    assert set(slow) <= {"pallet", "pallet.cli", "pallet.cli.runtime", "pallet.cli.runtime_args", "pallet._std",
                         "pallet._std.importer"}, slow


def test_no_runtime_module_imports_private_names_of_another():
    mods = _modules()
    crossing = [f"{importer} imports {target}.{name}" for importer, target, name in _imports(mods)
                if name and name.startswith("_") and target in mods and target != importer
                and not target.endswith("._sys")]  # _sys: the stand-in syscall module, itself private
    assert crossing == []


def test_no_import_circle_in_the_runtime():
    mods = _modules()
    edges = {m: set() for m in mods}
    for importer, target, _name in _imports(mods):
        if target in mods and target != importer:
            edges[importer].add(target)
    circles = []
    state = {}  # module -> "open" while on the path, "done" after

    def walk(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = "done"

    for m in sorted(mods):
        if m not in state:
            walk(m, [m])
    assert circles == []


def test_every_name_imported_from_the_runtime_exists():
    """A name any pallet module imports from pallet.runtime (lazy imports included) is there:
    the runtime's split moved ``parse_signal`` into kill.py while build/image.py still took it
    from container.py, and every build with a STOPSIGNAL failed with an internal error."""
    import importlib

    mods = {}
    for root, _dirs, files in os.walk(SRC):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), os.path.dirname(SRC))[:-3].replace(os.sep, ".")
                mods[rel.removesuffix(".__init__")] = os.path.join(root, f)
    missing = []
    for importer, target, name in _imports(mods):
        if name and (target == "pallet.runtime" or target.startswith("pallet.runtime.")):
            if not hasattr(importlib.import_module(target), name):
                missing.append(f"{importer}: from {target} import {name}")
    assert missing == []


def test_the_lifecycle_verbs_preload_their_snapshot(tmp_path):
    """``run_main`` asks ``_std.importer`` for the snapshot of the lifecycle verbs a container
    engine runs per container (create, start, run, kill, delete, state; and features), and of
    no other."""
    code = f"""
from pallet._std import importer
from pallet.cli import runtime
importer.preload = lambda name: print(name) or 0
for argv in (["state", "x"], ["delete", "x"], ["list"], ["--version"]):
    runtime.main(["--root", {str(tmp_path)!r}, *argv], preload=True)
runtime.main(["--root", {str(tmp_path)!r}, "kill", "x"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stdout.splitlines() if line.startswith("runtime-")] == ["runtime-state",
                                                                                        "runtime-delete"]


def test_the_console_script_writes_a_verbs_snapshot_once_then_runs_from_it(tmp_path):
    """``pallet-runtime state`` as installed (pycs current, bytecode writing on): the first run
    writes the verb's snapshot, the next ones use it (the file is not rewritten) and answer
    the same."""
    path = f"{SRC}/__pycache__/runtime-state.{sys.implementation.cache_tag}.snapshot"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-c", "from pallet.cli.runtime import run_main; run_main()", "--root", str(tmp_path),
           "state", "nosuchcontainer"]
    if not os.access(f"{SRC}/__pycache__", os.W_OK):  # an unprivileged user's run of an installed pallet
        existed = os.path.exists(path)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 1 and "nosuchcontainer" in out.stderr  # the same answer, nothing written
        assert os.path.exists(path) == existed
        return
    subprocess.run([sys.executable, "-m", "compileall", "-q", SRC], check=True, timeout=120)
    if os.path.exists(path):
        os.unlink(path)
    try:
        first = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        st = os.stat(path)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        again = os.stat(path)
        assert (again.st_ino, again.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
        assert first.returncode == second.returncode == 1 and first.stderr == second.stderr
        assert "nosuchcontainer" in first.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)
