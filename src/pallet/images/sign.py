"""``image sign``: simple-signing signatures of an image where it is (podman's verb), written
to a directory laid out as a lookaside store: ``DIR/REPOSITORY-PATH@ALGO=HEX/signature-N``
(N the first number free), or to the registries.d ``lookaside-staging`` of the image's
repository when no directory is given (``/var/lib/containers/sigstore`` when none is
configured, as containers/image)."""

from __future__ import annotations

import os

from ..errors import ConfigError, UsageError

#: where containers/image writes signatures when registries.d says nothing (as root)
DEFAULT_STAGING = "file:///var/lib/containers/sigstore"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..transports.base import SystemContext


def _next_name(directory: str) -> str:
    try:
        present = set(os.listdir(directory))
    except FileNotFoundError:
        present = set()
    n = 1
    while f"signature-{n}" in present:
        n += 1
    return f"signature-{n}"


def _put(sig: bytes, base: str, digest: str) -> str:
    """Write ``sig`` as the next signature of ``digest`` under ``base`` (podman's layout); returns its path."""
    from .._fs import write_output

    algo, _, hexpart = digest.partition(":")
    directory = f"{base}@{algo}={hexpart}"
    try:
        os.makedirs(directory, 0o751, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"creating the signature directory {directory}: {e.strerror}") from None
    path = os.path.join(directory, _next_name(directory))
    write_output(path, sig, what="signature")
    return path


def sign(text: str, sign_by: str, ctx: "SystemContext", directory: str | None = None, every: bool = False,
         passphrase_file: str | None = None) -> list[str]:
    """Sign the image ``text`` (``TRANSPORT:REF``, e.g. ``docker://...``) with the GnuPG key
    ``sign_by``: its manifest, or with ``every`` each instance of its manifest list. Returns
    the paths written."""
    from ..oci import mediatype as mt
    from ..oci.manifest import digest_of, guess_media_type, parse
    from ..transports import registries_d
    from ..transports import signature
    from .refs import has_transport, parse_reference

    if not sign_by:
        raise UsageError("image sign: no signing key given (--sign-by)")
    if not has_transport(text):
        raise UsageError(f"{text}: give a transport (docker://{text}): image sign signs an image where it is")
    ref = parse_reference(text)
    named = ref.docker_reference()
    if named is None:
        raise UsageError(f"cannot determine canonical Docker reference for destination {text}")
    if directory:
        if not os.path.isdir(directory):  # podman's words
            raise UsageError(f"stat {directory}: no such file or directory")
        path = named.path
        if os.path.normpath(path) != path or path.startswith(("/", "..")):
            raise UsageError(f"unexpected path elements in Docker reference {named} for signature storage")
        base = os.path.join(directory, path)
    else:
        # containers/image's default when registries.d names no place: /var/lib/containers/sigstore
        url = registries_d.lookaside(named, write=True, explicit=getattr(ctx, "registries_d", None)) or DEFAULT_STAGING
        if not url.startswith("file://"):
            raise ConfigError(f"{text}: signatures can only be written to a file:// lookaside, not {url} "
                              "(use --directory)")
        base = registries_d.file_path(url).rstrip("/") + "/" + named.path
    identity = str(named)
    written = []
    with ref.new_source(ctx) as src:
        raw, media_type = src.get_manifest()
        media_type = media_type or guess_media_type(raw)
        if every:
            if media_type not in mt.INDEXES:
                raise UsageError(f"{text} is not a multi-architecture image (manifest list or image index)")
            for d in parse(raw, media_type).manifests:
                inner, inner_type = src.get_manifest(d.digest)
                sig = signature.sign(signature.payload(identity, digest_of(inner, inner_type)), sign_by, passphrase_file)
                written.append(_put(sig, base, d.digest))
            return written
        digest = digest_of(raw, media_type)
        sig = signature.sign(signature.payload(identity, digest), sign_by, passphrase_file)
        written.append(_put(sig, base, digest))
    return written
