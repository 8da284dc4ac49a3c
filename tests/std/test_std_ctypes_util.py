"""``pallet._std.ctypes_util`` against ``ctypes.util``: the stand-in (which skips ldconfig)
finds the libraries pyseccomp asks for as the real one does, and stands in only while the
import it serves runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["seccomp", "c"])
def test_find_library_is_ctypes_utils(name):
    import ctypes.util

    from pallet._std import ctypes_util

    real = ctypes.util.find_library(name)
    assert real, f"ctypes.util finds no lib{name} on this machine (libseccomp2 and libc6 are installed here)"
    assert ctypes_util.find_library(name) == real
    assert ctypes_util.find_library("no-such-library-here") is None is ctypes.util.find_library("no-such-library-here")


def test_pyseccomp_loads_through_the_stand_in_and_it_goes_away():
    """In a fresh interpreter (ctypes.util not loaded yet): pyseccomp imports with the stand-in
    in place, loads the same libseccomp as dlopen of the real find_library's answer, and
    afterwards neither sys.modules nor ctypes holds the stand-in (a later real import works)."""
    code = r'''
import sys
from pallet._std.ctypes_util import import_with
assert "ctypes.util" not in sys.modules
lib = import_with("pyseccomp")
import ctypes
assert "ctypes.util" not in sys.modules and not hasattr(ctypes, "util")
assert import_with("pyseccomp") is lib
import ctypes.util
print(ctypes.util.find_library("seccomp"), lib.__name__, getattr(lib, "_libseccomp", None) is not None or hasattr(lib, "SyscallFilter"))
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    soname, mod, usable = out.stdout.split()
    from pallet._std import ctypes_util

    assert (soname, mod, usable) == (ctypes_util.find_library("seccomp"), "pyseccomp", "True")
