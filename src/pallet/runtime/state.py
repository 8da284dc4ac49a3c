"""The state directory: ``ROOT/ID/`` holds ``state.json`` and ``exec.fifo``.

One directory per container. The directory itself is the lock (``flock`` on its fd):
every command that reads-then-acts on a container holds it, so ``delete`` and
``start`` never race. ``state.json`` is replaced whole (temp file + rename), so a
reader sees the old or the new file, never half of one; a file that is not what we
wrote anyway (disk trouble, someone's editor) is reported as corrupt, not crashed on.

The status is never stored: it is derived from the process (alive, same start time,
not a zombie) and the FIFO (present until ``start``).
"""

import os

from ..errors import OCIRuntimeError
from .._std import json as _json

DEFAULT_ROOT = "/run/pallet-runtime"
STATE = "state.json"
FIFO = "exec.fifo"
CGROUPS = "cgroups.json"  # written before the cgroups exist: delete --force finds them without state.json

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def check_id(cid):
    """runc's rule (``^[\\w+-.]+$``, not ``.`` nor ``..``): every verb checks the id with it
    before any path is built from it."""
    if not isinstance(cid, str) or not cid or cid in (".", "..") or not set(cid) <= _ID_CHARS \
            or len(cid) > 1024:
        raise OCIRuntimeError(f"invalid container ID format: {cid!r} (letters, digits and _+-., "
                              "not . or ..)")


def open_root(root, create=False):
    """The state root, open by file descriptor (every container is found relative to it)."""
    if create:
        ensure_root(root)
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OCIRuntimeError(f"cannot open the state directory {root}: {e.strerror}") from None


class Container:
    """An open (and usually locked) state directory of one container.

    ``fd`` is the directory (and its lock), opened without following a symlink relative to
    ``root_fd``, the state root; every state file is opened relative to ``fd`` with
    ``O_NOFOLLOW``: nothing outside the state root is read, written or removed."""

    __slots__ = ("id", "dir", "fd", "state", "root_fd")

    def __init__(self, cid, path, fd, state=None, root_fd=None):
        self.id = cid
        self.dir = path
        self.fd = fd
        self.state = state
        self.root_fd = root_fd

    # -- locking
    def close(self):
        for attr in ("fd", "root_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- files
    @property
    def fifo(self):
        return f"{self.dir}/{FIFO}"

    def has_fifo(self):
        try:
            os.stat(FIFO, dir_fd=self.fd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def open_fifo(self, flags):
        return os.open(FIFO, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)

    def unlink(self, name):
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def write(self, state):
        tmp = f".{STATE}.tmp"
        fd = os.open(tmp, _O_WRITE, 0o600, dir_fd=self.fd)
        try:
            os.write(fd, _json.dumps(state, separators=(",", ":")).encode())  # no fsync: the state lives on /run (tmpfs)
        finally:
            os.close(fd)
        os.rename(tmp, STATE, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        self.state = state

    def write_file(self, name, obj):
        fd = os.open(name, _O_WRITE, 0o600, dir_fd=self.fd)
        with open(fd, "w") as f:
            f.write(_json.dumps(obj, separators=(",", ":")))

    def read_bytes(self, name):
        """A state file's bytes: a regular file in the container's directory, never a symlink
        (OSError otherwise)."""
        fd = os.open(name, _O_READ, dir_fd=self.fd)
        try:
            if (os.fstat(fd).st_mode & 0o170000) != 0o100000:
                raise OSError(22, f"{name} is not a regular file")
            chunks = []
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    return b"".join(chunks)
                chunks.append(b)
        finally:
            os.close(fd)

    def read_file(self, name):
        try:
            return _json.loads(self.read_bytes(name))
        except (OSError, ValueError, RecursionError):
            return None

    def remove(self):
        """Remove the directory's entries (relative to its fd) and the directory itself."""
        for name in os.listdir(self.fd):
            try:
                os.unlink(name, dir_fd=self.fd)
            except IsADirectoryError:
                import shutil

                shutil.rmtree(name, ignore_errors=True, dir_fd=self.fd)
            except FileNotFoundError:
                pass
        if self.root_fd is not None:
            try:
                os.rmdir(self.id, dir_fd=self.root_fd)
            except FileNotFoundError:
                pass
        self.close()

    # -- status
    def status(self):
        """``created``, ``running``, ``stopped`` (``creating`` while create holds it)."""
        st = self.state
        if st is None:
            return "creating"
        if not process_alive(st.get("pid"), st.get("pid_start")):
            return "stopped"
        if self.has_fifo():
            return "created"
        if st.get("cgroups"):
            from . import cgroups

            m = cgroups.from_state(st["cgroups"])
            if m is not None and m.frozen():
                return "paused"
        return "running"

    def oci_state(self):
        """The runtime-spec state of this container (what ``state`` prints and hooks read)."""
        st = self.state or {}
        status = self.status()
        out = {"ociVersion": st.get("ociVersion", "1.0.2-dev"), "id": self.id, "status": status,
               "pid": st.get("pid", 0) if status in ("created", "running", "creating", "paused") else 0,
               "bundle": st.get("bundle", ""), "rootfs": st.get("rootfs", ""),
               "created": st.get("created", ""), "owner": st.get("owner", "")}
        ann = st.get("annotations")
        if ann:
            out["annotations"] = ann
        return out


def _lock(fd, blocking=True):
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)


def ensure_root(root):
    try:
        os.makedirs(root, 0o700, exist_ok=True)
    except OSError as e:
        raise OCIRuntimeError(f"cannot create the state directory {root}: {e.strerror}") from None


def new(root, cid):
    """Reserve ``ROOT/ID`` for a container being created (locked); refuse an existing id."""
    check_id(cid)
    rfd = open_root(root, create=True)
    path = f"{root}/{cid}"
    try:
        try:
            os.mkdir(cid, 0o711, dir_fd=rfd)
        except FileExistsError:
            raise OCIRuntimeError(f"container with id {cid!r} already exists") from None
        except OSError as e:
            raise OCIRuntimeError(f"cannot create {path}: {e.strerror}") from None
        fd = os.open(cid, _O_DIR, dir_fd=rfd)
    except BaseException:
        os.close(rfd)
        raise
    _lock(fd)
    return Container(cid, path, fd, root_fd=rfd)


class NoSuchContainer(OCIRuntimeError):
    """The id names no state directory."""


def open_container(root, cid, lock=True, allow_corrupt=False):
    """Open and lock the state of an existing container, reading ``state.json``.

    ``ROOT/ID`` must be a directory: a symlink (or anything else) there is refused, never
    followed. ``allow_corrupt``: a directory whose state.json is missing or corrupt is
    returned with ``state`` None (for ``delete --force``)."""
    check_id(cid)
    path = f"{root}/{cid}"
    rfd = open_root(root)
    if rfd is None:
        raise NoSuchContainer(f"container {cid!r} does not exist")
    try:
        fd = os.open(cid, _O_DIR, dir_fd=rfd)
    except FileNotFoundError:
        os.close(rfd)
        raise NoSuchContainer(f"container {cid!r} does not exist") from None
    except OSError as e:
        os.close(rfd)
        if e.errno in (20, 40):  # ENOTDIR, ELOOP (O_NOFOLLOW on a symlink)
            raise OCIRuntimeError(f"container {cid!r}: {path} is not a directory (a symlink or a file "
                                  "in the state root: refused, remove it by hand)") from None
        raise OCIRuntimeError(f"container {cid!r}: cannot open {path}: {e.strerror}") from None
    c = Container(cid, path, fd, root_fd=rfd)
    try:
        if lock:
            _lock(fd)
            try:  # removed (or replaced) while we waited for the lock
                same = os.stat(cid, dir_fd=rfd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise NoSuchContainer(f"container {cid!r} does not exist")
        c.state = read_state(c, cid)
    except NoSuchContainer:
        c.close()
        raise
    except OCIRuntimeError:
        if allow_corrupt:
            c.state = None
            return c
        c.close()
        raise
    except BaseException:
        c.close()
        raise
    return c


def read_state(container, cid):
    try:
        raw = container.read_bytes(STATE)
    except FileNotFoundError:
        raise OCIRuntimeError(f"container {cid!r}: no state.json (being created, or a create failed)") from None
    except OSError as e:
        raise OCIRuntimeError(f"container {cid!r}: cannot read state.json: {e.strerror}") from None
    try:
        st = _json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise OCIRuntimeError(f"container {cid!r}: state.json is corrupt ({str(e)[:200]}); "
                              f"'delete --force {cid}' removes it") from None
    if not isinstance(st, dict) or not isinstance(st.get("pid"), int) or st.get("id") != cid \
            or not isinstance(st.get("config"), dict):
        raise OCIRuntimeError(f"container {cid!r}: state.json is corrupt (not a pallet-runtime state); "
                              f"'delete --force {cid}' removes it")
    return st


def list_ids(root):
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise OCIRuntimeError(f"cannot list {root}: {e.strerror}") from None


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """``(state letter, start time in clock ticks)`` of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def process_alive(pid, start=None):
    if not isinstance(pid, int) or pid <= 0:
        return False
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[1] == start
