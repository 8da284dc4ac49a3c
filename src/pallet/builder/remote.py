"""Build contexts that are not on this machine, as buildah 1.28 fetches them
(``define.TempDirForURL``):

- ``git://...`` or ``http(s)://...`` whose path ends in ``.git``: a git repository, with an
  optional ``#REF`` (branch, tag or commit) and ``:SUBDIR`` (``repo#main:nested/dir``, or
  ``repo#:dir`` for the default branch). It is fetched as buildah does (``git init``, ``git
  remote add origin``, ``git fetch --depth=1 origin -- REF`` (``HEAD`` by default), ``git
  checkout``); a failing git step says ``failed while performing `git fetch``` with git's own
  output, and the build exits with git's status (buildah's 128 for a repository that is not
  there).
- ``github.com/OWNER/REPO``: ``https://github.com/OWNER/REPO/archive/master.tar.gz``, the
  context being its ``REPO-master`` directory.
- any other ``http(s)://`` URL: a tar archive (plain or compressed), extracted; anything else
  it serves is taken as the Dockerfile of an empty context (buildah writes it as
  ``Dockerfile``). An empty answer is ``no contents in "URL"``.

Everything lands in a directory the caller gives (the store's staging): bounded by the
store's ``free_space_reserve`` while downloading, extracted by the layer applier (paths kept
inside), and a subdirectory is resolved by fd inside the clone, so a repository's symlink
cannot make the context a directory outside it.
"""

from __future__ import annotations

import os

from ..errors import BuildError

PREFIXES = ("http://", "https://", "git://", "github.com/")


def is_remote(text: str) -> bool:
    """Whether a context argument names a remote context (buildah's test)."""
    return text.startswith(PREFIXES)


def is_git(text: str) -> bool:
    from urllib.parse import urlsplit

    return text.startswith("git://") or urlsplit(text.split("#", 1)[0]).path.endswith(".git")


def git_parts(text: str) -> tuple[str, str, str]:
    """``REPO#REF:SUBDIR`` -> (repo, ref, subdir), as buildah's ``parseGitBuildContext``."""
    repo, _, frag = text.partition("#")
    ref, _, subdir = frag.partition(":")
    return repo, ref, subdir


def fetch(text: str, dest: str, *, size_limit: int = 0, space_reserve: int = 0) -> str:
    """Fetch the remote context ``text`` into the empty directory ``dest``; returns the
    context directory (``dest`` or a directory inside it). ``size_limit``/``space_reserve``:
    the store's (``copy.limits_of``), bounding a download and what it expands to."""
    if is_git(text):
        return _clone(text, dest)
    sub = ""
    url = text
    if text.startswith("github.com/"):
        url = f"https://{text}/archive/master.tar.gz"
        sub = os.path.basename(text.rstrip("/")) + "-master"
    _download(url, text, dest, reserve=space_reserve, limit=size_limit)
    return _inside(dest, sub, text) if sub else dest


def _git(args: list[str], cwd: str, step: str, text: str) -> None:
    import subprocess

    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    try:
        p = subprocess.run(["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env)
    except FileNotFoundError:
        raise BuildError(f"the build context {text}: a git repository needs git, which is not installed") from None
    if p.returncode != 0:
        said = " ".join(p.stdout.decode("utf-8", "replace").split())
        raise BuildError(f"cloning {text!r}: {said}: failed while performing `git {step}`: exit status "
                         f"{p.returncode}", exit_code=p.returncode)


def _clone(text: str, dest: str) -> str:
    repo, ref, subdir = git_parts(text)
    _git(["init", "-q", dest], dest, "init", text)
    _git(["remote", "add", "origin", "--", repo], dest, "remote add", text)
    _git(["fetch", "-q", "--depth=1", "origin", "--", ref or "HEAD"], dest, "fetch", text)
    _git(["-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"], dest, "checkout", text)
    return _inside(dest, subdir, text) if subdir else dest


def _inside(top: str, sub: str, text: str) -> str:
    """``top/sub`` as a directory inside ``top``, resolved by fd (a symlink in the fetched
    tree that leads out of it is refused, as is ``..`` past the top)."""
    from .._rootfs import open_in_root

    top_fd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(top_fd, sub, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise BuildError(f"the build context {text}: {sub}: {(e.strerror or str(e)).lower()}") from None
    finally:
        os.close(top_fd)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    top_real = os.path.realpath(top)
    if os.path.commonpath([real, top_real]) != top_real:
        raise BuildError(f"the build context {text}: {sub} leads outside the fetched tree")
    return real


def _download(url: str, text: str, dest: str, *, reserve: int, limit: int) -> None:
    import shutil

    from ..layer.stream import SpaceGuard
    from .copy import extract_archive, is_archive, url_failure

    blob = os.path.join(os.path.dirname(dest), os.path.basename(dest) + ".download")
    try:
        from ..images.archive import http_only_opener

        with http_only_opener(url).open(url, timeout=60) as r, open(blob, "wb") as f:
            if r.headers.get("Content-Length") == "0":
                raise BuildError(f'no contents in "{text}"')
            shutil.copyfileobj(SpaceGuard(r, os.path.dirname(dest), f"the build context {text}",
                                          limit=limit, reserve=reserve), f, 1 << 20)
    except OSError as e:
        raise BuildError(f"the build context {text}: {url_failure(url, e)}") from None
    try:
        if os.path.getsize(blob) == 0:
            raise BuildError(f'no contents in "{text}"')
        if is_archive(blob):
            extract_archive(blob, dest, f"the build context {text}", limit, reserve)
        else:  # not an archive: buildah takes it as the Dockerfile
            os.rename(blob, os.path.join(dest, "Dockerfile"))
    finally:
        if os.path.lexists(blob):
            os.unlink(blob)
