"""The inventory of hostile and broken images (issue 9's "Bad input"): every broken file is a
warning naming it and the scan goes on; nothing outside the image is read. And apk's database as
its documented format writes it (https://wiki.alpinelinux.org/wiki/Apk_spec, "Installed
Database V2"), equal to what ``apk info`` would list: the test reads it back with its own small
parser of the same documented format."""

from __future__ import annotations

import json
import os
import struct
import subprocess

import images
from conftest import need
from test_scan import _scan, write_records
from test_storage import StoreCLI

#: /lib/apk/db/installed as apk-tools 2 writes it: one block per package, a blank line between;
#: C: checksum, P: name, V: version, A: arch, S: size, I: installed size, T: description,
#: U: url, L: licence, o: origin, m: maintainer, t: build time, c: commit, D: depends,
#: p: provides, r: replaces, then F: (directory) / R: (file) / a: M: Z: per file
APK_INSTALLED = """C:Q1Fk4U8M3ZsYzMbaVgh0iCQvfJIAs=
P:musl
V:1.2.4-r2
A:x86_64
S:407278
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1694024016
c:ade1dbca5a65a9fda3b5c8d43b4c4b3d6b7c5d8f
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1lGn5rIf1W0J2R8TdTbkZ3B4/CsU=
R:libc.musl-x86_64.so.1

C:Q1aaaaaaaaaaaaaaaaaaaaaaaaaaaa=
P:libcrypto3
V:3.1.4-r1
A:x86_64
S:1761042
I:4415488
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1699017014
D:so:libc.musl-x86_64.so.1
p:so:libcrypto.so.3=3
F:lib
R:libcrypto.so.3

C:Q1bbbbbbbbbbbbbbbbbbbbbbbbbbbb=
P:half-written
A:x86_64
"""


def _apk_documented(text: str) -> set:
    """(name, version, origin, licence) of every complete entry, per the documented format."""
    out = set()
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            k, _, v = line.partition(":")
            fields.setdefault(k, v)
        if "P" in fields and "V" in fields:
            out.add((fields["P"], fields["V"], fields.get("o", fields["P"]), fields.get("L", "")))
    return out


def _lying_elf() -> bytes:
    """A 64-bit little-endian ELF header whose section header table lies past the file's end."""
    h = bytearray(64)
    h[:6] = b"\x7fELF\x02\x01"
    h[6] = 1
    struct.pack_into("<HHI", h, 16, 2, 62, 1)            # ET_EXEC, x86-64, version
    struct.pack_into("<Q", h, 0x28, 1 << 40)            # e_shoff: far beyond the file
    struct.pack_into("<HHHHHH", h, 0x34, 64, 56, 0, 64, 3, 1)  # ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    return bytes(h) + b"\0" * 64


def test_broken_and_hostile_files_are_warnings_and_nothing_outside_is_read(tmp_path):
    # a file on the host at a path the image's links name: it must never be read
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    host_status = host_dir / "status"
    host_status.write_text("Package: read-from-the-host\nStatus: install ok installed\nVersion: 1.0\n")
    deep = "[" * 100_000 + "]" * 100_000
    # traps: the tools a scanner might be tempted to run, each leaving a mark on the host if run
    marker = tmp_path / "ran"
    trap = {"type": "file", "data": f'#!/bin/sh\necho "$0" >> {marker}\n'.encode(), "mode": 0o4755}
    traps = {p: trap for p in ("usr/bin/dpkg-query", "usr/bin/dpkg", "sbin/apk", "usr/bin/rpm", "usr/bin/python3",
                               "usr/bin/pip", "usr/bin/npm", "usr/bin/node", "usr/local/go/bin/go", "usr/bin/java",
                               "usr/bin/unzip", "bin/sh", "usr/bin/env", "app/node_modules/ok/install.sh")}
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[traps, {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
        # a status file cut short in the middle of its last paragraph
        "var/lib/dpkg/status": "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n"
                               "Version: 1:1.2.13.dfsg-1\n\nPackage: cut-short\nStatus: install ok installed\nArchi",
        # distroless entries: links out of the image (absolute and by ..), a loop, a FIFO-like
        # directory where a file should be
        "var/lib/dpkg/status.d/abs": {"type": "symlink", "target": str(host_status)},
        "var/lib/dpkg/status.d/rel": {"type": "symlink", "target": "../../../../../../../../.." + str(host_status)},
        "var/lib/dpkg/status.d/loop1": {"type": "symlink", "target": "loop2"},
        "var/lib/dpkg/status.d/loop2": {"type": "symlink", "target": "loop1"},
        "var/lib/dpkg/status.d/adir": {"type": "dir"},
        "lib/apk/db/installed": APK_INSTALLED,
        "app/node_modules/bad/package.json": '{"name": "bad", "version": ',
        "app/node_modules/deep/package.json": deep,
        "app/node_modules/list/package.json": "[1, 2]",
        "app/node_modules/ok/package.json": '{"name": "ok", "version": "1.0.0"}',
        "app/node_modules/escape/package.json": {"type": "symlink", "target": str(host_dir / "package.json")},
        "usr/lib/python3/dist-packages/noversion-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: noversion\n",
        "usr/lib/python3/dist-packages/noname.egg-info": "Metadata-Version: 1.1\nVersion: 1.0\n",
        "usr/lib/python3/dist-packages/looped.dist-info/METADATA": {"type": "symlink", "target": "METADATA"},
        "usr/local/bin/liar": {"type": "file", "data": _lying_elf(), "mode": 0o755},
        "usr/local/bin/loop": {"type": "symlink", "target": "/usr/local/bin/loop"},
    }])
    (host_dir / "package.json").write_text('{"name": "from-the-host", "version": "6.6.6"}')
    osv = tmp_path / "osv"
    write_records(osv, {"id": "OK-1", "affected": [{"package": {"ecosystem": "npm", "name": "ok"},
                                                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]})
    (osv / "broken.json").write_text('{"id": "BROKEN-1", "affected": [')
    (osv / "wrong-types.json").write_text('{"id": "WRONG-1", "affected": "npm"}')
    (osv / "bad-version.json").write_text(json.dumps({"id": "BADVER-1", "affected": [{
        "package": {"ecosystem": "npm", "name": "ok"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "not.a.version"}]}]}]}))
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        p = store("scan", "db", "import", str(osv), check=False)
        assert p.returncode == 0, p.stderr
        assert f"warning: {osv}/broken.json: not valid JSON" in p.stderr
        assert f"warning: {osv}/wrong-types.json: not an OSV record" in p.stderr
        assert "BROKEN-1" not in store("scan", "db", "status").stdout

        p = _scan(store, "--format", "json", f"oci:{layout}:latest")
        r = json.loads(p.stdout)["results"][0]
        got = {(q["type"], q["name"], q["version"]) for q in r["packages"]}
        assert got == {("deb", "zlib1g", "1:1.2.13.dfsg-1"), ("apk", "musl", "1.2.4-r2"),
                       ("apk", "libcrypto3", "3.1.4-r1"), ("npm", "ok", "1.0.0")}
        apk = {(q["name"], q["version"], q["source"], (q["licenses"] or [""])[0]) for q in r["packages"]
               if q["type"] == "apk"}
        assert apk == _apk_documented(APK_INSTALLED)
        purl = next(q["purl"] for q in r["packages"] if q["name"] == "libcrypto3")
        assert purl == "pkg:apk/debian/libcrypto3@3.1.4-r1?arch=x86_64&distro=debian-12&upstream=openssl"
        assert [f["id"] for f in r["vulnerabilities"]] == ["OK-1"]

        warned = {w["file"]: w["message"] for w in r["warnings"]}
        for path, what in (
                ("/var/lib/dpkg/status", "cut-short has no Version"),
                ("/var/lib/dpkg/status.d/loop1", "symlink loop"),
                ("/var/lib/dpkg/status.d/adir", "not a regular file"),
                ("/lib/apk/db/installed", "without V:"),
                ("/app/node_modules/bad/package.json", "not JSON"),
                ("/app/node_modules/deep/package.json", "not JSON"),
                ("/app/node_modules/list/package.json", "not a JSON object"),
                ("/app/node_modules/escape/package.json", "symlink"),
                ("/usr/lib/python3/dist-packages/noversion-1.0.dist-info/METADATA", "no Version"),
                ("/usr/lib/python3/dist-packages/noname.egg-info", "no Name"),
                ("/usr/lib/python3/dist-packages/looped.dist-info/METADATA", "symlink"),
                ("/usr/local/bin/liar", "Go build info not read"),
                ("OSV record BADVER-1", "cannot be evaluated")):
            assert what in warned.get(path, ""), (path, warned)
            assert f"warning: {path}: " in p.stderr
        # the links out of the image resolve inside it, where nothing is: no host file was read
        assert "read-from-the-host" not in p.stdout + p.stderr and "from-the-host" not in p.stdout
        assert "/var/lib/dpkg/status.d/abs" not in warned and "/var/lib/dpkg/status.d/rel" not in warned
        assert not marker.exists(), marker.read_text()  # nothing from the image was run
        assert {f["rule"] for f in r["policy"]} >= {"setuid"}  # the traps were seen, as files
    finally:
        store.cleanup()


def test_a_link_out_of_the_image_reads_the_images_own_file(tmp_path):
    """A link to a host path reads the image's file of that name (as chrooted), never the host's."""
    host = tmp_path / "host-status"
    host.write_text("Package: host-only\nStatus: install ok installed\nVersion: 9\n")
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[{
        "var/lib/dpkg/status": {"type": "symlink", "target": "../../../../../../" + str(host)},
        str(host).lstrip("/"): "Package: image-own\nStatus: install ok installed\nVersion: 1\n"}])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        assert [(q["name"], q["version"]) for q in r["packages"]] == [("image-own", "1")]
        assert os.path.exists(host)
    finally:
        store.cleanup()


def test_npm_packages_installed_by_npm_equal_npm_ls(tmp_path):
    """Packages npm itself installed (from the npm registry, as pip's come from PyPI in
    test_scan): the inventory equals ``npm ls --all``; GHSA-whgm (real) is found in ansi-html."""
    npm = need("npm")
    site = tmp_path / "app"
    site.mkdir()
    env = dict(os.environ, npm_config_cache=str(tmp_path / "npm-cache"), npm_config_update_notifier="false")
    p = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(site),
                        "ansi-html@0.0.7", "chalk@4.1.2", "@sindresorhus/is@4.6.0"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, f"npm install (it needs the npm registry): {p.stderr[-2000:]}"
    listed = json.loads(subprocess.run([npm, "ls", "--all", "--json", "--prefix", str(site)], capture_output=True,
                                       text=True, check=True, env=env).stdout)
    truth = set()

    def walk(deps: dict):
        for name, d in (deps or {}).items():
            truth.add((name, d["version"]))
            walk(d.get("dependencies"))

    walk(listed.get("dependencies"))
    assert len(truth) >= 8
    files = {}
    for d, _, names in os.walk(site / "node_modules"):
        for n in names:
            full = os.path.join(d, n)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    files["srv/app/" + os.path.relpath(full, site)] = f.read()
    layout = str(tmp_path / "layout")
    images.make_layout(layout, layers=[files])
    store = StoreCLI(str(tmp_path / "store"), "overlay")
    try:
        store("scan", "db", "import", os.path.join(os.path.dirname(os.path.abspath(__file__)), "osv",
                                                   "GHSA-whgm-jr23-g3j9.json"))
        r = json.loads(_scan(store, "--format", "json", f"oci:{layout}:latest").stdout)["results"][0]
        assert {(q["name"], q["version"]) for q in r["packages"] if q["type"] == "npm"} == truth
        assert {q["purl"] for q in r["packages"]} >= {"pkg:npm/%40sindresorhus/is@4.6.0", "pkg:npm/chalk@4.1.2"}
        assert [(f["id"], f["package"], f["fixed"]) for f in r["vulnerabilities"]] == [
            ("GHSA-whgm-jr23-g3j9", "ansi-html", "0.0.8")]
    finally:
        store.cleanup()
