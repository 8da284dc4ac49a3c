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


# -- the command line's and the API's time values (podman's two grammars) ---------------------
# podman reads a time the user gives in two ways, and pallet with it: ``--filter until=`` (images,
# containers, volumes, networks, their prune verbs) through containers/common's
# ``timetype.GetTimestamp``; ``logs``/``events`` ``--since``/``--until`` through podman's
# ``util.ParseInputTime``. Both are here, so the CLI and the Python API read a time alike.

_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _num(s: str, i: int, n: int, fixed: bool = True) -> tuple[int, int] | None:
    """Go's ``getnum``: ``n`` ASCII digits at ``i`` (``fixed``: exactly; else 1 or 2); (value, end)."""
    j = i
    while j < len(s) and j - i < n and s[j] in _DIGITS:
        j += 1
    if j == i or (fixed and j - i != n):
        return None
    return int(s[i:j]), j


def _go_time(s: str, clock: int, zone: bool | None) -> tuple[float, bool] | None:
    """``s`` read as Go's ``time.Parse`` reads the layout ``2006-01-02[T15[:04[:05]]][Z07:00]``:
    ``clock`` the layout's clock fields (0: a date alone, 1: ``T15``, 2: ``T15:04``, 3: with
    seconds, whose fraction after ``.`` or ``,`` is taken whatever the layout), ``zone`` whether
    the layout has ``Z07:00`` (``Z`` or ``±hh:mm``; None: either). Returns (seconds since the
    epoch of the fields read as UTC, less the zone's offset; whether a zone was given), or None."""
    r = _num(s, 0, 4)
    if r is None or s[4:5] != "-":
        return None
    y = r[0]
    r = _num(s, 5, 2)
    if r is None or s[7:8] != "-" or not 1 <= r[0] <= 12:
        return None
    mo = r[0]
    r = _num(s, 8, 2)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if r is None or not 1 <= r[0] <= _DAYS[mo - 1] + (mo == 2 and leap):
        return None
    d, i = r
    h = mi = 0
    sec = 0.0
    if clock:
        if s[i:i + 1] != "T":
            return None
        r = _num(s, i + 1, 2, fixed=False)  # Go's hour "15" takes one digit too
        if r is None or r[0] >= 24:
            return None
        h, i = r
        for field in range(2, clock + 1):
            r = _num(s, i + 1, 2) if s[i:i + 1] == ":" else None
            if r is None or r[0] >= 60:
                return None
            if field == 2:
                mi = r[0]
            else:
                sec = float(r[0])
            i = r[1]
        if clock == 3 and s[i:i + 1] in (".", ",") and s[i + 1:i + 2] in tuple(_DIGITS):
            j = i + 1
            while j < len(s) and s[j] in _DIGITS:
                j += 1
            sec += int(s[i + 1:j][:9].ljust(9, "0")) / 1e9
            i = j
    ts = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
    rest = s[i:]
    if not rest:
        return (ts, False) if zone is not True else None
    if zone is False:
        return None
    if rest == "Z":
        return ts, True
    if len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        hh, mm = _num(rest, 1, 2), _num(rest, 4, 2)
        if hh is not None and mm is not None:
            off = hh[0] * 3600 + mm[0] * 60
            return (ts - off if rest[0] == "+" else ts + off), True
    return None


def _local_offset(now: float) -> int:
    """The local zone's offset from UTC at ``now``, in seconds (Go's ``FixedZone(reference.Zone())``)."""
    import time

    return time.localtime(now).tm_gmtoff


def parse_filter_time(value: str, now: float) -> float:
    """A ``--filter until=`` value, as containers/common's ``timetype.GetTimestamp`` reads it:
    a Go duration before ``now`` (``24h``, ``90m``; not ``0``), an RFC 3339 time or a date
    (``2006-01-02``, ``2006-01-02T15``, ``2006-01-02T15:04``, ``2006-01-02T15:04:05[.frac]``,
    each with ``Z`` or ``±hh:mm``, or without one: then in the local zone as it is ``now``), or
    Unix seconds (``1714557600``, ``1714557600.25``). Seconds since the epoch, a time before
    1970 as 0; ``ValueError`` for anything else."""
    d = parse_duration(value)
    if d is not None and value != "0":
        return now - d / 1e9
    # as GetTimestamp: a Z, z or + anywhere, or three dashes, says the value has its zone
    local = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    if "." in value:
        clock = 3
    elif "T" in value:
        colons = value.count(":")
        if not local and "z" not in value and "Z" not in value and colons > 0:
            colons -= 1  # the offset's colon
        clock = min(colons, 2) + 1
    else:
        clock = 0
    got = _go_time(value, clock, not local)
    if got is not None:
        t = got[0] - (_local_offset(now) if local else 0)
        return max(t, 0.0)
    if "-" in value:
        raise ValueError(value)
    return _unix_seconds(value)


def _unix_seconds(value: str) -> float:
    """containers/common's ``parseTimestamp``: ``SECONDS[.FRACTION]``, each an int64 (a sign
    allowed, as Go's ``ParseInt`` allows it)."""
    whole, dot, frac = value.partition(".")
    for part in ((whole, frac) if dot else (whole,)):
        digits = part[1:] if part[:1] in ("+", "-") else part
        if not (digits and digits.isascii() and digits.isdigit()) or int(part) > _MAX_NS or int(part) < -_MAX_NS - 1:
            raise ValueError(value)
    secs = int(whole)
    return secs + (int(frac) * 10.0 ** (9 - len(frac)) / 1e9 if dot else 0.0)


def _go_float(value: str) -> float | None:
    """A finite decimal number as Go's ``ParseFloat`` reads one (``1714557600``, ``1.5``,
    ``1e9``, ``-5``); None otherwise. (Go also reads ``inf``, ``nan``, hex and ``_``-grouped
    digits; podman would turn an infinite time into the year -292277022657: refused here.)"""
    s = value[1:] if value[:1] in ("+", "-") else value
    mant, e, exp = s.partition("e") if "e" in s else s.partition("E")
    if e:
        exp = exp[1:] if exp[:1] in ("+", "-") else exp
        if not (exp.isascii() and exp.isdigit()):
            return None
    whole, _, frac = mant.partition(".")
    if not whole + frac or not (whole + frac).isascii() or not (whole + frac).isdigit():
        return None
    f = float(value)
    return f if f - f == 0 else None  # finite


def parse_log_time(value: str, now: float, since: bool) -> float:
    """A ``logs``/``events`` ``--since`` or ``--until`` value (and the Python API's), as podman's
    ``util.ParseInputTime`` reads it: an RFC 3339 time or a date, with ``Z``/``±hh:mm`` or
    without (then UTC: ``2006-01-02T15:04:05[.frac]``, ``2006-01-02``, not ``2006-01-02T15``);
    Unix seconds as a decimal number (``1714557600.5``, ``1e9``); or a Go duration -- before
    ``now`` for ``--since``, *after* it for ``--until`` (podman's ``logs --until 10m`` reaches ten
    minutes ahead; ``-10m`` is ten minutes ago). Seconds since the epoch; ``ValueError`` else."""
    for clock, zone in ((3, True), (3, False), (0, True), (0, False)):
        got = _go_time(value, clock, zone)
        if got is not None:
            return got[0]
    f = _go_float(value)
    if f is not None:
        return f
    d = parse_duration(value)
    if d is None:
        raise ValueError(value)
    return now - d / 1e9 if since else now + d / 1e9
