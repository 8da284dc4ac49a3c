"""``kill``: signal a container's init (``--all``: every process in it); signal names as runc's."""

import os

from ..errors import OCIRuntimeError
from . import state as _state
from .container import container_pids, parse_signal  # noqa: F401 (kill.parse_signal: the CLI's, the API's)


def kill(root, cid, sig, all_=False):
    with _state.open_container(root, cid) as c:
        status = c.status()
        if status not in ("created", "running", "paused"):
            raise OCIRuntimeError(f"container {cid!r} is not running")
        pids = container_pids(c) if all_ else [c.state["pid"]]
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
            except OSError as e:
                raise OCIRuntimeError(f"kill {p}: {e.strerror}") from None
