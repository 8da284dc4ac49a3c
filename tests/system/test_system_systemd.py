"""The acceptance of system containers under a real systemd: a Debian root filesystem with
systemd (mmdebstrap) booted as PID 1 in a container run by pallet-runtime (a cgroup namespace,
a read-write cgroup mount, tmpfs on /run and /run/lock, ``container=`` in the environment,
SIGRTMIN+3 to stop it, the capabilities pallet has so that the runtime works nested), with
this pallet bound in. Inside it: ``pallet install --system`` of a busybox httpd image gives a
unit that systemd starts and that answers on its port, survives ``systemctl restart``;
``containers update`` then ``rollback`` switch the content served; ``uninstall`` leaves
``/etc``, ``/var/lib/pallet`` and the unit directories as they were, and systemd forgets
the unit. ``pallet generate systemd --new`` gives a Type=notify unit that systemd starts
(pallet run --sdnotify=conmon tells it), restarts (a fresh container each time, --replace) and
stops (the container removed).

Slow: making the root filesystem takes a minute or two (Debian's mirror, as apt uses it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import need, release_all, unmount_under, wait_for
from test_system_install import Env

pytestmark = pytest.mark.slow

VENV = os.path.dirname(sys.executable)
PALLET = os.path.join(VENV, "pallet")
RUNTIME = os.path.join(VENV, "pallet-runtime")
#: what is bound into the container so that this pallet runs there: the worktree (its venv)
#: and the Python the venv was made from
BINDS = sorted({os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                os.path.realpath(sys.base_prefix)})
PORT = 8080
LISTED = "/etc /var/lib/pallet /usr/lib/systemd/system /run/systemd/system"


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("systemd"))
    rootfs = os.path.join(work, "rootfs")
    sources = "/etc/apt/sources.list.d/debian.sources"
    if not os.path.exists(sources):
        sources = "/etc/apt/sources.list"
    if os.environ.get("PALLET_TEST_SYSTEMD_ROOTFS"):  # a tree made so before (to iterate quickly): copied
        subprocess.run(["cp", "-a", os.environ["PALLET_TEST_SYSTEMD_ROOTFS"], rootfs], check=True)
    else:
        p = subprocess.run([need("mmdebstrap"), "--variant=minbase", "--mode=root", "--format=directory", "--quiet",
                            "--include=systemd,systemd-sysv,dbus,conmon", "bookworm", rootfs, sources],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"mmdebstrap failed (it needs the Debian mirror, as apt does): {p.stderr[-2000:]}"

    # the service images, built in a store of the host and handed over as an OCI layout
    env = Env(work)
    layout = os.path.join(work, "images")
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                                 "make-demo-image.py"), os.path.join(work, "bb"), "v1"],
                   check=True, capture_output=True)
    env("copy", f"oci:{os.path.join(work, 'bb')}:v1", "local:localhost/busybox:v1")
    cf = ("FROM localhost/busybox:v1\nCOPY www /www\nCOPY exports /exports\nSTOPSIGNAL SIGKILL\n"
          f'CMD ["/bin/httpd", "-f", "-p", "127.0.0.1:{PORT}", "-h", "/www"]\n')
    for tag, text in (("v1", "one\n"), ("v2", "two\n")):
        env.build(f"localhost/web:{tag}", {"www/index.html": text, "exports/hostfs/etc/web/web.conf": "x=1\n",
                                           "exports/tmpfiles.template": "d ${RUN_DIRECTORY}/${NAME} 0755 - - -\n"},
                  cf)
        env("copy", f"local:localhost/web:{tag}", f"oci:{layout}:web-{tag}")
    unmount_under(env.store)

    from pallet.oci import runtime_spec as rs
    from pallet.runtime.caps import NUMBERS

    M = rs.Mount
    mounts = [M("/sys/fs/cgroup", "cgroup", "cgroup", ("rw", "nosuid", "noexec", "nodev", "relatime")),
              M.tmpfs("/run", options=("rw", "nosuid", "nodev", "mode=755")),
              M.tmpfs("/run/lock", options=("rw", "nosuid", "nodev", "noexec", "mode=1777")),
              M.tmpfs("/tmp", options=("rw", "nosuid", "nodev", "mode=1777")),
              M.bind(layout, "/images", readonly=True)]
    for b in BINDS:
        os.makedirs(rootfs + b, exist_ok=True)
        mounts.append(M.bind(b, b, readonly=True))
    o = rs.SpecOptions(rootfs="rootfs", command=("/sbin/init",), env=("container=pallet",), hostname="sysd",
                       mounts=tuple(mounts), privileged=True,
                       namespaces=tuple(rs.Namespace(t) for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")))
    cfg = rs.generate(o, {})
    # every capability pallet itself has (privileged asks for all, some of which root lacks here)
    with open("/proc/self/status") as f:
        bnd = int(next(l for l in f if l.startswith("CapBnd:")).split()[1], 16)
    have = [n for n, i in NUMBERS.items() if bnd >> i & 1]
    cfg["process"]["capabilities"] = {k: list(have) for k in ("bounding", "effective", "permitted", "inheritable",
                                                               "ambient")}
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(cfg, f)
    rt = [RUNTIME, "--root", os.path.join(work, "rt")]
    cid = f"sysd{os.getpid()}"
    subprocess.run(rt + ["run", "-d", "--bundle", work, cid], check=True, capture_output=True)

    def x(*argv, check=True):
        p = subprocess.run(rt + ["exec", "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", cid, *argv],
                           capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {p.returncode}: {p.stdout}{p.stderr}")
        return p

    try:
        # systemctl answers once systemd has its bus socket; then it waits for the boot to end
        state = wait_for(lambda: x("systemctl", "is-system-running", "--wait", check=False).stdout.strip(), 120,
                         "systemd to boot")
        assert state in ("running", "degraded"), x("systemctl", "--failed", "--no-pager", check=False).stdout
        yield x
    finally:
        def stop():
            st = subprocess.run(rt + ["state", cid], capture_output=True, text=True)
            if st.returncode == 0:
                pid = json.loads(st.stdout)["pid"]
                subprocess.run(rt + ["kill", cid, str(int(signal.SIGRTMIN) + 3)], capture_output=True)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 60, "systemd to power off")
        def cgroups():  # systemd's own cgroups below the container's: pallet-runtime's delete leaves them
            for base in os.listdir("/sys/fs/cgroup"):
                top = os.path.join("/sys/fs/cgroup", base, cid)
                if os.path.isdir(top):
                    for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                        os.rmdir(d)

        release_all(stop, lambda: subprocess.run(rt + ["delete", "--force", cid], capture_output=True), cgroups,
                    lambda: subprocess.run(rt + ["delete", "--force", cid], capture_output=True, check=False),
                    lambda: unmount_under(work))


def _get(x, path="/index.html") -> str:
    code = ("import sys, time, urllib.request\n"
            "for i in range(300):\n"
            "    try:\n"
            f"        sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{PORT}{path}', timeout=5).read()"
            ".decode()); break\n"
            "    except OSError: time.sleep(0.1)\n")
    return x(sys.executable, "-c", code).stdout


def test_install_restart_update_rollback_uninstall_under_systemd(booted, root_required):
    x = booted
    for tag in ("v1", "v2"):
        x(PALLET, "copy", f"oci:/images:web-{tag}", f"local:localhost/web:{tag}")
    before = x("sh", "-c", f"find {LISTED} -xdev 2>/dev/null | sort").stdout

    p = x(PALLET, "install", "--system", "--name", "web", "localhost/web:v1")
    assert "not started" not in p.stdout + p.stderr
    assert x("systemctl", "is-active", "web.service").stdout.strip() == "active"
    assert x("systemctl", "is-enabled", "web.service").stdout.strip() == "enabled"
    assert _get(x) == "one\n"
    assert x("test", "-d", "/run/web", check=False).returncode == 0  # tmpfiles created

    main_pid = x("systemctl", "show", "-p", "MainPID", "--value", "web.service").stdout.strip()
    x("systemctl", "restart", "web.service")
    assert x("systemctl", "is-active", "web.service").stdout.strip() == "active"
    assert x("systemctl", "show", "-p", "MainPID", "--value", "web.service").stdout.strip() != main_pid
    assert _get(x) == "one\n"

    x(PALLET, "containers", "update", "web", "--rebase", "localhost/web:v2")
    assert _get(x) == "two\n"
    rows = json.loads(x(PALLET, "containers", "list", "--format", "json").stdout)
    assert [(r["name"], r["deployment"], r["state"]) for r in rows] == [("web", 1, "active")]
    x(PALLET, "containers", "rollback", "web")
    assert _get(x) == "one\n"

    x(PALLET, "uninstall", "web")
    assert x("sh", "-c", f"find {LISTED} -xdev 2>/dev/null | sort").stdout == before
    assert x("systemctl", "list-units", "--all", "--no-legend", "web.service").stdout.strip() == ""

    # --no-start: enabled, not started
    x(PALLET, "install", "--system", "--no-start", "--name", "idle", "localhost/web:v1")
    assert x("systemctl", "is-enabled", "idle.service").stdout.strip() == "enabled"
    assert x("systemctl", "is-active", "idle.service", check=False).stdout.strip() == "inactive"
    x(PALLET, "uninstall", "idle")

    # killed once systemd started the unit: the next command stops, disables and removes it all
    p = x("env", "PALLET_SYSTEM_KILL_AT=systemd", PALLET, "install", "--system", "--name", "web", "localhost/web:v1",
          check=False)
    assert p.returncode == 128 + 9 or p.returncode == -9, p
    assert x("systemctl", "is-active", "web.service", check=False).stdout.strip() == "active"
    x(PALLET, "containers", "list")
    assert x("systemctl", "list-units", "--all", "--no-legend", "web.service").stdout.strip() == ""
    assert x("sh", "-c", f"find {LISTED} -xdev 2>/dev/null | sort").stdout == before


def test_generate_systemd_new_unit_starts_restarts_and_stops_under_systemd(booted, root_required):
    """issue 11's ``generate systemd --new``: the unit's ExecStart is ``pallet run --cidfile=%t/%n.ctr-id
    --cgroups=no-conmon --rm --sdnotify=conmon -d --replace ...``; systemd waits for pallet's READY
    (conmon's PID as MainPID), a restart makes a new container, a stop leaves none."""
    x = booted
    x(PALLET, "copy", "oci:/images:web-v1", "local:localhost/web:v1")
    # a service that exits 0 on SIGTERM (conmon, the unit's main process, exits with the container's
    # code: one killed by SIGKILL would leave the unit "failed", for podman's units too)
    x(PALLET, "create", "--name", "gweb", "--network", "host", "--stop-signal", "TERM", "localhost/web:v1", "sh",
      "-c", f"trap 'exit 0' TERM; httpd -p 127.0.0.1:{PORT} -h /www; while :; do sleep 0.1; done")
    unit = x(PALLET, "generate", "systemd", "--new", "--name", "gweb").stdout
    assert "Type=notify\n" in unit and "--sdnotify=conmon" in unit and "--replace" in unit
    x(PALLET, "rm", "gweb")
    x(sys.executable, "-c", f"open('/etc/systemd/system/container-gweb.service', 'w').write({unit!r})")
    try:
        x("systemctl", "daemon-reload")
        x("systemctl", "start", "container-gweb.service")
        assert x("systemctl", "is-active", "container-gweb.service").stdout.strip() == "active"
        cid = x("cat", "/run/container-gweb.service.ctr-id").stdout.strip()
        main_pid = x("systemctl", "show", "-p", "MainPID", "--value", "container-gweb.service").stdout.strip()
        assert x("readlink", f"/proc/{main_pid}/exe").stdout.strip().endswith("conmon")
        assert _get(x) == "one\n"
        assert x(PALLET, "ps", "-q", "--no-trunc").stdout.split() == [cid]

        x("systemctl", "restart", "container-gweb.service")
        assert x("systemctl", "is-active", "container-gweb.service").stdout.strip() == "active"
        cid2 = x("cat", "/run/container-gweb.service.ctr-id").stdout.strip()
        assert cid2 != cid and _get(x) == "one\n"
        assert x(PALLET, "ps", "-a", "-q", "--no-trunc").stdout.split() == [cid2]

        x("systemctl", "stop", "container-gweb.service")
        assert x("systemctl", "show", "--property=ActiveState", "container-gweb.service").stdout.strip() == \
            "ActiveState=inactive"  # podman's own check (its 250-systemd.bats)
        assert x(PALLET, "ps", "-a", "-q").stdout.strip() == ""
    finally:
        x("systemctl", "stop", "container-gweb.service", check=False)
        x("rm", "-f", "/etc/systemd/system/container-gweb.service", check=False)
        x("systemctl", "daemon-reload", check=False)
        x(PALLET, "rm", "-a", "-f", check=False)
