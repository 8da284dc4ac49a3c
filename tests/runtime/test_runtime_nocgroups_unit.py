"""A rootless runtime on cgroup v1 (runc's --rootless rule): no cgroup made, limits refused
naming the field, state round trip (the real thing: tests/containers/test_rootless.py)."""

from __future__ import annotations

import pytest

from pallet.errors import OCIRuntimeError
from pallet.runtime import cgroups
from pallet.runtime.cgroups.nocgroups import NoCgroups

pytestmark = pytest.mark.unit


def test_no_cgroups_refuses_limits_and_keeps_device_rules():
    m = NoCgroups()
    m.check({"devices": [{"allow": False, "access": "rwm"}]})
    m.check({"memory": {}, "pids": None})
    for res, field in (({"memory": {"limit": 1 << 20}}, "memory"), ({"pids": {"limit": 10}}, "pids"),
                       ({"cpu": {"quota": 1000}}, "cpu")):
        with pytest.raises(OCIRuntimeError, match=f"linux.resources.{field}: cannot set limits: a rootless"):
            m.check(res)
    made = []
    m.apply(None, None, lambda: made.append(1))
    assert made == [1] and m.pids() == [] and not m.frozen()
    with pytest.raises(OCIRuntimeError, match="cannot freeze"):
        m.freeze()
    assert isinstance(cgroups.from_state(m.to_state()), NoCgroups)


def test_manager_is_no_cgroups_only_rootless_on_v1(monkeypatch):
    class Lay:
        mode = "hybrid"
        v1 = {}
        v2 = None

    monkeypatch.setattr(cgroups, "layout", lambda: Lay)
    monkeypatch.setattr(cgroups, "rootless", lambda: True)
    assert isinstance(cgroups.manager({}, "c1"), NoCgroups)
    Lay.mode = "unified"
    Lay.v2 = ("/sys/fs/cgroup", "/")
    monkeypatch.setattr(cgroups, "own_cgroups", lambda: {"": "/"})
    assert not isinstance(cgroups.manager({}, "c1"), NoCgroups)  # v2: delegation decides, not pallet
    Lay.mode = "hybrid"
    monkeypatch.setattr(cgroups, "rootless", lambda: False)
    monkeypatch.setattr(cgroups, "own_cgroups", lambda: {})
    assert not isinstance(cgroups.manager({}, "c1"), NoCgroups)


def test_rootless_reads_the_uid_map(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for text, want in (("         0          0 4294967295\n", False), ("         0       1001          1\n", True),
                       ("         0     100000      65536\n", True)):
        f = tmp_path / "uid_map"
        f.write_text(text)
        monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(f if p == "/proc/self/uid_map" else p,
                                                                          *a, **k))
        assert cgroups.rootless() is want
