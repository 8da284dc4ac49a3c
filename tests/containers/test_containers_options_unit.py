"""run's extra flags, containers.conf and containers-common's seccomp profile: the pure parts."""

from __future__ import annotations

import os

import pytest

from pallet.containers import conf as conf_mod
from pallet.containers import options as opts
from pallet.containers import seccomp_profile
from pallet.errors import UsageError
from pallet.oci import runtime_spec as rs

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,want", [("nofile=1024:2048", ("RLIMIT_NOFILE", 1024, 2048)),
                                       ("core=0", ("RLIMIT_CORE", 0, 0)),
                                       ("stack=-1", ("RLIMIT_STACK", opts.UNLIMITED, opts.UNLIMITED))])
def test_ulimit(text, want):
    assert opts.parse_ulimit(text) == want


@pytest.mark.parametrize("text,words", [("nofile", "invalid ulimit argument"), ("bogus=1", "invalid ulimit type"),
                                        ("nofile=2:1", "soft limit must be less"), ("nofile=a", "invalid syntax"),
                                        ("nofile=1:2:3", "too many")])
def test_bad_ulimit(text, words):
    with pytest.raises(UsageError, match=words):
        opts.parse_ulimit(text)


def test_rlimits_flag_replaces_conf_and_defaults_nofile_nproc():
    c = conf_mod.Conf({"default_ulimits": ["core=1:2"]})
    got = {r[0]: r[1:] for r in opts.rlimits([], c)}
    assert got["RLIMIT_CORE"] == [1, 2] and "RLIMIT_NOFILE" in got and "RLIMIT_NPROC" in got
    assert 0 < got["RLIMIT_NOFILE"][0] <= opts.RLIMIT_DEFAULT
    got = {r[0]: r[1:] for r in opts.rlimits(["nofile=5:6"], c)}
    assert got["RLIMIT_NOFILE"] == [5, 6] and "RLIMIT_CORE" not in got


def test_add_host_dns_security_namespaces():
    assert opts.parse_add_host("db:10.0.0.1") == "10.0.0.1\tdb"
    assert opts.parse_add_host("v6:2001:db8::1") == "2001:db8::1\tv6"
    for bad in ("db", ":1.2.3.4", "db:1.2.3"):
        with pytest.raises(UsageError, match="add-host"):
            opts.parse_add_host(bad)
    with pytest.raises(UsageError, match="is not an ip address"):
        opts.parse_ip("1.2.3", "--dns")
    assert opts.parse_security_opts(["no-new-privileges", "label=disable", "seccomp=unconfined"]) == \
        {"no_new_privileges": True, "seccomp": "unconfined"}
    assert opts.parse_security_opts(["no-new-privileges=false"])["no_new_privileges"] is False
    with pytest.raises(UsageError, match="invalid --security-opt 1"):
        opts.parse_security_opts(["bogus"])
    with pytest.raises(UsageError, match="not supported by pallet yet"):
        opts.parse_security_opts(["mask=/proc/x"])
    assert opts.parse_namespace("pid", "host") == "host"
    assert opts.parse_namespace("ipc", "shareable") is None
    assert opts.parse_namespace("uts", "ns:/proc/1/ns/uts") == "/proc/1/ns/uts"
    assert opts.parse_namespace("pid", "container:abc") == "container:abc"
    with pytest.raises(UsageError, match="invalid --pid"):
        opts.parse_namespace("pid", "container:")


def test_mount_and_volume_grammar(tmp_path):
    assert opts.parse_mount(f"type=bind,src={tmp_path},dst=/x,ro") == \
        {"source": str(tmp_path), "destination": "/x", "readonly": True}
    assert opts.parse_mount(f"type=bind,source={tmp_path},target=/x,bind-propagation=rslave")["options"] == ["rslave"]
    assert opts.parse_mount("type=volume,dst=/v") == {"volume": None, "destination": "/v", "readonly": False}
    assert opts.parse_mount("type=volume,src=data,destination=/v,readonly=true")["volume"] == "data"
    assert opts.parse_mount("type=volume,src=data,dst=/v,volume-nocopy")["nocopy"] is True
    assert opts.parse_volume("data:/v:ro,nocopy") == {"volume": "data", "destination": "/v", "readonly": True,
                                                      "nocopy": True}
    assert opts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777")["options"][-2:] == \
        ["size=64m", "mode=1777"]
    for bad, words in (("type=bind,dst=/x", "needs src"), ("type=volume,src=a/b,dst=/x", "name"),
                       ("dst=/x", "type="), ("type=tmpfs,dst=/t,src=x", "no src"), ("type=bind,src=/,dst=/x,ro=maybe",
                                                                                     "true or false"),
                       ("type=volume,dst=/x,dst=/y", "twice"), ("type=tmpfs,dst=/t,tmpfs-size=lots", "unknown option")):
        with pytest.raises(UsageError, match=words):
            opts.parse_mount(bad)


def test_log():
    assert opts.parse_log("none", []) == {"driver": "none", "path": None, "max_size": None}
    assert opts.parse_log("k8s-file", ["path=/var/x/../ctr.log", "max-size=10m"])["path"] == "/var/ctr.log"
    # go-units' FromHumanSize, as podman: decimal units, fractions, optional i/b, any case
    for text, want in (("10m", 10_000_000), ("9.057m", 9_057_000), ("1k", 1000), ("2 MB", 2_000_000),
                       ("3GiB", 3_000_000_000), ("512", 512), ("1.5kb", 1500)):
        assert opts.parse_log("k8s-file", [f"max-size={text}"])["max_size"] == want, text
    for driver, o in (("syslog", []), ("k8s-file", ["path=rel"]), ("k8s-file", ["color=1"]),
                      ("k8s-file", ["max-size=1.2.3m"]), ("k8s-file", ["max-size=-1m"]),
                      ("k8s-file", ["max-size=1x"]), ("k8s-file", ["max-size=١m"])):
        with pytest.raises(UsageError):
            opts.parse_log(driver, o)


def test_containers_conf_merging_and_errors(tmp_path, monkeypatch):
    a = tmp_path / "a.conf"
    a.write_text('[containers]\npids_limit = 10\nenv = ["A=1"]\n[engine]\nruntime = "crun"\n'
                 '[engine.runtimes]\ncrun = ["/nonexistent/crun", "/usr/bin/crun"]\n')
    c = conf_mod.load({"CONTAINERS_CONF": str(a)})
    assert c.get("pids_limit") == 10 and c.runtime == "crun" and c.runtimes["crun"][1] == "/usr/bin/crun"
    conf_mod.parse('[containers]\npids_limit = 20\n', "/b.conf", c)  # a later file wins key by key
    assert c.get("pids_limit") == 20 and c.get("env") == ["A=1"] and c.where("pids_limit").startswith(
        "containers.conf /b.conf: [containers] pids_limit")
    for text, words in (('[containers]\ndefault_capabilities = ["NOPE"]\n', "unknown capability"),
                        ('[containers]\nenv = ["=x"]\n', "KEY=VALUE"), ('[containers]\ncgroupns = "x"\n', "host or"),
                        ('[containers]\ndns_servers = "1.1.1.1"\n', "list of strings"),
                        ('[containers]\nno_hosts = 1\n', "true or false"), ('x = [', "not valid TOML")):
        with pytest.raises(UsageError, match=words) as e:
            conf_mod.parse(text, "/etc/containers/containers.conf", conf_mod.Conf())
        assert "/etc/containers/containers.conf" in str(e.value)
    with pytest.raises(UsageError, match="CONTAINERS_CONF"):
        conf_mod.files({"CONTAINERS_CONF": str(tmp_path / "missing")})


def test_containers_conf_cache_follows_the_files(tmp_path, monkeypatch):
    """The merged result kept in the run root is used only while every file is the same one
    (path, inode, size, times): a change, a new file or a damaged cache means a new parse."""
    monkeypatch.setattr(conf_mod, "_RACY", 0)  # files written just now count as settled
    cache = tmp_path / "run"
    cache.mkdir()
    a = tmp_path / "a.conf"
    a.write_text('[containers]\npids_limit = 10\n')
    env = {"CONTAINERS_CONF": str(a)}
    assert conf_mod.load(env, cache_dir=str(cache)).get("pids_limit") == 10
    assert (cache / conf_mod._CACHE).exists()

    def no_parse(*args):
        raise AssertionError("parsed again")

    monkeypatch.setattr(conf_mod, "parse", no_parse)
    c = conf_mod.load(env, cache_dir=str(cache))
    assert c.get("pids_limit") == 10 and c.origin["pids_limit"] == str(a)
    monkeypatch.undo()
    monkeypatch.setattr(conf_mod, "_RACY", 0)
    a.write_text('[containers]\npids_limit = 20\n')  # the same size: the times and inode tell
    os.utime(a, ns=(1, 1))
    assert conf_mod.load(env, cache_dir=str(cache)).get("pids_limit") == 20
    (cache / conf_mod._CACHE).write_text('{"key": [')  # damaged: parsed, and rewritten
    assert conf_mod.load(env, cache_dir=str(cache)).get("pids_limit") == 20
    assert conf_mod.load(env, cache_dir=str(cache)).get("pids_limit") == 20
    b = tmp_path / "b.conf"
    b.write_text('[containers]\npids_limit = 30\n')
    assert conf_mod.load({"CONTAINERS_CONF": str(b)}, cache_dir=str(cache)).get("pids_limit") == 30
    a.write_text('[containers]\npids_limit = "x"\n')  # a bad file is an error even after a cached good one
    with pytest.raises(UsageError, match="pids_limit"):
        conf_mod.load(env, cache_dir=str(cache))


def test_containers_conf_without_a_run_root_is_cached_in_roots_host_directory(tmp_path, monkeypatch):
    """A caller with no run root (a build's RUN steps) gets the cache in HOST_CACHE_DIR, made
    0700, as root only; a directory others may write is not used."""
    monkeypatch.setattr(conf_mod, "_RACY", 0)
    host = tmp_path / "host"
    monkeypatch.setattr(conf_mod, "HOST_CACHE_DIR", str(host))
    a = tmp_path / "a.conf"
    a.write_text('[containers]\npids_limit = 10\n')
    env = {"CONTAINERS_CONF": str(a)}
    assert conf_mod.load(env).get("pids_limit") == 10
    if os.geteuid() != 0:
        assert not host.exists()
        return
    assert len(list(host.glob("containers-conf-*.json"))) == 1 and os.stat(host).st_mode & 0o777 == 0o700
    # another CONTAINERS_CONF has a result of its own: the two do not take turns overwriting one
    b = tmp_path / "b.conf"
    b.write_text('[containers]\npids_limit = 20\n')
    assert conf_mod.load({"CONTAINERS_CONF": str(b)}).get("pids_limit") == 20

    def no_parse(*args):
        raise AssertionError("parsed again")

    real_parse = conf_mod.parse
    monkeypatch.setattr(conf_mod, "parse", no_parse)
    assert conf_mod.load(env).get("pids_limit") == 10
    assert conf_mod.load({"CONTAINERS_CONF": str(b)}).get("pids_limit") == 20
    monkeypatch.setattr(conf_mod, "parse", real_parse)
    monkeypatch.setattr(conf_mod, "_HOST_ENTRIES", 2)  # the oldest results go
    c = tmp_path / "c.conf"
    c.write_text('[containers]\npids_limit = 30\n')
    os.utime(host / conf_mod._host_cache_name([str(a)]), ns=(0, 0))
    assert conf_mod.load({"CONTAINERS_CONF": str(c)}).get("pids_limit") == 30
    assert sorted(p.name for p in host.glob("containers-conf-*.json")) == \
        sorted(conf_mod._host_cache_name([str(x)]) for x in (b, c))
    monkeypatch.setattr(conf_mod, "parse", no_parse)
    os.chmod(host, 0o777)
    with pytest.raises(AssertionError, match="parsed again"):
        conf_mod.load(env)


def test_containers_conf_just_written_is_not_cached(tmp_path):
    """A file changed within the last seconds is parsed every time (a change inside the
    filesystem's timestamp granularity could keep its size and times)."""
    a = tmp_path / "a.conf"
    a.write_text('[containers]\npids_limit = 10\n')
    assert conf_mod.load({"CONTAINERS_CONF": str(a)}, cache_dir=str(tmp_path)).get("pids_limit") == 10
    assert not (tmp_path / conf_mod._CACHE).exists()


def test_resolve_and_spec_options():
    c = conf_mod.Conf({"default_capabilities": ["CHOWN", "cap_kill"], "env": ["X=1"], "dns_servers": ["9.9.9.9"],
                       "default_sysctls": ["net.ipv4.ping_group_range=0 0", "kernel.msgmax=8192"]})
    x = opts.Extra(ulimits=["nofile=10:20"], security_opts=["no-new-privileges", "seccomp=unconfined"],
                   pid="host", cgroupns="private", ipc="host")
    r = opts.resolve(x, c, "host")
    assert r["dns"] == ["9.9.9.9"] and r["default_caps"] == ["CAP_CHOWN", "CAP_KILL"]
    assert r["sysctl"] == {}  # net.* with the host network, kernel.msg* with the host's IPC: not set
    kw = opts.spec_options(r, False, [], [])
    assert "seccomp" not in kw and kw["no_new_privileges"]
    assert [n.type for n in kw["namespaces"]] == ["network", "uts", "mount", "cgroup"]
    doc = rs.generate(rs.SpecOptions(command=["sh"], **kw), {"Env": ["PATH=/bin", "X=image"]})
    assert doc["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_KILL"]
    assert doc["process"]["env"][:2] == ["X=image", "TERM=xterm"] and "PATH=/bin" in doc["process"]["env"]
    assert {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20} in doc["process"]["rlimits"]


def test_seccomp_profile_as_podman_applies_it():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
               "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                           {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
               "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
                            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                            {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
                            {"names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    out = seccomp_profile.convert(profile, ["CAP_CHOWN"], machine="x86_64")
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"] and out["defaultErrnoRet"] == 38
    assert [r["names"] for r in out["syscalls"]] == [["read", "write"], ["arch_prctl"], ["personality"], ["old"],
                                                     ["ptrace"]]
    assert out["syscalls"][-1]["errnoRet"] == 1 and out["syscalls"][2]["args"][0]["value"] == 8
    admin = seccomp_profile.convert(profile, ["CAP_SYS_ADMIN"], machine="aarch64")
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [r["names"] for r in admin["syscalls"]] == [["read", "write"], ["mount"], ["personality"], ["ptrace"]]


def test_containers_common_profile_loads(tmp_path):
    import os

    if not os.path.exists(seccomp_profile.DEFAULT_PATH):
        assert seccomp_profile.load(None, ["CAP_CHOWN"]) is None  # no containers-common: no filter
        return
    out = seccomp_profile.load(None, list(rs.DEFAULT_CAPS))
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and len(out["syscalls"]) > 5
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        seccomp_profile.load(str(bad), [])


def test_etc_hosts_order_and_names(tmp_path):
    from pallet.containers import etc_hosts

    base = tmp_path / "hosts"
    base.write_text("# comment\n127.0.0.1 localhost  # x\n10.0.0.9\n10.0.0.8 files.lan files\n")
    text = etc_hosts.text(["1.2.3.4\tdb"], "hh", "ctr", ["10.88.0.5"], False, "10.88.0.1", str(base))
    assert text == ("1.2.3.4\tdb\n127.0.0.1\tlocalhost\n10.0.0.8\tfiles.lan files\n"
                    "10.88.0.1\thost.containers.internal\n10.88.0.5\thh ctr\n")
    none = etc_hosts.text([], "hh", "ctr", [], False, "192.0.2.2", str(tmp_path / "missing"))
    assert none == ("127.0.0.1\tlocalhost\n::1\tlocalhost\n192.0.2.2\thost.containers.internal\n"
                    "127.0.0.1\thh ctr\n")
    host = etc_hosts.text([], "hh", "ctr", [], True, "192.0.2.2", str(base))
    assert "hh" not in host


def test_userns_errors_name_flag_or_file(monkeypatch):
    from pallet import _userns

    monkeypatch.setattr(_userns, "rootless_uid", lambda: None)  # podman's rules for root (keep-id refused)
    with pytest.raises(UsageError, match="--uidmap '0:100000:0': the size must not be 0"):
        opts.resolve(opts.Extra(uidmap=["0:100000:0"]), conf_mod.Conf(), "none")
    c = conf_mod.Conf({"userns": "keep-id"}, {"userns": "/etc/containers/containers.conf"})
    with pytest.raises(UsageError, match=r"containers.conf /etc/containers/containers.conf: \[containers\] userns"):
        opts.resolve(opts.Extra(), c, "none")
    assert opts.resolve(opts.Extra(userns="host"), c, "none")["userns"] is None  # the flag wins over the file
    got = opts.resolve(opts.Extra(uidmap=["0:100000:65536"]), conf_mod.Conf(), "none")["userns"]
    assert got == {"mode": "private", "uid": [[0, 100000, 65536]], "gid": [[0, 100000, 65536]]}


def test_log_path_is_never_written_through_a_link_or_device(tmp_path):
    (tmp_path / "link").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo", "."):
        with pytest.raises(UsageError, match="not a regular file|no such directory"):
            opts.parse_log("k8s-file", [f"path={tmp_path / name}"])
    with pytest.raises(UsageError, match="no such directory"):
        opts.parse_log("k8s-file", [f"path={tmp_path}/missing/ctr.log"])
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    assert opts.parse_log("k8s-file", [f"path={tmp_path}/via/ctr.log"])["path"] == f"{tmp_path}/real/ctr.log"


def test_mtab_link_made_inside_the_root(tmp_path):
    from pallet.containers import etc_hosts

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    etc_hosts.add_mtab(str(root))
    assert os.readlink(root / "etc" / "mtab") == "/proc/mounts"
    etc_hosts.add_mtab(str(root))  # there already: kept
    other = tmp_path / "other"
    other.mkdir()
    (other / "etc").symlink_to(tmp_path / "outside")  # a symlinked /etc resolves inside the root
    (tmp_path / "outside").mkdir()
    etc_hosts.add_mtab(str(other))
    assert not os.path.lexists(tmp_path / "outside" / "mtab")
