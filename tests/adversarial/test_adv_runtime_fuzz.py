"""Fuzz of pallet-runtime's config.json parsing and validation through the real command.

A fixed seed mutates the default busybox config (values replaced by hostile ones, keys
dropped or added, NUL bytes, deep nesting, bad UTF-8) and runs each with ``run``, for a
bounded time. Whatever the outcome: no traceback nor "internal error", at most one line
on stderr when it fails, and nothing left behind (state, mounts below the bundle, cgroups).
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import time

import pytest

from test_runtime_helpers import PALLET_RUNTIME, load_config, make_bundle, mounts_under

pytestmark = pytest.mark.usefixtures("root_required")

SEED = 20261207
BUDGET = 10.0  # seconds of mutated runs, after the first MIN_CASES
MIN_CASES = 50  # run whatever the machine's load: the count, not the clock, bounds the check

HOSTILE = ["", "a\x00b", "\x00", "../../../../x", "/nonexistent/x", "/proc/sys", "/proc/sys/kernel",
           "ro", "rbind", "proc", "tmpfs", "\u202e\U0001f4a5", "x" * 5000, "=", "PATH", "CAP_NOPE",
           -1, 0, 1, 2 ** 31, 2 ** 64, -(2 ** 63) - 1, 1.5, float("1e308"), True, False, None, [], {},
           [None], ["a\x00"], {"a\x00": 1}, {"": ""}]


def _nodes(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, path + (i,))


def _parent(obj, path):
    for p in path[:-1]:
        obj = obj[p]
    return obj


def _mutate(cfg, rng):
    cfg = copy.deepcopy(cfg)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _nodes(cfg) if p]
        path = rng.choice(paths)
        parent, key = _parent(cfg, path), path[-1]
        op = rng.random()
        if op < 0.6:
            parent[key] = copy.deepcopy(rng.choice(HOSTILE))
        elif op < 0.8:
            del parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(["unknown", "\x00k", "annotations", "hooks", "vm"])] = copy.deepcopy(rng.choice(HOSTILE))
        else:
            parent.append(copy.deepcopy(rng.choice(HOSTILE)))
    return cfg


def _cgroup_dirs():
    out = set()
    for h in ("pids", "memory", "unified"):
        base = f"/sys/fs/cgroup/{h}"
        for d, subdirs, _ in os.walk(base):
            out.add(d)
    return out


def _raw_cases(cfg):
    text = json.dumps(cfg)
    yield b"[" * 50000 + b"]" * 50000
    yield b'{"a":' * 100000
    yield text.encode()[: len(text) // 2]
    yield text.encode().replace(b'"sh"', b'"\xff\xfe"')
    yield b"\xef\xbb\xbf" + text.encode()
    yield json.dumps({**cfg, "process": {**cfg["process"], "args": ["true", "\x00"]}}).encode()
    yield json.dumps(json.loads("[" * 30 + "1" + "]" * 30)).encode()
    # found by the seeded mutations past the minimum count (a time-bound run reached it)
    yield json.dumps({**cfg, "linux": {**cfg["linux"], "namespaces": 5}}).encode()
    yield json.dumps({**cfg, "linux": 5}).encode()


def test_mutated_configs_never_crash_nor_leak(tmp_path):
    bundle = make_bundle(str(tmp_path / "b"), ["true"])
    base = load_config(bundle)
    state = str(tmp_path / "state")
    cgroups_before = _cgroup_dirs()
    rng = random.Random(SEED)
    cases = list(_raw_cases(base))
    outcomes = {}
    deadline = time.monotonic() + BUDGET
    n = 0
    while n < MIN_CASES or time.monotonic() < deadline:
        raw = cases.pop(0) if cases else json.dumps(_mutate(base, rng)).encode()
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(raw)
        cid = f"fuzz{n}"
        n += 1
        try:
            r = subprocess.run([PALLET_RUNTIME, "--root", state, "run", "--bundle", bundle, cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"case {n - 1} hung: {raw[:300]!r}")
        outcomes[r.returncode] = outcomes.get(r.returncode, 0) + 1
        what = f"case {n - 1} ({raw[:300]!r}): {r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, what
        if r.returncode != 0:
            assert len(r.stderr.strip().splitlines()) == 1, what
        assert not os.path.isdir(state) or os.listdir(state) == [], what
        assert mounts_under(bundle) == [], what
    print(f"{n} cases: exit codes {outcomes}")
    assert outcomes.get(0, 0) > 0 and sum(v for k, v in outcomes.items() if k) > 0, outcomes
    leaked = {d for d in _cgroup_dirs() - cgroups_before if "fuzz" in d}
    assert not leaked, sorted(leaked)
