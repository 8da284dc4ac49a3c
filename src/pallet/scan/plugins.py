"""Scanner images, atomic's plug-in model: a scanner declared in ``/etc/pallet/scanners.d/*.yaml``
is an image run through the runtime (no network) with each target's tree mounted read-only at
``/scanin/<id>`` and a writable ``/scanout`` that becomes the results directory.

A declaration (docs/scan.md)::

    name: example                   # --scanner NAME
    image: localhost/example:1      # an image in the store (pulled when missing)
    default_scan: files             # the scan type run without --scan-type
    scans:
      - name: files
        description: list the files
        command: [/bin/sh, -c, "ls -R /scanin > /scanout/files.txt"]   # default: the image's own
"""

from __future__ import annotations

import os

from ..errors import ScanError

CONF_DIR = "/etc/pallet/scanners.d"
#: where the scanner sees the targets and writes its results (atomic's paths)
SCANIN, SCANOUT = "/scanin", "/scanout"
_LIMIT = 1 << 20


def conf_dir() -> str:
    """``PALLET_SCANNERS_DIR`` or :data:`CONF_DIR`."""
    return os.environ.get("PALLET_SCANNERS_DIR") or CONF_DIR


def _check(doc, path: str) -> dict:
    def bad(what: str) -> ScanError:
        return ScanError(f"{path}: {what}")

    if not isinstance(doc, dict):
        raise bad("a scanner declaration is a mapping (name, image, scans, default_scan)")
    unknown = set(doc) - {"name", "image", "scans", "default_scan", "description"}
    if unknown:
        raise bad(f"unknown key {sorted(map(str, unknown))[0]!r}")
    name, image = doc.get("name"), doc.get("image")
    if not isinstance(name, str) or not name or name in ("builtin", "openscap") or not all(
            c.isalnum() or c in "-_." for c in name):
        raise bad("name must be a word (letters, digits, - _ .) other than builtin and openscap")
    if not isinstance(image, str) or not image:
        raise bad("image must name an image")
    scans = doc.get("scans") or []
    if not isinstance(scans, list) or not scans:
        raise bad("scans must be a list of {name, command, description}")
    out = []
    for s in scans:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or set(s) - {"name", "command", "description"}:
            raise bad("each scan is {name, command, description}")
        cmd = s.get("command")
        if cmd is not None and (not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd)):
            raise bad(f"scan {s['name']}: command must be a list of strings")
        out.append({"name": s["name"], "command": cmd, "description": str(s.get("description") or "")})
    default = doc.get("default_scan", out[0]["name"])
    if default not in [s["name"] for s in out]:
        raise bad(f"default_scan {default!r} is not one of its scans")
    return {"name": name, "image": image, "scans": out, "default_scan": default,
            "description": str(doc.get("description") or ""), "file": path}


def declared(warn=None) -> dict:
    """Every declared scanner by name; a file that cannot be read or parsed is a warning (when
    listing) naming it, and is left out."""
    import yaml

    d = conf_dir()
    out: dict = {}
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith((".yaml", ".yml")))
    except (FileNotFoundError, NotADirectoryError):
        return out
    except OSError as e:
        raise ScanError(f"{d}: {e.strerror}") from None
    for n in names:
        path = os.path.join(d, n)
        try:
            with open(path, "rb") as f:
                data = f.read(_LIMIT + 1)
            if len(data) > _LIMIT:
                raise ScanError(f"{path}: larger than {_LIMIT} bytes")
            try:
                doc = yaml.safe_load(data.decode("utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError):
                raise ScanError(f"{path}: not valid YAML") from None
            s = _check(doc, path)
        except OSError as e:
            s, err = None, ScanError(f"{path}: {e.strerror}")
        except ScanError as e:
            s, err = None, e
        if s is None:
            if warn:
                warn(path, str(err).removeprefix(f"{path}: "))
            continue
        out.setdefault(s["name"], s)
    return out


def find(name: str) -> dict:
    """The declared scanner ``name`` (its file's problems are the error)."""
    problems: list = []
    found = declared(lambda p, m: problems.append(f"{p}: {m}")).get(name)
    if found is None:
        more = f" ({problems[0]})" if problems else ""
        raise ScanError(f"--scanner {name}: no such scanner (pallet scan --list; declarations in {conf_dir()}){more}")
    return found


def run(store, scanner: dict, scan_type: str | None, mounted: list[tuple[str, str]], outdir: str,
        pull_fn, warn=None) -> dict:
    """Run ``scanner``'s image once over ``mounted`` ((id, tree path) of each target): each tree
    read-only at ``/scanin/ID``, ``outdir`` writable at ``/scanout`` (with a ``ID`` directory
    for each target made beforehand), no network. The container is removed after; its output
    is kept as ``outdir/scanner.log``. The scanner's exit status is returned."""
    from .. import _fs
    from ..containers.container import Containers, Options

    scan = next((s for s in scanner["scans"] if s["name"] == (scan_type or scanner["default_scan"])), None)
    if scan is None:
        raise ScanError(f"--scan-type {scan_type}: scanner {scanner['name']} has "
                        f"{', '.join(s['name'] for s in scanner['scans'])}")
    for ident, _ in mounted:
        os.makedirs(os.path.join(outdir, ident), 0o755, exist_ok=True)
    volumes = [f"{path}:{SCANIN}/{ident}:ro" for ident, path in mounted] + [f"{outdir}:{SCANOUT}"]
    ctrs = Containers(store)
    o = Options(scanner["image"], scan["command"], networks=["none"], volumes=volumes,
                labels={"io.pallet.scanner": scanner["name"]})
    rec = ctrs.create(o, pull_fn, warn=warn)
    cid = rec["id"]
    try:
        ctrs.start(cid, warn=warn)
        code = ctrs.wait(cid)
        try:
            with open(ctrs.log_path(cid), "rb") as f:
                log = f.read(64 << 20)
        except OSError:
            log = b""
        _fs.write_atomic(os.path.join(outdir, "scanner.log"), log, 0o644)
    finally:
        ctrs.remove(cid, force=True)
    return {"scanner": scanner["name"], "image": scanner["image"], "scan_type": scan["name"], "exit_code": code}
