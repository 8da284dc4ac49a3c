"""``USER`` text (``user[:group]``, names or numbers) to ids, from an image's ``/etc/passwd``
and ``/etc/group`` lines: pure, the caller reads the files (the build by path inside its
working tree, containers by fd inside the rootfs). Shared by buildah's and podman's verbs."""

from __future__ import annotations

from ..errors import PalletError

MAX_ID = 0xFFFFFFFE


def parse_db(text: str) -> list[list[str]]:
    """A passwd or group file's entries, split at ``:`` (comments and blank lines skipped)."""
    return [line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts other scripts' digits (int("１２") is 12)."""
    return text.isascii() and text.isdigit()


def _id(text: str, what: str, error) -> int:
    if not _digits(text) or int(text) > MAX_ID:
        raise error(f"{what}: {text!r} is not a valid id (0 to {MAX_ID})")
    return int(text)


def lookup(spec: str, passwd: list, groups: list, error=PalletError) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for ``spec``; a name the files lack, or an entry with a
    malformed id, is ``error`` naming it."""
    spec = spec or "0"
    user, _, group = spec.partition(":")
    entry = None
    if _digits(user):
        uid = _id(user, "user", error)
        entry = next((e for e in passwd if len(e) > 3 and e[2] == user), None)
    else:
        entry = next((e for e in passwd if e and e[0] == user and len(e) > 3), None)
        if entry is None:
            raise error(f"unable to find user {user}: no matching entries in passwd file")
        uid = _id(entry[2], f"passwd entry of {user}: uid", error)
    gid = int(entry[3]) if entry is not None and _digits(entry[3]) and int(entry[3]) <= MAX_ID else 0
    if group:
        if _digits(group):
            gid = _id(group, "group", error)
        else:
            g = next((e for e in groups if e and e[0] == group and len(e) > 2), None)
            if g is None:
                raise error(f"unable to find group {group}: no matching entries in group file")
            gid = _id(g[2], f"group entry of {group}: gid", error)
    extra = []
    if not group:
        uname = entry[0] if entry is not None else None
        for e in groups:
            if len(e) > 3 and uname and uname in e[3].split(",") and _digits(e[2]) and int(e[2]) <= MAX_ID \
                    and int(e[2]) != gid:
                extra.append(int(e[2]))
    return uid, gid, extra
