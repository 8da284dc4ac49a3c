"""Tables and human sizes/times as podman prints them."""

from __future__ import annotations

import time

from ..oci.times import parse_rfc3339 as parse_time  # noqa: F401  (the CLI's name for it)


def human_size(n: float) -> str:
    """podman's units: decimal, three significant digits (``5.87 MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(n)} B"
            return f"{n:.3g} {unit}"
        n /= 1000
    return str(n)


def ago(iso: str | None) -> str:
    """``2 years ago``, ``About a minute ago``, like podman's CREATED column."""
    if not iso:
        return ""
    try:
        ts = parse_time(iso)
    except ValueError:
        return iso
    d = max(0.0, time.time() - ts)
    if d < 1:
        return "Less than a second ago"
    if d < 60:
        return f"{int(d)} seconds ago"
    if d < 120:
        return "About a minute ago"
    if d < 3600:
        return f"{int(d // 60)} minutes ago"
    if d < 7200:
        return "About an hour ago"
    if d < 86400 * 2:
        return f"{int(d // 3600)} hours ago"
    if d < 86400 * 7 * 2:
        return f"{int(d // 86400)} days ago"
    if d < 86400 * 30 * 3:
        return f"{int(d // (86400 * 7))} weeks ago"
    if d < 86400 * 365 * 2:
        return f"{int(d // (86400 * 30))} months ago"
    return f"{int(d // (86400 * 365))} years ago"


def table(headers: list[str], rows: list[list[str]], noheading: bool = False) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = []
    if not noheading:
        lines.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    for r in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)
