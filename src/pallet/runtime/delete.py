"""``delete``: kill what is left of a container, wait for it, poststop hooks, remove its
cgroups, the mounts it left on the host and its state (``--force``: also a running or
corrupt one)."""

import os

from ..errors import OCIRuntimeError
from . import state as _state
from .container import cgroup_manager, container_pids, run_hooks_warning_only, umount_host_mounts


def delete(root, cid, force=False):
    _state.check_id(cid)  # before anything: no path is ever built from an unchecked id
    try:
        c = _state.open_container(root, cid, allow_corrupt=force)
    except _state.NoSuchContainer:
        if force:
            return
        raise
    with c:
        if c.state is None:  # corrupt, --force: nothing we can trust but the directory (and cgroups.json)
            _remove_cgroups_of(c)
            umount_host_mounts(c)
            c.remove()
            return
        status = c.status()
        if status in ("created", "running", "paused") and not force:  # the spec: only a stopped one
            raise OCIRuntimeError(f"cannot delete container {cid!r} that is {status}: stop it or use --force")
        destroy(c)


def _remove_cgroups_of(c):
    """Kill what is in the cgroups named by ``cgroups.json`` and remove them (state.json unreadable)."""
    from . import cgroups as _cgroups

    mgr = _cgroups.from_state(c.read_file(_state.CGROUPS))
    if mgr is None:
        return
    for p in mgr.pids():
        try:
            os.kill(p, 9)
        except OSError:
            pass
    try:
        if mgr.frozen():
            mgr.thaw()
        mgr.remove()
    except OCIRuntimeError as e:
        os.write(2, f"pallet-runtime: warning: {e}\n".encode())


def destroy(container):
    """Kill whatever is left, wait until it is gone, poststop hooks, remove cgroups and state."""
    import time

    if container.state is not None:
        manager = cgroup_manager(container)
        pids = container_pids(container, manager)
        for p in pids:
            try:
                os.kill(p, 9)
            except OSError:
                pass
        if manager is not None and pids:
            try:
                if manager.frozen():  # a paused container dies only once thawed
                    manager.thaw()
            except OCIRuntimeError:
                pass
        deadline = time.monotonic() + 10
        for p in pids:
            while _state.process_alive(p) and time.monotonic() < deadline:
                try:  # ours to reap when we are its parent (run)
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.002)
        if (container.state["config"].get("hooks") or {}).get("poststop"):
            run_hooks_warning_only(container, "poststop", "stopped")
        if manager is not None:
            try:
                manager.remove()
            except OCIRuntimeError as e:
                os.write(2, f"pallet-runtime: warning: {e}\n".encode())
    umount_host_mounts(container)
    container.remove()
