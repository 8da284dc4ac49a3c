"""podman-style ``pallet run`` and its verbs, with real conmon, pallet-runtime, netavark and the
test registry, side by side with podman 4.3 on the same image and flags.

Each test uses the module's pallet store (a temp root, a short run root, a private network
directory); the fixture removes every container, mount and namespace even when a test fails,
and checks nothing of pallet's is left (no container record, mount, netns, veth, cgroup).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import pytest

from conftest import free_port, need, release_all, unmount_under, wait_for
from netlinks import pallet_links as _pallet_links

HERE = os.path.dirname(os.path.abspath(__file__))
#: podman's default ulimits exceed this machine's hard limits (as in test_runtime_podman);
#: CONTAINERS_CONF replaces containers-common's file, so its default capabilities are repeated
PODMAN_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP",
                        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""




def _mounts_under(path: str) -> list:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


#: this module's containers go below a cgroup parent of their own (--cgroup-parent), so what is
#: left there is theirs, whatever other pallets on the host do meanwhile
CGROUP_PARENT = f"pallet_test_{os.getpid()}"


def _hierarchies() -> list:
    """Every mounted cgroup hierarchy: v2 at /sys/fs/cgroup, or v1 controllers (and the hybrid
    layout's unified tree) below it."""
    base = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        return [base]
    return [os.path.join(base, d) for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))
            and not os.path.islink(os.path.join(base, d))]


def _cgroups(parent: str = CGROUP_PARENT) -> list:
    out = []
    for base in _hierarchies():
        d = os.path.join(base, parent)
        if os.path.isdir(d):
            out += [os.path.join(d, x) for x in os.listdir(d) if x.startswith("pallet-")]
    return sorted(out)


def remove_cgroup_parent(parent: str = CGROUP_PARENT) -> None:
    for base in _hierarchies():
        try:
            os.rmdir(os.path.join(base, parent))
        except OSError:
            pass


class Pallet:
    def __init__(self, work: str, runroot: str, registry_host: str):
        self.root = os.path.join(work, "root")
        self.runroot = runroot
        self.nets = os.path.join(work, "networks")
        self.image = f"{registry_host}/ctr/busybox:v1"
        self.base = ["--root", self.root, "--runroot", self.runroot]

    def __call__(self, *args, check=False, timeout=60):
        verb, rest = args[0], list(args[1:])
        if verb in ("run", "create"):
            rest = ["--network-config-dir", self.nets, "--tls-verify=false", "--cgroup-parent", CGROUP_PARENT] + rest
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        p = subprocess.run([exe] + self.base + [verb] + rest, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, (args, p.returncode, p.stderr)
        return p

    def ids(self) -> set:
        return set(self("ps", "-a", "-q", "--no-trunc", check=True).stdout.split())

    def leftovers(self) -> dict:
        netns = os.path.join(self.runroot, "netns")
        return {"containers": self.ids(),
                "mounts": [m for m in _mounts_under(self.root)],
                "netns": sorted(os.listdir(netns)) if os.path.isdir(netns) else [],
                "cgroups": _cgroups()}


@pytest.fixture(scope="module")
def pallet(tmp_path_factory, registry):
    need("conmon")
    need("skopeo")
    work = str(tmp_path_factory.mktemp("ctrs"))
    runroot = tempfile.mkdtemp(prefix="pcr-")
    layout = os.path.join(work, "layout")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "make-demo-image.py"), layout, "v1"],
                   check=True, capture_output=True)
    p = Pallet(work, runroot, registry.host)
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{p.image}"],
                   check=True, capture_output=True, timeout=120)
    p.layout = layout
    # in the store before the tests: run's pull prints podman's progress on stderr
    r = p("pull", "-q", "--tls-verify=false", p.image)
    assert r.returncode == 0, r.stderr
    links_before = _pallet_links(p.nets)
    try:
        yield p
    finally:  # every step runs even when one fails: nothing may stay running or mounted
        release_all(lambda: p("rm", "-a", "-f", "-t", "0", timeout=120),
                    lambda: unmount_under(runroot),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))
        left = _cgroups()
        remove_cgroup_parent()
        assert not left, left
        assert not _mounts_under(p.root) and not _mounts_under(runroot + "/")
        assert _pallet_links(p.nets) <= links_before


@pytest.fixture(scope="module")
def podman(pallet, tmp_path_factory):
    work = tmp_path_factory.mktemp("podman")
    runroot = tempfile.mkdtemp(prefix="ppr-")
    conf = work / "containers.conf"
    conf.write_text(PODMAN_CONF)
    base = [need("podman"), "--root", str(work / "root"), "--runroot", runroot, "--storage-driver", "vfs"]
    env = dict(os.environ, CONTAINERS_CONF=str(conf))

    def run(*args, timeout=60):
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    run.base, run.env = base, env

    try:
        r = run("pull", "-q", f"oci:{pallet.layout}:v1")
        assert r.returncode == 0, r.stderr
        run.image = r.stdout.strip()
        yield run
    finally:
        release_all(lambda: run("rm", "-a", "-f", "-t", "0", timeout=120),
                    lambda: run("rmi", "-a", "-f", timeout=120),
                    lambda: unmount_under(runroot),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))


def _without_podman_warnings(stderr: str) -> str:
    """podman's own log lines (a first run in a new store may warn about this machine's
    cgroups or systemd): not the container's output."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not (line.startswith('time="') and " level=" in line) and not line.startswith("WARN["))


def ps_names(pallet, *filters) -> list:
    """The sorted names ``ps -a --filter F...`` lists."""
    args = ["ps", "-a", "--format", "{{.Names}}"]
    for f in filters:
        args += ["--filter", f]
    return sorted(pallet(*args, check=True).stdout.split())


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


# -- side by side with podman -----------------------------------------------------------------

@pytest.mark.parametrize("argv", [["echo", "hi"], ["sh", "-c", "echo out; echo err >&2; exit 7"],
                                  ["sh", "-c", "exit 0"]])
def test_run_output_and_exit_code_as_podman(pallet, podman, argv):
    mine = pallet("run", "--rm", "--network", "none", pallet.image, *argv)
    theirs = podman("run", "--rm", "--network", "none", podman.image, *argv)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, _without_podman_warnings(theirs.stderr))


@pytest.mark.parametrize("flags,stdin", [(["-t"], None), (["-i"], b"abc\n")])
def test_run_interactive_and_tty_as_podman(pallet, podman, flags, stdin):
    """-i relays stdin through conmon's attach socket, -t gives a console (\r\n line ends)."""
    script = "[ -t 1 ] && echo tty || echo notty; cat </dev/stdin | tr a-z A-Z; exit 3" if "-i" in flags \
        else "[ -t 1 ] && echo tty || echo notty; exit 3"
    mine_cmd = [os.path.join(os.path.dirname(sys.executable), "pallet")] + pallet.base + \
        ["run", "--tls-verify=false", "--rm", "--network", "none", *flags, pallet.image, "sh", "-c", script]
    their_cmd = podman.base + ["run", "--rm", "--network", "none", *flags, podman.image, "sh", "-c", script]
    outs = []
    for cmd, env in ((mine_cmd, None), (their_cmd, podman.env)):
        kw = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        r = subprocess.run(cmd, capture_output=True, env=env, timeout=60, **kw)
        outs.append((r.returncode, r.stdout))
    assert outs[0] == outs[1]
    assert outs[0] == (3, b"tty\r\n" if "-t" in flags else b"notty\nABC\n")


@pytest.mark.parametrize("flags", [[], ["--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"],
                                   ["--cap-add", "net_admin", "--cap-drop", "chown"], ["--privileged"],
                                   ["-u", "1000:1000", "--cap-add", "kill"]])
def test_limits_and_capabilities_inside_as_podman(pallet, podman, flags):
    """What the container sees of its cgroup limits and capabilities (podman's rule for a
    privileged container: every capability pallet itself has)."""
    script = ("for f in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us memory.max pids.max cpu.max; "
              "do [ -e /sys/fs/cgroup/$f ] && echo $f $(cat /sys/fs/cgroup/$f); done; grep ^Cap /proc/self/status")
    mine = pallet("run", "--rm", "--network", "none", *flags, pallet.image, "sh", "-c", script)
    theirs = podman("run", "--rm", "--network", "none", *flags, podman.image, "sh", "-c", script)
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    assert mine.stdout == theirs.stdout
    assert "pids.max" in mine.stdout and "CapEff" in mine.stdout  # the cgroups are mounted, the checks ran


@pytest.mark.parametrize("argv,code", [(["/no/such/cmd"], 127), (["no-such-cmd"], 127), (["/etc/passwd"], 126)])
def test_run_missing_or_not_executable_command_as_podman(pallet, podman, argv, code):
    before = pallet.leftovers()
    mine = pallet("run", "--rm", "--network", "none", pallet.image, *argv)
    theirs = podman("run", "--rm", "--network", "none", podman.image, *argv)
    assert mine.returncode == theirs.returncode == code, (mine.stderr, theirs.stderr)
    line = _one_line_error(mine.stderr)
    tail = "OCI runtime attempted to invoke a command that was not found" if code == 127 else "OCI permission denied"
    assert line.endswith(tail) and theirs.stderr.strip().endswith(tail), (line, theirs.stderr)
    assert mine.stdout == theirs.stdout == ""
    assert pallet.leftovers() == before


def test_run_missing_image_as_podman(pallet, podman):
    before = pallet.leftovers()
    missing = pallet.image.replace("busybox:v1", "nosuch:v1")
    mine = pallet("run", "--rm", missing, "true")
    theirs = podman("run", "--rm", "--tls-verify=false", missing, "true")
    assert mine.returncode == theirs.returncode == 125
    # podman's pull line first (run pulls as pull does), then the one-line error
    for stderr in (mine.stderr, _without_podman_warnings(theirs.stderr)):
        first, rest = stderr.split("\n", 1)
        assert first == f"Trying to pull {missing}...", stderr
        _one_line_error(rest)
    assert pallet.leftovers() == before


# -- supervision, logs, --rm ---------------------------------------------------------------------

def test_detached_container_outlives_pallet_then_logs(pallet):
    r = pallet("run", "-d", "--name", "detached", "--network", "none", pallet.image,
               "sh", "-c", "echo ready; echo warn >&2; sleep 60", check=True)
    cid = r.stdout.strip()
    assert len(cid) == 64
    # the pallet process is gone; conmon holds the container
    ps = json.loads(pallet("ps", "--format", "json", check=True).stdout)
    assert [(c["Id"], c["State"], c["Names"]) for c in ps if c["Id"] == cid] == [(cid, "running", ["detached"])]
    wait_for(lambda: "ready" in pallet("logs", "detached").stdout, what="the log line")
    logs = pallet("logs", "detached", check=True)
    assert logs.stdout == "ready\n" and logs.stderr == "warn\n"
    assert pallet("stop", "-t", "0", "detached", check=True).stdout == "detached\n"
    doc = json.loads(pallet("container", "inspect", "detached", check=True).stdout)[0]
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 137 and not doc["State"]["Running"]
    assert pallet("wait", "detached", check=True).stdout == "137\n"
    tail = pallet("logs", "--tail", "1", "detached", check=True)  # the last line, whichever stream
    assert (tail.stdout, tail.stderr) == ("", "warn\n")
    assert pallet("rm", "detached", check=True).stdout == "detached\n"
    assert cid not in pallet.ids()


def test_exit_code_of_detached_container_and_start_attach(pallet):
    cid = pallet("create", "--network", "none", pallet.image, "sh", "-c", "echo again; exit 4",
                 check=True).stdout.strip()
    r = pallet("start", "-a", cid)
    assert (r.returncode, r.stdout) == (4, "again\n")
    assert pallet("wait", cid, check=True).stdout == "4\n"
    ps = json.loads(pallet("ps", "-a", "--format", "json", check=True).stdout)
    assert [c["ExitCode"] for c in ps if c["Id"] == cid] == [4]
    assert pallet("ps", "-a", "--format", "{{.ID}} {{.Status}}", check=True).stdout.count(cid[:12] + " Exited (4)") == 1
    pallet("rm", cid, check=True)


def test_rm_running_needs_force(pallet):
    cid = pallet("run", "-d", "--network", "none", pallet.image, "sleep", "60", check=True).stdout.strip()
    r = pallet("rm", cid)
    assert r.returncode == 2
    _one_line_error(r.stderr)
    assert pallet("rm", "-f", "-t", "0", cid, check=True).returncode == 0
    r = pallet("rm", cid)
    assert r.returncode == 1 and "no such container" in _one_line_error(r.stderr)


def test_rm_leaves_nothing_behind(pallet):
    before = pallet.leftovers()
    links = _pallet_links(pallet.nets)
    r = pallet("run", "--rm", pallet.image, "sh", "-c", "ip -o link | grep -c eth0")
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
    assert pallet.leftovers() == before
    # detached: conmon's exit command (pallet container cleanup --rm) removes it
    cid = pallet("run", "-d", "--rm", pallet.image, "true", check=True).stdout.strip()
    wait_for(lambda: cid not in pallet.ids(), what="the --rm container to go")
    wait_for(lambda: pallet.leftovers() == before, what="its mount, netns and cgroup to go")
    assert _pallet_links(pallet.nets) == links


def test_the_last_container_removed_leaves_nothing_mounted_under_the_run_root(pallet):
    """The namespaces' directory (RUNROOT/netns, bound onto itself while a namespace is in it)
    is unmounted with the last namespace: podman's 150-login ends with ``rm -rf RUNROOT``."""
    pallet("rm", "-a", "-f", "-t", "0", check=True, timeout=120)
    ids = [pallet("run", "-d", pallet.image, "sleep", "60", check=True).stdout.strip() for _ in range(2)]
    netns_dir = os.path.join(pallet.runroot, "netns")
    assert netns_dir in _mounts_under(pallet.runroot)
    pallet("rm", "-f", "-t", "0", ids[0], check=True)
    assert netns_dir in _mounts_under(pallet.runroot)  # the other container's namespace is in it
    pallet("rm", "-f", "-t", "0", ids[1], check=True)
    assert _mounts_under(pallet.runroot + "/") == []


def test_a_killed_foreground_run_rm_is_removed_by_the_exit_command(pallet):
    """A foreground ``run --rm`` holds its container: conmon's exit command (``cleanup --rm``)
    waits for it, so the removal is done once, by the run. Killed (SIGKILL: no wait, no
    removal), it drops the hold, and the exit command removes the container when it exits."""
    before = pallet.leftovers()
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    p = subprocess.Popen([exe] + pallet.base + ["run", "--tls-verify=false", "--rm", "--network", "none",
                                                "--cgroup-parent", CGROUP_PARENT, pallet.image, "sh", "-c",
                                                "echo ready; while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        (cid,) = pallet.ids() - before["containers"]
        p.kill()
        p.wait()
        assert pallet("inspect", cid).returncode == 0  # killed pallet: the container runs on
        pallet("kill", cid, check=True)
        wait_for(lambda: pallet.leftovers() == before, what="the exit command to remove the --rm container")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def _firewall() -> set:
    lines = set()
    for tool in ("iptables-save", "ip6tables-save"):
        lines |= set(subprocess.run([tool], capture_output=True, check=True, text=True).stdout.splitlines())
    return lines


def test_bridge_run_rm_leaves_no_veth_rule_address_or_namespace(pallet):
    """The bridge's teardown runs alongside the unmounts and the record's removal; ``run --rm``
    returns only when it is done: no veth, no port rule, no address kept, no namespace."""
    need("iptables-save")
    before = pallet.leftovers()
    links = _pallet_links(pallet.nets)
    ipam = os.path.join(pallet.runroot, "networks", "ipam.json")

    def addresses():
        try:
            with open(ipam) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    held = addresses()
    port = free_port()
    r = pallet("run", "--rm", "-p", f"127.0.0.1:{port}:80", pallet.image, "sh", "-c",
               "ip -4 -o addr show eth0 | grep -o 'inet [0-9.]*'")
    assert r.returncode == 0 and r.stdout.startswith("inet "), r.stderr
    ip = r.stdout.split()[1]
    assert pallet.leftovers() == before  # no container, mount, namespace, cgroup
    assert _pallet_links(pallet.nets) <= links  # no veth (nor a bridge of its own)
    assert addresses() == held  # its address is free again
    left = [line for line in _firewall() if f"dport {port}" in line or f"{ip}/32" in line or f"{ip}:80" in line]
    assert left == []


def test_a_failed_network_teardown_leaves_no_namespace_and_a_second_rm_finishes(pallet):
    """netavark's teardown failing (the network's bridge deleted behind pallet's back): the
    namespace goes all the same (a namespace left would keep its veth, and the bridge, on the
    host), the container stays for another try, and that ``rm -f`` removes it."""
    before = pallet.leftovers()
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    net, bridge = f"tdown{os.getpid()}", f"pt{os.getpid()}"[:15]  # names of this test alone on the host
    subprocess.run([exe, *pallet.base, "network", "--network-config-dir", pallet.nets, "create", "--interface-name",
                    bridge, net], check=True, capture_output=True, timeout=60)
    cid = None
    try:
        cid = pallet("run", "-d", "--network", net, pallet.image, "sleep", "60", check=True).stdout.strip()
        subprocess.run(["ip", "link", "del", bridge], check=True, capture_output=True)
        first = pallet("rm", "-f", "-t", "0", cid)
        assert pallet.leftovers()["netns"] == before["netns"], first.stderr  # gone even if rm failed
        if first.returncode != 0:  # netavark said so: one line, and the container is kept for a retry
            assert "netavark" in _one_line_error(first.stderr) and cid in pallet.ids()
            pallet("rm", "-f", "-t", "0", cid, check=True)
        assert pallet.leftovers() == before
        cid = None
    finally:
        if cid:
            pallet("rm", "-f", "-t", "0", cid)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        p = subprocess.run([exe, *pallet.base, "network", "--network-config-dir", pallet.nets, "inspect", net],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 0:  # the rules netavark could not remove once its bridge was gone
            from netlinks import drop_netavark_rules

            for s in json.loads(p.stdout)[0]["subnets"]:
                drop_netavark_rules(s["subnet"])
        subprocess.run([exe, *pallet.base, "network", "--network-config-dir", pallet.nets, "rm", "-f", net],
                       capture_output=True, timeout=60)


RUN_HEAVY = ("argparse", "json", "tomllib", "typing", "ctypes", "shutil", "ipaddress", "copy", "datetime", "bz2",
             "lzma", "re", "subprocess", "socket", "enum", "locale", "selectors", "base64")


def test_run_rm_imports_none_of_the_heavy_modules(pallet):
    """``run --rm --network none`` (the issue's benchmark) loads none of these: containers.conf
    comes from the run root's cache (tomllib imports typing, datetime, re), the rootfs is
    mounted through the syscall stand-in (not ctypes), trees are removed without shutil (bz2,
    lzma), the network modules (ipaddress) only for a network, conmon and the runtime are
    run through ``_std.proc`` and ``_std.sock`` (subprocess imports locale and re, socket
    builds enums and imports selectors)."""
    pallet("run", "--rm", "--network", "none", pallet.image, "true", check=True)  # fills the cache
    probe = (f"HEAVY = {RUN_HEAVY!r}\n"
             "import contextlib, io, sys\n"
             "sys.argv = ['pallet'] + sys.argv[1:]\n"
             "from pallet.cli.main import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    rc = main()\n"
             "print(rc, ' '.join(m for m in HEAVY if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe, *pallet.base, "run", "--tls-verify=false", "--rm",
                          "--network", "none", "--cgroup-parent", CGROUP_PARENT, pallet.image, "true"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    rc, _, loaded = out.stdout.strip().partition(" ")
    assert rc == "0" and loaded == "", f"run imported {loaded}"


def test_network_none_has_only_lo(pallet):
    r = pallet("run", "--rm", "--network", "none", pallet.image, "sh", "-c", "ls /sys/class/net")
    assert (r.returncode, r.stdout.split()) == (0, ["lo"]), r.stderr


def test_publish_serves_busybox_httpd_to_the_host(pallet):
    port = free_port()
    cid = pallet("run", "-d", "-p", f"127.0.0.1:{port}:80", pallet.image, "sh", "-c",
                 "mkdir -p /www && echo hello-from-pallet > /www/index.html && exec httpd -f -p 80 -h /www",
                 check=True).stdout.strip()
    try:
        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    return resp.read()
            except OSError:
                return None

        assert wait_for(fetch, what="httpd through the published port") == b"hello-from-pallet\n"
        doc = json.loads(pallet("container", "inspect", cid, check=True).stdout)[0]
        assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert doc["NetworkSettings"]["IPAddress"]
        assert f"127.0.0.1:{port}->80/tcp" in pallet("ps", check=True).stdout
    finally:
        pallet("rm", "-f", "-t", "0", cid)
    assert pallet("ps", "-a", "-q").stdout.count(cid[:12]) == 0


# -- bad input: one line, exit 125, nothing half-created ---------------------------------------------

def test_bad_input_is_one_line_and_leaves_nothing(pallet):
    cid = pallet("create", "--name", "taken", "--network", "none", pallet.image, "true", check=True).stdout.strip()
    try:
        before = pallet.leftovers()
        links = _pallet_links(pallet.nets)
        for args, words in (
                (["--name", "taken"], "already in use"),
                (["-p", "99999:80"], "99999"),
                (["-p", "80:abc"], "abc"),
                (["--network", "no-such-net"], "no-such-net"),
                (["--rm", "--restart", "always"], "--restart"),
                (["--memory", "lots"], "--memory"),
                (["-v", "/no/such/dir:/x"], "/no/such/dir"),
                (["--runtime", "/no/such/runtime"], "/no/such/runtime"),
                (["--user", "nosuchuser"], "nosuchuser")):
            r = pallet("run", *args, pallet.image, "true")
            assert r.returncode == 125, (args, r.stderr)
            assert words in _one_line_error(r.stderr), (args, r.stderr)
            assert pallet.leftovers() == before, args
            assert _pallet_links(pallet.nets) == links, args
    finally:
        pallet("rm", "-f", cid)


def test_ps_json_and_inspect_have_podmans_keys(pallet, podman):
    """``ps --format json`` and ``container inspect`` (State, Config, NetworkSettings, HostConfig)
    have podman 4.3's keys and value types, for the same container."""
    docs = {}
    for who, tool, image in (("pallet", pallet, pallet.image), ("podman", podman, podman.image)):
        r = tool("run", "-d", "--name", f"keys-{who}", "--network", "none", "--label", "a=b", image, "sleep", "60")
        assert r.returncode == 0, r.stderr
        try:
            ps = [c for c in json.loads(tool("ps", "--format", "json").stdout) if c["Names"] == [f"keys-{who}"]]
            verb = ["container", "inspect"] if who == "pallet" else ["inspect"]
            docs[who] = (ps[0], json.loads(tool(*verb, f"keys-{who}").stdout)[0])
        finally:
            tool("rm", "-f", "-t", "0", f"keys-{who}")
    (mine_ps, mine), (their_ps, theirs) = docs["pallet"], docs["podman"]

    def shape(d):
        return {k: type(v).__name__ for k, v in d.items() if v is not None}

    assert set(mine_ps) == set(their_ps)
    assert {k: t for k, t in shape(mine_ps).items() if k in shape(their_ps)} == \
        {k: t for k, t in shape(their_ps).items() if k in shape(mine_ps)}
    assert mine_ps["Labels"] == their_ps["Labels"]  # the image's labels and --label
    assert set(theirs) <= set(mine)
    for section in ("State", "Config", "NetworkSettings", "HostConfig"):
        assert set(theirs[section]) <= set(mine[section]), (section, set(theirs[section]) - set(mine[section]))
    assert mine["State"]["Status"] == theirs["State"]["Status"] == "running"
    assert (mine["Path"], mine["Args"], mine["Config"]["Cmd"]) == (theirs["Path"], theirs["Args"], theirs["Config"]["Cmd"])


def test_concurrent_run_ps_rm_keep_state_consistent(pallet):
    """Many pallet processes at once on the same containers (runs, ps, rm -f) never corrupt
    the records: every command succeeds and the final listing is exactly what is left."""
    old = [pallet("create", "--network", "none", pallet.image, "sleep", "60", check=True).stdout.strip()
           for _ in range(2)]
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    procs = []
    for i in range(3):
        procs.append(("run", subprocess.Popen([exe] + pallet.base + ["run", "-d", "--name", f"conc{i}", "--network",
                                                                   "none", pallet.image, "sleep", "60"],
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        procs.append(("ps", subprocess.Popen([exe] + pallet.base + ["ps", "-a", "--format", "json"],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for cid in old:
        procs.append(("rm", subprocess.Popen([exe] + pallet.base + ["rm", "-f", "-t", "0", cid],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    try:
        results = [(kind, p.communicate(timeout=120), p.returncode) for kind, p in procs]
        for kind, (out, err), rc in results:
            assert rc == 0, (kind, err)
            if kind == "ps":
                assert isinstance(json.loads(out), list)
        ps = json.loads(pallet("ps", "-a", "--format", "json", check=True).stdout)
        names = sorted(c["Names"][0] for c in ps if c["Names"][0].startswith("conc"))
        assert names == ["conc0", "conc1", "conc2"]
        assert all(c["State"] == "running" for c in ps if c["Names"][0].startswith("conc"))
        assert not set(old) & pallet.ids()
    finally:
        for kind, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        pallet("rm", "-f", "-t", "0", "conc0", "conc1", "conc2")


def test_logs_follow_until_the_container_exits(pallet):
    cid = pallet("run", "-d", "--network", "none", pallet.image, "sh", "-c",
                 "echo one; sleep 1; echo two; echo three >&2", check=True).stdout.strip()
    try:
        r = pallet("logs", "-f", "-t", cid, check=True, timeout=30)  # returns once it exited
        assert [line.split(" ", 1)[1] for line in r.stdout.splitlines()] == ["one", "two"]
        assert r.stderr.split(" ", 1)[1] == "three\n"
        assert pallet("wait", cid, check=True).stdout == "0\n"
    finally:
        pallet("rm", "-f", "-t", "0", cid)


@pytest.mark.parametrize("verb", [["kill"], ["stop"], ["rm"], ["start"], ["wait"], ["logs"]])
def test_unknown_container_as_podman(pallet, podman, verb):
    mine = pallet(*verb, "no-such-ctr")
    theirs = podman(*verb, "no-such-ctr")
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, _without_podman_warnings(theirs.stderr))


def test_signals_to_a_foreground_run_go_to_the_container(pallet):
    """podman's --sig-proxy: SIGTERM (or Ctrl-C) to pallet reaches the container, whose own exit
    code pallet then exits with; nothing is left of the --rm container."""
    import signal

    before = pallet.leftovers()
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    p = subprocess.Popen([exe] + pallet.base + ["run", "--tls-verify=false", "--rm", "--network", "none",
                                                pallet.image, "sh", "-c",
                                                "trap 'echo got-term; exit 5' TERM; echo ready; "
                                                "while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert (p.returncode, out) == (5, "got-term\n"), err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_for(lambda: pallet.leftovers() == before, what="the --rm container to go")


def test_ps_filters(pallet):
    a = pallet("create", "--name", "flt-a", "--label", "team=web", "--network", "none", pallet.image, "true",
               check=True).stdout.strip()
    b = pallet("run", "--name", "flt-b", "--network", "none", pallet.image, "sh", "-c", "exit 3").returncode
    assert b == 3
    try:
        def names(*filters):
            return ps_names(pallet, *filters)

        assert names("name=^flt-") == ["flt-a", "flt-b"]
        assert names("name=^flt-", "label=team=web") == ["flt-a"]
        assert names("name=^flt-", "status=exited") == ["flt-b"]
        assert names("name=^flt-", "status=exited", "status=created") == ["flt-a", "flt-b"]  # one key: either
        assert names("exited=3") == ["flt-b"]
        assert names(f"id={a[:8]}") == ["flt-a"]
        assert names("name=^flt-", "label!=team=web") == ["flt-b"]
        assert names("name=^flt-", f"ancestor={pallet.image}") == ["flt-a", "flt-b"]
        # without -a a status filter still lists stopped containers (podman's)
        r = pallet("ps", "--filter", "status=exited", "--filter", "name=^flt-", "--format", "{{.Names}}", check=True)
        assert r.stdout.split() == ["flt-b"]
        for bad in ("status=sleepy", "colour=red", "name=(", "exited=x", "name"):
            r = pallet("ps", "--filter", bad)
            assert r.returncode == 125 and _one_line_error(r.stderr), bad
    finally:
        pallet("rm", "-f", "flt-a", "flt-b")


def _distinct_image(layout: str, dest: str) -> str:
    """A copy of the demo layout whose config carries a label: an image ID of its own (removing
    it cannot touch the module's image)."""
    import hashlib

    shutil.copytree(layout, dest)

    def blob(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(dest, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    def read(desc) -> dict:
        with open(os.path.join(dest, "blobs", "sha256", desc["digest"].split(":", 1)[1]), "rb") as f:
            return json.loads(f.read())

    with open(os.path.join(dest, "index.json")) as f:
        index = json.load(f)
    mdesc = index["manifests"][0]
    manifest = read(mdesc)
    config = read(manifest["config"])
    config.setdefault("config", {}).setdefault("Labels", {})["test"] = "rmi-f"
    manifest["config"].update(blob(json.dumps(config).encode()))
    mdesc.update(blob(json.dumps(manifest).encode()))
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    return manifest["config"]["digest"].split(":", 1)[1]


def _processes_naming(text: str) -> list:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_rmi_force_stops_and_removes_the_containers_using_the_image_as_podman(pallet, podman, tmp_path):
    """``rmi -f IMAGE`` (podman 4.3): the containers using the image are stopped with their stop
    signal and removed (conmon, mounts, namespace gone), then the image; stdout is only podman's
    Untagged/Deleted lines. Without -f it is refused (exit 2) naming a container; ``image prune
    -a`` never removes an image a run container uses."""
    iid = _distinct_image(pallet.layout, str(tmp_path / "layout"))
    image = pallet.image.replace("/ctr/busybox:v1", "/ctr/rmi-force:v1")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1",
                    f"docker://{image}"], check=True, capture_output=True, timeout=120)
    script = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    before = pallet.leftovers()
    assert podman("pull", "-q", "--tls-verify=false", image).returncode == 0
    outs = {}
    for who, tool in (("pallet", pallet), ("podman", podman)):
        pull = ["--tls-verify=false"] if who == "podman" else []
        running = tool("run", "-d", *pull, "--network", "none", "--name", f"rmi-run-{who}", image,
                       "sh", "-c", script)
        assert running.returncode == 0, running.stderr
        cid = running.stdout.strip()
        created = tool("create", *pull, "--network", "none", "--name", f"rmi-created-{who}", image, "true")
        assert created.returncode == 0, created.stderr
        if who == "pallet":
            wait_for(lambda: _processes_naming(cid), what="the container's conmon")
            # a stopped run container keeps its image from image prune -a, as a running one does
            assert tool("image", "prune", "-a", "-f").returncode == 0
            assert tool("image", "exists", image).returncode == 0
        refused = tool("rmi", image)
        assert refused.returncode == 2, refused.stderr
        line = _one_line_error(_without_podman_warnings(refused.stderr))
        assert "in use" in line
        assert tool("image", "exists", image).returncode == 0
        removed = tool("rmi", "-f", image, timeout=60)
        assert removed.returncode == 0, removed.stderr
        outs[who] = removed.stdout
        assert not {cid, created.stdout.strip()} & set(tool("ps", "-a", "-q", "--no-trunc").stdout.split())
        assert tool("image", "exists", image).returncode == 1
        if who == "pallet":
            assert not _processes_naming(cid)
            assert pallet.leftovers() == before
    assert outs["pallet"] == outs["podman"] == f"Untagged: {image}\nDeleted: {iid}\n"


def test_system_reset_stops_and_removes_running_containers(pallet, registry, tmp_path):
    """``system reset -f`` stops a running container and removes it through the container model
    (podman's): no conmon, process, mount or namespace is left, not only the store records."""
    own = Pallet(str(tmp_path), tempfile.mkdtemp(prefix="pcs-"), registry.host)
    cid = None
    try:
        before = own.leftovers()
        cid = own("run", "-d", "--network", "none", own.image, "sh", "-c",
                  "trap 'exit 0' TERM; while :; do sleep 0.1; done", check=True).stdout.strip()
        wait_for(lambda: _processes_naming(cid), what="the container's conmon")
        r = own("system", "reset", "-f", timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        # conmon and its exit command are on their way out once reset returns: wait, never sleep
        wait_for(lambda: not _processes_naming(cid), what="the container's conmon and processes to end")
        assert own.leftovers() == before
    finally:
        release_all(lambda: own("rm", "-a", "-f", "-t", "0", timeout=120),
                    lambda: unmount_under(own.runroot),
                    lambda: shutil.rmtree(own.runroot, ignore_errors=True))


def test_cgroup_parent_places_the_container_and_a_bad_one_is_refused(pallet):
    """``--cgroup-parent`` (the fixture passes its own): the container's cgroup is below it, as
    /proc/self/cgroup shows inside, and inspect says so; a path climbing out is refused (125)
    before anything is made."""
    r = pallet("run", "--rm", pallet.image, "cat", "/proc/self/cgroup", check=True)
    assert f"/{CGROUP_PARENT}/pallet-" in r.stdout, r.stdout
    r = pallet("create", "--name", "cgp", pallet.image, "true", check=True)
    try:
        [doc] = json.loads(pallet("container", "inspect", "cgp", check=True).stdout)
        assert doc["HostConfig"]["CgroupParent"] == "/" + CGROUP_PARENT
    finally:
        pallet("rm", "cgp")
    before = pallet.leftovers()
    for bad in ("../escape", "/a/../../b", "/", "a b"):
        r = pallet("run", "--rm", "--cgroup-parent", bad, pallet.image, "true")
        assert r.returncode == 125 and "--cgroup-parent" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
    assert pallet.leftovers() == before


def test_all_and_ignore_flags_of_start_stop_kill_rm(pallet):
    """podman's ``--all`` (running ones for stop/kill, the others for start, IDs printed),
    ``stop --ignore``, ``rm --force`` of a missing container (success, as podman 4.3), and both
    or neither of names and ``--all`` refused."""
    ids = [pallet("run", "-d", "--network", "none", "--name", f"all{i}", pallet.image, "sleep", "300",
                  check=True).stdout.strip() for i in range(2)]
    try:
        assert sorted(pallet("stop", "-a", "-t", "0", check=True).stdout.split()) == sorted(ids)
        assert pallet("stop", "--all", check=True).stdout == ""  # none running any more
        assert sorted(pallet("start", "--all", check=True).stdout.split()) == sorted(ids)
        assert sorted(pallet("kill", "-a", check=True).stdout.split()) == sorted(ids)
        r = pallet("stop", "--ignore", "--timeout", "0", "no-such-ctr")
        assert (r.returncode, r.stdout) == (0, "")
        assert pallet("stop", "no-such-ctr").returncode == 125
        assert pallet("rm", "--force", "no-such-ctr").returncode == 0
        assert pallet("rm", "no-such-ctr").returncode == 1
        for args in (["stop"], ["kill"], ["start"], ["stop", "-a", "all0"]):
            r = pallet(*args)
            assert r.returncode == 125 and "Traceback" not in r.stderr, (args, r.stderr)
    finally:
        pallet("rm", "-f", "-t", "0", *ids)


def test_logs_since_and_until_filter_by_the_lines_times(pallet):
    pallet("run", "--network", "none", "--name", "lgwin", pallet.image, "sh", "-c", "echo one; echo two", check=True)
    try:
        assert pallet("logs", "lgwin", check=True).stdout == "one\ntwo\n"
        assert pallet("logs", "--since", "2000-01-01", "lgwin", check=True).stdout == "one\ntwo\n"
        assert pallet("logs", "--since", "2999-01-01T00:00:00Z", "lgwin", check=True).stdout == ""
        assert pallet("logs", "--until", "946684800", "lgwin", check=True).stdout == ""  # Unix seconds: 2000
        # as podman 4.3 reads them: a duration is before now for --since, after it for --until
        assert pallet("logs", "--until", "1h", "--since", "24h", "lgwin", check=True).stdout == "one\ntwo\n"
        assert pallet("logs", "--until=-1h", "lgwin", check=True).stdout == ""
        r = pallet("logs", "--since", "yesterday-ish", "lgwin")
        assert r.returncode == 125 and "--since" in r.stderr and "Traceback" not in r.stderr
    finally:
        pallet("rm", "-f", "lgwin")
