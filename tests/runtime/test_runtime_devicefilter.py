"""The cgroup v2 device filter (eBPF) on the real kernel.

This host is hybrid (the devices controller is v1's), but a BPF_CGROUP_DEVICE program is
run for the task's cgroup in the unified hierarchy whatever the v1 controllers say, so the
v2 path is tested for real on a child of /sys/fs/cgroup/unified: the filter is generated,
loaded and attached, a process is moved in, and opening device nodes is allowed or
refused (EPERM) by the program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pallet.errors import OCIRuntimeError
from pallet.runtime.cgroups import devices, ebpf
from pallet.runtime.cgroups.fs2 import Manager2

UNIFIED = "/sys/fs/cgroup/unified"

PROBE = r"""
import errno, os, sys
out = []
for spec in sys.argv[1:]:
    path, mode = spec.split(":")
    if mode == "m":
        tgt = path + ".new"
        try:
            st = os.stat(path)
            os.mknod(tgt, st.st_mode, st.st_rdev)
            os.unlink(tgt)
            out.append("ok")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
        continue
    try:
        os.close(os.open(path, os.O_RDONLY if mode == "r" else os.O_WRONLY))
        out.append("ok")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(" ".join(out))
"""


@pytest.fixture
def nodes(tmp_path):
    """Device nodes of our own: a disk (b 8:0), fuse (c 10:229), and null (c 1:3)."""
    made = {}
    for name, kind, major, minor in (("sda", 0o060000, 8, 0), ("fuse", 0o020000, 10, 229),
                                     ("null", 0o020000, 1, 3)):
        p = str(tmp_path / name)
        os.mknod(p, kind | 0o666, os.makedev(major, minor))
        made[name] = p
    return made


@pytest.fixture
def cgroup():
    path = f"{UNIFIED}/pallet-devfilter-test/c"
    m = Manager2(path, hybrid=False)
    yield m
    # whatever a failed test left in it is killed first, so the removal cannot fail on it
    deadline = time.monotonic() + 10
    while os.path.isdir(path):
        try:
            for pid in m.pids():
                os.kill(pid, 9)
            m.remove()
        except (OSError, OCIRuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    assert not os.path.exists(f"{UNIFIED}/pallet-devfilter-test")


def probe(m, *checks):
    """Run the probe in the cgroup: 'ok' or the errno name per ``path:r|w|m``."""
    r = subprocess.run(["sh", "-c", f'echo $$ > {m.path}/cgroup.procs && exec "$@"', "sh",
                        sys.executable, "-c", PROBE, *checks], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def allowed(res):
    # a block device without a driver behind it answers ENXIO: the filter let the open through
    return res in ("ok", "ENXIO", "ENODEV", "ENOMEDIUM")


def test_default_rules_deny_everything_but_the_allowlist(cgroup, nodes):
    linux = {"resources": {"devices": [{"allow": False, "access": "rwm"}]}}
    cgroup.apply({}, linux)
    assert len(ebpf.attached(os.open(cgroup.path, os.O_RDONLY | os.O_CLOEXEC))) == 1
    got = probe(cgroup, "/dev/null:r", "/dev/null:w", f"{nodes['null']}:w", f"{nodes['sda']}:r",
                f"{nodes['sda']}:w", f"{nodes['fuse']}:r", f"{nodes['sda']}:m", "/dev/zero:r")
    assert got[:3] == ["ok", "ok", "ok"]          # c 1:3 wherever the node is
    assert got[3:6] == ["EPERM", "EPERM", "EPERM"]  # disk and fuse: not on the list
    assert got[6] == "ok"                         # mknod of anything ('c *:* m', 'b *:* m')
    assert got[7] == "ok"


def test_linux_devices_and_partial_access(cgroup, nodes):
    linux = {"resources": {"devices": [{"allow": False, "access": "rwm"},
                                       {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"}]},
             "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
    cgroup.apply({}, linux)
    got = probe(cgroup, f"{nodes['sda']}:r", f"{nodes['sda']}:w", f"{nodes['fuse']}:r", f"{nodes['fuse']}:w")
    assert allowed(got[0]) and got[1] == "EPERM"  # read only
    assert got[2:] == ["ok", "ok"] or all(allowed(x) for x in got[2:])  # linux.devices: rwm


def test_allow_all_then_deny_one(cgroup, nodes):
    linux = {"resources": {"devices": [{"allow": True, "access": "rwm"},
                                       {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]}}
    # the default allowlist that follows gives c 1:3 rwm back: deny it last, through update
    cgroup.apply({}, linux)
    assert probe(cgroup, f"{nodes['null']}:w")[0] == "ok"
    cgroup.update({"devices": [{"allow": True, "access": "rwm"},
                               {"allow": False, "type": "b", "major": 8, "access": "rwm"}]})
    ids = ebpf.attached(os.open(cgroup.path, os.O_RDONLY | os.O_CLOEXEC))
    assert len(ids) == 1  # the update replaced the program, it did not stack a second one
    got = probe(cgroup, f"{nodes['sda']}:r", f"{nodes['fuse']}:r", f"{nodes['null']}:w")
    assert got[0] == "EPERM" and allowed(got[1]) and got[2] == "ok"


def test_emulation_matches_v1_semantics():
    # a wildcard resets; exceptions agree in verdict; agreeing rules narrow them
    assert ebpf.emulate([(False, "a", -1, -1, "rwm")]) == (False, [])
    assert ebpf.emulate([(True, "a", -1, -1, "rwm"), (False, "c", 1, 3, "rw"), (True, "c", 1, 3, "w")]) == \
        (True, [("c", 1, 3, ebpf.ACC_READ)])
    assert ebpf.emulate([(False, "a", -1, -1, "rwm"), (True, "b", 8, -1, "rw"), (False, "b", 8, -1, "rw")]) == \
        (False, [])
    assert ebpf.emulate([(True, "c", 1, 3, "rwm"), (False, "a", -1, -1, "rwm")]) == (False, [])
    d, exc = ebpf.emulate(devices.rules({"resources": {"devices": [{"allow": False, "access": "rwm"}]}}))
    assert d is False and ("c", 136, -1, 7) in exc and ("b", -1, -1, ebpf.ACC_MKNOD) in exc
    # a type 'a' rule with a major is both a char and a block exception
    assert sorted(ebpf.emulate([(True, "a", 4, -1, "r")])[1]) == [("b", 4, -1, 2), ("c", 4, -1, 2)]


def test_program_shape():
    insns = ebpf.program([(False, "a", -1, -1, "rwm"), (True, "c", 1, 3, "rwm")])
    assert len(insns) % 8 == 0
    n = len(insns) // 8
    # 6 loads, one block (type, major, minor, verdict, exit), the default and exit
    assert n == 6 + 5 + 2
    assert insns[-8] == 0x95 and insns[-16] == 0xB4  # mov r0, 0; exit


def test_refused_program_is_a_clear_error(cgroup):
    with pytest.raises(Exception) as ei:
        ebpf.load(b"\x95" + b"\x00" * 7)  # exit without setting r0: the verifier refuses it
    msg = str(ei.value)
    assert "the kernel refused the device filter program" in msg and "R0" in msg and "\n" not in msg
