"""Attacks on ``pallet scan``: hostile image trees (truncated databases, bad JSON, metadata
without a version, symlink loops, links pointing out of the image at host files) and hostile
OSV data. Each is a warning naming the file, the scan goes on, nothing outside the image is
read, and the image is unchanged."""

from __future__ import annotations

import io
import json
import os
import zipfile

import images
from conftest import mounts_under
from test_scan import GHSA_X84V, _scan, tree_digest, write_records
from test_storage import StoreCLI


def _hostile_layers(host_dir: str) -> list[dict]:
    return [
        {"usr/lib/os-release": 'ID=debian\nVERSION_ID="12"\n',
         # an absolute link climbing out: inside the image it is /tmp/...: missing, so the
         # fallback /usr/lib/os-release is read, never the host's file
         "etc/os-release": {"type": "symlink", "target": f"../../../../..{host_dir}/os-release"},
         "var/lib/dpkg/status": "Package: good\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: all\n\n"
                                "Package: cut\nStatus: install ok installed\nArchi",
         "app/node_modules/bad/package.json": "{not json",
         "app/node_modules/deep/package.json": "[" * 100000,
         "app/node_modules/loop/package.json": {"type": "symlink", "target": "package.json"},
         "app/node_modules/out/package.json": {"type": "symlink", "target": f"{host_dir}/package.json"},
         "app/node_modules/dirloop": {"type": "symlink", "target": "../node_modules"},
         "app/node_modules/ok/package.json": '{"name": "ok", "version": "1.0.0"}',
         "usr/lib/python3/dist-packages/nover-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: nover\n\n",
         "usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA":
             "Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n\n",
         # a dist-info that is a link to a host directory holding a METADATA: never walked
         "usr/lib/python3/dist-packages/evil-6.6.dist-info": {"type": "symlink", "target": host_dir},
         "lib/apk/db/installed": "P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:noversion\n\n"},
    ]


def test_hostile_tree_warns_and_goes_on(tmp_path):
    host_dir = str(tmp_path / "host")
    os.makedirs(host_dir)
    with open(os.path.join(host_dir, "os-release"), "w") as f:
        f.write("ID=hostile\n")
    with open(os.path.join(host_dir, "package.json"), "w") as f:
        f.write('{"name": "evil", "version": "6.6.6"}')
    with open(os.path.join(host_dir, "METADATA"), "w") as f:
        f.write("Name: evil\nVersion: 6.6\n\n")
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=_hostile_layers(host_dir))
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{layout}:latest").stdout.strip()
        mnt = store("image", "mount", image_id).stdout.strip()
        before = tree_digest(mnt)
        p = _scan(store, "--format", "json", image_id)
        r = json.loads(p.stdout)["results"][0]
        names = {(q["type"], q["name"]) for q in r["packages"]}
        assert names == {("deb", "good"), ("npm", "ok"), ("pypi", "requests"), ("apk", "musl")}
        assert r["os"]["ID"] == "debian"
        warned = {w["file"] for w in r["warnings"]}
        assert {"/var/lib/dpkg/status", "/app/node_modules/bad/package.json", "/app/node_modules/deep/package.json",
                "/usr/lib/python3/dist-packages/nover-1.0.dist-info/METADATA", "/lib/apk/db/installed",
                "/app/node_modules/loop/package.json", "/app/node_modules/out/package.json"} <= warned
        assert "warning: /app/node_modules/deep/package.json: not JSON" in p.stderr
        assert "evil" not in p.stdout and "hostile" not in p.stdout
        assert "Traceback" not in p.stderr
        assert tree_digest(mnt) == before
        store("image", "umount", image_id)
        assert mounts_under(store.root) == []
    finally:
        store.cleanup()


def test_hostile_osv_data_warns_and_goes_on(tmp_path):
    d = tmp_path / "osv"
    write_records(d, GHSA_X84V)
    (d / "bad.json").write_text("{")
    (d / "deep.json").write_text("[" * 100000)
    (d / "id.json").write_text(json.dumps({"id": 5}))
    (d / "ranges.json").write_text(json.dumps({"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI",
                                                                                      "name": "requests"},
                                                                          "ranges": "no"}]}))
    (d / "events.json").write_text(json.dumps({"id": "X-2", "affected": [{"ranges": [{"events": [{"fixed": 3}]}]}]}))
    # valid types, but a version PyPI cannot parse: a warning when it is evaluated
    (d / "version.json").write_text(json.dumps({"id": "X-3", "affected": [{
        "package": {"ecosystem": "PyPI", "name": "requests"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not a version!"}]}]}]}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.json", json.dumps(dict(GHSA_X84V, id="GHSA-zip-ok")))
        z.writestr("broken.json", b"\x00\xff not json")
    zpath = tmp_path / "PyPI.zip"
    zpath.write_bytes(buf.getvalue())
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[{"usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA":
                                        "Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n\n"}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = store("scan", "db", "import", str(d), str(zpath))
        assert "imported 3 records" in p.stdout
        for name in ("bad.json", "deep.json", "id.json", "ranges.json", "events.json"):
            assert any(x.startswith("warning: ") and f"/{name}: " in x for x in p.stderr.splitlines()), name
        assert f"{zpath}:broken.json" in p.stderr
        assert "field affected[0].ranges: not a list" in p.stderr and "field id:" in p.stderr
        p = _scan(store, "--format", "json", f"oci:{layout}:latest")
        r = json.loads(p.stdout)["results"][0]
        assert {f["id"] for f in r["vulnerabilities"]} == {"GHSA-x84v-xcm2-53pg", "GHSA-zip-ok"}
        assert "warning: OSV record X-3: cannot be evaluated for requests 2.19.0" in p.stderr
        # a missing path or a broken zip: the import fails, one line, 125
        p = store("scan", "db", "import", str(tmp_path / "nope"), check=False)
        assert p.returncode == 125 and p.stderr.count("\n") == 1 and "nope" in p.stderr
        (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04garbage")
        p = store("scan", "db", "import", str(tmp_path / "fake.zip"), check=False)
        assert p.returncode == 125 and "fake.zip" in p.stderr and "Traceback" not in p.stderr
    finally:
        store.cleanup()


def test_executables_that_lie_about_their_sections(tmp_path):
    import struct

    # a 64-bit ELF header whose section table lies beyond the file; one whose names table does;
    # one that claims a .go.buildinfo section far larger than the file
    lie_table = bytearray(b"\x7fELF\x02\x01\x01" + bytes(57))
    struct.pack_into("<Q", lie_table, 0x28, 1 << 40)
    struct.pack_into("<HHH", lie_table, 0x3A, 64, 3, 1)
    lie_names = bytearray(lie_table)
    struct.pack_into("<Q", lie_names, 0x28, 64)
    sh = bytearray(64 * 3)
    struct.pack_into("<IIQQQQ", sh, 64, 0, 3, 0, 0, 1 << 50, 14)  # names at a huge offset
    huge = bytearray(lie_names)
    sh2 = bytearray(64 * 3)
    names = b"\x00.go.buildinfo\x00"
    struct.pack_into("<IIQQQQ", sh2, 64, 0, 3, 0, 0, 64 + 192, len(names))
    struct.pack_into("<IIQQQQ", sh2, 128, 1, 1, 0, 0, 10, 1 << 30)  # .go.buildinfo: 1 GiB
    layers = [{"bin/lie-table": {"type": "file", "data": bytes(lie_table), "mode": 0o755},
               "bin/lie-names": {"type": "file", "data": bytes(lie_names) + bytes(sh), "mode": 0o755},
               "bin/lie-size": {"type": "file", "data": bytes(huge) + bytes(sh2) + names, "mode": 0o755},
               "bin/not-elf": {"type": "file", "data": b"#!/bin/sh\n" + bytes(100), "mode": 0o755}}]
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=layers)
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = _scan(store, "--format", "json", f"oci:{layout}:latest")
        r = json.loads(p.stdout)["results"][0]
        assert r["packages"] == []
        warned = {w["file"]: w["message"] for w in r["warnings"]}
        assert set(warned) == {"/bin/lie-table", "/bin/lie-names", "/bin/lie-size"}, warned
        assert all(m.startswith("Go build info not read: ") for m in warned.values())
        assert "Traceback" not in p.stderr
    finally:
        store.cleanup()


def test_output_to_a_device_and_a_bad_results_dir(tmp_path):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[{"etc/motd": "hi\n"}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        _scan(store, "--output", "/dev/null", f"oci:{layout}:latest")
        assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
        (tmp_path / "afile").write_text("x")
        p = _scan(store, "--results-dir", str(tmp_path / "afile"), f"oci:{layout}:latest", rc=125)
        assert p.stderr.count("\n") == 1 and "results directory" in p.stderr and "afile" in p.stderr
    finally:
        store.cleanup()


def test_hostile_rpm_headers(tmp_path):
    import sqlite3
    import struct

    from pallet.scan.rpm import parse_header
    from test_scan import _rpm_db

    good_entry = struct.pack(">iIiI", 1000, 6, 0, 1)
    for blob in (b"", b"\x00\x00\x00\x01", struct.pack(">II", 0xFFFFFF, 0),
                 struct.pack(">II", 1, 4) + struct.pack(">iIiI", 1000, 6, 99, 1) + b"abc\x00",
                 struct.pack(">II", 1, 3) + good_entry + b"abc",
                 struct.pack(">II", 1, 2) + struct.pack(">iIiI", 1003, 4, 0, 1) + b"\x00\x01"):
        try:
            parse_header(blob)
        except ValueError:
            continue
        raise AssertionError(f"accepted {blob!r}")
    assert parse_header(struct.pack(">II", 1, 4) + good_entry + b"abc\x00") == {"name": "abc"}

    db = _rpm_db(tmp_path)
    con = sqlite3.connect(os.path.join(db, "rpmdb.sqlite"))
    with con:
        (hnum,) = con.execute("SELECT hnum FROM Packages ORDER BY hnum LIMIT 1").fetchone()
        con.execute("UPDATE Packages SET blob = ? WHERE hnum = ?", (struct.pack(">II", 1000, 1 << 30), hnum))
    con.close()
    files = {}
    for n in os.listdir(db):
        with open(os.path.join(db, n), "rb") as f:
            files[f"usr/lib/sysimage/rpm/{n}"] = f.read()
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[files])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = _scan(store, "--format", "json", f"oci:{layout}:latest")
        r = json.loads(p.stdout)["results"][0]
        assert len([q for q in r["packages"] if q["type"] == "rpm"]) == 1
        assert f"warning: /usr/lib/sysimage/rpm/rpmdb.sqlite: package header {hnum}: header claims" in p.stderr
    finally:
        store.cleanup()
