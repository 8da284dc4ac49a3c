"""uid/gid mappings between a layer (container ids) and the disk (host ids).

A mapping is a sequence of ``(container_id, host_id, size)`` triples, as in the OCI runtime
spec's ``uidMappings`` and in ``/etc/subuid``. ``None`` means the identity.
"""

from __future__ import annotations

from ..errors import LayerError


def to_host(mapping, cid: int, what: str = "uid") -> int:
    if not mapping:
        return cid
    for c, h, n in mapping:
        if c <= cid < c + n:
            return h + cid - c
    raise LayerError(f"{what} {cid} is not in the {what} mapping: extend the mapping or use a layer without it")


def to_container(mapping, hid: int, what: str = "uid") -> int:
    if not mapping:
        return hid
    for c, h, n in mapping:
        if h <= hid < h + n:
            return c + hid - h
    raise LayerError(f"host {what} {hid} has no container {what} in the mapping")
