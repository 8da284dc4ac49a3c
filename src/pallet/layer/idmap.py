"""uid/gid mappings between a layer (container ids) and the disk (host ids).

A mapping is a sequence of ``(container_id, host_id, size)`` triples, as in the OCI runtime
spec's ``uidMappings`` and in ``/etc/subuid``. ``None`` means the identity.
"""

from __future__ import annotations

from ..errors import LayerError


class Tolerant(list):
    """A mapping under which an id outside it becomes ``unmapped`` (the kernel's overflow id,
    what a process in the user namespace sees) instead of an error: ``cp`` and ``export`` of a
    container in a user namespace, whose bind mounts and unmapped image files are nobody's."""

    def __init__(self, triples, unmapped: int = 65534):
        super().__init__(triples)
        self.unmapped = unmapped


def _map(mapping, i: int, src: int, dst: int):
    """``i`` from side ``src`` of the triples to side ``dst`` (0: container, 1: host); None
    when no range holds it (a Tolerant mapping's ``unmapped``)."""
    if not mapping:
        return i
    for m in mapping:
        if m[src] <= i < m[src] + m[2]:
            return m[dst] + i - m[src]
    return mapping.unmapped if isinstance(mapping, Tolerant) else None


def to_host(mapping, cid: int, what: str = "uid") -> int:
    h = _map(mapping, cid, 0, 1)
    if h is None:
        raise LayerError(f"{what} {cid} is not in the {what} mapping: extend the mapping or use a layer without it")
    return h


def to_container(mapping, hid: int, what: str = "uid") -> int:
    c = _map(mapping, hid, 1, 0)
    if c is None:
        raise LayerError(f"host {what} {hid} has no container {what} in the mapping")
    return c
