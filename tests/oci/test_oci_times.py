"""The time values a user gives (``--filter until=``, ``logs --since/--until``, the API's
``logs(since=, until=)``), read by ``oci.times`` in podman 4.3's two grammars; the accepted and
refused forms checked side by side with podman itself."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import need
from pallet.oci.times import parse_filter_time, parse_log_time

NOW = 2_000_000_000.0
T = 1714557600.0  # 2024-05-01T10:00:00Z


def _local(*fields) -> float:
    """A zone-less time as GetTimestamp reads it: in the zone the reference (NOW) is in."""
    from calendar import timegm

    return timegm(fields + (0,) * (6 - len(fields))) - time.localtime(NOW).tm_gmtoff


@pytest.mark.unit
@pytest.mark.parametrize("value, want", [
    ("24h", NOW - 86400), ("1h30m", NOW - 5400), ("-10m", NOW + 600),
    ("2024-05-01T10:00:00Z", T), ("2024-05-01T12:00:00+02:00", T), ("2024-05-01T08:00:00-02:00", T),
    ("2024-05-01T10:00:00.5Z", T + 0.5), ("2024-05-01T10Z", T), ("2024-05-01T10:00Z", T),
    ("2024-05-01T12+02:00", T), ("2024-05-01Z", T - 36000), ("2024-05-01+02:00", T - 36000 - 7200),
    ("2024-05-01", _local(2024, 5, 1)), ("2024-05-01T10", _local(2024, 5, 1, 10)),
    ("2024-05-01T10:30", _local(2024, 5, 1, 10, 30)), ("2024-05-01T10:00:00", _local(2024, 5, 1, 10)),
    ("2024-05-01T9:00:00Z", T - 3600),  # Go's hour field takes one digit too
    ("1714557600", T), ("1714557600.25", T + 0.25), ("+5", 5.0), ("0", 0.0),
    ("1969-12-31T00:00:00Z", 0.0),  # before 1970: 0, as GetTimestamp
    ("2024-02-29", _local(2024, 2, 29)),
])
def test_filter_times_are_gettimestamps(value, want):
    assert parse_filter_time(value, NOW) == pytest.approx(want)


@pytest.mark.unit
@pytest.mark.parametrize("value", [
    "", "bad", "tomorrow", "2024-13-01", "2023-02-29", "2024-5-01", "2024-05-1", "2024-05-01T25:00",
    "2024-05-01T10:60", "2024-05-01T10:00:60Z", "2024-05-01T10:00:00z", "2024-05-01T", "2024/05/01",
    "2024-05-01T10:00:00+0x:00", "2024-05-01T10:00:00+02", "-5", "1e9", "5.", ".5", "99999999999999999999",
    "\x00", "\u0661\u0662", "1_000",
])
def test_filter_times_refused(value):
    with pytest.raises(ValueError):
        parse_filter_time(value, NOW)


@pytest.mark.unit
@pytest.mark.parametrize("value, since, until", [
    ("10m", NOW - 600, NOW + 600), ("-10m", NOW + 600, NOW - 600), ("0s", NOW, NOW),
    ("2024-05-01T10:00:00Z", T, T), ("2024-05-01T10:00:00.5+00:00", T + 0.5, T + 0.5),
    ("2024-05-01T10:00:00", T, T),  # no zone: UTC (time.Parse), unlike the filters
    ("2024-05-01", T - 36000, T - 36000), ("2024-05-01+02:00", T - 43200, T - 43200),
    ("1714557600.5", T + 0.5, T + 0.5), ("1e9", 1e9, 1e9), ("-5", -5.0, -5.0), ("0", 0.0, 0.0),
])
def test_log_times_are_parseinputtimes(value, since, until):
    assert parse_log_time(value, NOW, True) == pytest.approx(since)
    assert parse_log_time(value, NOW, False) == pytest.approx(until)


@pytest.mark.unit
@pytest.mark.parametrize("value", ["", "bad", "2024-05-01T10", "2024-05-01T10:00", "2024-05-01T10:00:00z",
                                   "inf", "nan", "0x10", "1_0", "2024-02-30"])
def test_log_times_refused(value):
    with pytest.raises(ValueError):
        parse_log_time(value, NOW, True)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["h", "1w", "1hh", "- 1h", "1h-2m", "\u0663h"])
def test_not_durations(text):
    from pallet.oci.times import parse_duration

    assert parse_duration(text) is None


# podman 4.3 itself: which values it takes (``ps --filter until=``: GetTimestamp; ``logs --since``:
# ParseInputTime, refused before the container is looked up)
_FILTER_VALUES = ["24h", "2024-05-01", "2024-05-01T10", "2024-05-01T10:00:00z", "+5", "2024-5-01", "bad",
                  "1714557600.25", "2024-05-01T12+02:00", "-5", "1e9", "2024-02-30"]
_LOG_VALUES = ["10m", "2024-05-01", "2024-05-01T10", "2024-05-01T10:00:00", "1e9", "-5", "+5",
               "2024-05-01T10:00:00z", "bad", "1714557600.5", "2024-05-01+02:00", "-10m"]


def test_podman_takes_and_refuses_the_same_values(tmp_path):
    import shutil
    import tempfile

    runroot = tempfile.mkdtemp(prefix="ptm-")  # podman wants a run root of at most 50 characters
    try:
        _side_by_side([need("podman"), "--root", str(tmp_path / "root"), "--runroot", runroot,
                       "--storage-driver", "vfs"])
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _side_by_side(podman: list) -> None:
    env = dict(os.environ, CONTAINERS_CONF="/dev/null")
    subprocess.run(podman + ["ps", "-a"], env=env, check=True, capture_output=True)  # the store made once
    procs = {}
    for v in _FILTER_VALUES:
        procs[("filter", v)] = subprocess.Popen(podman + ["ps", "-a", "-q", "--filter", f"until={v}"], env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for v in _LOG_VALUES:
        procs[("log", v)] = subprocess.Popen(podman + ["logs", "--since", v, "no-such-ctr"], env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    theirs, ours, errs = {}, {}, {}
    for (kind, v), p in procs.items():
        errs[kind, v] = err = p.communicate(timeout=120)[1]
        if kind == "filter":
            theirs[kind, v] = p.returncode == 0
            parse = parse_filter_time
        else:
            assert p.returncode != 0, err
            theirs[kind, v] = "no such container" in err
            parse = lambda value, now: parse_log_time(value, now, True)  # noqa: E731
        try:
            parse(v, time.time())
            ours[kind, v] = True
        except ValueError:
            ours[kind, v] = False
    assert ours == theirs, {k: errs[k] for k in ours if ours[k] != theirs[k]}
    assert sum(theirs.values()) >= 10 and not all(theirs.values())
