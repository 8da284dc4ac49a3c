"""Which image an image was built on, as podman's libimage decides it (its layer tree): the
parent has the child's top layer (an instruction that made no layer) or the layer below it,
and its config's layers and history are where the child's begin. ``rmi`` removes a parent
left dangling (no name, no other child, no container) with the image, as podman does."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store


def _config(store: "Store", rec: dict, cache: dict) -> dict | None:
    from ..errors import PalletError
    from ..storage.info import config

    if rec["id"] not in cache:
        try:
            doc = config(store, rec)
        except PalletError:
            doc = None
        cache[rec["id"]] = doc if isinstance(doc, dict) else None
    return cache[rec["id"]]


def _history(doc: dict) -> list:
    h = doc.get("history")
    return h if isinstance(h, list) else []


def _diff_ids(doc: dict) -> list:
    ids = (doc.get("rootfs") or {}).get("diff_ids") if isinstance(doc.get("rootfs"), dict) else None
    return ids if isinstance(ids, list) else []


def _parent_and_child(parent: dict, child: dict) -> bool:
    """libimage's test: the parent's layers and history start the child's, and the child has
    more history (an image is not its own parent)."""
    ph, ch = _history(parent), _history(child)
    pd, cd = _diff_ids(parent), _diff_ids(child)
    if len(ph) >= len(ch) or len(pd) > len(cd) or cd[:len(pd)] != pd:
        return False
    return ch[:len(ph)] == ph


def parent(store: "Store", rec: dict, images: list[dict], cache: dict | None = None) -> dict | None:
    """The image ``rec`` was built on among ``images`` (store records), or None."""
    cache = {} if cache is None else cache
    layers = rec.get("layers") or []
    if not layers:
        return None
    child = _config(store, rec, cache)
    if child is None:
        return None
    below = layers[:-1]
    best, best_len = None, -1
    for other in images:
        if other["id"] == rec["id"] or (other.get("layers") or []) not in (layers, below) or not other.get("layers"):
            continue
        doc = _config(store, other, cache)
        # the nearest: a grandparent can pass the same test (an instruction without a layer
        # between them), whatever order the store lists them in
        if doc is not None and _parent_and_child(doc, child) and len(_history(doc)) > best_len:
            best, best_len = other, len(_history(doc))
    return best


def ancestors(store: "Store", rec: dict) -> list[str]:
    """The IDs of ``rec``'s parent, its parent's parent, ... (nearest first)."""
    images = store.images()
    cache: dict = {}
    out: list[str] = []
    cur = rec
    while True:
        p = parent(store, cur, images, cache)
        if p is None or p["id"] in out or p["id"] == rec["id"]:
            return out
        out.append(p["id"])
        cur = p


def remove_dangling(store: "Store", chain: list[str]) -> list[str]:
    """Remove, nearest first, the images of ``chain`` (an image's ancestors, the image gone)
    that are left dangling: no name, no container, no child; stops at the first that is not.
    Decided under the store's write lock (``prune_images``). Returns the IDs removed."""
    todo = list(chain)
    cache: dict = {}

    def select(images: list[dict], in_use: set[str]) -> list[str]:
        if not todo:
            return []
        by_id = {r["id"]: r for r in images}
        nxt = by_id.get(todo[0])
        if nxt is None or nxt["names"] or nxt["id"] in in_use or any(
                r is not nxt and (parent(store, r, images, cache) or {}).get("id") == nxt["id"] for r in images):
            todo.clear()
            return []
        todo.pop(0)
        return [nxt["id"]]

    return store.prune_images(select)
