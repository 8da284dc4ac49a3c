"""Each ecosystem's version order, as its own tools compare versions.

- Debian: dpkg's algorithm (epoch, upstream and revision; ``~`` sorts before everything,
  letters before non-letters), checked in the tests against ``dpkg --compare-versions``;
- PyPI: PEP 440 (the ``packaging`` library, as pip);
- npm, Go and the rest: semver 2.0 (a leading ``v`` allowed, pre-releases before the release,
  build metadata ignored); Alpine's apk versions are compared as semver-like dotted numbers.

``compare(ecosystem, a, b)`` is < 0, 0 or > 0; a version the ecosystem cannot parse is
ValueError (the matcher turns that into a warning naming the record).
"""

from __future__ import annotations


def _dpkg_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _dpkg_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _dpkg_split(v: str) -> tuple[int, str, str]:
    v = v.strip()
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        if not e.isdigit():
            raise ValueError(f"bad epoch in Debian version {e!r}")
        epoch = int(e)
    if "-" in v:
        up, rev = v.rsplit("-", 1)
    else:
        up, rev = v, ""
    if not up or not up[0].isdigit():
        raise ValueError(f"Debian version {v!r} does not start with a digit")
    return epoch, up, rev


def dpkg_compare(a: str, b: str) -> int:
    ea, ua, ra = _dpkg_split(a)
    eb, ub, rb = _dpkg_split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    r = _dpkg_part(ua, ub)
    if r:
        return -1 if r < 0 else 1
    r = _dpkg_part(ra, rb)
    return -1 if r < 0 else (1 if r > 0 else 0)


def pep440_compare(a: str, b: str) -> int:
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion as e:
        raise ValueError(str(e)) from None
    return -1 if va < vb else (1 if va > vb else 0)


def _semver_key(v: str):
    v = v.strip()
    if v[:1] in ("v", "V"):
        v = v[1:]
    v = v.split("+", 1)[0]
    core, _, pre = v.partition("-")
    nums = core.split(".")
    if not nums or not all(n.isdigit() for n in nums):
        raise ValueError(f"not a semantic version: {v!r}")
    main = tuple(int(n) for n in nums) + (0,) * (3 - len(nums))
    if not pre:
        return main, (1,)
    ids = []
    for p in pre.split("."):
        ids.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return main, (0, tuple(ids))


def semver_compare(a: str, b: str) -> int:
    ka, kb = _semver_key(a), _semver_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def _apk_key(v: str):
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:-r(\d+))?", v.strip())
    if not m:
        raise ValueError(f"not an apk version: {v!r}")
    rank = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "": 4, "cvs": 5, "svn": 5, "git": 5, "hg": 5, "p": 6}
    suf = [(rank[s.rstrip("0123456789")], int(s.lstrip("abcdefghijklmnopqrstuvwxyz") or 0))
           for s in m.group(3).split("_")[1:]] or [(4, 0)]
    return tuple(int(n) for n in m.group(1).split(".")), m.group(2), suf, int(m.group(4) or 0)


def apk_compare(a: str, b: str) -> int:
    ka, kb = _apk_key(a), _apk_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def compare(ecosystem: str, a: str, b: str) -> int:
    base = ecosystem.split(":", 1)[0]
    if base in ("Debian", "Ubuntu"):
        return dpkg_compare(a, b)
    if base == "PyPI":
        return pep440_compare(a, b)
    if base == "Alpine":
        return apk_compare(a, b)
    return semver_compare(a, b)
