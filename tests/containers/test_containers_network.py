"""Container networks on the real kernel with Debian's netavark and aardvark-dns: namespaces
attached to user networks talk by IP and by name, a host port reaches a namespace, --internal
has no way out, and teardown leaves no veth, bridge, namespace mount, firewall rule or
aardvark-dns behind. Only addresses on this host and namespaces the tests made are used.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import free_port, run_pallet
from netlinks import pallet_links as _links

NETAVARK_CHAINS = ("NETAVARK_FORWARD", "NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ", "NETAVARK-HOSTPORT-SETMARK")




def _rules() -> set:
    """Firewall rules (IPv4 and IPv6), counters stripped."""
    lines = set()
    for tool in ("iptables-save", "ip6tables-save"):
        out = subprocess.run([tool], capture_output=True, check=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("#"):
                continue
            if line.startswith(":"):
                line = line.split(" ")[0]
            lines.add(line)
    return lines


def _ours(lines: set, needles: list[str]) -> set:
    """The rules of one network: lines naming its subnet or port, and every line of the chains
    those lines jump to or sit in (netavark's per-network chains)."""
    hits = {line for line in lines if any(n in line for n in needles)}
    chains = set()
    for line in hits:
        words = line.split()
        for flag in ("-A", "-j"):
            if flag in words and words.index(flag) + 1 < len(words):
                c = words[words.index(flag) + 1]
                if c.startswith("NETAVARK-") and c not in NETAVARK_CHAINS:
                    chains.add(c)
    return hits | {line for line in lines if any(c in line.split() or ":" + c == line for c in chains)}


def _aardvarks(run_dir: str) -> list:
    """Live aardvark-dns processes whose configuration is under ``run_dir``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cmd and cmd[0].endswith(b"aardvark-dns") and any(run_dir.encode() in a for a in cmd):
            found.append(int(pid))
    return found


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == path for line in f)


class Env:
    def __init__(self, tmp_path):
        self.cfg = str(tmp_path / "networks")
        self.runroot = str(tmp_path / "run")
        self.root = str(tmp_path / "root")
        self.env = {"PALLET_NETWORK_CONFIG_DIR": self.cfg}
        from pallet.containers.network.config import Networks
        from pallet.containers.network.endpoints import Endpoints

        self.networks = Networks(self.cfg)
        self.endpoints = Endpoints(self.networks, self.runroot)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def pallet(self, *args, check=True):
        return run_pallet("--root", self.root, "--runroot", self.runroot, *args, check=check, env=self.env)

    def sandbox(self, name: str, networks: dict, ports=None) -> tuple[str, str, dict]:
        """A namespace attached to ``networks``: (id, netns path, netavark's result)."""
        from pallet.containers.network import netns

        cid = os.urandom(32).hex()
        path = netns.create(self.runroot, cid[:12])
        self.namespaces.append(path)
        result = self.endpoints.attach(cid, name, path, networks, ports)
        return cid, path, result

    def serve(self, netns_path: str, port: int, reply: bytes) -> subprocess.Popen:
        """A TCP server inside the namespace answering ``reply``; returns once it listens."""
        code = ("import socket,sys\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('0.0.0.0', {port})); s.listen(8); print('ready', flush=True)\n"
                "while True:\n"
                "    c,_=s.accept(); c.sendall(sys.argv[1].encode()); c.close()\n")
        p = subprocess.Popen(["nsenter", f"--net={netns_path}", sys.executable, "-c", code, reply.decode()],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    def cleanup(self) -> None:
        from pallet.containers.network import netns

        for p in self.procs:
            p.kill()
            p.wait()
        try:
            eps = self.endpoints.list()
        except Exception:  # noqa: BLE001 - a test wrote a malformed state on purpose
            eps = []
        for ep in eps:
            try:
                self.endpoints.detach(ep["id"])
            except Exception:  # noqa: BLE001 - best effort, the namespaces go next whatever happens
                pass
        for path in self.namespaces:
            netns.remove(path)
        for n in self.networks._read_all():  # a bridge a failed test left: remove it so no other test sees it
            iface = n.get("network_interface")
            if iface and os.path.exists(f"/sys/class/net/{iface}"):
                subprocess.run(["ip", "link", "del", iface], capture_output=True)
        for pid in _aardvarks(self.runroot):
            os.kill(pid, 9)
        d = netns.netns_dir(self.runroot)
        if _mounted(d):  # the shared self-bind pallet made (podman keeps /run/netns so): not in a tmp dir
            subprocess.run(["umount", "-l", d], check=True)


@pytest.fixture
def net(tmp_path, root_required):
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.cleanup()


CLIENT = r"""
import socket, struct, sys
name, dns, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ip = name
if not name[0].isdigit():
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.sendto(q, (dns, 53))
    r = u.recv(4096)
    an = struct.unpack(">H", r[6:8])[0]
    i = len(q)
    ip = None
    for _ in range(an):
        i += 2 if r[i] >= 0xC0 else r.index(b"\0", i) + 1 - i
        t, _c, _ttl, n = struct.unpack(">HHIH", r[i:i + 10]); i += 10
        if t == 1:
            ip = socket.inet_ntoa(r[i:i + 4])
        i += n
    if ip is None:
        sys.exit("no A record for " + name)
c = socket.create_connection((ip, port), timeout=5)
print(ip, c.recv(100).decode())
"""


def _fetch(netns_path: str, target: str, dns: str, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={netns_path}", sys.executable, "-c", CLIENT, target, dns, str(port)],
                          capture_output=True, text=True, timeout=30)


def _host_routes():
    from pallet.containers.network.subnets import host_networks

    return host_networks()


def test_user_network_by_ip_and_by_name_then_nothing_left(net):
    links, rules = _links(), _rules()
    name = net.pallet("network", "create", "webnet").stdout.strip()
    assert name == "webnet"
    doc = json.loads(net.pallet("network", "inspect", "webnet").stdout)[0]
    subnet = ipaddress.ip_network(doc["subnets"][0]["subnet"])
    # chosen free: before its bridge exists, nothing on the host overlaps it
    assert not [r for r in _host_routes() if r.version == 4 and r.overlaps(subnet)]
    assert doc["dns_enabled"] is True and doc["network_interface"] not in links

    a_id, a_ns, a_res = net.sandbox("web", {"webnet": {}})
    b_id, b_ns, b_res = net.sandbox("client", {"webnet": {}})
    a_ip = a_res["webnet"].interfaces[0].subnets[0].ipnet.split("/")[0]
    gw = a_res["webnet"].interfaces[0].subnets[0].gateway
    assert ipaddress.ip_address(a_ip) in subnet
    assert b_res["webnet"].dns_server_ips == [gw]
    net.serve(a_ns, 8080, b"hello from web")

    by_ip = _fetch(b_ns, a_ip, gw, 8080)
    assert by_ip.returncode == 0, by_ip.stderr
    assert by_ip.stdout.split() == [a_ip, "hello", "from", "web"]
    by_name = _fetch(b_ns, "web", gw, 8080)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.split()[0] == a_ip and "hello from web" in by_name.stdout
    assert _aardvarks(net.runroot)
    mine = _ours(_rules() - rules, [str(subnet)])
    assert any("MASQUERADE" in line for line in mine)

    # the network is in use: rm refuses (podman's exit 2) and changes nothing
    p = net.pallet("network", "rm", "webnet", check=False)
    assert p.returncode == 2 and "being used" in p.stderr and len(p.stderr.splitlines()) == 1
    for p in net.procs:
        p.kill()
        p.wait()
    net.procs.clear()

    from pallet.containers.network import netns

    net.endpoints.detach(a_id)
    assert doc["network_interface"] in _links()  # b is still on the bridge
    net.endpoints.detach(b_id)
    for path in (a_ns, b_ns):
        netns.remove(path)
        assert not os.path.exists(path) and not _mounted(path)
    assert _links() <= links  # no veth, no bridge
    assert net.endpoints.list() == []
    deadline = time.monotonic() + 10
    while _aardvarks(net.runroot) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _aardvarks(net.runroot) == []
    assert _rules() & mine == set()  # other engineers' podman may add rules meanwhile: only ours are compared
    assert not [line for line in _rules() - rules if str(subnet) in line]  # (stale ones of killed runs: not ours)
    assert net.pallet("network", "rm", "webnet").stdout.strip() == "webnet"


def test_published_host_port_reaches_the_namespace(net):
    from pallet.containers.network import ports

    rules = _rules()
    port = free_port()
    net.pallet("network", "create", "pubnet")
    cid, ns, res = net.sandbox("srv", {"pubnet": {}}, ports.parse(f"127.0.0.1:{port}:80"))
    net.serve(ns, 80, b"published")
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                assert c.recv(100) == b"published"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    subnet = net.networks.get("pubnet")["subnets"][0]["subnet"]
    mine = _ours(_rules() - rules, [f"--dport {port}", subnet])
    assert any(f"--dport {port}" in line for line in mine)
    net.endpoints.detach(cid)
    assert _rules() & mine == set()
    assert not [line for line in _rules() - rules if f"--dport {port}" in line or subnet in line]


def test_internal_network_has_no_way_out(net):
    host_ip = next(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").ip
                   for l in json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                                                      check=True).stdout)
                   if not l["ifname"].startswith(("lo", "pallet", "veth"))
                   for a in l.get("addr_info", []) if a.get("scope") == "global")
    listener = socket.socket()
    listener.bind((str(host_ip), 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    try:
        net.pallet("network", "create", "--internal", "closed")
        net.pallet("network", "create", "open")
        _, closed_ns, _ = net.sandbox("in", {"closed": {}})
        _, open_ns, _ = net.sandbox("out", {"open": {}})
        probe = ("import socket,sys\ntry:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
                 "    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)\n")
        got = {}
        for label, ns in (("closed", closed_ns), ("open", open_ns)):
            got[label] = subprocess.run(["nsenter", f"--net={ns}", sys.executable, "-c", probe, str(host_ip),
                                         str(port)], capture_output=True, text=True, timeout=30).stdout.strip()
        assert got["open"] == "connected"
        assert got["closed"].startswith("refused")  # no default route: ENETUNREACH at once
        routes = subprocess.run(["nsenter", f"--net={closed_ns}", "ip", "-j", "route"], capture_output=True,
                                text=True, check=True).stdout
        assert not [r for r in json.loads(routes) if r.get("dst") == "default"]
    finally:
        listener.close()


def test_network_none_has_only_lo(net):
    from pallet.containers.network import netns

    path = netns.create(net.runroot, "none1")
    net.namespaces.append(path)
    out = subprocess.run(["nsenter", f"--net={path}", "ip", "-j", "link"], capture_output=True, text=True,
                         check=True).stdout
    links = json.loads(out)
    assert [l["ifname"] for l in links] == ["lo"] and "UP" in links[0]["flags"]
    netns.remove(path)
    assert not os.path.exists(path) and not _mounted(path)


def test_the_last_namespace_removed_unmounts_the_directory(net):
    """RUNROOT/netns is bound onto itself (shared) while namespaces live in it; removing the
    last one unmounts it, so nothing is left mounted under the run root (``rm -rf RUNROOT``
    works, as with podman, whose namespaces live in /run/netns)."""
    from pallet.containers.network import netns

    d = netns.netns_dir(net.runroot)
    a = netns.create(net.runroot, "last-a")
    net.namespaces.append(a)
    b = netns.create(net.runroot, "last-b")
    net.namespaces.append(b)
    assert _mounted(d) and _mounted(a) and _mounted(b)
    netns.remove(a)
    assert _mounted(d) and _mounted(b) and not os.path.exists(a)  # one left: the directory stays shared
    netns.remove(b)
    assert not _mounted(d)
    with open("/proc/self/mountinfo") as f:
        assert [l.split(" ")[4] for l in f if l.split(" ")[4].startswith(net.runroot + "/")] == []
    c = netns.create(net.runroot, "last-c")  # made again on the next use
    net.namespaces.append(c)
    assert _mounted(d) and _mounted(c)
    netns.remove(c)
    assert not _mounted(d)


def test_failed_setup_leaves_nothing(net, tmp_path):
    links = _links()
    net.pallet("network", "create", "halfnet")
    bogus = tmp_path / "not-a-netns"
    bogus.write_text("")
    from pallet.errors import ContainerNetworkError

    with pytest.raises(ContainerNetworkError) as err:
        net.endpoints.attach(os.urandom(32).hex(), "x", str(bogus), {"halfnet": {}})
    assert "netavark setup failed" in str(err.value)
    assert _links() <= links
    assert net.endpoints.list() == []
    with open(os.path.join(net.runroot, "networks", "ipam.json")) as f:
        assert json.load(f) == {}


def test_connect_disconnect(net):
    net.pallet("network", "create", "one")
    net.pallet("network", "create", "two")
    cid, ns, _ = net.sandbox("multi", {"one": {}})
    net.pallet("network", "connect", "--alias", "m2", "two", "multi")
    ep = net.endpoints.get(cid)
    assert ep["networks"]["two"]["interface"] == "eth1" and "m2" in ep["networks"]["two"]["aliases"]
    names = {l["ifname"] for l in json.loads(subprocess.run(["nsenter", f"--net={ns}", "ip", "-j", "link"],
                                                             capture_output=True, text=True, check=True).stdout)}
    assert {"eth0", "eth1"} <= names
    p = net.pallet("network", "connect", "two", "multi", check=False)
    assert p.returncode == 125 and "already connected" in p.stderr
    net.pallet("network", "disconnect", "two", cid[:12])
    names = {l["ifname"] for l in json.loads(subprocess.run(["nsenter", f"--net={ns}", "ip", "-j", "link"],
                                                             capture_output=True, text=True, check=True).stdout)}
    assert "eth1" not in names and "eth0" in names
    assert "two" not in net.endpoints.get(cid)["networks"]
    # the name is taken while it is attached
    from pallet.errors import ContainerNetworkError

    with pytest.raises(ContainerNetworkError, match="already in use"):
        net.sandbox("multi", {"two": {}})
    # rm -f disconnects the users first, then removes the definition
    assert net.pallet("network", "rm", "-f", "one").stdout.strip() == "one"
    assert net.endpoints.get(cid) is None
    names = {l["ifname"] for l in json.loads(subprocess.run(["nsenter", f"--net={ns}", "ip", "-j", "link"],
                                                             capture_output=True, text=True, check=True).stdout)}
    assert names == {"lo"}


def test_malformed_state_is_one_line(net):
    os.makedirs(os.path.join(net.runroot, "networks", "endpoints"))
    with open(os.path.join(net.runroot, "networks", "endpoints", "a" * 64 + ".json"), "w") as f:
        json.dump({"id": "a" * 64, "name": 5, "networks": []}, f)
    net.pallet("network", "create", "st")
    p = net.pallet("network", "rm", "st", check=False)
    _one_line_125(p)
    assert "malformed network state" in p.stderr and "a" * 64 in p.stderr


def _one_line_125(p):
    assert p.returncode == 125, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("Error: ")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


@pytest.mark.parametrize("args, words", [
    (["--subnet", "10.300.0.0/24"], "invalid --subnet"),
    (["--subnet", "10.99.0.7/24"], "host bits"),
    (["--subnet", "nonsense"], "CIDR"),
    (["--subnet", "10.99.0.0/24", "--gateway", "10.98.0.1"], "not inside"),
    (["--subnet", "10.99.0.0/24", "--ip-range", "10.99.1.0/25"], "not inside"),
    (["-d", "macvlan"], "unsupported network driver"),
    (["--opt", "mtu=12"], "mtu"),
    (["-o", "isolate=maybe"], "isolate"),
    (["-o", "nope=1"], "unsupported bridge option"),
    (["--label", "=x"], "--label"),
    (["--interface-name", "a/b"], "interface name"),
    (["--gateway", "10.1.0.1"], "needs a --subnet"),
    (["--subnet", "10.99.0.0/24", "--subnet", "10.99.0.128/25"], "overlap"),
    (["bad/name"], "invalid network name"),
])
def test_bad_create_input_creates_nothing(net, args, words):
    links = _links()
    p = net.pallet("network", "create", *args, check=False)
    _one_line_125(p)
    assert words in p.stderr
    assert [n["name"] for n in net.networks._read_all()] in ([], ["pallet"])
    assert _links() <= links


def test_overlapping_subnets_refused(net):
    host = next(r for r in _host_routes() if r.version == 4 and not r.is_loopback and r.prefixlen < 32)
    p = net.pallet("network", "create", "--subnet", str(host), "clash", check=False)
    _one_line_125(p)
    assert "already used on the host" in p.stderr and str(host) in p.stderr
    net.pallet("network", "create", "--subnet", "10.99.7.0/24", "first")
    p = net.pallet("network", "create", "--subnet", "10.99.0.0/16", "second", check=False)
    _one_line_125(p)
    assert "already used by network 'first'" in p.stderr
    assert sorted(n["name"] for n in net.networks._read_all()) == ["first", "pallet"]


def test_unknown_network(net):
    for args in (["inspect", "nope"], ["connect", "nope", "somecontainer"], ["disconnect", "nope", "x"]):
        p = net.pallet("network", *args, check=False)
        _one_line_125(p)
        assert "nope" in p.stderr and "not found" in p.stderr
    p = net.pallet("network", "rm", "nope", check=False)
    assert p.returncode == 1 and "network not found" in p.stderr
    assert net.pallet("network", "exists", "nope", check=False).returncode == 1
    assert net.pallet("network", "exists", "pallet", check=False).returncode == 0
    for args in ([], ["bogus"], ["create", "--subnet"]):
        p = net.pallet("network", *args, check=False)
        assert p.returncode == 125 and p.stderr.startswith("Error: ") and "Traceback" not in p.stderr


def test_ls_filters_format_and_prune(net):
    net.pallet("network", "create", "--label", "team=a", "alpha")
    net.pallet("network", "create", "beta")
    out = net.pallet("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}").stdout.split()
    assert out == ["alpha"]
    out = net.pallet("network", "ls", "-q", "--filter", "name=^b").stdout.split()
    assert out == ["beta"]
    listed = json.loads(net.pallet("network", "ls", "--format", "json").stdout)
    assert {n["name"] for n in listed} == {"alpha", "beta", "pallet"}
    default = next(n for n in listed if n["name"] == "pallet")
    assert default["dns_enabled"] is False
    # the default network's subnet, too, overlaps no host route (10.88.0.0/16 when free)
    sub = ipaddress.ip_network(default["subnets"][0]["subnet"])
    assert not [r for r in _host_routes() if r.version == 4 and r.overlaps(sub)]
    p = net.pallet("network", "ls", "--filter", "bogus=1", check=False)
    _one_line_125(p)
    assert sorted(net.pallet("network", "prune", "-f").stdout.split()) == ["alpha", "beta"]
    assert [n["name"] for n in net.networks._read_all()] == ["pallet"]
    p = net.pallet("network", "rm", "pallet", check=False)
    _one_line_125(p)


def test_sandbox_modes(net):
    from pallet.containers.network import mode, netns, ports, sandbox
    from pallet.errors import NetworkNotFound, UsageError

    links = _links()
    cid = os.urandom(32).hex()
    # the default network (bridge): the host reaches the namespace over the bridge
    sb = sandbox.setup(net.endpoints, cid, "dflt", mode.parse(["bridge"], net.networks))
    net.namespaces.append(sb.netns_path)
    ip = sb.results["pallet"].interfaces[0].subnets[0].ipnet.split("/")[0]
    default = net.networks.get("pallet")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(default["subnets"][0]["subnet"])
    net.serve(sb.netns_path, 8081, b"default net")
    with socket.create_connection((ip, 8081), timeout=5) as c:
        assert c.recv(100) == b"default net"
    # container:ID joins the same namespace
    other = sandbox.setup(net.endpoints, os.urandom(32).hex(), "side", mode.parse([f"container:{cid[:12]}"]))
    assert other.netns_path == sb.netns_path and not other.owned
    # host: no namespace; ports discarded with podman's warning
    warned = []
    h = sandbox.setup(net.endpoints, os.urandom(32).hex(), "h", mode.parse(["host"]), ports.parse("8080:80"),
                      warned.append)
    assert h.netns_path is None and warned and "discarded" in warned[0]
    # bad input: nothing created (no namespace file, no attachment)
    before = sorted(os.listdir(netns.netns_dir(net.runroot)))
    with pytest.raises(UsageError, match="--network none"):
        sandbox.setup(net.endpoints, os.urandom(32).hex(), "n", mode.parse(["none"]), ports.parse("80"))
    with pytest.raises(NetworkNotFound, match="nope"):
        sandbox.setup(net.endpoints, os.urandom(32).hex(), "u", mode.parse(["nope"], None))
    assert sorted(os.listdir(netns.netns_dir(net.runroot))) == before
    assert [e["name"] for e in net.endpoints.list()] == ["dflt"]
    for p in net.procs:
        p.kill()
        p.wait()
    net.procs.clear()
    sandbox.teardown(net.endpoints, cid, sb.netns_path, sb.owned)
    assert not os.path.exists(sb.netns_path) and _links() <= links


def test_concurrent_creates_get_distinct_names_and_subnets(net):
    procs = [subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "pallet"), "--root", net.root,
                               "--runroot", net.runroot, "network", "create"], env={**os.environ, **net.env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    names = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        names.append(out.strip())
    assert len(set(names)) == 4
    nets = [n for n in net.networks._read_all() if n["name"] in names]
    subs = [ipaddress.ip_network(n["subnets"][0]["subnet"]) for n in nets]
    assert len(nets) == 4 and not [a for i, a in enumerate(subs) for b in subs[i + 1:] if a.overlaps(b)]
    assert len({n["network_interface"] for n in nets}) == 4


def test_detach_after_the_namespace_is_gone_still_cleans_the_host(net):
    """A namespace removed behind pallet's back (its veth goes with it): detaching still removes
    the bridge, the network's rules and aardvark-dns."""
    from pallet.containers.network import netns

    links, rules = _links(), _rules()
    net.pallet("network", "create", "lost")
    subnet = net.networks.get("lost")["subnets"][0]["subnet"]
    cid, ns, _ = net.sandbox("gone", {"lost": {}})
    mine = _ours(_rules() - rules, [subnet])
    assert net.networks.get("lost")["network_interface"] in _links() and mine
    netns.remove(ns)
    net.endpoints.detach(cid)
    assert _links() <= links
    assert _rules() & mine == set()
    assert net.endpoints.list() == []
    deadline = time.monotonic() + 10
    while _aardvarks(net.runroot) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _aardvarks(net.runroot) == []
    assert [n for n in os.listdir(netns.netns_dir(net.runroot)) if n.startswith("teardown-")] == []


def test_addresses_of_a_killed_setup_are_reclaimed(net):
    """A pallet killed between allocating and recording leaves an address owned by nobody:
    the next setup takes it back."""
    net.pallet("network", "create", "--subnet", "10.99.9.0/24", "reclaim")
    os.makedirs(os.path.join(net.runroot, "networks"), exist_ok=True)
    with open(os.path.join(net.runroot, "networks", "ipam.json"), "w") as f:
        json.dump({"reclaim": {"10.99.9.2": "f" * 64}}, f)
    cid, ns, res = net.sandbox("again", {"reclaim": {}})
    assert res["reclaim"].interfaces[0].subnets[0].ipnet == "10.99.9.2/24"
    with open(os.path.join(net.runroot, "networks", "ipam.json")) as f:
        assert json.load(f) == {"reclaim": {"10.99.9.2": cid}}


def test_dual_stack_network(net):
    links, rules = _links(), _rules()
    net.pallet("network", "create", "--subnet", "10.99.10.0/24", "--subnet", "fd99:1::/64", "ds")
    doc = net.networks.get("ds")
    assert doc["ipv6_enabled"] is True
    cid, ns, res = net.sandbox("v6", {"ds": {}})
    got = [(s.ipnet, s.gateway) for s in res["ds"].interfaces[0].subnets]
    assert got == [("10.99.10.2/24", "10.99.10.1"), ("fd99:1::2/64", "fd99:1::1")]
    mine = _ours(_rules() - rules, ["10.99.10.0/24", "fd99:1::/64"])
    assert any("fd99:1::/64" in line for line in mine)
    net.endpoints.detach(cid)
    assert _links() <= links and _rules() & mine == set()


# (not unit tests: they read the host's routes through iproute2's `ip`)
def test_another_stores_subnets_are_avoided_while_the_pools_last(tmp_path, monkeypatch):
    from pallet.containers.network import config as netconfig
    from pallet.containers.network import subnets as netsubnets

    monkeypatch.setattr(netconfig, "DIRS_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setattr(netsubnets, "other_tools", lambda dirs=(), podman_default=None, owner="podman's", _real=netsubnets.other_tools:
                        _real(dirs, podman_default=False, owner=owner))  # podman's files on this host: not this test's
    a = netconfig.Networks(str(tmp_path / "a"))
    a.ensure_default()
    a_net = a.get("pallet")["subnets"][0]["subnet"]
    b = netconfig.Networks(str(tmp_path / "b"))
    if os.geteuid() != 0:  # the registry is root's: nothing recorded, nothing avoided
        assert not (tmp_path / "registry").exists()
        return

    def claims(n):  # what this test's other stores hold (the host's own /etc/pallet/networks counts too)
        return [str(s) for s, what in n.other_subnets() if str(tmp_path) in what]

    assert claims(b) == [a_net]
    b.ensure_default()
    assert b.get("pallet")["subnets"][0]["subnet"] != a_net
    # with the pool exhausted by other stores' claims, their (down) subnets are reused, not refused
    monkeypatch.setattr(netsubnets, "DEFAULT_POOL", [a_net])
    c = netconfig.Networks(str(tmp_path / "c"))
    c.ensure_default()
    assert c.get("pallet")["subnets"][0]["subnet"] == a_net
    # a store that is gone no longer counts, and its record is dropped
    import shutil

    shutil.rmtree(tmp_path / "a")
    assert claims(b) == [a_net]  # c's
    assert len(os.listdir(tmp_path / "registry")) == 2  # a's record dropped, b's and c's kept


def test_kernel_routes_match_ip_route():
    """The /proc reader used at attach time against iproute2's view of the main table."""
    from pallet.containers.network import subnets as netsubnets

    want = set()
    for fam in ("-4", "-6"):
        for r in json.loads(subprocess.run(["ip", "-j", fam, "route", "show"], capture_output=True, check=True).stdout or b"[]"):
            dst = r.get("dst")
            if dst and dst != "default" and r.get("dev"):
                net = ipaddress.ip_network(dst if "/" in dst else dst + ("/32" if ":" not in dst else "/128"), strict=False)
                if net.version == 4 or not (net.is_link_local or net.is_multicast or net.prefixlen == 128):
                    want.add((net, r["dev"]))
    got = set(netsubnets.kernel_routes())
    assert {g for g in got if g[0].version == 4} == {w for w in want if w[0].version == 4}
    assert {w for w in want if w[0].version == 6} <= got
