"""A scan's result rendered: a table, pallet's JSON, CycloneDX 1.5 and SPDX 2.3 JSON.

SBOMs are byte-for-byte the same for the same image and data: components sorted, ids derived
from the image id, the timestamp from ``SOURCE_DATE_EPOCH`` when set.
"""

from __future__ import annotations

import os
import time
import uuid

from .._version import __version__

_NS = uuid.UUID("6c4f1a52-3b7e-4d8e-9a55-2f0a4c1d5e77")


def _timestamp() -> str:
    sde = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    t = int(sde) if sde.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _image_name(r: dict) -> str:
    names = r["image"].get("names") or []
    return names[0] if names else r["target"]


def to_json(results: list[dict], scanner: str = "builtin") -> dict:
    return {"scanner": scanner, "version": __version__, "results": results}


def cyclonedx(r: dict) -> dict:
    img = r["image"]
    refs: dict = {}
    comps = []
    for p in r["packages"]:
        ref = p["purl"]
        if ref in refs:
            refs[ref] += 1
            ref = f"{ref}#{refs[p['purl']]}"
        else:
            refs[ref] = 0
        c = {"type": "library", "bom-ref": ref, "name": p["name"], "version": p["version"], "purl": p["purl"]}
        if p.get("licenses"):
            c["licenses"] = [{"license": {"name": lic}} for lic in p["licenses"]]
        props = [{"name": "pallet:package:type", "value": p["type"]}, {"name": "pallet:path", "value": p["path"]}]
        if p.get("layer"):
            props.append({"name": "pallet:layer", "value": p["layer"]})
        if p.get("source") and p["source"] != p["name"]:
            props.append({"name": "pallet:source-package", "value": p["source"]})
        c["properties"] = props
        p["_ref"] = ref
        comps.append(c)
    osr = r.get("os") or {}
    if osr.get("ID"):
        comps.insert(0, {"type": "operating-system", "bom-ref": f"os:{osr['ID']}-{osr.get('VERSION_ID', '')}",
                         "name": osr["ID"], "version": osr.get("VERSION_ID", ""),
                         "description": osr.get("PRETTY_NAME", "")})
    bom = {"bomFormat": "CycloneDX", "specVersion": "1.5",
           "serialNumber": f"urn:uuid:{uuid.uuid5(_NS, 'cyclonedx:' + img['id'])}", "version": 1,
           "metadata": {"timestamp": _timestamp(),
                        "tools": {"components": [{"type": "application", "name": "pallet", "version": __version__}]},
                        "component": {"type": "container", "bom-ref": f"image:{img['id']}", "name": _image_name(r),
                                      "version": f"sha256:{img['id']}"}},
           "components": comps}
    vulns = []
    byref = {}
    for p in r["packages"]:
        byref.setdefault((p["name"], p["version"], p["path"]), p["_ref"])
    for f in r.get("vulnerabilities") or []:
        ref = byref.get((f["package"], f["installed"], f["path"]))
        v = {"bom-ref": f"vuln:{f['id']}:{ref}", "id": f["id"], "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{f['id']}"},
             "ratings": _ratings(f), "affects": [{"ref": ref}] if ref else []}
        if f.get("summary"):
            v["description"] = f["summary"]
        if f.get("fixed"):
            v["recommendation"] = f"upgrade {f['package']} to {f['fixed']} or later"
        vulns.append(v)
    if vulns:
        bom["vulnerabilities"] = vulns
    for p in r["packages"]:
        p.pop("_ref", None)
    return bom


#: CycloneDX's scoring methods of CVSS versions
_METHOD = {"2.0": "CVSSv2", "3.0": "CVSSv3", "3.1": "CVSSv31", "4.0": "CVSSv4"}


def _ratings(f: dict) -> list[dict]:
    """A finding's CycloneDX ratings: its CVSS score (score, severity, method, vector) when
    the record has one, and the severity the record states when that differs."""
    c = f.get("cvss")
    if not c:
        return [{"severity": f["severity"]}]
    out = [{"score": c["score"], "severity": c["severity"], "method": _METHOD.get(c["version"], "other"),
            "vector": c["vector"]}]
    if f["severity"] != c["severity"]:
        out.insert(0, {"severity": f["severity"]})
    return out


def spdx(r: dict) -> dict:
    img = r["image"]
    pkgs = [{"SPDXID": "SPDXRef-Image", "name": _image_name(r), "versionInfo": f"sha256:{img['id']}",
             "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
             "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION"}]
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}]
    for n, p in enumerate(r["packages"], 1):
        sid = f"SPDXRef-Package-{n}"
        e = {"SPDXID": sid, "name": p["name"], "versionInfo": p["version"], "downloadLocation": "NOASSERTION",
             "filesAnalyzed": False, "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
             "copyrightText": "NOASSERTION", "primaryPackagePurpose": "LIBRARY",
             "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                               "referenceLocator": p["purl"]}],
             "sourceInfo": f"found at {p['path']}" + (f" in layer {p['layer']}" if p.get("layer") else "")}
        if p.get("licenses"):
            e["licenseComments"] = "stated: " + "; ".join(p["licenses"])
        if p.get("source") and p["source"] != p["name"]:
            e["comment"] = f"source package {p['source']}"
        pkgs.append(e)
        rels.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    return {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": f"pallet-scan-{_image_name(r)}",
            "documentNamespace": f"https://pallet.invalid/spdx/{img['id']}/{uuid.uuid5(_NS, 'spdx:' + img['id'])}",
            "creationInfo": {"created": _timestamp(), "creators": [f"Tool: pallet-{__version__}"]},
            "packages": pkgs, "relationships": rels}


def columns(rows: list[tuple]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def _openscap_table(r: dict) -> list[str]:
    osr = r.get("os") or {}
    lines = [f"{r['target']} (image {r['image']['id'][:12]}): "
             f"{osr.get('PRETTY_NAME') or 'no os-release (scratch or distroless)'}"]
    x = r.get("xccdf")
    if x:
        lines.append(f"openscap: data stream {x['content']}, profile {x['profile'] or '(the content default)'}")
        if x["summary"]:
            lines.append("  " + ", ".join(f"{k} {n}" for k, n in x["summary"].items()))
        elif not x["profile"]:
            lines.append(f"  no rules: the content's default selection is empty; choose a profile with --profile ID "
                         f"(oscap info {x['content']} lists them)")
        else:
            lines.append("  no rules")
        if x["rules"]:
            lines += ["  " + ln for ln in columns([("RESULT", "SEVERITY", "RULE", "TITLE")] + [
                (q["result"], q["severity"], q["id"].removeprefix("xccdf_org.ssgproject.content_rule_"), q["title"])
                for q in x["rules"]])]
    o = r.get("oval")
    if o:
        lines.append(f"openscap: OVAL definitions {o['definitions_file']}")
        lines.append("  " + ", ".join(f"{k} {n}" for k, n in o["summary"].items()) if o["summary"] else "  no definitions")
        if o["definitions"]:
            lines += ["  " + ln for ln in columns([("RESULT", "CLASS", "DEFINITION")] + [
                (d["result"], d["class"], d["id"]) for d in o["definitions"]])]
    lines.append(f"results: {r['results_dir']}")
    return lines


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r.get("scanner") == "openscap":
            lines += _openscap_table(r)
            continue
        if r.get("scanner_image"):
            lines.append(f"{r['target']} (image {r['image']['id'][:12]}): scanner {r['scanner']} "
                         f"({r['scanner_image']}, scan {r['scan_type']}): {len(r['files'])} files in {r['results_dir']}")
            lines += [f"  {f}" for f in r["files"]]
            continue
        osr = r.get("os") or {}
        lines.append(f"{r['target']} (image {r['image']['id'][:12]}): "
                     f"{osr.get('PRETTY_NAME') or 'no os-release (scratch or distroless)'}, "
                     f"{len(r['packages'])} packages")
        if r.get("vulnerabilities") is None:
            lines.append("vulnerabilities not checked: no database (pallet scan db import PATH)")
        elif not r["vulnerabilities"]:
            lines.append("no known vulnerabilities")
        else:
            rows = [("ID", "SEVERITY", "CVSS", "PACKAGE", "INSTALLED", "FIXED", "LAYER")]
            for f in r["vulnerabilities"]:
                c = f.get("cvss")
                rows.append((f["id"], f["severity"], f"{c['score']} v{c['version']}" if c else "-", f["package"],
                             f["installed"], f["fixed"] or "-", (f.get("layer") or "-")[:19]))
            lines += columns(rows)
        for f in r.get("policy") or []:
            lines.append(f"policy {f['rule']} ({f['severity']}): {f['message']}")
    return "\n".join(lines) + "\n"


#: SARIF's levels for pallet's severities (GitHub's code scanning reads ``security-severity`` too)
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note", "unknown": "note",
          "none": "note"}
_SCORE = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "info": "0.0", "unknown": "0.0",
          "none": "0.0"}


def _location(path: str | None, layer: str | None, what: str | None = None) -> list[dict]:
    if not path:
        return []
    loc: dict = {"physicalLocation": {"artifactLocation": {"uri": path.lstrip("/"), "uriBaseId": "ROOTFS"}}}
    if layer or what:
        loc["message"] = {"text": " ".join(x for x in (what, f"layer {layer}" if layer else None) if x)}
    return [loc]


def sarif(results: list[dict]) -> dict:
    """SARIF 2.1.0: one run per target; a rule per vulnerability id, policy rule or failed
    OpenSCAP rule, a result per finding located at its path in the image (``ROOTFS``)."""
    runs = []
    for r in results:
        rules: dict = {}
        out = []

        def add(rule_id: str, severity: str, text: str, short: str, help_uri: str | None, path, layer,
                props: dict, what: str | None = None, score: float | None = None) -> None:
            if rule_id not in rules:
                # GitHub's security-severity: the CVSS score when there is one
                rule = {"id": rule_id, "shortDescription": {"text": short or rule_id},
                        "defaultConfiguration": {"level": _LEVEL.get(severity, "note")},
                        "properties": {"security-severity": f"{score:.1f}" if score is not None
                                       else _SCORE.get(severity, "0.0")}}
                if help_uri:
                    rule["helpUri"] = help_uri
                rules[rule_id] = rule
            res = {"ruleId": rule_id, "level": _LEVEL.get(severity, "note"), "message": {"text": text},
                   "properties": dict(props, severity=severity)}
            loc = _location(path, layer, what)
            if loc:
                res["locations"] = loc
            out.append(res)

        for f in r.get("vulnerabilities") or []:
            text = (f"{f['package']} {f['installed']} is affected by {f['id']}"
                    + (f" (fixed in {f['fixed']})" if f.get("fixed") else " (no fix yet)"))
            props = {"package": f["package"], "installed": f["installed"], "fixed": f.get("fixed") or "",
                     "aliases": f.get("aliases") or []}
            if f.get("cvss"):
                props["cvss"] = f["cvss"]
            add(f["id"], f["severity"], text, f.get("summary") or f["id"], f"https://osv.dev/vulnerability/{f['id']}",
                f.get("path"), f.get("layer"), props, what=f"package {f['package']}",
                score=(f.get("cvss") or {}).get("score"))
        for f in r.get("policy") or []:
            add(f["rule"], f["severity"], f["message"], f["rule"].replace("-", " "), None, f.get("path"),
                f.get("layer"), {"deleted": True} if f.get("deleted") else {})
        for q in (r.get("xccdf") or {}).get("rules", []):
            if q["result"] in ("fail", "error"):
                add(q["id"], q["severity"], f"{q['title'] or q['id']}: {q['result']}", q["title"] or q["id"], None,
                    None, None, {"result": q["result"]})
        ids = sorted(rules)
        for res in out:
            res["ruleIndex"] = ids.index(res["ruleId"])
        out.sort(key=lambda x: (x["ruleIndex"], x.get("locations", [{}])[0].get("physicalLocation", {})
                                .get("artifactLocation", {}).get("uri", ""), x["message"]["text"]))
        run = {"tool": {"driver": {"name": "pallet", "version": __version__, "semanticVersion": __version__,
                                   "informationUri": "https://pallet.invalid/docs/scan",
                                   "rules": [rules[i] for i in ids]}},
               "automationDetails": {"id": f"pallet-scan/{r.get('scanner', 'builtin')}/{r['image']['id']}"},
               "originalUriBaseIds": {"ROOTFS": {"uri": "file:///",
                                                 "description": {"text": f"the root filesystem of {_image_name(r)}"}}},
               "results": out,
               "properties": {"target": r["target"], "image": r["image"]["id"], "names": r["image"].get("names") or []}}
        runs.append(run)
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": runs}
