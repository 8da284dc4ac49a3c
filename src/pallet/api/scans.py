"""``pallet scan`` (the built-in scanner): an image's packages, known vulnerabilities and policy
findings, nothing from the image run; a :class:`ScanReport` that renders as the command does."""

from __future__ import annotations

import copy as _copy
from typing import Literal, Sequence

from ..errors import UsageError
from ._common import about
from .results import ScanReport, package, policy_finding, vulnerability

#: what a target is when its text could be both (``None``: an image, else a container, else a reference)
TargetKind = Literal["image", "container"]

def run_scan(store, target: str, policy: str | None, kind: str | None, ctx) -> ScanReport:
    """The built-in scanner on ``target`` (``store``: the library's Store)."""
    from .._log import debug
    from ..scan import policy as _policy
    from ..scan import scan_one
    from ..transports.copy import CopyOptions, Progress

    if not isinstance(target, str) or not target:
        raise UsageError("target: want an image, a container or a transport reference as a string")
    if kind not in (None, "image", "container"):
        raise UsageError(f"kind: want 'image' or 'container', not {kind!r}")
    with about(target):
        pol = _policy.load(policy) if policy is not None else None
        r = scan_one(store, target, ctx, CopyOptions(progress=Progress(None)),
                     lambda path, message: debug(f"scan {target}: {path}: {message}"), pol, kind)
    vulns = r.get("vulnerabilities")
    return ScanReport(target=r["target"], image_id=r["image"]["id"], image_names=tuple(r["image"].get("names") or ()),
                      os=dict(r.get("os") or {}), packages=tuple(package(p) for p in r["packages"]),
                      vulnerabilities=None if vulns is None else tuple(vulnerability(v) for v in vulns),
                      policy=tuple(policy_finding(f) for f in r["policy"]),
                      warnings=tuple(f"{w['file']}: {w['message']}" for w in r.get("warnings") or ()),
                      fail_on=pol.fail_on if pol is not None else None, _doc=_copy.deepcopy(r))


def import_vulnerabilities(store, paths: Sequence[str]) -> int:
    from .._log import debug
    from ..scan import vulndb

    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise UsageError("paths: give OSV records (JSON files, directories or OSV's zips)")
    return vulndb.import_records(store, list(paths), lambda path, message: debug(f"{path}: {message}"))
