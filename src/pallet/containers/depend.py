"""Containers that depend on another: those that joined its namespaces (``--network
container:X``, ``--pid/--ipc/--uts/--cgroupns container:X``). podman's ``rm`` refuses to remove a
container others depend on; ``rm --depend`` removes them first."""

from __future__ import annotations

from ..errors import ContainerNotFound

PREFIX = "container:"


def _targets(meta: dict) -> list:
    refs = [n for n in meta.get("networks") or () if isinstance(n, str) and n.startswith(PREFIX)]
    refs += [v for v in ((meta.get("extra") or {}).get("namespaces") or {}).values()
             if isinstance(v, str) and v.startswith(PREFIX)]
    return [r[len(PREFIX):] for r in refs]


def dependents(ctrs, cid: str) -> list:
    """The IDs of the containers that joined a namespace of container ``cid``."""
    out = []
    for c in ctrs.list():
        if c["id"] == cid:
            continue
        for ref in _targets(c["metadata"].get("pallet") or {}):
            try:
                if ctrs.get(ref)["id"] == cid:
                    out.append(c["id"])
                    break
            except ContainerNotFound:
                continue
    return out


def removal_order(ctrs, cid: str) -> list:
    """``cid`` and everything that depends on it, dependents first (each once)."""
    order: list = []

    def visit(x: str, path: tuple) -> None:
        if x in order or x in path:  # done, or a cycle: stop there
            return
        for d in dependents(ctrs, x):
            visit(d, path + (x,))
        order.append(x)

    visit(cid, ())
    return order
