"""Matching against OSV records as OSV publishes them (tests/scan/osv/README.md says where each
file comes from; they are byte-for-byte the published JSON), and Debian's version order checked
against ``dpkg --compare-versions`` on real versions: every version those records name and every
version of a package installed on this (Debian) machine."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess

import pytest

import images
from conftest import need
from test_scan import _scan
from test_storage import StoreCLI

OSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "osv")


def _record(ident: str) -> dict:
    with open(os.path.join(OSV, ident + ".json")) as f:
        return json.load(f)


def _debian_versions_of_records() -> set[str]:
    out = set()
    for name in os.listdir(OSV):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(OSV, name)) as f:
            doc = json.load(f)
        for a in doc.get("affected", []):
            if not a.get("package", {}).get("ecosystem", "").startswith("Debian"):
                continue
            out.update(a.get("versions", []))
            for r in a.get("ranges", []):
                out.update(v for e in r.get("events", []) for v in e.values() if v != "0")
    return out


def test_debian_order_on_real_versions_is_dpkgs():
    """Sorted by our order, each neighbour pair is in dpkg's order too (so the whole order is
    dpkg's, an order being transitive), and so are random pairs of the same versions."""
    from pallet.scan.versions import dpkg_compare

    dpkg = need("dpkg")
    host = subprocess.run([need("dpkg-query"), "-W", "-f", "${Version}\\n"], capture_output=True, text=True,
                          check=True).stdout.split()
    record_versions = _debian_versions_of_records()
    assert len(record_versions) >= 60
    versions = sorted(record_versions | set(host), key=functools.cmp_to_key(dpkg_compare))
    assert len(versions) >= 200

    def theirs(a: str, b: str) -> int:
        if subprocess.run([dpkg, "--compare-versions", a, "lt", b]).returncode == 0:
            return -1
        return 0 if subprocess.run([dpkg, "--compare-versions", a, "eq", b]).returncode == 0 else 1

    rnd = random.Random(12)
    pairs = list(zip(versions, versions[1:])) + [tuple(rnd.sample(versions, 2)) for _ in range(100)]
    wrong = [(a, b) for a, b in pairs if dpkg_compare(a, b) != theirs(a, b)]
    assert not wrong


STRETCH_STATUS = "".join(
    f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\n{src}Version: {version}\n\n"
    for name, src, version in (
        ("libssl1.1", "Source: openssl\n", "1.1.0l-1~deb9u5"),     # in DLA-3008-1's versions, before its fix
        ("openssl", "", "1.1.0l-1~deb9u6"),                         # exactly the fix: not affected
        ("tzdata", "", "2021a-0+deb9u3"),                           # DLA-3051-1, fixed in 2021a-0+deb9u4
        ("dpkg", "", "1.18.26"),                                    # DLA-3022-1's fix: not affected
        ("libdpkg-perl", "Source: dpkg\n", "1.18.25"),              # DLA-3022-1 through its source
    ))


def _layout(tmp_path, name: str, version_id: str, status: str = "") -> str:
    layout = str(tmp_path / name)
    images.make_layout(layout, layers=[{
        "etc/os-release": f'ID=debian\nVERSION_ID="{version_id}"\n',
        "var/lib/dpkg/status": STRETCH_STATUS + status,
        "app/node_modules/ansi-html/package.json": '{"name": "ansi-html", "version": "0.0.7"}',
        "app/node_modules/x/node_modules/ansi-html/package.json": '{"name": "ansi-html", "version": "0.0.8"}'}])
    return layout


def test_published_debian_and_npm_records_give_their_findings(tmp_path):
    busybox = "Package: busybox\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.35.0-4+deb12u1\n"
    stretch, bookworm = _layout(tmp_path, "stretch", "9", busybox), _layout(tmp_path, "bookworm", "12", busybox)
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("scan", "db", "import", *(os.path.join(OSV, n + ".json") for n in (
            "DLA-3008-1", "DLA-3022-1", "DLA-3051-1", "GHSA-whgm-jr23-g3j9", "DEBIAN-CVE-2026-88841")))
        assert "records: 5" in store("scan", "db", "status").stdout
        r = json.loads(_scan(store, "--format", "json", f"oci:{stretch}:latest").stdout)["results"][0]
        got = {(f["id"], f["package"], f["installed"], f["fixed"]) for f in r["vulnerabilities"]}
        assert got == {("DLA-3008-1", "libssl1.1", "1.1.0l-1~deb9u5", "1.1.0l-1~deb9u6"),
                       ("DLA-3051-1", "tzdata", "2021a-0+deb9u3", "2021a-0+deb9u4"),
                       ("DLA-3022-1", "libdpkg-perl", "1.18.25", "1.18.26"),
                       ("GHSA-whgm-jr23-g3j9", "ansi-html", "0.0.7", "0.0.8")}
        by_id = {f["id"]: f for f in r["vulnerabilities"]}
        assert "CVE-2022-1292" in by_id["DLA-3008-1"]["aliases"]
        assert by_id["GHSA-whgm-jr23-g3j9"]["severity"] == "high"
        assert by_id["GHSA-whgm-jr23-g3j9"]["path"] == "/app/node_modules/ansi-html/package.json"
        # the same packages in an image saying Debian 12: the DLAs are for Debian 9 only, the
        # busybox record for Debian 12 only ("unimportant" is low)
        r = json.loads(_scan(store, "--format", "json", f"oci:{bookworm}:latest").stdout)["results"][0]
        assert sorted((f["id"], f["severity"], f["fixed"]) for f in r["vulnerabilities"]) == [
            ("DEBIAN-CVE-2026-88841", "low", ""), ("GHSA-whgm-jr23-g3j9", "high", "0.0.8")]
    finally:
        store.cleanup()


def test_published_ubuntu_and_alpine_records_apply_to_their_release(tmp_path):
    """USN-8611-1 (glibc; ecosystems ``Ubuntu:22.04:LTS``, ``Ubuntu:24.04:LTS``...) and
    ALPINE-CVE-2025-26519 (musl; ``Alpine:v3.16`` to ``v3.24``, each its own fix), as OSV.dev
    serves them: each applies to the image's own release only."""
    status = "".join(f"Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: {v}\n\n"
                     for n, v in (("libc6", "2.35-0ubuntu3.13"), ("libc-bin", "2.35-0ubuntu3.14")))
    apk = "P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n"
    layouts = {}
    for name, osr, files in (
            ("jammy", 'ID=ubuntu\nVERSION_ID="22.04"\n', {"var/lib/dpkg/status": status}),
            ("noble", 'ID=ubuntu\nVERSION_ID="24.04"\n', {"var/lib/dpkg/status": status}),
            ("alpine318", "ID=alpine\nVERSION_ID=3.18.4\n", {"lib/apk/db/installed": apk}),
            ("alpine319", "ID=alpine\nVERSION_ID=3.19.1\n", {"lib/apk/db/installed": apk})):
        layouts[name] = str(tmp_path / name)
        images.make_layout(layouts[name], layers=[dict(files, **{"etc/os-release": osr})])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("scan", "db", "import", os.path.join(OSV, "USN-8611-1.json"), os.path.join(OSV, "ALPINE-CVE-2025-26519.json"))

        def findings(name):
            r = json.loads(_scan(store, "--format", "json", f"oci:{layouts[name]}:latest").stdout)["results"][0]
            return [(f["id"], f["package"], f["installed"], f["fixed"]) for f in r["vulnerabilities"]]

        assert findings("jammy") == [("USN-8611-1", "libc6", "2.35-0ubuntu3.13", "2.35-0ubuntu3.14")]
        # 24.04's entry is for 2.39 versions: 2.35 is below its fix too, but it is 22.04's package
        assert findings("noble") == [("USN-8611-1", "libc-bin", "2.35-0ubuntu3.14", "2.39-0ubuntu8.8"),
                                     ("USN-8611-1", "libc6", "2.35-0ubuntu3.13", "2.39-0ubuntu8.8")]
        assert findings("alpine318") == [("ALPINE-CVE-2025-26519", "musl", "1.2.4-r2", "1.2.4-r3")]
        # severities: Ubuntu's priority of the USN's CVEs (all "medium"); the Alpine record's CVSS
        # 3.1 vector scores 7.0, "high"
        r = json.loads(_scan(store, "--format", "json", f"oci:{layouts['jammy']}:latest").stdout)["results"][0]
        assert [f["severity"] for f in r["vulnerabilities"]] == ["medium"]
        r = json.loads(_scan(store, "--format", "json", f"oci:{layouts['alpine318']}:latest").stdout)["results"][0]
        assert [f["severity"] for f in r["vulnerabilities"]] == ["high"]
        assert findings("alpine319") == [("ALPINE-CVE-2025-26519", "musl", "1.2.4-r2", "1.2.4_git20230717-r5")]
    finally:
        store.cleanup()


def test_a_withdrawn_record_gives_no_finding_and_removes_its_older_copy(tmp_path):
    """DEBIAN-CVE-2026-5358 (glibc, withdrawn two days after it was published): imported, it
    finds nothing; the same record before its withdrawal (the field taken out) finds libc6, and
    importing the withdrawn one afterwards removes it."""
    withdrawn = _record("DEBIAN-CVE-2026-5358")
    live = {k: v for k, v in withdrawn.items() if k != "withdrawn"}
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "r.json").write_text(json.dumps(live))
    layout = str(tmp_path / "bullseye")
    images.make_layout(layout, layers=[{"etc/os-release": 'ID=debian\nVERSION_ID="11"\n', "var/lib/dpkg/status":
                                        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n"
                                        "Source: glibc\nVersion: 2.31-13+deb11u11\n"}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        def ids():
            r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
            return [f["id"] for f in r["vulnerabilities"]]

        store("scan", "db", "import", str(tmp_path / "live"), os.path.join(OSV, "DLA-3051-1.json"))
        assert ids() == ["DEBIAN-CVE-2026-5358"]
        store("scan", "db", "import", os.path.join(OSV, "DEBIAN-CVE-2026-5358.json"))
        assert ids() == []
    finally:
        store.cleanup()


def test_an_older_copy_of_a_record_does_not_replace_a_newer_one(tmp_path):
    """DLA-3008-1 as published, then a copy dated before it saying openssl was fixed earlier: the
    published one stays; a copy dated after it replaces it."""
    stretch = _layout(tmp_path, "stretch", "9")
    published = _record("DLA-3008-1")

    def copy(modified: str, d: str) -> str:
        doc = json.loads(json.dumps(published))
        doc["modified"] = modified
        doc["affected"][0]["ranges"][0]["events"][1]["fixed"] = "1.1.0l-1~deb9u5"
        doc["affected"][0]["versions"] = []
        (tmp_path / d).mkdir()
        (tmp_path / d / "DLA-3008-1.json").write_text(json.dumps(doc))
        return str(tmp_path / d)

    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        def fixes():
            r = json.loads(_scan(store, "--format", "json", f"oci:{stretch}:latest").stdout)["results"][0]
            return [(f["package"], f["fixed"]) for f in r["vulnerabilities"] if f["id"] == "DLA-3008-1"]

        store("scan", "db", "import", os.path.join(OSV, "DLA-3008-1.json"))
        store("scan", "db", "import", copy("2022-05-14T00:00:00Z", "older"))
        assert fixes() == [("libssl1.1", "1.1.0l-1~deb9u6")]
        store("scan", "db", "import", copy("2026-12-01T00:00:00.5Z", "newer"))
        assert fixes() == []
    finally:
        store.cleanup()


def test_a_cvss_v4_record_gives_its_score_in_every_format(tmp_path):
    """GHSA-2g4f-4pwh-qvx6 (ajv, as OSV.dev serves it): its only vector is CVSS v4.0 with a threat
    metric (CVSS-BT 5.5, medium, as GitHub's "MODERATE" says). Two records made up here beside it:
    one whose only vector is v4.0 (9.3: critical, from the score alone), one whose vector is not
    valid (a warning at import naming the record; severity unknown). The table, JSON, SARIF and
    CycloneDX (validated) carry the score; --fail-on critical fails on the v4.0 score."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    import jsonschema
    from test_scan import _sarif_schema

    ghsa = _record("GHSA-2g4f-4pwh-qvx6")
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:L/SC:N/SI:N/SA:N/E:P"
    assert ghsa["severity"] == [{"type": "CVSS_V4", "score": v4}]
    affected = [{"package": {"ecosystem": "npm", "name": "ajv"},
                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "6.14.0"}]}]}]
    made = tmp_path / "made"
    made.mkdir()
    bad = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/AV:L"
    (made / "only-v4.json").write_text(json.dumps({"id": "TEST-ONLY-V4", "modified": "2026-12-01T00:00:00Z",
                                                    "affected": affected, "severity": [{"type": "CVSS_V4",
                                                    "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}))
    (made / "bad-v4.json").write_text(json.dumps({"id": "TEST-BAD-V4", "modified": "2026-12-01T00:00:00Z",
                                                   "affected": affected, "severity": [{"type": "CVSS_V4", "score": bad}]}))
    layout = str(tmp_path / "app")
    images.make_layout(layout, layers=[{
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
        "app/node_modules/ajv/package.json": '{"name": "ajv", "version": "6.12.6"}',
        "app/node_modules/x/node_modules/ajv/package.json": '{"name": "ajv", "version": "8.18.0"}'}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = store("scan", "db", "import", os.path.join(OSV, "GHSA-2g4f-4pwh-qvx6.json"), str(made))
        assert f"{made}/bad-v4.json: TEST-BAD-V4: severity[0] CVSS_V4 '{bad}': duplicate metric AV" in p.stderr
        assert p.stderr.count("warning") == 1, p.stderr
        image_id = store("pull", "-q", f"oci:{layout}:latest").stdout.strip()

        r = json.loads(_scan(store, "--format", "json", image_id).stdout)["results"][0]
        got = {f["id"]: f for f in r["vulnerabilities"]}
        assert sorted((f["id"], f["installed"], f["severity"]) for f in got.values()) == [
            ("GHSA-2g4f-4pwh-qvx6", "6.12.6", "medium"), ("TEST-BAD-V4", "6.12.6", "unknown"),
            ("TEST-ONLY-V4", "6.12.6", "critical")]
        assert got["GHSA-2g4f-4pwh-qvx6"]["cvss"] == {"version": "4.0", "vector": v4, "score": 5.5,
                                                      "severity": "medium", "nomenclature": "CVSS-BT"}
        assert got["TEST-ONLY-V4"]["cvss"]["score"] == 9.3 and "cvss" not in got["TEST-BAD-V4"]

        table = _scan(store, image_id).stdout
        row = next(ln.split() for ln in table.splitlines() if ln.startswith("GHSA-2g4f-4pwh-qvx6"))
        assert row[:5] == ["GHSA-2g4f-4pwh-qvx6", "medium", "5.5", "v4.0", "ajv"]
        assert next(ln for ln in table.splitlines() if ln.startswith("TEST-BAD-V4")).split()[1:3] == ["unknown", "-"]

        doc = json.loads(_scan(store, "--format", "sarif", image_id).stdout)
        jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
        run = doc["runs"][0]
        rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
        levels = {res["ruleId"]: res["level"] for res in run["results"]}
        assert (levels["GHSA-2g4f-4pwh-qvx6"], rules["GHSA-2g4f-4pwh-qvx6"]["properties"]["security-severity"]) == \
            ("warning", "5.5")
        assert (levels["TEST-ONLY-V4"], rules["TEST-ONLY-V4"]["properties"]["security-severity"]) == ("error", "9.3")

        cdx = _scan(store, "--format", "cyclonedx", image_id).stdout
        assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(cdx) is None
        ratings = {v["id"]: v["ratings"] for v in json.loads(cdx)["vulnerabilities"]}
        assert ratings["GHSA-2g4f-4pwh-qvx6"] == [{"score": 5.5, "severity": "medium", "method": "CVSSv4",
                                                   "vector": v4}]
        assert ratings["TEST-BAD-V4"] == [{"severity": "unknown"}]

        _scan(store, "--fail-on", "critical", image_id, rc=3)
    finally:
        store.cleanup()
