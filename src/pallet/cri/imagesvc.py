"""The CRI ImageService on the store, through ``images/`` (pull) and ``storage/`` (list,
status, remove): image IDs are ``sha256:`` + the config digest's hex, as containerd answers."""

from __future__ import annotations

import os

from .._std import json
from ..errors import CRIError, NotFound, PalletError


def image_id(rec: dict) -> str:
    return "sha256:" + rec["id"]


def describe(store, rec: dict) -> dict:
    """An Image message's values for a store record."""
    tags = [n for n in rec.get("names") or [] if "@" not in n]
    digests = []
    for n in rec.get("names") or []:
        repo = n.split("@", 1)[0] if "@" in n else n.rsplit(":", 1)[0] if ":" in n.rsplit("/", 1)[-1] else n
        if rec.get("digest"):
            d = f"{repo}@{rec['digest']}"
            if d not in digests:
                digests.append(d)
    out = {"id": image_id(rec), "repo_tags": tags, "repo_digests": digests, "size": int(rec.get("size") or 0),
           "uid": None, "username": ""}
    user = _config_user(store, rec)
    if user:
        name = user.split(":", 1)[0]
        if name.isdigit():
            out["uid"] = int(name)
        else:
            out["username"] = name
    return out


def _config_user(store, rec: dict) -> str:
    try:
        with store.open_blob(rec["config"]) as f:
            doc = json.loads(f.read(16 << 20))
        user = (doc.get("config") or {}).get("User") or ""
        return user if isinstance(user, str) else ""
    except (OSError, PalletError, KeyError, ValueError, TypeError, AttributeError):
        return ""


def lookup(store, text: str) -> dict | None:
    """The record ``text`` (an ID, ``sha256:ID``, a name or a repo@digest) names, or None."""
    if not isinstance(text, str) or not text or "\0" in text:
        raise CRIError(f"image {text!r}: not an image reference", "INVALID_ARGUMENT")
    try:
        return store.image(text)
    except NotFound:
        return None
    except PalletError as e:
        raise CRIError(f"image {text!r}: {e}", "INVALID_ARGUMENT") from None


def list_images(store, text: str = "") -> list[dict]:
    if text:
        rec = lookup(store, text)
        return [describe(store, rec)] if rec else []
    return [describe(store, r) for r in store.images()]


def _context(auth: dict, registries_conf: str | None):
    import base64

    from ..transports.base import SystemContext

    creds = None
    token = auth.get("registry_token") or None
    if auth.get("username") or auth.get("password"):
        creds = f"{auth.get('username', '')}:{auth.get('password', '')}"
    elif auth.get("auth"):
        try:
            creds = base64.b64decode(auth["auth"], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise CRIError("PullImage: auth is not base64 of user:password", "INVALID_ARGUMENT") from None
        if ":" not in creds:
            raise CRIError("PullImage: auth is not base64 of user:password", "INVALID_ARGUMENT")
    if auth.get("identity_token") and not (creds or token):
        raise CRIError("PullImage: identity tokens are not supported yet (give username and password or a "
                       "registry token)", "UNIMPLEMENTED")
    return SystemContext(creds=creds, registry_token=token, registries_conf=registries_conf or None,
                         no_creds=False)


def pull(store, text: str, auth: dict, registries_conf: str | None = None) -> str:
    """Pull ``text`` (a name, resolved as podman resolves it) with the request's credentials;
    the image's ID."""
    from ..images.pull import pull as pull_images
    from ..transports.copy import CopyOptions

    if not isinstance(text, str) or not text or "\0" in text or text.startswith("-"):
        raise CRIError(f"PullImage: {text!r} is not an image reference", "INVALID_ARGUMENT")
    from ..images.refs import has_transport

    if has_transport(text):
        raise CRIError(f"PullImage: {text!r}: give a registry image name, not a transport", "INVALID_ARGUMENT")
    ctx = _context(auth, registries_conf)
    try:
        images = pull_images(store, text, ctx, CopyOptions())
    except (PalletError, OSError) as e:
        raise CRIError(f"pulling image {text}: {e}", "UNKNOWN") from None
    return image_id(images[0])


def remove(store, text: str) -> None:
    """Remove the image (every name of it); an unknown image is fine (idempotent)."""
    rec = lookup(store, text)
    if rec is None:
        return
    users = [c["id"] for c in store.containers() if c.get("image") == rec["id"]]
    if users:
        raise CRIError(f"image {text} is in use by container {users[0][:13]}", "FAILED_PRECONDITION")
    try:
        store.remove_image(rec["id"], every_name=True)
    except NotFound:
        pass


def fs_usage(path: str) -> tuple[int, int]:
    """(bytes, inodes) used under ``path`` (hard links counted once; other mounts not entered)."""
    seen = set()
    total = inodes = 0
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0, 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != dev:
                    continue
                key = (st.st_ino, st.st_dev)
                if key in seen:
                    continue
                seen.add(key)
                inodes += 1
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return total, inodes
