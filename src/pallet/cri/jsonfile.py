"""A JSON document a request or the configuration names (CNI configurations, seccomp profiles),
read bounded, its failure a CRIError naming the file."""

from __future__ import annotations

from .._std import json
from ..errors import CRIError


def read(path: str, what: str, code: str, limit: int = 1 << 20):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(limit))
    except (OSError, ValueError) as e:
        raise CRIError(f"{what} {path}: {getattr(e, 'strerror', None) or e}", code) from None
