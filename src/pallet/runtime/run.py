"""``run``: create + start; in the foreground wait for the exit status, forwarding signals,
then delete (unless ``--keep``)."""

import os

from ..errors import OCIRuntimeError
from . import state as _state
from .container import forward_signals, wait_for_exit
from .create import create
from .delete import destroy
from .start import start_created


def run(root, cid, bundle, detach=False, keep=False, **kw):
    """create + start; in the foreground wait and return the container's exit code."""
    c, pid = create(root, cid, bundle, foreground=not detach, **kw)
    try:
        if not detach:
            forward_signals(pid)
        start_created(c, just_created=True)
    except BaseException:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        destroy(c)
        raise
    if detach:
        c.close()
        return 0
    c.close()  # others may look at it while it runs
    code = wait_for_exit(pid)
    if not keep:
        try:
            with _state.open_container(root, cid) as c2:
                destroy(c2)
        except OCIRuntimeError:
            pass
    return code
