"""Writing Docker schema 1 (``--format v2s1``), as containers/image converts an image to it.

:func:`build` makes the unsigned manifest from an image config and its layer digests (one
``fsLayers``/``history`` entry per history entry, newest first; empty layers point at the
gzipped empty tar, which the caller stores; the v1 IDs chained by sha256 as containers/image
computes them, the newest entry carrying the config itself). :func:`sign` wraps it in the JWS
docker/distribution requires (libtrust's "prettyjws": ES256 with a new P-256 key each time,
the signature spliced into the JSON before its closing brace). The digest of a schema 1
manifest is over the unsigned bytes, as a registry computes it.

ECDSA comes from the ``cryptography`` package, imported only here.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidDocument, Unsupported
from ..oci import digest as _digest
from ..oci.manifest import dumps

#: containers/image's GzippedEmptyLayer: a gzipped tar of two zero blocks
GZIPPED_EMPTY_LAYER = bytes([31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0,
                             255, 255, 46, 175, 181, 239, 0, 4, 0, 0])
GZIPPED_EMPTY_LAYER_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def _go_time(value, what: str) -> str:
    """A config time as Go's time.Time marshals it (RFC 3339, the fraction without trailing
    zeros); a missing one is Go's zero time."""
    if value is None or value == "":
        return "0001-01-01T00:00:00Z"
    m = _TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidDocument(f"{what}: {value!r} is not an RFC 3339 time")
    frac = (m.group(2) or "").rstrip("0")
    return m.group(1) + ("." + frac if frac else "") + m.group(3)


def v1_id(blob_digest: str, *others: str) -> str:
    return hashlib.sha256(" ".join((_digest.hex_part(blob_digest),) + others).encode()).hexdigest()


def build(config_raw: bytes, layer_digests: list[str], name: str = "", tag: str = "") -> tuple[bytes, bool]:
    """The unsigned schema 1 manifest, and whether it refers to the gzipped empty layer."""
    from .._std import json

    try:
        config = json.loads(config_raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidDocument(f"image config: not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise InvalidDocument("image config: not a JSON object")
    history = config.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise InvalidDocument("image config: history must be a list of objects")
    if not history:
        raise Unsupported("cannot convert an image with 0 history entries to "
                          "application/vnd.docker.distribution.manifest.v1+prettyjws")
    n = len(history)
    fs_layers: list = [None] * n
    entries: list = [None] * n
    layers = iter(layer_digests)
    empty = False
    parent = v1 = ""
    for i, h in enumerate(history):
        parent = v1
        if h.get("empty_layer") is True:
            blob = GZIPPED_EMPTY_LAYER_DIGEST
            empty = True
        else:
            blob = next(layers, None)
            if blob is None:
                raise InvalidDocument(f"invalid image configuration, needs more than the {len(layer_digests)} "
                                      "distributed layers")
        v1 = v1_id(blob, parent)
        compat = {"id": v1}
        if parent:
            compat["parent"] = parent
        if h.get("comment"):
            compat["comment"] = str(h["comment"])
        compat["created"] = _go_time(h.get("created"), f"history[{i}].created")
        compat["container_config"] = {"Cmd": [str(h.get("created_by") or "")]}
        if h.get("author"):
            compat["author"] = str(h["author"])
        if h.get("empty_layer") is True:
            compat["throwaway"] = True
        fs_layers[n - 1 - i] = {"blobSum": blob}
        entries[n - 1 - i] = {"v1Compatibility": dumps(compat).decode()}
    # the newest entry carries the whole config (less rootfs and history), as containers/image writes it
    top = {k: v for k, v in config.items() if k not in ("rootfs", "history")}
    top["id"] = v1_id(fs_layers[0]["blobSum"], parent, config_raw.decode("utf-8", "surrogateescape"))
    if parent:
        top["parent"] = parent
    if history[-1].get("empty_layer") is True:
        top["throwaway"] = True
    entries[0] = {"v1Compatibility": dumps(dict(sorted(top.items()))).decode()}
    manifest = {"name": name, "tag": tag, "architecture": str(config.get("architecture") or ""),
                "fsLayers": fs_layers, "history": entries, "schemaVersion": 1}
    return dumps(manifest), empty


def _b64url(b: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(unsigned: bytes, now: float | None = None) -> bytes:
    """``unsigned`` with a libtrust JWS signature by a new P-256 key spliced in."""
    import base64
    import time

    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    except ImportError:
        raise Unsupported("--format v2s1 needs the Python package cryptography (pip install cryptography)") from None

    close = len(unsigned.rstrip())
    if close == 0 or unsigned[close - 1:close] != b"}":
        raise InvalidDocument("schema 1 manifest: does not end with '}'")
    format_length = len(unsigned[:close - 1].rstrip())
    tail = unsigned[format_length:]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    protected = _b64url(dumps({"formatLength": format_length, "formatTail": _b64url(tail), "time": stamp}))
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign((protected + "." + _b64url(unsigned)).encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    public = key.public_key()
    nums = public.public_numbers()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    kid = ":".join(kid32[i:i + 4] for i in range(0, len(kid32), 4))
    sigs = [{"header": {"jwk": {"crv": "P-256", "kid": kid, "kty": "EC", "x": _b64url(nums.x.to_bytes(32, "big")),
                                "y": _b64url(nums.y.to_bytes(32, "big"))}, "alg": "ES256"},
             "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
             "protected": protected}]
    return unsigned[:format_length] + b',"signatures":' + dumps(sigs) + tail
