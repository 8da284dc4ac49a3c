"""podman's -p grammar and the free-subnet choice, as pure functions."""

from __future__ import annotations

import ipaddress

import pytest

from pallet.containers.network import config, netavark, ports, subnets
from pallet.errors import ConfigError, ContainerNetworkError, UsageError

pytestmark = pytest.mark.unit


def _m(host_ip, cport, hport, rng=1, proto="tcp"):
    return {"host_ip": host_ip, "container_port": cport, "host_port": hport, "range": rng, "protocol": proto}


@pytest.mark.parametrize("spec, want", [
    ("80", [_m("", 80, 0)]),
    ("8080:80", [_m("", 80, 8080)]),
    ("127.0.0.1:8080:80", [_m("127.0.0.1", 80, 8080)]),
    ("127.0.0.1::80", [_m("127.0.0.1", 80, 0)]),
    ("[::1]:8080:80", [_m("::1", 80, 8080)]),
    ("53:53/udp", [_m("", 53, 53, proto="udp")]),
    ("53:53/tcp,udp", [_m("", 53, 53), _m("", 53, 53, proto="udp")]),
    ("8000-8009:80-89", [_m("", 80, 8000, 10)]),
    ("9000:80-82/sctp", [_m("", 80, 9000, 3, "sctp")]),
    ("65535:1", [_m("", 1, 65535)]),
])
def test_port_grammar(spec, want):
    assert ports.parse(spec) == want


@pytest.mark.parametrize("spec, words", [
    ("", "empty"), (" 80", "spaces"), ("0", "out of range"), ("65536", "out of range"), ("80/icmp", "protocol"),
    ("80/tcp,tcp", "twice"), ("a:80", "not a port"), ("8000-8001:80-82", "differ in length"),
    ("90-80", "ends before"), ("1.2.3.4.5:80:80", "not an IP"), ("::1:80:80", "too many"),
    ("[::1]80", "followed by ':'"), ("[1.2.3.4]:80:80", "not an IPv6"), ("65535-65535:1-2", "past 65535"),
    ("65535:1-2", "past 65535"), ("80:８0", "not a port"), ("1:2:3:4", "too many"),
])
def test_bad_port_specs_name_the_spec(spec, words):
    with pytest.raises(UsageError) as e:
        ports.parse(spec)
    assert words in str(e.value) and repr(spec) in str(e.value) and "\n" not in str(e.value)


def test_free_host_ports_and_duplicates():
    maps = ports.parse_all(["127.0.0.1::80", "8080:80/udp"], expose=["443/tcp", "80/tcp"], publish_all=True)
    assert [m["container_port"] for m in maps] == [80, 80, 443]
    assert maps[0]["host_port"] > 0 and maps[2]["host_port"] > 0
    with pytest.raises(UsageError, match="published twice"):
        ports.parse_all(["8080:80", "127.0.0.1:8080:81"])


def test_subnet_parsing():
    assert str(subnets.parse("10.1.2.0/24")) == "10.1.2.0/24"
    assert str(subnets.parse("fd00:1::/64")) == "fd00:1::/64"
    for bad, words in (("10.1.2.3/24", "host bits"), ("10.1.2.0", "CIDR"), ("10.1.2.0/31", "too small"),
                       ("127.0.0.0/8", "loopback"), ("224.0.0.0/8", "multicast"), ("x/24", "invalid"), (5, "CIDR")):
        with pytest.raises(UsageError, match=words):
            subnets.parse(bad)


def _nets(*texts):
    return [ipaddress.ip_network(t) for t in texts]


def test_subnet_choice_avoids_every_route():
    assert str(subnets.choose([], default=True)) == "10.88.0.0/16"
    # a machine that ran podman: its 10.88.0.0/16 bridge is routed
    assert str(subnets.choose(_nets("10.88.0.0/16"), default=True)) == "10.128.0.0/16"
    with pytest.raises(ContainerNetworkError, match="give one with --subnet"):
        subnets.choose(_nets("10.0.0.0/8"), default=True)
    assert str(subnets.choose([])) == "10.89.0.0/24"
    taken = _nets("10.89.0.0/24", "10.89.1.128/25", "10.89.2.7/32", "fd00::/8")
    assert str(subnets.choose(taken)) == "10.89.3.0/24"
    # a wide route covers the whole pool: nothing is free
    with pytest.raises(ContainerNetworkError, match="no free subnet"):
        subnets.choose(_nets("10.0.0.0/8"))


def test_subnet_choice_over_the_whole_pool_is_free_of_overlaps():
    import random

    rnd = random.Random(7)
    taken = [ipaddress.ip_network((rnd.randrange(10 << 24, 11 << 24) & ~0xFF, rnd.choice((16, 20, 24, 28))),
                                  strict=False) for _ in range(40)]
    got = subnets.choose(taken)
    assert not [t for t in taken if t.overlaps(got)]


def test_gateway_and_ip_range():
    s = config._subnet(ipaddress.ip_network("10.5.0.0/24"), None, "10.5.0.128/25")
    assert s == {"subnet": "10.5.0.0/24", "gateway": "10.5.0.1",
                 "lease_range": {"start_ip": "10.5.0.128", "end_ip": "10.5.0.254"}}
    for gw in ("10.5.0.0", "10.5.0.255", "10.6.0.1", "fd00::1"):
        with pytest.raises(UsageError):
            config._subnet(ipaddress.ip_network("10.5.0.0/24"), gw, None)


@pytest.mark.parametrize("doc, field", [
    ([], "JSON object"),
    ({"name": "n", "id": "x" * 64, "driver": "bridge", "subnets": [{"subnet": "10.1.0.0/24"}]}, "id"),
    ({"name": "n", "id": "a" * 64, "driver": "macvlan", "subnets": [{"subnet": "10.1.0.0/24"}]}, "driver"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "subnets": []}, "subnets"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "subnets": [{"subnet": 5}]}, "subnets[0].subnet"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "subnets": [{"subnet": "10.1.0.0/24", "gateway": "10.2.0.1"}]},
     "outside"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "internal": "yes", "subnets": [{"subnet": "10.1.0.0/24"}]},
     "internal"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "labels": {"a": 1}, "subnets": [{"subnet": "10.1.0.0/24"}]},
     "labels"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge", "subnets": [{"subnet": "10.1.0.0/24", "gateway": 5}]},
     "gateway"),
    ({"name": "n", "id": "a" * 64, "driver": "bridge",
      "subnets": [{"subnet": "10.1.0.0/24", "lease_range": {"start_ip": True}}]}, "start_ip"),
    ({"name": "../x", "id": "a" * 64, "driver": "bridge", "subnets": [{"subnet": "10.1.0.0/24"}]}, "name"),
])
def test_definitions_are_validated_naming_the_field(doc, field):
    with pytest.raises(ConfigError) as e:
        config.validate(doc, "/x/n.json")
    assert "/x/n.json" in str(e.value) and field in str(e.value)


def test_netavark_reply_parsing():
    r = netavark.parse_reply({"n": {"dns_search_domains": ["dns.podman"], "dns_server_ips": ["10.1.0.1"],
                                    "interfaces": {"eth0": {"mac_address": "aa:bb:cc:dd:ee:ff", "subnets": [
                                        {"gateway": "10.1.0.1", "ipnet": "10.1.0.2/24"}]}}}})
    assert r["n"].interfaces[0].subnets[0].ipnet == "10.1.0.2/24" and r["n"].dns_server_ips == ["10.1.0.1"]
    for bad in ([], {"n": 5}, {"n": {"interfaces": []}}, {"n": {"interfaces": {"eth0": {"subnets": [{"ipnet": 1}]}}}}):
        with pytest.raises(ContainerNetworkError, match="unexpected reply"):
            netavark.parse_reply(bad)


def test_network_flag_values():
    from pallet.containers.network import mode

    assert mode.parse([]).networks == {"pallet": {"ips": [], "aliases": [], "interface": None, "mac": None}}
    assert mode.parse(["none"]).kind == "none" and mode.parse(["host"]).kind == "host"
    m = mode.parse(["container:abc"])
    assert (m.kind, m.target) == ("container", "abc")
    m = mode.parse(["web:ip=10.1.0.5,alias=www,interface_name=eth3,mac=AA:bb:cc:dd:ee:ff", "db"])
    assert m.kind == "bridge" and list(m.networks) == ["web", "db"]
    assert list(mode.parse(["bridge", "web"]).networks) == ["pallet", "web"]
    assert m.networks["web"] == {"ips": ["10.1.0.5"], "aliases": ["www"], "interface": "eth3",
                                 "mac": "aa:bb:cc:dd:ee:ff"}
    for bad, words in ((["none", "web"], "cannot be combined"), (["container:"], "container:NAME"),
                       (["ns:rel/path"], "absolute"), (["web:ip=1.2.3"], "not an IP address"),
                       (["web:ip6=10.0.0.1"], "family"), (["web:foo=1"], "invalid --network option"),
                       (["web:mac=zz"], "six hex"), (["web", "web"], "twice"), (["bad/name"], "network name"),
                       (["pasta"], "not supported"), (["web:interface_name=a/b"], "interface name")):
        with pytest.raises(UsageError, match=words):
            mode.parse(bad)


def test_podman_networks_count_as_taken(tmp_path):
    """podman's networks whose bridges are down now (netavark and CNI files), and podman's
    in-memory default 10.88.0.0/16 when podman is installed, are never chosen."""
    (tmp_path / "a.json").write_text('{"name": "x", "subnets": [{"subnet": "10.89.0.0/24"}, {"subnet": 5}]}')
    (tmp_path / "87-podman.conflist").write_text(
        '{"plugins": [{"type": "bridge", "ipam": {"ranges": [[{"subnet": "10.89.1.0/24"}]]}}, {"ipam": 3}]}')
    (tmp_path / "b.conf").write_text('{"type": "bridge", "ipam": {"subnet": "10.89.2.0/24"}}')
    (tmp_path / "bad.json").write_text("[" * 100000)
    (tmp_path / "worse.json").write_text('{"subnets": {"subnet": "10.0.0.0/8"}, "plugins": 5}')
    got = subnets.other_tools([str(tmp_path), str(tmp_path / "missing")], podman_default=True)
    assert sorted(str(n) for n, _ in got) == ["10.88.0.0/16", "10.89.0.0/24", "10.89.1.0/24", "10.89.2.0/24"]
    assert all("podman" in what for _, what in got)
    taken = [n for n, _ in got]
    assert str(subnets.choose(taken)) == "10.89.3.0/24"
    assert str(subnets.choose(taken, default=True)) == "10.128.0.0/16"


def test_fuzzed_definitions_ports_and_modes_raise_only_pallet_errors():
    """Mutated network files, -p specs and --network values: a PalletError or a result, never
    another exception (fixed seed, bounded)."""
    import random
    import time

    from pallet.containers.network import mode
    from pallet.errors import PalletError

    rnd = random.Random(1013)
    good = {"name": "n", "id": "a" * 64, "driver": "bridge", "network_interface": "pallet1",
            "subnets": [{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1",
                         "lease_range": {"start_ip": "10.1.0.10", "end_ip": "10.1.0.20"}}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": True, "labels": {"a": "b"},
            "ipam_options": {"driver": "host-local"}}
    values = [None, True, 0, -1, 2 ** 70, 1.5, "", "x", "10.1.0.0/24", "::", "10.1.0.300", [], {}, [1], {"a": 1},
              "a" * 64, "\udcff", "10.1.0.0/33"]

    def mutate(doc, depth=0):
        if isinstance(doc, dict) and doc and rnd.random() < 0.8:
            k = rnd.choice(list(doc))
            doc = dict(doc)
            if rnd.random() < 0.2:
                del doc[k]
            else:
                doc[k] = mutate(doc[k], depth + 1) if rnd.random() < 0.6 else rnd.choice(values)
            return doc
        if isinstance(doc, list) and doc and rnd.random() < 0.8:
            doc = list(doc)
            i = rnd.randrange(len(doc))
            doc[i] = mutate(doc[i], depth + 1) if rnd.random() < 0.6 else rnd.choice(values)
            return doc
        return rnd.choice(values)

    alphabet = "0123456789:[]/-,.tcpudsxf ab\u0663"
    deadline = time.monotonic() + 8
    n = 0
    while time.monotonic() < deadline and n < 20000:
        n += 1
        try:
            config.validate(mutate(good), "/f.json")
        except PalletError:
            pass
        spec = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 14)))
        try:
            ports.parse(spec)
        except PalletError:
            pass
        try:
            mode.parse([spec.replace("[", "n:").replace("]", "=")])
        except PalletError:
            pass
        try:
            netavark.parse_reply(mutate({"n": {"interfaces": {"eth0": {"mac_address": "m", "subnets": [
                {"ipnet": "10.1.0.2/24", "gateway": "10.1.0.1"}]}}, "dns_server_ips": ["10.1.0.1"]}}))
        except PalletError:
            pass
    assert n > 100


def test_container_network_errors_do_not_change_skopeo_exit_codes(tmp_path):
    """The container networks' error class once reused the name NetworkError, replacing the
    registry client's (connection failures) and its exit code: skopeo's verbs exited 125."""
    import socket

    from conftest import run_pallet
    from pallet import errors

    assert errors.NetworkError is not errors.ContainerNetworkError
    assert not issubclass(errors.NetworkNotFound, errors.NetworkError)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    port = s.getsockname()[1]
    try:
        p = run_pallet("inspect", f"docker://127.0.0.1:{port}/x/y", check=False,
                       env={"HOME": str(tmp_path), "CONTAINERS_REGISTRIES_CONF": "/dev/null"})
    finally:
        s.close()
    assert p.returncode == 1, p.stderr
    assert "connection refused" in p.stderr


def test_each_definitions_directory_has_its_own_bridge_names(tmp_path):
    """Two stores' default networks never share a bridge: /etc/pallet/networks keeps pallet0,
    any other directory gets pl + six hex digits of its path's digest."""
    assert config.Networks(config.STANDARD_DIR).default_interface == "pallet0"
    a, b = config.Networks(str(tmp_path / "a")), config.Networks(str(tmp_path / "b"))
    assert a.default_interface != b.default_interface
    for n in (a, b):
        assert n.default_interface.startswith("pl") and len(n.default_interface) == 9
        config.check_ifname(n.default_interface + "65535")  # the longest the kernel must take
    assert config.Networks(str(tmp_path / "a") + "/").default_interface == a.default_interface


def test_a_bridge_whose_subnet_another_device_routes_is_refused():
    routes = [(n, d) for n, d in subnets.kernel_routes() if n.version == 4]
    if not routes:  # a host with no IPv4 route: nothing can collide
        subnets.check_not_routed_elsewhere({"name": "x", "network_interface": "plnone0", "subnets": [{"subnet": "10.1.0.0/16"}]})
        return
    net, dev = routes[0]
    down = {"name": "other", "network_interface": "plzzzzzz9", "subnets": [{"subnet": str(net)}]}
    with pytest.raises(ContainerNetworkError, match=f"already routed through {dev}"):
        subnets.check_not_routed_elsewhere(down)
    # the bridge that routes it itself is up: nothing to check
    subnets.check_not_routed_elsewhere(dict(down, network_interface=dev))
