"""The runtime's JSON: ``pallet._std.json`` (no ``import json``: ``re`` would cost a tenth of a
container start), compact for state files, pretty for ``spec`` and ``state``."""

from .._std.json import dumps as _dumps
from .._std.json import loads  # noqa: F401


def dumps(obj):
    """Compact JSON (``TypeError`` for what JSON cannot hold)."""
    return _dumps(obj, separators=(",", ":"))


def dumps_pretty(obj, indent="\t"):
    return _dumps(obj, indent=indent)
