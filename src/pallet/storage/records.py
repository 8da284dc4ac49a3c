"""The store's records and the helpers every part of it shares: the loaded tables
(:class:`State`), chain IDs, the blobs a manifest names, the errors image verbs raise."""

from __future__ import annotations

import time

from .._std import json
from ..errors import NotFound, PalletError


class ImageInUse(PalletError):
    """An image cannot be removed: a container uses it or it is mounted (podman's exit 2)."""

    exit_code = 2


class ImageUnknown(NotFound):
    """No image by that name or ID (podman's rmi exits 1 for this)."""


def rmtree(path: str, ignore_errors: bool = True) -> None:
    if ignore_errors:
        from .._fs import rmtree as quiet  # not shutil: its imports (bz2, lzma) cost every command

        quiet(path)
        return
    import shutil

    shutil.rmtree(path)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_ns() -> str:
    """:func:`now` with nanoseconds (RFC 3339, fixed width: strings sort as times), for an order
    within one second (the images' ``added``: ``rmi -a`` goes in the order they came)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def manifest_layer_blobs(raw: bytes) -> list[str]:
    """The layer blobs a stored (single-image) manifest names that the store must be able to
    produce: every layer's digest but foreign ones (fetched from their URLs). Lenient: the
    manifest was checked when it came in; only ``layers[].digest`` matters here."""
    from ..oci import mediatype as mt

    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    layers = doc.get("layers") if isinstance(doc, dict) else None
    out = []
    for d in layers if isinstance(layers, list) else ():
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            continue
        if d.get("urls") and mt.is_nondistributable(str(d.get("mediaType") or "")):
            continue
        out.append(d["digest"])
    return out


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs (hex) of a layer stack, base first: the OCI image-spec's ChainID."""
    out: list[str] = []
    for d in diff_ids:
        out.append(chain_step(out[-1], d) if out else d.split(":", 1)[1])
    return out


def chain_step(parent_chain_hex: str, diff_id: str) -> str:
    """The chain ID (hex) of a layer with ``diff_id`` on top of the chain ``parent_chain_hex``."""
    from ..oci.digest import of_bytes

    return of_bytes(f"sha256:{parent_chain_hex} {diff_id}".encode()).split(":", 1)[1]


class State:
    """The three record tables as loaded under the store lock (``dirty``: tables to write; ``after``: file
    moves to do once they are written)."""

    __slots__ = ("layers", "images", "containers", "dirty", "after")

    def __init__(self, layers: dict, images: dict, containers: dict):
        self.layers = layers
        self.images = images
        self.containers = containers
        self.dirty: set[str] = set()
        #: file moves to do once the metadata is written (still under the lock): removing files
        #: only after the records no longer name them means a crash never leaves a record
        #: pointing at nothing, only unnamed files that the next start cleans up
        self.after: list = []
