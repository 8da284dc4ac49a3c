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


def test_rootless_reads_the_uid_map():
    """The kernel's own uid_map: this process's (the host's namespace, or the user's when the
    suite runs unprivileged in one) and that of a new user namespace whose root is this user."""
    import shutil
    import subprocess
    import sys

    with open("/proc/self/uid_map") as f:
        first = f.readline().split()
    assert cgroups.rootless() is (first[:2] != ["0", "0"])
    probe = [sys.executable, "-c", "from pallet.runtime import cgroups; print(cgroups.rootless())"]
    r = subprocess.run([shutil.which("unshare") or "/usr/bin/unshare", "--user", "--map-user", "12345", *probe],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:  # no unprivileged user namespaces on this kernel: unshare says so
        assert "unshare" in r.stderr, r.stderr
        return
    assert r.stdout == "True\n"  # 12345 inside is not the host's root: rootless
    import os

    r = subprocess.run([shutil.which("unshare") or "/usr/bin/unshare", "--user", "--map-root-user", *probe],
                       capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout == f"{os.getuid() != 0}\n"  # root inside is the host's root only when we are
