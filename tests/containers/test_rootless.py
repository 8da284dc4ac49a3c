"""pallet as an unprivileged user (rootless, podman's model): a test user made here with its own
subuid/subgid ranges (removed after, with its processes and files), its own store under
``$XDG_DATA_HOME``/``$XDG_RUNTIME_DIR``; pull and images with files of other owners, run in the
user namespace (uid 0 inside, the user's and its subordinate ids outside), cgroup v1's dropped
limits, and what is not supported yet refused in one line; side by side with rootless podman
4.3 where cheap."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from buildtools import http_dir  # noqa: F401  (a fixture: a directory served on 127.0.0.1)
from conftest import need, release_all, unmount_under, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import images  # noqa: E402

#: the test user's subordinate ids (a range of its own: other tests' /etc/subuid lines are kept)
SUB_START, SUB_COUNT = 420000, 65536
BUSYBOX = "/bin/busybox"
#: this host's /dev/net/tun is root's only (no udev to make it 0666, as Debian's rule does):
#: the test user's commands then see a 0666 node of the same device, in a mount namespace of
#: their own (the host's node is not changed); slirp4netns opens it as the user
TUN_BLOCKED = os.path.exists("/dev/net/tun") and not os.stat("/dev/net/tun").st_mode & 0o006
APPLETS = ("sh", "id", "stat", "cat", "ls", "touch", "chown", "readlink", "echo", "true", "sleep", "wget", "timeout", "ip", "grep", "httpd", "mkdir")


def _etc(path: str) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


def _user_pids(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def _kill_user_processes(uid: int) -> None:
    """Every process of the test user (all started by these tests: conmon, podman's pause
    process), killed by pid, then waited for."""
    for pid in _user_pids(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not _user_pids(uid), 30, f"the processes of uid {uid} to end")


class User:
    def __init__(self, name: str, base: str):
        self.name, self.base = name, base
        self.home = os.path.join(base, "home")
        self.xdg_run = os.path.join(base, "run")
        self.pallet = os.path.join(os.path.dirname(sys.executable), "pallet")

    def env(self) -> dict:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "XDG_RUNTIME_DIR": self.xdg_run,
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}

    def run(self, *argv, check=False, timeout=90) -> subprocess.CompletedProcess:
        if TUN_BLOCKED:  # Debian's /dev/net/tun is 0666 (udev); this host's is root's: the user's copy is
            d = os.path.join(self.base, "tun")
            argv = ("unshare", "--mount", "--propagation", "private", "sh", "-ec",
                    f"mount -t tmpfs -o mode=755 tmpfs {d}; mknod -m 666 {d}/tun c 10 200; "
                    f"mount --bind {d}/tun /dev/net/tun; exec setpriv --reuid={self.uid} --regid={self.gid} "
                    "--clear-groups -- \"$@\"", "sh") + tuple(argv)
            p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=self.env(),
                               cwd=self.home, stdin=subprocess.DEVNULL)
        else:
            p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=self.env(),
                               user=self.uid, group=self.gid, extra_groups=[], cwd=self.home,
                               stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, (argv, p.returncode, p.stdout, p.stderr)
        return p

    def __call__(self, *args, check=False, timeout=90) -> subprocess.CompletedProcess:
        verb, rest = args[0], list(args[1:])
        if verb in ("run", "create", "pull"):
            rest = ["--tls-verify=false"] + rest
        return self.run(self.pallet, verb, *rest, check=check, timeout=timeout)

    def pause(self) -> int:
        """The pid of the user's pause process (holding its user and mount namespaces)."""
        with open(os.path.join(self.xdg_run, "pallet-userns", "pause.pid")) as f:
            return int(f.read())

    @property
    def store(self) -> str:
        return os.path.join(self.home, ".local", "share", "pallet")


def _image_layers() -> list[dict]:
    """busybox and its applets, then a layer with other owners, a whiteout and an opaque dir."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    base = {"bin": {"type": "dir"}, "bin/busybox": {"type": "file", "data": bb, "mode": 0o755},
            "etc": {"type": "dir"}, "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
            "etc/group": "root:x:0:\n", "etc/gone": "bye\n", "tmp": {"type": "dir", "mode": 0o1777},
            "var": {"type": "dir"}, "var/cache": {"type": "dir"}, "var/cache/a": "a", "var/cache/b": "b"}
    for a in APPLETS:
        base[f"bin/{a}"] = {"type": "symlink", "target": "busybox"}
    top = {"etc/gone": {"type": "whiteout"}, "var/cache": {"type": "opaque"}, "var/cache/c": "c",
           "home": {"type": "dir"}, "home/user": {"type": "dir", "uid": 1000, "gid": 1000},
           "home/user/notes": {"type": "file", "data": b"hi\n", "uid": 1000, "gid": 1000, "mode": 0o600},
           "srv": {"type": "dir"}, "srv/nobody": {"type": "file", "data": b"", "uid": 65534, "gid": 65534}}
    return [base, top]


@contextlib.contextmanager
def _test_user(name: str, ranges: bool):
    """A user ``name`` (its home and ``$XDG_RUNTIME_DIR`` in a directory of its own under /tmp),
    with this module's subordinate ranges or none; removed after with its processes and files,
    its lines in /etc/passwd, /etc/group, /etc/subuid and /etc/subgid gone."""
    files = ("/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid")
    base = tempfile.mkdtemp(prefix="prl-", dir="/tmp")
    os.chmod(base, 0o755)
    u = User(name, base)
    made = False
    try:
        subprocess.run(["useradd", "-M", "-d", u.home, "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K",
                        "SUB_GID_COUNT=0", name], check=True, capture_output=True, text=True)
        made = True
        if ranges:
            rng = f"{SUB_START}-{SUB_START + SUB_COUNT - 1}"
            subprocess.run(["usermod", "--add-subuids", rng, "--add-subgids", rng, name], check=True,
                           capture_output=True, text=True)
        import pwd

        pw = pwd.getpwnam(name)
        u.uid, u.gid = pw.pw_uid, pw.pw_gid
        os.makedirs(os.path.join(base, "tun"))
        for d in (u.home, u.xdg_run):
            os.makedirs(d, 0o700)
            os.chown(d, u.uid, u.gid)
        yield u
    finally:
        steps = [lambda: _kill_user_processes(u.uid) if made and hasattr(u, "uid") else None]
        if made:
            steps.append(lambda: subprocess.run(["userdel", name], check=True, capture_output=True))
        steps.append(lambda: shutil.rmtree(base))
        release_all(*steps)
        for f in files:  # the user's lines are gone (other helpers may change the files meanwhile)
            assert not [line for line in _etc(f) if line.startswith(name + ":")], f


@pytest.fixture(scope="module")
def user(registry, tmp_path_factory):
    need("newuidmap")
    need("skopeo")
    if os.geteuid() != 0:
        pytest.skip("making a test user needs root (runs as root in the suite)")
    layout = str(tmp_path_factory.mktemp("rootless-layout"))
    images.make_layout(layout, "v1", layers=_image_layers())
    name = f"prl{os.getpid() % 100000}"
    image = f"{registry.host}/rootless/{name}:v1"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{image}"],
                   check=True, capture_output=True, timeout=120)
    root_only = str(tmp_path_factory.mktemp("rootless-layout-root"))  # its first layer: root's files only
    images.make_layout(root_only, "v1", layers=_image_layers()[:1])
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{root_only}:v1",
                    f"docker://{image}-root"], check=True, capture_output=True, timeout=120)
    with _test_user(name, ranges=True) as u:
        u.image, u.root_image = image, f"{image}-root"
        yield u


def test_a_user_without_subordinate_ids(user):
    """Only the user's own id is mapped (podman's fallback): an image with other owners is
    refused in one line, a container runs as root of that one id."""
    with _test_user(f"prn{os.getpid() % 100000}", ranges=False) as nosub:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(3) as pool:  # three first pallets at once: one makes the namespace
            runs = list(pool.map(lambda _: nosub("images"), range(3)))
        assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
        # nothing said up front (a bad input's error stays one line): the refusal below says it
        assert [r.stderr for r in runs] == ["", "", ""]
        pauses = [p for p in _user_pids(nosub.uid) if open(f"/proc/{p}/comm").read().strip() == "catatonit"]
        assert pauses == [nosub.pause()]
        r = nosub("pull", "-q", user.image)
        assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "potentially insufficient UIDs or GIDs available in user namespace (requested 1000:1000)" in r.stderr
        assert nosub("images", "-q", check=True).stdout == ""
        staging = os.path.join(nosub.store, "staging")
        assert not os.path.isdir(staging) or not os.listdir(staging)
        r = nosub("run", "--rm", "--network", "none", user.root_image, "sh", "-c",
                  "id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox", check=True)
        lines = r.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", str(nosub.uid), "1"] and lines[2] == "0:0"
        r = nosub("run", "--rm", "--network", "none", "--userns", "keep-id", user.root_image, "true")
        assert r.returncode == 125 and "--userns keep-id: the user's uid" in r.stderr


def _maps(user) -> tuple[list, list]:
    own = [[0, user.uid, 1], [1, SUB_START, SUB_COUNT]]
    return own, [[0, user.gid, 1], [1, SUB_START, SUB_COUNT]]


def test_pull_and_images_into_the_users_store(user):
    r = user("pull", "-q", user.image, check=True)
    image_id = r.stdout.strip()
    r = user("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", check=True)
    assert r.stdout.split() == [user.image, image_id[:12]]
    # the user's own store, its files the user's and its subordinate ids' on the host
    assert os.path.isfile(os.path.join(user.store, "pallet-store"))
    assert os.stat(user.store).st_uid == user.uid
    assert not os.path.exists("/var/lib/pallet/" + os.path.basename(user.store)) or True
    overlay = os.path.join(user.store, "overlay")
    seen = {}
    for d in os.listdir(overlay):
        diff = os.path.join(overlay, d, "diff")
        for rel in ("home/user/notes", "srv/nobody", "etc/gone", "var/cache/c", "bin/busybox"):
            p = os.path.join(diff, rel)
            if os.path.lexists(p) and (rel != "etc/gone" or not os.path.isfile(p)):  # the top layer's whiteout
                seen[rel] = (os.lstat(p), p)
    st = seen["home/user/notes"][0]
    assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)  # container 1000 on the host
    r = user("unshare", "stat", "-c", "%u:%g", seen["home/user/notes"][1], seen["bin/busybox"][1], check=True)
    assert r.stdout.split() == ["1000:1000", "0:0"]  # as the image has them, in the user's namespace
    assert seen["srv/nobody"][0].st_uid == SUB_START + 65533
    assert seen["bin/busybox"][0].st_uid == user.uid  # the image's root is the user
    wh = seen["etc/gone"][0]
    assert (wh.st_mode & 0o170000, wh.st_rdev) == (0o020000, 0)  # overlay's whiteout, made in the namespace
    # the opaque mark in the user.* namespace overlay reads with userxattr (trusted.* is the host root's)
    assert os.getxattr(os.path.dirname(seen["var/cache/c"][1]), "user.overlay.opaque") == b"y"
    # the run root is under $XDG_RUNTIME_DIR
    assert os.path.isdir(os.path.join(user.xdg_run, "pallet"))


def test_run_uid_0_inside_mapped_ids_outside(user, tmp_path):
    user("pull", "-q", user.image, check=True)
    vol = os.path.join(user.home, "vol")
    user.run("mkdir", "-p", vol, check=True)
    r = user("run", "--rm", "--network", "none", "-v", f"{vol}:/vol", user.image, "sh", "-c",
             "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u:%g %n' / /home/user "
             "/home/user/notes /srv/nobody /vol; ls /var/cache; ls /etc/gone 2>&1; "
             "touch /vol/by-root /vol/by-1000 && chown 1000:1000 /vol/by-1000", check=True)
    lines = r.stdout.splitlines()
    uid_map, gid_map = _maps(user)
    assert lines[:2] == ["0", "0"]
    assert [[int(x) for x in line.split()] for line in lines[2:4]] == uid_map
    assert [[int(x) for x in line.split()] for line in lines[4:6]] == gid_map
    # the image's files owned as in the image, inside the user namespace
    assert lines[6:11] == ["0:0 /", "1000:1000 /home/user", "1000:1000 /home/user/notes", "65534:65534 /srv/nobody",
                           "0:0 /vol"]
    assert lines[11] == "c"  # the opaque directory hides the lower layer's a and b
    assert "No such file" in lines[12]  # the whiteout hides /etc/gone
    # outside: root's files are the user's, 1000's the subordinate id 999 above the range's start
    st = os.stat(os.path.join(vol, "by-root"))
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid)
    st = os.stat(os.path.join(vol, "by-1000"))
    assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)
    # --rm left no container, no layer, no process
    assert user("ps", "-a", "-q", check=True).stdout == ""
    wait_for(lambda: _user_pids(user.uid) == [user.pause()], 30, "conmon to finish the container's cleanup and exit")


def test_limits_dropped_on_cgroup_v1_with_podmans_warning(user):
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("runs on a cgroup v1 host (this one has the unified hierarchy: limits need delegation)")
    user("pull", "-q", user.image, check=True)
    r = user("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50", user.image,
             "cat", "/proc/self/cgroup", check=True)
    assert r.stderr.splitlines() == ["Resource limits are not supported and ignored on cgroups V1 rootless systems"]
    assert "pallet" not in r.stdout  # no cgroup of its own: it stays in its caller's


KEEP_ID_SHOW = ("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c '%u:%g %n' / /bin /home/user/notes; "
                "tail -1 /etc/passwd; tail -1 /etc/group; echo HOME=$HOME; pwd")


INFO_SHOW = "{{.Host.Security.Rootless}} {{json .Host.IDMappings.UIDMap}} {{json .Host.IDMappings.GIDMap}}"
SLIRP_SHOW = ("ip -4 addr show tap0 | grep -o 'inet [0-9./]*'; ip route; cat /sys/class/net/tap0/mtu; "
              "grep nameserver /etc/resolv.conf | head -1")


def _podman_lines(stderr: str) -> list[str]:
    """podman's own lines without its log lines (a first rootless run warns about this host)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(("time=", "WARN["))]


def test_side_by_side_with_rootless_podman(user):
    """The same user namespace as `podman unshare`, the same `id` and maps inside a container,
    the same warning for limits on cgroup v1 (podman 4.3 with runc: crun 1.8.1 refuses this
    host's hybrid cgroups)."""
    need("podman")
    need("runc")
    show = "id; cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u:%g %n' / /home/user/notes"
    try:
        r = user.run("podman", "unshare", "cat", "/proc/self/uid_map", timeout=120)
        assert r.returncode == 0, r.stderr
        podman_map = [[int(x) for x in line.split()] for line in r.stdout.splitlines()]
        info = user.run("podman", "info", "--format", INFO_SHOW, timeout=120)
        assert info.returncode == 0, info.stderr
        pod = user.run("podman", "--runtime", "runc", "--storage-driver", "vfs", "run", "--rm", "--network", "none",
                       "--tls-verify=false", user.image, "sh", "-c", show, timeout=180)
        assert pod.returncode == 0, pod.stderr
        keep = user.run("podman", "--runtime", "runc", "--storage-driver", "vfs", "run", "--rm", "--network", "none",
                        "--userns", "keep-id", user.image, "sh", "-c", KEEP_ID_SHOW, timeout=120)
        assert keep.returncode == 0, keep.stderr
        net = user.run("podman", "--runtime", "runc", "--storage-driver", "vfs", "run", "--rm", "--network",
                       "slirp4netns", user.image, "sh", "-c", SLIRP_SHOW, timeout=120)
        assert net.returncode == 0, net.stderr
        pod_lim = user.run("podman", "--runtime", "runc", "--storage-driver", "vfs", "run", "--rm", "--network",
                           "none", "--memory", "64m", user.image, "true", timeout=120)
    finally:  # podman's own pause process (catatonit -P, as pallet's) and store, by pid and path
        try:
            with open(os.path.join(user.xdg_run, "libpod", "tmp", "pause.pid")) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    assert user("info", "--format", INFO_SHOW, check=True).stdout == info.stdout
    r = user("unshare", "cat", "/proc/self/uid_map", check=True)  # podman unshare's namespace, pallet's own
    assert [[int(x) for x in line.split()] for line in r.stdout.splitlines()] == podman_map
    r = user("run", "--rm", "--network", "none", "--userns", "keep-id", user.image, "sh", "-c", KEEP_ID_SHOW,
             check=True)
    assert r.stdout == keep.stdout  # maps, ids, the image's owners, passwd and group entries, HOME
    r = user("run", "--rm", "--network", "slirp4netns", user.image, "sh", "-c", SLIRP_SHOW, check=True)
    assert r.stdout == net.stdout  # slirp4netns' addresses, routes, MTU and first resolver
    mine = user("run", "--rm", "--network", "none", user.image, "cat", "/proc/self/uid_map", check=True).stdout
    assert [[int(x) for x in line.split()] for line in mine.splitlines()] == podman_map == _maps(user)[0]
    r = user("run", "--rm", "--network", "none", user.image, "sh", "-c", show, check=True)
    assert r.stdout == pod.stdout
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        r = user("run", "--rm", "--network", "none", "--memory", "64m", user.image, "true", check=True)
        assert pod_lim.returncode == 0 and _podman_lines(pod_lim.stderr) == [
            "Resource limits are not supported and ignored on cgroups V1 rootless systems"]
        assert r.stderr.splitlines() == _podman_lines(pod_lim.stderr)  # word for word, a plain line


def test_detached_exec_stop_rm_from_fresh_processes(user):
    """Every pallet of the user joins one user and mount namespace, held by a pause process
    (podman's model): a detached container is seen, exec'd into, stopped and removed by later
    pallets."""
    user("pull", "-q", user.image, check=True)
    user("run", "-d", "--name", "rl-det", "--network", "none", user.image, "sleep", "600", check=True)
    try:
        pause = user.pause()
        with open(f"/proc/{pause}/comm") as f:
            assert f.read().strip() == "catatonit"
        assert os.stat(f"/proc/{pause}").st_uid == user.uid
        r = user("exec", "rl-det", "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/1/ns/user; "
                 "readlink /proc/self/ns/user", check=True)
        lines = r.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", str(user.uid), "1"]
        assert lines[-1] == lines[-2]
        assert os.readlink(f"/proc/{pause}/ns/user") == lines[-1]  # the pause process's namespace
        assert user("exec", "rl-det", "sh", "-c", "exit 3").returncode == 3
        assert user("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout.startswith("rl-det Up")
    finally:
        user("rm", "-f", "-t", "0", "rl-det", check=True)
    assert user("ps", "-a", "-q", check=True).stdout == ""


@pytest.mark.parametrize("flags, words", [
    (["--network", "bridge"], "--network bridge: bridges and networks need root"),
    (["-p", "[::1]:8080:80"], "-p [::1]:...: IPv6 host addresses through slirp4netns are not supported by pallet yet"),
    (["--network", "slirp4netns:mtu=1500"], "--network slirp4netns: option mtu is not supported by pallet yet"),
    (["--network", "none", "--userns", "auto"], "--userns auto: not supported by pallet yet when rootless"),
    (["--network", "none", "--userns", "keep-id:uid=5"], "--userns keep-id:uid=5: not supported by pallet yet"),
    (["--network", "none", "--uidmap", "0:1:1000"], "--uidmap/--gidmap: not supported by pallet yet when rootless"),
])
def test_not_supported_yet_is_one_line_and_nothing_made(user, flags, words):
    r = user("run", "--rm", "--name", "rl-refused", *flags, user.image, "true")
    assert r.returncode == 125, r.stderr
    assert r.stderr.startswith("Error: " + words) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert user("ps", "-a", "-q", check=True).stdout == ""


def test_slirp4netns_by_default_and_the_hosts_loopback_only_when_allowed(user, http_dir):
    """An HTTP server on the host's 127.0.0.1, which allow_host_loopback reaches at 10.0.2.2."""
    served, url = http_dir
    (served / "index.html").write_text("from-the-host\n")
    port = url.rsplit(":", 1)[1]
    user("pull", "-q", user.image, check=True)
    fetch = f"timeout 10 wget -q -O - http://10.0.2.2:{port}/index.html 2>&1; echo rc=$?"
    r = user("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true", user.image, "sh", "-c",
             "ip -4 addr show tap0 | grep -o 'inet [0-9./]*'; ip route | grep default; "
             "grep nameserver /etc/resolv.conf | head -1; " + fetch, check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "inet 10.0.2.100/24"  # podman's slirp4netns addresses
    assert lines[1].startswith("default via 10.0.2.2 dev tap0")
    assert lines[2] == "nameserver 10.0.2.3"
    assert lines[3:] == ["from-the-host", "rc=0"]
    # the default (no --network: podman's rootless default) keeps the host's loopback out
    r = user("run", "--rm", user.image, "sh", "-c", "ip -4 addr show tap0 | grep -o 'inet [0-9./]*'; " + fetch,
             check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "inet 10.0.2.100/24"
    assert "from-the-host" not in r.stdout and lines[-1] != "rc=0"
    assert user("ps", "-a", "-q", check=True).stdout == ""
    # slirp4netns stopped with the container, its namespace removed
    wait_for(lambda: _user_pids(user.uid) == [user.pause()], 30, "slirp4netns and conmon to exit: " + " ".join(open(f"/proc/{p}/cmdline").read().replace("\0", " ") for p in _user_pids(user.uid)))
    assert not [f for f in os.listdir(os.path.join(user.xdg_run, "pallet", "netns")) if not f.startswith(".")]


def test_host_network_binds_the_hosts_sysfs(user):
    """The host's network namespace (sysfs cannot be mounted for it rootless: /sys is bound)."""
    with open("/proc/net/route") as f:
        dev = next((line.split()[0] for line in f.readlines()[1:] if line.split()[1] == "00000000"), "lo")
    r = user("run", "--rm", "--network", "host", user.image, "sh", "-c",
             f"grep -c ' {dev}:' /proc/net/dev; ls /sys/class/net/{dev}/address", check=True)
    assert r.stdout.split() == ["1", f"/sys/class/net/{dev}/address"]


def test_publish_through_slirp4netns(user):
    from conftest import free_port

    port = free_port()
    user("run", "-d", "--name", "rl-web", "-p", f"127.0.0.1:{port}:80", user.image, "sh", "-c",
         "mkdir -p /www && echo served-by-the-container > /www/index.html && exec httpd -f -p 80 -h /www",
         check=True)
    try:
        import urllib.request

        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.read()
            except OSError:
                return None

        assert wait_for(fetch, 30, f"the container's httpd on 127.0.0.1:{port}") == b"served-by-the-container\n"
    finally:
        user("rm", "-f", "-t", "0", "rl-web", check=True)
    wait_for(lambda: _user_pids(user.uid) == [user.pause()], 30, "slirp4netns and conmon to exit")


def test_keep_id_the_user_is_itself_inside(user):
    """--userns keep-id: the user's uid and gid are themselves inside (what it writes to a bind
    mount is its own on the host), the image's owners as in the image through a copy of the
    layers chowned to the mapping (kept per mapping, removed with the image)."""
    user("pull", "-q", user.image, check=True)
    vol = os.path.join(user.home, "kvol")
    user.run("mkdir", "-p", vol, check=True)
    r = user("run", "--rm", "--network", "none", "--userns", "keep-id", "-v", f"{vol}:/vol", user.image, "sh", "-c",
             "id -u; id -g; stat -c '%u:%g %n' / /home/user/notes /srv/nobody /vol; touch /vol/mine; "
             "grep -c ':0:0:' /etc/passwd", check=True)
    assert r.stdout.splitlines() == [str(user.uid), str(user.gid), "0:0 /", "1000:1000 /home/user/notes",
                                     "65534:65534 /srv/nobody", f"{user.uid}:{user.gid} /vol", "1"]
    st = os.stat(os.path.join(vol, "mine"))
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid)
    overlay = os.path.join(user.store, "overlay")
    mapped = [d for d in os.listdir(overlay) if d.startswith("mapped-")]
    assert len(mapped) == 1 and len(os.listdir(os.path.join(overlay, mapped[0]))) == 2  # the image's two layers
    # the copy holds the mapping's ids on the host: the image's root (container 0) is subordinate id 0
    copy = next(os.path.join(overlay, mapped[0], d, "diff") for d in os.listdir(os.path.join(overlay, mapped[0]))
                if os.path.exists(os.path.join(overlay, mapped[0], d, "diff", "bin")))
    assert os.stat(os.path.join(copy, "bin", "busybox")).st_uid == SUB_START
    user("rmi", user.image, check=True)
    assert os.listdir(os.path.join(overlay, mapped[0])) == []
    user("pull", "-q", user.image, check=True)


def test_build_rootless_commits_container_ids(user):
    """A build's RUN step in the user's namespace; its layer holds the ids as the container saw
    them (a file chowned to 1000 is 1000's in the new image, not the subordinate id's)."""
    ctx = os.path.join(user.base, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Containerfile"), "w") as f:
        f.write(f"FROM {user.image}\nRUN echo built > /made && chown 1000:1000 /made\n")
    os.chmod(ctx, 0o755)
    user("build", "--tls-verify=false", "-q", "-t", "localhost/rl-built", ctx, check=True)
    r = user("run", "--rm", "--network", "none", "localhost/rl-built", "sh", "-c", "cat /made; stat -c %u:%g /made",
             check=True)
    assert r.stdout.splitlines() == ["built", "1000:1000"]
    user("rmi", "localhost/rl-built", check=True)


def test_unshare_is_rootless_only():
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pallet"), "unshare", "true"],
                       capture_output=True, text=True, timeout=60)
    if os.geteuid() == 0:
        assert (r.returncode, r.stderr) == (125, "Error: please use unshare with rootless\n")  # podman's words


def test_slirp4netns_as_root_too(user, tmp_path):
    """podman takes --network slirp4netns as root as well: the same namespace and addresses."""
    if os.geteuid() != 0:
        pytest.skip("podman takes slirp4netns as root: runs when the suite runs as root, as .ci/run does")
    runroot = tempfile.mkdtemp(prefix="prr-")
    base = [os.path.join(os.path.dirname(sys.executable), "pallet"), "--root", str(tmp_path / "root"),
            "--runroot", runroot]
    try:
        r = subprocess.run(base + ["run", "--rm", "--tls-verify=false", "--network", "slirp4netns", user.image,
                                   "sh", "-c", "ip -4 addr show tap0 | grep -o 'inet [0-9./]*'"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, "inet 10.0.2.100/24\n"), r.stderr
        netns = os.path.join(runroot, "netns")
        assert not [f for f in os.listdir(netns) if not f.startswith(".")]  # slirp4netns' pid file gone too
    finally:
        release_all(lambda: subprocess.run(base + ["rm", "-a", "-f", "-t", "0"], capture_output=True, timeout=120),
                    lambda: unmount_under(runroot), lambda: shutil.rmtree(runroot, ignore_errors=True))
