"""registries.d (containers-registries.d(5)): where a registry's signatures are kept.

Every ``*.yaml`` file of the directory (``--registries.d DIR``, else
``$HOME/.config/containers/registries.d`` when it exists, else
``/etc/containers/registries.d``) may set ``default-docker`` (one file at most) and
``docker`` scopes (``host``, ``host/ns``, ``host/ns/repo``; each scope in one file only)::

    default-docker:
      lookaside: https://sigs.example.com/           # read from (also spelled sigstore)
    docker:
      registry.example.com/team:
        lookaside: file:///srv/sigs                  # the most specific scope wins
        lookaside-staging: file:///srv/sigs-staging  # written to (also sigstore-staging)

The signatures of an image ``host/path@sha256:HEX`` are then
``LOOKASIDE/path@sha256=HEX/signature-1``, ``-2``... (as containers/image lays them out).
Writing is to ``file://`` only; reading from ``file://``, ``http://`` and ``https://``.
"""

from __future__ import annotations

import os

from ..errors import ConfigError


def config_dir(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    home = os.environ.get("HOME") or os.path.expanduser("~")
    user = os.path.join(home, ".config", "containers", "registries.d")
    return user if os.path.isdir(user) else "/etc/containers/registries.d"


def _entry(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping")
    out = {}
    for key, alias in (("lookaside", "sigstore"), ("lookaside-staging", "sigstore-staging")):
        url = value.get(key, value.get(alias))
        if url is not None:
            if not isinstance(url, str) or not url.split("://", 1)[0] in ("file", "http", "https") or "://" not in url:
                raise ConfigError(f"{where}: {key}: {url!r} is not a file://, http:// or https:// URL")
            out[key] = url
    return out


def load(explicit: str | None = None) -> tuple[dict, dict]:
    """``(default-docker entry, {scope: entry})`` from the directory (empty when it is absent)."""
    d = config_dir(explicit)
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".yaml"))
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"--registries.d {d}: no such directory") from None
        return {}, {}
    except OSError as e:
        raise ConfigError(f"{d}: cannot read: {e.strerror}") from None
    default, scopes, seen_default = {}, {}, None
    for name in names:
        path = os.path.join(d, name)
        import yaml

        try:
            with open(path, "rb") as f:
                doc = yaml.safe_load(f)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping at the top")
        if "default-docker" in doc:
            if seen_default:
                raise ConfigError(f"{path}: default-docker is already set in {seen_default}")
            seen_default = path
            default = _entry(doc["default-docker"], f"{path}: default-docker")
        docker = doc.get("docker") or {}
        if not isinstance(docker, dict):
            raise ConfigError(f"{path}: docker: expected a mapping of scopes")
        for scope, value in docker.items():
            if scope in scopes:
                raise ConfigError(f"{path}: docker: scope {scope!r} is configured in another file too")
            scopes[str(scope)] = _entry(value, f"{path}: docker: {scope}")
    return default, scopes


def lookaside(named, write: bool = False, explicit: str | None = None) -> str | None:
    """The lookaside base URL for ``named`` (a reference.Named), for reading or writing; None
    when the configuration gives none."""
    default, scopes = load(explicit)
    entry = None
    parts = named.name.split("/")
    for i in range(len(parts), 0, -1):
        scope = "/".join(parts[:i])
        if scope in scopes:
            entry = scopes[scope]
            break
    if entry is None:
        entry = default
    if write:
        return entry.get("lookaside-staging") or entry.get("lookaside")
    return entry.get("lookaside")


def signature_url(base: str, named, manifest_digest: str, index: int) -> str:
    """``BASE/path@ALGO=HEX/signature-N`` (``index`` from 0)."""
    algo, _, hexpart = manifest_digest.partition(":")
    return f"{base.rstrip('/')}/{named.path}@{algo}={hexpart}/signature-{index + 1}"


def file_path(url: str) -> str:
    """The local path of a ``file://`` URL."""
    rest = url[len("file://"):]
    if not rest.startswith("/"):
        raise ConfigError(f"lookaside {url!r}: a file:// URL needs an absolute path")
    if "%" not in rest:
        return rest
    out, i, raw = bytearray(), 0, rest.encode()
    while i < len(raw):  # %XX escapes (urllib.parse would import re for this)
        if raw[i:i + 1] == b"%" and i + 3 <= len(raw):
            try:
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode(errors="surrogateescape")
