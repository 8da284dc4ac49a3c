"""A lean finder for pallet's own compiled modules: importlib's path finder and source loader,
for what ``pallet-runtime`` imports.

importlib finds and loads a module with ~240K instructions of Python of its own (the path
finder's directory cache, spec and ``__cached__`` computations, a buffered file object,
the pyc's checks, done by functions calling functions) before the module's code runs:
over the ~35 modules of a ``pallet-runtime run`` that was a sixth of its instructions.
This finder does the same job in half: the source's ``stat``, the pyc read with one
``os.read``, its header checked as importlib checks it (magic number, a timestamp pyc whose
recorded mtime and size are the source's), then ``marshal.loads``.

It only answers for ``pallet.*`` modules below an imported package whose pyc is there and
current, in the default configuration (no ``-O``, no ``PYTHONPYCACHEPREFIX``); for anything
else (no pyc yet, a stale or hash-based one, a namespace package...) it returns None and
importlib does what it always does (compiling and writing the pyc). Modules it loads have
what importlib would give them (``__file__``, ``__cached__``, ``__path__``, ``__package__``,
``__spec__.origin``); tests/std/test_std_importer.py compares the two.

Snapshots (:func:`preload`, :func:`save_snapshot`): even through this finder, importlib's
own bookkeeping (module locks, ``_find_and_load``, ``module_from_spec``) costs ~85K
instructions a module, ~2.5M of a ``pallet-runtime run``'s ~42M. A snapshot is the code
objects of the modules one ``pallet-runtime`` command loaded, in the order they finished
loading, in one marshal file in pallet's ``__pycache__`` beside the pycs; each entry records
its source's mtime (in ns) and size as the finder saw them when it loaded the pyc (a pyc records
the mtime in seconds). :func:`preload` stats every source and, when all match, executes the
modules in that order (an order in which each module's imports come before it: its imports
finished first, and there are no import cycles, tests/test_layering.py) into module objects
with the attributes importlib gives; the command's imports then find them in ``sys.modules``.
Any mismatch, an unreadable or foreign file: nothing is preloaded, the modules load one by
one as above, and :func:`save_snapshot` writes the snapshot anew at the command's end (as
importlib writes a missing pyc; not with ``-B``/``PYTHONDONTWRITEBYTECODE``, never into a
directory it cannot write). A module the snapshot lacks (a verb's or a config's own, as
``runtime.seccomp`` for a config with ``linux.seccomp``) is loaded by the finder and not added:
a snapshot holds what its first command loaded, so that one config's modules are not executed
for every later container (a union would grow to every module any container ever needed).
"""

import marshal
import os
import sys

from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

_TAG = sys.implementation.cache_tag
_CHUNK = 1 << 16


class PalletFinder:
    """A ``sys.meta_path`` finder for ``pallet.*`` (:func:`install`)."""

    @staticmethod
    def find_spec(name, path, target=None):
        if not path or not name.startswith("pallet.") or sys.flags.optimize or sys.pycache_prefix or not _TAG:
            return None
        directory = path[0]
        base = name.rpartition(".")[2]
        package = None
        source = f"{directory}/{base}.py"
        try:
            st = os.stat(source)
        except OSError:
            package = f"{directory}/{base}"
            source = f"{package}/__init__.py"
            try:
                st = os.stat(source)
            except OSError:
                return None
            cached = f"{package}/__pycache__/__init__.{_TAG}.pyc"
        else:
            cached = f"{directory}/__pycache__/{base}.{_TAG}.pyc"
        try:
            fd = os.open(cached, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            # a buffer below malloc's mmap threshold: a read of 16 MB cost a mmap, a mremap
            # and a munmap per module; a larger pyc is read by its size
            data = os.read(fd, _CHUNK)
            if len(data) == _CHUNK:
                size = os.fstat(fd).st_size
                if size >= 1 << 24:  # importlib's business
                    return None
                data += os.read(fd, size - _CHUNK + 1)
                if len(data) != size:  # changed under us: importlib's business
                    return None
        finally:
            os.close(fd)
        # importlib's _classify_pyc and _validate_timestamp_pyc: flags 0 is a timestamp pyc
        if len(data) < 16 or data[:4] != MAGIC_NUMBER or data[4:8] != b"\0\0\0\0" \
                or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF \
                or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF:
            return None
        spec = ModuleSpec(name, PalletLoader, origin=source, is_package=package is not None)
        spec.has_location = True
        spec.cached = cached
        if package is not None:
            spec.submodule_search_locations = [package]
        spec.loader_state = (data, st.st_mtime_ns, st.st_size)
        return spec

    @staticmethod
    def invalidate_caches():
        pass


class PalletLoader:
    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        spec = module.__spec__
        (data, mtime_ns, size), spec.loader_state = spec.loader_state, None
        code = marshal.loads(memoryview(data)[16:])
        exec(code, module.__dict__)
        if _record:
            _loaded.append((spec.name, spec.origin, mtime_ns, size, code))

    @staticmethod
    def get_source(name):  # tracebacks read the source by its file name (linecache)
        return None


def install(record=False):
    """Put the finder first in ``sys.meta_path`` (once); ``record``: keep what it loads for
    :func:`save_snapshot` (a process that uses snapshots)."""
    global _record
    _record = _record or record
    if PalletFinder not in sys.meta_path:
        sys.meta_path.insert(0, PalletFinder)


# -- snapshots -----------------------------------------------------------------------------

_SNAPSHOT_MAGIC = b"pallet snapshot 1 " + MAGIC_NUMBER
#: (name, source, mtime_ns, size, code) of each module PalletLoader executed, in the order they
#: finished, when ``install(record=True)`` asked for it
_loaded = []
_record = False
#: (path, entries preloaded, pid) once preload() ran
_snapshot = None


def _snapshot_path(name):
    top = sys.modules["pallet"].__path__[0]
    return top, f"{top}/__pycache__/{name}.{_TAG}.snapshot"


def preload(name):
    """Execute the modules of the snapshot ``name`` (see the module's docstring) when every
    source still matches it; else nothing (and :func:`save_snapshot` writes it afresh). Returns
    the number of modules executed."""
    global _snapshot
    if sys.flags.optimize or sys.pycache_prefix or not _TAG:
        return 0
    top, path = _snapshot_path(name)
    _snapshot = (path, (), os.getpid())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1) if size < 1 << 24 else b""
    finally:
        os.close(fd)
    try:
        magic, entries = marshal.loads(data)
    except Exception:  # empty, truncated, not ours
        return 0
    if magic != _SNAPSHOT_MAGIC or not isinstance(entries, tuple):
        return 0
    prefix = top + "/"
    for entry in entries:  # all or nothing: a stale module could differ in what it imports
        try:
            mod_name, source, mtime_ns, size, code = entry
        except (TypeError, ValueError):
            return 0
        if type(mod_name) is not str or type(source) is not str or not source.startswith(prefix) \
                or not mod_name.startswith("pallet.") or type(code).__name__ != "code":
            return 0
        try:
            st = os.stat(source)
        except (OSError, ValueError):
            return 0
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return 0
    done = 0
    module_type = type(sys)
    for mod_name, source, _mtime, _size, code in entries:
        if mod_name in sys.modules:
            continue
        is_package = source.endswith("/__init__.py")
        parent, _, child = mod_name.rpartition(".")
        spec = ModuleSpec(mod_name, PalletLoader, origin=source, is_package=is_package)
        spec.has_location = True
        directory, _, base = source.rpartition("/")
        spec.cached = f"{directory}/__pycache__/{base[:-3]}.{_TAG}.pyc"
        module = module_type(mod_name)
        module.__spec__ = spec
        module.__loader__ = PalletLoader
        module.__package__ = mod_name if is_package else parent
        if is_package:
            spec.submodule_search_locations = [directory]
            module.__path__ = spec.submodule_search_locations
        module.__file__ = source
        module.__cached__ = spec.cached
        sys.modules[mod_name] = module
        try:
            exec(code, module.__dict__)
        except BaseException:  # as importlib: not left half-made; the command's own import raises it
            del sys.modules[mod_name]
            break
        done += 1
        # as importlib binds a submodule to its package (a package's submodules that finished before it too)
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        if is_package:
            for other, _s, _m, _z, _c in entries:
                if other.rpartition(".")[0] == mod_name and other in sys.modules:
                    setattr(module, other.rpartition(".")[2], sys.modules[other])
    _snapshot = (path, entries, os.getpid())
    return done


def save_snapshot():
    """After a command that called :func:`preload`: write its snapshot when there was none (or
    a stale one), of the modules this process loaded. Errors are ignored (a read-only or
    foreign-owned installation keeps loading module by module)."""
    if _snapshot is None or sys.dont_write_bytecode:
        return
    path, entries, pid = _snapshot
    if entries or not _loaded or pid != os.getpid():  # used; or a forked child (the container's init)
        return
    data = marshal.dumps((_SNAPSHOT_MAGIC, tuple(_loaded)))
    tmp = f"{path}.{pid}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
