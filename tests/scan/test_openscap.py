"""``pallet scan --scanner openscap``: the truth is Debian's ``oscap`` run by hand with its
probes rooted in the same mounted tree (as ``oscap-chroot`` runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

import images
from conftest import mounts_under, need
from test_scan import _scan, add_layer, tree_digest
from test_storage import StoreCLI

CONTENT = "/usr/share/xml/scap/ssg/content"
STANDARD = "xccdf_org.ssgproject.content_profile_standard"
X = "{http://checklists.nist.gov/xccdf/1.2}"


#: two OVAL definitions over /etc/debian_version: "11" (the test image) and "12" (this host):
#: which one is true says whose files the probes read
OVAL = r"""<?xml version="1.0" encoding="UTF-8"?>
<oval_definitions xmlns="http://oval.mitre.org/XMLSchema/oval-definitions-5"
    xmlns:oval="http://oval.mitre.org/XMLSchema/oval-common-5"
    xmlns:ind="http://oval.mitre.org/XMLSchema/oval-definitions-5#independent">
  <generator>
    <oval:product_name>pallet tests</oval:product_name>
    <oval:schema_version>5.10</oval:schema_version>
    <oval:timestamp>2026-01-01T00:00:00</oval:timestamp>
  </generator>
  <definitions>
    <definition class="inventory" id="oval:io.pallet.test:def:1" version="1">
      <metadata><title>Debian 11</title><description>/etc/debian_version says 11</description></metadata>
      <criteria><criterion test_ref="oval:io.pallet.test:tst:1" comment="debian_version 11"/></criteria>
    </definition>
    <definition class="compliance" id="oval:io.pallet.test:def:2" version="1">
      <metadata><title>Debian 12</title><description>/etc/debian_version says 12</description></metadata>
      <criteria><criterion test_ref="oval:io.pallet.test:tst:2" comment="debian_version 12"/></criteria>
    </definition>
  </definitions>
  <tests>
    <ind:textfilecontent54_test check="all" check_existence="at_least_one_exists" comment="11" id="oval:io.pallet.test:tst:1" version="1">
      <ind:object object_ref="oval:io.pallet.test:obj:1"/>
      <ind:state state_ref="oval:io.pallet.test:ste:1"/>
    </ind:textfilecontent54_test>
    <ind:textfilecontent54_test check="all" check_existence="at_least_one_exists" comment="12" id="oval:io.pallet.test:tst:2" version="1">
      <ind:object object_ref="oval:io.pallet.test:obj:1"/>
      <ind:state state_ref="oval:io.pallet.test:ste:2"/>
    </ind:textfilecontent54_test>
  </tests>
  <objects>
    <ind:textfilecontent54_object id="oval:io.pallet.test:obj:1" version="1">
      <ind:filepath>/etc/debian_version</ind:filepath>
      <ind:pattern operation="pattern match">^(\d+)\.</ind:pattern>
      <ind:instance datatype="int">1</ind:instance>
    </ind:textfilecontent54_object>
  </objects>
  <states>
    <ind:textfilecontent54_state id="oval:io.pallet.test:ste:1" version="1">
      <ind:subexpression>11</ind:subexpression>
    </ind:textfilecontent54_state>
    <ind:textfilecontent54_state id="oval:io.pallet.test:ste:2" version="1">
      <ind:subexpression>12</ind:subexpression>
    </ind:textfilecontent54_state>
  </states>
</oval_definitions>
"""


def _need_content(name: str) -> str:
    need("oscap")
    path = os.path.join(CONTENT, name)
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: scripts/install.sh installs Debian's ssg-debian and ssg-debderived")
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


def test_openscap_rule_results_equal_oscap_by_hand(tmp_path, debian11_layout):
    content = _need_content("ssg-debian11-ds.xml")
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        image_id = store("pull", "-q", f"oci:{debian11_layout}:deb11").stdout.strip()
        mnt = store("image", "mount", image_id).stdout.strip()
        before = tree_digest(mnt)
        theirs = _by_hand(mnt, content, STANDARD, str(tmp_path / "hand-arf.xml"))
        assert "fail" in theirs.values() and "pass" in theirs.values()

        # one run: the table (data stream, profile, rules), --fail-on low (a rule failed), and the
        # results directory's scan.json (the JSON) compared with oscap's own results
        rd = str(tmp_path / "results")
        p = _scan(store, "--scanner", "openscap", "--fail-on", "low", "--results-dir", rd, image_id, rc=3)
        assert f"data stream {content}, profile {STANDARD}" in p.stdout
        assert "partition_for_home" in p.stdout and "Ensure /home Located On Separate Partition" in p.stdout
        (run,) = os.listdir(os.path.join(rd, "openscap"))
        d = os.path.join(rd, "openscap", run, image_id)
        assert {"arf.xml", "report.html", "scan.json", "oscap-xccdf.log"} <= set(os.listdir(d))
        with open(os.path.join(d, "scan.json")) as f:
            r = json.load(f)
        x = r["xccdf"]
        assert {q["id"]: q["result"] for q in x["rules"]} == theirs
        assert x["content"] == content and x["profile"] == STANDARD and r["results_dir"] == d
        assert x["summary"]["fail"] == list(theirs.values()).count("fail")
        assert ET.parse(os.path.join(d, "arf.xml")).getroot().tag.endswith("asset-report-collection")

        # a profile that does not exist: one line, 125
        p = _scan(store, "--scanner", "openscap", "--content", content, "--profile", "nosuch", image_id, rc=125)
        assert p.stderr.count("\n") == 1 and "oscap" in p.stderr
        # OVAL definitions alone: the probes read the image's /etc/debian_version, not the host's
        oval = tmp_path / "debian-version.xml"
        oval.write_text(OVAL)
        r = json.loads(_scan(store, "--scanner", "openscap", "--oval", str(oval), "--format", "json", image_id).stdout)
        o = r["results"][0]["oval"]
        assert "xccdf" not in r["results"][0]
        assert {q["id"]: (q["result"], q["class"]) for q in o["definitions"]} == {
            "oval:io.pallet.test:def:1": ("true", "inventory"), "oval:io.pallet.test:def:2": ("false", "compliance")}
        assert tree_digest(mnt) == before
        store("image", "umount", image_id)

        # a Debian 12 image: no matching content, said in one line (no silent "notapplicable")
        # naming the image's release, the data streams there are, and --content/--profile;
        # nothing is left in the results directory
        images.make_layout(str(tmp_path / "deb12"), layers=[{
            "etc/debian_version": "12.5\n",
            "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'}])
        plain = f"oci:{tmp_path}/deb12:latest"
        rd12 = str(tmp_path / "results12")
        p = _scan(store, "--scanner", "openscap", "--results-dir", rd12, plain, rc=125)
        have = sorted(n for n in os.listdir(CONTENT) if n.endswith("-ds.xml"))
        assert "ssg-debian11-ds.xml" in have and "ssg-debian12-ds.xml" not in have
        assert p.stderr.count("\n") == 1 and p.stderr.startswith(
            f"Error: no SCAP content for debian 12 (Debian GNU/Linux 12 (bookworm)): the data streams in {CONTENT} "
            f"are {', '.join(have)}; --content FILE (with --profile ID) runs a data stream you choose"), p.stderr
        assert not os.path.exists(os.path.join(rd12, "openscap")) or all(
            not os.listdir(os.path.join(rd12, "openscap", r)) for r in os.listdir(os.path.join(rd12, "openscap")))
        # the Debian 11 data stream chosen for it runs and says which data stream and profile it
        # used; its rules check their platform (Debian 11): each is notapplicable, as oscap says
        p = _scan(store, "--scanner", "openscap", "--content", content, "--profile", STANDARD, "--results-dir", rd12,
                  plain)
        assert f"openscap: data stream {content}, profile {STANDARD}" in p.stdout
        (run,) = os.listdir(os.path.join(rd12, "openscap"))
        (d12,) = os.listdir(os.path.join(rd12, "openscap", run))
        with open(os.path.join(rd12, "openscap", run, d12, "scan.json")) as f:
            x = json.load(f)["xccdf"]
        assert (x["content"], x["profile"]) == (content, STANDARD)
        assert len(x["rules"]) == len(theirs) and {q["result"] for q in x["rules"]} == {"notapplicable"}
        assert f"notapplicable {len(theirs)}" in p.stdout
        # no --profile: the content's default selection, empty in the SCAP Security Guide's: said
        p = _scan(store, "--scanner", "openscap", "--content", content, plain)
        assert f"openscap: data stream {content}, profile (the content default)" in p.stdout
        assert "no rules: the content's default selection is empty; choose a profile with --profile ID" in p.stdout
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
