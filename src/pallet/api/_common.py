"""What every part of the API shares: registry options, references, format names, errors."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Literal, Union

from ..errors import PalletError, UsageError
from ..transports.base import ImageReference, SystemContext

#: a reference: ``transport:details`` text (``docker://host/repo:tag``, ``oci:/dir:tag``...) or a
#: parsed :class:`~pallet.transports.base.ImageReference` (``pallet.parse_reference``)
Reference = Union[str, ImageReference]

#: manifest formats, as the command line names them (``--format oci|docker``)
Format = Literal["oci", "docker"]


@dataclass(frozen=True)
class Context:
    """How to reach registries (one side of an operation): the registry flags of the command line.

    ``tls_verify=None`` follows registries.conf (``insecure = true``) and otherwise verifies;
    ``creds`` is ``"user:password"``; ``authfile`` defaults to the usual auth.json.
    """

    tls_verify: bool | None = None
    creds: str | None = None
    registry_token: str | None = None
    authfile: str | None = None
    registries_conf: str | None = None
    cert_dir: str | None = None
    retry_times: int = 3
    override_os: str | None = None
    override_arch: str | None = None
    override_variant: str | None = None

    def system_context(self) -> SystemContext:
        """A fresh library SystemContext for one call (the library may change it; this never changes)."""
        ctx = SystemContext(tls_verify=self.tls_verify, creds=self.creds, registry_token=self.registry_token,
                            authfile=self.authfile, registries_conf=self.registries_conf, cert_dir=self.cert_dir,
                            retry_times=self.retry_times, override_os=self.override_os,
                            override_arch=self.override_arch, override_variant=self.override_variant)
        return ctx


def context_of(context: Context | None, tls_verify: bool | None) -> Context:
    """``context``, with ``tls_verify`` (a shortcut keyword) applied when given."""
    if context is not None and not isinstance(context, Context):
        raise UsageError(f"context: want a pallet.Context, not {type(context).__name__}")
    c = context or Context()
    if tls_verify is not None:
        from dataclasses import replace

        c = replace(c, tls_verify=tls_verify)
    return c


def parse(ref: Reference, what: str = "reference", store=None) -> ImageReference:
    """``ref`` parsed; a ``local:`` one names an image in ``store`` (a storage ``Store``)."""
    if isinstance(ref, ImageReference):
        return ref
    if not isinstance(ref, str):
        raise UsageError(f"{what}: want a string such as docker://host/repo:tag or a parsed reference, "
                         f"not {type(ref).__name__}")
    from ..images.refs import parse_reference

    return parse_reference(ref, store)


def name_arg(v: object, what: str) -> str:
    """``v``, a non-empty string (a name or ID the call was given), or a UsageError naming ``what``."""
    if not isinstance(v, str) or not v:
        raise UsageError(f"{what}: want a name or ID as a string, not {type(v).__name__}")
    return v


def strings_arg(v: object, what: str) -> list[str]:
    """``v`` (a string, or an iterable of strings) as a new list; else a UsageError naming ``what``."""
    if isinstance(v, str):
        return [v]
    try:
        out = list(v)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError(f"{what}: want a string or a list of strings, not {type(v).__name__}") from None
    if not all(isinstance(x, str) for x in out):
        raise UsageError(f"{what}: want strings")
    return out


def manifest_type(fmt: str | None) -> str | None:
    """The media type for a format name (``oci``, ``docker``; the CLI's ``v2s2`` too)."""
    if fmt is None:
        return None
    from ..oci import mediatype as mt

    types = {"oci": mt.OCI_MANIFEST, "docker": mt.DOCKER_V2S2, "v2s2": mt.DOCKER_V2S2}
    if fmt not in types:
        raise UsageError(f"format: unknown format {fmt!r}: want oci or docker")
    return types[fmt]


def image_format(fmt: str) -> str:
    """A format name for images made in the store (build, commit): oci or docker."""
    if fmt not in ("oci", "docker"):
        raise UsageError(f"format: unknown format {fmt!r}: want oci or docker")
    return fmt


@contextlib.contextmanager
def about(reference: object) -> Iterator[None]:
    """Errors raised inside say which reference they were about (``exc.reference``), unless they know."""
    try:
        yield
    except PalletError as e:
        if e.reference is None and reference is not None:
            e.reference = str(reference)
        raise


def copy_options(*, format: str | None = None, all: bool = False, remove_signatures: bool = False,
                 sign_by: str | None = None, policy: str | None = None, insecure_policy: bool = False,
                 compress: str | None = None):
    from ..transports.copy import CopyOptions, Progress

    return CopyOptions(format=manifest_type(format), multi_arch="all" if all else "system",
                       remove_signatures=remove_signatures, sign_by=sign_by, policy=policy,
                       insecure_policy=insecure_policy, compress_format=compress, progress=Progress(_progress))


def _progress(line: str) -> None:
    from .._log import debug

    debug(line)
