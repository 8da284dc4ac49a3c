"""The pure rules behind --filter (cli/_filters.py): Go's path.Match for ``reference=``, Go's
durations and containers/common's timestamps for ``until=``, podman's reference candidates,
label matching and buildah's container filter. No store: the verbs are in test_cli_filters.py."""

from __future__ import annotations

import time

import pytest

from pallet.cli import _filters as f
from pallet.errors import UsageError

pytestmark = pytest.mark.unit

# Go's own path.Match test table (src/path/match_test.go): pattern, name, matched (a bad
# pattern matches nothing)
GO_MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a\u263ab", True), ("a[^a]b", "a\u263ab", True), ("a???b", "a\u263ab", False),
    ("a[^a][^a][^a]b", "a\u263ab", False), ("[a-\u03b6]*", "\u03b1", True), ("*[a-\u03b6]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True),
    ("[x\\-]", "x", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True),
    ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("[]a]", "]", False), ("[-]", "-", False),
    ("[x-]", "x", False), ("[x-]", "-", False), ("[x-]", "z", False), ("[-x]", "x", False), ("[-x]", "-", False),
    ("[-x]", "a", False), ("\\", "a", False), ("[a-b-c]", "a", False), ("[", "a", False), ("[^", "a", False),
    ("[^bc", "a", False), ("a[", "a", False), ("a[", "ab", False), ("a[", "x", False), ("a/b[", "x", False),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize("pattern, name, want", GO_MATCH)
def test_path_match_is_gos(pattern, name, want):
    assert f.path_match(pattern, name) is want


def test_path_match_time_does_not_explode():
    """A pattern of many stars against a long name: Go's chunk-by-chunk matching is linear, a
    backtracking glob is exponential (this would not finish)."""
    start = time.monotonic()
    assert not f.path_match("*a" * 40 + "*b", "a" * 200)
    assert not f.path_match("*" + "?" * 100 + "*x", "y" * 255)
    assert time.monotonic() - start < 2


def test_reference_candidates_are_podmans():
    assert f.reference_candidates("127.0.0.1:5000/filters/old:1") == [
        "127.0.0.1:5000/filters/old:1", "filters/old", "old:1", "127.0.0.1:5000/filters/old", "filters/old:1", "old"]
    assert f.reference_candidates("localhost/extra:latest")[:3] == ["localhost/extra:latest", "extra", "extra:latest"]
    assert f.reference_candidates("docker.io/library/alpine@sha256:ab")[1] == "library/alpine"
    assert "alpine@sha256:ab" in f.reference_candidates("docker.io/library/alpine@sha256:ab")


def test_until_values():
    now = 2_000_000_000.0
    assert f.parse_until("24h", now) == now - 86400
    assert f.parse_until("2024-05-01T10:00:00Z", now) == 1714557600
    assert f.parse_until("2024-05-01T12:00:00+02:00", now) == 1714557600
    assert f.parse_until("2024-05-01T10:00:00.5Z", now) == 1714557600.5
    assert f.parse_until("1714557600", now) == 1714557600
    assert f.parse_until("1714557600.25", now) == 1714557600.25
    local = f.parse_until("2024-05-01", now)  # local midnight, as podman
    assert local == time.mktime((2024, 5, 1, 0, 0, 0, 0, 0, -1))
    assert f.parse_until("2024-05-01T10", now) == f.parse_until("2024-05-01T10:00:00", now)
    for bad in ("tomorrow", "2024-13-01", "2024-05-01T25:00", "99999999999999999999", "1e9", "2024/05/01", "",
                "2024-05-01T10:00:00+0x:00", "-5", "\x00"):
        with pytest.raises(UsageError, match="invalid filter until="):
            f.parse_until(bad, now)


def test_labels():
    labels = {"tier": "base", "org.example.test": "yes"}
    assert f.match_labels("tier", labels) and f.match_labels("tier=base", labels)
    assert not f.match_labels("tier=app", labels) and not f.match_labels("nope", labels)
    assert f.match_labels("org.*", labels) and f.match_labels("*.test=yes", labels)
    assert not f.match_labels("tier", {}) and not f.match_labels("tier", None)


def test_split_refuses_unknown_keys_and_reads_negation():
    assert f.split("label!=a=b", f.IMAGE_KEYS, "images") == ("label", True, "a=b")
    assert f.split("reference=x=y", f.IMAGE_KEYS, "images") == ("reference", False, "x=y")
    for bad, msg in (("status=up", "unsupported filter 'status' for images"), ("label", "invalid filter 'label'"),
                     ("=x", "unsupported filter ''")):
        with pytest.raises(UsageError, match=msg):
            f.split(bad, f.IMAGE_KEYS, "images")
    with pytest.raises(UsageError, match="unsupported filter 'reference' for image prune"):
        f.split("reference=x", f.PRUNE_KEYS, "image prune")


def test_bools_are_gos_parsebool():
    for t in ("1", "t", "T", "TRUE", "true", "True"):
        assert f.parse_bool("dangling", t) is True
    for v in ("0", "f", "F", "FALSE", "false", "False"):
        assert f.parse_bool("dangling", v) is False
    for bad in ("yes", "no", "tRuE", "", "2"):
        with pytest.raises(UsageError, match="want true or false"):
            f.parse_bool("dangling", bad)


def test_builder_filter_is_buildahs():
    ok = f.builder_filter(["name=pha,ancestor=reg.example/app:1"])
    assert ok("abc", "alpha", "img", "reg.example/app:1")
    assert not ok("abc", "beta", "img", "reg.example/app:1")
    assert not ok("abc", "alpha", "img", "reg.example/app:2")
    assert f.builder_filter(["ancestor=app"])("c", "n", "img", "localhost:5000/app:latest")
    assert f.builder_filter(["ancestor=0123"])("c", "n", "0123abcd", "x:1")
    assert f.builder_filter(["id=ab"])("abcdef", "n", "", "") and not f.builder_filter(["id=b"])("abcdef", "n", "", "")
    assert f.builder_filter(["name=a", "name=b"])("c", "bee", "", "")  # the later value wins, as buildah's flag
    for bad in ("status=up", "label=x", "name"):
        with pytest.raises(UsageError):
            f.builder_filter([bad])
