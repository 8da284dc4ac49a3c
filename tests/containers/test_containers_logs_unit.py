"""containers/logs.py's pure parts: k8s-file lines, reading back from the end for ``tail``,
the time window, several logs merged by their times, journalctl's JSON entries, the ``none``
driver refused."""

from __future__ import annotations

import json

import pytest

from pallet.containers import logs as logs_lib
from pallet.errors import ContainerError

pytestmark = pytest.mark.unit


def test_k8s_file_log_parsing_and_tail(tmp_path, monkeypatch):
    data = (b"2024-01-01T00:00:00.1+00:00 stdout F one\n"
            b"2024-01-01T00:00:00.2+00:00 stderr P par\n"
            b"2024-01-01T00:00:00.3+00:00 stderr F tial\n"
            b"garbage\n"
            b"2024-01-01T00:00:00.4+00:00 stdout F \n")
    lines = logs_lib.parse_log(data)
    assert [(fd, text, full) for _, fd, text, full in lines] == \
        [(1, b"one", True), (2, b"par", False), (2, b"tial", True), (1, b"", True)]
    path = tmp_path / "ctr.log"
    path.write_bytes(data + b"2024-01-01T00:00:00.5+00:00 stdout P not yet ended")  # a line being written
    for chunk in (16, 1 << 16):  # blocks smaller than a line too: read back across their edges
        monkeypatch.setattr(logs_lib, "CHUNK", chunk)
        for n, want in ((1, lines[3:]), (2, lines[1:]), (0, []), (10, lines), (3, lines)):
            src = logs_lib.FileLog("x", str(path), b"")
            try:
                src.seek_tail(n)
                assert list(src.lines()) == want, (chunk, n)  # a partial line goes with its end
            finally:
                src.close()


def test_time_window_keeps_the_lines_between_its_bounds():
    keep = logs_lib.window(1704067200.2, 1704067200.4)  # 2024-01-01T00:00:00.2Z .. .4Z
    assert [keep(f"2024-01-01T00:00:00.{d}+00:00") for d in (1, 2, 3, 4, 5)] == [False, True, True, True, False]
    assert keep("not a time")  # shown as written
    assert logs_lib.window(None, None)("anything")
    assert logs_lib.window(None, 1704067200.0)("2024-01-01T01:00:00+01:00")  # the same instant


def test_history_merges_several_logs_by_time_after_each_ones_tail(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"2024-01-01T00:00:01Z stdout F a1\n2024-01-01T00:00:03Z stdout F a3\n"
                  b"2024-01-01T00:00:05Z stdout F a5\n")
    b.write_bytes(b"2024-01-01T00:00:02Z stderr F b2\n2024-01-01T00:00:04Z stderr P b4\n"
                  b"2024-01-01T00:00:04Z stderr F +\n")
    srcs = [logs_lib.FileLog("a", str(a), b"A "), logs_lib.FileLog("b", str(b), b"B ")]
    try:
        got = [(src.prefix, text) for src, (_, _, text, _) in logs_lib.history(srcs)]
        assert got == [(b"A ", b"a1"), (b"B ", b"b2"), (b"A ", b"a3"), (b"B ", b"b4"), (b"B ", b"+"), (b"A ", b"a5")]
    finally:
        for s in srcs:
            s.close()
    srcs = [logs_lib.FileLog("a", str(a)), logs_lib.FileLog("b", str(b))]
    keep = logs_lib.window(None, 1704067204.5)
    try:  # the last line of each first, then the window (podman's order)
        assert [ln[2] for _, ln in logs_lib.history(srcs, 1, keep)] == [b"b4", b"+"]
    finally:
        for s in srcs:
            s.close()
    missing = logs_lib.FileLog("c", str(tmp_path / "none.log"))  # not written yet: empty
    assert list(logs_lib.history([missing], 3)) == [] and not missing.more()


def test_journal_entries_as_lines():
    base = {"__REALTIME_TIMESTAMP": "1704067200000000", "__CURSOR": "s=1"}
    line = logs_lib.journal_line(json.dumps({**base, "PRIORITY": "6", "MESSAGE": "out\n"}).encode())
    assert line[1:] == (1, b"out", True, "s=1")
    assert logs_lib.journal_line(json.dumps({**base, "PRIORITY": "3", "MESSAGE": [255, 10],
                                             "CONTAINER_PARTIAL_MESSAGE": "true"}).encode())[1:4] == (2, b"\xff", False)
    for bad in (b"[1]", b"{", json.dumps({**base, "PRIORITY": "5", "MESSAGE": "x"}).encode(),
                json.dumps({**base, "PRIORITY": "6", "MESSAGE": [300]}).encode(),
                json.dumps({"PRIORITY": "6", "MESSAGE": "x"}).encode()):
        assert logs_lib.journal_line(bad) is None, bad


def test_log_drivers_and_the_none_driver_refused():
    rec = {"id": "c" * 64, "metadata": {"pallet": {"extra": {"log": {"driver": "none"}}}}}
    with pytest.raises(ContainerError, match="'none' log driver"):
        logs_lib.check_readable(rec)
    assert logs_lib.log_driver({}) == "k8s-file"
    assert logs_lib.log_driver({"extra": {"log": {"driver": "journald"}}}) == "journald"
