"""pallet's Python API: every capability of the commands, as calls with typed results.

Documented in docs/python.md. The names are re-exported by the ``pallet`` package itself
(``pallet.open_store``, ``pallet.copy``...), loaded on first use.
"""

from __future__ import annotations

from ..errors import (AccessDenied, AuthenticationRequired, BlobNotFound, BuildError, ConfigError, ContainerError,
                      ContainerNotFound, ContainerStateError, DigestMismatch, InvalidDocument, InvalidReference,
                      NetworkError, NetworkInUse, NetworkNotFound, NotFound, PalletError, RegistryError,
                      OCIRuntimeError, ScanError, StoreError, Unsupported, UsageError, VolumeError, VolumeInUse,
                      VolumeNotFound)
from ._common import Context, Format, Reference
from .results import (ContainerInfo, ContainerState, CopyResult, ExecResult, HistoryEntry, ImageInfo, InspectResult,
                      LayerInfo, NetworkInfo, Package, PolicyFinding, RemoveResult, ScanReport, SystemContainerInfo,
                      VolumeInfo, Vulnerability)
from .runtime import Container, WaitTimeout, write_spec
from .store import Store, WorkingContainer, open_store
from .containers import ContainerFailed, ContainerManager, ContainerWaitTimeout, ManagedContainer
from .objects import NetworkManager, VolumeManager
from .scans import TargetKind
from .system import SystemPaths
from .transport import copy, inspect, parse_reference


def build(context: str, *, dockerfile: str | None = None, tags: "list[str] | tuple[str, ...]" = (),
          build_args: "dict[str, str] | None" = None, store: Store | None = None, **options: object) -> ImageInfo:
    """``pallet build``: build ``context`` into ``store`` (default: the default store); the image.
    Other keywords are :meth:`Store.build`'s."""
    s = store if store is not None else open_store()
    return s.build(context, dockerfile=dockerfile, tags=tags, build_args=build_args, **options)  # type: ignore


def scan_image(target: str, *, store: Store | None = None, policy: str | None = None,
               kind: TargetKind | None = None, context: Context | None = None,
               tls_verify: bool | None = None) -> ScanReport:
    """``pallet scan TARGET`` (not ``pallet.scan``: that name is the scanner's package): an image
    or container of ``store`` (default: the default store) by name or ID, or a transport
    reference (``docker://``, ``oci:``...: read into a temporary store, not added). ``policy``:
    a scan policy file (``--policy``). Vulnerabilities are matched against the store's OSV
    database (``store.import_vulnerabilities``); None without one."""
    s = store if store is not None else open_store()
    return s.scan(target, policy=policy, kind=kind, context=context, tls_verify=tls_verify)


def enable_debug(on: bool = True) -> None:
    """What ``--debug`` does: the ``pallet`` logger's DEBUG messages on stderr. (Or configure
    ``logging.getLogger("pallet")`` yourself.)"""
    from .. import _log

    _log.enable(on)


__all__ = [
    "open_store", "Store", "WorkingContainer", "copy", "inspect", "build", "parse_reference", "Container",
    "write_spec", "WaitTimeout", "Context", "Format", "Reference", "enable_debug",
    "ContainerManager", "ManagedContainer", "ContainerFailed", "ContainerWaitTimeout", "scan_image", "SystemPaths",
    "VolumeManager", "NetworkManager", "VolumeInfo", "NetworkInfo",
    "ImageInfo", "HistoryEntry", "LayerInfo", "InspectResult", "CopyResult", "RemoveResult", "ContainerState",
    "ContainerInfo", "ExecResult", "ScanReport", "Package", "Vulnerability", "PolicyFinding", "SystemContainerInfo",
    "PalletError", "UsageError", "InvalidReference", "InvalidDocument", "ConfigError", "NotFound", "BlobNotFound",
    "AuthenticationRequired", "AccessDenied", "RegistryError", "NetworkError", "DigestMismatch", "Unsupported",
    "StoreError", "OCIRuntimeError", "BuildError", "ContainerError", "ContainerNotFound", "ContainerStateError",
    "ScanError", "VolumeError", "VolumeNotFound", "VolumeInUse", "NetworkNotFound", "NetworkInUse",
]
