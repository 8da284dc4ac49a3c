"""pallet's Python API: every capability of the commands, as calls with typed results.

Documented in docs/python.md. The names are re-exported by the ``pallet`` package itself
(``pallet.open_store``, ``pallet.copy``...), loaded on first use.
"""

from __future__ import annotations

from ..errors import (AccessDenied, AuthenticationRequired, BlobNotFound, BuildError, ConfigError, DigestMismatch,
                      InvalidDocument, InvalidReference, NetworkError, NotFound, PalletError, RegistryError,
                      OCIRuntimeError, StoreError, Unsupported, UsageError)
from ._common import Context, Format, Reference
from .results import (ContainerState, CopyResult, HistoryEntry, ImageInfo, InspectResult, LayerInfo,
                      RemoveResult)
from .runtime import Container, WaitTimeout, write_spec
from .store import Store, WorkingContainer, open_store
from .transport import copy, inspect, parse_reference


def build(context: str, *, dockerfile: str | None = None, tags: "list[str] | tuple[str, ...]" = (),
          build_args: "dict[str, str] | None" = None, store: Store | None = None, **options: object) -> ImageInfo:
    """``pallet build``: build ``context`` into ``store`` (default: the default store); the image.
    Other keywords are :meth:`Store.build`'s."""
    s = store if store is not None else open_store()
    return s.build(context, dockerfile=dockerfile, tags=tags, build_args=build_args, **options)  # type: ignore


def enable_debug(on: bool = True) -> None:
    """What ``--debug`` does: the ``pallet`` logger's DEBUG messages on stderr. (Or configure
    ``logging.getLogger("pallet")`` yourself.)"""
    from .. import _log

    _log.enable(on)


__all__ = [
    "open_store", "Store", "WorkingContainer", "copy", "inspect", "build", "parse_reference", "Container",
    "write_spec", "WaitTimeout", "Context", "Format", "Reference", "enable_debug",
    "ImageInfo", "HistoryEntry", "LayerInfo", "InspectResult", "CopyResult", "RemoveResult", "ContainerState",
    "PalletError", "UsageError", "InvalidReference", "InvalidDocument", "ConfigError", "NotFound", "BlobNotFound",
    "AuthenticationRequired", "AccessDenied", "RegistryError", "NetworkError", "DigestMismatch", "Unsupported",
    "StoreError", "OCIRuntimeError", "BuildError",
]
