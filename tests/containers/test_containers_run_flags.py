"""run/create's flags beyond the basics and containers.conf, with real conmon and pallet-runtime,
side by side with podman 4.3 where the same thing is visible inside the container: limits
(cgroup files, ``ulimit -a``), ``/proc/self/status`` (capabilities, NoNewPrivs, seccomp),
sysctls, ``/etc/resolv.conf``; and pallet alone for volumes, the log driver, namespaces and
devices. Both tools read the same containers.conf (``CONTAINERS_CONF``), so a host file cannot
make them differ.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import need
from test_containers_run import PODMAN_CONF, Pallet, _one_line_error, pallet, podman  # noqa: F401 (fixtures)

#: the file both tools read: podman's fixture settings plus the defaults under test
CONF = PODMAN_CONF.replace("[containers]\n", """[containers]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
pids_limit = 300
env = ["FROM_CONF=yes"]
""", 1)


@pytest.fixture(scope="module")
def conf(pallet, podman, tmp_path_factory):
    path = tmp_path_factory.mktemp("conf") / "containers.conf"
    path.write_text(CONF)
    return str(path)


def _left(pallet) -> dict:
    """The store's containers, mounts and namespaces (cgroups: other helpers' containers on this
    host come and go; a refused flag never reaches the runtime that would make one)."""
    return {k: v for k, v in pallet.leftovers().items() if k != "cgroups"}


def _run_cmd(pallet) -> list:
    """pallet run with the module's store and network directory (what ``Pallet.__call__`` adds)."""
    return [os.path.join(os.path.dirname(os.sys.executable), "pallet")] + pallet.base + \
        ["run", "--network-config-dir", pallet.nets, "--tls-verify=false"]


def _both(pallet, podman, conf, flags, script):
    env = dict(os.environ, CONTAINERS_CONF=conf)
    mine = subprocess.run(_run_cmd(pallet) + ["--rm", "--network", "none", *flags, pallet.image, "sh", "-c", script],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    theirs = subprocess.run(podman.base + ["run", "--rm", "--network", "none", *flags, podman.image, "sh", "-c",
                                           script], capture_output=True, text=True, env=env, timeout=60,
                            stdin=subprocess.DEVNULL)
    return mine, theirs


LIMITS = ("for f in pids/pids.max memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us pids.max memory.max cpu.max; "
          "do [ -e /sys/fs/cgroup/$f ] && echo $f $(cat /sys/fs/cgroup/$f); done; ulimit -a; ulimit -H -a; "
          "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; cat /proc/sys/net/ipv4/ping_group_range; "
          "echo FROM_CONF=$FROM_CONF TERM=$TERM")


@pytest.mark.parametrize("flags", [
    [],
    ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=500:1000", "--ulimit", "core=0:0"],
    ["--security-opt", "no-new-privileges", "--pids-limit", "64"],
    ["--security-opt", "seccomp=unconfined", "--cap-add", "sys_admin"],
    ["--cap-drop", "all", "--memory", "32m"],
])
def test_limits_seccomp_sysctls_inside_as_podman(pallet, podman, conf, flags):
    """The acceptance check: what the container sees of its cgroup limits, rlimits, capabilities,
    NoNewPrivs, seccomp mode and containers.conf's sysctls, env and pids limit is podman's."""
    mine, theirs = _both(pallet, podman, conf, flags, LIMITS)
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    assert mine.stdout == theirs.stdout
    assert "open files" in mine.stdout and "Seccomp:" in mine.stdout and "FROM_CONF=yes" in mine.stdout
    if "seccomp=unconfined" not in flags:
        assert "Seccomp:\t2" in mine.stdout  # containers-common's profile is applied
    if not flags:
        assert "pids.max 300" in mine.stdout and "0\t0" in mine.stdout  # containers.conf's pids_limit, sysctl


def test_dns_flags_as_podman(pallet, podman, conf):
    flags = ["--network", "host", "--dns", "192.0.2.53", "--dns", "192.0.2.54", "--dns-search", "example.test",
             "--dns-option", "ndots:2", "--add-host", "db.test:192.0.2.10", "--add-host", "v6.test:2001:db8::1"]
    script = "cat /etc/resolv.conf; head -n 2 /etc/hosts"
    env = dict(os.environ, CONTAINERS_CONF=conf)
    outs = []
    for cmd in (_run_cmd(pallet) + ["--rm", *flags, pallet.image, "sh", "-c", script],
                podman.base + ["run", "--rm", *flags, podman.image, "sh", "-c", script]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    assert outs[0] == ("search example.test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions ndots:2\n"
                       "192.0.2.10\tdb.test\n2001:db8::1\tv6.test\n")


@pytest.mark.parametrize("network", ["none", "host"])
def test_etc_hosts_as_podman(pallet, podman, conf, network):
    """podman 4.3's /etc/hosts: --add-host entries, the host's /etc/hosts, host.containers.internal,
    the container's names (127.0.0.1 without a network, none with the host's)."""
    flags = ["--network", network, "--name", f"r10c-hosts-{network}", "--hostname", "hh",
             "--add-host", "db.test:192.0.2.10"]
    env = dict(os.environ, CONTAINERS_CONF=conf)
    outs = []
    script = "cat /etc/hosts; [ -e /etc/resolv.conf ] && echo has-resolv.conf; readlink /etc/mtab"
    for cmd in (_run_cmd(pallet) + ["--rm", *flags, pallet.image, "sh", "-c", script],
                podman.base + ["run", "--rm", *flags, podman.image, "sh", "-c", script]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    assert outs[0].startswith("192.0.2.10\tdb.test\n")
    assert ("127.0.0.1\thh r10c-hosts-none\n" in outs[0]) == (network == "none")
    assert ("has-resolv.conf" in outs[0]) == (network == "host")  # podman binds none without a network
    assert outs[0].endswith("/proc/mounts\n")  # podman's /etc/mtab link


@pytest.mark.parametrize("flags,words", [
    (["--ulimit", "nofile=10:5"], "soft limit must be less than or equal to hard limit"),
    (["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
    (["--add-host", "nocolon"], "bad format for add-host"),
    (["--add-host", "h:999.1.1.1"], "invalid IP address in add-host"),
    (["--dns", "1.1.1.1"], "conflicting options: dns and the network mode: none"),
    (["--security-opt", "foo=bar"], "invalid --security-opt 2"),
    (["--security-opt", "seccomp=/no/such/profile.json"], "opening seccomp profile failed"),
    (["--device", "/dev/no-such-device"], "no such file or directory"),
    (["--log-driver", "passthrough"], "not supported"),
    (["--log-driver", "journald", "--log-opt", "tag={{.Name}}"], "not supported yet"),
    (["--uidmap", "0:100000:0"], "the size must not be 0"),
    (["--userns", "keep-id"], "keep-id is only supported in rootless mode"),
    (["--pid", "bogus"], "invalid --pid"),
    (["--ipc", "container:r10c-nosuch"], "no such container"),
    (["--mount", "type=volume,dst=relative"], "dst= must be an absolute path"),
    (["--mount", "type=nfs,dst=/x"], "type= must be bind, volume or tmpfs"),
    (["-v", "bad/name:/x"], "neither an absolute host path nor a volume name"),
    (["-v", "r10c-dup:/x", "--tmpfs", "/x/"], "/x: duplicate mount destination"),
])
def test_bad_flags_are_one_line_and_leave_nothing(pallet, flags, words):
    before = _left(pallet)
    vols = pallet("volume", "ls", "-q", check=True).stdout
    r = pallet("run", "--rm", "--network", "none", *flags, pallet.image, "true")
    assert r.returncode == 125
    assert words in _one_line_error(r.stderr)
    assert _left(pallet) == before
    assert pallet("volume", "ls", "-q", check=True).stdout == vols


def test_bad_containers_conf_names_file_and_key(pallet, tmp_path):
    bad = tmp_path / "bad.conf"
    before = _left(pallet)
    for text, words in (('[containers]\npids_limit = "lots"\n', "[containers] pids_limit: want an integer"),
                        ('[containers]\ndefault_ulimits = ["nofile=9:1"]\n', "[containers] default_ulimits"),
                        ('[containers]\nlog_driver = "syslog"\n', "[containers] log_driver"),
                        ("[containers\n", "not valid TOML")):
        bad.write_text(text)
        env = dict(os.environ, CONTAINERS_CONF=str(bad))
        r = subprocess.run(_run_cmd(pallet) + ["--rm", "--network", "none", pallet.image, "true"], capture_output=True,
                           text=True, env=env, timeout=60)
        line = _one_line_error(r.stderr)
        assert r.returncode == 125 and str(bad) in line and words in line, line
    assert _left(pallet) == before


def test_containers_conf_runtime_and_netns(pallet, tmp_path):
    """containers.conf's [engine] runtime (a name on PATH, or [engine.runtimes] paths) and its
    netns (the default network mode) apply when no flag says otherwise."""
    runc = need("runc")  # scripts/install.sh installs it
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\nnetns = "none"\n[engine]\nruntime = "myrunc"\n'
                    f'[engine.runtimes]\nmyrunc = ["/no/such/runc", "{runc}"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    cmd = _run_cmd(pallet)
    cmd[cmd.index("run")] = "create"
    r = subprocess.run(cmd + [pallet.image, "true"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        doc = json.loads(pallet("container", "inspect", cid, check=True).stdout)[0]
        assert doc["OCIRuntime"] == runc and doc["HostConfig"]["NetworkMode"] == "none"
        start = pallet("start", "-a", cid)
        assert start.returncode == 0, start.stderr
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_named_and_anonymous_volumes(pallet, tmp_path):
    """-v NAME:/PATH makes the volume when missing and keeps its data across containers; :ro is
    read-only; a container using a volume keeps ``volume rm`` off it; anonymous volumes (-v /PATH,
    --mount type=volume, the image's VOLUME) go with ``rm -v`` and ``run --rm``, and stay with a
    plain ``rm``."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {pallet.image}\nVOLUME /declared\n")
    image = "localhost/volimage:v1"
    pallet("build", "--tls-verify=false", "-t", image, "-f", str(ctx / "Containerfile"), str(ctx), check=True,
           timeout=120)
    try:
        vol = "r10c-data"
        pallet("run", "--rm", "--network", "none", "-v", f"{vol}:/data", pallet.image, "sh", "-c",
               "echo kept > /data/f", check=True)
        r = pallet("run", "--rm", "--network", "none", "--mount", f"type=volume,src={vol},dst=/data,ro",
                   pallet.image, "sh", "-c", "cat /data/f; touch /data/g")
        assert (r.returncode, r.stdout) == (1, "kept\n") and "Read-only file system" in r.stderr
        cid = pallet("run", "-d", "--network", "none", "-v", f"{vol}:/data", "-v", "/anon1",
                     "--mount", "type=volume,dst=/anon2", "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m",
                     image, "sleep", "60", check=True).stdout.strip()
        refused = pallet("volume", "rm", vol)
        assert refused.returncode == 2 and cid in refused.stderr
        doc = json.loads(pallet("volume", "inspect", vol, check=True).stdout)[0]
        assert doc["Name"] == vol
        names = set(pallet("volume", "ls", "-q", check=True).stdout.split())
        anon = names - {vol}
        assert len(anon) == 3 and all(len(n) == 64 for n in anon)  # /anon1, /anon2, the image's /declared
        pallet("rm", "-f", "-t", "0", cid, check=True)  # without -v: the anonymous ones stay
        assert set(pallet("volume", "ls", "-q", check=True).stdout.split()) == names
        for n in anon:
            pallet("volume", "rm", n, check=True)
        cid = pallet("create", "--network", "none", "-v", "/anon3", image, "true", check=True).stdout.strip()
        made = set(pallet("volume", "ls", "-q", check=True).stdout.split()) - {vol}
        assert len(made) == 2
        pallet("rm", "-v", cid, check=True)
        pallet("run", "--rm", "--network", "none", "-v", "/anon4", image, "true", check=True)
        assert set(pallet("volume", "ls", "-q", check=True).stdout.split()) == {vol}
        pallet("volume", "rm", vol, check=True)
        # copy-up: a new, empty volume gets what the image has at the mount point (not with nocopy)
        pallet("run", "--rm", "--network", "none", "-v", "r10c-cu:/etc", image, "true", check=True)
        pallet("run", "--rm", "--network", "none", "-v", "r10c-nc:/etc:nocopy", image, "true", check=True)
        pallet("run", "--rm", "--network", "none", "--mount", "type=volume,src=r10c-nc2,dst=/etc,volume-nocopy",
               image, "true", check=True)
        where = {n: json.loads(pallet("volume", "inspect", n, check=True).stdout)[0]["Mountpoint"]
                 for n in ("r10c-cu", "r10c-nc", "r10c-nc2")}
        assert os.path.isfile(os.path.join(where["r10c-cu"], "passwd"))
        assert "passwd" not in os.listdir(where["r10c-nc"]) + os.listdir(where["r10c-nc2"])
        for n in ("r10c-cu", "r10c-nc", "r10c-nc2"):
            pallet("volume", "rm", n, check=True)
    finally:
        pallet("rmi", "-f", image)


def test_log_driver_none_and_log_path(pallet, tmp_path):
    out = pallet("run", "--rm", "--network", "none", "--log-driver", "none", pallet.image, "echo", "relayed",
                 check=True).stdout
    assert out == "relayed\n"  # a foreground run relays through conmon's attach socket, as podman's
    name = "r10c-nolog"
    pallet("run", "-d", "--name", name, "--network", "none", "--log-driver", "none", pallet.image, "echo", "x",
           check=True)
    pallet("wait", name, check=True)
    r = pallet("logs", name)
    assert r.returncode == 125 and "'none' log driver" in _one_line_error(r.stderr)
    pallet("rm", name, check=True)
    path = tmp_path / "ctr.log"
    pallet("run", "-d", "--name", "r10c-logpath", "--network", "none", "--log-opt", f"path={path}",
           pallet.image, "echo", "where", check=True)
    pallet("wait", "r10c-logpath", check=True)
    assert path.read_text().rstrip("\n").endswith("stdout F where")
    assert pallet("logs", "r10c-logpath", check=True).stdout == "where\n"
    doc = json.loads(pallet("container", "inspect", "r10c-logpath", check=True).stdout)[0]
    assert doc["HostConfig"]["LogConfig"]["Path"] == str(path)
    pallet("rm", "r10c-logpath", check=True)


def test_namespace_flags_and_device(pallet):
    """--pid/--ipc/--uts host share the host's namespaces, --cgroupns private gets its own;
    --device makes the node and allows it in the device cgroup."""
    def ns(kind):
        return os.readlink(f"/proc/self/ns/{kind}")

    shm = f"/dev/shm/r10c-{os.getpid()}"  # the host's shared memory, seen with --ipc host
    script = ("for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done; hostname; "
              "[ -c /dev/mynull ] && echo dev > /dev/mynull && echo devok; "
              f"[ -e {shm} ] && echo shmok")
    with open(shm, "w"):
        pass
    try:
        r = pallet("run", "--rm", "--network", "none", "--pid", "host", "--ipc", "host", "--uts", "host",
                   "--cgroupns", "private", "--device", "/dev/null:/dev/mynull:rw", pallet.image, "sh", "-c", script)
    finally:
        os.unlink(shm)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[:3] == [ns("pid"), ns("ipc"), ns("uts")]
    assert lines[3] != ns("cgroup")
    assert lines[4:] == [os.uname().nodename, "devok", "shmok"]
    r = pallet("run", "--rm", "--network", "none", pallet.image, "sh", "-c", script)
    assert r.stdout.split()[:3] != [ns("pid"), ns("ipc"), ns("uts")] and "devok" not in r.stdout


def test_join_another_containers_namespaces(pallet):
    """--pid/--ipc/--uts container:NAME join a running container's namespaces (its hostname is
    left alone); a stopped one is refused, one line, exit 125."""
    cid = pallet("run", "-d", "--name", "r10c-target", "--network", "none", pallet.image, "sleep", "60",
                 check=True).stdout.strip()
    try:
        r = pallet("run", "--rm", "--network", "none", "--pid", "container:r10c-target", "--ipc",
                   "container:r10c-target", "--uts", "container:r10c-target", pallet.image, "sh", "-c",
                   "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /etc/hostname", check=True)
        assert r.stdout.split("\n")[:3] == ["sleep 60 ", cid[:12], cid[:12]]
        pallet("stop", "-t", "0", "r10c-target", check=True)
        r = pallet("run", "--rm", "--network", "none", "--pid", "container:r10c-target", pallet.image, "true")
        assert r.returncode == 125 and "not running" in _one_line_error(r.stderr)
    finally:
        pallet("rm", "-f", "-t", "0", "r10c-target")


assert Pallet  # the module's store and helpers come from test_containers_run


def test_device_cgroup_denies_what_was_not_given(pallet):
    """As podman (runtime-tools' generator): every device is denied but the runtime's defaults
    and --device's; a node made inside (MKNOD given) cannot be opened, unless --privileged."""
    import stat

    host = next((p for p in ("/dev/fuse", "/dev/loop-control") if os.path.exists(p)), None)
    assert host is not None, "this test needs /dev/fuse or /dev/loop-control on the host (opened with no capability)"
    rdev = os.stat(host).st_rdev
    assert stat.S_ISCHR(os.stat(host).st_mode)
    # made in /dev: the container's root is mounted nodev, where no device opens at all
    script = (f"mknod /dev/probe c {os.major(rdev)} {os.minor(rdev)} && "
              "{ (: < /dev/probe) 2>/dev/null && echo opened || echo refused; }; : < /dev/null && echo nullok")
    r = pallet("run", "--rm", "--network", "none", "--cap-add", "MKNOD", pallet.image, "sh", "-c", script)
    assert r.stdout.split() == ["refused", "nullok"], (r.stdout, r.stderr)
    r = pallet("run", "--rm", "--network", "none", "--privileged", pallet.image, "sh", "-c", script)
    assert r.stdout.split() == ["opened", "nullok"], (r.stdout, r.stderr)
    r = pallet("run", "--rm", "--network", "none", "--device", f"{host}:/dev/given", pallet.image, "sh", "-c",
               "(: < /dev/given) && echo opened")
    assert r.stdout.split() == ["opened"], (r.stdout, r.stderr)


def test_volumes_from_and_relative_image_volumes_as_podman(pallet, podman, tmp_path):
    """``--volumes-from CTR[:ro|rw]`` shares the source's binds and volumes (its image's too),
    while the source runs (podman 070 "--volumes-from conflict"); a relative image VOLUME
    (buildah's ``VOLUME ['/etc/foo', '/etc/bar']``: the words ``[/etc/foo,`` and ``/etc/bar]``) is
    made below / (podman 070 "buildx - basic test"); podman's errors for bad options."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "seen").write_text("host\n")
    tag, rel = f"localhost/r16c-volfrom{os.getpid()}", f"localhost/r16c-relvol{os.getpid()}"
    for tool, image in ((pallet, pallet.image), (podman, podman.image)):
        for name, body in ((tag, "VOLUME /vol\n"), (rel, "VOLUME /a/b/c\nVOLUME ['/etc/foo', '/etc/bar']\n")):
            (ctx / "Containerfile").write_text(f"FROM {image}\n{body}")
            r = tool("build", *(["--tls-verify=false"] if tool is pallet else []), "-t", name, str(ctx), timeout=120)
            assert r.returncode == 0, r.stderr
    src = f"r16c-src{os.getpid()}"
    script = ("cat /vol/f /hostdir/seen; touch /vol/g 2>/dev/null && echo vol-rw || echo vol-ro; "
              "touch /hostdir/x 2>/dev/null && echo host-rw || echo host-ro")
    cases = [[f"--volumes-from={src}"], [f"--volumes-from={src}:ro"], [f"--volumes-from={src}:rw,z"],
             ["--volumes-from=r16c-nosuch"], [f"--volumes-from={src}:ro,rw"], [f"--volumes-from={src}:z,z"],
             [f"--volumes-from={src}:x"], [f"--volumes-from={src}", "-v", f"{host}:/vol:ro"]]
    try:
        outs = []
        for tool, image in ((pallet, pallet.image), (podman, podman.image)):
            r = tool("run", "--rm", "--network", "none", rel, "sh", "-c",
                     "find /[ /etc/bar] -print; stat -c %D / /a/b /[/etc /a/b/c /[/etc/foo, /etc/bar]")
            got = [(r.returncode, r.stdout.split("\n")[:4], len(set(r.stdout.split()[4:7])),
                    len(set(r.stdout.split()[7:])))]
            r = tool("run", "-d", "--network", "none", "--name", src, "-v", f"{host}:/hostdir:ro", tag, "sh", "-c",
                     "echo made > /vol/f; sleep 60")
            assert r.returncode == 0, r.stderr
            assert tool("exec", src, "sh", "-c", "while [ ! -s /vol/f ]; do sleep 0.05; done").returncode == 0
            for flags in cases:
                r = tool("run", "--rm", "--network", "none", *flags, image, "sh", "-c", script)
                got.append((r.returncode, r.stdout, [l for l in r.stderr.splitlines() if l.startswith("Error")]))
            r = tool("exec", src, "cat", "/vol/f")  # the source's anonymous volume outlived the --rm ones
            got.append((r.returncode, r.stdout))
            outs.append(got)
            assert tool("rm", "-f", "-t", "0", "-v", src).returncode == 0
        assert outs[0] == outs[1]
        mine = outs[0]
        # the volumes' device differs from the root's (three directories of one root: one device)
        assert mine[0] == (0, ["/[", "/[/etc", "/[/etc/foo,", "/etc/bar]"], 1, 1)
        assert mine[1] == (0, "made\nhost\nvol-rw\nhost-ro\n", [])
        assert mine[2][1] == "made\nhost\nvol-ro\nhost-ro\n" and mine[3][1] == "made\nhost\nvol-rw\nhost-rw\n"
        assert mine[4][0] == 125 and mine[4][2] == [
            'Error: looking up container "r16c-nosuch" for volumes-from: no container with name or ID '
            '"r16c-nosuch" found: no such container']
        assert [m[2] for m in mine[5:8]] == [["Error: cannot set ro or rw options more than once"],
                                           ["Error: cannot set :z more than once in mount options"],
                                           ['Error: invalid option "x" specified - volumes from another container '
                                            "can only use z,ro,rw options"]]
        assert mine[8][1] == "host\nvol-ro\nhost-ro\n"  # its own -v (no f in it) over the source's volume
        assert mine[9] == (0, "made\n")
    finally:
        pallet("rm", "-f", "-t", "0", "-v", src)
        podman("rm", "-f", "-t", "0", "-v", src)
        for name in (tag, rel):
            pallet("rmi", "-f", name)
            podman("rmi", "-f", name)
