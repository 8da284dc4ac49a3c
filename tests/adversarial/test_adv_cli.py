"""Hostile --format templates and --filter values through the real command line: each is one
line on stderr and a non-zero exit (never a traceback, a hang, or a listing that ignores the
filter), and nothing of pallet's internals can be reached from a template."""

from __future__ import annotations

import time

import pytest

import images
from conftest import run_pallet


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    work = tmp_path_factory.mktemp("advcli")
    layout = str(work / "layout")
    made = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    images.make_layout(layout, "v1", layers=[{"f": "x"}], config_extra={"created": made})
    root = str(work / "store")

    def pallet(*args, check=False):
        return run_pallet("--root", root, "--storage-driver", "vfs", *args, check=check)
    pallet("pull", "-q", f"oci:{layout}:v1", check=True)
    pallet("tag", "localhost/v1:latest", "localhost/" + "a" * 100 + ":latest", check=True)
    return pallet


def one_line_error(p, code=125):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == "" and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("template", [
    "{{" + "(" * 5000 + ".ID" + ")" * 5000 + "}}",
    "{{if .ID}}" * 5000 + "{{end}}" * 5000,
    "{{range .Names}}" * 2000 + "{{end}}" * 2000,
    "{{.__class__}}", "{{.__dict__}}", "{{._Template__x}}", "{{.ID.__class__.__mro__}}",
    "{{index . \"__class__\"}}", "{{call .ID}}", "{{template \"x\" .}}", "{{define \"x\"}}{{end}}",
    "{{printf \"%999999999999d\" 1}}{{.Nope}}", "{{\"\\xff\\uD800\"}}{{.Nope}}", "{{.ID" + " " * 100000,
    "\x01{{.Nope}}\x7f",
])
def test_hostile_templates(store, template):
    start = time.monotonic()
    one_line_error(store("images", "--format", template))
    assert time.monotonic() - start < 20


def test_internals_stay_out_of_templates(store):
    """Only the row's fields and the listed functions: no attribute of a Python object."""
    for t in ("{{.Names.append}}", "{{.Labels.items}}", "{{.Labels.__class__}}"):
        p = store("images", "--format", t, "localhost/v1")
        assert "class" not in p.stdout and "built-in" not in p.stdout and "method" not in p.stdout, p.stdout
        assert "Traceback" not in p.stderr


@pytest.mark.parametrize("flag", [
    "reference=" + "*a" * 200 + "*b",              # many stars against a 100-character name
    "reference=" + "[" * 1000,
    "reference=" + "\\" * 999,
    "until=" + "9" * 5000,
    "until=" + "1h" * 5000 + "x",
    "label=" + "*" * 5000 + "x",
    "since=" + "../" * 100 + "etc/passwd",
    "before=sha256:" + "0" * 64,
    "id=" + "\x01\n",
])
def test_hostile_filter_values_finish_and_list_nothing_wrong(store, flag):
    start = time.monotonic()
    p = store("images", "-q", "--filter", flag)
    assert time.monotonic() - start < 20
    assert "Traceback" not in p.stderr
    if p.returncode:
        one_line_error(p)
    else:
        assert p.stdout == ""  # none of them matches the image


def test_an_ignored_filter_would_delete_everything(store):
    """The issue: until/readonly/intermediate were accepted and ignored, so ``rmi $(images -q
    --filter ...)`` saw every image, here one created a moment ago. Each now selects as
    podman does (nothing, here) or is refused."""
    for flag in ("until=24h", "readonly=true", "intermediate=true", "manifest=true", "containers=true",
                 "dangling=true", "label=nope", "reference=nope", "since=localhost/v1"):
        p = store("images", "-q", "--filter", flag, check=True)
        assert p.stdout == "", flag
    assert store("images", "-q", "--filter", "until=0s", check=True).stdout.strip()  # it is there


@pytest.mark.parametrize("template", ["{{pad .ID 99999999999 0}}", "{{range 99999999999}}x{{end}}",
                                      '{{printf "%.9999999f" 1.5}}{{.Nope}}'])
def test_templates_that_would_exhaust_memory(store, template):
    start = time.monotonic()
    one_line_error(store("images", "--format", template))
    assert time.monotonic() - start < 20


def test_an_unreadable_creation_time_is_not_old(tmp_path):
    """An image whose config says ``"created": "yesterday"`` was listed by until=24h (read as
    1970): ``rmi $(images -q --filter until=24h)`` would offer it for removal. It now matches no
    time filter, and its CreatedAt is empty rather than 1970."""
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "y"}], config_extra={"created": "yesterday"})
    root = str(tmp_path / "store")

    def pallet(*args):
        return run_pallet("--root", root, "--storage-driver", "vfs", *args)
    pallet("pull", "-q", f"oci:{layout}:v1")
    for flag in ("until=24h", "until=2999-01-01", "before=localhost/v1", "since=1970-01-01"):
        p = run_pallet("--root", root, "--storage-driver", "vfs", "images", "-q", "--filter", flag, check=False)
        assert p.stdout == "" and "Traceback" not in p.stderr, flag
    assert pallet("images", "--format", "[{{.CreatedAt}}]").stdout == "[]\n"
