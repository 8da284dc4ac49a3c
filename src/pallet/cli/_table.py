"""Tables and human sizes/times as podman prints them."""

from __future__ import annotations

import time


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


def parse_time(iso: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (fractions and offsets allowed)."""
    import re

    m = re.match(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", iso.strip())
    if not m:
        raise ValueError(iso)
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    ts = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + float(m.group(7) or 0)
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        ts -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
    return ts


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


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (calendar.timegm without the import)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
