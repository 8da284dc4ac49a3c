"""Signatures of registry images kept in a lookaside store (see ``registries_d``)."""

from __future__ import annotations

import os

from ...errors import ConfigError, NetworkError, Unsupported
from .. import registries_d
from ..signature import MAX_SIGNATURE_SIZE, SignatureError


def read(named, manifest_digest: str, ctx) -> list[bytes]:
    """Every signature of ``manifest_digest`` for the repository ``named`` ([] when the
    registries.d configuration has no lookaside for it)."""
    base = registries_d.lookaside(named, explicit=getattr(ctx, "registries_d", None))
    if base is None:
        return []
    out: list[bytes] = []
    if base.startswith("file://"):
        while True:
            path = registries_d.file_path(registries_d.signature_url(base, named, manifest_digest, len(out)))
            try:
                with open(path, "rb") as f:
                    data = f.read(MAX_SIGNATURE_SIZE + 1)
            except FileNotFoundError:
                return out
            except OSError as e:
                raise ConfigError(f"reading signature {path}: {e.strerror}") from None
            if len(data) > MAX_SIGNATURE_SIZE:
                raise SignatureError(f"{path} is too large to be a signature")
            out.append(data)
    from ..._std import http as _http

    pools: dict = {}
    try:
        while True:
            url = _http.URL.parse(registries_d.signature_url(base, named, manifest_digest, len(out)))
            pool = pools.get(url.origin)
            if pool is None:
                tls = _http.TLSConfig(verify=getattr(ctx, "tls_verify", None) is not False)
                pool = pools[url.origin] = _http.Pool(url.scheme, url.host, url.port, tls, timeout=60)
            try:
                resp = pool.request("GET", url, {"User-Agent": getattr(ctx, "user_agent", "pallet")})
            except OSError as e:
                raise NetworkError(f"reading signatures from {base}: {e}") from None
            with resp:
                if resp.status == 404:
                    return out
                if resp.status != 200:
                    raise NetworkError(f"reading signature {url.netloc}{url.target}: HTTP {resp.status} {resp.reason}")
                data = resp.read(MAX_SIGNATURE_SIZE + 1)
                if len(data) > MAX_SIGNATURE_SIZE:
                    raise SignatureError(f"{url.target} is too large to be a signature")
                out.append(data)
    finally:
        for p in pools.values():
            p.close()


def write(base: str | None, named, manifest_digest: str, signatures: list[bytes]) -> None:
    """Replace the signatures of ``manifest_digest`` in the lookaside staging store ``base``
    (file://; what registries.d names for writing, None when it names none)."""
    if base is None:
        raise Unsupported(f"docker://{named}: registries.d configures no lookaside store to write signatures to "
                          "(use --remove-signatures, or set lookaside-staging)")
    if not base.startswith("file://"):
        raise Unsupported(f"docker://{named}: signatures can only be written to a file:// lookaside, not {base}")
    from .._files import atomic_write

    i = 0
    for i, sig in enumerate(signatures):
        path = registries_d.file_path(registries_d.signature_url(base, named, manifest_digest, i))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, sig)
        except OSError as e:
            raise ConfigError(f"writing signature {path}: {e.strerror}") from None
    n = len(signatures)
    while True:  # signatures beyond the new ones belong to the old state: drop them
        path = registries_d.file_path(registries_d.signature_url(base, named, manifest_digest, n))
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ConfigError(f"removing stale signature {path}: {e.strerror}") from None
        n += 1
