"""Content digests (``algorithm:hex``), as the OCI image-spec defines them."""

from __future__ import annotations

from ..errors import InvalidDocument

#: algorithms we compute, with their hex length
ALGORITHMS = {"sha256": 64, "sha512": 128}
_HEX = frozenset("0123456789abcdef")


def validate(value: object, field: str = "digest") -> str:
    """Return ``value`` if it is a well-formed digest we can verify, else raise naming ``field``."""
    if not isinstance(value, str):
        raise InvalidDocument(f"{field}: expected a digest string, got {type(value).__name__}")
    # checked by hand, not with a regex: compiling one costs start-up time on every command
    algo, sep, hexpart = value.partition(":")
    if not sep or not algo or not hexpart:
        raise InvalidDocument(f"{field}: {value!r} is not a digest (want algorithm:hex)")
    length = ALGORITHMS.get(algo)
    if length is None:
        raise InvalidDocument(f"{field}: unsupported digest algorithm {algo!r} in {value!r}")
    if len(hexpart) != length or not _HEX.issuperset(hexpart):
        raise InvalidDocument(f"{field}: {value!r} is not a valid {algo} digest")
    return value


def is_digest(value: str) -> bool:
    try:
        validate(value)
        return True
    except InvalidDocument:
        return False


def algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def hex_part(digest: str) -> str:
    return digest.split(":", 1)[1]


#: below this many bytes the interpreter's built-in hash is used: loading OpenSSL (hashlib)
#: costs more start-up time than it saves on a manifest or a config
SMALL = 1 << 20


def hasher(algo: str = "sha256", size_hint: int = -1):
    """A hash object; OpenSSL's (fast on big data) unless ``size_hint`` says the data is small."""
    if algo not in ALGORITHMS:
        raise InvalidDocument(f"unsupported digest algorithm {algo!r}")
    if 0 <= size_hint < SMALL:
        try:
            if algo == "sha256":
                import _sha256  # Python 3.11 (3.12 merged it into _sha2)

                return _sha256.sha256()
            import _sha512

            return _sha512.sha512()
        except ImportError:
            try:
                import _sha2

                return _sha2.sha256() if algo == "sha256" else _sha2.sha512()
            except ImportError:
                pass
    import hashlib

    return hashlib.new(algo)


def of_bytes(data: bytes, algo: str = "sha256") -> str:
    h = hasher(algo, len(data))
    h.update(data)
    return f"{algo}:{h.hexdigest()}"


def short(digest: str, n: int = 12) -> str:
    """The first ``n`` hex characters, as tools show them."""
    return hex_part(digest)[:n]
