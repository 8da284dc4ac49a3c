"""Typed results of the Python API: frozen data classes, each one call away from its JSON form.

``as_dict()`` gives the object the command line prints as JSON for the same thing (the same
keys, in the same order: podman's ``images --format json``, skopeo's ``inspect``, podman's
``image history --format json``, runc's ``state``); ``to_json()`` gives that text.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping


def _freeze_map(d: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(d or {})


@dataclass(frozen=True)
class _Result:
    #: the command line's JSON object for this result (``as_dict()`` returns a copy)
    _doc: dict[str, Any] = field(repr=False, compare=False, kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object the command line prints for this (a fresh copy: yours to change)."""
        return _copy.deepcopy(self._doc)

    def to_json(self, indent: int | None = 4) -> str:
        """``as_dict()`` as JSON text."""
        from .._std import json as _json

        return _json.dumps(self.as_dict(), indent=indent)


@dataclass(frozen=True)
class ImageInfo(_Result):
    """An image in the local store (podman's ``images --format json`` entry)."""

    id: str
    names: tuple[str, ...]
    digest: str
    digests: tuple[str, ...]
    created: str
    size: int
    labels: dict[str, str]
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    containers: int
    dangling: bool

    @property
    def short_id(self) -> str:
        """The 12-character ID the command line shows."""
        return self.id[:12]


@dataclass(frozen=True)
class HistoryEntry(_Result):
    """One row of an image's history, newest first (podman's ``image history --format json``)."""

    id: str
    created: str
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class LayerInfo(_Result):
    """One layer as a manifest lists it (skopeo inspect's ``LayersData`` entry)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]


@dataclass(frozen=True)
class InspectResult(_Result):
    """What ``pallet inspect`` (skopeo inspect) says about an image in any transport."""

    name: str | None
    digest: str
    repo_tags: tuple[str, ...]
    created: str | None
    docker_version: str | None
    labels: dict[str, str]
    architecture: str
    variant: str | None
    os: str
    layers: tuple[LayerInfo, ...]
    env: tuple[str, ...]


@dataclass(frozen=True)
class CopyResult(_Result):
    """The manifest a copy (or push) wrote: its digest, media type and bytes."""

    digest: str
    media_type: str
    manifest: bytes = field(repr=False)


@dataclass(frozen=True)
class RemoveResult(_Result):
    """What removing an image did (``pallet rmi``'s ``Untagged:``/``Deleted:`` lines)."""

    id: str
    untagged: tuple[str, ...]
    deleted: bool


@dataclass(frozen=True)
class ContainerState(_Result):
    """A runtime container's state (the OCI runtime spec's state, as ``pallet-runtime state``)."""

    id: str
    status: str
    pid: int
    bundle: str
    rootfs: str
    created: str
    owner: str
    annotations: dict[str, str]


# -- builders from the library's records (internal) -------------------------------------------

def image_info(rec: dict, labels: Mapping[str, str] | None, containers: int, dangling: bool) -> ImageInfo:
    from ..storage import info

    doc = info.image_summary(rec, dict(labels) if labels else None, containers, dangling)
    tags, digests = info.repo_tags_digests(rec)
    return ImageInfo(id=rec["id"], names=tuple(rec["names"]), digest=rec["digest"], digests=tuple(rec["digests"]),
                     created=rec.get("created", ""), size=rec.get("size", 0), labels=_freeze_map(labels),
                     repo_tags=tuple(tags), repo_digests=tuple(digests), containers=containers, dangling=dangling,
                     _doc=doc)


def history_entry(r: dict) -> HistoryEntry:
    doc = {"id": r["id"], "created": r["created"], "createdBy": r["created_by"], "size": r["size"],
           "comment": r["comment"], "tags": r["tags"]}
    return HistoryEntry(id=r["id"], created=r["created"], created_by=r["created_by"], size=r["size"],
                        comment=r["comment"], tags=tuple(r["tags"] or ()), _doc=doc)


def inspect_result(doc: dict) -> InspectResult:
    layers = tuple(LayerInfo(media_type=d["MIMEType"], digest=d["Digest"], size=d["Size"],
                             annotations=_freeze_map(d.get("Annotations")), _doc=d)
                   for d in doc.get("LayersData") or ())
    return InspectResult(name=doc.get("Name"), digest=doc["Digest"], repo_tags=tuple(doc.get("RepoTags") or ()),
                         created=doc.get("Created"), docker_version=doc.get("DockerVersion"),
                         labels=_freeze_map(doc.get("Labels")), architecture=doc.get("Architecture") or "",
                         variant=doc.get("Variant"), os=doc.get("Os") or "", layers=layers,
                         env=tuple(doc.get("Env") or ()), _doc=doc)


def copy_result(r: Any) -> CopyResult:
    return CopyResult(digest=r.digest, media_type=r.media_type, manifest=bytes(r.manifest),
                      _doc={"Digest": r.digest, "MediaType": r.media_type})


def container_state(doc: dict) -> ContainerState:
    return ContainerState(id=doc["id"], status=doc["status"], pid=doc.get("pid", 0), bundle=doc.get("bundle", ""),
                          rootfs=doc.get("rootfs", ""), created=doc.get("created", ""), owner=doc.get("owner", ""),
                          annotations=_freeze_map(doc.get("annotations")), _doc=doc)


RESULT_TYPES = (ImageInfo, HistoryEntry, LayerInfo, InspectResult, CopyResult, RemoveResult, ContainerState)
__all__ = [t.__name__ for t in RESULT_TYPES]
del dataclasses
