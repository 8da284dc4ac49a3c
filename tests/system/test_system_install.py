"""``pallet install --system``, ``containers update|rollback|list``, ``uninstall`` on a real
store (images built by ``pallet build`` from a busybox base), in a host root of the test's
own (``--host-root``: systemd is never driven there), with the deployment run for real by
pallet-runtime the way the unit's ExecStart runs it.

Every test compares the host root's whole tree before and after: an uninstall, a refused
install and a killed one leave exactly what was there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request

import pytest

from buildtools import CONTAINERS_CONF
from conftest import free_port, release_all, unmount_under, wait_for

PALLET = os.path.join(os.path.dirname(sys.executable), "pallet")
RUNTIME = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
HERE = os.path.dirname(os.path.abspath(__file__))

WEB_MANIFEST = {"version": "1.0", "defaultValues": {"GREETING": "hello"}}
TMPFILES = "d ${RUN_DIRECTORY}/${NAME} 0755 root root - -\n"

#: atomic's exports layout, as its etcd/flannel images use it (our own text, their features:
#: renameFiles with ${NAME}, a JSON fragment variable, forced and overridable variables)
ATOMIC_CONFIG = """{
  "ociVersion": "1.0.0",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
              "args": ["/bin/httpd", "-f", "-p", "$PORT", "-h", "/www"],
              "env": ["PATH=/bin", "NAME=$NAME", "GREETING=$GREETING"], "cwd": "/"},
  "root": {"path": "rootfs", "readonly": false},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"type": "bind", "source": "${RUN_DIRECTORY}/${NAME}", "destination": "/run/app",
     "options": ["rbind", "rw"]}
    $ADDTL_MOUNTS
  ],
  "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]}
}
"""
ATOMIC_MANIFEST = {"version": "1.0",
                   "defaultValues": {"PORT": "0", "GREETING": "hi", "ADDTL_MOUNTS": "", "AFTER": "network.target"},
                   "renameFiles": {"/usr/local/bin/appctl": "/usr/local/bin/${NAME}ctl",
                                   "/etc/app/app.conf": "$CONF_DIRECTORY/$NAME/app.conf"}}
ATOMIC_SERVICE = """[Unit]
Description=App
After=$AFTER

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
Restart=on-failure
WorkingDirectory=$DESTDIR
RuntimeDirectory=${NAME}

[Install]
WantedBy=multi-user.target
"""


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Env:
    def __init__(self, work: str):
        self.work = work
        self.store = os.path.join(work, "store")
        self.runroot = os.path.join(work, "run")
        self.port = free_port()

    def __call__(self, *args, check=True, env=None, host=None):
        argv = [PALLET, "--root", self.store, "--runroot", self.runroot, *args]
        if host is not None:
            argv += ["--host-root", host]
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(argv, capture_output=True, text=True, env=e)
        if check and p.returncode != 0:
            raise AssertionError(f"pallet {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def build(self, tag: str, files: dict, containerfile: str) -> None:
        ctx = os.path.join(self.work, "ctx-" + tag.replace("/", "_").replace(":", "_"))
        for rel, text in files.items():
            _write(os.path.join(ctx, rel), text)
        _write(os.path.join(ctx, "Containerfile"), containerfile)
        self("build", "-t", tag, ctx)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("sys"))
    e = Env(work)
    layout = os.path.join(work, "bb")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "make-demo-image.py"), layout, "v1"],
                   check=True, capture_output=True)
    try:
        e("copy", f"oci:{layout}:v1", "local:localhost/busybox:v1")
        web = {"exports/manifest.json": json.dumps(WEB_MANIFEST),
               "exports/tmpfiles.template": TMPFILES,
               "exports/hostfs/etc/pallet-test-web/web.conf": "greeting=hello\n"}
        cf = ("FROM localhost/busybox:v1\nCOPY www /www\nCOPY exports /exports\n"
              "LABEL After=network-online.target Wants=network-online.target\n"
              f'CMD ["/bin/httpd", "-f", "-p", "127.0.0.1:{e.port}", "-h", "/www"]\n')
        e.build("localhost/web:v1", dict(web, **{"www/index.html": "one\n"}), cf)
        e.build("localhost/web:v2", dict(web, **{"www/index.html": "two\n"}), cf)
        e.build("localhost/atomic:v1", {"exports/config.json.template": ATOMIC_CONFIG,
                                        "exports/manifest.json": json.dumps(ATOMIC_MANIFEST),
                                        "exports/service.template": ATOMIC_SERVICE,
                                        "exports/tmpfiles.template": TMPFILES,
                                        "exports/hostfs/usr/local/bin/appctl": "#!/bin/sh\n",
                                        "exports/hostfs/etc/app/app.conf": "x=1\n",
                                        "www/index.html": "atomic\n"},
                "FROM localhost/busybox:v1\nCOPY www /www\nCOPY exports /exports\n")
        e.build("localhost/badtpl:v1", {"exports/service.template": ATOMIC_SERVICE + "Environment=X=$NOPE\n"},
                "FROM localhost/busybox:v1\nCOPY exports /exports\nCMD [\"/bin/true\"]\n")
        e.build("localhost/nocmd:v1", {"x": "x"}, "FROM localhost/busybox:v1\nCOPY x /x\nCMD []\n")
        yield e
    finally:
        release_all(lambda: unmount_under(work))


@pytest.fixture
def host(tmp_path, root_required):
    """An empty host root: the unit and tmpfiles directories and an empty dpkg database."""
    h = str(tmp_path / "host")
    for d in ("etc/systemd/system", "etc/tmpfiles.d", "var/lib/dpkg/info"):
        os.makedirs(os.path.join(h, d))
    return h


def tree(root: str) -> dict:
    """Every path below ``root`` with its kind and content (the lock file aside)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel == "run" or rel.startswith("run/"):  # the lock (in /run)
                continue
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", oct(os.lstat(p).st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", hashlib.sha256(f.read()).hexdigest(), oct(os.lstat(p).st_mode))
    return out


def sysdir(host: str) -> str:
    return os.path.join(host, "var/lib/pallet/system")


def one_error_line(p, *words) -> None:
    assert p.returncode != 0, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    for w in words:
        assert w in lines[0], p.stderr


def test_install_checks_out_by_hard_links_and_the_unit_runs_the_service(env, host):
    name = f"web{os.getpid()}"
    p = env("install", "--system", "--name", name, "localhost/web:v1", host=host)
    assert "was not started: systemd is not PID 1 here" in p.stderr
    dep = os.path.join(sysdir(host), f"{name}.0")
    assert os.readlink(os.path.join(sysdir(host), name)) == f"{name}.0"

    # the rootfs shares the store's inodes: no copy was made
    index = os.path.join(dep, "rootfs/www/index.html")
    st = os.stat(index)
    assert st.st_nlink >= 2
    store_files = [os.path.join(dp, "index.html") for dp, _, fs in os.walk(env.store) if "index.html" in fs]
    assert any(os.stat(f).st_ino == st.st_ino for f in store_files)

    cfg = json.load(open(os.path.join(dep, "config.json")))
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert cfg["process"]["args"][0] == "/bin/httpd" and "container=pallet" in cfg["process"]["env"]
    assert "network" not in {n["type"] for n in cfg["linux"]["namespaces"]}  # the host's network

    unit = open(os.path.join(host, f"etc/systemd/system/{name}.service")).read()
    assert "After=network-online.target\nWants=network-online.target\n" in unit
    assert f"WorkingDirectory=/var/lib/pallet/system/{name}.0\n" in unit
    assert open(os.path.join(host, f"etc/tmpfiles.d/pallet-{name}.conf")).read() == f"d /run/{name} 0755 root root - -\n"
    assert open(os.path.join(host, "etc/pallet-test-web/web.conf")).read() == "greeting=hello\n"
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify", os.path.join(host, f"etc/systemd/system/{name}.service")],
                           capture_output=True, text=True)
        assert v.returncode == 0 and not v.stderr.strip(), v.stderr

    rows = json.loads(env("containers", "list", "--format", "json", host=host).stdout)
    assert [(r["name"], r["image"], r["deployment"], r["current"]) for r in rows] == [(name, "localhost/web:v1", 0, True)]

    # the unit's own command lines, run as systemd runs them (cwd: WorkingDirectory)
    lines = dict(l.split("=", 1) for l in unit.splitlines() if l.startswith("Exec"))
    rtroot = os.path.join(host, "rt")
    start = [a.replace("/run/pallet/system", rtroot) for a in shlex.split(lines["ExecStart"])]
    start = [a.replace("/var/lib/pallet/system", sysdir(host)) for a in start]
    proc = subprocess.Popen(start, cwd=dep, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def answers():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{env.port}/index.html", timeout=2).read()
            except OSError:
                return None
        assert wait_for(answers, 30, "the service's port") == b"one\n"
    finally:
        stop = [a.replace("/run/pallet/system", rtroot) for a in shlex.split(lines["ExecStopPost"].lstrip("-"))]
        release_all(lambda: subprocess.run([a.replace("/run/pallet/system", rtroot)
                                            for a in shlex.split(lines["ExecStop"])], capture_output=True),
                    lambda: subprocess.run(stop, capture_output=True, check=True),
                    lambda: proc.wait(30))
    env("uninstall", name, host=host)


def test_install_pulls_an_image_it_does_not_have(env, host, registry):
    """A reference the store does not hold is pulled as ``pallet pull`` does (registry flags),
    then installed; the image stays in the store after the uninstall, as atomic's did."""
    ref = f"{registry.host}/pallet-system-pull-{os.getpid()}:v1"
    env("push", "--tls-verify=false", "localhost/web:v1", f"docker://{ref}")
    assert ref not in env("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    before = tree(host)
    name = f"pulled{os.getpid()}"
    one_error_line(env("install", "--system", "--name", name, ref, host=host, check=False), ref)  # TLS: refused
    assert tree(host) == before
    env("install", "--system", "--name", name, "--tls-verify=false", ref, host=host)
    try:
        assert ref in env("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        rows = json.loads(env("containers", "list", "--format", "json", host=host).stdout)
        assert [(r["name"], r["image"]) for r in rows] == [(name, ref)]
    finally:
        env("uninstall", name, host=host)
        env("rmi", ref)
    assert {k: v for k, v in tree(host).items() if not k.startswith("var/lib/pallet")} == before


def test_update_rollback_uninstall_switch_content_and_leave_nothing(env, host):
    before = tree(host)
    name = "websvc"
    env("install", "--system", "--name", name, "localhost/web:v1", host=host)
    index = os.path.join(sysdir(host), name, "rootfs/www/index.html")
    assert open(index).read() == "one\n"
    p = env("containers", "update", name, "--rebase", "localhost/web:v2", host=host)
    assert "not restarted: systemd is not PID 1 here" in p.stderr
    assert open(index).read() == "two\n"
    assert os.readlink(os.path.join(sysdir(host), name)) == f"{name}.1"
    table = env("containers", "list", "--all", host=host).stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "IMAGE", "ID", "DEPLOYMENT", "CREATED", "STATE"]
    assert table[2].split()[:4] == [name, "localhost/web:v2", table[2].split()[2], "1"] and "*" in table[2]
    rows = json.loads(env("containers", "list", "--all", "--format", "json", host=host).stdout)
    assert sorted((r["deployment"], r["current"], r["image"]) for r in rows) == [
        (0, False, "localhost/web:v1"), (1, True, "localhost/web:v2")]
    assert "WorkingDirectory=/var/lib/pallet/system/websvc.1" in open(
        os.path.join(host, "etc/systemd/system/websvc.service")).read()
    env("containers", "rollback", name, host=host)
    assert open(index).read() == "one\n"
    assert "WorkingDirectory=/var/lib/pallet/system/websvc.0" in open(
        os.path.join(host, "etc/systemd/system/websvc.service")).read()
    # an update with --set keeps the image, and the values persist into the next update
    env("containers", "update", name, "--set", "GREETING=yo", host=host)
    info = json.load(open(os.path.join(sysdir(host), name, "info.json")))
    assert info["values"]["GREETING"] == "yo" and info["image"] == "localhost/web:v1"

    # a host file changed by hand is kept (and said so); everything else goes
    conf = os.path.join(host, "etc/pallet-test-web/web.conf")
    with open(conf, "a") as f:
        f.write("mine\n")
    p = env("uninstall", name, host=host)
    assert "kept /etc/pallet-test-web/web.conf: changed since it was installed" in p.stderr
    after = tree(host)
    assert {k: v for k, v in after.items() if not k.startswith("etc/pallet-test-web")} == \
        {k: v for k, v in before.items()} | {k: v for k, v in after.items() if k.startswith("var")}
    assert set(after) - set(before) == {"etc/pallet-test-web", "etc/pallet-test-web/web.conf", "var/lib/pallet"}
    assert not os.path.exists(sysdir(host))  # the last one out removes the system dir
    p = env("uninstall", name, host=host, check=False)
    one_error_line(p, name, "not installed")


def test_bad_input_is_one_line_and_installs_nothing(env, host):
    with open(os.path.join(host, "var/lib/dpkg/info/base-files.list"), "w") as f:
        f.write("/etc\n/etc/pallet-test-web/web.conf\n")
    before = tree(host)
    cases = [
        (["--name", "badtpl", "localhost/badtpl:v1"], ["$NOPE", "service.template"]),
        (["--name", "nocmd", "localhost/nocmd:v1"], ["no command"]),
        (["--name", "bad/name", "localhost/web:v1"], ["bad/name"]),
        (["--name", "x.1", "localhost/web:v1"], ["x.1"]),
        (["--name", "pkg", "localhost/web:v1"], ["/etc/pallet-test-web/web.conf", "base-files", "--force"]),
        (["--name", "a", "--set", "NAME=x", "localhost/web:v1"], ["--set NAME"]),
        (["--name", "own", "--set", "CONF_DIRECTORY=/var/lib/pallet/system", "localhost/atomic:v1"],
         ["/var/lib/pallet/system/own/app.conf", "pallet's own"]),
        (["--name", "b", "localhost/nosuch:v1", "--tls-verify=false"], ["nosuch"]),
    ]
    for args, words in cases:
        one_error_line(env("install", "--system", *args, host=host, check=False), *words)
        now = tree(host)
        assert {k: v for k, v in now.items() if not k.startswith("var/lib/pallet")} == before, args
        assert not os.listdir(sysdir(host)) if os.path.isdir(sysdir(host)) else True
    # without --system: refused
    one_error_line(env("install", "localhost/web:v1", host=host, check=False), "--system")
    # a name already installed
    os.unlink(os.path.join(host, "var/lib/dpkg/info/base-files.list"))
    env("install", "--system", "--name", "dup", "localhost/web:v1", host=host)
    snap = tree(host)
    one_error_line(env("install", "--system", "--name", "dup", "localhost/web:v2", host=host, check=False),
                   "dup is already installed")
    assert tree(host) == snap
    # a unit of that name pallet did not write
    _write(os.path.join(host, "etc/systemd/system/other.service"), "[Service]\nExecStart=/bin/true\n")
    one_error_line(env("install", "--system", "--name", "other", "localhost/web:v1", host=host, check=False),
                   "other.service exists")
    # update and rollback refused: nothing to roll back to, an image that cannot be had, a forced
    # variable, a name not installed; each one line, the installed one untouched
    snap = tree(host)
    for args, words in ((["rollback", "dup"], ["dup", "no previous deployment"]),
                        (["update", "dup", "--rebase", "localhost/nosuch:v1", "--tls-verify=false"], ["nosuch"]),
                        (["update", "dup", "--set", "DESTDIR=/tmp"], ["--set DESTDIR"]),
                        (["update", "ghost"], ["ghost", "not installed"]),
                        (["rollback", "ghost"], ["ghost", "not installed"])):
        one_error_line(env("containers", *args, host=host, check=False), *words)
        assert tree(host) == snap, args
    env("uninstall", "dup", host=host)


def test_force_overwrites_a_package_file_and_uninstall_puts_it_back(env, host):
    with open(os.path.join(host, "var/lib/dpkg/info/base-files.list"), "w") as f:
        f.write("/etc/pallet-test-web/web.conf\n")
    _write(os.path.join(host, "etc/pallet-test-web/web.conf"), "the package's\n")
    before = tree(host)
    env("install", "--system", "--force", "--name", "forced", "localhost/web:v1", host=host)
    assert open(os.path.join(host, "etc/pallet-test-web/web.conf")).read() == "greeting=hello\n"
    env("containers", "update", "forced", "--rebase", "localhost/web:v2", host=host)
    env("uninstall", "forced", host=host)
    assert {k: v for k, v in tree(host).items() if not k.startswith("var/lib/pallet")} == before


def test_atomic_exports_layout_installs_unchanged(env, host):
    env("install", "--system", "--name", "app", "--set", "PORT=1234", "localhost/atomic:v1", host=host)
    dep = os.path.join(sysdir(host), "app.0")
    cfg = json.load(open(os.path.join(dep, "config.json")))
    assert cfg["process"]["args"] == ["/bin/httpd", "-f", "-p", "1234", "-h", "/www"]
    assert "GREETING=hi" in cfg["process"]["env"] and "NAME=app" in cfg["process"]["env"]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}  # read-only whatever the template says
    assert {"type": "bind", "source": "/run/app", "destination": "/run/app", "options": ["rbind", "rw"]} in cfg["mounts"]
    unit = open(os.path.join(host, "etc/systemd/system/app.service")).read()
    assert "After=network.target\n" in unit and "RuntimeDirectory=app\n" in unit and "$" not in unit.replace("$$", "")
    assert os.path.isfile(os.path.join(host, "usr/local/bin/appctl"))  # renameFiles: ${NAME}ctl
    assert open(os.path.join(host, "etc/app/app.conf")).read() == "x=1\n"  # $CONF_DIRECTORY/$NAME/app.conf
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify", os.path.join(host, "etc/systemd/system/app.service")],
                           capture_output=True, text=True)
        assert v.returncode == 0 and not v.stderr.strip(), v.stderr
    env("uninstall", "app", host=host)
    assert not os.path.exists(os.path.join(host, "etc/app")) and not os.path.exists(os.path.join(host, "usr"))
    # --rootfs: an exploded tree of the host runs instead of a checkout (its /exports read there)
    tree_dir = os.path.join(os.path.dirname(host), "exploded")
    env("install", "--system", "--name", "app", "localhost/atomic:v1", host=host)
    subprocess.run(["cp", "-a", os.path.join(sysdir(host), "app.0", "rootfs"), tree_dir], check=True)
    env("uninstall", "app", host=host)
    env("install", "--system", "--name", "app2", "--rootfs", tree_dir, "--set", "PORT=1", "localhost/atomic:v1",
        host=host)
    dep = os.path.join(sysdir(host), "app2.0")
    assert json.load(open(os.path.join(dep, "config.json")))["root"] == {"path": tree_dir, "readonly": True}
    assert not os.path.exists(os.path.join(dep, "rootfs"))
    assert os.path.isfile(os.path.join(host, "usr/local/bin/app2ctl"))
    env("uninstall", "app2", host=host)
    assert os.path.isdir(tree_dir)  # the user's tree is theirs
    one_error_line(env("install", "--system", "--name", "app3", "--rootfs", tree_dir + "-no", "localhost/atomic:v1",
                       host=host, check=False), "--rootfs")


#: where a change is cut short: after its journal, after its deployment is renamed in place,
#: after the first host file, after the link switch, after systemd was told (the last step)
INSTALL_STEPS = ("journal", "deployment", "host-file", "link", "systemd")


def test_sigkill_anywhere_leaves_the_old_state_or_the_new(env, host):
    """Killed at each step of install, update, rollback and uninstall, the next command finds
    the state before the change (install, update, rollback) or after it (uninstall)."""
    name = "crash"
    empty = tree(host)

    def killed(*args, step):
        p = env(*args, host=host, check=False, env={"PALLET_SYSTEM_KILL_AT": step})
        assert p.returncode == -9, (args, step, p.returncode, p.stderr)
        # the next command recovers (here in-process: what `pallet containers list` runs)
        from pallet.system.deploy import Paths, SystemContainers

        SystemContainers(None, Paths(host), RUNTIME).list()

    def strip(t):  # the directories above the system dir, which the first install made
        return {k: v for k, v in t.items() if k not in ("var", "var/lib", "var/lib/pallet")}

    for step in INSTALL_STEPS:
        killed("install", "--system", "--name", name, "localhost/web:v1", step=step)
        assert strip(tree(host)) == strip(empty), step
    env("install", "--system", "--name", name, "localhost/web:v1", host=host)
    installed = tree(host)
    for step in ("deployment", "host-file", "link"):
        killed("containers", "update", name, "--rebase", "localhost/web:v2", step=step)
        assert tree(host) == installed, step
    env("containers", "update", name, "--rebase", "localhost/web:v2", host=host)
    updated = tree(host)
    for step in ("host-file", "link"):
        killed("containers", "rollback", name, step=step)
        assert tree(host) == updated, step
    for step in ("journal", "host-files"):
        killed("uninstall", name, step=step)
        assert strip(tree(host)) == strip(empty), step
        env("install", "--system", "--name", name, "localhost/web:v1", host=host)
    # SIGTERM (or Ctrl-C) in the middle: the command undoes its change itself before it exits
    installed = tree(host)
    p = env("containers", "update", name, "--rebase", "localhost/web:v1", host=host, check=False,
            env={"PALLET_SYSTEM_KILL_AT": "link:TERM"})
    assert p.returncode == 128 + 15, p.stderr
    assert not os.path.exists(os.path.join(sysdir(host), f".journal-{name}.json"))
    assert tree(host) == installed
    # a journal pallet did not write is not acted on: one line naming it
    journal = os.path.join(sysdir(host), f".journal-{name}.json")
    for text in ('["x"]', '{"op": "install", "to": "../../etc"}', "{no json"):
        with open(journal, "w") as f:
            f.write(text)
        one_error_line(env("containers", "list", host=host, check=False), journal, "remove it by hand")
    os.unlink(journal)
    # nor is a deployment record that names files pallet would not have written
    info_path = os.path.join(sysdir(host), f"{name}.0", "info.json")
    good = open(info_path).read()
    doc = json.loads(good)
    doc["host_files"].append({"path": "/etc/../etc/passwd", "kind": "file", "role": "hostfs",
                              "source": "/exports/hostfs/x", "sha256": "0"})
    with open(info_path, "w") as f:
        json.dump(doc, f)
    one_error_line(env("uninstall", name, host=host, check=False), info_path, "damaged")
    with open(info_path, "w") as f:
        f.write(good)
    env("uninstall", name, host=host)
    assert strip(tree(host)) == strip(empty)


def _normalize(unit: str, exe: str, ident: str, cid: str, runroot: str, pidfile: str) -> list[str]:
    out = []
    for line in unit.splitlines()[3:]:  # the header: the generator's name and the date
        line = line.replace(pidfile, "PIDFILE").replace(exe, "EXE").replace(runroot, "RUNROOT")
        out.append(line.replace(cid, "ID").replace(ident, "NAME"))
    return out


def test_generate_systemd_prints_podmans_unit_and_it_runs_the_container(env, tmp_path, root_required):
    name = f"gen{os.getpid()}"
    cid = env("create", "--name", name, "--network", "none", "localhost/busybox:v1", "sleep", "1000").stdout.strip()
    try:
        p = env("generate", "systemd", "--name", "--restart-policy", "always", name)
        unit = p.stdout
        assert unit.startswith(f"# container-{name}.service\n")
        pidfile = os.path.join(env.runroot, "pallet-containers", cid, "conmon.pid")
        assert f"PIDFile={pidfile}\n" in unit and "Restart=always\n" in unit and "Type=forking\n" in unit
        # --files: the same unit in ./container-NAME.service, its path printed (podman's)
        fdir = tmp_path / "files"
        fdir.mkdir()
        p = subprocess.run([PALLET, "--root", env.store, "--runroot", env.runroot, "generate", "systemd", "--files",
                            "--name", "--restart-policy", "always", name], capture_output=True, text=True, cwd=fdir)
        assert p.returncode == 0 and p.stdout.strip() == str(fdir / f"container-{name}.service"), p.stderr
        assert (fdir / f"container-{name}.service").read_text().splitlines()[3:] == unit.splitlines()[3:]
        path = str(tmp_path / f"container-{name}.service")
        with open(path, "w") as f:
            f.write(unit)
        if shutil.which("systemd-analyze"):
            v = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
            assert v.returncode == 0 and not v.stderr.strip(), v.stderr
            # --new's unit too (a Type=notify unit running `pallet run --cidfile ... --replace`)
            new = env("generate", "systemd", "--new", "--name", name).stdout
            assert "Type=notify\n" in new and "ExecStartPre=/bin/rm \\\n\t-f %t/%n.ctr-id\n" in new
            with open(path, "w") as f:
                f.write(new)
            v = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
            assert v.returncode == 0 and not v.stderr.strip(), v.stderr
        exe = f"{PALLET} --root {env.store} --runroot {env.runroot}"
        # podman 4.3's unit for the same kind of container, line for line
        if shutil.which("podman"):
            conf = str(tmp_path / "containers.conf")
            with open(conf, "w") as f:
                f.write(CONTAINERS_CONF)
            proot, prun = str(tmp_path / "proot"), f"/run/pg-{os.getpid()}"
            pm = ["podman", "--root", proot, "--runroot", prun, "--storage-driver", "vfs"]
            penv = dict(os.environ, CONTAINERS_CONF=conf)
            layout = os.path.join(env.work, "bb")
            try:
                pcid = subprocess.run(pm + ["create", "--name", name, f"oci:{layout}:v1", "sleep", "1000"],
                                      capture_output=True, text=True, env=penv, check=True).stdout.split()[-1]
                theirs = subprocess.run(pm + ["generate", "systemd", "--name", "--restart-policy", "always", name],
                                        capture_output=True, text=True, env=penv, check=True).stdout
                ppid = os.path.join(prun, "vfs-containers", pcid, "userdata", "conmon.pid")
                assert _normalize(unit, exe, name, cid, env.runroot, pidfile) == \
                    _normalize(theirs, "/usr/bin/podman", name, pcid, prun, ppid)
            finally:
                release_all(lambda: subprocess.run(pm + ["rm", "-a", "-f"], capture_output=True, env=penv),
                            lambda: unmount_under(proot, prun), lambda: shutil.rmtree(prun, ignore_errors=True))
        # its ExecStart/ExecStop, as systemd runs them: conmon's pid file names the running container
        lines = dict(l.split("=", 1) for l in unit.replace("\\\n\t", "").splitlines() if l.startswith("Exec"))
        subprocess.run(shlex.split(lines["ExecStart"]), check=True, capture_output=True)
        conmon = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 30, "conmon.pid"))
        os.kill(conmon, 0)
        subprocess.run(shlex.split(lines["ExecStop"].replace("-t 10", "-t 1")), check=True, capture_output=True)
        state = json.loads(env("container", "inspect", name).stdout)[0]["State"]["Status"]
        assert state in ("exited", "stopped")
        # bad input: one line, 125
        for args, word in ((["nosuch"], "nosuch"), (["--new", "nosuch"], "nosuch"),
                           (["--restart-policy", "sometimes", name], "sometimes")):
            p = env("generate", "systemd", *args, check=False)
            assert p.returncode == 125
            one_error_line(p, word)
    finally:
        env("rm", "-f", name, check=False)
