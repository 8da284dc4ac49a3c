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

from ..errors import RuntimeError_
from . import _json

DEFAULT_ROOT = "/run/pallet-runtime"
STATE = "state.json"
FIFO = "exec.fifo"
CGROUPS = "cgroups.json"  # written before the cgroups exist: delete --force finds them without state.json

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid):
    if not cid or cid in (".", "..") or not set(cid) <= _ID_CHARS or len(cid) > 1024:
        raise RuntimeError_(f"invalid container id {cid!r}: use letters, digits and _+-.")


class Container:
    """An open (and usually locked) state directory of one container."""

    __slots__ = ("id", "dir", "fd", "state")

    def __init__(self, cid, path, fd, state=None):
        self.id = cid
        self.dir = path
        self.fd = fd
        self.state = state

    # -- locking
    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- files
    @property
    def fifo(self):
        return f"{self.dir}/{FIFO}"

    def write(self, state):
        tmp = f"{self.dir}/.{STATE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _json.dumps(state).encode())  # no fsync: the state lives on /run (tmpfs)
        finally:
            os.close(fd)
        os.rename(tmp, f"{self.dir}/{STATE}")
        self.state = state

    def write_file(self, name, obj):
        with open(f"{self.dir}/{name}", "w") as f:
            f.write(_json.dumps(obj))

    def read_file(self, name):
        try:
            with open(f"{self.dir}/{name}", "rb") as f:
                return _json.loads(f.read())
        except (OSError, ValueError):
            return None

    def remove(self):
        for name in os.listdir(self.dir):
            try:
                os.unlink(f"{self.dir}/{name}")
            except IsADirectoryError:
                import shutil

                shutil.rmtree(f"{self.dir}/{name}", ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
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
        if os.path.exists(self.fifo):
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
        raise RuntimeError_(f"cannot create the state directory {root}: {e.strerror}") from None


def new(root, cid):
    """Reserve ``ROOT/ID`` for a container being created (locked); refuse an existing id."""
    check_id(cid)
    ensure_root(root)
    path = f"{root}/{cid}"
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise RuntimeError_(f"container with id {cid!r} already exists") from None
    except OSError as e:
        raise RuntimeError_(f"cannot create {path}: {e.strerror}") from None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _lock(fd)
    return Container(cid, path, fd)


def open_container(root, cid, lock=True, allow_corrupt=False):
    """Open and lock the state of an existing container, reading ``state.json``."""
    check_id(cid)
    path = f"{root}/{cid}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RuntimeError_(f"container {cid!r} does not exist") from None
    except NotADirectoryError:
        raise RuntimeError_(f"container {cid!r}: {path} is not a directory (corrupt state)") from None
    except OSError as e:
        raise RuntimeError_(f"container {cid!r}: cannot open {path}: {e.strerror}") from None
    c = Container(cid, path, fd)
    try:
        if lock:
            _lock(fd)
        if not os.path.isdir(path):  # removed while we waited for the lock
            raise RuntimeError_(f"container {cid!r} does not exist")
        c.state = read_state(path, cid)
    except RuntimeError_:
        if allow_corrupt:
            c.state = None
            return c
        c.close()
        raise
    return c


def read_state(path, cid):
    try:
        with open(f"{path}/{STATE}", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise RuntimeError_(f"container {cid!r}: no state.json (being created, or a create failed)") from None
    except OSError as e:
        raise RuntimeError_(f"container {cid!r}: cannot read state.json: {e.strerror}") from None
    try:
        st = _json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RuntimeError_(f"container {cid!r}: state.json is corrupt ({e}); "
                            f"'delete --force {cid}' removes it") from None
    if not isinstance(st, dict) or not isinstance(st.get("pid"), int) or st.get("id") != cid:
        raise RuntimeError_(f"container {cid!r}: state.json is corrupt (not a pallet-runtime state); "
                            f"'delete --force {cid}' removes it")
    return st


def list_ids(root):
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RuntimeError_(f"cannot list {root}: {e.strerror}") from None


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
