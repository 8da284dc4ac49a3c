"""Times and durations as image configs write them: RFC 3339 ``created`` times, and Go
durations (``Healthcheck`` intervals are nanoseconds, given as ``30s``/``1m30s``). Pure; no
``re`` or ``time`` at import (the command line's quick paths load this)."""

from __future__ import annotations

_NS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9,
       "m": 60 * 10**9, "h": 3600 * 10**9}
_MAX_NS = (1 << 63) - 1


def parse_duration(text: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds (``24h``, ``1h30m``, ``1.5h``, ``-10m``, ``0``);
    None when ``text`` is not one (or overflows Go's int64)."""
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total, i = 0, 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() and s[j].isascii() or s[j] == "."):
            j += 1
        num = s[i:j]
        if num in ("", ".") or num.count(".") > 1:
            return None
        k = j
        while k < len(s) and not (s[k].isdigit() and s[k].isascii()) and s[k] != ".":
            k += 1
        unit = _NS.get(s[j:k])
        if unit is None:
            return None
        whole, _, frac = num.partition(".")
        total += int(whole or "0") * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        if total > _MAX_NS:
            return None
        i = k
    return sign * total


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (calendar.timegm without the import)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (fractions and offsets allowed; a space for
    the ``T`` too); ``ValueError`` if ``text`` is not one."""
    import re

    m = re.match(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", text.strip())
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    ts = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + float(m.group(7) or 0)
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        ts -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
    return ts
