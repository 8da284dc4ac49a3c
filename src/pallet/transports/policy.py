"""Trust policy (containers-policy.json): which images may be copied, per transport and scope.

Search order: ``--policy``, ``$HOME/.config/containers/policy.json``,
``/etc/containers/policy.json``; with none of them every image is accepted (skopeo refuses
instead; pallet does not make a fresh machine unusable). ``--insecure-policy`` skips the check.

Requirements: ``insecureAcceptAnything``, ``reject`` and ``signedBy`` (simple signing,
``keyType`` ``GPGKeys``, keys from ``keyPath``, ``keyPaths`` or ``keyData``; relative key
paths are relative to the policy file) with every ``signedIdentity`` of
containers-policy.json(5): ``matchExact``, ``matchRepoDigestOrExact`` (the default),
``matchRepository``, ``exactReference``, ``exactRepository``, ``remapIdentity``. Every
requirement of the scope must hold; a ``signedBy`` holds when at least one of the image's
signatures is good, by one of its keys, for this manifest and an accepted identity.
``sigstoreSigned`` is refused with a message saying so, never silently accepted.

Checking happens in two steps, because signatures need the manifest: :func:`check` before
anything is read (``reject`` fails there) returns what is left to verify, and
:func:`verify` checks it against the source's manifest and signatures.
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import ConfigError, PalletError


class PolicyRejected(PalletError):
    """The trust policy does not allow this image.

    Its text starts as containers/image's does ("Source image rejected: " and the requirement's
    own words, which scripts grep for), then says which policy file and scope decided."""

    def __init__(self, reason: str, where: str | None = None, **kw):
        super().__init__(f"Source image rejected: {reason} ({where})" if where else reason, **kw)


def paths(explicit: str | None = None) -> list[str]:
    if explicit:
        return [explicit]
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".config", "containers", "policy.json"), "/etc/containers/policy.json"]


def load(explicit: str | None = None) -> dict | None:
    """The policy document, or None when no policy file exists."""
    for path in paths(explicit):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if explicit:
                raise ConfigError(f"policy file {path} does not exist") from None
            continue
        except OSError as e:
            raise ConfigError(f"reading {path}: {e.strerror}") from None
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise ConfigError(f"{path}: invalid JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("default"), list):
            raise ConfigError(f"{path}: a policy needs a \"default\" list of requirements")
        _check_shape(doc, path)
        doc["_path"] = path
        return doc
    return None


def _check_requirements(reqs, path: str, where: str) -> None:
    if not isinstance(reqs, list):
        raise ConfigError(f"{path}: {where} must be a list of requirements, not {_kind(reqs)}")
    for i, r in enumerate(reqs):
        if not isinstance(r, dict):
            raise ConfigError(f"{path}: {where}[{i}] must be an object, not {_kind(r)}")
        if not isinstance(r.get("type"), str):
            raise ConfigError(f"{path}: {where}[{i}].type must be a string, not {_kind(r.get('type'))}")
        for k in ("keyType", "keyPath", "keyData"):
            if k in r and not isinstance(r[k], str):
                raise ConfigError(f"{path}: {where}[{i}].{k} must be a string, not {_kind(r[k])}")
        ident = r.get("signedIdentity")
        if ident is not None:
            if not isinstance(ident, dict):
                raise ConfigError(f"{path}: {where}[{i}].signedIdentity must be an object, not {_kind(ident)}")
            for k, v in ident.items():
                if not isinstance(v, str):
                    raise ConfigError(f"{path}: {where}[{i}].signedIdentity.{k} must be a string, not {_kind(v)}")


def _kind(v) -> str:
    """The JSON type of a decoded value, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _check_shape(doc: dict, path: str) -> None:
    """Every value where containers-policy.json(5) puts it, with the JSON type it must have:
    a wrong type deep inside is a ConfigError naming the file and the field, never a crash."""
    _check_requirements(doc["default"], path, "default")
    transports = doc.get("transports", {})
    if transports is None:
        return
    if not isinstance(transports, dict):
        raise ConfigError(f"{path}: transports must be an object of transports, not {_kind(transports)}")
    for name, scopes in transports.items():
        if not isinstance(scopes, dict):
            raise ConfigError(f"{path}: transports.{name} must be an object of scopes, not {_kind(scopes)}")
        for scope, reqs in scopes.items():
            _check_requirements(reqs, path, f"transports.{name}[{scope!r}]")


def _scopes(ref) -> list[str]:
    """Scopes to look up for a reference, most specific first (containers-policy.json(5))."""
    if ref.transport == "docker" and ref.docker_reference() is not None:
        named = ref.docker_reference()
        out = [str(named)] if (named.tag or named.digest) else []
        parts = named.name.split("/")
        out += ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
        host = parts[0].split(":")[0]
        labels = host.split(".")
        out += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
        return out
    text = ref.string_within_transport()
    path = text.split(":", 1)[0] if ref.transport in ("oci", "oci-archive", "docker-archive") else text
    out = [text] if text != path else []
    p = os.path.abspath(path) if path else path
    while p and p != "/":
        out.append(p)
        p = os.path.dirname(p)
    return out


def requirements(doc: dict, ref) -> tuple[list, str]:
    """The requirements that govern ``ref`` and the scope they came from."""
    scopes = (doc.get("transports") or {}).get(ref.transport) or {}
    if not isinstance(scopes, dict):
        raise ConfigError(f"{doc['_path']}: transports.{ref.transport} must be an object of scopes")
    for scope in _scopes(ref):
        if scope in scopes:
            return scopes[scope], scope
    if "" in scopes:
        return scopes[""], f"{ref.transport} default"
    return doc["default"], "default"


IDENTITY_TYPES = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference",
                  "exactRepository", "remapIdentity")


class Pending:
    """``signedBy`` requirements still to be verified against the source."""

    __slots__ = ("requirements", "path", "scope")

    def __init__(self, requirements: list, path: str, scope: str):
        self.requirements = requirements
        self.path = path
        self.scope = scope


def check(ref, explicit: str | None = None, insecure: bool = False) -> "Pending | None":
    """Raise PolicyRejected unless the policy may let ``ref`` be read; what must still be
    verified once the manifest is known (:func:`verify`), or None."""
    if insecure:
        return None
    doc = load(explicit)
    if doc is None:
        return None
    reqs, scope = requirements(doc, ref)
    if not isinstance(reqs, list) or not reqs:
        raise ConfigError(f"{doc['_path']}: the requirements for {scope!r} must be a non-empty list")
    pending = []
    for r in reqs:
        kind = r.get("type") if isinstance(r, dict) else None
        if kind == "insecureAcceptAnything":
            continue
        if kind == "reject":
            raise PolicyRejected(f"Running image {ref} is rejected by policy.",
                                 f"scope {scope!r} is rejected by the policy in {doc['_path']}")
        if kind == "signedBy":
            pending.append(_signed_by(r, doc["_path"], scope))
            continue
        if kind == "sigstoreSigned":
            raise PolicyRejected(f"{ref}: sigstore signatures are required",
                                 f"the policy in {doc['_path']}, scope {scope!r}; pallet cannot verify them "
                                 "yet (simple signing, signedBy, it can); use --insecure-policy to copy it "
                                 "unverified")
        raise ConfigError(f"{doc['_path']}: unknown policy requirement {kind!r} for {scope!r}")
    return Pending(pending, doc["_path"], scope) if pending else None


def _signed_by(r: dict, path: str, scope: str) -> dict:
    """A signedBy requirement checked for form, with its keys read."""
    import base64
    import binascii

    where = f"{path}: signedBy for {scope!r}"
    if r.get("keyType") != "GPGKeys":
        raise ConfigError(f"{where}: keyType {r.get('keyType')!r} is not supported (GPGKeys is)")
    given = [k for k in ("keyPath", "keyPaths", "keyData") if k in r]
    if len(given) != 1:
        raise ConfigError(f"{where}: exactly one of keyPath, keyPaths and keyData is needed")
    keys = []
    if given[0] == "keyData":
        try:
            keys.append(base64.b64decode(r["keyData"], validate=True))
        except (binascii.Error, ValueError, TypeError):
            raise ConfigError(f"{where}: keyData is not base64") from None
    else:
        files = [r["keyPath"]] if given[0] == "keyPath" else r["keyPaths"]
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
            raise ConfigError(f"{where}: {given[0]} must name key files")
        for f in files:
            f = os.path.join(os.path.dirname(os.path.abspath(path)), f)
            try:
                with open(f, "rb") as fh:
                    keys.append(fh.read(16 << 20))
            except OSError as e:
                raise ConfigError(f"{where}: cannot read key file {f}: {e.strerror}") from None
    ident = r.get("signedIdentity") or {"type": "matchRepoDigestOrExact"}
    if not isinstance(ident, dict) or ident.get("type") not in IDENTITY_TYPES:
        raise ConfigError(f"{where}: signedIdentity type {ident.get('type') if isinstance(ident, dict) else ident!r} "
                          f"is not one of {', '.join(IDENTITY_TYPES)}")
    from ..oci import reference

    try:
        if ident["type"] == "exactReference":
            fixed = reference.parse(ident.get("dockerReference") or "")
            if not (fixed.tag or fixed.digest):
                raise ConfigError(f"{where}: exactReference needs a tag or digest in dockerReference")
        elif ident["type"] == "exactRepository":
            reference.parse(ident.get("dockerRepository") or "")
        elif ident["type"] == "remapIdentity":
            for k in ("prefix", "signedPrefix"):
                if not isinstance(ident.get(k), str) or not ident[k]:
                    raise ConfigError(f"{where}: remapIdentity needs {k}")
    except PalletError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: signedIdentity: {e}") from None
    return {"keys": keys, "identity": ident}


def verify(pending: "Pending | None", ref, source, raw: bytes, media_type: str) -> None:
    """Every pending ``signedBy`` must accept one of ``source``'s signatures for ``raw``."""
    if pending is None:
        return
    sigs = source.get_signatures()
    for req in pending.requirements:
        if not sigs:
            raise PolicyRejected("A signature was required, but no signature exists",
                                 f"{ref}: the policy in {pending.path} requires signatures for scope "
                                 f"{pending.scope!r}")
        reasons = []
        for sig in sigs:
            try:
                _accept(req, ref, sig, raw, media_type)
                break
            except PalletError as e:
                reasons.append(str(e))
        else:
            why = reasons[0] if len(set(reasons)) == 1 else \
                f"None of the signatures were accepted, reasons: {'; '.join(dict.fromkeys(reasons))}"
            raise PolicyRejected(why, f"{ref}: no signature is accepted by the policy in {pending.path}, "
                                      f"scope {pending.scope!r}")


def _accept(req: dict, ref, sig: bytes, raw: bytes, media_type: str) -> None:
    from ..oci import digest as _digest
    from ..oci import manifest as _manifest
    from ..oci import reference
    from . import signature

    try:
        content, _fpr = signature.verify(sig, req["keys"])
    except signature.SignatureError as e:  # containers/image's words first
        raise signature.SignatureError(f"Invalid GPG signature: {str(e).removeprefix('signature rejected: ')}") \
            from None
    claim = signature.parse_payload(content)
    try:
        algo = _digest.algorithm(_digest.validate(claim.manifest_digest, "docker-manifest-digest"))
    except PalletError:
        raise signature.SignatureError(f"signature: invalid docker-manifest-digest {claim.manifest_digest!r}") \
            from None
    got = _manifest.digest_of(raw, media_type) if algo == "sha256" else _digest.of_bytes(raw, algo)
    if got != claim.manifest_digest:
        raise signature.SignatureError(f"Signature for digest {claim.manifest_digest} does not match "
                                       f"(the manifest is {got})")
    try:
        signed = reference.parse(claim.docker_reference)
    except PalletError:
        raise signature.SignatureError(f"signature: invalid docker-reference {claim.docker_reference!r}") from None
    if not _identity_matches(req["identity"], ref.docker_reference(), signed):
        raise signature.SignatureError(f"Signature for identity {signed} is not accepted (the policy's "
                                       f"signedIdentity {req['identity']['type']} does not accept it for {ref})")


def _identity_matches(ident: dict, intended, signed) -> bool:
    """containers-policy.json(5)'s signedIdentity rules; ``intended`` is the image's docker
    reference (None for transports without one: only the exact* rules can match then)."""
    from ..oci import reference

    def name_only(n):
        return not (n.tag or n.digest)

    kind = ident["type"]
    if kind == "exactReference":
        return not name_only(signed) and str(signed) == str(reference.parse(ident["dockerReference"]))
    if kind == "exactRepository":
        return signed.name == reference.parse(ident["dockerRepository"]).name
    if intended is None:
        return False
    if kind == "remapIdentity":
        prefix, new = ident["prefix"], ident["signedPrefix"]
        text = str(intended)
        if text == prefix or (text.startswith(prefix) and (prefix.endswith("/") or text[len(prefix)] in "/:@")):
            try:
                intended = reference.parse(new + text[len(prefix):])
            except PalletError:
                return False
        kind = "matchRepoDigestOrExact"
    if kind == "matchRepository":
        return signed.name == intended.name
    if name_only(intended) or name_only(signed):
        return False
    if kind == "matchExact":
        return str(signed) == str(intended)
    # matchRepoDigestOrExact: by digest, the repository is enough (the digest is checked anyway)
    if intended.digest:
        return signed.name == intended.name
    return str(signed) == str(intended)
