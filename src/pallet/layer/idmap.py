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


def to_host(mapping, cid: int, what: str = "uid") -> int:
    if not mapping:
        return cid
    for c, h, n in mapping:
        if c <= cid < c + n:
            return h + cid - c
    if isinstance(mapping, Tolerant):
        return mapping.unmapped
    raise LayerError(f"{what} {cid} is not in the {what} mapping: extend the mapping or use a layer without it")


def to_container(mapping, hid: int, what: str = "uid") -> int:
    if not mapping:
        return hid
    for c, h, n in mapping:
        if h <= hid < h + n:
            return c + hid - h
    if isinstance(mapping, Tolerant):
        return mapping.unmapped
    raise LayerError(f"host {what} {hid} has no container {what} in the mapping")
