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


_DIGITS = "0123456789"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (fractions and offsets allowed; a space for
    the ``T`` too); ``ValueError`` if ``text`` is not one. Read by hand, ASCII digits only (no
    ``re``: ``pallet images`` formats every CREATED through this, so it is also kept to string
    methods, without a Python call per field or per character)."""
    s = text.strip()
    if len(s) < 19 or s[4] != "-" or s[7] != "-" or s[10] not in ("T", " ") or s[13] != ":" or s[16] != ":":
        raise ValueError(text)
    digits = s[0:4] + s[5:7] + s[8:10] + s[11:13] + s[14:16] + s[17:19]
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    y, mo, d = int(digits[0:4]), int(digits[4:6]), int(digits[6:8])
    tz, frac = s[19:], 0.0
    if tz[:1] == ".":
        rest = tz[1:].lstrip(_DIGITS)
        n = len(tz) - len(rest)
        if n == 1:
            raise ValueError(text)
        frac, tz = float(tz[:n]), rest
    ts = (days_from_civil(y, mo, d) * 86400 + int(digits[8:10]) * 3600 + int(digits[10:12]) * 60
          + int(digits[12:14]) + frac)
    if tz in ("", "Z"):
        return ts
    if tz[0] not in ("+", "-"):
        raise ValueError(text)
    body = tz[1:]
    if len(body) == 5 and body[2] == ":":
        body = body[:2] + body[3:]
    if len(body) != 4 or not (body.isascii() and body.isdigit()):
        raise ValueError(text)
    off = int(body[:2]) * 3600 + int(body[2:]) * 60
    return ts - off if tz[0] == "+" else ts + off
