"""``pallet scan``: images examined without running them (atomic scan's model).

A target is mounted read-only (an image in the store through the store's mount API; a
transport reference copied first into a temporary store inside the store's staging), read
by file descriptor as if chrooted (:mod:`.tree`), never executed, and unmounted after.
The built-in scanner gives the OS, an inventory of packages with the layer that brought each
(:mod:`.inventory`, :mod:`.target`), the vulnerabilities the offline OSV database knows of
(:mod:`.vulndb`, :mod:`.versions`) and a few policy findings; :mod:`.report` renders a
table, JSON, CycloneDX and SPDX. See docs/scan.md.
"""

from __future__ import annotations

import os

from ..errors import ScanError
from .severity import SEVERITIES  # noqa: F401  (the CLI's --fail-on order)


def _config(st, rec: dict) -> dict:
    """The image config of an image record, or of a container record's image ({} if none)."""
    from ..errors import NotFound
    from ..storage import info

    try:
        if rec.get("container"):
            if not rec.get("image"):
                return {}
            rec = st.image(rec["image"])
        return info.config(st, rec)
    except (OSError, ValueError, NotFound):
        return {}


def _image(store, st, rec: dict, text: str) -> dict:
    """The result's ``image``: id and names (the target's text for a transport reference)."""
    out = {"id": rec["id"], "names": list(rec.get("names") or []) if st is store else [text]}
    if rec.get("container"):
        out.update(container=True, image=rec.get("image"))
    return out


def scan_one(store, text: str, ctx, options, warn, policy_file=None, kind: str | None = None) -> dict:
    """Scan one target; the result (see docs/scan.md for its fields). ``policy_file`` (a
    :class:`.policy.Policy`) tunes the policy findings."""
    from .. import _rootfs
    from . import inventory, policy, target, vulndb
    from .tree import Tree

    warnings: list[dict] = []

    def w(path: str, message: str) -> None:
        warnings.append({"file": path, "message": message})
        warn(path, message)

    with target.open_target(store, text, ctx, options, kind) as (st, rec, path, layers), store.staging() as scratch:
        tree = Tree(path, w, scratch)
        try:
            osr, pkgs = inventory.inventory(tree)
            for p in pkgs:
                layer = None
                for ev in p.pop("evidence", [p["path"]]):
                    if not tree.exists(ev):
                        continue
                    layer = layers.which(tree.real_path(ev))
                    if layer:
                        break
                p["layer"] = layer
            findings = policy.tree_files(tree) + policy.package_caches(tree)
            layer_trees = []
            try:
                for diff_id, fd in reversed(layers.layers):
                    layer_trees.append((diff_id, Tree(_rootfs.fd_path(fd), w)))
                findings += policy.layer_secrets(layer_trees, tree)
            finally:
                for _, t in layer_trees:
                    t.close()
            config = _config(st, rec)
            findings += policy.ssh_server(tree, config)
            for f in findings:
                if f["path"] and f["layer"] is None and not f.get("deleted"):
                    f["layer"] = layers.which(f["path"])
        finally:
            tree.close()
        image = _image(store, st, rec, text)
    pkgs.sort(key=lambda p: (p["type"], p["name"], p["version"], p["path"]))
    osr.pop("_path", None)
    vulns = vulndb.match(store, osr, pkgs, w)
    return {"target": text, "image": image, "os": osr, "packages": pkgs, "vulnerabilities": vulns,
            "database": vulndb.status(store),
            "policy": policy.apply(policy.runs_as_root(config) + policy.env_secrets(config) + findings
                                   + policy.no_healthcheck(config), policy_file),
            "warnings": warnings}


def run_dir(base: str, scanner: str, stamp: str) -> str:
    """``BASE/SCANNER/STAMP/``, made for this run alone (atomic's layout of kept results): a run
    of the same second that has it already makes this one ``STAMP-2`` (``-3``...), so no run's
    results overwrite another's."""
    import os

    from ..errors import ScanError

    parent = os.path.join(base, scanner)
    try:
        os.makedirs(parent, 0o755, exist_ok=True)
        for n in range(1, 10000):
            d = os.path.join(parent, stamp if n == 1 else f"{stamp}-{n}")
            try:
                os.mkdir(d, 0o755)
                return d
            except FileExistsError:
                continue
    except OSError as e:
        raise ScanError(f"results directory {parent}: {e.strerror}") from None
    raise ScanError(f"results directory {parent}: no free name for {stamp}")


def results_dir(run: str, image_id: str) -> str:
    """``RUN/IMAGE-ID/`` (RUN from :func:`run_dir`), made."""
    import os

    from ..errors import ScanError

    d = os.path.join(run, image_id)
    try:
        os.makedirs(d, 0o755, exist_ok=True)
    except OSError as e:
        raise ScanError(f"results directory {d}: {e.strerror}") from None
    return d


def scan_openscap(store, text: str, ctx, options, outdir, *, profile: str | None = None,
                  content: str | None = None, oval: str | None = None, kind: str | None = None) -> dict:
    """Scan one target with OpenSCAP (:mod:`.openscap`); ``outdir(image_id)`` is the results
    directory oscap writes its reports into."""
    from . import inventory, openscap, target
    from .tree import Tree

    openscap.oscap_binary()
    for what, path in (("--content", content), ("--oval", oval)):
        if path is not None and not os.path.isfile(path):
            raise ScanError(f"{what} {path}: not a readable file")
    warnings: list[dict] = []
    with target.open_target(store, text, ctx, options, kind) as (st, rec, path, _layers):
        tree = Tree(path, lambda p, m: warnings.append({"file": p, "message": m}))
        try:
            osr = inventory.os_release(tree)
        finally:
            tree.close()
        osr.pop("_path", None)
        config = _config(st, rec)
        cfg = config.get("config") if isinstance(config, dict) else None
        env = (cfg or {}).get("Env") if isinstance(cfg, dict) else None
        env = env if isinstance(env, list) else []
        image = _image(store, st, rec, text)
        # the content first: an image without any is refused before a results directory is made
        ds = (content or openscap.pick_content(osr)) if content is not None or oval is None else None
        d = outdir(rec["id"])
        res = {"target": text, "image": image, "os": osr, "scanner": "openscap", "warnings": warnings,
               "results_dir": d}
        if ds is not None:
            res["xccdf"] = openscap.xccdf(path, d, ds, profile or (None if content else openscap.DEFAULT_PROFILE),
                                          text, env)
        if oval is not None:
            res["oval"] = openscap.oval(path, d, oval, text, env)
    return res


def scan_with_image(store, name: str, scan_type: str | None, targets: list[tuple[str, str | None]], ctx, options,
                    outdir, pull_fn, warn) -> list[dict]:
    """Run the declared scanner image ``name`` (:mod:`.plugins`) once over every target, each
    mounted read-only for the run; ``outdir()`` is the run's results directory (its
    ``/scanout``). One result per target: its directory there and the files the scanner wrote."""
    import contextlib

    from . import plugins, target

    scanner = plugins.find(name)
    with contextlib.ExitStack() as stack:
        opened = []
        for text, kind in targets:
            st, rec, path, _layers = stack.enter_context(target.open_target(store, text, ctx, options, kind))
            opened.append((text, _image(store, st, rec, text), path))
        d = outdir()
        # one image named twice (a store name and a transport reference of it) is one tree at
        # /scanin/ID: mounted once, both results point at its directory
        trees = list({img["id"]: path for _, img, path in opened}.items())
        run = plugins.run(store, scanner, scan_type, trees, d, pull_fn, warn)
    if run["exit_code"] != 0:
        raise ScanError(f"scanner {name} ({scanner['image']}) exited {run['exit_code']}: its output is in "
                        f"{os.path.join(d, 'scanner.log')}")
    out = []
    for text, img, _ in opened:
        rd = os.path.join(d, img["id"])
        files = []
        for dirpath, _dirs, names in os.walk(rd):
            files += sorted(os.path.relpath(os.path.join(dirpath, n), rd) for n in names)
        out.append({"target": text, "image": img, "scanner": name, "scan_type": run["scan_type"],
                    "scanner_image": scanner["image"], "results_dir": rd, "files": sorted(files), "warnings": []})
    return out


def worst(result: dict) -> int:
    """The index in SEVERITIES of the worst finding (-1: none); a finding whose severity no
    record states counts as low (an unrated vulnerability still fails ``--fail-on low``).
    OpenSCAP's failed rules count with their rule's severity."""
    sev = [f["severity"] for f in (result.get("vulnerabilities") or [])] + [f["severity"] for f in result.get("policy", [])
                                                                          if f["severity"] != "info"]
    sev += [r["severity"] for r in (result.get("xccdf") or {}).get("rules", []) if r["result"] in ("fail", "error")]
    return max((max(SEVERITIES.index(s), 1) for s in sev if s in SEVERITIES), default=-1)
