"""``state``, ``list``, ``ps``: containers read, never changed (no lock taken)."""

from ..errors import OCIRuntimeError
from . import state as _state
from .container import container_pids


def state(root, cid):
    with _state.open_container(root, cid, lock=False) as c:
        return c.oci_state()


def list_containers(root):
    out = []
    for cid in _state.list_ids(root):
        try:
            with _state.open_container(root, cid, lock=False) as c:
                out.append(c.oci_state())
        except OCIRuntimeError as e:
            out.append({"id": cid, "status": "unknown", "pid": 0, "bundle": "", "rootfs": "",
                        "created": "", "owner": "", "error": str(e)})
    return out


def ps(root, cid):
    with _state.open_container(root, cid, lock=False) as c:
        if c.status() == "stopped":
            return []
        return container_pids(c)
