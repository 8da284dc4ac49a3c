"""A live container's cgroups: ``pause``, ``resume``, ``update``, ``events`` (stats, OOM watch)."""

from ..errors import OCIRuntimeError
from . import state as _state
from .container import cgroup_manager


def _cgroup_of(c, what):
    mgr = cgroup_manager(c)
    if mgr is None:
        raise OCIRuntimeError(f"{what}: container {c.id!r} has no cgroups")
    return mgr


def pause(root, cid):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status != "running":
            raise OCIRuntimeError(f"cannot pause container {cid!r}: it is {status}, not running")
        _cgroup_of(c, "pause").freeze()


def resume(root, cid):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status != "paused":
            raise OCIRuntimeError(f"cannot resume container {cid!r}: it is {status}, not paused")
        _cgroup_of(c, "resume").thaw()


def update(root, cid, resources):
    """Apply ``resources`` (a linux.resources object, validated) and remember them in the state."""
    from . import cgroups as _cgroups
    from .spec import validate_resources

    validate_resources(resources, "resources")
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status not in ("created", "running", "paused"):
            raise OCIRuntimeError(f"cannot update container {cid!r}: it is {status}")
        mgr = _cgroup_of(c, "update")
        mgr.update(resources)
        st = dict(c.state)
        config = dict(st["config"])
        linux = dict(config.get("linux") or {})
        linux["resources"] = _cgroups.merge(linux.get("resources"), resources)
        config["linux"] = linux
        st["config"] = config
        c.write(st)


def stats(root, cid):
    """runc's ``events --stats`` object for the container."""
    with _state.open_container(root, cid, lock=False) as c:
        status = c.status()
        if status == "stopped":
            raise OCIRuntimeError(f"container {cid!r} is stopped")
        return {"type": "stats", "id": cid, "data": _cgroup_of(c, "events").stats()}


def oom_watch(root, cid):
    """An OOM watch on the container's memory cgroup (see ``cgroups.oom``), or None."""
    with _state.open_container(root, cid, lock=False) as c:
        mgr = cgroup_manager(c)
    if mgr is None:
        return None
    from .cgroups import oom

    return oom.watch(mgr)
