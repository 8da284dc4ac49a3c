"""``--cidfile``: the file ``run``/``create`` write the new container's ID to, and that
``start``/``stop``/``kill``/``rm`` read it from (what podman's systemd units use).

podman 4.3 never overwrites one: a path that exists (a file, a symlink, a FIFO, a device...) is
refused with its message, checked before anything is made and again when the file is made
(``O_CREAT|O_EXCL|O_NOFOLLOW``: a symlink or device swapped in meanwhile is not written
through). Reading is bounded and only from a regular file (a FIFO would block, a device would
give anything), the ID its first line, as podman reads it.
"""

from __future__ import annotations

import os

from ..errors import ContainerError, UsageError

#: more than an ID and a newline is not a cidfile
MAX = 4096


def exists_error(path: str) -> ContainerError:
    return ContainerError(f"container id file exists. Ensure another container is not using it or delete {path}")


def check_absent(path: str) -> str:
    """The absolute path of a ``--cidfile`` that does not exist yet (podman's error otherwise)."""
    if not path or "\0" in path:
        raise UsageError(f"invalid --cidfile {path!r}: want a file path")
    p = os.path.abspath(path)
    if os.path.lexists(p):
        raise exists_error(path)
    parent = os.path.dirname(p)
    if not os.path.isdir(parent):
        raise ContainerError(f"opening cidfile {path}: its directory {parent} does not exist")
    return p


def write(path: str, cid: str) -> None:
    """Make ``path`` holding ``cid`` (no newline, as podman); never through an existing name."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise exists_error(path) from None
    except OSError as e:
        raise ContainerError(f"opening cidfile {path}: {e.strerror}") from None
    try:
        os.write(fd, cid.encode())
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        os.unlink(path)
        raise ContainerError(f"writing cidfile {path}: {e.strerror}") from None
    os.close(fd)


def read(path: str) -> str:
    """The container ID a ``--cidfile`` holds (its first line); FileNotFoundError when there is
    no such file (``--ignore`` skips it), ContainerError for anything that is not one."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ContainerError(f"reading CIDFile: open {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContainerError(f"reading CIDFile: {path}: not a regular file")
        data = os.read(fd, MAX + 1)
    finally:
        os.close(fd)
    if len(data) > MAX:
        raise ContainerError(f"reading CIDFile: {path}: larger than {MAX} bytes: not a container ID file")
    first = data.split(b"\n", 1)[0].strip()
    try:
        text = first.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if not text or not all(c.isalnum() or c in "_.-" for c in text):
        raise ContainerError(f"reading CIDFile: {path}: no container ID in it")
    return text


def targets(names: list, cidfiles: list, ignore: bool = False) -> list:
    """The containers a verb acts on: the named ones, then one per ``--cidfile`` (a missing file is
    skipped with ``ignore``, else podman's error)."""
    out = list(names)
    for path in cidfiles or ():
        try:
            out.append(read(path))
        except FileNotFoundError:
            if ignore:
                continue
            raise ContainerError(f"reading CIDFile: open {path}: no such file or directory") from None
    return out
