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

SEVERITIES = ("unknown", "low", "medium", "high", "critical")


def scan_one(store, text: str, ctx, options, warn) -> dict:
    """Scan one target; the result (see docs/scan.md for its fields)."""
    from .. import _rootfs
    from ..images.refs import has_transport
    from ..storage import info
    from . import inventory, policy, target, vulndb
    from .tree import Tree

    warnings: list[dict] = []

    def w(path: str, message: str) -> None:
        warnings.append({"file": path, "message": message})
        warn(path, message)

    if has_transport(text) and not text.startswith("containers-storage:"):
        opened = target.transport_image(store, text, ctx, options)
    else:
        opened = target.store_image(store, text.removeprefix("containers-storage:"))
    with opened as (st, rec, path, layers), store.staging() as scratch:
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
            findings = policy.setuid_files(tree)
            layer_trees = []
            try:
                for diff_id, fd in reversed(layers.layers):
                    layer_trees.append((diff_id, Tree(_rootfs.fd_path(fd), w)))
                findings += policy.layer_secrets(layer_trees, tree)
            finally:
                for _, t in layer_trees:
                    t.close()
        finally:
            tree.close()
        try:
            config = info.config(st, rec)
        except (OSError, ValueError):
            config = {}
        image = {"id": rec["id"], "names": list(rec.get("names") or []) if st is store else [text]}
    pkgs.sort(key=lambda p: (p["type"], p["name"], p["version"], p["path"]))
    osr.pop("_path", None)
    vulns = vulndb.match(store, osr, pkgs, w)
    return {"target": text, "image": image, "os": osr, "packages": pkgs, "vulnerabilities": vulns,
            "database": vulndb.status(store),
            "policy": policy.runs_as_root(config) + policy.env_secrets(config) + findings, "warnings": warnings}


def worst(result: dict) -> int:
    """The index in SEVERITIES of the worst finding (-1: none); a finding whose severity no
    record states counts as low (an unrated vulnerability still fails ``--fail-on low``)."""
    sev = [f["severity"] for f in (result.get("vulnerabilities") or [])] + [f["severity"] for f in result.get("policy", [])]
    return max((max(SEVERITIES.index(s), 1) for s in sev if s in SEVERITIES), default=-1)
