"""Trust policy (containers-policy.json): which images may be copied, per transport and scope.

Search order: ``--policy``, ``$HOME/.config/containers/policy.json``,
``/etc/containers/policy.json``; with none of them every image is accepted (skopeo refuses
instead; pallet does not make a fresh machine unusable). ``--insecure-policy`` skips the check.

Requirements understood: ``insecureAcceptAnything`` and ``reject``. Signature requirements
(``signedBy``, ``sigstoreSigned``) need signature verification, which pallet does not do yet:
an image they govern is refused with a message saying so, never silently accepted.
"""

from __future__ import annotations

from .. import _json as json
import os

from ..errors import ConfigError, PalletError


class PolicyRejected(PalletError):
    """The trust policy does not allow this image."""


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
        doc["_path"] = path
        return doc
    return None


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


def check(ref, explicit: str | None = None, insecure: bool = False) -> None:
    """Raise PolicyRejected unless the policy lets ``ref`` be read."""
    if insecure:
        return
    doc = load(explicit)
    if doc is None:
        return
    reqs, scope = requirements(doc, ref)
    if not isinstance(reqs, list) or not reqs:
        raise ConfigError(f"{doc['_path']}: the requirements for {scope!r} must be a non-empty list")
    for r in reqs:
        kind = r.get("type") if isinstance(r, dict) else None
        if kind == "insecureAcceptAnything":
            continue
        if kind == "reject":
            raise PolicyRejected(f"{ref} is rejected by the policy in {doc['_path']} (scope {scope!r})")
        if kind in ("signedBy", "sigstoreSigned"):
            raise PolicyRejected(f"{ref}: the policy in {doc['_path']} requires {kind} signatures "
                                 f"(scope {scope!r}), and pallet cannot verify signatures yet; "
                                 "use --insecure-policy to copy it unverified")
        raise ConfigError(f"{doc['_path']}: unknown policy requirement {kind!r} for {scope!r}")
