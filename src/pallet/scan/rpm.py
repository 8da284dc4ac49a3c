"""rpm databases: the sqlite rpmdb (``/usr/lib/sysimage/rpm/rpmdb.sqlite``,
``/var/lib/rpm/rpmdb.sqlite``), each ``Packages`` blob an rpm header (index entries and a data
store, every offset checked). The database and its write-ahead log are copied out of the image
first (read by fd, bounded) and opened there, so nothing is ever written into the image and
what the WAL holds is seen. Berkeley DB (``Packages``) and ndb (``Packages.db``) databases are
a note, not read."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile

DIRS = ("/usr/lib/sysimage/rpm", "/var/lib/rpm")
#: the largest rpmdb copied out of an image
DB_LIMIT = 512 << 20
_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1014: "license", 1022: "arch",
         1044: "sourcerpm"}


def parse_header(blob: bytes) -> dict:
    """The tags this scanner uses from an rpm header blob; ValueError when it is malformed."""
    if len(blob) < 8:
        raise ValueError("header shorter than 8 bytes")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il > 0x10000 or dl > 256 << 20 or 8 + il * 16 + dl > len(blob):
        raise ValueError(f"header claims {il} entries and {dl} data bytes in {len(blob)}")
    data = blob[8 + il * 16: 8 + il * 16 + dl]
    out: dict = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + i * 16)
        if tag not in _TAGS:
            continue
        if off < 0 or off >= len(data):
            raise ValueError(f"tag {tag}: offset {off} outside the data ({len(data)} bytes)")
        if typ in (6, 9, 8):  # STRING, I18NSTRING (first), STRING_ARRAY (first)
            end = data.find(b"\0", off)
            if end < 0:
                raise ValueError(f"tag {tag}: unterminated string")
            out[_TAGS[tag]] = data[off:end].decode("utf-8", "replace")
        elif typ == 4 and count >= 1:  # INT32
            if off + 4 > len(data):
                raise ValueError(f"tag {tag}: integer outside the data")
            out[_TAGS[tag]] = struct.unpack_from(">I", data, off)[0]
    return out


def packages(tree) -> tuple[str | None, list[dict]]:
    """(the database's path, its packages); (None, []) when the image has none."""
    for d in DIRS:
        names = tree.listdir(d)
        if "rpmdb.sqlite" in names:
            return f"{d}/rpmdb.sqlite", _sqlite(tree, f"{d}/rpmdb.sqlite")
        for old, kind in (("Packages", "Berkeley DB"), ("Packages.db", "ndb")):
            if old in names:
                tree.warn(f"{d}/{old}", f"an rpm database in {kind} format: not read (only the sqlite rpmdb is)")
                return None, []
    return None, []


def _sqlite(tree, path: str) -> list[dict]:
    import sqlite3

    work = tempfile.mkdtemp(prefix="rpmdb-", dir=getattr(tree, "scratch", None))
    try:
        for suffix in ("", "-wal"):
            data = tree.read(path + suffix, DB_LIMIT)
            if data is None:
                if not suffix:
                    return []
                continue
            with open(os.path.join(work, "rpmdb.sqlite" + suffix), "wb") as f:
                f.write(data)
            del data
        out = []
        try:
            db = sqlite3.connect(os.path.join(work, "rpmdb.sqlite"))
            try:
                rows = db.execute("SELECT hnum, blob FROM Packages").fetchall()
            finally:
                db.close()
        except sqlite3.Error as e:
            tree.warn(path, f"not a readable rpm sqlite database: {e}")
            return []
        for hnum, blob in rows:
            try:
                h = parse_header(bytes(blob))
            except (ValueError, TypeError) as e:
                tree.warn(path, f"package header {hnum}: {e}: skipped")
                continue
            if not h.get("name") or not h.get("version"):
                if h.get("name") != "gpg-pubkey":
                    tree.warn(path, f"package header {hnum}: no name or version: skipped")
                continue
            out.append(h)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
