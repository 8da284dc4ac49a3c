"""What keeps ``pallet`` quick to start, checked for behaviour (never timed here: bench/):
the hand-written parts that replace ``re`` behave as it does, and the commands that must
start fast do not import the heavy modules. (The stand-ins for ``json``, ``argparse``,
``http.client``/``ssl``, ``ctypes`` have their differential tests in tests/std/test_std_*.py.)"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest

from conftest import run_pallet
from pallet.oci import reference


# -- references without re -----------------------------------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # distribution's \w is ASCII


def test_reference_grammar_is_distributions():
    """The hand-written checks accept exactly what distribution/reference's expressions do."""
    rng = random.Random(3)
    alphabet = "ab0Z.-_/:[]9\u00e9\n "
    for length in range(9):
        for _ in range(3000):
            w = "".join(rng.choice(alphabet) for _ in range(length))
            assert bool(_PATH.fullmatch(w)) == reference.valid_path(w), ("path", w)
            assert bool(_DOMAIN.fullmatch(w)) == reference.valid_domain(w), ("domain", w)
            assert bool(_TAG.fullmatch(w)) == reference.valid_tag(w), ("tag", w)
    assert reference.valid_tag("a" * 128) and not reference.valid_tag("a" * 129)
    assert not reference.valid_tag("v1\n") and not reference.valid_tag("\u00e9t\u00e9")
    assert reference.valid_domain("[::1]:5000") and reference.valid_domain("127.0.0.1:5077")
    assert reference.valid_path("a__b/c-----d") and not reference.valid_path("a___b")


def test_layout_ref_names_are_the_image_specs():
    from pallet.transports.oci_layout import split_details, valid_ref_name

    spec = re.compile(r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*")
    rng = random.Random(5)
    for length in range(9):
        for _ in range(3000):
            w = "".join(rng.choice("aZ0-._:@+/ \u00e9") for _ in range(length))
            assert bool(spec.fullmatch(w)) == valid_ref_name(w), w
    assert split_details("/x:@12", "oci") == ("/x", "", 12)
    assert split_details("/x:v1.0--rc+1", "oci") == ("/x", "v1.0--rc+1", None)


def test_registry_table_sniffing_matches_its_pattern():
    from pallet.transports.registries_conf import _has_registry_tables

    pattern = re.compile(rb"(?m)^[ \t]*(\[\[[ \t]*registry[ \t]*[\].]|registry[ \t]*=|\[[ \t]*registries[ \t]*[\].])")
    rng = random.Random(1)
    toks = [b"[", b"[[", b"]", b".", b" ", b"\t", b"registry", b"registries", b"=", b"\n", b"\r\n", b"x", b"#"]
    for _ in range(30000):
        d = b"".join(rng.choice(toks) for _ in range(rng.randint(0, 8)))
        assert (pattern.search(d) is not None) == _has_registry_tables(d), d


def test_cli_usage_errors_are_one_line_with_the_verbs_exit_code():
    p = run_pallet("inspect", "--tls-verify=maybe", "oci:/x:y", check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: argument --tls-verify: invalid boolean 'maybe'")
    p = run_pallet("images", "--format", check=False)  # podman's verbs: 125
    assert p.returncode == 125 and "expected one argument" in p.stderr
    p = run_pallet("nosuchverb", check=False)
    assert p.returncode == 1 and "invalid choice: 'nosuchverb'" in p.stderr
    p = run_pallet("copy", "--help")
    assert p.stdout.startswith("usage: pallet copy") and "--dest-tls-verify" in p.stdout


# -- what a quick command imports ----------------------------------------------------------

HEAVY = ("argparse", "json", "re", "enum", "socket", "threading", "gettext", "locale", "http.client", "ssl")

PROBE = r'''
import contextlib, io, sys
sys.argv = ["pallet"] + sys.argv[1:]
from pallet.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main()
print(rc, " ".join(m for m in HEAVY if m in sys.modules))
print(" ".join(sorted(m for m in sys.modules if m.startswith("pallet"))))
'''

#: pallet modules a remote ``inspect`` may load (33 in December 2026, against the 32 of 816ef1d,
#: issue 15's "before"): each costs ~0.1 ms from bytecode; raise it only with a bench figure.
#: 35 with ``_std.importer``, which loads the others in half importlib's instructions (a remote
#: inspect: 61.7M instructions before it, 56.4M after with no GC, 816ef1d 59.2M; bench/RESULTS.md, perf15c)
INSPECT_MODULE_BUDGET = 35


@pytest.mark.unit
def test_verb_areas_table_is_each_areas_verbs():
    """``pallet VERB`` imports only the area named for it in VERB_AREAS: the table must say
    exactly what each area's VERBS say (a verb left out still works, importing them all)."""
    import importlib

    from pallet.cli import main

    owners = {}
    for area in main.AREAS:
        for verb in importlib.import_module(f"pallet.cli.{area}").VERBS:
            owners.setdefault(verb, area)
    assert main.VERB_AREAS == owners


@pytest.mark.unit
def test_a_verb_missing_from_the_table_still_parses(monkeypatch):
    from pallet.cli import main

    monkeypatch.setitem(main.VERB_AREAS, "images", "transport")  # a table that is behind the areas
    args, _ = main.build_parser("images").parse_known_args(["images", "-q"])
    assert args.verb == "images" and args.func


def test_inspect_imports_none_of_the_heavy_modules(src_layout, make_registry):
    """``inspect`` (a layout, and a plain-HTTP registry) starts without argparse, json, re,
    enum, socket, threading: each costs milliseconds on every command."""
    reg = make_registry()
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{src_layout}:latest",
                    f"docker://{reg.host}/quick/img:1"], check=True, capture_output=True)
    probe = f"HEAVY = {HEAVY!r}\n" + PROBE
    env = dict(os.environ, CONTAINERS_REGISTRIES_CONF="/etc/containers/registries.conf")
    for ref in (f"oci:{src_layout}:latest", f"docker://{reg.host}/quick/img:1"):
        out = subprocess.run([sys.executable, "-c", probe, "inspect", "--tls-verify=false", "--no-tags", ref],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        first, mods = out.stdout.strip().split("\n")
        rc, _, loaded = first.partition(" ")
        assert rc == "0" and loaded == "", f"{ref}: imported {loaded}"
        mods = mods.split()
        # only the transport area of the command line, and a bounded number of modules
        assert [m for m in mods if m.startswith("pallet.cli.")] == ["pallet.cli.common", "pallet.cli.main",
                                                                    "pallet.cli.transport"], mods
        assert len(mods) <= INSPECT_MODULE_BUDGET, f"{ref}: {len(mods)} pallet modules: {mods}"


def test_quick_verbs_run_without_the_collector_and_every_command_through_the_lean_finder(tmp_path):
    """The console script's ``main()`` loads pallet's modules through ``_std.importer`` (every
    verb), and runs the short-lived verbs (``NO_GC_VERBS``) without the cyclic collector; a
    long one (``pull``) keeps it, and so does a caller of ``main(argv)`` from Python."""
    src = os.path.dirname(__import__("pallet").__file__)
    subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True, timeout=120)  # as installed
    code = r'''
import contextlib, gc, io, sys
from pallet.cli import main
from pallet._std.importer import PalletLoader
argv = sys.argv[1:]
if argv[0] == "library":
    with contextlib.redirect_stdout(io.StringIO()):
        main.main(argv[1:])
else:
    sys.argv = ["pallet"] + argv
    with contextlib.redirect_stdout(io.StringIO()):
        main.main()
print(gc.isenabled(), sys.modules["pallet.errors"].__loader__ is PalletLoader)
'''
    root = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
    for argv, want in (([*root, "images"], "False True"), ([*root, "pull", "-q", "oci:/nonexistent:x"], "True True"),
                       (["library", *root, "images"], "True True")):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
        assert out.stdout.split("\n")[-2] == want, (argv, out.stdout, out.stderr)


def test_runtime_modules_import_none_of_the_heavy_modules():
    """What ``pallet-runtime run`` loads before the container starts: no json, re, argparse,
    enum, socket or threading (the runtime starts no thread at all)."""
    code = ("import sys\n"
            "import pallet.cli.runtime, pallet.runtime.container, pallet.runtime.init, pallet.runtime.spec\n"
            "import pallet.runtime.cgroups.fs1, pallet.runtime.cgroups.fs2, pallet.runtime.cgroups.hybrid\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


IMAGES_HEAVY = ("argparse", "json", "re", "enum", "dataclasses", "typing", "pallet.api")


@pytest.mark.parametrize("opts", [(), ("--format", "json"), ("-q",), ("--filter", "until=24h"),
                                  ("--filter", "dangling=false", "--no-trunc")])
def test_images_imports_none_of_the_heavy_modules(src_layout, tmp_path, opts):
    """``images`` on a store holding an image: no argparse, json, re, enum, and not the API's
    dataclasses/typing (the images JSON is defined in storage/info.py, the RFC 3339 times
    are read by hand). ``threading`` comes with the store's locks (storage/lock.py)."""
    root = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
    run_pallet(*root, "pull", "-q", f"oci:{src_layout}:latest")
    probe = f"HEAVY = {IMAGES_HEAVY!r}\n" + PROBE
    out = subprocess.run([sys.executable, "-c", probe, *root, "images", *opts],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rc, _, loaded = out.stdout.strip().split("\n")[0].partition(" ")
    assert rc == "0" and loaded == "", f"images {' '.join(opts)}: imported {loaded}"


def test_version_names_the_peers_it_stands_in_for():
    # skopeo's/buildah's own suites check "skopeo version N" / "buildah version N"
    out = run_pallet("--version").stdout
    assert out.startswith("pallet version ") and out.count("\n") == 1
    for peer in ("skopeo", "buildah", "podman"):
        assert re.search(rf"\b{peer} version [0-9.]+", out), out
