"""What an image holds, read from its files with nothing executed: the OS (``/etc/os-release``),
dpkg (``/var/lib/dpkg/status`` and distroless ``status.d/``), apk (``/lib/apk/db/installed``),
Python (``*.dist-info``, ``*.egg-info``), npm (``node_modules/**/package.json``) packages, and
the modules Go binaries were built from (:mod:`.gobin`), Java archives' Maven coordinates
(:mod:`.java`), and rpm's sqlite database (:mod:`.rpm`).

Each package: name, version, source package, licences where stated, a purl (the purl spec's
``deb``, ``apk``, ``pypi``, ``npm`` types) and the path it was found at (the caller adds the
layer).
"""

from __future__ import annotations

import os
import re
import stat as _stat
from urllib.parse import quote

from struct import error as struct_error

from .tree import Tree


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def os_release(tree: Tree) -> dict:
    """``/etc/os-release`` (else ``/usr/lib/os-release``) as a dict; {} for scratch/distroless
    without one (Debian's distroless images have it; a scratch image has nothing)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        data = tree.read(path, 1 << 16)
        if data is None:
            continue
        out = {}
        for line in _text(data).splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            if re.fullmatch(r"[A-Z0-9_]+", k.strip()):
                out[k.strip()] = v
        out["_path"] = path
        return out
    return {}


def _paragraphs(text: str):
    """Debian control paragraphs: dicts of field -> value (continuation lines joined)."""
    para: dict = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if para:
                yield para
            para, last = {}, None
            continue
        if line[0] in " \t":
            if last:
                para[last] += "\n" + line.strip()
            continue
        if ":" not in line:
            last = None
            continue
        k, v = line.split(":", 1)
        last = k.strip()
        para[last] = v.strip()
    if para:
        yield para


def _purl(kind: str, namespace: str | None, name: str, version: str, qualifiers: dict | None = None) -> str:
    p = f"pkg:{kind}/"
    if namespace:  # each segment encoded on its own (a Go module path keeps its slashes)
        p += "/".join(quote(seg, safe="") for seg in namespace.split("/")) + "/"
    p += quote(name, safe="") + "@" + quote(version, safe="")
    if qualifiers:
        p += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(qualifiers.items()) if v)
    return p


def _distro(osr: dict) -> str:
    return f"{osr.get('ID', '')}-{osr.get('VERSION_ID', '')}".strip("-")


def _dpkg_packages(tree: Tree, osr: dict, text: str, path: str) -> list[dict]:
    out = []
    distro_id = (osr.get("ID") or "debian").lower()
    # OSV's ecosystem for the distribution's own advisories (Ubuntu's USNs name "Ubuntu:22.04:LTS")
    ecosystem = "Ubuntu" if distro_id == "ubuntu" else "Debian"
    for para in _paragraphs(text):
        name = para.get("Package")
        status = para.get("Status", "install ok installed").split()
        if not name:
            tree.warn(path, "a paragraph without a Package field is skipped")
            continue
        if status[-1:] == ["not-installed"]:
            continue
        version = para.get("Version")
        if not version:
            tree.warn(path, f"package {name} has no Version field (a truncated file?): skipped")
            continue
        arch = para.get("Architecture", "")
        src = para.get("Source", "") or name
        src_version = version
        m = re.fullmatch(r"(\S+)\s*\((\S+)\)", src)
        if m:
            src, src_version = m.group(1), m.group(2)
        q = {"arch": arch, "distro": _distro(osr)}
        if src != name:
            q["upstream"] = src
        out.append({"type": "deb", "ecosystem": ecosystem, "name": name, "version": version, "arch": arch,
                    "source": src, "source_version": src_version, "licenses": [],
                    "purl": _purl("deb", distro_id, name, version, q), "path": path,
                    "evidence": [f"/var/lib/dpkg/info/{name}:{arch}.list", f"/var/lib/dpkg/info/{name}.list", path]})
    return out


def dpkg(tree: Tree, osr: dict) -> list[dict]:
    out = []
    data = tree.read("/var/lib/dpkg/status")
    if data is not None:
        out += _dpkg_packages(tree, osr, _text(data), "/var/lib/dpkg/status")
    for name in tree.listdir("/var/lib/dpkg/status.d"):
        if name.endswith(".md5sums"):
            continue
        path = f"/var/lib/dpkg/status.d/{name}"
        data = tree.read(path)
        if data is not None:
            for p in _dpkg_packages(tree, osr, _text(data), path):
                p["evidence"] = [path]
                out.append(p)
    return out


def apk(tree: Tree, osr: dict) -> list[dict]:
    path = "/lib/apk/db/installed"
    data = tree.read(path)
    if data is None:
        return []
    out = []
    for block in re.split(r"\n\s*\n", _text(data)):
        rec: dict = {}
        for line in block.splitlines():
            if len(line) >= 2 and line[1] == ":":
                rec.setdefault(line[0], line[2:])
        if not rec:
            continue
        name, version = rec.get("P"), rec.get("V")
        if not name or not version:
            tree.warn(path, f"an entry without {'P' if not name else 'V'}: (name/version) is skipped")
            continue
        origin = rec.get("o") or name
        q = {"arch": rec.get("A", ""), "distro": _distro(osr)}
        if origin != name:
            q["upstream"] = origin
        out.append({"type": "apk", "ecosystem": "Alpine", "name": name, "version": version, "arch": rec.get("A", ""),
                    "source": origin, "source_version": version,
                    "licenses": [rec["L"]] if rec.get("L") else [],
                    "purl": _purl("apk", (osr.get("ID") or "alpine").lower(), name, version, q), "path": path,
                    "evidence": [path]})
    return out


def _headers(text: str) -> dict:
    """RFC 822 style headers of a METADATA / PKG-INFO (first value of each, License-Expression kept)."""
    out: dict = {}
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t" or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out.setdefault(k.strip().lower(), v.strip())
    return out


def _pypi_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_and_npm(tree: Tree) -> list[dict]:
    """One walk of the tree (no symlink followed) for dist-info, egg-info and node_modules."""
    out: list[dict] = []

    def visit(dpath: str, dfd: int, names: list[str]):
        base = dpath.rsplit("/", 1)[-1]
        if base.endswith(".dist-info") or base.endswith(".egg-info"):
            meta = "METADATA" if base.endswith(".dist-info") else "PKG-INFO"
            shown = f"{dpath}/{meta}"
            data = tree.read_at(dfd, meta, shown, 1 << 20) if meta in names else None
            if data is None:
                tree.warn(dpath, f"no {meta}: skipped")
                return False
            _python(tree, out, _text(data), shown, dpath)
            return False
        for n in names:
            if n.endswith(".egg-info") and not n.startswith("."):
                # an egg-info may be a file holding PKG-INFO itself (distutils installs)
                shown = f"{dpath}/{n}"
                data = tree.read_at(dfd, n, shown, 1 << 20)
                if data is not None:
                    _python(tree, out, _text(data), shown, shown)
        for n in names:
            try:
                st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if _stat.S_ISREG(st.st_mode) and st.st_mode & 0o111 and st.st_size >= 64:
                _go(tree, out, dfd, n, f"{dpath.rstrip('/')}/{n}")
            elif _stat.S_ISREG(st.st_mode) and n.lower().endswith((".jar", ".war", ".ear")):
                _java(tree, out, dfd, n, f"{dpath.rstrip('/')}/{n}")
        if "package.json" in names and "/node_modules/" in dpath + "/" and base != "node_modules":
            shown = f"{dpath}/package.json"
            data = tree.read_at(dfd, "package.json", shown, 4 << 20)
            if data is not None:
                _npm(tree, out, data, shown)
        return True

    tree.walk(visit)
    return out


def _python(tree: Tree, out: list, text: str, shown: str, where: str) -> None:
    h = _headers(text)
    name, version = h.get("name"), h.get("version")
    if not name or not version:
        tree.warn(shown, f"no {'Name' if not name else 'Version'}: the package is skipped")
        return
    lic = h.get("license-expression") or h.get("license") or ""
    out.append({"type": "pypi", "ecosystem": "PyPI", "name": name, "version": version, "arch": "",
                "source": name, "source_version": version, "licenses": [lic] if lic and lic != "UNKNOWN" else [],
                "purl": _purl("pypi", None, _pypi_name(name), version), "path": where, "evidence": [shown]})


def _go(tree: Tree, out: list, dfd: int, name: str, shown: str) -> None:
    from . import gobin

    fd = tree.open_at(dfd, name, shown)
    if fd is None:
        return
    try:
        info = gobin.build_info(fd)
    except (ValueError, OSError, struct_error) as e:
        tree.warn(shown, f"Go build info not read: {e}")
        return
    finally:
        os.close(fd)
    if info is None:
        return
    go_version, modinfo = info
    for m in gobin.modules(modinfo):
        ns, _, short = m["path"].rpartition("/")
        out.append({"type": "golang", "ecosystem": "Go", "name": m["path"], "version": m["version"], "arch": "",
                    "source": m["path"], "source_version": m["version"], "licenses": [],
                    "purl": _purl("golang", ns or None, short, m["version"]), "path": shown, "evidence": [shown],
                    "go": {"kind": m["kind"], "toolchain": go_version, "replaced_by": m["replaced_by"]}})


def _java(tree: Tree, out: list, dfd: int, name: str, shown: str) -> None:
    from . import java

    fd = tree.open_at(dfd, name, shown)
    if fd is None:
        return
    try:
        found = java.coordinates(fd)
    except (ValueError, OSError) as e:
        tree.warn(shown, f"Java archive not read: {e}")
        return
    finally:
        os.close(fd)
    for c in found:
        out.append({"type": "maven", "ecosystem": "Maven", "name": f"{c['group']}:{c['artifact']}" if c["group"]
                    else c["artifact"], "version": c["version"], "arch": "", "source": c["artifact"],
                    "source_version": c["version"], "licenses": [],
                    "purl": _purl("maven", c["group"] or None, c["artifact"], c["version"]),
                    "path": shown, "evidence": [shown], "java": {"member": c["source"]}})


def _npm(tree: Tree, out: list, data: bytes, shown: str) -> None:
    from .._std import json

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        tree.warn(shown, f"not JSON: {e}")
        return
    if not isinstance(doc, dict):
        tree.warn(shown, "not a JSON object: skipped")
        return
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        tree.warn(shown, "no string name and version: skipped")
        return
    lic = doc.get("license")
    if isinstance(lic, dict):
        lic = lic.get("type")
    ns, _, short = name.rpartition("/")
    out.append({"type": "npm", "ecosystem": "npm", "name": name, "version": version, "arch": "",
                "source": name, "source_version": version, "licenses": [lic] if isinstance(lic, str) and lic else [],
                "purl": _purl("npm", ns or None, short, version), "path": shown, "evidence": [shown]})


def rpm(tree: Tree, osr: dict) -> list[dict]:
    from . import rpm as _rpm

    path, found = _rpm.packages(tree)
    distro = (osr.get("ID") or "").lower() or None
    out = []
    for h in found:
        version = f"{h['version']}-{h['release']}" if h.get("release") else h["version"]
        if h.get("epoch") is not None:
            version = f"{h['epoch']}:{version}"
        src = h.get("sourcerpm") or ""
        src_name = src.rsplit("-", 2)[0] if src.count("-") >= 2 else h["name"]
        q = {"arch": h.get("arch", ""), "distro": _distro(osr)}
        if h.get("epoch") is not None:
            q["epoch"] = str(h["epoch"])
        if src:
            q["upstream"] = src
        out.append({"type": "rpm", "ecosystem": "RPM", "name": h["name"], "version": version,
                    "arch": h.get("arch", ""), "source": src_name, "source_version": version,
                    "licenses": [h["license"]] if h.get("license") else [],
                    "purl": _purl("rpm", distro, h["name"], f"{h['version']}-{h['release']}" if h.get("release")
                                  else h["version"], q), "path": path, "evidence": [path]})
    return out


def inventory(tree: Tree) -> tuple[dict, list[dict]]:
    """(os-release, packages) of the tree."""
    osr = os_release(tree)
    pkgs = dpkg(tree, osr) + apk(tree, osr) + rpm(tree, osr) + python_and_npm(tree)
    return osr, pkgs
