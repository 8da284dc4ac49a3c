"""Debug messages (``pallet --debug``): one switch for the whole library, lines on stderr.

The library never prints anything else; a library user turns this on with ``enable()``
or leaves it off.
"""

from __future__ import annotations

import sys

enabled = False


def enable(on: bool = True) -> None:
    global enabled
    enabled = on


def debug(msg: str) -> None:
    if enabled:
        print(f"DEBUG {msg}", file=sys.stderr, flush=True)
