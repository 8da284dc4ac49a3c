"""Severities of OSV records: the word a database states (GHSA's, Debian's urgency, Ubuntu's
priority) and CVSS vectors scored as FIRST specifies them: v4.0 (CVSS-B, -BT or -BTE as the
vector carries), v3.0/v3.1 and v2 (base scores). The one place pallet turns a record into a
severity; :mod:`.vulndb` stores what this gives, :mod:`.report` shows it.

Every vector is hostile input: an unknown or duplicate metric, a missing base metric or a value
a metric does not have is a :class:`VectorError` (the caller warns, naming the record, and takes
the severity from another entry), never a guess.
"""

from __future__ import annotations

import itertools

#: the severities of findings, in ``--fail-on`` order; ``none`` (a CVSS score of 0.0) sits below
#: them all and never fails ``--fail-on``
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
_RANK = {"none": -1, **{s: n for n, s in enumerate(SEVERITIES)}}

#: a vector longer than this is not one (the longest CVSS v4.0 vector has about 180 characters)
MAX_VECTOR = 512

#: OSV's severity types, newest first: the order a record's entries are tried in
CVSS_TYPES = ("CVSS_V4", "CVSS_V3", "CVSS_V2")


class VectorError(ValueError):
    """A CVSS vector that is not valid for its version."""


def rank(severity: str) -> int:
    """Sort key: none < unknown < low < ... < critical."""
    return _RANK.get(severity, 0)


def word(v) -> str | None:
    """A severity word of a database (GHSA's, Debian's urgency, Ubuntu's priority) as ours."""
    if not isinstance(v, str):
        return None
    v = v.lower().rstrip("*").strip()
    v = {"moderate": "medium", "important": "high", "unimportant": "low", "negligible": "low"}.get(v, v)
    return v if v in SEVERITIES[1:] else None


def qualitative(score: float, version: str) -> str:
    """The qualitative rating of a score: CVSS v3/v4's scale (None 0.0, Low 0.1-3.9, Medium
    4.0-6.9, High 7.0-8.9, Critical 9.0-10.0); v2 has no Critical (NVD's v2 ranges: High is
    7.0-10.0)."""
    if score <= 0:
        return "none"
    if score < 4:
        return "low"
    if score < 7:
        return "medium"
    if score < 9 or version == "2.0":
        return "high"
    return "critical"


def _parse(vector, prefixes: tuple[str, ...], allowed: dict[str, tuple[str, ...]],
           mandatory: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """(prefix, {metric: value}) of ``vector``; metrics in any order (published records do not
    always keep the specification's), each at most once, every mandatory one present."""
    if not isinstance(vector, str):
        raise VectorError("not a string")
    if len(vector) > MAX_VECTOR:
        raise VectorError(f"longer than {MAX_VECTOR} characters")
    parts = vector.split("/")
    prefix = ""
    if prefixes != ("",):
        if parts[0] not in prefixes:
            raise VectorError(f"does not start with {' or '.join(p + '/' for p in prefixes)}")
        prefix = parts.pop(0)
    metrics: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition(":")
        if not sep or not name:
            raise VectorError(f"{part[:40]!r} is not METRIC:VALUE")
        if name not in allowed:
            raise VectorError(f"unknown metric {name[:40]!r}")
        if name in metrics:
            raise VectorError(f"duplicate metric {name}")
        if value not in allowed[name]:
            raise VectorError(f"{name}:{value[:40]} is not a value of {name} ({', '.join(allowed[name])})")
        metrics[name] = value
    missing = [m for m in mandatory if m not in metrics]
    if missing:
        raise VectorError(f"missing base metric{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return prefix, metrics


# ---------------------------------------------------------------- CVSS v4.0
# FIRST, "Common Vulnerability Scoring System v4.0: Specification Document", section 8
# ("CVSS v4.0 Scoring"): a vector falls in a MacroVector (one level of each of the
# equivalence sets EQ1..EQ6), whose score is looked up; the vector's score is that score less
# the mean, over the EQs that have a lower MacroVector, of (the score difference to that lower
# MacroVector) x (the vector's severity distance from the MacroVector's highest-severity
# vectors / the MacroVector's depth). Rounded half up to one decimal.

_V4_METRICS: dict[str, tuple[str, ...]] = {
    # base (all mandatory)
    "AV": ("N", "A", "L", "P"), "AC": ("L", "H"), "AT": ("N", "P"), "PR": ("N", "L", "H"),
    "UI": ("N", "P", "A"), "VC": ("H", "L", "N"), "VI": ("H", "L", "N"), "VA": ("H", "L", "N"),
    "SC": ("H", "L", "N"), "SI": ("H", "L", "N"), "SA": ("H", "L", "N"),
    # threat
    "E": ("X", "A", "P", "U"),
    # environmental
    "CR": ("X", "H", "M", "L"), "IR": ("X", "H", "M", "L"), "AR": ("X", "H", "M", "L"),
    "MAV": ("X", "N", "A", "L", "P"), "MAC": ("X", "L", "H"), "MAT": ("X", "N", "P"),
    "MPR": ("X", "N", "L", "H"), "MUI": ("X", "N", "P", "A"),
    "MVC": ("X", "H", "L", "N"), "MVI": ("X", "H", "L", "N"), "MVA": ("X", "H", "L", "N"),
    "MSC": ("X", "H", "L", "N"), "MSI": ("X", "S", "H", "L", "N"), "MSA": ("X", "S", "H", "L", "N"),
    # supplemental (never change the score)
    "S": ("X", "N", "P"), "AU": ("X", "N", "Y"), "R": ("X", "A", "U", "I"), "V": ("X", "D", "C"),
    "RE": ("X", "L", "M", "H"), "U": ("X", "Clear", "Green", "Amber", "Red"),
}
_V4_BASE = ("AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA")
_V4_THREAT = ("E",)
_V4_ENV = ("CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA")

# The score of every MacroVector (EQ1..EQ6 levels as six digits): data of the specification,
# as FIRST's reference calculator carries it (github.com/FIRSTdotorg/cvss-v4-calculator,
# cvss_lookup.js; Copyright FIRST, Red Hat, and contributors, BSD-2-Clause).
_V4_LOOKUP = {
    "000000": 10, "000001": 9.9, "000010": 9.8, "000011": 9.5, "000020": 9.5, "000021": 9.2, "000100": 10, "000101": 9.6,
    "000110": 9.3, "000111": 8.7, "000120": 9.1, "000121": 8.1, "000200": 9.3, "000201": 9, "000210": 8.9, "000211": 8,
    "000220": 8.1, "000221": 6.8, "001000": 9.8, "001001": 9.5, "001010": 9.5, "001011": 9.2, "001020": 9, "001021": 8.4,
    "001100": 9.3, "001101": 9.2, "001110": 8.9, "001111": 8.1, "001120": 8.1, "001121": 6.5, "001200": 8.8, "001201": 8,
    "001210": 7.8, "001211": 7, "001220": 6.9, "001221": 4.8, "002001": 9.2, "002011": 8.2, "002021": 7.2, "002101": 7.9,
    "002111": 6.9, "002121": 5, "002201": 6.9, "002211": 5.5, "002221": 2.7, "010000": 9.9, "010001": 9.7, "010010": 9.5,
    "010011": 9.2, "010020": 9.2, "010021": 8.5, "010100": 9.5, "010101": 9.1, "010110": 9, "010111": 8.3, "010120": 8.4,
    "010121": 7.1, "010200": 9.2, "010201": 8.1, "010210": 8.2, "010211": 7.1, "010220": 7.2, "010221": 5.3, "011000": 9.5,
    "011001": 9.3, "011010": 9.2, "011011": 8.5, "011020": 8.5, "011021": 7.3, "011100": 9.2, "011101": 8.2, "011110": 8,
    "011111": 7.2, "011120": 7, "011121": 5.9, "011200": 8.4, "011201": 7, "011210": 7.1, "011211": 5.2, "011220": 5,
    "011221": 3, "012001": 8.6, "012011": 7.5, "012021": 5.2, "012101": 7.1, "012111": 5.2, "012121": 2.9, "012201": 6.3,
    "012211": 2.9, "012221": 1.7, "100000": 9.8, "100001": 9.5, "100010": 9.4, "100011": 8.7, "100020": 9.1, "100021": 8.1,
    "100100": 9.4, "100101": 8.9, "100110": 8.6, "100111": 7.4, "100120": 7.7, "100121": 6.4, "100200": 8.7, "100201": 7.5,
    "100210": 7.4, "100211": 6.3, "100220": 6.3, "100221": 4.9, "101000": 9.4, "101001": 8.9, "101010": 8.8, "101011": 7.7,
    "101020": 7.6, "101021": 6.7, "101100": 8.6, "101101": 7.6, "101110": 7.4, "101111": 5.8, "101120": 5.9, "101121": 5,
    "101200": 7.2, "101201": 5.7, "101210": 5.7, "101211": 5.2, "101220": 5.2, "101221": 2.5, "102001": 8.3, "102011": 7,
    "102021": 5.4, "102101": 6.5, "102111": 5.8, "102121": 2.6, "102201": 5.3, "102211": 2.1, "102221": 1.3, "110000": 9.5,
    "110001": 9, "110010": 8.8, "110011": 7.6, "110020": 7.6, "110021": 7, "110100": 9, "110101": 7.7, "110110": 7.5,
    "110111": 6.2, "110120": 6.1, "110121": 5.3, "110200": 7.7, "110201": 6.6, "110210": 6.8, "110211": 5.9, "110220": 5.2,
    "110221": 3, "111000": 8.9, "111001": 7.8, "111010": 7.6, "111011": 6.7, "111020": 6.2, "111021": 5.8, "111100": 7.4,
    "111101": 5.9, "111110": 5.7, "111111": 5.7, "111120": 4.7, "111121": 2.3, "111200": 6.1, "111201": 5.2, "111210": 5.7,
    "111211": 2.9, "111220": 2.4, "111221": 1.6, "112001": 7.1, "112011": 5.9, "112021": 3, "112101": 5.8, "112111": 2.6,
    "112121": 1.5, "112201": 2.3, "112211": 1.3, "112221": 0.6, "200000": 9.3, "200001": 8.7, "200010": 8.6, "200011": 7.2,
    "200020": 7.5, "200021": 5.8, "200100": 8.6, "200101": 7.4, "200110": 7.4, "200111": 6.1, "200120": 5.6, "200121": 3.4,
    "200200": 7, "200201": 5.4, "200210": 5.2, "200211": 4, "200220": 4, "200221": 2.2, "201000": 8.5, "201001": 7.5,
    "201010": 7.4, "201011": 5.5, "201020": 6.2, "201021": 5.1, "201100": 7.2, "201101": 5.7, "201110": 5.5, "201111": 4.1,
    "201120": 4.6, "201121": 1.9, "201200": 5.3, "201201": 3.6, "201210": 3.4, "201211": 1.9, "201220": 1.9, "201221": 0.8,
    "202001": 6.4, "202011": 5.1, "202021": 2, "202101": 4.7, "202111": 2.1, "202121": 1.1, "202201": 2.4, "202211": 0.9,
    "202221": 0.4, "210000": 8.8, "210001": 7.5, "210010": 7.3, "210011": 5.3, "210020": 6, "210021": 5, "210100": 7.3,
    "210101": 5.5, "210110": 5.9, "210111": 4, "210120": 4.1, "210121": 2, "210200": 5.4, "210201": 4.3, "210210": 4.5,
    "210211": 2.2, "210220": 2, "210221": 1.1, "211000": 7.5, "211001": 5.5, "211010": 5.8, "211011": 4.5, "211020": 4,
    "211021": 2.1, "211100": 6.1, "211101": 5.1, "211110": 4.8, "211111": 1.8, "211120": 2, "211121": 0.9, "211200": 4.6,
    "211201": 1.8, "211210": 1.7, "211211": 0.7, "211220": 0.8, "211221": 0.2, "212001": 5.3, "212011": 2.4, "212021": 1.4,
    "212101": 2.4, "212111": 1.2, "212121": 0.5, "212201": 1, "212211": 0.3, "212221": 0.1,
}

# The highest-severity vectors of each MacroVector level (the specification's section 8.2;
# the calculator's max_composed.js): EQ3 and EQ6 together, keyed by EQ3 then EQ6.
_V4_MAX_EQ1 = {0: ("AV:N/PR:N/UI:N",), 1: ("AV:A/PR:N/UI:N", "AV:N/PR:L/UI:N", "AV:N/PR:N/UI:P"),
               2: ("AV:P/PR:N/UI:N", "AV:A/PR:L/UI:P")}
_V4_MAX_EQ2 = {0: ("AC:L/AT:N",), 1: ("AC:H/AT:N", "AC:L/AT:P")}
_V4_MAX_EQ3EQ6 = {
    (0, 0): ("VC:H/VI:H/VA:H/CR:H/IR:H/AR:H",),
    (0, 1): ("VC:H/VI:H/VA:L/CR:M/IR:M/AR:H", "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M"),
    (1, 0): ("VC:L/VI:H/VA:H/CR:H/IR:H/AR:H", "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H"),
    (1, 1): ("VC:L/VI:H/VA:L/CR:H/IR:M/AR:H", "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M", "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M",
             "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H", "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M"),
    (2, 1): ("VC:L/VI:L/VA:L/CR:H/IR:H/AR:H",),
}
_V4_MAX_EQ4 = {0: ("SC:H/SI:S/SA:S",), 1: ("SC:H/SI:H/SA:H",), 2: ("SC:L/SI:L/SA:L",)}
# each MacroVector level's depth, in steps of 0.1 (the calculator's max_severity.js)
_V4_DEPTH_EQ1 = {0: 1, 1: 4, 2: 5}
_V4_DEPTH_EQ2 = {0: 1, 1: 2}
_V4_DEPTH_EQ3EQ6 = {(0, 0): 7, (0, 1): 6, (1, 0): 8, (1, 1): 8, (2, 1): 10}
_V4_DEPTH_EQ4 = {0: 6, 1: 5, 2: 4}

# each value's severity level within its metric, for the distances (0 the most severe)
_V4_LEVEL = {
    "AV": {"N": 0.0, "A": 0.1, "L": 0.2, "P": 0.3}, "PR": {"N": 0.0, "L": 0.1, "H": 0.2},
    "UI": {"N": 0.0, "P": 0.1, "A": 0.2}, "AC": {"L": 0.0, "H": 0.1}, "AT": {"N": 0.0, "P": 0.1},
    "VC": {"H": 0.0, "L": 0.1, "N": 0.2}, "VI": {"H": 0.0, "L": 0.1, "N": 0.2}, "VA": {"H": 0.0, "L": 0.1, "N": 0.2},
    "SC": {"H": 0.1, "L": 0.2, "N": 0.3}, "SI": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
    "SA": {"S": 0.0, "H": 0.1, "L": 0.2, "N": 0.3},
    "CR": {"H": 0.0, "M": 0.1, "L": 0.2}, "IR": {"H": 0.0, "M": 0.1, "L": 0.2}, "AR": {"H": 0.0, "M": 0.1, "L": 0.2},
}
_V4_DISTANCE_ORDER = ("AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR")


def _round1(x: float) -> float:
    """Half up to one decimal; the 1e-6 absorbs binary floating point's error in differences
    such as 8.6 - 7.15 (1.4499999999999993, which is 1.45: 1.5), as FIRST's calculators do."""
    from decimal import ROUND_HALF_UP, Decimal  # here: decimal costs ~10 ms to import

    return float(Decimal(x + 1e-6).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _v4_effective(m: dict[str, str]) -> dict[str, str]:
    """The value each metric scores with: a modified (environmental) metric replaces its base
    metric; E not defined is A (Attacked, the worst case); CR, IR, AR not defined are H."""
    eff = {}
    for k in _V4_BASE:
        mod = m.get("M" + k, "X")
        eff[k] = mod if mod != "X" else m[k]
    eff["E"] = m.get("E", "X") if m.get("E", "X") != "X" else "A"
    for k in ("CR", "IR", "AR"):
        eff[k] = m.get(k, "X") if m.get(k, "X") != "X" else "H"
    return eff


def _v4_macrovector(e: dict[str, str]) -> tuple[int, int, int, int, int, int]:
    """EQ1..EQ6 (the specification's Table 24 to 29) of effective metrics."""
    if e["AV"] == "N" and e["PR"] == "N" and e["UI"] == "N":
        eq1 = 0
    elif (e["AV"] == "N" or e["PR"] == "N" or e["UI"] == "N") and e["AV"] != "P":
        eq1 = 1
    else:
        eq1 = 2
    eq2 = 0 if e["AC"] == "L" and e["AT"] == "N" else 1
    if e["VC"] == "H" and e["VI"] == "H":
        eq3 = 0
    elif "H" in (e["VC"], e["VI"], e["VA"]):
        eq3 = 1
    else:
        eq3 = 2
    if e["SI"] == "S" or e["SA"] == "S":  # only MSI/MSA can be S (Safety)
        eq4 = 0
    elif "H" in (e["SC"], e["SI"], e["SA"]):
        eq4 = 1
    else:
        eq4 = 2
    eq5 = {"A": 0, "P": 1, "U": 2}[e["E"]]
    eq6 = 0 if (e["CR"] == "H" and e["VC"] == "H") or (e["IR"] == "H" and e["VI"] == "H") \
        or (e["AR"] == "H" and e["VA"] == "H") else 1
    return eq1, eq2, eq3, eq4, eq5, eq6


def _lookup(eqs) -> float | None:
    return _V4_LOOKUP.get("".join(map(str, eqs)))


def cvss4_score(vector: str) -> float:
    """The CVSS v4.0 score of ``vector``: CVSS-B for base metrics alone, CVSS-BT with threat,
    CVSS-BTE with environmental metrics (supplemental metrics never change it)."""
    _, m = _parse(vector, ("CVSS:4.0",), _V4_METRICS, _V4_BASE)
    e = _v4_effective(m)
    if all(e[k] == "N" for k in ("VC", "VI", "VA", "SC", "SI", "SA")):
        return 0.0
    eq1, eq2, eq3, eq4, eq5, eq6 = mv = _v4_macrovector(e)
    value = _lookup(mv)
    # the next lower MacroVector of each EQ (None where there is none); EQ3 and EQ6 move
    # together: 00 has two (01 and 10: the higher scoring one), 01 and 11 go to EQ3+1, 10 to 11
    lower_eq1 = _lookup((eq1 + 1, eq2, eq3, eq4, eq5, eq6))
    lower_eq2 = _lookup((eq1, eq2 + 1, eq3, eq4, eq5, eq6))
    if (eq3, eq6) == (0, 0):
        both = [s for s in (_lookup((eq1, eq2, eq3, eq4, eq5, 1)), _lookup((eq1, eq2, 1, eq4, eq5, 0)))
                if s is not None]
        lower_eq3eq6 = max(both) if both else None
    elif (eq3, eq6) == (1, 0):
        lower_eq3eq6 = _lookup((eq1, eq2, eq3, eq4, eq5, 1))
    elif (eq3, eq6) in ((0, 1), (1, 1)):
        lower_eq3eq6 = _lookup((eq1, eq2, eq3 + 1, eq4, eq5, eq6))
    else:
        lower_eq3eq6 = None
    lower_eq4 = _lookup((eq1, eq2, eq3, eq4 + 1, eq5, eq6))
    lower_eq5 = _lookup((eq1, eq2, eq3, eq4, eq5 + 1, eq6))

    # the severity distance from the first highest-severity vector of the MacroVector that
    # is at least as severe in every metric (the last one tried when none is)
    dist: dict[str, float] = {}
    for combo in itertools.product(_V4_MAX_EQ1[eq1], _V4_MAX_EQ2[eq2], _V4_MAX_EQ3EQ6[(eq3, eq6)], _V4_MAX_EQ4[eq4]):
        top = dict(p.split(":") for p in "/".join(combo).split("/"))
        dist = {k: _V4_LEVEL[k][e[k]] - _V4_LEVEL[k][top[k]] for k in _V4_DISTANCE_ORDER}
        if all(v >= 0 for v in dist.values()):
            break

    step = 0.1
    parts = (  # (lower MacroVector's score, the vector's distance, the MacroVector's depth)
        (lower_eq1, dist["AV"] + dist["PR"] + dist["UI"], _V4_DEPTH_EQ1[eq1]),
        (lower_eq2, dist["AC"] + dist["AT"], _V4_DEPTH_EQ2[eq2]),
        (lower_eq3eq6, dist["VC"] + dist["VI"] + dist["VA"] + dist["CR"] + dist["IR"] + dist["AR"],
         _V4_DEPTH_EQ3EQ6[(eq3, eq6)]),
        (lower_eq4, dist["SC"] + dist["SI"] + dist["SA"], _V4_DEPTH_EQ4[eq4]),
        (lower_eq5, 0.0, 1),  # EQ5 (exploit maturity) has no distance within its levels
    )
    total, n = 0.0, 0
    for lower, distance, depth in parts:
        if lower is None:
            continue
        n += 1
        total += (value - lower) * (distance / (depth * step))
    value -= total / n if n else 0.0
    return _round1(min(max(value, 0.0), 10.0))


def cvss4_nomenclature(vector: str) -> str:
    """CVSS-B, CVSS-BT, CVSS-BE or CVSS-BTE: the metric groups a (valid) v4.0 vector sets."""
    m = dict(p.split(":", 1) for p in vector.split("/")[1:])
    t = any(m.get(k, "X") != "X" for k in _V4_THREAT)
    e = any(m.get(k, "X") != "X" for k in _V4_ENV)
    return "CVSS-B" + ("T" if t else "") + ("E" if e else "")


# ---------------------------------------------------------------- CVSS v3.0 / v3.1
# FIRST, "CVSS v3.1: Specification Document", section 7.1 (base score); 3.0's base equations
# are the same, its Roundup the plain ceiling to one decimal.

_V3_METRICS: dict[str, tuple[str, ...]] = {
    "AV": ("N", "A", "L", "P"), "AC": ("L", "H"), "PR": ("N", "L", "H"), "UI": ("N", "R"), "S": ("U", "C"),
    "C": ("H", "L", "N"), "I": ("H", "L", "N"), "A": ("H", "L", "N"),
    "E": ("X", "U", "P", "F", "H"), "RL": ("X", "O", "T", "W", "U"), "RC": ("X", "U", "R", "C"),
    "CR": ("X", "L", "M", "H"), "IR": ("X", "L", "M", "H"), "AR": ("X", "L", "M", "H"),
    "MAV": ("X", "N", "A", "L", "P"), "MAC": ("X", "L", "H"), "MPR": ("X", "N", "L", "H"), "MUI": ("X", "N", "R"),
    "MS": ("X", "U", "C"), "MC": ("X", "N", "L", "H"), "MI": ("X", "N", "L", "H"), "MA": ("X", "N", "L", "H"),
}
_V3_BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


def _roundup31(x: float) -> float:
    """CVSS v3.1's Roundup (Appendix A): the smallest one-decimal number >= x, computed on
    integers so that 4.000000000000001 is 4.0, not 4.1."""
    n = round(x * 100000)
    return n / 100000.0 if n % 10000 == 0 else (n // 10000 + 1) / 10.0


def cvss3_score(vector: str) -> float:
    """The CVSS v3.0/v3.1 base score of ``vector`` (temporal and environmental metrics are
    checked, not applied: OSV's records carry base scores)."""
    prefix, m = _parse(vector, ("CVSS:3.0", "CVSS:3.1"), _V3_METRICS, _V3_BASE)
    import math

    av = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}[m["AV"]]
    ac = {"L": 0.77, "H": 0.44}[m["AC"]]
    ui = {"N": 0.85, "R": 0.62}[m["UI"]]
    changed = m["S"] == "C"
    pr = {"N": 0.85, "L": 0.68 if changed else 0.62, "H": 0.5 if changed else 0.27}[m["PR"]]
    c, i, a = ({"H": 0.56, "L": 0.22, "N": 0.0}[m[k]] for k in ("C", "I", "A"))
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    expl = 8.22 * av * ac * pr * ui
    raw = min(1.08 * (impact + expl), 10) if changed else min(impact + expl, 10)
    if prefix == "CVSS:3.0":
        return math.ceil(raw * 10) / 10
    return _roundup31(raw)


# ---------------------------------------------------------------- CVSS v2
# FIRST, "CVSS v2 Complete Documentation", section 3.2.1 (base equation), in decimal
# arithmetic; OSV writes v2 vectors without a prefix ("AV:N/AC:L/Au:N/C:P/I:P/A:P").

_V2_METRICS: dict[str, tuple[str, ...]] = {
    "AV": ("L", "A", "N"), "AC": ("H", "M", "L"), "Au": ("M", "S", "N"),
    "C": ("N", "P", "C"), "I": ("N", "P", "C"), "A": ("N", "P", "C"),
    "E": ("U", "POC", "F", "H", "ND"), "RL": ("OF", "TF", "W", "U", "ND"), "RC": ("UC", "UR", "C", "ND"),
    "CDP": ("N", "L", "LM", "MH", "H", "ND"), "TD": ("N", "L", "M", "H", "ND"),
    "CR": ("L", "M", "H", "ND"), "IR": ("L", "M", "H", "ND"), "AR": ("L", "M", "H", "ND"),
}
_V2_BASE = ("AV", "AC", "Au", "C", "I", "A")


def cvss2_score(vector: str) -> float:
    """The CVSS v2 base score of ``vector`` (temporal and environmental metrics checked, not
    applied). A ``(...)`` around the vector, as NVD wrote them, is accepted."""
    if isinstance(vector, str) and vector.startswith("(") and vector.endswith(")"):
        vector = vector[1:-1]
    _, m = _parse(vector, ("",), _V2_METRICS, _V2_BASE)
    from decimal import ROUND_HALF_UP, Decimal as D

    av = {"L": D("0.395"), "A": D("0.646"), "N": D("1.0")}[m["AV"]]
    ac = {"H": D("0.35"), "M": D("0.61"), "L": D("0.71")}[m["AC"]]
    au = {"M": D("0.45"), "S": D("0.56"), "N": D("0.704")}[m["Au"]]
    c, i, a = ({"N": D("0"), "P": D("0.275"), "C": D("0.660")}[m[k]] for k in ("C", "I", "A"))
    impact = D("10.41") * (1 - (1 - c) * (1 - i) * (1 - a))
    expl = 20 * av * ac * au
    f = D("0") if impact == 0 else D("1.176")
    score = ((D("0.6") * impact + D("0.4") * expl - D("1.5")) * f).quantize(D("0.1"), rounding=ROUND_HALF_UP)
    return float(max(score, D("0")))


_SCORERS = {"CVSS_V4": ("4.0", cvss4_score), "CVSS_V3": (None, cvss3_score), "CVSS_V2": ("2.0", cvss2_score)}


def score(kind: str, vector) -> dict:
    """``{"version", "vector", "score", "severity"}`` of an OSV severity entry of type ``kind``
    (CVSS_V4, CVSS_V3, CVSS_V2); VectorError when the vector is not valid."""
    if kind not in _SCORERS:
        raise VectorError(f"not a CVSS type ({', '.join(CVSS_TYPES)})")
    version, fn = _SCORERS[kind]
    s = fn(vector)
    if version is None:
        version = vector[5:8]  # CVSS:3.0 or CVSS:3.1 (checked by the parse)
    out = {"version": version, "vector": vector, "score": s, "severity": qualitative(s, version)}
    if version == "4.0":
        out["nomenclature"] = cvss4_nomenclature(vector)
    return out


def of_record(doc: dict, aff: dict, warn=None) -> tuple[str, dict | None]:
    """(severity, the CVSS score it rests on or None) of one ``affected`` entry of an OSV
    record: GHSA's ``database_specific.severity``, Debian's urgency, Ubuntu's priority (a USN:
    the highest of its CVEs'), else the first valid CVSS vector, v4.0 before v3.x before v2
    (the entry's own ``severity`` list before the record's, as OSV prescribes); ``unknown`` when
    none is stated. A vector that is not valid is ``warn(what)`` and the next one is tried.
    The CVSS score is returned alongside a database's word too, for the reports."""
    cvss = _cvss_of(doc, aff, warn)
    for holder in (aff.get("ecosystem_specific"), aff.get("database_specific"), doc.get("database_specific")):
        if isinstance(holder, dict):
            for key in ("severity", "urgency"):
                if word(holder.get(key)):
                    return word(holder.get(key)), cvss
    ubuntu = [w for sev in doc.get("severity") or [] if isinstance(sev, dict) and sev.get("type") == "Ubuntu"
              for w in [word(sev.get("score"))] if w]
    ds = aff.get("database_specific")
    cves_map = ds.get("cves_map") if isinstance(ds, dict) else None
    cves = cves_map.get("cves") if isinstance(cves_map, dict) else None
    for cve in cves if isinstance(cves, list) else []:
        sevs = cve.get("severity") if isinstance(cve, dict) else None
        for sev in sevs if isinstance(sevs, list) else []:
            if isinstance(sev, dict) and sev.get("type") == "Ubuntu" and word(sev.get("score")):
                ubuntu.append(word(sev.get("score")))
    if ubuntu:
        return max(ubuntu, key=rank), cvss
    if cvss:
        return cvss["severity"], cvss
    return "unknown", None


def _cvss_of(doc: dict, aff: dict, warn) -> dict | None:
    own = aff.get("severity")
    entries = [(f"affected severity[{n}]", s) for n, s in enumerate(own)] if isinstance(own, list) and own else \
        [(f"severity[{n}]", s) for n, s in enumerate(doc.get("severity") or [])]
    for kind in CVSS_TYPES:
        for where, sev in entries:
            if not isinstance(sev, dict) or sev.get("type") != kind:
                continue
            try:
                return score(kind, sev.get("score"))
            except VectorError as e:
                if warn:
                    shown = sev.get("score")
                    shown = repr(shown[:80] + ("..." if len(shown) > 80 else "")) if isinstance(shown, str) else "score"
                    warn(f"{where} {kind} {shown}: {e}")
    return None
