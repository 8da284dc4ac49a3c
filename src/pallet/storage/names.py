"""Image names as podman stores and finds them.

Stored names are fully qualified ``host/path:tag`` (an unqualified ``x`` becomes
``localhost/x:latest``). Lookups accept a name (short or qualified, with or without tag),
``name@digest``, a full image ID, ``sha256:ID``, or a unique ID prefix.
"""

from __future__ import annotations

from ..errors import InvalidReference
from ..oci import reference as _ref


def qualify(text: str):
    """The Named under which ``text`` is stored: short names go under ``localhost/``; a name
    with a digest is stored as ``repo@digest`` (a tag beside a digest is dropped, as podman does)."""
    named = _ref.parse("localhost/" + text if _ref.is_short_name(text) else text)
    if named.digest:
        return _ref.Named(named.domain, named.path, None, named.digest)
    return named.tagged_or_latest()


def split_name(stored: str) -> tuple[str, str]:
    """(repository, tag) of a stored name: ``repo:tag``, or ``repo@digest`` whose tag is ``<none>``
    (how podman lists an image pulled by digest)."""
    if "@" in stored:
        return stored.split("@", 1)[0], "<none>"
    repo, _, tag = stored.rpartition(":")
    return repo, tag


def is_id_like(text: str) -> bool:
    t = text.removeprefix("sha256:")
    return 3 <= len(t) <= 64 and all(c in "0123456789abcdef" for c in t)


def candidates(text: str):
    """(qualified Named or None, short match (path, tag, digest) or None) for a lookup text."""
    try:
        named = _ref.parse(text if not _ref.is_short_name(text) else "localhost/" + text)
    except InvalidReference:
        return None, None
    named = named.tagged_or_latest() if not named.digest else named
    short = None
    if _ref.is_short_name(text):
        path = named.path
        short = (path, named.tag, named.digest)
    return named, short


def name_matches_short(stored: str, short) -> bool:
    """Does a stored qualified name match a short ``(path, tag, digest)`` at a path boundary?"""
    path, tag, _ = short
    repo, stag = split_name(stored)
    if "/" in stag or not repo:
        return False
    if tag and (stag != tag or "@" in stored):
        return False
    return repo.endswith("/" + path)
