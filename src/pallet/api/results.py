"""Typed results of the Python API: frozen data classes, each one call away from its JSON form.

``as_dict()`` gives the object the command line prints as JSON for the same thing (the same
keys, in the same order: podman's ``images --format json``, skopeo's ``inspect``, podman's
``image history --format json``, runc's ``state``); ``to_json()`` gives that text.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ..errors import UsageError


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


@dataclass(frozen=True)
class ContainerInfo(_Result):
    """A run container as ``pallet container inspect`` shows it (podman's keys in ``as_dict()``)."""

    id: str
    name: str
    image_id: str
    image_name: str
    status: str
    running: bool
    pid: int
    exit_code: int
    created: str
    started_at: str
    finished_at: str
    command: tuple[str, ...]
    labels: dict[str, str]
    ip_address: str
    restart_count: int


@dataclass(frozen=True)
class VolumeInfo(_Result):
    """A named volume (``pallet volume inspect``'s object, podman's keys, in ``as_dict()``)."""

    name: str
    driver: str
    mountpoint: str
    created: str
    labels: dict[str, str]
    options: dict[str, str]


@dataclass(frozen=True)
class NetworkInfo(_Result):
    """A network (``pallet network inspect``'s object: netavark's definition, in ``as_dict()``)."""

    name: str
    id: str
    driver: str
    interface: str
    subnets: tuple[str, ...]
    gateways: tuple[str, ...]
    internal: bool
    dns_enabled: bool
    labels: dict[str, str]
    created: str

@dataclass(frozen=True)
class ExecResult(_Result):
    """What :meth:`ManagedContainer.exec_run` gives (docker-py's ``(exit_code, output)``: it
    unpacks so too)."""

    exit_code: int
    output: bytes = field(repr=False)

    def __iter__(self):
        return iter((self.exit_code, self.output))


@dataclass(frozen=True)
class Package(_Result):
    """One package a scan found (``pallet scan --format json``'s ``packages`` entry)."""

    type: str
    name: str
    version: str
    purl: str
    path: str
    layer: str | None


@dataclass(frozen=True)
class Vulnerability(_Result):
    """A known vulnerability of an installed package (the ``vulnerabilities`` entry)."""

    id: str
    aliases: tuple[str, ...]
    package: str
    installed: str
    fixed: str | None
    severity: str
    summary: str | None
    layer: str | None
    path: str | None


@dataclass(frozen=True)
class PolicyFinding(_Result):
    """A policy rule's finding (the ``policy`` entry): a secret, a setuid file, root user..."""

    rule: str
    severity: str
    message: str
    path: str | None
    layer: str | None


@dataclass(frozen=True)
class SystemContainerInfo(_Result):
    """A system container's deployment (``pallet containers list --format json``'s entry)."""

    name: str
    image: str
    image_id: str | None
    deployment: int
    current: bool
    created: str
    state: str
    #: the deployment's directory (``SYSTEM_DIR/NAME.N``)
    path: str


#: a finding's severity, lowest first (``fails(at=...)`` takes the last four)
Severity = Literal["unknown", "low", "medium", "high", "critical"]

#: ``render()``'s formats: ``pallet scan --format``'s
ScanFormat = Literal["table", "json", "cyclonedx", "spdx", "sarif"]


@dataclass(frozen=True)
class ScanReport(_Result):
    """One target's scan (``pallet scan --format json``'s ``results`` entry in ``as_dict()``)."""

    target: str
    image_id: str
    image_names: tuple[str, ...]
    os: dict[str, str]
    packages: tuple[Package, ...]
    #: None when no vulnerability database was imported (``Store.import_vulnerabilities``)
    vulnerabilities: tuple[Vulnerability, ...] | None
    policy: tuple[PolicyFinding, ...]
    warnings: tuple[str, ...]
    #: the policy file's ``fail_on`` (None without one)
    fail_on: str | None = field(default=None, compare=False)

    def worst(self) -> Severity | None:
        """The severity of the worst finding (``info`` findings do not count; an unrated one
        counts as low), or None when there is none."""
        from ..scan import SEVERITIES, worst

        i = worst(self._doc)
        return SEVERITIES[i] if i >= 0 else None  # type: ignore[return-value]

    def fails(self, at: Severity | None = None) -> bool:
        """Whether a finding is at or above ``at`` (``pallet scan --fail-on AT`` would exit 3);
        ``at=None``: the policy file's ``fail_on``, else ``"high"``."""
        from ..scan import SEVERITIES, worst

        level = at or self.fail_on or "high"
        if level not in SEVERITIES[1:]:
            raise UsageError(f"at: want low, medium, high or critical, not {level!r}")
        return worst(self._doc) >= SEVERITIES.index(level)

    def to_cyclonedx(self) -> dict[str, Any]:
        """The CycloneDX 1.5 SBOM (``--format cyclonedx``)."""
        from ..scan import report

        return report.cyclonedx(self.as_dict())

    def to_spdx(self) -> dict[str, Any]:
        """The SPDX 2.3 SBOM (``--format spdx``)."""
        from ..scan import report

        return report.spdx(self.as_dict())

    def to_sarif(self) -> dict[str, Any]:
        """SARIF 2.1.0 (``--format sarif``)."""
        from ..scan import report

        return report.sarif([self.as_dict()])

    def render(self, format: ScanFormat = "table") -> str:
        """What ``pallet scan --format FORMAT TARGET`` prints."""
        from .._std import json
        from ..scan import report

        if format == "table":
            return report.table([self.as_dict()])
        docs = {"json": lambda: report.to_json([self.as_dict()], "builtin"), "cyclonedx": self.to_cyclonedx,
                "spdx": self.to_spdx, "sarif": self.to_sarif}
        if format not in docs:
            raise UsageError(f"format: unknown format {format!r}: want table, json, cyclonedx, spdx or sarif")
        return json.dumps(docs[format](), indent=2, sort_keys=True) + "\n"


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


def container_info(doc: dict) -> ContainerInfo:
    st = doc.get("State") or {}
    net = doc.get("NetworkSettings") or {}
    cfg = doc.get("Config") or {}
    return ContainerInfo(id=doc["Id"], name=doc.get("Name") or "", image_id=doc.get("Image") or "",
                         image_name=doc.get("ImageName") or "", status=st.get("Status") or "",
                         running=bool(st.get("Running")), pid=st.get("Pid") or 0, exit_code=st.get("ExitCode") or 0,
                         created=doc.get("Created") or "", started_at=st.get("StartedAt") or "",
                         finished_at=st.get("FinishedAt") or "",
                         command=tuple([doc["Path"]] + list(doc.get("Args") or [])) if doc.get("Path") else (),
                         labels=_freeze_map(cfg.get("Labels")), ip_address=net.get("IPAddress") or "",
                         restart_count=doc.get("RestartCount") or 0, _doc=doc)


def volume_info(doc: dict) -> VolumeInfo:
    return VolumeInfo(name=doc["Name"], driver=doc.get("Driver") or "", mountpoint=doc.get("Mountpoint") or "",
                      created=doc.get("CreatedAt") or "", labels=_freeze_map(doc.get("Labels")),
                      options=_freeze_map(doc.get("Options")), _doc=doc)


def network_info(doc: dict) -> NetworkInfo:
    subs = doc.get("subnets") or []
    return NetworkInfo(name=doc["name"], id=doc.get("id") or "", driver=doc.get("driver") or "",
                       interface=doc.get("network_interface") or "", subnets=tuple(s["subnet"] for s in subs),
                       gateways=tuple(s["gateway"] for s in subs if s.get("gateway")),
                       internal=bool(doc.get("internal")), dns_enabled=bool(doc.get("dns_enabled")),
                       labels=_freeze_map(doc.get("labels")), created=doc.get("created") or "", _doc=doc)

def exec_result(code: int, output: bytes) -> ExecResult:
    return ExecResult(exit_code=code, output=output,
                      _doc={"ExitCode": code, "Output": output.decode("utf-8", "replace")})


def package(d: dict) -> Package:
    return Package(type=d.get("type") or "", name=d.get("name") or "", version=d.get("version") or "",
                   purl=d.get("purl") or "", path=d.get("path") or "", layer=d.get("layer"), _doc=d)


def vulnerability(d: dict) -> Vulnerability:
    return Vulnerability(id=d["id"], aliases=tuple(d.get("aliases") or ()), package=d.get("package") or "",
                         installed=d.get("installed") or "", fixed=d.get("fixed"),
                         severity=d.get("severity") or "unknown", summary=d.get("summary"), layer=d.get("layer"),
                         path=d.get("path"), _doc=d)


def policy_finding(d: dict) -> PolicyFinding:
    return PolicyFinding(rule=d["rule"], severity=d.get("severity") or "unknown", message=d.get("message") or "",
                         path=d.get("path"), layer=d.get("layer"), _doc=d)


def system_container_info(d: dict) -> SystemContainerInfo:
    return SystemContainerInfo(name=d["name"], image=d.get("image") or "", image_id=d.get("image_id"),
                               deployment=d.get("deployment", 0), current=bool(d.get("current")),
                               created=d.get("created") or "", state=d.get("state") or "", path=d.get("path") or "",
                               _doc=d)


RESULT_TYPES = (ImageInfo, HistoryEntry, LayerInfo, InspectResult, CopyResult, RemoveResult, ContainerState,
                ContainerInfo, ExecResult, VolumeInfo, NetworkInfo, Package, Vulnerability, PolicyFinding, ScanReport,
                SystemContainerInfo)
__all__ = [t.__name__ for t in RESULT_TYPES]
del dataclasses
