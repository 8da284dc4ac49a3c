"""cgroups for containers: one manager interface, one file per backend.

* ``fs1`` — cgroup v1: one hierarchy per controller (``/sys/fs/cgroup/<controller>``).
* ``fs2`` — cgroup v2: the unified hierarchy (``/sys/fs/cgroup`` or, in hybrid mode,
  ``/sys/fs/cgroup/unified``).
* ``hybrid`` — v1 controllers *and* the v2 unified hierarchy, joined as runc does: the
  container gets a directory in every v1 hierarchy and one in the unified one; whatever
  controllers the unified hierarchy holds (``hugetlb`` on the machines we know) are
  set there.
* ``devices`` — the device rules (the spec's, then linux.devices, then runc's default
  allowlist), as v1 ``devices.allow``/``devices.deny`` lines.
* ``cgfs`` — the cgroup filesystem: where the host's hierarchies are mounted (``layout()``),
  our own cgroups, reading and writing cgroupfs files, making and removing directories (what
  the backends share: they import it, never this package's own names).

Every manager has the same methods: ``check(resources)`` (before anything exists: is
every asked-for resource possible on this host?), ``apply(resources)`` (create the
directories and set the limits), ``prepare()`` (before the fork: the v2 directory the
child is born in, see :func:`fork_in`), ``join_self(placed)`` (in the child),
``add_task(pid)``, ``freeze()``, ``thaw()``,
``frozen()``, ``stats()``, ``update(resources)``, ``pids()``, ``remove()``; and
``to_state()`` / :func:`from_state` so later commands find the same directories.

``--systemd-cgroup`` is refused where systemd is not running; the systemd manager is
not written (this host has no systemd).
"""

import os

from ...errors import OCIRuntimeError
from .cgfs import ROOT, layout, own_cgroups


def resolve(cgroups_path, cid, own_path):
    """The container's path in one hierarchy (as runc): absolute ``cgroupsPath`` is taken as
    it is, a relative one is below the runtime's own cgroup, none is ``<own>/<id>``."""
    p = cgroups_path or cid
    if not p.startswith("/"):
        p = own_path.rstrip("/") + "/" + p
    parts = []
    for comp in p.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return "/" + "/".join(parts)


def check_path(cgroups_path):
    """Refuse what cannot be a cgroupfs path (runc's systemd ``slice:prefix:name`` form)."""
    if cgroups_path and ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise OCIRuntimeError(f"linux.cgroupsPath: {cgroups_path!r} is a systemd slice:prefix:name path; "
                              "it needs --systemd-cgroup, and systemd is not running on this host")


def on_disk(mount, hier_path):
    """``/sys/fs/cgroup/<ctrl>/<path>`` for a path in the hierarchy, given the mount's root."""
    mp, root = mount
    if root != "/" and hier_path.startswith(root):
        hier_path = hier_path[len(root):] or "/"
    return mp + hier_path.rstrip("/") if hier_path != "/" else mp


def fork_in(manager):
    """``os.fork()``, the child born in the manager's cgroup v2 directory where it has one
    (see ``_sys.fork_into_cgroup``): ``(pid, placed)``, ``placed`` telling the child whether
    it is in that directory already. The child then
    calls ``mgr.join_self(placed)`` for the rest (v1 hierarchies), which costs no global
    lock either; so no cgroup move of a container start waits for an RCU grace period.
    A caller with other threads gets a plain fork (the child then writes cgroup.procs)."""
    path = manager.v2_path if manager is not None else None
    # clone3 is a raw syscall: with other threads about, libc's locks could be copied held
    if path and os.stat("/proc/self/task").st_nlink <= 3:  # ".", ".." and ours
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = None
        if fd is not None:
            from ..._std import syscalls as _sys

            try:
                return _sys.fork_into_cgroup(fd), True
            except OSError:  # an old kernel, a seccomp filter: fork, then join_self writes cgroup.procs
                pass
            finally:
                os.close(fd)
    return os.fork(), False


def rootless():
    """Does the runtime run in a user namespace it made as an unprivileged user (runc's
    ``--rootless`` auto): not the host's, and root's id 0 not the host's root?"""
    try:
        with open("/proc/self/uid_map") as f:
            first = f.readline().split()
    except OSError:
        return False
    return len(first) == 3 and not (first[0] == "0" and first[1] == "0")


def manager(linux, cid, systemd=False):
    """The manager for a new container (nothing is created until ``apply``)."""
    if systemd:
        if not os.path.isdir("/run/systemd/system"):
            raise OCIRuntimeError("--systemd-cgroup: systemd is not running on this host")
        raise OCIRuntimeError("--systemd-cgroup: the systemd cgroup manager is not implemented; "
                              "run without --systemd-cgroup (cgroupfs)")
    cp = linux.get("cgroupsPath")
    check_path(cp)
    lay = layout()
    if lay.mode != "unified" and rootless():
        from .nocgroups import NoCgroups

        return NoCgroups()
    own = own_cgroups()
    if lay.mode == "unified":
        from .fs2 import Manager2

        return Manager2(on_disk(lay.v2, resolve(cp, cid, own.get("", "/"))))
    from .fs1 import Manager1

    paths = {}
    for ctrl, mount in lay.v1.items():
        key = ctrl[5:] if ctrl.startswith("name=") else ctrl
        paths[key] = on_disk(mount, resolve(cp, cid, own.get(ctrl, own.get(key, "/"))))
    if lay.mode == "legacy":
        return Manager1(paths)
    from .fs2 import Manager2
    from .hybrid import HybridManager

    return HybridManager(Manager1(paths), Manager2(on_disk(lay.v2, resolve(cp, cid, own.get("", "/"))),
                                                   hybrid=True))


def from_state(state):
    """The manager of an existing container (``to_state()`` as saved in state.json), or None."""
    if not state or not isinstance(state, dict) or not _state_paths_ok(state):
        return None
    kind = state.get("kind")
    if kind == "none":
        from .nocgroups import NoCgroups

        return NoCgroups()
    if kind == "v1":
        from .fs1 import Manager1

        return Manager1(state["paths"], state.get("created"))
    if kind == "v2":
        from .fs2 import Manager2

        return Manager2(state["path"], created=state.get("created"))
    if kind == "hybrid":
        from .fs1 import Manager1
        from .fs2 import Manager2
        from .hybrid import HybridManager

        return HybridManager(Manager1(state["paths"], state.get("created")),
                             Manager2(state["path"], hybrid=True, created=state.get("created2")))
    return None


def _cg_path_ok(p):
    return isinstance(p, str) and p.startswith(ROOT + "/") and "\0" not in p and \
        not any(part in (".", "..") for part in p.split("/"))


def _state_paths_ok(st):
    """Only cgroup directories as pallet-runtime writes them: absolute paths under
    /sys/fs/cgroup without . or .. (a state file is never trusted to name another path)."""
    kind = st.get("kind")
    if kind in ("v1", "hybrid"):
        paths = st.get("paths")
        if not isinstance(paths, dict) or not all(isinstance(k, str) and _cg_path_ok(v) for k, v in paths.items()):
            return False
    if kind in ("v2", "hybrid") and not _cg_path_ok(st.get("path")):
        return False
    return True


def parse_size(text, flag):
    """``512m``, ``1g``, ``1024`` (as runc's --memory), ``-1`` for unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    mult = 1
    for suffix, m in (("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("tb", 1 << 40),
                      ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40), ("b", 1)):
        if t.endswith(suffix):
            mult = m
            t = t[: -len(suffix)]
            break
    try:
        v = float(t)
    except ValueError:
        raise OCIRuntimeError(f"{flag}: invalid size {text!r}") from None
    return int(v * mult)


def merge(old, new):
    """Resources ``new`` laid over ``old`` (update): objects merge, everything else replaces."""
    out = dict(old or {})
    for k, v in (new or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
