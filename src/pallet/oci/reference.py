"""Docker-style named references: ``[host[:port]/]path[:tag][@digest]``.

The grammar is distribution/reference's; normalisation is Docker Hub's
(``busybox`` -> ``docker.io/library/busybox``).
"""

from __future__ import annotations

import re

from ..errors import InvalidReference
from . import digest as _digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


class Named:
    """A fully-qualified (normalised) reference to a repository, maybe with a tag and/or digest."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None):
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def name(self) -> str:
        """``domain/path``, the repository."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def __repr__(self) -> str:
        return f"Named({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Named) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def familiar(self) -> str:
        """The short form Docker shows (``busybox:latest`` for ``docker.io/library/busybox:latest``)."""
        s = self.name
        if self.domain == DEFAULT_DOMAIN:
            s = self.path[len(OFFICIAL_REPO_PREFIX):] if self.path.startswith(OFFICIAL_REPO_PREFIX) else self.path
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_tag(self, tag: str) -> "Named":
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid tag {tag!r}")
        return Named(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Named":
        return Named(self.domain, self.path, None, digest)

    def repo_only(self) -> "Named":
        return Named(self.domain, self.path)

    def tagged_or_latest(self) -> "Named":
        """Add ``:latest`` when there is neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return Named(self.domain, self.path, DEFAULT_TAG)


def split_domain(name: str) -> tuple[str, str, bool]:
    """Split ``name`` into (domain, remainder, explicit) the way Docker does."""
    i = name.find("/")
    if i == -1 or not any(c in name[:i] for c in ".:") and name[:i] != "localhost" and name[:i].islower():
        domain, rest, explicit = DEFAULT_DOMAIN, name, False
    else:
        domain, rest, explicit = name[:i], name[i + 1:], True
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in rest:
        rest = OFFICIAL_REPO_PREFIX + rest
    return domain, rest, explicit


def parse(text: str, *, normalize: bool = True) -> Named:
    """Parse a reference; ``normalize`` applies Docker Hub defaults to names without a domain.

    With ``normalize=False`` a name without an explicit domain is an error (skopeo's
    ``docker://`` accepts short names and normalises them; pallet's store qualifies them
    itself, see storage).
    """
    if not text:
        raise InvalidReference("invalid reference: empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference {text!r}: contains white space")
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            _digest.validate(digest, "digest")
        except Exception:
            raise InvalidReference(f"invalid reference {text!r}: {digest!r} is not a valid digest") from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid reference {text!r}: invalid tag {tag!r}")
    if not rest:
        raise InvalidReference(f"invalid reference {text!r}: missing repository name")
    domain, path, explicit = split_domain(rest)
    if not explicit and not normalize:
        raise InvalidReference(f"invalid reference {text!r}: not fully qualified (add a registry host)")
    if not _DOMAIN_RE.match(domain):
        raise InvalidReference(f"invalid reference {text!r}: invalid registry host {domain!r}")
    if not _PATH_RE.match(path):
        if path.lower() != path and _PATH_RE.match(path.lower()):
            raise InvalidReference(f"invalid reference {text!r}: repository name must be lowercase")
        raise InvalidReference(f"invalid reference {text!r}: invalid repository name {path!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"invalid reference {text!r}: repository name longer than {NAME_TOTAL_LENGTH_MAX}")
    return Named(domain, path, tag, digest)


def is_short_name(text: str) -> bool:
    """True when ``text`` has no registry host (needs registries.conf to resolve)."""
    head = text.split("@", 1)[0]
    i = head.find("/")
    if i == -1:
        return True
    first = head[:i]
    return not (any(c in first for c in ".:") or first == "localhost" or not first.islower())
