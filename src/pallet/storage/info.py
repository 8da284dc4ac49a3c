"""What the store can tell about its images: inspect, history, disk use, prune (listing filters: cli/_filters.py)."""

from __future__ import annotations

from .._std import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import Store


#: an image config is a few KiB: a bigger blob is refused, not read whole
MAX_CONFIG = 16 << 20


def config(store: "Store", rec: dict) -> dict:
    """The image config of the image record ``rec``, parsed (bounded); a blob that cannot be
    read or parsed is a StoreError naming the image."""
    from ..errors import StoreError

    try:
        with store.open_blob(rec["config"]) as f:
            raw = f.read(MAX_CONFIG + 1)
        if len(raw) > MAX_CONFIG:
            raise ValueError("larger than 16 MiB")
        return json.loads(raw)
    except (OSError, KeyError, ValueError, TypeError):
        raise StoreError(f"image {str(rec.get('id', '?'))[:12]}: its config cannot be read") from None


def run_config(store: "Store", rec: dict) -> dict:
    """The image's ``config`` part (Entrypoint, Cmd, Env, ...): ``{}`` when it has none."""
    doc = config(store, rec)
    cfg = doc.get("config") if isinstance(doc, dict) else None
    return cfg if isinstance(cfg, dict) else {}


_config = config  # the old name (cli/_filters.py reaches it through its module object)


def pulled_digests(rec: dict) -> list[str]:
    """The image's manifest digests, then the manifest list it was pulled through, if any
    (podman's RepoDigests hold both, in that order)."""
    lst = rec.get("list_digest")
    return list(rec["digests"]) + ([lst] if lst and lst not in rec["digests"] else [])


def digest_shown(rec: dict) -> str:
    """podman's image Digest: what it was pulled by (the manifest list, when it came through one)."""
    return rec.get("list_digest") or rec["digest"]


def repo_tags_digests(rec: dict) -> tuple[list[str], list[str]]:
    """RepoTags (names with a tag) and RepoDigests (each repository it is named in, with each
    digest it has, and the names it was pulled by digest as)."""
    from .names import split_name

    tags = [n for n in rec["names"] if "@" not in n]
    repos = sorted({split_name(n)[0] for n in rec["names"]})
    digests = [f"{r}@{d}" for r in repos for d in pulled_digests(rec)]
    digests += [n for n in rec["names"] if "@" in n and n not in digests]
    return tags, digests


def image_summary(rec: dict, labels: dict | None, containers: int, dangling: bool) -> dict:
    """One image of podman's ``images --format json`` (its ImageSummary), from the store's
    record: the one definition of that JSON form (``pallet images`` prints it, the API's
    ``ImageInfo.as_dict()`` gives it). Plain dicts, no dataclasses: ``images`` is a quick command."""
    from ..oci.times import parse_rfc3339

    tags, digests = repo_tags_digests(rec)
    created = rec.get("created", "")
    try:
        seconds = int(parse_rfc3339(created)) if isinstance(created, str) else 0
    except ValueError:
        seconds = 0
    doc = {"Id": rec["id"], "ParentId": "", "RepoTags": tags or None, "RepoDigests": digests,
           "Size": rec.get("size", 0), "SharedSize": 0, "VirtualSize": rec.get("size", 0),
           "Labels": labels or None, "Containers": containers, "Names": list(rec["names"]) or None,
           "Digest": digest_shown(rec), "Digests": pulled_digests(rec), "History": names_history(rec) or None,
           "Created": seconds, "CreatedAt": created}
    if dangling:  # podman's omitempty
        doc["Dangling"] = True
    return doc


def inspect_image(store: "Store", text: str) -> dict:
    """podman image inspect's object for one image."""
    rec = store.image(text)
    cfg = config(store, rec)
    with store.read() as st:
        chain = store.layer_chain(st, rec.get("top_layer"))
    tags, digests = repo_tags_digests(rec)
    drv = store.driver
    graph: dict = {"Name": drv.name, "Data": {}}
    if chain:
        if drv.name == "overlay":
            graph["Data"] = {"UpperDir": drv.diff_dir(chain[0]["id"]), "WorkDir": drv.layer_dir(chain[0]["id"]) + "/work"}
            if len(chain) > 1:
                graph["Data"]["LowerDir"] = ":".join(drv.diff_dir(r["id"]) for r in chain[1:])
        else:
            graph["Data"] = {"Dir": drv.layer_dir(chain[0]["id"])}
    c = cfg.get("config") or {}
    return {
        "Id": rec["id"],
        "Digest": digest_shown(rec),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": _comment(cfg),
        "Created": cfg.get("created", rec.get("created")),
        "Config": c,
        "Version": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Size": rec.get("size", 0),
        "VirtualSize": rec.get("size", 0),
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": list((cfg.get("rootfs") or {}).get("diff_ids") or [])},
        "Labels": c.get("Labels"),
        "Annotations": _manifest_annotations(store, rec),
        "ManifestType": rec["manifests"].get(rec["digest"], ""),
        "User": c.get("User", ""),
        "History": cfg.get("history") or [],
        "NamesHistory": names_history(rec),
    }


def _comment(cfg: dict) -> str:
    """libimage's: the config's comment, else the first history entry's (``podman import -m``)."""
    hist = cfg.get("history")
    first = hist[0] if isinstance(hist, list) and hist and isinstance(hist[0], dict) else {}
    out = cfg.get("comment") or first.get("comment") or ""
    return out if isinstance(out, str) else ""


def _manifest_annotations(store: "Store", rec: dict) -> dict:
    try:
        with store.open_blob(rec["digest"]) as f:
            return json.loads(f.read()).get("annotations") or {}
    except (OSError, ValueError):
        return {}


def history(store: "Store", text: str) -> list[dict]:
    """podman image history rows, newest first: id, created, created_by, size, comment."""
    rec = store.image(text)
    cfg = config(store, rec)
    with store.read() as st:
        chain = list(reversed(store.layer_chain(st, rec.get("top_layer"))))  # base first
    rows = []
    layer_i = 0
    hist = cfg.get("history") or [{"created": cfg.get("created", "")} for _ in chain]
    for h in hist:
        size = 0
        if not h.get("empty_layer") and layer_i < len(chain):
            size = chain[layer_i].get("size", 0)
            layer_i += 1
        rows.append({"id": "<missing>", "created": h.get("created", ""), "created_by": h.get("created_by", ""),
                     "size": size, "comment": h.get("comment", ""), "tags": None})
    rows.reverse()
    if rows:
        rows[0]["id"] = rec["id"]
        rows[0]["tags"] = [n for n in rec["names"]]
    return rows


def names_history(rec: dict) -> list[str]:
    """Every name the image has had, the latest first (a record from before the store kept
    them: its names, the last first)."""
    if "names_history" in rec:
        return list(rec["names_history"])
    return list(reversed(rec["names"]))


def intermediate_ids(images: list[dict]) -> set[str]:
    """Unnamed images another image is built on (podman's intermediate images, e.g. the build
    cache's steps): ``images`` hides them unless ``--all``."""
    used_layers: dict[str, set[str]] = {}
    for rec in images:
        for lid in rec.get("layers") or []:
            used_layers.setdefault(lid, set()).add(rec["id"])
    out = set()
    for rec in images:
        top = rec.get("top_layer")
        if not rec["names"] and top and used_layers.get(top, set()) - {rec["id"]}:
            out.add(rec["id"])
    return out


def prune(store: "Store", all_unused: bool = False, keep=None) -> list[str]:
    """Remove dangling images (no name and no child: not the build cache's intermediate images,
    which images built on them need), or with ``all_unused`` every image no container uses;
    ``keep(rec)`` true spares an image (``image prune --filter``). As podman does, it goes round
    again while a round removed something: an intermediate image whose last child was dangling
    is dangling now."""
    spared: set[str] = set()

    def select(images: list[dict], in_use: set[str]) -> list[str]:
        parents = set() if all_unused else intermediate_ids(images)
        batch = []
        for rec in images:
            iid = rec["id"]
            if iid in in_use or iid in parents or iid in spared or (rec["names"] and not all_unused):
                continue
            if keep is not None and keep(rec):
                spared.add(iid)
                continue
            batch.append(iid)
        return batch

    # decided and removed under the store's write lock: a concurrent build's step image or
    # working container cannot change between the decision and the removal
    return store.prune_images(select)


def disk_usage(store: "Store") -> dict:
    """Sizes as podman system df reports them (images, containers)."""
    images = store.images()
    containers = store.containers()
    layers = {r["id"]: r for r in store.layers()}
    used = {c["image"] for c in containers}
    size = sum(r.get("size", 0) for r in layers.values() if r.get("kind") == "image")
    unused_layers = set()
    for rec in images:
        if rec["id"] not in used:
            unused_layers.update(rec.get("layers") or [])
    for rec in images:
        if rec["id"] in used:
            unused_layers.difference_update(rec.get("layers") or [])
    reclaim = sum(layers[lid].get("size", 0) for lid in unused_layers if lid in layers)
    import os

    csize = 0
    for c in containers:
        d = store.driver.diff_dir(c["layer"])
        for root, _, files in os.walk(d):
            for f in files:
                try:
                    csize += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
    return {"images": {"total": len(images), "active": len(used & {r["id"] for r in images}),
                       "size": size, "reclaimable": reclaim},
            "containers": {"total": len(containers), "active": 0, "size": csize, "reclaimable": csize}}
