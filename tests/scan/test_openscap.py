"""``pallet scan --scanner openscap``: the truth is Debian's ``oscap`` run by hand with its
probes rooted in the same mounted tree (as ``oscap-chroot`` runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import mounts_under, need
from test_scan import _scan, add_layer, tree_digest
from test_storage import StoreCLI

CONTENT = "/usr/share/xml/scap/ssg/content"
STANDARD = "xccdf_org.ssgproject.content_profile_standard"
X = "{http://checklists.nist.gov/xccdf/1.2}"


def _need_content(name: str) -> str:
    need("oscap")
    path = os.path.join(CONTENT, name)
    if not os.path.isfile(path):
        pytest.skip(f"{path} is missing (Debian's ssg-debian package)")
    return path


@pytest.fixture(scope="session")
def debian11_layout(debian_layout, tmp_path_factory):
    """The bookworm tree with a layer saying Debian 11 (the SCAP Security Guide has no Debian 12
    content: with this, the Debian 11 data stream's rules apply to a real Debian tree)."""
    work = tmp_path_factory.mktemp("deb11")
    layout = str(work / "layout")
    add_layer(debian_layout, layout, {
        "etc/debian_version": "11.7\n",
        "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\nVERSION_ID="11"\n'
                          'VERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'}, "deb11")
    return layout


def _by_hand(mnt: str, content: str, profile: str, out: str) -> dict:
    """Rule id -> result of ``oscap xccdf eval`` with the probes rooted in ``mnt``."""
    env = dict(os.environ, OSCAP_PROBE_ROOT=mnt)
    p = subprocess.run([need("oscap"), "xccdf", "eval", "--profile", profile, "--results-arf", out, content],
                       env=env, capture_output=True, text=True)
    assert p.returncode in (0, 2), p.stderr[-2000:]
    got = {}
    for _, el in ET.iterparse(out):
        if el.tag == X + "rule-result":
            got[el.get("idref")] = el.findtext(X + "result")
    return {k: v for k, v in got.items() if v != "notselected"}


def test_openscap_rule_results_equal_oscap_by_hand(tmp_path, debian11_layout, debian_layout):
    content = _need_content("ssg-debian11-ds.xml")
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{debian11_layout}:deb11").stdout.strip()
        mnt = store("image", "mount", image_id).stdout.strip()
        before = tree_digest(mnt)
        theirs = _by_hand(mnt, content, STANDARD, str(tmp_path / "hand-arf.xml"))
        assert "fail" in theirs.values() and "pass" in theirs.values()

        rd = str(tmp_path / "results")
        p = _scan(store, "--scanner", "openscap", "--format", "json", "--results-dir", rd, image_id)
        (r,) = json.loads(p.stdout)["results"]
        x = r["xccdf"]
        assert {q["id"]: q["result"] for q in x["rules"]} == theirs
        assert x["content"] == content and x["profile"] == STANDARD
        assert x["summary"]["fail"] == list(theirs.values()).count("fail")
        title = {q["id"]: q["title"] for q in x["rules"]}
        assert title["xccdf_org.ssgproject.content_rule_partition_for_home"] == "Ensure /home Located On Separate Partition"
        (run,) = os.listdir(os.path.join(rd, "openscap"))
        d = os.path.join(rd, "openscap", run, image_id)
        assert r["results_dir"] == d
        assert {"arf.xml", "report.html", "scan.json"} <= set(os.listdir(d))
        assert ET.parse(os.path.join(d, "arf.xml")).getroot().tag.endswith("asset-report-collection")

        # the table says which data stream and profile, and a failed rule fails --fail-on
        p = _scan(store, "--scanner", "openscap", "--fail-on", "low", image_id, rc=3)
        assert f"data stream {content}, profile {STANDARD}" in p.stdout
        assert "fail" in p.stdout and "partition_for_home" in p.stdout

        # an explicit profile and content; a profile that does not exist is one line, 125
        p = _scan(store, "--scanner", "openscap", "--content", content, "--profile", "nosuch", image_id, rc=125)
        assert p.stderr.count("\n") == 1 and "oscap" in p.stderr
        # OVAL definitions alone
        oval = os.path.join(CONTENT, "ssg-debian11-oval.xml")
        r = json.loads(_scan(store, "--scanner", "openscap", "--oval", oval, "--format", "json", image_id).stdout)
        o = r["results"][0]["oval"]
        assert "xccdf" not in r["results"][0] and o["definitions"] and {"true", "false"} <= set(o["summary"])
        assert tree_digest(mnt) == before
        store("image", "umount", image_id)

        # a Debian 12 image: no matching content, said in one line (no silent "notapplicable")
        plain = store("pull", "-q", f"oci:{debian_layout}:bookworm").stdout.strip()
        p = _scan(store, "--scanner", "openscap", plain, rc=125)
        assert "no SCAP content for debian 12" in p.stderr and p.stderr.count("\n") == 1
        # openscap's reports are not SBOMs
        p = _scan(store, "--scanner", "openscap", "--format", "spdx", plain, rc=125)
        assert "--format spdx" in p.stderr
        p = _scan(store, "--scanner", "nosuch", plain, rc=125)
        assert "no such scanner" in p.stderr
        assert mounts_under(store.root) == []
    finally:
        store.cleanup()


def test_scanner_list(tmp_path):
    store = StoreCLI(str(tmp_path / "store"), "vfs")
    p = _scan(store, "--list")
    names = [line.split()[0] for line in p.stdout.splitlines()[1:]]
    assert names[:2] == ["builtin", "openscap"]


@pytest.mark.unit
def test_oscap_listing_titles_on_a_terminal_and_a_pipe():
    from pallet.scan.openscap import _titles, pick_content

    assert _titles("Title\tA b\nRule\tr1\nResult\tpass\n") == {"r1": "A b"}
    assert _titles("--- Starting ---\n\nTitle\n\tA b\nRule\n\tr1\nResult\n\tfail\n\nTitle\n\tC\nRule\n\tr2\n") == {
        "r1": "A b", "r2": "C"}
    if os.path.isfile(os.path.join(CONTENT, "ssg-ubuntu2204-ds.xml")):
        assert pick_content({"ID": "ubuntu", "VERSION_ID": "22.04"}).endswith("/ssg-ubuntu2204-ds.xml")
