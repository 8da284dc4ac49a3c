"""Simple signing (containers-signature(5)), as skopeo and podman write and check it.

A signature is an OpenPGP signed message (not a detached signature) whose content is a
small JSON document naming the image: ``critical.identity.docker-reference`` (where the
signer put it), ``critical.image.docker-manifest-digest`` (the manifest it vouches for) and
``critical.type`` ``"atomic container signature"``. GnuPG does the cryptography: ``gpg
--sign`` with the user's keyring to sign, and, to verify, ``gpgv`` with a keyring holding
only the keys the policy names, so a good signature can only come from one of them. Where signatures live is each transport's business (``get_signatures`` /
``put_signatures``); what a policy accepts is ``policy``'s.
"""

from __future__ import annotations


from .._std import json
from ..errors import PalletError

SIGNATURE_TYPE = "atomic container signature"
#: a signature larger than this is not one (they are a few hundred bytes)
MAX_SIGNATURE_SIZE = 4 << 20


class SignatureError(PalletError):
    """A signature could not be made, or does not verify."""


class Untrusted:
    """What a signature's content claims (before anyone decided whether to believe it)."""

    __slots__ = ("docker_reference", "manifest_digest", "creator", "timestamp")

    def __init__(self, docker_reference: str, manifest_digest: str, creator=None, timestamp=None):
        self.docker_reference = docker_reference
        self.manifest_digest = manifest_digest
        self.creator = creator
        self.timestamp = timestamp


def payload(docker_reference: str, manifest_digest: str, timestamp: int | None = None) -> bytes:
    """The content to sign for ``manifest_digest`` stored at ``docker_reference``."""
    import time

    from .._version import __version__

    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": manifest_digest},
                        "type": SIGNATURE_TYPE},
           "optional": {"creator": f"pallet {__version__}",
                        "timestamp": int(time.time()) if timestamp is None else timestamp}}
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_payload(content: bytes) -> Untrusted:
    """The claims of a signature's content; SignatureError unless it is exactly the format
    (``critical`` must hold nothing unknown: a newer format could mean something we miss)."""
    try:
        doc = json.loads(content)
    except ValueError:
        raise SignatureError("the signature's content is not JSON") from None

    def obj(value, where, keys):
        if not isinstance(value, dict):
            raise SignatureError(f"signature: {where} is not an object")
        unknown = set(value) - set(keys)
        missing = set(keys) - set(value)
        if unknown or missing:
            raise SignatureError(f"signature: {where} has {'unknown ' + repr(sorted(unknown)) if unknown else ''}"
                                 f"{' and ' if unknown and missing else ''}"
                                 f"{'no ' + repr(sorted(missing)) if missing else ''}")
        return value

    top = doc if isinstance(doc, dict) else None
    if top is None or "critical" not in top:
        raise SignatureError("signature: no \"critical\" section")
    crit = obj(top["critical"], "critical", ("identity", "image", "type"))
    if crit["type"] != SIGNATURE_TYPE:
        raise SignatureError(f"signature: type {crit['type']!r} is not {SIGNATURE_TYPE!r}")
    ref = obj(crit["identity"], "critical.identity", ("docker-reference",))["docker-reference"]
    dig = obj(crit["image"], "critical.image", ("docker-manifest-digest",))["docker-manifest-digest"]
    if not isinstance(ref, str) or not isinstance(dig, str):
        raise SignatureError("signature: docker-reference and docker-manifest-digest must be strings")
    opt = top.get("optional") or {}
    if not isinstance(opt, dict):
        raise SignatureError("signature: \"optional\" is not an object")
    ts = opt.get("timestamp")
    return Untrusted(ref, dig, opt.get("creator") if isinstance(opt.get("creator"), str) else None,
                     ts if isinstance(ts, int) and not isinstance(ts, bool) else None)


def _gpg(args: list[str], data: bytes, what: str):
    import subprocess

    try:
        return subprocess.run(["gpg", "--batch", "--no-tty"] + args, input=data, capture_output=True, timeout=120)
    except FileNotFoundError:
        raise SignatureError(f"{what}: gpg is not installed (apt-get install gnupg)") from None
    except subprocess.TimeoutExpired:
        raise SignatureError(f"{what}: gpg did not answer within 120 s") from None


def _gpg_error(r, what: str) -> SignatureError:
    lines = [ln for ln in r.stderr.decode(errors="replace").splitlines()
             if ln.strip() and not ln.startswith("[GNUPG:]")]
    return SignatureError(f"{what}: {lines[-1].removeprefix('gpg: ') if lines else f'gpg exited {r.returncode}'}")


def sign(content: bytes, fingerprint: str, passphrase_file: str | None = None) -> bytes:
    """An OpenPGP signed message of ``content`` by the key ``fingerprint`` of the user's keyring."""
    what = f"signing with key {fingerprint}"
    args = ["--sign", "--local-user", fingerprint, "--output", "-"]
    if passphrase_file:
        args = ["--pinentry-mode", "loopback", "--passphrase-file", passphrase_file] + args
    r = _gpg(args, content, what)
    if r.returncode != 0 or not r.stdout:
        raise _gpg_error(r, what)
    return r.stdout


def dearmor(key: bytes) -> bytes:
    """Binary OpenPGP packets from ASCII-armored blocks (binary input is returned as is)."""
    import base64
    import binascii

    if b"-----BEGIN PGP" not in key:
        return key
    out = []
    lines = key.decode("ascii", errors="replace").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("-----BEGIN PGP"):
            i += 1
            continue
        i += 1
        while i < len(lines) and lines[i].strip() and ":" in lines[i]:  # armor headers
            i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("-----END PGP"):
            line = lines[i].strip()
            if line and not (line.startswith("=") and len(line) == 5):  # the CRC line
                body.append(line)
            i += 1
        try:
            out.append(base64.b64decode("".join(body), validate=True))
        except (binascii.Error, ValueError):
            raise SignatureError("a key in the policy is not valid ASCII armor") from None
    return b"".join(out)


def verify(signature: bytes, keys: list[bytes]) -> tuple[bytes, str]:
    """``(content, signing key fingerprint)`` when ``signature`` is a good signature by one of
    ``keys`` (OpenPGP public keys, armored or binary); SignatureError otherwise.

    ``gpgv`` with a keyring made of exactly those keys: no agent, no home directory."""
    import subprocess
    import tempfile

    if len(signature) > MAX_SIGNATURE_SIZE:
        raise SignatureError("signature is too large to be one")
    with tempfile.NamedTemporaryFile(prefix="pallet-keyring-", suffix=".gpg") as ring:
        ring.write(b"".join(dearmor(k) for k in keys))
        ring.flush()
        try:
            r = subprocess.run(["gpgv", "--keyring", ring.name, "--status-fd", "2", "--output", "-"],
                               input=signature, capture_output=True, timeout=120)
        except FileNotFoundError:
            raise SignatureError("verifying a signature: gpgv is not installed (apt-get install gpgv)") from None
        except subprocess.TimeoutExpired:
            raise SignatureError("verifying a signature: gpgv did not answer within 120 s") from None
    status = [ln.split() for ln in r.stderr.decode(errors="replace").splitlines() if ln.startswith("[GNUPG:] ")]
    good = any(len(x) > 1 and x[1] == "GOODSIG" for x in status)
    valid = [x for x in status if len(x) > 2 and x[1] == "VALIDSIG"]
    if r.returncode != 0 or not good or not valid:
        bad = next((x[1] for x in status if len(x) > 1 and x[1] in ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG",
                                                                     "ERRSIG", "NO_PUBKEY")), None)
        reason = {"BADSIG": "the signature does not match its content", "EXPKEYSIG": "the key has expired",
                  "REVKEYSIG": "the key has been revoked", "EXPSIG": "the signature has expired",
                  "NO_PUBKEY": "it is not signed by any of the trusted keys",
                  "ERRSIG": "it is not signed by any of the trusted keys"}.get(bad)
        if reason:
            raise SignatureError(f"signature rejected: {reason}")
        raise _gpg_error(r, "signature rejected")
    fields = valid[0]
    return r.stdout, (fields[11] if len(fields) > 11 else fields[2])
