"""Offline vulnerability data: OSV records (https://ossf.github.io/osv-schema/) imported into an
indexed sqlite database under the store root (``GRAPHROOT/scan/osv.sqlite``), and the matcher
that checks an inventory against it with each ecosystem's version order (:mod:`.versions`).

A record that is not valid JSON, not an object, or whose fields have the wrong types is a
warning naming the file (and member, in a zip) and the import goes on.
"""

from __future__ import annotations

import os
import time

from ..errors import ScanError
from . import severity, versions

#: the most bytes one record may have
RECORD_LIMIT = 16 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS vulns(id TEXT PRIMARY KEY, modified TEXT, summary TEXT, aliases TEXT, severity TEXT);
CREATE TABLE IF NOT EXISTS affected(vuln TEXT, ecosystem TEXT, release TEXT, name TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS affected_pkg ON affected(ecosystem, name);
CREATE INDEX IF NOT EXISTS affected_vuln ON affected(vuln);
"""


def db_path(store) -> str:
    return os.path.join(store.graphroot, "scan", "osv.sqlite")


def _connect(path: str, create: bool):
    import sqlite3

    if not create and not os.path.exists(path):
        return None
    try:
        if create:
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        db.executescript(_SCHEMA)
        return db
    except sqlite3.Error as e:
        raise ScanError(f"vulnerability database {path}: {e}") from None


def _check_record(doc) -> str | None:
    """Why ``doc`` is not a usable OSV record (None when it is)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        return "field id: missing or not a string"
    aff = doc.get("affected", [])
    if not isinstance(aff, list):
        return "field affected: not a list"
    for n, a in enumerate(aff):
        if not isinstance(a, dict):
            return f"field affected[{n}]: not an object"
        pkg = a.get("package")
        if pkg is not None and (not isinstance(pkg, dict) or not isinstance(pkg.get("ecosystem", ""), str)
                                or not isinstance(pkg.get("name", ""), str)):
            return f"field affected[{n}].package: not an object with string ecosystem and name"
        for key in ("ranges", "versions", "severity"):
            if not isinstance(a.get(key, []), list):
                return f"field affected[{n}].{key}: not a list"
        for r, rng in enumerate(a.get("ranges", [])):
            if not isinstance(rng, dict) or not isinstance(rng.get("events", []), list) \
                    or not all(isinstance(e, dict) and all(isinstance(v, str) for v in e.values())
                               for e in rng.get("events", [])):
                return f"field affected[{n}].ranges[{r}]: not an object with a list of string events"
        if not all(isinstance(v, str) for v in a.get("versions", [])):
            return f"field affected[{n}].versions: not a list of strings"
    for key in ("aliases", "upstream"):
        if not isinstance(doc.get(key, []), list) or not all(isinstance(v, str) for v in doc.get(key, [])):
            return f"field {key}: not a list of strings"
    if not isinstance(doc.get("severity", []), list):
        return "field severity: not a list"
    if not isinstance(doc.get("withdrawn", ""), str):
        return "field withdrawn: not a string"
    return None


def _sources(path: str, warn):
    """(name shown, bytes) of each record under ``path``: a file, a directory, or a zip."""
    if os.path.isdir(path):
        for d, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".json"):
                    yield from _sources(os.path.join(d, f), warn)
        return
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ScanError(f"{path}: {e.strerror}") from None
    if head.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.filename.endswith(".json") or info.is_dir():
                        continue
                    shown = f"{path}:{info.filename}"
                    if info.file_size > RECORD_LIMIT:
                        warn(shown, f"larger than {RECORD_LIMIT} bytes: skipped")
                        continue
                    try:
                        with z.open(info) as m:
                            yield shown, m.read(RECORD_LIMIT + 1)
                    except (OSError, zipfile.BadZipFile, ValueError) as e:
                        warn(shown, f"cannot be read: {e}")
        except zipfile.BadZipFile as e:
            raise ScanError(f"{path}: not a zip archive: {e}") from None
        return
    with open(path, "rb") as f:
        data = f.read(RECORD_LIMIT + 1)
    if len(data) > RECORD_LIMIT:
        warn(path, f"larger than {RECORD_LIMIT} bytes: skipped")
        return
    yield path, data


def import_records(store, paths: list[str], warn) -> int:
    """Import the OSV records under ``paths``; the number imported."""
    from .._std import json

    db = _connect(db_path(store), True)
    n = 0
    try:
        with db:
            for path in paths:
                for shown, data in _sources(path, warn):
                    try:
                        doc = json.loads(data)
                    except (ValueError, UnicodeDecodeError) as e:
                        warn(shown, f"not valid JSON: {e}")
                        continue
                    docs = doc if isinstance(doc, list) else [doc]
                    for d in docs:
                        why = _check_record(d)
                        if why:
                            warn(shown, f"not an OSV record: {why}")
                            continue
                        _put(db, d, lambda what, shown=shown, vid=d["id"]: warn(shown, f"{vid}: {what}"))
                        n += 1
            db.execute("INSERT OR REPLACE INTO meta VALUES('imported', ?)", (str(int(time.time())),))
    finally:
        db.close()
    return n


def _newer(a: str, b: str) -> bool:
    """Whether the RFC 3339 time ``a`` is later than ``b`` (False when either is not one)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) > datetime.fromisoformat(b.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return False


def _put(db, doc: dict, warn=None) -> None:
    """Store ``doc`` (each affected package's severity and CVSS score with it); ``warn(what)``
    for a severity vector that is not valid."""
    from .._std import json

    vid = doc["id"]
    row = db.execute("SELECT modified FROM vulns WHERE id = ?", (vid,)).fetchone()
    if row and _newer(row[0], str(doc.get("modified", ""))):
        return  # an older copy (a zip of last week after today's): the newer one stays
    db.execute("DELETE FROM affected WHERE vuln = ?", (vid,))
    if doc.get("withdrawn"):  # OSV: a withdrawn record is no longer valid: it (and an older copy) goes
        db.execute("DELETE FROM vulns WHERE id = ?", (vid,))
        return
    sev = "unknown"
    said: set[str] = set()

    def once(what: str) -> None:  # a record's bad vector is said once, not once per package
        if warn and what not in said:
            said.add(what)
            warn(what)

    for a in doc.get("affected", []):
        pkg = a.get("package") or {}
        eco, name = pkg.get("ecosystem", ""), pkg.get("name", "")
        if not eco or not name:
            continue
        base, _, release = eco.partition(":")
        s, cvss = severity.of_record(doc, a, once)
        if severity.rank(s) > severity.rank(sev):
            sev = s
        data = {"ranges": a.get("ranges", []), "versions": a.get("versions", []), "severity": s}
        if cvss:
            data["cvss"] = cvss
        db.execute("INSERT INTO affected VALUES(?,?,?,?,?)", (vid, base, release, name, json.dumps(data)))
    db.execute("INSERT OR REPLACE INTO vulns VALUES(?,?,?,?,?)",
               (vid, str(doc.get("modified", "")), str(doc.get("summary", "") or doc.get("details", ""))[:500],
                json.dumps(list(dict.fromkeys(doc.get("aliases", []) + doc.get("upstream", [])))), sev))


def status(store) -> dict | None:
    """What is loaded: records per ecosystem, when imported, the newest record; None: no database."""
    db = _connect(db_path(store), False)
    if db is None:
        return None
    try:
        total = db.execute("SELECT COUNT(*) FROM vulns").fetchone()[0]
        if not total:
            return None
        per = dict(db.execute("SELECT ecosystem, COUNT(DISTINCT vuln) FROM affected GROUP BY ecosystem ORDER BY 1"))
        imported = db.execute("SELECT value FROM meta WHERE key='imported'").fetchone()
        newest = db.execute("SELECT MAX(modified) FROM vulns").fetchone()[0]
        return {"path": db_path(store), "records": total, "ecosystems": per,
                "imported": int(imported[0]) if imported else None, "newest_modified": newest}
    finally:
        db.close()


def _affected(eco: str, version: str, data: dict) -> tuple[bool, str]:
    """(is ``version`` affected, the fixed version to report) per OSV's evaluation of events;
    ValueError when a version in the record (or the installed one) is not of the ecosystem.
    A version in the ``versions`` list is affected whatever the ranges say; its fix is still
    read from the ranges (the first ``fixed`` event after it): OSV's Debian records list every
    affected version and give the fix only as an event."""
    hit, fixed = _in_ranges(eco, version, data)
    if hit or version not in data.get("versions", []):
        return hit, fixed
    later = [e["fixed"] for rng in data.get("ranges", []) if rng.get("type") in ("ECOSYSTEM", "SEMVER")
             for e in rng.get("events", []) if "fixed" in e and versions.compare(eco, e["fixed"], version) > 0]
    import functools

    return True, min(later, key=functools.cmp_to_key(lambda a, b: versions.compare(eco, a, b)), default="")


def _in_ranges(eco: str, version: str, data: dict) -> tuple[bool, str]:
    for rng in data.get("ranges", []):
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        events = rng.get("events", [])
        affected, fixed = False, ""

        def ge(a, b):
            return b == "0" or versions.compare(eco, a, b) >= 0

        # events in version order ("0" first), as OSV's evaluation prescribes
        def key(e):
            v = next(iter(e.values()), "0")
            return v
        import functools

        evs = sorted(events, key=functools.cmp_to_key(
            lambda x, y: -1 if key(x) == "0" and key(y) != "0" else 1 if key(y) == "0" and key(x) != "0"
            else (0 if key(x) == key(y) else versions.compare(eco, key(x), key(y)))))
        for e in evs:
            if "introduced" in e and ge(version, e["introduced"]):
                affected, fixed = True, ""
            elif "fixed" in e and versions.compare(eco, version, e["fixed"]) >= 0:
                affected = False
            elif "last_affected" in e and versions.compare(eco, version, e["last_affected"]) > 0:
                affected = False
            elif "fixed" in e and affected and not fixed:
                fixed = e["fixed"]
        if affected:
            return True, fixed
    return False, ""


def _release_applies(eco: str, rel: str, release: str) -> bool:
    """Whether a record's release (the part of its ecosystem after the first ``:``) is the
    image's ``VERSION_ID``: ``Debian:12`` for 12, ``Alpine:v3.18`` for 3.18.4,
    ``Ubuntu:22.04:LTS`` for 22.04. Ubuntu Pro's (``Ubuntu:Pro:18.04:LTS``) fixes are for
    subscribed machines' ESM packages: not applied to an image."""
    if not rel or not release or eco not in ("Debian", "Ubuntu", "Alpine"):
        return True
    if eco == "Ubuntu":
        parts = rel.split(":")
        if parts[0] == "Pro":
            return False
        rel = parts[0]
    elif eco == "Alpine":
        rel = rel[1:] if rel[:1] == "v" else rel
    return rel == release or release.startswith(rel + ".") or rel.startswith(release + ".")


def match(store, osr: dict, packages: list[dict], warn) -> list[dict] | None:
    """The findings for ``packages``; None when there is no database."""
    from .._std import json

    if status(store) is None:
        return None
    db = _connect(db_path(store), False)
    release = osr.get("VERSION_ID", "")
    found = []
    try:
        for p in packages:
            names = {p["name"], p.get("source") or p["name"]}
            eco = p["ecosystem"]
            for nm in sorted(names):
                rows = db.execute("SELECT a.vuln, a.release, a.data, v.aliases, v.summary FROM affected a JOIN vulns v "
                                  "ON v.id = a.vuln WHERE a.ecosystem = ? AND a.name = ?",
                                  (eco, nm if eco != "PyPI" else nm)).fetchall()
                if eco == "PyPI" and not rows:
                    rows = db.execute("SELECT a.vuln, a.release, a.data, v.aliases, v.summary FROM affected a "
                                      "JOIN vulns v ON v.id = a.vuln WHERE a.ecosystem = ? AND lower(a.name) = ?",
                                      (eco, nm.lower())).fetchall()
                for vid, rel, data, aliases, summary in rows:
                    if not _release_applies(eco, rel, release):
                        continue
                    # Debian records name source packages, versioned as the source package is
                    version = p.get("source_version") if nm == p.get("source") and nm != p["name"] else p["version"]
                    if nm != p["name"] and eco not in ("Debian", "Ubuntu", "Alpine"):
                        continue
                    rec = json.loads(data)
                    try:
                        hit, fixed = _affected(eco, version, rec)
                    except ValueError as e:
                        warn(f"OSV record {vid}", f"cannot be evaluated for {p['name']} {version}: {e}")
                        continue
                    if hit:
                        f = {"id": vid, "aliases": json.loads(aliases), "package": p["name"],
                             "source": p.get("source"), "ecosystem": eco, "installed": p["version"],
                             "fixed": fixed, "severity": rec.get("severity", "unknown"),
                             "summary": summary, "layer": p.get("layer"), "path": p.get("path")}
                        if rec.get("cvss"):
                            f["cvss"] = rec["cvss"]
                        found.append(f)
    finally:
        db.close()
    uniq = {}
    for f in found:
        uniq.setdefault((f["id"], f["package"], f["installed"]), f)
    return sorted(uniq.values(), key=lambda f: (-severity.rank(f["severity"]), f["package"], f["id"]))
