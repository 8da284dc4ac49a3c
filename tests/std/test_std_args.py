"""``pallet._std.args`` (the argv parser every command starts with) against ``argparse``, whose
interface it implements without importing ``argparse`` (which brings ``re`` and ``gettext``)."""

from __future__ import annotations

import argparse

import pytest

from pallet._std import args as _args

pytestmark = pytest.mark.unit


# -- the argument parser -------------------------------------------------------------------

def boolean(v):
    if v not in ("true", "false"):
        raise ValueError(v)
    return v == "true"


def _parser(mod=_args):
    p = mod.ArgumentParser(prog="t")
    p.add_argument("--flag", "-f", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--name", "-n", metavar="NAME")
    p.add_argument("--tag", "-t", action="append", default=[])
    p.add_argument("--tls-verify", type=boolean, nargs="?", const=True)
    p.add_argument("--format", choices=("oci", "docker"))
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--mode", action="store_const", const="x", dest="mode")
    p.add_argument("src")
    p.add_argument("rest", nargs="*")
    return p


class _Exit(Exception):
    pass


def _parse(p, argv):
    def error(message):
        raise _Exit(message)
    p.error = error
    ns, extra = p.parse_known_args(argv)
    return ns, extra


def test_parser_option_forms():
    ns, extra = _parse(_parser(), ["-fq", "--name=a", "-n", "b", "-tx", "--tag", "y", "s", "r1", "--count", "7",
                                   "r2", "--", "-r3", "--name"])
    assert (ns.flag, ns.quiet, ns.name, ns.tag, ns.count) == (True, True, "b", ["x", "y"], 7)
    assert (ns.src, ns.rest, extra) == ("s", ["r1", "r2", "-r3", "--name"], [])
    ns, _ = _parse(_parser(), ["--tls-verify", "false", "img"])  # a valid value is taken
    assert (ns.tls_verify, ns.src) == (False, "img")
    ns, _ = _parse(_parser(), ["--tls-verify", "docker://img"])  # anything else stays an argument
    assert (ns.tls_verify, ns.src) == (True, "docker://img")
    ns, _ = _parse(_parser(), ["--tls", "s"])  # a unique prefix, as argparse allows
    assert ns.tls_verify is True
    ns, extra = _parse(_parser(), ["--bogus", "s", "-1"])
    assert extra == ["--bogus"] and ns.rest == ["-1"]
    ns, _ = _parse(_parser(), ["--mode", "-"])
    assert (ns.mode, ns.src, ns.count, ns.tag) == ("x", "-", 3, [])


@pytest.mark.parametrize("argv,message", [
    ([], "the following arguments are required: src"),
    (["--format", "v3", "s"], "argument --format: invalid choice: 'v3' (choose from 'oci', 'docker')"),
    (["--count", "x", "s"], "argument --count: invalid int value: 'x'"),
    (["--name"], "argument --name/-n: expected one argument"),
    (["--flag=1", "s"], "argument --flag/-f: ignored explicit argument '1'"),
    (["--tls-verify=maybe", "s"], "argument --tls-verify: invalid boolean value: 'maybe'"),
])
def test_parser_errors_say_what_argparse_says(argv, message):
    with pytest.raises(_Exit) as e:
        _parse(_parser(), argv)
    assert str(e.value) == message


def test_parser_subcommands_and_help(capsys):
    p = _args.ArgumentParser(prog="top", description="the top")
    p.add_argument("--debug", action="store_true", help="say more")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    a = sub.add_parser("alpha", help="the first", aliases=["a"])
    a.add_argument("x")
    a.add_argument("--opt", default="d")
    a.set_defaults(func="alpha")
    ns, extra = p.parse_known_args(["--debug", "a", "X", "--opt", "o", "--debug"])
    assert (ns.debug, ns.verb, ns.x, ns.opt, ns.func, extra) == (True, "a", "X", "o", "alpha", ["--debug"])
    ns, _ = p.parse_known_args([])
    assert ns.verb is None and ns.debug is False
    with pytest.raises(SystemExit) as e:
        p.parse_known_args(["nope"])
    assert e.value.code == 2 and "invalid choice: 'nope' (choose from 'alpha', 'a')" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        p.parse_known_args(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: top [-h] [--debug] COMMAND ...")
    assert "the top" in out and "alpha, a" in out and "the first" in out and "--debug" in out



def _outcome(mod, argv):
    try:
        ns, extra = _parse(_parser(mod), argv)
    except _Exit as e:
        return "error", str(e)
    return vars(ns), extra


@pytest.mark.parametrize("argv", [
    ["-fq", "--name=a", "-n", "b", "-tx", "--tag", "y", "s", "r1", "--count", "7"],
    ["--tls-verify", "false", "img"], ["--tls-verify=true", "img"], ["--tls", "false", "s"], ["--bogus", "s", "-1"],
    ["--mode", "-"], ["s", "--count=0x1"], ["-n", "--", "s"], ["-nfoo", "s"], ["--format", "oci", "s", "t"],
    ["--", "--flag"], ["-q", "-f", "s", "-t", "a", "-t", "b"], ["--fl", "s"], ["--count", "-3", "s"],
    ["--format", "v3", "s"], ["--count", "x", "s"], ["--name"], ["--flag=1", "s"], ["--tls-verify=maybe", "s"],
    ["--t", "x", "s"],
])
def test_parser_agrees_with_argparse(argv):
    """The same parser built with argparse and with the stand-in: the same namespace and
    leftovers, or the same error message. Three differences on purpose (test_parser_option_forms
    and the error cases above hold the stand-in's side): ``--tls-verify IMAGE`` keeps IMAGE as an
    argument where argparse fails on it as a boolean; positionals go on after options
    (``s r1 --count 7 r2``: podman's and skopeo's cobra intersperses them, 3.11's
    parse_known_args stops the ``*`` list at the option); with no arguments at all only
    ``src`` is named as required (3.11's argparse names the optional ``rest`` too)."""
    assert _outcome(_args, argv) == _outcome(argparse, argv)
