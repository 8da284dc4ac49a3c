"""podman's verbs on a container's files and processes (cp, diff, export, commit, port, top,
stats, rename, container prune, ps's time and volume filters, run -P), with real conmon,
pallet-runtime and the test registry, side by side with podman 4.3 where cheap.

The module's pallet store and podman come from test_containers_run's fixtures (which remove
every container, mount and namespace at the end, even when a test fails)."""

from __future__ import annotations

import io
import itertools
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from conftest import free_port, wait_for
from test_containers_run import _one_line_error, pallet, podman, ps_names  # noqa: F401  (fixtures)


def _tree(root: str) -> dict:
    """path -> (kind, mode, content or link target) of everything below ``root``."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", oct(st.st_mode & 0o7777))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", oct(st.st_mode & 0o7777), f.read())
    return out


_SEQ = itertools.count()


def _raw(tool, *args, input=None):
    """A tool's command with bytes in and out (tars on stdin and stdout)."""
    if tool.__class__.__name__ == "Pallet":
        argv = [os.path.join(os.path.dirname(sys.executable), "pallet")] + tool.base
    else:
        argv = list(tool.base)
    return subprocess.run(argv + list(args), input=input, capture_output=True, env=getattr(tool, "env", None),
                          timeout=60, stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture(scope="module")
def both(pallet, podman):  # noqa: F811
    """A running container in each tool, with the same files (``/data``, and ``/wN`` holding a
    file ``a`` for case N to write into); yields the tools and names."""
    script = "mkdir -p /data/sub /empty && echo one > /data/a && echo two > /data/sub/b && ln -s a /data/link " \
             "&& chmod 600 /data/a && for i in 0 1 2 3 4 5 6 7 8 9; do mkdir /w$i && echo w > /w$i/a; done " \
             "&& exec sleep 600"
    made = []
    for who, tool, image in (("pallet", pallet, pallet.image), ("podman", podman, podman.image)):
        name = f"cp-{who}-{next(_SEQ)}"
        r = tool("run", "-d", "--name", name, "--network", "none", image, "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        made.append((tool, name))
    for tool, name in made:
        wait_for(lambda: _raw(tool, "cp", f"{name}:/data/link", "-").returncode == 0, what="the container's files")
    yield made
    for tool, name in made:
        tool("rm", "-f", "-t", "0", name)


CASES = [  # (source, destination) with CTR for the container, HOST for the host directory, W for /wN
    ("CTR:/data", "HOST/new"),           # a directory to a new name
    ("CTR:/data", "HOST/exists"),        # a directory into an existing directory
    ("CTR:/data/.", "HOST/exists"),      # its content into an existing directory
    ("CTR:/data/a", "HOST/exists"),      # a file into a directory
    ("CTR:/data/a", "HOST/file"),        # a file over a file
    ("CTR:/data/link", "HOST/linked"),   # a symlink: followed inside the container
    ("HOST/src", "CTR:W/new"),           # a host directory to a new name
    ("HOST/src/.", "CTR:W"),             # its content into a directory
    ("HOST/src/f", "CTR:W/"),            # a file into a directory
    ("HOST/src/f", "CTR:W/a"),           # a file over a file
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_cp_both_ways_as_podman(both, tmp_path, case):
    src, dst = (x.replace("W", f"/w{case}") for x in CASES[case])
    trees = []
    for tool, name in both:
        host = tmp_path / f"h-{name}"
        (host / "exists").mkdir(parents=True)
        (host / "file").write_text("old\n")
        (host / "src" / "d").mkdir(parents=True)
        (host / "src" / "f").write_text("host file\n")
        (host / "src" / "d" / "g").write_text("deep\n")
        os.chmod(host / "src" / "f", 0o640)
        s = src.replace("CTR", name).replace("HOST", str(host))
        d = dst.replace("CTR", name).replace("HOST", str(host))
        r = tool("cp", s, d)
        assert r.returncode == 0, (s, d, r.stderr)
        out = tmp_path / f"o-{name}"
        r = tool("cp", f"{name}:/w{case}", str(out))  # what the container has now, copied back
        assert r.returncode == 0, r.stderr
        trees.append((_tree(str(host)), _tree(str(out))))
    assert trees[0] == trees[1]


def test_cp_tar_on_stdin_and_stdout_as_podman(both, tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for n, data in (("in/x", b"x\n"), (".wh.y", b"not a whiteout\n")):
            ti = tarfile.TarInfo(n)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    names = []
    for tool, name in both:
        r = _raw(tool, "cp", "-", f"{name}:/tmp", input=raw.getvalue())
        assert r.returncode == 0, r.stderr
        out = _raw(tool, "cp", f"{name}:/tmp", "-")
        assert out.returncode == 0, out.stderr
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tf:
            members = {m.name.rstrip("/"): m for m in tf.getmembers()}
            names.append(sorted(members))
            assert tf.extractfile(members["tmp/.wh.y"]).read() == b"not a whiteout\n"
    assert names[0] == names[1]
    assert "tmp/in/x" in names[0]


def test_cp_errors_as_podman(both, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("f\n")
    for src, dst in (("CTR:/no/such", str(tmp_path / "x")), ("CTR:/data", str(tmp_path / "f")),
                     (str(tmp_path / "d"), "CTR:/data/a"), (str(tmp_path / "nope"), "CTR:/tmp"),
                     (str(tmp_path / "f"), "CTR:/no/such/dir/"), ("no-such-ctr:/x", str(tmp_path / "y")),
                     ("CTR:/data/a", "/dev/stdout"), ("CTR:/data/a", "/dev/null")):
        codes = []
        for tool, name in both:
            r = tool("cp", src.replace("CTR", name), dst.replace("CTR", name))
            codes.append(r.returncode)
            if tool.__class__.__name__ == "Pallet":
                _one_line_error(r.stderr)
        assert codes[0] == codes[1] == 125, (src, dst)
    assert not (tmp_path / "x").exists() and (tmp_path / "f").read_text() == "f\n"


def test_cp_overwrite_as_podman(both, tmp_path):
    """A directory never replaces a file (nor the other way round) without --overwrite: exit
    125 and podman's words, which its scripts grep; with it, both tools give the same tree."""
    trees = []
    for tool, name in both:
        host = tmp_path / name
        (host / "a").mkdir(parents=True)
        (host / "a" / "inner").write_text("dir now\n")
        r = tool("cp", str(host / "a"), f"{name}:/w0")
        assert r.returncode == 125
        assert 'error creating "/w0/a": ' in r.stderr and "file exists" in r.stderr, r.stderr
        r = tool("cp", "--overwrite", str(host / "a"), f"{name}:/w0")
        assert r.returncode == 0, r.stderr
        assert tool("cp", f"{name}:/w0", str(tmp_path / f"back-{name}")).returncode == 0
        trees.append(_tree(str(tmp_path / f"back-{name}")))
    assert trees[0] == trees[1] and trees[0]["a/inner"][2] == b"dir now\n"


def test_cp_archive_owner_and_stopped_container(pallet, tmp_path):  # noqa: F811
    """--archive (the default) makes what is copied in the container user's; --archive=false
    keeps the host's owner; a stopped container is copied to and from as a running one."""
    cid = pallet("create", "--network", "none", "-u", "1000:1000", pallet.image, "true", check=True).stdout.strip()
    try:
        f = tmp_path / "f"
        f.write_text("owned\n")
        os.chown(f, 1234, 1234)
        pallet("cp", str(f), f"{cid}:/tmp/a", check=True)
        pallet("cp", "-a=false", "--pause=false", str(f), f"{cid}:/tmp/b", check=True)  # pflag spellings
        out = _raw(pallet, "cp", f"{cid}:/tmp", "-")
        assert out.returncode == 0, out.stderr
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tf:
            owners = {m.name: (m.uid, m.gid) for m in tf.getmembers()}
        assert owners["tmp/a"] == (1000, 1000) and owners["tmp/b"] == (1234, 1234)
        back = tmp_path / "back"
        pallet("cp", f"{cid}:/tmp/b", str(back), check=True)
        assert back.read_text() == "owned\n" and (back.stat().st_uid, back.stat().st_gid) == (0, 0)
        assert pallet("start", "-a", cid).returncode == 0  # it still runs
    finally:
        pallet("rm", "-f", cid)


def test_diff_and_export_as_podman(pallet, podman, tmp_path):  # noqa: F811
    script = "echo new > /tmp/added && echo changed >> /etc/group && rm /etc/passwd && mkdir -p /root/x"
    outs = []
    for who, tool, image in (("pallet", pallet, pallet.image), ("podman", podman, podman.image)):
        name = f"diff-{who}"
        r = tool("run", "--name", name, "--network", "none", image, "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        try:
            d = tool("diff", name)
            j = tool("diff", "--format", "json", name)
            assert d.returncode == j.returncode == 0, (d.stderr, j.stderr)
            tar_path = tmp_path / f"{who}.tar"
            assert tool("export", "-o", str(tar_path), name).returncode == 0
            with tarfile.open(tar_path) as tf:
                members = sorted(m.name.rstrip("/") for m in tf.getmembers() if m.name.rstrip("/") not in ("", "."))
            outs.append((sorted(d.stdout.splitlines()), {k: sorted(v) for k, v in json.loads(j.stdout).items()},
                         j.stdout.splitlines()[1][:6], members))
            if who == "pallet":  # -o never replaces a device
                assert tool("export", "-o", "/dev/null", name).returncode == 0
                assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        finally:
            tool("rm", "-f", name)
    assert outs[0][:3] == outs[1][:3]
    assert set(outs[0][3]) ^ set(outs[1][3]) <= {"run", "run/.containerenv", "etc/hostname", "etc/hosts", "etc/mtab",
                                                 "etc/resolv.conf"}
    assert "A /tmp/added" in outs[0][0] and "D /etc/passwd" in outs[0][0] and "C /etc/group" in outs[0][0]


def test_diff_on_the_vfs_driver(pallet, registry, tmp_path):  # noqa: F811
    """The vfs driver's diff (its tree compared with the image's) says what overlay's does."""
    import tempfile

    from conftest import release_all, unmount_under
    from test_containers_run import Pallet

    own = Pallet(str(tmp_path), tempfile.mkdtemp(prefix="pvfs-"), registry.host)
    own.base += ["--storage-driver", "vfs"]
    script = "echo new > /tmp/added && echo changed >> /etc/group && rm /etc/passwd"
    try:
        outs = []
        for tool in (own, pallet):
            name = f"vfs-diff-{len(outs)}"
            tool("run", "--name", name, "--network", "none", tool.image, "sh", "-c", script, check=True)
            outs.append(tool("diff", name, check=True).stdout)
            tool("rm", name, check=True)
        assert outs[0] == outs[1] == "C /etc\nC /etc/group\nD /etc/passwd\nC /tmp\nA /tmp/added\n"
    finally:
        release_all(lambda: own("rm", "-a", "-f", "-t", "0"), lambda: unmount_under(own.runroot),
                    lambda: __import__("shutil").rmtree(own.runroot, ignore_errors=True))


def test_unknown_container_for_file_verbs(pallet, podman):  # noqa: F811
    for verb in (["diff"], ["export", "-o", "/dev/null"], ["top"], ["port"], ["rename", "x"], ["commit"]):
        mine = pallet(*verb[:1], "no-such-ctr", *verb[1:])
        theirs = podman(*verb[:1], "no-such-ctr", *verb[1:])
        assert mine.returncode == theirs.returncode == 125, (verb, mine.stderr, theirs.stderr)
        _one_line_error(mine.stderr)


def test_commit_then_run_publish_all_and_port(pallet, tmp_path):  # noqa: F811
    """commit -m -a -c makes an image of the container's changes and settings; run -P publishes
    its EXPOSE port on a free host port, and port shows it as podman does."""
    name = "commit-src"
    pallet("run", "--name", name, "--network", "none", "-e", "FROM_RUN=1", "-v", f"{tmp_path}:/mnt", pallet.image,
           "sh", "-c", "echo hi > /srv-file", check=True)
    image = "localhost/committed:v1"
    try:
        r = pallet("commit", "-q", "-m", "a message", "-a", "someone", "-c", "EXPOSE 80", "-c", "ENV A=b",
                   "-c", 'CMD ["sh", "-c", "cat /srv-file; echo $A$FROM_RUN"]', "--iidfile", str(tmp_path / "iid"),
                   "--include-volumes", name, image)
        assert r.returncode == 0, r.stderr
        iid = r.stdout.strip()
        assert (tmp_path / "iid").read_text() == "sha256:" + iid
        out = pallet("run", "--rm", "--network", "none", image, check=True).stdout
        assert out == "hi\nb1\n"
        doc = json.loads(pallet("image", "inspect", image, check=True).stdout)[0]
        assert iid.startswith(doc["Id"][:12])
        assert doc["Config"]["Volumes"] == {"/mnt": {}} and doc["Author"] == "someone"
        assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
        r = pallet("diff", image)  # an image: visibly not supported yet
        assert r.returncode == 125 and "not supported yet" in _one_line_error(r.stderr)
        bad = pallet("commit", "-c", "FROM x", name, image)
        assert bad.returncode == 125 and "FROM" in _one_line_error(bad.stderr)
        port = free_port()
        cid = pallet("run", "-d", "-P", "-p", f"127.0.0.1:{port}:81", image, "sleep", "600", check=True).stdout.strip()
        try:
            lines = pallet("port", cid, check=True).stdout.splitlines()
            assert f"81/tcp -> 127.0.0.1:{port}" in lines
            auto = [line for line in lines if line.startswith("80/tcp -> 0.0.0.0:")]
            assert len(auto) == 1 and int(auto[0].rsplit(":", 1)[1]) > 0
            assert pallet("port", cid, "81", check=True).stdout == f"127.0.0.1:{port}\n"
            missing = pallet("port", cid, "82/udp")
            assert missing.returncode == 125 and "82/udp" in _one_line_error(missing.stderr)
            insp = json.loads(pallet("container", "inspect", cid, check=True).stdout)[0]
            assert insp["HostConfig"]["PublishAllPorts"] is True
            paused = pallet("commit", "-q", "--pause", cid, "localhost/paused:v1")  # paused while its layer is read
            assert paused.returncode == 0, paused.stderr
            assert json.loads(pallet("container", "inspect", cid, check=True).stdout)[0]["State"]["Status"] == "running"
            pallet("rmi", "localhost/paused:v1", check=True)
        finally:
            pallet("rm", "-f", "-t", "0", cid)
    finally:
        pallet("rm", "-f", name)
        pallet("rmi", "-f", image)


def test_top_and_stats_as_podman(pallet, podman):  # noqa: F811
    docs = {}
    for who, tool, image in (("pallet", pallet, pallet.image), ("podman", podman, podman.image)):
        name = f"top-{who}"
        assert tool("run", "-d", "--name", name, "--network", "none", image, "sleep", "600").returncode == 0
        try:
            top = tool("top", name)
            some = tool("top", name, "pid,comm", "user")
            stats = tool("stats", "--no-stream", name)
            sj = tool("stats", "--no-stream", "--format", "json", name)
            assert top.returncode == some.returncode == stats.returncode == sj.returncode == 0, \
                (top.stderr, stats.stderr)
            docs[who] = (top.stdout.splitlines(), some.stdout, stats.stdout.splitlines(), json.loads(sj.stdout))
        finally:
            tool("rm", "-f", "-t", "0", name)
    (top, some, stats, sj), (ptop, psome, pstats, psj) = docs["pallet"], docs["podman"]
    assert top[0].split() == ptop[0].split()  # USER PID PPID %CPU ELAPSED TTY TIME COMMAND
    assert top[1].split()[:3] == ptop[1].split()[:3] == ["root", "1", "0"]
    assert top[1].split()[-2:] == ptop[1].split()[-2:] == ["sleep", "600"]
    assert some == psome
    assert stats[0].split() == pstats[0].split()
    assert [set(d) for d in sj] == [set(d) for d in psj] and sj[0]["pids"] == psj[0]["pids"] == "1"
    assert sj[0]["name"] == "top-pallet" and sj[0]["net_io"] == "0B / 0B"
    assert sj[0]["mem_usage"].endswith(psj[0]["mem_usage"].split(" / ")[1])  # the same limit: the host's memory
    r = pallet("top", "no-such-ctr")
    assert r.returncode == 125


def test_rename_prune_and_ps_filters(pallet, tmp_path):  # noqa: F811
    vol = tmp_path / "vol"
    vol.mkdir()
    a = pallet("create", "--name", "pf-a", "--label", "k=v", "--network", "none", pallet.image, "true",
               check=True).stdout.strip()
    b = pallet("create", "--name", "pf-b", "--network", "none", "-v", f"{vol}:/mnt", pallet.image, "true",
               check=True).stdout.strip()
    c = pallet("run", "-d", "--name", "pf-c", "--network", "none", pallet.image, "sleep", "600",
               check=True).stdout.strip()
    try:
        def names(*filters):
            return ps_names(pallet, *filters)

        assert names("since=pf-a", "name=^pf-") == ["pf-b", "pf-c"]
        assert names("before=pf-c", "name=^pf-") == ["pf-a", "pf-b"]
        assert names("until=1h", "name=^pf-") == []
        assert names("until=2100-01-01", "name=^pf-") == ["pf-a", "pf-b", "pf-c"]
        assert names("volume=/mnt") == ["pf-b"]
        assert pallet("ps", "--filter", "since=no-such").returncode == 125

        def ordered(*flags):
            return pallet("ps", "-a", "--filter", "name=^pf-", "--format", "{{.Names}}", *flags, check=True).stdout.split()

        assert ordered() == ordered("--sort", "created") == ["pf-a", "pf-b", "pf-c"]  # podman's: oldest first
        assert ordered("--sort", "runningfor") == ["pf-c", "pf-b", "pf-a"]
        assert ordered("--sort", "status")[-1] == "pf-c"  # Created < Up
        pallet("stop", "-t", "0", c, check=True)
        assert names("status=stopped", "name=^pf-") == names("status=exited", "name=^pf-") == ["pf-c"]  # podman's
        pallet("start", c, check=True)
        assert pallet("ps", "--sort", "colour").returncode == 125
        assert pallet("rename", "pf-c", "pf-renamed", check=True).stdout == ""
        assert "pf-renamed" in names("name=^pf-")
        taken = pallet("rename", "pf-a", "pf-b")
        assert taken.returncode == 125 and "pf-b" in _one_line_error(taken.stderr)
        assert pallet("rename", "pf-a", "bad/name").returncode == 125
        r = pallet("container", "prune", "-f", "--filter", "label=k=v", check=True)
        assert r.stdout.split() == [a]
        r = pallet("container", "prune", "-f", check=True)
        assert r.stdout.split() == [b]  # the running one stays
        assert names("name=^pf-") == ["pf-renamed"]
    finally:
        pallet("rm", "-f", "-i", "-t", "0", a, b, c)
    assert not {a, b, c} & pallet.ids()


def test_ps_scales_without_subprocesses_or_per_container_locks(pallet, tmp_path):  # noqa: F811
    """``ps -a`` reads the store once and one state file per container: no child process, no
    lock per container (strace counts the system calls)."""
    from conftest import need

    strace = need("strace")
    ids = [pallet("create", "--network", "none", pallet.image, "true", check=True).stdout.strip() for _ in range(6)]
    running = pallet("run", "-d", "--network", "none", pallet.image, "sleep", "600", check=True).stdout.strip()
    try:
        log = tmp_path / "strace.log"
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        r = subprocess.run([strace, "-f", "-qq", "-o", str(log), "-e", "trace=execve,clone,clone3,fork,vfork,flock,openat",
                            exe] + pallet.base + ["ps", "-a", "--format", "json"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        listed = {c["Id"] for c in json.loads(r.stdout)}
        assert set(ids) | {running} <= listed
        calls = log.read_text().splitlines()
        assert [c for c in calls if "execve(" in c and "resumed" not in c][1:] == []  # pallet itself only
        assert not [c for c in calls if any(f"{k}(" in c for k in ("clone", "clone3", "fork", "vfork"))]
        locks = [c for c in calls if "flock(" in c and "LOCK_UN" not in c]
        assert len(locks) <= 3, locks  # the store's shared lock (and the container model's, never per container)
        for cid in listed:
            assert sum(f"{cid}/state.json" in c for c in calls) == 1, cid
    finally:
        pallet("rm", "-f", "-i", "-t", "0", *ids, running)


def test_cp_goes_through_bind_mounts(pallet, tmp_path):  # noqa: F811
    """A path below a bind mount's destination is its source's, as the running container sees
    it; a read-only one is not written."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "kept").write_text("ro\n")
    os.symlink("/", rw / "up")  # inside the bind, / is the bind's top
    cid = pallet("run", "-d", "--network", "none", "-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro", pallet.image,
                 "sleep", "600", check=True).stdout.strip()
    try:
        src = tmp_path / "f"
        src.write_text("into the bind\n")
        pallet("cp", str(src), f"{cid}:/data/", check=True)
        assert (rw / "f").read_text() == "into the bind\n"
        pallet("cp", str(src), f"{cid}:/data/up/g", check=True)  # up -> / is the container's root, as it sees it
        assert not (rw / "g").exists() and not os.path.exists("/g")
        assert pallet("cp", f"{cid}:/g", str(tmp_path / "g-back"), check=True).returncode == 0
        out = tmp_path / "out"
        pallet("cp", f"{cid}:/data", str(out), check=True)
        assert sorted(os.listdir(out)) == ["f", "up"]
        pallet("cp", f"{cid}:/ro/kept", str(tmp_path / "kept"), check=True)
        assert (tmp_path / "kept").read_text() == "ro\n"
        r = pallet("cp", str(src), f"{cid}:/ro/")
        assert r.returncode == 125 and "read-only" in _one_line_error(r.stderr).lower()
        assert sorted(os.listdir(ro)) == ["kept"]
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_cp_into_a_running_containers_tmpfs(pallet, tmp_path):  # noqa: F811
    """A running container's paths are its own view (its init's root): a file copied under its
    tmpfs is in that tmpfs, so gone once it stops; a stopped container's bind mounts are still
    reached through their sources."""
    cid = pallet("run", "-d", "--network", "none", "--tmpfs", "/scratch", "-v", f"{tmp_path}:/data", pallet.image,
                 "sleep", "600", check=True).stdout.strip()
    try:
        src = tmp_path / "f"
        src.write_text("in tmpfs\n")
        pallet("cp", str(src), f"{cid}:/scratch/", check=True)
        assert pallet("cp", f"{cid}:/scratch/f", str(tmp_path / "back"), check=True).returncode == 0
        assert (tmp_path / "back").read_text() == "in tmpfs\n"
        pallet("stop", "-t", "0", cid, check=True)
        gone = pallet("cp", f"{cid}:/scratch/f", str(tmp_path / "again"))
        assert gone.returncode == 125 and "could not be found" in _one_line_error(gone.stderr)
        pallet("cp", str(src), f"{cid}:/data/g", check=True)  # stopped: through the bind's source
        assert (tmp_path / "g").read_text() == "in tmpfs\n"
    finally:
        pallet("rm", "-f", "-t", "0", cid)


def test_stats_streams_and_shows_stopped_containers_as_podman(pallet, podman):  # noqa: F811
    """Without --no-stream, stats prints a table every --interval seconds until interrupted;
    a container that is not running is a row of zeros, as podman 4.3 shows it."""
    import signal

    rows = []
    for who, tool, image in (("pallet", pallet, pallet.image), ("podman", podman, podman.image)):
        name = f"stats-created-{who}"
        assert tool("create", "--name", name, "--network", "none", image, "true").returncode == 0
        try:
            r = tool("stats", "--no-stream", name)
            assert r.returncode == 0, r.stderr
            rows.append(r.stdout.splitlines()[1].split()[1:])
        finally:
            tool("rm", "-f", name)
    assert rows[0] == [n.replace("podman", "pallet") for n in rows[1]]
    cid = pallet("run", "-d", "--network", "none", pallet.image, "sleep", "600", check=True).stdout.strip()
    try:
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        p = subprocess.Popen([exe] + pallet.base + ["stats", "-i", "1", "--no-trunc", cid], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            seen = []
            while len([line for line in seen if not line.startswith("ID ")]) < 2:
                line = p.stdout.readline()
                assert line, p.stderr.read()
                seen.append(line)
            assert [line.split()[0] for line in seen] == ["ID", cid, "ID", cid]
            p.send_signal(signal.SIGINT)
            assert p.wait(timeout=30) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    finally:
        pallet("rm", "-f", "-t", "0", cid)
