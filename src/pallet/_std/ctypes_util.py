"""``ctypes.util`` without ldconfig, for the libraries that look themselves up through it.

pyseccomp calls ``ctypes.util.find_library("seccomp")`` (and ``"c"``) when it is imported;
the real one runs ``ldconfig -p`` (and gcc/ld as fallbacks): ~20 ms of every container start
with a seccomp profile. :func:`find_library` answers with the sonames the distribution
packages install, which is what the real one returns on glibc Linux (a soname, not a path:
``dlopen`` searches the library path). :func:`import_with` imports a module while this stands
in for ``ctypes.util``, then puts back what was there.
"""

import sys

#: library name -> soname (libc6, libseccomp2)
SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def find_library(name):
    """``ctypes.util.find_library`` for the names in :data:`SONAMES` (None for any other)."""
    return SONAMES.get(name)


def import_with(module: str):
    """Import ``module`` with this module standing in for ``ctypes.util`` (unless the real one
    is loaded already, which then serves); ImportError and OSError propagate as from ``import``."""
    if module in sys.modules:
        return sys.modules[module]
    import ctypes
    import importlib

    faked = "ctypes.util" not in sys.modules
    if faked:
        sys.modules["ctypes.util"] = sys.modules[__name__]
        ctypes.util = sys.modules[__name__]
    try:
        return importlib.import_module(module)
    finally:
        if faked:
            del sys.modules["ctypes.util"]
            del ctypes.util
