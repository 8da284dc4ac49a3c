"""RUN steps and ``builder run`` get networks as buildah gives them: a private namespace on the
default network through netavark (outbound access by netavark's masquerade), ``host``, ``none``,
or a network by name. The traffic stays on this machine: an HTTP server of the test listens on
the host, and the RUN fetches it through the bridge's gateway address and through the host's own
address (routed out of the namespace like any outbound connection).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess

import pytest

from buildtools import base, pallet  # noqa: F401  (fixtures)
from conftest import http_serving, unmount_under

#: busybox's wget -T crashes on Debian: bound the fetch with timeout instead
FETCH = ("gw=$(ip route | awk '/^default/ {{print $3}}'); "
         "timeout 10 wget -q -O - http://$gw:{port}/token > /via-gateway; "
         "timeout 10 wget -q -O - http://{host_ip}:{port}/token > /via-host-address; "
         "cat /etc/resolv.conf > /resolv; ls /sys/class/net > /links")


def _attachments(network: str) -> list:
    """The run root's attachments (pallet's default run root: PalletStore's) to ``network``."""
    d = "/run/pallet/networks/endpoints"
    out = []
    for name in os.listdir(d) if os.path.isdir(d) else ():
        try:
            with open(os.path.join(d, name)) as f:
                if network in json.load(f).get("networks", {}):
                    out.append(name)
        except (OSError, ValueError, AttributeError):
            pass
    return out


@pytest.fixture
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"token-from-host\n" if self.path == "/token" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_serving(Handler, "0.0.0.0") as srv:
        yield srv.server_address[1]


def _host_ip() -> str | None:
    r = subprocess.run(["ip", "-j", "route", "get", "192.0.2.200"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    routes = json.loads(r.stdout or "[]")
    return routes[0].get("prefsrc") if routes else None


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """The network definitions in the test's own directory (never /etc/pallet/networks)."""
    from pallet.containers.network.netavark import find_helper

    assert find_helper("netavark"), "netavark is not installed (scripts/install.sh installs it)"
    if os.geteuid() != 0:
        pytest.fail("netavark needs root (the suite runs as root: see .ci/run)")
    d = str(tmp_path / "networks")
    monkeypatch.setenv("PALLET_NETWORK_CONFIG_DIR", d)
    conf = tmp_path / "containers.conf"  # no netns: buildah's default, private (PalletStore's says host)
    conf.write_text("[containers]\n")
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    yield d


def _tree_text(pallet, image: str, paths) -> dict:
    mnt = pallet("image", "mount", image).stdout.strip()
    try:
        out = {}
        for p in paths:
            with open(os.path.join(mnt, p.lstrip("/"))) as f:
                out[p] = f.read()
        return out
    finally:
        pallet("image", "umount", image)


def test_run_steps_default_to_a_private_network_with_outbound_access(pallet, nets, server, tmp_path):
    """Without --network (and no containers.conf netns) a RUN is attached to the default network."""
    host_ip = _host_ip() or "127.0.0.1"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:v1\nRUN " + FETCH.format(port=server, host_ip=host_ip) + "\n"
                                    "RUN --network=none ls /sys/class/net > /links-none\n")
    pallet("build", "-t", "netted", str(ctx))
    got = _tree_text(pallet, "netted", ["/via-gateway", "/via-host-address", "/links", "/links-none"])
    assert got["/via-gateway"] == got["/via-host-address"] == "token-from-host\n"
    assert sorted(got["/links"].split()) == ["eth0", "lo"]  # a namespace of its own, attached
    assert got["/links-none"].split() == ["lo"]
    with open(os.path.join(nets, "pallet.json")) as f:  # the default network, in the given directory
        assert json.load(f)["driver"] == "bridge"
    (tmp_path / "host.conf").write_text('[containers]\nnetns = "none"\n')  # containers.conf's netns
    pallet("build", "--no-cache", "-t", "netted2", str(ctx), env={"CONTAINERS_CONF": str(tmp_path / "host.conf")},
           check=False)
    assert _tree_text(pallet, "netted2", ["/links"])["/links"].split() == ["lo"]


def test_builder_run_network_modes(pallet, nets, server):
    host_ip = _host_ip()
    pallet("network", "create", "r10c-buildnet")  # in $PALLET_NETWORK_CONFIG_DIR
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    try:
        fetch = f"timeout 10 wget -q -O - http://{host_ip or '127.0.0.1'}:{server}/token"
        r = pallet("builder", "run", "--network", "r10c-buildnet", ctr, "--", "sh", "-c",
                   "ls /sys/class/net; " + fetch)
        assert r.stdout.split() == ["eth0", "lo", "token-from-host"]
        r = pallet("builder", "run", "--network", "host", ctr, "--", "sh", "-c",
                   f"timeout 10 wget -q -O - http://127.0.0.1:{server}/token")
        assert r.stdout == "token-from-host\n"
        r = pallet("builder", "run", "--network", "none", ctr, "--", "sh", "-c", fetch, check=False)
        assert r.returncode != 0 and r.stdout == ""  # only lo: nothing reachable
        bad = pallet("builder", "run", "--network", "r10c-nosuchnet", ctr, "--", "true", check=False)
        assert bad.returncode == 125 and "r10c-nosuchnet" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    finally:
        pallet("builder", "rm", ctr)
        pallet("network", "rm", "r10c-buildnet")
    assert _attachments("r10c-buildnet") == []  # each command's attachment went with it


def _nothing_left(runroot) -> None:
    netns_dir = os.path.join(runroot, "netns")
    assert not os.path.isdir(netns_dir) or os.listdir(netns_dir) == []
    ep = os.path.join(runroot, "networks", "endpoints")
    assert not os.path.isdir(ep) or os.listdir(ep) == []
    ipam = os.path.join(runroot, "networks", "ipam.json")
    if os.path.exists(ipam):
        with open(ipam) as f:
            assert json.load(f) == {}
    with open("/proc/self/mountinfo") as f:  # no namespace is kept by a mount any more
        assert not [line for line in f if line.split()[4].startswith(netns_dir + "/")]


def test_run_steps_of_a_build_share_one_namespace_torn_down_at_the_end(pallet, nets, tmp_path):
    """Every RUN step of a build on the same network joins one namespace, attached once and
    torn down once, when the build succeeds and when a step fails (the namespace itself, its
    attachment and its addresses are gone when pallet returns). A step with --cap-add
    NET_ADMIN could change it for the next: such builds give each step its own."""
    runroot = str(tmp_path / "run")
    try:
        _shared_namespace_builds(pallet, tmp_path, runroot)
    finally:
        unmount_under(runroot)  # the namespaces' directory, bound onto itself (netns.py)


def _shared_namespace_builds(pallet, tmp_path, runroot):
    # a namespace is told by its eth0's MAC address, random for each attachment (its inode
    # number is not enough: a freed one is handed to the next namespace made)
    ns = "cat /sys/class/net/eth0/address"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:v1\n"
        f"RUN {ns} > /ns1; ls /sys/class/net > /links1; hostname > /h1\n"
        "COPY Dockerfile /df\n"
        f"RUN {ns} > /ns2; ls /sys/class/net > /links2; hostname > /h2\n"
        "RUN --network=none ls /sys/class/net > /links3\n")
    pallet("--runroot", runroot, "build", "-t", "shared-ns", str(ctx))
    got = _tree_text(pallet, "shared-ns", ["/ns1", "/ns2", "/links1", "/links2", "/links3", "/h1", "/h2"])
    assert got["/ns1"] == got["/ns2"] and len(got["/ns1"].strip()) == 17
    assert got["/links1"].split() == got["/links2"].split() == ["eth0", "lo"]
    assert got["/links3"].split() == ["lo"]
    assert got["/h1"] != got["/h2"]  # still a container of its own per step
    _nothing_left(runroot)

    # with a cache that the first step hits: the namespace is made at the first step that runs;
    # a step fails: the namespace still goes
    (ctx / "Dockerfile").write_text(
        "FROM busybox:v1\n"
        f"RUN {ns} > /ns1; ls /sys/class/net > /links1; hostname > /h1\n"
        f"RUN echo mac=$({ns}); echo step2 > /s2\n"
        f"RUN echo mac=$({ns}); exit 3\n")
    p = pallet("--runroot", runroot, "build", str(ctx), check=False)
    assert p.returncode == 3, p.stderr
    seen = [w for w in p.stdout.split() if w.startswith("mac=") and "$" not in w]
    assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) == 21, p.stdout
    _nothing_left(runroot)

    (ctx / "Dockerfile").write_text(f"FROM busybox:v1\nRUN echo mac=$({ns})\nRUN echo mac=$({ns})\n")
    p = pallet("--runroot", runroot, "build", "--cap-add", "NET_ADMIN", str(ctx))
    seen = [w for w in p.stdout.split() if w.startswith("mac=") and "$" not in w]
    assert len(seen) == 2 and seen[0] != seen[1], p.stdout
    _nothing_left(runroot)


def test_a_killed_builds_namespace_is_reaped_by_the_next_build(pallet, nets, tmp_path):
    """A pallet killed mid-RUN (SIGKILL: no teardown of its own) leaves its namespace, its
    attachment, addresses and netavark's rules; the next build in the same run root tears them
    down before it attaches its own (a live build's are left alone: its lock is held)."""
    import signal

    from conftest import wait_for

    runroot = str(tmp_path / "run")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:v1\nRUN touch /started; sleep 600\n")
    ep = os.path.join(runroot, "networks", "endpoints")
    nsdir = os.path.join(runroot, "netns")
    try:
        p = subprocess.Popen(pallet.args("--runroot", runroot, "build", str(ctx)), env=pallet.env(),
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: os.path.isdir(ep) and os.listdir(ep) and os.listdir(nsdir), what="the build's attachment")
            inode = os.stat(os.path.join(nsdir, os.listdir(nsdir)[0])).st_ino
            wait_for(lambda: _in_netns(inode), what="the RUN step's command in the namespace")
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in _in_netns(inode):  # the RUN's own processes (a session of their own) go too
            os.kill(pid, signal.SIGKILL)
        assert os.listdir(ep) and os.listdir(nsdir)  # what the killed build left
        states = os.path.join(runroot, "build-runtime")
        killed = os.listdir(states)  # and its RUN container: the runtime's state, its cgroups
        assert len(killed) == 1 and killed[0].startswith("pallet-build-"), killed
        (ctx / "Dockerfile").write_text("FROM busybox:v1\nRUN true\n")
        pallet("--runroot", runroot, "build", str(ctx))
        _nothing_left(runroot)
        assert os.listdir(states) == [] and os.listdir(states + "-owners") == []
        assert not [d for d in os.listdir("/sys/fs/cgroup") if os.path.exists(f"/sys/fs/cgroup/{d}/{killed[0]}")]
    finally:
        unmount_under(runroot)


def _in_netns(inode: int) -> list:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    out.append(int(pid))
            except OSError:
                pass
    return out


@pytest.mark.unit
def test_which_capabilities_need_a_namespace_per_step():
    from pallet.builder.network import needs_own_namespace
    from pallet.builder.run import RunExtras

    assert not needs_own_namespace(None) and not needs_own_namespace(RunExtras(cap_add=["NET_RAW", "CHOWN"]))
    for caps in (["NET_ADMIN"], ["cap_net_admin"], ["CAP_SYS_ADMIN"], ["all"], ["CHOWN", "NET_ADMIN"]):
        assert needs_own_namespace(RunExtras(cap_add=caps)), caps
