"""Small helpers to read and write cgroupfs files and make or remove cgroup directories,
shared by the backends (``fs1``, ``fs2``); errors name the config field."""

import os

from ...errors import OCIRuntimeError


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
    """The PIDs in a cgroup directory, sorted (none if it is gone)."""
    try:
        with open(f"{path}/cgroup.procs") as f:
            return sorted(int(x) for x in f.read().split())
    except OSError:
        return []


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
    """rmdir ``leaf`` (waiting while its last processes exit) then the created parents."""
    import time

    if leaf:
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(leaf)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 16 or time.monotonic() > deadline:  # EBUSY: tasks still leaving
                    raise OCIRuntimeError(f"cgroups: cannot remove {leaf}: {e.strerror}") from None
                time.sleep(0.005)
    for d in sorted(dirs or (), key=len, reverse=True):
        if d == leaf:
            continue
        try:
            os.rmdir(d)
        except OSError:  # shared with another container, or already gone
            pass
