"""Debug messages: the ``pallet`` logger of Python's :mod:`logging`, and nothing else.

The library never prints. Its diagnostics go to ``logging.getLogger("pallet")`` at DEBUG
level, so a program using pallet sees them the way it sees any library's (a handler and a
level of its own, e.g. ``logging.basicConfig(level=logging.DEBUG)``). ``pallet --debug``
calls :func:`enable`, which attaches a handler printing ``DEBUG message`` lines on stderr.

``logging`` imports ``re``, ``threading`` and more, which the quick commands must not pay
for: it is imported here only once ``--debug`` asked for it or the program has imported
it itself (a program that never imported ``logging`` cannot have configured it).
"""

from __future__ import annotations

import sys

enabled = False
LOGGER = "pallet"


def enable(on: bool = True) -> None:
    """Send the library's debug messages to stderr as ``DEBUG message`` lines (``--debug``)."""
    global enabled
    import logging

    logger = logging.getLogger(LOGGER)
    for h in [h for h in logger.handlers if getattr(h, "_pallet_debug", False)]:
        logger.removeHandler(h)
    enabled = on
    if on:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("DEBUG %(message)s"))
        handler._pallet_debug = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


def debug(msg: str) -> None:
    logging = sys.modules.get("logging")
    if logging is None:  # nobody imported logging: nobody can be listening
        return
    logger = logging.getLogger(LOGGER)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", msg)
