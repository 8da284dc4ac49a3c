"""Registry credentials in ``auth.json`` files, found and written as containers/image does.

Read order (the first file with an entry wins):

1. an explicit file: ``ctx.authfile``, else ``$REGISTRY_AUTH_FILE`` — when one is given,
   it is the only file read;
2. ``${XDG_RUNTIME_DIR}/containers/auth.json`` (root: ``/run/containers/0/auth.json``);
3. ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``;
4. ``${DOCKER_CONFIG:-~/.docker}/config.json``;
5. ``~/.dockercfg`` (the legacy format, without the ``auths`` wrapper).

Within a file, a credential helper named for the registry in ``credHelpers`` is asked
first (``docker-credential-NAME get``, the protocol of Docker's credential helpers), then
the ``auths`` keys longest first: ``host/ns/repo``, ``host/ns``, ``host`` (legacy
``https://host/v1/`` keys match ``host``), then the file's ``credsStore`` helper, as
Docker's config.json uses it. ``login`` writes the file of step 1 or 2 with mode 0600
(temp file, fsync, rename) — or, when that file names a helper for the registry in
``credHelpers``, hands the credentials to the helper (``store``; ``logout``: ``erase``),
as containers/image does. Credentials are never printed or logged: :class:`Credentials`
hides its password from ``repr``, and a helper's answer is never part of an error.
"""

from __future__ import annotations

import os

from .. import _fs
from ..errors import ConfigError, PalletError


class Credentials:
    """A user name and a secret (password or identity token); ``repr`` never shows the secret."""

    __slots__ = ("username", "password", "identity_token", "source")

    def __init__(self, username: str, password: str, identity_token: str = "", source: str = ""):
        self.username = username
        self.password = password
        self.identity_token = identity_token
        self.source = source  # where they came from (a path, "--creds"): safe to show

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>, source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Credentials) and self.username == other.username
                and self.password == other.password and self.identity_token == other.identity_token)

    def __hash__(self) -> int:
        return hash((self.username, self.password))


def parse_creds(text: str, source: str = "--creds") -> Credentials:
    """``user[:password]`` as given to ``--creds``."""
    if not text:
        raise ConfigError("credentials cannot be empty (want USER[:PASSWORD])")
    user, _, password = text.partition(":")
    if not user:
        raise ConfigError("credentials must name a user (want USER[:PASSWORD])")
    return Credentials(user, password, source=source)


def _home() -> str:
    return os.path.expanduser("~")


def explicit_auth_file(ctx=None) -> str | None:
    """The auth file the user named (``ctx.authfile`` or ``$REGISTRY_AUTH_FILE``), if any."""
    path = getattr(ctx, "authfile", None) if ctx is not None else None
    return path or os.environ.get("REGISTRY_AUTH_FILE") or None


def default_auth_file() -> str:
    """``${XDG_RUNTIME_DIR}/containers/auth.json``; root without XDG_RUNTIME_DIR: /run/containers/0."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "containers", "auth.json")
    uid = os.geteuid()
    if uid == 0 and "_PALLET_ROOTLESS_UID" in os.environ:  # in pallet's rootless user namespace?
        from .._userns import rootless_uid

        uid = rootless_uid()  # the user's there
    if not uid:
        return "/run/containers/0/auth.json"
    return os.path.join(f"/run/user/{uid}", "containers", "auth.json")


def auth_file_paths(ctx=None) -> list[tuple[str, bool]]:
    """(path, legacy_format) in read order."""
    explicit = explicit_auth_file(ctx)
    if explicit:
        return [(explicit, False)]
    home = _home()
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    docker = os.environ.get("DOCKER_CONFIG")
    return [
        (default_auth_file(), False),
        (os.path.join(xdg, "containers", "auth.json"), False),
        (os.path.join(docker, "config.json") if docker else os.path.join(home, ".docker", "config.json"), False),
        (os.path.join(home, ".dockercfg"), True),
    ]


def write_path(ctx=None) -> str:
    """The file ``login`` and ``logout`` change."""
    return explicit_auth_file(ctx) or default_auth_file()


def normalize_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://host/`` -> ``host``."""
    k = key
    for scheme in ("https://", "http://"):
        if k.startswith(scheme):
            k = k[len(scheme):]
            # a URL key names a registry, its path is an API version, not a namespace
            k = k.split("/", 1)[0]
            break
    if k in ("index.docker.io", "registry-1.docker.io"):
        k = "docker.io"
    return k


def keys_for(host: str, path: str = "") -> list[str]:
    """Lookup keys for ``host/path``, longest first."""
    keys = []
    if path:
        parts = path.split("/")
        for i in range(len(parts), 0, -1):
            keys.append(host + "/" + "/".join(parts[:i]))
    keys.append(host)
    return keys


def _load(path: str, legacy: bool) -> dict:
    """The ``auths`` map of a file ({} when it does not exist)."""
    return _load_all(path, legacy)[0]


def _load_all(path: str, legacy: bool) -> tuple[dict, dict, str]:
    """``(auths, credHelpers, credsStore)`` of a file (empty when it does not exist)."""
    from .._std import json

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}, {}, ""
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected an auth file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the auth file") from None
    if not raw.strip():
        return {}, {}, ""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if legacy:
        return doc, {}, ""
    auths = doc.get("auths", {})
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: \"auths\" must be an object")
    helpers = doc.get("credHelpers") or {}
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        raise ConfigError(f"{path}: \"credHelpers\" must map registries to helper names")
    store = doc.get("credsStore") or ""
    if not isinstance(store, str):
        raise ConfigError(f"{path}: \"credsStore\" must be a helper name")
    return auths, {normalize_key(k): v for k, v in helpers.items()}, store


HELPER_TIMEOUT = 60


def _run_helper(name: str, action: str, data: str, path: str) -> str | None:
    """``docker-credential-NAME ACTION`` with ``data`` on stdin: its output, or None when it
    says it has no credentials for that server. ConfigError otherwise (never with the
    helper's output: it may hold a secret)."""
    import subprocess

    if not name or "/" in name or name.startswith(".") or not name.isprintable() or " " in name:
        raise ConfigError(f"{path}: {name!r} is not a credential helper name")
    prog = f"docker-credential-{name}"
    try:
        r = subprocess.run([prog, action], input=data.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except FileNotFoundError:
        raise ConfigError(f"{path} names the credential helper {prog!r}, which is not installed "
                          f"(not found on PATH)") from None
    except PermissionError:
        raise ConfigError(f"credential helper {prog}: permission denied running it") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"credential helper {prog} {action}: no answer within {HELPER_TIMEOUT} s") from None
    except OSError as e:  # a name too long to be a program, and the like
        raise ConfigError(f"{path}: cannot run the credential helper {prog[:80]!r}: {e.strerror or e}") from None
    if r.returncode != 0:
        said = (r.stdout + r.stderr).decode(errors="replace").lower()
        if action != "store" and "credentials not found" in said:
            return None
        first = r.stderr.decode(errors="replace").strip().splitlines()
        # stderr is the helper's diagnostics; stdout is never shown (a "get" answers there)
        why = first[0][:200] if first else f"exit status {r.returncode}"
        raise ConfigError(f"credential helper {prog} {action}: {why}")
    return r.stdout.decode(errors="replace")


def _helper_servers(host: str) -> list[str]:
    """What a helper may have the registry stored under (Docker Hub's traditional URL too)."""
    return [host, "https://index.docker.io/v1/"] if host == "docker.io" else [host]


def _from_helper(name: str, host: str, path: str) -> Credentials | None:
    from .._std import json

    for server in _helper_servers(host):
        out = _run_helper(name, "get", server, path)
        if out is None:
            continue
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("Username", ""), str) \
                or not isinstance(doc.get("Secret", ""), str):
            raise ConfigError(f"credential helper docker-credential-{name} get: not the JSON object "
                              "of a credential helper")
        user, secret = doc.get("Username") or "", doc.get("Secret") or ""
        if not user and not secret:
            continue
        src = f"docker-credential-{name}"
        if user == "<token>":  # an identity (refresh) token, as Docker's helpers store them
            return Credentials("", "", secret, source=src)
        return Credentials(user, secret, source=src)
    return None


def _decode_entry(entry: object, path: str, key: str) -> Credentials | None:
    import base64
    import binascii

    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: auths[{key!r}] must be an object")
    for field in ("auth", "identitytoken"):
        if not isinstance(entry.get(field) or "", str):
            raise ConfigError(f"{path}: auths[{key!r}].{field} must be a string")
    token = entry.get("identitytoken") or ""
    auth = entry.get("auth") or ""
    if not auth and not token:
        return None
    user = password = ""
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigError(f"{path}: auths[{key!r}].auth is not valid base64 of user:password") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{path}: auths[{key!r}].auth does not decode to user:password")
    return Credentials(user, password, token, source=path)


def lookup(host: str, path: str = "", ctx=None) -> Credentials | None:
    """Stored credentials for ``host`` (and repository ``path``), or None for anonymous access."""
    wanted = keys_for(host, path)
    for file, legacy in auth_file_paths(ctx):
        auths, helpers, default_helper = _load_all(file, legacy)
        if host in helpers:
            creds = _from_helper(helpers[host], host, file)
            if creds is not None:
                return creds
        creds = _from_auths(auths, wanted, file)
        if creds is not None:
            return creds
        if default_helper:
            creds = _from_helper(default_helper, host, file)
            if creds is not None:
                return creds
    return None


def _from_auths(auths: dict, wanted: list[str], file: str) -> Credentials | None:
    if auths:
        normalized: dict[str, tuple[str, object]] = {}
        for k, v in auths.items():
            normalized.setdefault(normalize_key(k), (k, v))
        for key in wanted:
            hit = normalized.get(key)
            if hit is not None:
                creds = _decode_entry(hit[1], file, hit[0])
                if creds is not None:
                    return creds
    return None


def _write_helper(key: str, ctx=None) -> tuple[str, str | None]:
    """(the login file, the helper its ``credHelpers`` names for ``key``'s registry or None)."""
    path = write_path(ctx)
    doc = _read_whole(path)
    helpers = doc.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise ConfigError(f"{path}: \"credHelpers\" must map registries to helper names")
    registry = key.split("/", 1)[0]
    for k, v in helpers.items():
        if normalize_key(k) == registry:
            if not isinstance(v, str):
                raise ConfigError(f"{path}: credHelpers[{k!r}] must be a helper name")
            return path, v
    return path, None


def _read_whole(path: str) -> dict:
    from .._std import json

    if _fs.is_special(path):  # /dev/null, a FIFO: nothing stored there to keep (nor to wait for)
        return {}
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{path}: not valid JSON; fix or remove it before logging in") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise ConfigError(f"{path}: not an auth file (expected an object with \"auths\")")
    return doc


def _write_whole(path: str, doc: dict) -> None:
    """Replace ``path`` atomically with mode 0600 (temp + fsync + rename); a device, FIFO or
    socket is written in place (``_fs.output_file``)."""
    from .._std import json

    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PalletError(f"cannot create {parent}: {e.strerror}") from None
    data = (json.dumps(doc, indent="\t") + "\n").encode()
    _fs.write_output(path, data, 0o600, what="auth file")


def store(key: str, username: str, password: str, ctx=None) -> str:
    """Save credentials for ``key`` (``host`` or ``host/namespace``); returns the file written
    (or ``docker-credential-NAME`` when the login file sends the registry to a helper)."""
    import base64
    from .._std import json

    path, helper = _write_helper(key, ctx)
    if helper:  # the registry's credentials live in its helper, not in the file
        if "/" in key:
            raise ConfigError(f"{path}: credentials for {key} would go to the credential helper "
                              f"docker-credential-{helper}, which stores whole registries only")
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": password}),
                    path)
        return f"docker-credential-{helper}"
    doc = _read_whole(path)
    auths = doc.setdefault("auths", {})
    # drop other spellings of the same key (legacy URL forms) so lookups find the new entry
    for k in [k for k in auths if k != key and normalize_key(k) == key]:
        del auths[k]
    entry = auths.get(key) if isinstance(auths.get(key), dict) else {}
    entry = dict(entry)
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    entry.pop("identitytoken", None)
    auths[key] = entry
    _write_whole(path, doc)
    return path


def remove(key: str, ctx=None) -> bool:
    """Forget credentials for ``key``; False when there were none in the login file (or its helper)."""
    path, helper = _write_helper(key, ctx)
    if helper:
        return _run_helper(helper, "erase", key, path) is not None
    doc = _read_whole(path)
    auths = doc.get("auths", {})
    gone = [k for k in auths if k == key or normalize_key(k) == key]
    if not gone:
        return False
    for k in gone:
        del auths[k]
    _write_whole(path, doc)
    return True


def remove_all(ctx=None) -> str:
    """Forget every credential in the login file (``logout --all``); returns its path."""
    path = write_path(ctx)
    if _fs.is_special(path):  # --authfile /dev/null: write it empty, never delete a device
        _write_whole(path, {"auths": {}})
        return path
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PalletError(f"cannot remove {path}: {e.strerror}") from None
    return path


def get_username(key: str, ctx=None) -> str | None:
    host, _, path = key.partition("/")
    creds = lookup(host, path, ctx)
    return creds.username if creds else None
