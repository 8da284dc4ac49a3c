"""Any transport to any transport: ``copy`` and ``inspect`` (skopeo's verbs)."""

from __future__ import annotations

from ._common import Context, Format, Reference, about, context_of, copy_options, parse
from .results import CopyResult, InspectResult, copy_result, inspect_result


def inspect(ref: Reference, *, context: Context | None = None, tls_verify: bool | None = None,
            store: "object | None" = None) -> InspectResult:
    """What ``pallet inspect REF`` prints, as an :class:`InspectResult` (``.as_dict()``: the JSON).

    ``ref`` is ``transport:details`` text or a parsed reference; a ``local:`` reference reads
    ``store`` (a :class:`pallet.Store`; default: the default store).
    """
    from ..transports.inspect import inspect as _inspect

    with about(ref):
        r = parse(ref, store=_storage(store, ref))
        ctx = context_of(context, tls_verify).system_context()
        return inspect_result(_inspect(r, ctx))


def copy(src: Reference, dest: Reference, *, format: Format | None = None, all: bool = False,
         context: Context | None = None, src_context: Context | None = None, dest_context: Context | None = None,
         tls_verify: bool | None = None, remove_signatures: bool = False, sign_by: str | None = None,
         policy: str | None = None, insecure_policy: bool = False, compress: str | None = None,
         store: "object | None" = None) -> CopyResult:
    """``pallet copy SRC DEST``: returns the manifest written (its digest).

    ``format``: ``"oci"`` or ``"docker"`` (None keeps the source's); ``all``: every platform of
    an index (``--all``); ``context`` applies to both sides unless ``src_context`` or
    ``dest_context`` is given; ``compress``: ``"gzip"`` or ``"zstd"`` for the destination's layers.
    """
    from ..transports.copy import copy_image

    with about(src):
        storage = _storage(store, src, dest)
        s, d = parse(src, "src", storage), parse(dest, "dest", storage)
        base = context_of(context, tls_verify)
        sctx = (src_context or base).system_context()
        dctx = (dest_context or base).system_context()
        options = copy_options(format=format, all=all, remove_signatures=remove_signatures, sign_by=sign_by,
                               policy=policy, insecure_policy=insecure_policy, compress=compress)
        return copy_result(copy_image(s, d, sctx, dctx, options))


def parse_reference(ref: str, *, store: "object | None" = None):
    """``transport:details`` parsed (``pallet.parse_reference``); a ``local:`` reference names an
    image in ``store`` (a :class:`pallet.Store`; default: the default store)."""
    with about(ref):
        return parse(ref, store=_storage(store, ref))


def _storage(store, *refs):
    """The storage layer's store for ``local:`` references among ``refs``: ``store``'s, or the
    default store's (opened only when a ``local:`` reference needs it)."""
    if store is None:
        if not any(isinstance(r, str) and r.startswith("local:") for r in refs):
            return None
        from .store import open_store

        store = open_store()
    from .store import Store

    if not isinstance(store, Store):
        from ..errors import UsageError

        raise UsageError(f"store: want a pallet.Store (pallet.open_store()), not {type(store).__name__}")
    return store._s()
