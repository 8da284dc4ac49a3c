"""podman's ``image tree`` and ``image diff`` over pallet's store. The file lists come from the
layers' own blobs (read as tar headers, never extracted), so neither needs a mount or root."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store

_WH = ".wh."
_OPQ = ".wh..wh..opq"


def _chain(store: "Store", rec: dict) -> list[dict]:
    """The image's layers, base first (layer records)."""
    by_id = {r["id"]: r for r in store.layers()}
    out = []
    lid = rec.get("top_layer") or ((rec.get("layers") or [None])[-1])
    seen = set()
    while lid:
        if lid in seen or lid not in by_id:
            from ..errors import StoreError

            raise StoreError(f"image {rec['id'][:12]}: layer {lid[:12]} is missing from the store "
                             "(run 'pallet system check')")
        seen.add(lid)
        out.append(by_id[lid])
        lid = by_id[lid].get("parent")
    out.reverse()
    return out


class _Tree:
    """path -> metadata, with each directory's children indexed: removing a subtree costs what it
    holds, so a layer of many whiteouts over many files stays linear."""

    def __init__(self):
        self.files: dict = {}
        self.kids: dict = {}

    def add(self, path: str, meta) -> None:
        from ..layer import tar

        old = self.files.get(path)
        if old is not None and old[0] == tar.DIR and meta[0] != tar.DIR:
            self.remove_children(path)
        up = path.rsplit("/", 1)[0]
        if up and up not in self.files:  # made on extraction though the tar names no entry
            self.add(up, (tar.DIR, 0o755, 0, 0, 0, 0, b""))
        self.files[path] = meta
        self.kids.setdefault(up or "/", set()).add(path)

    def remove_children(self, path: str) -> None:
        todo = list(self.kids.pop(path or "/", ()))
        while todo:
            p = todo.pop()
            self.files.pop(p, None)
            todo.extend(self.kids.pop(p, ()))

    def remove(self, path: str) -> None:
        if self.files.pop(path, None) is not None:
            self.kids.get(path.rsplit("/", 1)[0] or "/", set()).discard(path)
            self.remove_children(path)


def _apply(store: "Store", layer: dict, tree: _Tree) -> None:
    """Replay one layer's tar headers onto ``tree``: its whiteouts and opaque markers remove
    from the layers below (wherever they are in the tar), then its entries are added."""
    import posixpath

    from ..errors import StoreError
    from ..layer import tar
    from ..layer.stream import open_decompressed

    blob = layer.get("blob")
    if not blob:
        raise StoreError(f"layer {layer['id'][:12]} has no blob in the store to list its files from")
    entries, gone, opaque = [], [], []
    with store.open_blob(blob) as f:
        tr = tar.TarReader(open_decompressed(f))
        while True:
            h = tr.next()
            if h is None:
                break
            path = posixpath.normpath("/" + h.name.decode("utf-8", "surrogateescape").lstrip("/"))
            if path == "/":
                continue
            parent, base = path.rsplit("/", 1)
            if base == _OPQ:
                opaque.append(parent)
            elif base.startswith(_WH):
                gone.append(f"{parent}/{base[len(_WH):]}")
            else:
                entries.append((path, (h.type, h.mode & 0o7777, h.uid, h.gid, 0 if h.type == tar.DIR else h.size,
                                       h.mtime_ns // 1_000_000_000, h.linkname)))
    named = {p for p, _ in entries}
    # a directory whose entries this layer changes, without an entry of its own, gets a new
    # mtime when the layer is extracted: containers/storage then reports it changed (C)
    touched = {d for d in opaque} | {p.rsplit("/", 1)[0] for p in gone} | {p.rsplit("/", 1)[0] for p in named}
    for d in opaque:
        tree.remove_children(d)
    for p in gone:
        tree.remove(p)
    for p, meta in entries:
        tree.add(p, meta)
    for d in touched - named:
        meta = tree.files.get(d)
        if d and meta is not None:
            tree.files[d] = meta[:5] + (("extracted", layer["id"]),) + meta[6:]


def files_of(store: "Store", layers: list[dict]) -> dict:
    tree = _Tree()
    for layer in layers:
        _apply(store, layer, tree)
    return tree.files


def changes(old: dict, new: dict) -> list[tuple[str, str]]:
    """(kind, path) sorted by path: A added, C changed (type, mode, owner, size, mtime or link
    target differ, as containers/storage compares), D deleted."""
    out = []
    for p in sorted(set(old) | set(new)):
        if p not in old:
            out.append(("A", p))
        elif p not in new:
            out.append(("D", p))
        elif old[p] != new[p]:
            out.append(("C", p))
    return out


def image_diff(store: "Store", first: str, second: str | None) -> list[tuple[str, str]]:
    """``second`` None: the image's top layer against the layers below it; else ``first``'s
    changes relative to ``second`` (podman's order: ``diff new old``)."""
    a = _chain(store, store.image(first))
    if second is None:
        return changes(files_of(store, a[:-1]), files_of(store, a))
    b = _chain(store, store.image(second))
    return changes(files_of(store, b), files_of(store, a))


def image_tree(store: "Store", text: str, what_requires: bool = False) -> str:
    """podman's ``image tree`` text: the image, then its layers with the images whose top layer
    each is; ``what_requires``: the top layer and the images built on this one."""
    from ._reports import df_size

    rec = store.image(text)
    images = store.images()
    chain = _chain(store, rec)
    tops: dict[str, list[dict]] = {}
    for r in images:
        top = r.get("top_layer") or ((r.get("layers") or [None])[-1])
        if top:
            tops.setdefault(top, []).append(r)

    def names(recs):
        return "[" + " ".join(n for r in recs for n in (r["names"] or [r["id"][:12]])) + "]"

    lines = [f"Image ID: {rec['id'][:12]}", f"Tags:     [{' '.join(rec['names'])}]",
             f"Size:     {df_size(sum(la.get('size', 0) or 0 for la in chain))}", "Image Layers"]
    shown = chain
    if what_requires and chain:  # the top layer, then every layer built on it, depth first
        kids: dict = {}
        for la in store.layers():
            kids.setdefault(la.get("parent"), []).append(la)
        shown, todo, seen = [], [chain[-1]], set()
        while todo:
            la = todo.pop()
            if la["id"] in seen:  # a damaged store's parent loop: each layer once
                continue
            seen.add(la["id"])
            shown.append(la)
            # oldest first, as podman lists its layers in the order they were made
            todo.extend(sorted(kids.get(la["id"], ()), key=lambda x: (x.get("created") or "", x["id"]), reverse=True))
    for i, la in enumerate(shown):
        line = (("└── " if i == len(shown) - 1 else "├── ") +
                f"ID: {la['id'][:12]} Size: {df_size(la.get('size', 0) or 0)}")
        if la["id"] in tops:
            line += f" Top Layer of: {names(tops[la['id']])}"
        lines.append(line)
    return "\n".join(lines) + "\n"  # podman ends the tree with an empty line
