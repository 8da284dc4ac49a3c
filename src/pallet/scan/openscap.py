"""OpenSCAP as a scanner: Debian's ``oscap`` evaluates SCAP content against the image's
read-only mount offline, as ``oscap-chroot`` and ``oscap-podman`` run it (``OSCAP_PROBE_ROOT``
is the mount, so the probes read the image's files, never the host's; nothing from the image
is executed). The content is picked from the image's os-release among the data streams of
``ssg-debian``/``ssg-debderived`` unless ``--content`` names one; the ARF and HTML reports go
into the results directory and the rule results are summarised from the ARF's TestResult.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

from ..errors import ScanError

CONTENT_DIR = "/usr/share/xml/scap/ssg/content"
#: the profile the SCAP Security Guide writes for every Debian and Ubuntu release
DEFAULT_PROFILE = "xccdf_org.ssgproject.content_profile_standard"
_XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
_OVAL_RES = "{http://oval.mitre.org/XMLSchema/oval-results-5}"
#: the statuses a rule can have in a TestResult (XCCDF 1.2, 6.6.4.2)
RESULTS = ("pass", "fail", "error", "unknown", "notapplicable", "notchecked", "notselected",
           "informational", "fixed")


def oscap_binary() -> str:
    path = shutil.which("oscap")
    if not path:
        raise ScanError("--scanner openscap needs oscap (Debian's openscap-scanner package)")
    return path


def _shown(v, limit: int = 60) -> str:
    """An os-release value of the image (hostile) fit for one line of output."""
    v = "".join(c if c.isprintable() else "?" for c in str(v))
    return v if len(v) <= limit else v[:limit] + "..."


def pick_content(osr: dict, content_dir: str = CONTENT_DIR) -> str:
    """The SCAP Security Guide data stream for the image's os-release (``ID``, ``VERSION_ID``);
    a ScanError of one line naming the image's release, the data streams there are and
    ``--content``/``--profile`` when there is none for it."""
    ident = str(osr.get("ID") or "").lower()
    version = str(osr.get("VERSION_ID") or "")
    name = None
    if ident == "debian" and version.isdigit():
        name = f"ssg-debian{version}-ds.xml"
    elif ident == "ubuntu" and version.replace(".", "", 1).isdigit():
        name = f"ssg-ubuntu{version.replace('.', '')}-ds.xml"
    path = os.path.join(content_dir, name) if name else None
    if not path or not os.path.isfile(path):
        have = sorted(n for n in (os.listdir(content_dir) if os.path.isdir(content_dir) else [])
                      if n.endswith("-ds.xml"))
        what = f"{_shown(ident) or 'an unknown OS'} {_shown(version)}".strip()
        if osr.get("PRETTY_NAME"):
            what += f" ({_shown(osr['PRETTY_NAME'])})"
        there = f"the data streams in {content_dir} are {', '.join(have)}" if have else \
            f"{content_dir} has no data streams (Debian's ssg-debian, ssg-debderived install them)"
        raise ScanError(f"no SCAP content for {what}: {there}; --content FILE (with --profile ID) runs a data "
                        "stream you choose (one for another release marks the rules whose platform check "
                        "fails notapplicable)")
    return path


def _test_result(arf: str) -> ET.Element | None:
    """The ARF's (last) XCCDF TestResult: oscap writes it as one element with its own default
    namespace, so only that slice is parsed, not the data stream the ARF embeds."""
    import mmap

    with open(arf, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            start = m.rfind(b"<TestResult ")
            end = m.find(b"</TestResult>", start) if start >= 0 else -1
            if start >= 0 and end > start:
                try:
                    return ET.fromstring(m[start:end + len(b"</TestResult>")])
                except ET.ParseError:
                    pass
    found = None
    for _, el in ET.iterparse(arf):  # the slow path: another writer's ARF layout
        if el.tag == _XCCDF + "TestResult":
            found = el
    return found


def _titles(stdout: str) -> dict:
    """Rule id -> title from oscap's own listing: ``Title``, ``Rule``, ``Result`` each followed
    by a tab and the value, on the same line (a terminal) or the next (a pipe)."""
    out, title, key = {}, None, None
    for line in stdout.splitlines():
        if key is not None and line.startswith("\t"):
            k, value = key, line[1:]
        else:
            k, _, value = line.partition("\t")
            if not value:
                key = k
                continue
        key = None
        if k == "Title":
            title = value
        elif k == "Rule" and title is not None:
            out[value] = title
            title = None
    return out


def _run(argv: list[str], env: dict, cwd: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace")
    except OSError as e:
        raise ScanError(f"{argv[0]}: {e.strerror or e}") from None


def _log(outdir: str, name: str, p: subprocess.CompletedProcess) -> None:
    from .. import _fs

    _fs.write_atomic(os.path.join(outdir, name), (p.stdout + p.stderr).encode(), 0o644)


def _failure(p: subprocess.CompletedProcess, what: str) -> ScanError:
    lines = [ln.strip() for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith(("E:", "OpenSCAP Error", "No ", "Error"))] or lines
    return ScanError(f"oscap {what} failed (exit {p.returncode}): {errs[0] if errs else 'no message'}")


def environment(root: str, target: str, env_vars: list[str]) -> dict:
    """oscap's environment as ``oscap-podman`` sets it: probes rooted in the image."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSCAP_")}
    env.update(OSCAP_PROBE_ROOT=os.path.realpath(root), OSCAP_EVALUATION_TARGET=target,
               OSCAP_CONTAINER_VARS="\n".join(e for e in env_vars if isinstance(e, str)))
    return env


def xccdf(root: str, outdir: str, content: str, profile: str | None, target: str, env_vars: list[str]) -> dict:
    """``oscap xccdf eval`` of ``content`` (a data stream or XCCDF file) against ``root``."""
    argv = [oscap_binary(), "xccdf", "eval"]
    if profile:
        argv += ["--profile", profile]
    argv += ["--results-arf", "arf.xml", "--report", "report.html", os.path.abspath(content)]
    p = _run(argv, environment(root, target, env_vars), outdir)
    _log(outdir, "oscap-xccdf.log", p)
    # 0: every rule passed, 2: a rule failed; anything else is oscap's own failure
    if p.returncode not in (0, 2) or not os.path.exists(os.path.join(outdir, "arf.xml")):
        raise _failure(p, "xccdf eval")
    tr = _test_result(os.path.join(outdir, "arf.xml"))
    if tr is None:
        raise ScanError(f"oscap wrote no XCCDF TestResult in {os.path.join(outdir, 'arf.xml')}")
    titles = _titles(p.stdout)
    rules = []
    for rr in tr.iter(_XCCDF + "rule-result"):
        result = (rr.findtext(_XCCDF + "result") or "unknown").strip()
        if result == "notselected":
            continue
        rid = rr.get("idref", "")
        rules.append({"id": rid, "title": titles.get(rid, ""), "result": result,
                      "severity": rr.get("severity") or "unknown"})
    summary: dict = {}
    for r in rules:
        summary[r["result"]] = summary.get(r["result"], 0) + 1
    prof = tr.find(_XCCDF + "profile")
    return {"content": os.path.abspath(content), "profile": prof.get("idref") if prof is not None else profile,
            "test_result": tr.get("id"), "rules": rules, "summary": dict(sorted(summary.items())),
            "arf": os.path.join(outdir, "arf.xml"), "report": os.path.join(outdir, "report.html")}


def oval(root: str, outdir: str, definitions: str, target: str, env_vars: list[str]) -> dict:
    """``oscap oval eval`` of an OVAL definitions file against ``root``: each definition's result."""
    argv = [oscap_binary(), "oval", "eval", "--results", "oval-results.xml", "--report", "oval-report.html",
            os.path.abspath(definitions)]
    p = _run(argv, environment(root, target, env_vars), outdir)
    _log(outdir, "oscap-oval.log", p)
    res = os.path.join(outdir, "oval-results.xml")
    if p.returncode != 0 or not os.path.exists(res):
        raise _failure(p, "oval eval")
    defs, classes = [], {}
    for _, el in ET.iterparse(res):
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "definition" and el.get("class") and el.get("id"):  # the definitions' own part
            classes[el.get("id")] = el.get("class")
        elif el.tag == _OVAL_RES + "definition" and el.get("definition_id"):
            defs.append({"id": el.get("definition_id"), "result": el.get("result", "unknown")})
    for d in defs:
        d["class"] = classes.get(d["id"], "")
    summary: dict = {}
    for d in defs:
        summary[d["result"]] = summary.get(d["result"], 0) + 1
    return {"definitions_file": os.path.abspath(definitions), "definitions": defs,
            "summary": dict(sorted(summary.items())), "results": res,
            "report": os.path.join(outdir, "oval-report.html")}
