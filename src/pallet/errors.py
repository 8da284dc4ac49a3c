"""The one error hierarchy of pallet.

Every error a user can cause or meet is a :class:`PalletError` whose message says
what went wrong and, where it can, what to do. The command line prints the message
as one line on stderr and exits with ``exit_code``; a traceback is a bug.
"""

# no ``from __future__ import annotations``: the annotations below are valid at run time, and
# importing ``__future__`` cost pallet-runtime's start ~1 % of its instructions

import _thread


class PalletError(Exception):
    """Base of every error pallet raises on purpose.

    Attributes a program can use instead of parsing the message: ``exit_code`` (the status
    the command line exits with), ``reference`` (the image reference or name the failed
    operation was about, when known) and ``digest`` (the blob or manifest digest at fault,
    when there is one). Both default to None; the Python API (``pallet.api``) fills in
    ``reference`` with what it was given.
    """

    #: exit status the command line uses (skopeo's convention: 1 for failures)
    exit_code: int = 1
    #: the image reference (as the caller gave it) the error is about, when known
    reference: str | None = None
    #: the digest at fault (a blob or manifest that did not verify, or is missing), when known
    digest: str | None = None

    def __init__(self, message: str, *, reference: str | None = None, digest: str | None = None):
        super().__init__(message)
        self.message = message
        if reference is not None:
            self.reference = reference
        if digest is not None:
            self.digest = digest

    def __str__(self) -> str:  # one line, always
        return " ".join(str(self.message).split("\n"))


class UsageError(PalletError):
    """The command line or an option value is wrong."""


class InvalidReference(PalletError):
    """An image reference (``docker://...``, ``oci:...``) cannot be parsed."""


class InvalidDocument(PalletError):
    """A manifest, index, config or other JSON document is malformed.

    The message names the offending field, e.g. ``manifest: layers[2].digest: ...``.
    """


class ConfigError(PalletError):
    """A configuration file (registries.conf, auth.json, policy) is malformed."""


class NotFound(PalletError):
    """The image, manifest, tag or blob does not exist (exit code 2, as skopeo)."""

    exit_code = 2


class ObjectNotFound(NotFound):
    """``pallet inspect NAME``: no container, image, volume or network by that name (exit 125,
    as podman inspect)."""

    exit_code = 125


class BlobNotFound(NotFound):
    """A blob the manifest names is missing from the source."""


class AuthenticationRequired(PalletError):
    """The registry wants credentials we do not have, or rejected ours (HTTP 401)."""


class AccessDenied(PalletError):
    """The registry refused the operation with these credentials (HTTP 403)."""


class RegistryError(PalletError):
    """The registry answered with an error we cannot recover from."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None, **kw):
        super().__init__(message, **kw)
        self.status = status
        self.code = code


class NetworkError(PalletError):
    """The connection failed and retries were exhausted."""


class DigestMismatch(PalletError):
    """Data read did not match the digest or size it was announced with."""


class Unsupported(PalletError):
    """The operation is not possible for this image or transport (e.g. zstd in a Docker v2s2 manifest)."""


class StoreError(PalletError):
    """The local store is in a state that prevents the operation."""


class OCIRuntimeError(PalletError):
    """The OCI runtime could not create, start, signal or delete a container (runc's exit code 1)."""


# -- the features' errors, defined on first use ------------------------------------------------
# Making a class costs ~70K instructions: the fifteen classes of the features (layers, builds,
# containers, networks, volumes, scans, the CRI) were a third of this module's import, paid by
# every ``pallet-runtime`` start and every quick command that raises none of them. They are
# made, all at once and once, the first time one of their names is looked up (PEP 562), and
# are then ordinary attributes of this module: ``from pallet.errors import BuildError`` and
# ``pallet.errors.BuildError`` work as for the others, with the same ``__module__`` and
# ``__qualname__`` (pickling, repr).

_LATER = frozenset((
    "LayerError", "BuildError", "ContainerNetworkError", "NetworkNotFound", "NetworkInUse", "VolumeError",
    "VolumeNotFound", "VolumeInUse", "ContainerError", "ContainerNotFound", "ContainerStateError",
    "CommandNotFound", "CommandNotRunnable", "ScanError", "CRIError",
))
_later_lock = _thread.allocate_lock()


def __getattr__(name: str):
    if name in _LATER:
        with _later_lock:
            if name not in globals():
                globals().update(_define_later())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LATER)


def _define_later() -> dict:
    class LayerError(PalletError):
        """A tar layer is malformed, truncated or unsafe (a name or link that would escape the
        directory it is applied to), or a directory cannot be turned into a layer."""

    class BuildError(PalletError):
        """A build or a working-container operation failed: bad Dockerfile (with file:line), a
        missing COPY source, a RUN that exited non-zero (``exit_code`` is then the command's own,
        as buildah reports it), an unknown stage."""

        exit_code = 125

        def __init__(self, message: str, exit_code: int | None = None, **kw):
            super().__init__(message, **kw)
            if exit_code is not None:
                self.exit_code = exit_code

    class ContainerNetworkError(PalletError):
        """A container network cannot be created, changed, attached or detached (netavark failed,
        a subnet overlaps the host's routes, a name is taken); podman's verbs exit 125."""

        exit_code = 125

    class NetworkNotFound(ContainerNetworkError):
        """The network (name or ID) is not defined."""

    class NetworkInUse(ContainerNetworkError):
        """The network still has containers attached (``network rm`` without ``-f``: exit 2, as podman)."""

    class VolumeError(PalletError):
        """A named volume cannot be created, mounted or removed (a bad name, driver or option, a
        mount that fails); podman's volume verbs exit 125."""

        exit_code = 125

    class VolumeNotFound(VolumeError):
        """No volume by that name (``volume rm`` and ``exists`` exit 1, as podman)."""

    class VolumeInUse(VolumeError):
        """The volume still has users (containers): ``volume rm`` exits 2, as podman."""

    class ContainerError(PalletError):
        """A container (``pallet run``/``create``/``start``/``rm``...) cannot be made, started or
        removed; podman's verbs exit 125."""

        exit_code = 125

    class ContainerNotFound(ContainerError):
        """No container has that name or ID (``rm``, ``stop``... exit 1 for it, as podman)."""

    class ContainerStateError(ContainerError):
        """The container is in the wrong state for the operation (a running one removed without -f: exit 2)."""

    class CommandNotFound(ContainerError):
        """The container's command does not exist (exit 127, as podman)."""

        exit_code = 127

    class CommandNotRunnable(ContainerError):
        """The container's command cannot be invoked (permission denied), or its start fails before
        it runs (a ``--workdir`` missing, a published host port taken): exit 126, as podman."""

        exit_code = 126

    class ScanError(PalletError):
        """A scan could not be done (its target cannot be read, a bad option, a database that
        cannot be opened): ``pallet scan`` exits 125, as atomic's scan verbs did."""

        exit_code = 125

    class CRIError(PalletError):
        """A CRI request the server refuses or could not carry out; ``code`` is the gRPC status
        name the server answers with (``NOT_FOUND``, ``INVALID_ARGUMENT``, ``ALREADY_EXISTS``,
        ``FAILED_PRECONDITION``, ``UNKNOWN``...)."""

        exit_code = 125

        def __init__(self, message: str, code: str = "UNKNOWN", **kw):
            super().__init__(message, **kw)
            self.code = code

    made = {k: v for k, v in locals().items() if k in _LATER}
    for cls in made.values():
        cls.__qualname__ = cls.__name__
    return made
