"""Build contexts from elsewhere, as buildah 1.28 takes them (issue 16): a git repository
(``git://``, with ``#REF`` and ``:SUBDIR``) served by a local ``git daemon``, a tar archive or
a bare Dockerfile from a local HTTP server, the same as a ``--build-context``; and the
failures (git's own status and words, an empty answer, a subdirectory leading out of the
clone). Nothing leaves the machine: every server is on 127.0.0.1 and stopped after."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile

import pytest

from buildtools import PalletStore, base, http_dir, pallet  # noqa: F401  (fixtures)
from conftest import free_port, need, wait_for


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def git_daemon(tmp_path):
    """A repository ``repo`` served by ``git daemon`` on 127.0.0.1: its first commit has a
    Containerfile, the branch ``main`` a context in ``nested/sub`` and no Containerfile at
    the top; ``escape`` is a symlink to /etc. Yields (url, first commit)."""
    need("git")
    base_dir = tmp_path / "served"
    repo = base_dir / "repo"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "Containerfile").write_text("FROM scratch\nCOPY old.txt /\n")
    (repo / "old.txt").write_text("old\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "one")
    first = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                           check=True).stdout.strip()
    _git(repo, "rm", "-q", "Containerfile", "old.txt")
    (repo / "nested" / "sub").mkdir(parents=True)
    (repo / "nested" / "sub" / "Dockerfile").write_text("FROM scratch\nCOPY new.txt /\n")
    (repo / "nested" / "sub" / "new.txt").write_text("new\n")
    os.symlink("/etc", repo / "escape")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "two")
    (repo / ".git" / "git-daemon-export-ok").write_text("")
    port = free_port()
    p = subprocess.Popen(["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
                          f"--base-path={base_dir}", str(base_dir)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, 30, "git daemon")
        yield f"git://127.0.0.1:{port}/repo", first
    finally:
        p.terminate()
        p.wait()


def _staging_empty(pallet) -> None:
    staging = os.path.join(pallet.root, "staging")
    assert not os.path.isdir(staging) or not [n for n in os.listdir(staging) if not n.endswith(".lock")]


def test_git_contexts_ref_and_subdirectory(pallet, git_daemon):
    url, first = git_daemon
    pallet("build", "-t", "g1", f"{url}#main:nested/sub")
    assert "/new.txt" in pallet.tree("g1")
    pallet("build", "-t", "g2", f"{url}#{first}")  # a commit: the Containerfile only it has
    assert "/old.txt" in pallet.tree("g2")
    p = pallet("build", "-t", "g3", url, check=False)  # HEAD (main) has no Containerfile at the top
    assert p.returncode == 125 and "cannot find Containerfile or Dockerfile" in p.stderr, p.stderr
    # a subdirectory is resolved inside the clone: the repository's symlink to /etc stays in it
    p = pallet("build", "-t", "g4", f"{url}#main:escape", check=False)
    assert p.returncode == 125 and "escape" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    _staging_empty(pallet)


def test_git_context_failure_is_gits(pallet, tmp_path):
    need("git")
    p = pallet("build", "-t", "x", f"git://127.0.0.1:{free_port()}/nothing", check=False)
    assert p.returncode == 128, p.stderr  # git's status, as buildah exits
    assert "failed while performing `git fetch`" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    _staging_empty(pallet)


def test_http_contexts(pallet, http_dir):
    served, url = http_dir
    (served / "Containerfile").write_text("FROM scratch\nLABEL from=url\n")
    pallet("build", "-t", "h1", f"{url}/Containerfile")  # not an archive: the Dockerfile itself
    assert pallet.config("h1")["config"]["Labels"] == {"from": "url"}

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("context/Dockerfile", b"FROM scratch\nCOPY context/f.txt /\n"),
                           ("context/f.txt", b"in tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    (served / "context.tar.gz").write_bytes(buf.getvalue())
    pallet("build", "-t", "h2", "-f", "context/Dockerfile", f"{url}/context.tar.gz")
    assert "/f.txt" in pallet.tree("h2")  # the archive's top is the context, -f names a file in it

    # an additional build context from a URL
    ctx = served.parent / "local"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY --from=remote context/f.txt /r.txt\n")
    pallet("build", "-t", "h3", "--build-context", f"remote={url}/context.tar.gz", str(ctx))
    assert "/r.txt" in pallet.tree("h3")

    (served / "empty").write_bytes(b"")
    p = pallet("build", "-t", "x", f"{url}/empty", check=False)
    assert p.returncode == 125 and 'no contents in' in p.stderr and p.stderr.count("\n") == 1, p.stderr
    p = pallet("build", "-t", "x", f"{url}/missing.tar", check=False)
    assert p.returncode == 125 and "404" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    _staging_empty(pallet)
