"""Java archives (``.jar``, ``.war``, ``.ear``): the Maven coordinates in each
``META-INF/maven/GROUP/ARTIFACT/pom.properties``, else ``META-INF/MANIFEST.MF``'s
Implementation-Title/Version (or Bundle-SymbolicName/Version). Read from the zip's directory
through the open fd, each member bounded; archives nested in an archive (fat jars) are not
opened (said in docs/scan.md)."""

from __future__ import annotations

import os
import zipfile

SUFFIXES = (".jar", ".war", ".ear")
#: the most bytes a pom.properties or MANIFEST.MF may have
MEMBER_LIMIT = 1 << 20
#: the most members an archive may list before it is refused
MEMBER_COUNT_LIMIT = 200_000


def _props(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _manifest(text: str) -> dict:
    out: dict = {}
    last = None
    for line in text.splitlines():
        if line.startswith(" ") and last:
            out[last] += line[1:]
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip()
            out.setdefault(last, v.strip())
        elif not line.strip():
            break  # the main section only
    return out


def coordinates(fd: int) -> list[dict]:
    """[{group, artifact, version, source}] of the archive open at ``fd``; ValueError for an
    archive that cannot be read."""
    with os.fdopen(os.dup(fd), "rb") as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"not a zip archive: {e}") from None
        with z:
            infos = z.infolist()
            if len(infos) > MEMBER_COUNT_LIMIT:
                raise ValueError(f"more than {MEMBER_COUNT_LIMIT} members")
            out = []

            def read(info) -> str:
                if info.file_size > MEMBER_LIMIT:
                    raise ValueError(f"{info.filename}: larger than {MEMBER_LIMIT} bytes")
                with z.open(info) as m:
                    return m.read(MEMBER_LIMIT + 1).decode("utf-8", "replace")

            try:
                for info in infos:
                    parts = info.filename.split("/")
                    if len(parts) == 5 and parts[:2] == ["META-INF", "maven"] and parts[4] == "pom.properties":
                        p = _props(read(info))
                        if p.get("artifactId") and p.get("version"):
                            out.append({"group": p.get("groupId") or parts[2], "artifact": p["artifactId"],
                                        "version": p["version"], "source": info.filename})
                if out:
                    return out
                for info in infos:
                    if info.filename == "META-INF/MANIFEST.MF":
                        m = _manifest(read(info))
                        name = m.get("Implementation-Title") or m.get("Bundle-SymbolicName", "").split(";")[0]
                        version = m.get("Implementation-Version") or m.get("Bundle-Version")
                        if name and version:
                            out.append({"group": m.get("Implementation-Vendor-Id") or "", "artifact": name,
                                        "version": version, "source": info.filename})
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
                raise ValueError(str(e)) from None
            return out
