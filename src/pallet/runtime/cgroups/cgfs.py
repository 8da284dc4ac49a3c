"""The cgroup filesystem, shared by the backends (``fs1``, ``fs2``) and the package: where
this host's hierarchies are mounted (``layout``, read from /proc once) and this process's own
cgroups; reading and writing cgroupfs files, making and removing cgroup directories (errors
name the config field). One module: the run path always needs both halves."""

import os

from ...errors import OCIRuntimeError

ROOT = "/sys/fs/cgroup"


_mounts = None


def cgroup_mounts(cached=True):
    """``[(mount point, root in the hierarchy, fstype, super options)]`` of cgroup mounts, in
    mount order, read from /proc/self/mountinfo once: the forked init has them from the
    runtime (for /sys/fs/cgroup in the container) instead of reading the file again.
    ``cached=False``: read now (a mount namespace joined by path has mounts of its own)."""
    global _mounts
    if not cached:
        return _mountinfo()
    if _mounts is None:
        _mounts = _mountinfo()
    return _mounts


def _mountinfo():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            r = right.split()
            if r and r[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], fields[3], r[0], r[2] if len(r) > 2 else ""))
    return out


def own_cgroups():
    """``{controller or "" (v2): path}`` of this process (``/proc/self/cgroup``)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                own[""] = path
            for c in ctrls.split(","):
                own[c] = path
    return own


class Layout:
    """Where this host's hierarchies are mounted: ``v1`` {controller: (mount point, mount root)},
    ``v2`` (mount point, mount root) or None; ``mode`` is ``legacy``, ``hybrid`` or ``unified``."""

    __slots__ = ("v1", "v2", "mode")

    def __init__(self, v1, v2):
        self.v1, self.v2 = v1, v2
        if v2 and not v1:
            self.mode = "unified"
        elif v2:
            self.mode = "hybrid"
        else:
            self.mode = "legacy"


_layout = None


def layout():
    global _layout
    if _layout is None:
        v1 = {}
        v2 = None
        for mp, root, fstype, opts in cgroup_mounts():
            if not mp.startswith(ROOT):
                continue
            if fstype == "cgroup2":
                if v2 is None or mp == ROOT:
                    v2 = (mp, root)
                continue
            for o in opts.split(","):
                if o.startswith("name="):
                    v1.setdefault(o, (mp, root))
                elif o not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                               "clone_children", "xattr") and not o.startswith(("release_agent", "cpuset_v2")):
                    v1.setdefault(o, (mp, root))
        _layout = Layout(v1, v2)
    return _layout

def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def read_int(path, default=0):
    v = read(path)
    if v is None:
        return default
    if v == "max":
        return 0
    try:
        return int(v)
    except ValueError:
        return default


def read_kv(path):
    """A ``key value`` per line file (cpu.stat, memory.stat, ...) as a dict of ints."""
    out = {}
    for line in (read(path) or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def procs(path):
    """The PIDs in a cgroup directory and the cgroups the container made below it (systemd in a
    container makes its own), sorted (none if it is gone), as runc's GetAllPids."""
    out = []
    for d, _, _ in os.walk(path):
        try:
            with open(f"{d}/cgroup.procs") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return sorted(set(out))


def write(path, value, field):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OCIRuntimeError(f"{field}: {os.path.basename(path)} does not exist on this host "
                              f"(controller or kernel feature missing)") from None
    except OSError as e:
        raise OCIRuntimeError(f"{field}: cannot open {path}: {e.strerror}") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise OCIRuntimeError(f"{field}: cannot write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def make_dirs(path):
    """mkdir -p; returns the directories it created, deepest last."""
    made = []
    todo = []
    p = path
    while p and p != "/" and not os.path.isdir(p):
        todo.append(p)
        p = os.path.dirname(p)
    for d in reversed(todo):
        try:
            os.mkdir(d, 0o755)
            made.append(d)
        except FileExistsError:
            pass
        except OSError as e:
            remove_dirs(made)
            raise OCIRuntimeError(f"cgroups: cannot create {d}: {e.strerror}") from None
    return made


def remove_dirs(dirs, leaf=None):
    """rmdir ``leaf`` (waiting while its last processes exit) then the created parents
    (``leaf`` among them is skipped)."""
    import time

    if leaf:
        try:  # usually empty: no walk (a listing of every hierarchy's directory at each delete)
            os.rmdir(leaf)
            below = []
        except FileNotFoundError:
            below = []
        except OSError:
            # the cgroups the container made below its own first, deepest first (runc removes them too)
            below = [d for d, _, _ in os.walk(leaf, topdown=False) if d != leaf] + [leaf]
        deadline = time.monotonic() + 5
        for d in below:
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != 16 or time.monotonic() > deadline:  # EBUSY: tasks still leaving
                        raise OCIRuntimeError(f"cgroups: cannot remove {d}: {e.strerror}") from None
                    time.sleep(0.005)
    for d in sorted(dirs or (), key=len, reverse=True):
        if d == leaf:
            continue
        try:
            os.rmdir(d)
        except OSError:  # shared with another container, or already gone
            pass
