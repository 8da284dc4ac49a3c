"""What each listing verb's ``--format`` template sees: the fields of its JSON output, plus the
display fields podman/buildah add (``.Repository``, ``.Tag``, ``.CreatedSince``, human
``.Size``...), named as they name them; and the ``table`` headers of those fields.

A ``--format`` that is not ``json`` goes through :func:`output`, the one path for every
verb: a template over these rows, or an error; never the default table.
"""

from __future__ import annotations

import time

from ._table import ago, human_size
from ._template import Struct


def go_time(ts: float) -> str:
    """Go's time.Time.String() in UTC (``2026-12-07 04:00:00 +0000 UTC``)."""
    t = time.gmtime(ts)
    frac = ts - int(ts)
    s = time.strftime("%Y-%m-%d %H:%M:%S", t)
    if frac:
        s += f"{frac:.9f}"[1:].rstrip("0")
    return s + " +0000 UTC"


def parse_ts(iso) -> float | None:
    """An RFC 3339 time as seconds since the epoch; None if ``iso`` is not one."""
    from ._table import parse_time

    if not isinstance(iso, str):
        return None
    try:
        return parse_time(iso)
    except ValueError:
        return None


def headers(fields, overrides: dict | None = None) -> dict:
    """A column name per field: ``CreatedSince`` -> ``CREATED SINCE`` (podman's rule), then overrides."""
    out = {}
    for f in fields:
        words, cur = [], ""
        for i, c in enumerate(f):
            if c.isupper() and cur and (not cur[-1].isupper() or (i + 1 < len(f) and f[i + 1].islower())):
                words.append(cur)
                cur = ""
            cur += c
        words.append(cur)
        out[f] = " ".join(words).upper()
    out.update(overrides or {})
    return out


def output(fmt: str, rows: list, fields, overrides: dict | None = None, name: str = "format",
           noheading: bool = False) -> None:
    """Print ``rows`` through the ``--format`` template (``table ...`` adds headers unless ``noheading``)."""
    from ._template import render_rows

    text = render_rows(fmt, rows, headers(fields, overrides), name, noheading)
    if text:
        print(text)


# -- images ----------------------------------------------------------------------------------

IMAGE_HEADERS = {"ID": "IMAGE ID", "Id": "IMAGE ID", "ReadOnly": "R/O", "CreatedSince": "CREATED"}


def image_json(rec: dict, labels: dict | None, containers: int, dangling: bool) -> dict:
    """One image of ``images --format json``: the store's definition (``ImageInfo.as_dict()`` too)."""
    from ..storage.info import image_summary

    return image_summary(rec, labels, containers, dangling)


def image_row(doc: dict, name: str, no_trunc: bool) -> Struct:
    """A template's view of one image under one of its names (podman's imageReporter)."""
    repo, _, tag = name.rpartition(":") if name else ("<none>", "", "<none>")
    if "@" in name:
        repo, tag = name.split("@", 1)[0], "<none>"
    created = parse_ts(doc["CreatedAt"])
    at = go_time(created) if created is not None else ""
    row = Struct("images.imageReporter", doc, json_view=doc)
    row.update({
        "ID": ("sha256:" + doc["Id"]) if no_trunc else doc["Id"][:12],
        "Repository": repo or "<none>", "Tag": tag or "<none>",
        "Labels": doc["Labels"] or {}, "RepoTags": doc["RepoTags"] or [], "Names": doc["Names"] or [],
        "Created": ago(doc["CreatedAt"]), "CreatedSince": ago(doc["CreatedAt"]),
        "CreatedAt": at, "CreatedTime": at,
        "Size": human_size(doc["Size"]), "UniqueSize": doc["Size"] - doc["SharedSize"],
        "History": ", ".join(doc["History"] or []), "ReadOnly": False, "Dangling": doc.get("Dangling", False),
    })
    return row


# -- image history ---------------------------------------------------------------------------

HISTORY_FIELDS = ("ID", "Created", "CreatedSince", "CreatedAt", "CreatedBy", "Size", "Comment", "Tags")


def history_row(r: dict, no_trunc: bool, human: bool) -> Struct:
    ts = parse_ts(r["created"])
    return Struct("images.historyReporter", {
        "ID": r["id"] if no_trunc or r["id"] == "<missing>" else r["id"][:12],
        "Created": ago(r["created"]) if human else r["created"], "CreatedSince": ago(r["created"]),
        "CreatedAt": go_time(ts) if ts is not None else "", "CreatedBy": r["created_by"],
        "Size": human_size(r["size"]) if human else r["size"], "Comment": r["comment"], "Tags": r["tags"] or [],
    })


# -- system df -------------------------------------------------------------------------------

DF_FIELDS = ("Type", "Total", "Active", "Size", "Reclaimable", "RawSize", "RawReclaimable")


def df_size(n: float) -> str:
    """go-units HumanSize, as ``system df`` prints sizes (``352.5kB``)."""
    from ..builder.run import human_size

    return human_size(n)


def df_row(kind: str, d: dict) -> Struct:
    pct = int(100 * d["reclaimable"] / d["size"]) if d["size"] else 0
    return Struct("system.dfSummary", {
        "Type": kind, "Total": d["total"], "Active": d["active"], "Size": df_size(d["size"]),
        "Reclaimable": f"{df_size(d['reclaimable'])} ({pct}%)", "RawSize": d["size"],
        "RawReclaimable": d["reclaimable"]},
        json_view={"Type": kind, "Total": d["total"], "Active": d["active"], "Size": d["size"],
                   "Reclaimable": d["reclaimable"]})


# -- builder containers ----------------------------------------------------------------------

BUILDER_FIELDS = ("ContainerID", "Builder", "ImageID", "ImageName", "ContainerName")
BUILDER_HEADERS = {"ContainerID": "CONTAINER ID", "Builder": "BUILDER", "ImageID": "IMAGE ID",
                   "ImageName": "IMAGE NAME", "ContainerName": "CONTAINER NAME"}


def builder_row(b) -> Struct:
    """buildah's containerOutputParams: with --format, IDs are never truncated (as buildah)."""
    return Struct("main.containerOutputParams", {
        "ContainerID": b.id, "Builder": "   *", "ImageID": b.meta.get("image_id") or "",
        "ImageName": b.meta.get("from") or "", "ContainerName": b.name})
