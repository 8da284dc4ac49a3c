"""``kill``: signal a container's init (``--all``: every process in it); signal names as runc's."""

import os

from ..errors import OCIRuntimeError
from . import state as _state
from .container import container_pids


SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text):
    t = text.upper()
    if t.isdigit():
        n = int(t)
        if 0 < n <= 64:
            return n
    else:
        if t.startswith("SIG"):
            t = t[3:]
        if t in SIGNALS:
            return SIGNALS[t]
        if t.startswith("RTMIN") or t.startswith("RTMAX"):
            base, off = (34, 1) if t.startswith("RTMIN") else (64, -1)
            rest = t[5:]
            if not rest:
                return base
            if rest[0] in "+-" and rest[1:].isdigit():
                n = base + (int(rest[1:]) if rest[0] == "+" else -int(rest[1:]))
                if 34 <= n <= 64:
                    return n
    raise OCIRuntimeError(f"unknown signal {text!r}")


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
