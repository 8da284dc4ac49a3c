"""Issue 13.0: every option that names an output file writes THROUGH an existing device,
FIFO or socket (``--iidfile /dev/null`` must not turn the host's /dev/null into a regular
file), follows a symlink to its target, and replaces only regular files atomically.

Each option is run against a character device with /dev/null's numbers made in a temp dir
(so a regression cannot break this machine's /dev/null) and a FIFO with a reader thread."""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest

from buildtools import base, pallet  # noqa: F401  (fixtures)
from conftest import run_pallet

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("isolated")]


class Special:
    """A character device (1,3: what /dev/null is) or a FIFO drained by a reader thread."""

    def __init__(self, path: str, kind: str):
        self.path, self.kind = path, kind
        self.data = b""
        self.thread = None
        if kind == "chr":
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
            self.thread = threading.Thread(target=self._drain, daemon=True)
            self.thread.start()
        elif kind == "sock":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            self.sock.listen(1)
            self.thread = threading.Thread(target=self._accept, daemon=True)
            self.thread.start()

    def _drain(self):
        with open(self.path, "rb") as f:  # blocks until pallet opens it for writing
            self.data = f.read()

    def _accept(self):
        conn, _ = self.sock.accept()
        with conn:
            chunks = []
            while chunk := conn.recv(1 << 16):
                chunks.append(chunk)
            self.data = b"".join(chunks)

    def finish(self) -> bytes:
        """Assert the node is still what it was; returns what a FIFO's reader got."""
        if self.thread is not None:
            self.thread.join(120)
            if self.thread.is_alive():  # pallet never opened it: unblock the reader, then fail
                if self.kind == "fifo":
                    os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
                else:
                    socket.socket(socket.AF_UNIX).connect(self.path)
                self.thread.join(10)
                pytest.fail(f"nothing was written to the {self.kind} {self.path}")
        st = os.lstat(self.path)
        want = {"chr": stat.S_ISCHR, "fifo": stat.S_ISFIFO, "sock": stat.S_ISSOCK}[self.kind]
        assert want(st.st_mode), f"{self.path} is no longer a {self.kind}: mode {oct(st.st_mode)}"
        if self.kind == "chr":
            assert st.st_rdev == os.makedev(1, 3)
        assert not [n for n in os.listdir(os.path.dirname(self.path)) if ".tmp" in n]
        return self.data


@pytest.mark.parametrize("kind", ["chr", "fifo"])
def test_build_iidfile_and_tar_output_write_through(pallet, tmp_path, kind):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:v1\nRUN echo hi > /hi\n")
    iid, tar = Special(str(tmp_path / "iid"), kind), Special(str(tmp_path / "out.tar"), kind)
    pallet("build", "-q", "--iidfile", iid.path, "--output", f"type=tar,dest={tar.path}", "-t", "x", str(ctx))
    got_iid, got_tar = iid.finish(), tar.finish()
    if kind == "fifo":
        assert got_iid == ("sha256:" + pallet.store().image("x")["id"]).encode()
        assert b"hi\n" in got_tar and len(got_tar) >= 1024


@pytest.mark.parametrize("kind", ["chr", "fifo"])
def test_builder_commit_iidfile_and_transport_output(pallet, tmp_path, kind):
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    iid, arch = Special(str(tmp_path / "iid"), kind), Special(str(tmp_path / "a.tar"), kind)
    pallet("builder", "commit", "--iidfile", iid.path, ctr, "y")
    got = iid.finish()
    if kind == "fifo":
        assert got == ("sha256:" + pallet.store().image("y")["id"]).encode()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:v1\nLABEL a=b\n")
    pallet("build", "-q", "--output", f"oci-archive:{arch.path}", str(ctx))
    got = arch.finish()
    if kind == "fifo":
        assert b"oci-layout" in got


@pytest.mark.parametrize("kind", ["chr", "fifo", "sock"])
def test_save_and_copy_outputs(pallet, tmp_path, base, kind):
    for n, (fmt, what) in enumerate((("oci-archive", b"index.json"), ("docker-archive", b"manifest.json"))):
        out = Special(str(tmp_path / f"s{n}"), kind)
        pallet("save", "--format", fmt, "-o", out.path, "busybox:v1")
        got = out.finish()
        if kind != "chr":
            assert what in got
    dig, arch = Special(str(tmp_path / "digest"), kind), Special(str(tmp_path / "arch"), kind)
    pallet("copy", "-q", "--digestfile", dig.path, f"oci:{base}:v1", f"docker-archive:{arch.path}")
    got_dig, got_arch = dig.finish(), arch.finish()
    if kind != "chr":
        assert got_dig.startswith(b"sha256:") and b"manifest.json" in got_arch


def test_push_digestfile_and_login_logout_authfile(pallet, tmp_path, registry):
    for kind in ("chr", "fifo"):
        dig = Special(str(tmp_path / f"d-{kind}"), kind)
        pallet("push", "--tls-verify=false", "--digestfile", dig.path, "busybox:v1",
               f"docker://{registry.host}/adv-outputs/{kind}:v1")
        got = dig.finish()
        if kind == "fifo":
            assert got.startswith(b"sha256:")
        auth = Special(str(tmp_path / f"auth-{kind}"), kind)
        run_pallet("login", "--tls-verify=false", "--authfile", auth.path, "-u", "u", "-p", "p", registry.host)
        got = auth.finish()
        if kind == "fifo":
            assert b'"auths"' in got and registry.host.encode() in got
        auth = Special(str(tmp_path / f"auth2-{kind}"), kind)
        run_pallet("logout", "--authfile", auth.path, "--all")
        got = auth.finish()
        if kind == "fifo":
            assert b'"auths"' in got


def test_symlink_is_followed_and_regular_files_are_replaced(pallet, tmp_path):
    target = tmp_path / "real-iid"
    target.write_text("old")
    link = tmp_path / "iid-link"
    link.symlink_to(target)
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    pallet("builder", "commit", "--iidfile", str(link), ctr, "z")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "sha256:" + pallet.store().image("z")["id"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_unwritable_output_is_one_line(pallet, tmp_path):
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    p = pallet("builder", "commit", "--iidfile", str(tmp_path / "no" / "such" / "dir"), ctr, "w", check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert "--iidfile" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("kind", ["chr", "fifo"])
def test_runtime_pid_file_writes_through(rt, bundle, tmp_path, kind):
    pid = Special(str(tmp_path / "pid"), kind)
    r = rt.create("advpid", bundle, "--pid-file", pid.path)
    assert r.returncode == 0, r.stderr
    got = pid.finish()
    if kind == "fifo":
        assert got.decode() == str(rt.state("advpid")["pid"])


def test_planted_symlinks_and_fifos_in_a_sticky_directory_are_refused(pallet, tmp_path, registry):
    """Another user's symlink (or FIFO) in a sticky world-writable directory such as /tmp is a
    trap: --logfile, --iidfile, --rusage-logfile and --authfile refuse it in one line and the target is untouched
    (pallet resolved links with readlink, which the kernel's protected_symlinks does not guard,
    and replaced where /tmp/build.log -> VICTIM pointed). Our own link there is still followed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nLABEL a=b\n")
    traps = []
    for name in ("build.log", "iid", "auth.json", "rusage.log"):
        link = shared / name
        link.symlink_to(victim)
        os.lchown(link, 4242, 4242)  # planted by another user
        traps.append(str(link))
    fifo = shared / "fifo.log"
    os.mkfifo(fifo)
    os.chown(fifo, 4242, 4242)
    for args, opt, path in ((("build", "--logfile", traps[0], str(ctx)), "--logfile", traps[0]),
                            (("build", "-q", "--iidfile", traps[1], str(ctx)), "--iidfile", traps[1]),
                            (("build", "--logfile", str(fifo), str(ctx)), "--logfile", str(fifo)),
                            (("build", "--log-rusage", "--rusage-logfile", traps[3], str(ctx)), "--rusage-logfile",
                             traps[3])):
        p = pallet(*args, check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1 and opt in lines[0] and path in lines[0], p.stderr
        assert "uid 4242" in lines[0] and "Traceback" not in p.stderr
    p = run_pallet("login", "--tls-verify=false", "--authfile", traps[2], "-u", "u", "-p", "p", registry.host,
                   check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and traps[2] in p.stderr, p.stderr
    assert victim.read_text() == "precious\n"
    assert all(os.path.islink(t) for t in traps) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(shared)) == ["auth.json", "build.log", "fifo.log", "iid", "rusage.log"]
    # a link of our own in the same directory is ours to follow
    own = shared / "own-iid"
    own.symlink_to(victim)
    pallet("build", "-q", "--iidfile", str(own), str(ctx))
    assert victim.read_text().startswith("sha256:") and own.is_symlink()
