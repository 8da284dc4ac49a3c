"""References as podman's verbs take them: ``transport:details`` for every transport,
``local:`` resolved in the store the caller holds (containers/image's ``ParseStoreReference``)."""

from __future__ import annotations

import os

from ..errors import InvalidReference, UsageError
from ..storage.names import qualify
from .. import transports as _transports
from ..transports import PARSED_WITH_A_STORE, TRANSPORTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store

#: every transport name a reference may start with: the transports' and the store's
NAMES = tuple(TRANSPORTS) + PARSED_WITH_A_STORE


def has_transport(text: str) -> bool:
    """Does ``text`` start with a transport (``docker://`` only with its slashes), the store's
    ``local:`` included? (The transports' own rule, plus the names parsed with a store.)"""
    return text.partition(":")[0] in PARSED_WITH_A_STORE or _transports.has_transport(text)


def parse_reference(text: str, store: "Store | None" = None):
    """Parse ``transport:details``; a ``local:`` reference names an image in ``store``."""
    name, sep, details = text.partition(":")
    if sep and name == "local":
        if store is None:
            raise UsageError(f"{text}: a local: reference needs a store")
        from ..storage.transport import parse

        return parse(store, details)
    from ..transports import parse_reference as _parse

    return _parse(text)


def local_name_for(src_ref) -> str | None:
    """The name a pulled image gets, as podman names images from non-registry transports."""
    named = src_ref.docker_reference()
    if named is not None:
        return str(named.tagged_or_latest()) if not named.digest else str(named)
    if src_ref.transport in ("oci", "oci-archive"):
        ref = getattr(src_ref, "image", None)
        if isinstance(ref, str) and ref:
            try:
                return str(qualify(ref))
            except InvalidReference:
                pass
    if src_ref.transport == "dir":
        base = os.path.basename(os.path.normpath(getattr(src_ref, "path", "") or ""))
        try:
            return str(qualify(base.lower())) if base else None
        except InvalidReference:
            return None
    return None


