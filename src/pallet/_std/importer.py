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
"""

import marshal
import os
import sys

from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER

_TAG = sys.implementation.cache_tag


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
            data = os.read(fd, 1 << 24)
            if len(data) == 1 << 24:  # not read whole: importlib's business
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
        spec.loader_state = data
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
        data, spec.loader_state = spec.loader_state, None
        exec(marshal.loads(memoryview(data)[16:]), module.__dict__)

    @staticmethod
    def get_source(name):  # tracebacks read the source by its file name (linecache)
        return None


def install():
    """Put the finder first in ``sys.meta_path`` (once)."""
    if PalletFinder not in sys.meta_path:
        sys.meta_path.insert(0, PalletFinder)
