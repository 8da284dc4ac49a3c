"""pallet's layering, checked on the source (docs/architecture.md draws the same table).

Every module under src/pallet is parsed with ``ast``; every import counts, at any depth
(module level, inside functions, behind ``TYPE_CHECKING``), relative ones resolved. Four rules:

- **layer**: a package imports only itself, the base modules and the packages its row of
  ``MAY_IMPORT`` names (no upward imports);
- **private**: no module imports (or reaches through an imported module for) another module's
  ``_private`` name, nor imports a ``_private`` module from outside the package that holds it
  (the stand-in room ``pallet._std`` excepted);
- **stand-in**: only the stand-ins import ``_ssl``, ``_socket``, ``_ctypes``, ``_json`` or put a
  fake module into ``sys.modules``;
- **cycle**: no import cycle between modules.

Known violations that their owners will remove are listed in ``ALLOWED_DEBT``, each with its
reason. The test fails for a violation not in the table and for a table entry that no longer
occurs, so the table only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[1] / "src"

#: importable by every package: the error hierarchy, the shared file/log helpers, the stand-ins
BASE = ("pallet.errors", "pallet._version", "pallet._fs", "pallet._rootfs", "pallet._userns", "pallet._log",
        "pallet._std")

_FEATURE_DEPS = ("pallet.oci", "pallet.layer", "pallet.transports", "pallet.storage", "pallet.runtime",
                 "pallet.images")
_FEATURES = ("pallet.builder", "pallet.containers", "pallet.scan", "pallet.system")

#: each package (or top-level module) and what it may import besides itself and BASE;
#: an entry may name a module (``pallet.transports.base``) rather than a whole package.
#: (planned) marks packages that do not exist yet: their rows are the plan.
MAY_IMPORT = {
    "pallet": ("pallet.api",),  # the root package re-exports the API (lazily)
    "pallet.errors": (),
    "pallet._version": (),
    "pallet._fs": (),
    "pallet._rootfs": (),  # the one path-in-root resolver, by fd
    "pallet._userns": (),  # a user namespace with given maps, as an fd (id-mapped mounts)
    "pallet._log": (),
    "pallet._std": (),  # the stand-in room
    "pallet.oci": (),
    "pallet.layer": ("pallet.oci",),
    "pallet.transports": ("pallet.oci", "pallet.layer"),
    # the store knows the transports' interfaces (for local:), not the registry client
    "pallet.storage": ("pallet.oci", "pallet.layer", "pallet.transports.base"),
    "pallet.runtime": ("pallet.oci",),
    "pallet.images": ("pallet.oci", "pallet.layer", "pallet.transports", "pallet.storage"),
    # RUN steps get the containers' networks (buildah's private namespace through netavark),
    # containers.conf's netns and containers-common's seccomp profile as podman converts it
    "pallet.builder": _FEATURE_DEPS + ("pallet.containers.network", "pallet.containers.conf",
                                       "pallet.containers.seccomp_profile"),
    "pallet.containers": _FEATURE_DEPS,  # (planned)
    "pallet.scan": _FEATURE_DEPS + ("pallet.containers",),  # scanner images run as containers
    "pallet.system": _FEATURE_DEPS,
    "pallet.api": _FEATURE_DEPS + _FEATURES,
    "pallet.cri": _FEATURE_DEPS + _FEATURES + ("pallet.api",),
    # the CRI server is a front end of its own; ``pallet cri serve`` starts it
    "pallet.cli": _FEATURE_DEPS + _FEATURES + ("pallet.api", "pallet.cri"),
}

#: the modules that replace a standard-library module, and the C modules each may use: the
#: stand-in room pallet/_std (docs/architecture.md)
STAND_INS = {
    "pallet._std.json": {"_json"},  # JSON as json reads and writes it, over _json (no re)
    "pallet._std.http": {"_socket", "_ssl"},  # HTTP/1.1 and TLS without http.client/ssl
    "pallet._std.syscalls": {"_ctypes"},  # syscalls without ctypes' Python layer
    "pallet._std.ctypes_util": {"sys.modules"},  # a faked ctypes.util so pyseccomp loads without ldconfig
    "pallet._std.args": set(),  # argparse's interface without argparse (imports no C module)
    "pallet._std.sock": {"_socket"},  # unix/inet sockets and pairs without socket's enums and selectors
    "pallet._std.proc": set(),  # subprocess's Popen/run over os.posix_spawn (no locale, re, threading)
    "pallet._std.futures": set(),  # a function in a thread and its result, without concurrent.futures
    # importlib's path finder and pyc loader for pallet.* (pallet-runtime); its snapshots put the
    # modules they execute into sys.modules, as importlib does
    "pallet._std.importer": {"sys.modules"},
}
LOW_LEVEL = ("_ssl", "_socket", "_ctypes", "_json")

#: known violations, each removed by the engineer restructuring that area
ALLOWED_DEBT = {
    ("private", "pallet.images.archive", "pallet.transports._files"): "load spools, save stages through transports' files (make them public)",
    # cross-package private modules and names whose owners must make them public
    ("private", "pallet.cli.common", "pallet.transports._files"): "--spool-limit parses with transports' parse_size (make it public)",
    # private names across modules of one package
    # private names reached through the module object
    # import cycles
    ("cycle", "pallet.transports.docker", "pallet.transports.docker._source"):
        "docker's __init__ makes sources, and the source uses __init__'s helpers",
}


# -- the source's imports ------------------------------------------------------------------------

class Module:
    def __init__(self, name: str, path: Path, is_pkg: bool):
        self.name, self.path, self.is_pkg = name, path, is_pkg
        self.tree = ast.parse(path.read_text(), str(path))


def _modules() -> dict[str, Module]:
    mods = {}
    for path in sorted((SRC / "pallet").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        mods[".".join(parts)] = Module(".".join(parts), path, is_pkg)
    return mods


MODULES = _modules()


def _resolve(mod: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.name.split(".")
    if not mod.is_pkg:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: Module):
    """(line, target module, imported name or None) for every import in ``mod``; a string that
    is exactly a pallet module's name counts too (``importlib.import_module`` of a registry)."""
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("pallet."):
            if node.value in MODULES:
                yield node.lineno, node.value, None
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(mod, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:
                    yield node.lineno, sub, None
                else:
                    yield node.lineno, base, a.name


def private_attributes(mod: Module):
    """(line, module, name) for ``alias._name`` where ``alias`` is a pallet module this module
    imported: reaching into another module's privates through the module object."""
    bound = {}
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in MODULES:
                    bound[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(mod, node)
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:
                    bound[a.asname or a.name] = f"{base}.{a.name}"
    for node in ast.walk(mod.tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and bound[node.value.id] != mod.name):
            yield node.lineno, bound[node.value.id], node.attr


def _fakes_a_module(mod: Module):
    """Lines that assign ``sys.modules[...]`` (a stand-in faking a module)."""
    for node in ast.walk(mod.tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute) and t.value.attr == "modules"
                    and isinstance(t.value.value, ast.Name) and t.value.value.id == "sys"):
                yield node.lineno


def unit_of(name: str) -> str | None:
    """The row of MAY_IMPORT a module belongs to (the longest matching prefix)."""
    best = None
    for key in MAY_IMPORT:
        if (name == key or name.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    return best


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _may(target: str, entry: str) -> bool:
    """Does a MAY_IMPORT entry admit ``target``? (``pallet``, the root, admits only itself.)"""
    return target == entry if entry == "pallet" else _within(target, entry)


def _private_owner(target: str) -> str | None:
    """For a private module (a ``_name`` component), the package holding it."""
    parts = target.split(".")
    for i, p in enumerate(parts[1:], 1):
        if p.startswith("_") and not p.startswith("__"):
            return ".".join(parts[:i])
    return None


# -- the rules ---------------------------------------------------------------------------------

def violations() -> dict[tuple, list[str]]:
    """Every violation: its key (as in ALLOWED_DEBT) and the file:line lines saying what breaks."""
    found: dict[tuple, list[str]] = {}

    def add(key, where, text):
        found.setdefault(key, []).append(f"{where}: {text}")

    for mod in MODULES.values():
        rel = mod.path.relative_to(SRC.parent)
        unit = unit_of(mod.name)
        for line, target, name in imports(mod):
            where = f"{rel}:{line}"
            top = target.split(".")[0]
            if top in LOW_LEVEL and top not in STAND_INS.get(mod.name, ()):
                add(("stand-in", mod.name, top), where,
                    f"imports {top}, which only the stand-ins ({', '.join(sorted(STAND_INS))}) may use")
            if top != "pallet":
                continue
            if target not in MODULES:
                add(("missing", mod.name, target), where, f"imports {target}, which is not a module of pallet")
                continue
            # layer
            tunit = unit_of(target)
            allowed = MAY_IMPORT.get(unit, ())
            if not (tunit == unit or tunit in BASE or any(_may(target, a) for a in allowed)):
                add(("layer", mod.name, target), where,
                    f"{mod.name} imports {target}, but {unit} may import only the base and "
                    f"{', '.join(allowed) or 'nothing else'} (MAY_IMPORT)")
            # private modules
            owner = _private_owner(target)
            if owner and not _within(mod.name, owner) and not _within(target, "pallet._std"):
                add(("private", mod.name, target), where,
                    f"imports the private module {target} from outside {owner}")
            # private names
            if name and name.startswith("_") and not name.startswith("__") and not _within(target, "pallet._std"):
                add(("private", mod.name, f"{target}.{name}"), where,
                    f"imports the private name {name} of the module {target}")
        for line, target, name in private_attributes(mod):
            if not _within(target, "pallet._std"):
                add(("private", mod.name, f"{target}.{name}"), f"{rel}:{line}",
                    f"uses the private name {name} of the module {target}")
        for line in _fakes_a_module(mod):
            if "sys.modules" not in STAND_INS.get(mod.name, ()):
                add(("stand-in", mod.name, "sys.modules"), f"{rel}:{line}",
                    "puts a fake module into sys.modules, which only the stand-ins may do")

    edges = _edges()
    for members, cycle in cycles():
        key = ("cycle",) + tuple(sorted(members))
        ring = cycle + [cycle[0]]
        steps = [f"{MODULES[a].path.relative_to(SRC.parent)}:{edges[a][b]} imports {b}" for a, b in zip(ring, ring[1:])]
        add(key, "import cycle " + " -> ".join(ring), "; ".join(steps))
    return found


def _edges() -> dict[str, dict[str, int]]:
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for mod in MODULES.values():
        for line, target, _name in imports(mod):
            if target in MODULES and target != mod.name:
                edges[mod.name].setdefault(target, line)
    return edges


def cycles() -> list[tuple[set, list[str]]]:
    """Per strongly connected component of the import graph (Tarjan): its modules, and one
    shortest cycle through its first module."""
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(set(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    result = []
    for comp in sccs:
        start = min(comp)
        # the shortest way back to start inside the component (breadth first)
        prev = {start: None}
        queue = [start]
        path = None
        while queue and path is None:
            nxt = []
            for v in queue:
                for w in sorted(edges[v]):
                    if w not in comp:
                        continue
                    if w == start:
                        path = [v]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        path.reverse()
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if path:
                    break
            queue = nxt
        result.append((comp, path))
    return result


# -- the tests ---------------------------------------------------------------------------------

def test_only_the_room_uses_the_c_modules():
    """Nothing outside the stand-in room imports _ssl, _socket, _ctypes or _json (the stand-in
    rule); the old paths of the stand-ins are gone."""
    for old in ("pallet._json", "pallet.cli._args", "pallet.transports.docker._http", "pallet.runtime._sys"):
        assert old not in MODULES, f"{old}: the stand-ins live in pallet._std only"
    for name, mod in MODULES.items():
        if _within(name, "pallet._std"):
            continue
        low = {t.split(".")[0] for _line, t, _name in imports(mod)} & set(LOW_LEVEL)
        assert not low, f"{name} imports {sorted(low)}: only the stand-in room pallet._std may"


def test_every_package_has_a_row():
    rows = set(MAY_IMPORT)
    missing = sorted({m for m in MODULES if unit_of(m) in (None, "pallet") and m != "pallet"})
    assert not missing, (f"modules with no row in MAY_IMPORT (add one, and a paragraph in "
                         f"docs/architecture.md): {missing}")
    assert rows


def test_layering_holds_except_the_listed_debt():
    found = violations()
    new = {k: v for k, v in found.items() if k not in ALLOWED_DEBT}
    gone = sorted(k for k in ALLOWED_DEBT if k not in found)
    lines = []
    for k in sorted(new):
        lines.append(f"{k!r}: " + "; ".join(new[k]))
    for k in gone:
        lines.append(f"ALLOWED_DEBT entry {k!r} no longer occurs: remove it from the table")
    assert not lines, "layering:\n" + "\n".join(lines)


def test_the_architecture_page_has_a_row_for_every_package():
    """docs/architecture.md has a paragraph (table row) for every package of MAY_IMPORT."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    for unit in MAY_IMPORT:
        if unit == "pallet":
            continue
        short = unit.removeprefix("pallet.")
        assert f"`{short}" in doc, f"docs/architecture.md has no paragraph for {short}"
    # a row for one package that lists what it may import lists exactly its MAY_IMPORT row
    checked = 0
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = cells[0].split("`")[1::2]
        unit = "pallet." + names[0].removesuffix("/").removesuffix(".py")
        if len(names) != 1 or unit not in MAY_IMPORT or "everything" in cells[2] or cells[2].startswith("as "):
            continue
        listed = {"pallet." + n for n in cells[2].split("`")[1::2]}
        assert listed == set(MAY_IMPORT[unit]), (
            f"docs/architecture.md says {unit} may import {sorted(listed)}; the test's table: {MAY_IMPORT[unit]}")
        checked += 1
    assert checked >= 8


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_checker_sees_what_it_must(tmp_path):
    """The rules fire on the forms they are about (relative, local, TYPE_CHECKING, aliased)."""
    src = ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from ..cli import main\n"
           "def f():\n    from ..storage.store import _lock\n    import _socket\n"
           "    from . import _tar\n"
           "TABLE = {'local': 'pallet.storage.transport', 'doc': 'pallet.storage.transport is a module'}\n")
    path = tmp_path / "x.py"
    path.write_text(src)
    mod = Module("pallet.oci.x", path, False)
    got = list(imports(mod))
    assert (3, "pallet.cli.main", None) in got
    assert (5, "pallet.storage.store", "_lock") in got
    assert (6, "_socket", None) in got
    assert (7, "pallet.oci", "_tar") in got  # not a module here: a private name
    assert [g for g in got if g[0] == 8] == [(8, "pallet.storage.transport", None)]  # by name, once
    assert sorted(private_attributes(Module("pallet.oci.y", _write(tmp_path / "y.py",
                "from ..storage import info as i\nimport pallet.layer.stream as st\ni._config(); st._x; i.public\n"),
                False))) == [(3, "pallet.layer.stream", "_x"), (3, "pallet.storage.info", "_config")]
    assert unit_of("pallet.transports.docker._http") == "pallet.transports"
    assert unit_of("pallet.errors") == "pallet.errors"
    assert _private_owner("pallet.transports.docker._http") == "pallet.transports.docker"
    assert _private_owner("pallet.layer.apply") is None
