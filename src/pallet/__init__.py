"""pallet: a daemonless OCI container toolchain.

The library is the product; the ``pallet`` command is a thin front end over it. The public
Python API (docs/python.md) is re-exported here: ``pallet.open_store``, ``pallet.copy``,
``pallet.inspect``, ``pallet.build``, ``pallet.scan_image``, ``pallet.Container``, the result types and
the errors (``store.containers`` runs podman's containers).
They are loaded on first use (module ``__getattr__``), ``__version__`` too, so ``import
pallet`` stays cheap for the commands, which import this package on every start.
"""

_API = (
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
)

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "__version__":
        from ._version import __version__

        globals()[name] = __version__
        return __version__
    if name in _API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pallet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API) | {"__version__"})
