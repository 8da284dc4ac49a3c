"""Docker-style named references: ``[host[:port]/]path[:tag][@digest]``.

The grammar is distribution/reference's; normalisation is Docker Hub's
(``busybox`` -> ``docker.io/library/busybox``).
"""

from __future__ import annotations

from ..errors import InvalidReference
from . import digest as _digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# distribution/reference's grammar, checked by hand rather than with ``re`` (whose import
# is ~6 ms of every command that names an image):
#   path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*     path := component (/ component)*
#   domain := (label (\. label)* | "[" [a-fA-F0-9:]+ "]") (":" [0-9]+)?
#   label := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
#   tag := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}     (ASCII, as Go's \w)
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD = ALNUM | {"_"}
_TAG_CHARS = _WORD | {".", "-"}
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_DIGITS = frozenset("0123456789")


def runs(c: str, chars: frozenset, separator) -> bool:
    """Is ``c`` runs of ``chars`` joined by separators (``separator(text)`` says which are)?"""
    if not c or c[0] not in chars or c[-1] not in chars:
        return False
    i, n = 0, len(c)
    while i < n:
        if c[i] in chars:
            i += 1
            continue
        j = i
        while j < n and c[j] not in chars:
            j += 1
        if not separator(c[i:j]):
            return False
        i = j
    return True


def _path_separator(sep: str) -> bool:
    return sep in (".", "_", "__") or not sep.strip("-")


def _valid_component(c: str) -> bool:
    return runs(c, _LOWER_ALNUM, _path_separator)


def valid_path(path: str) -> bool:
    """A repository path (``library/busybox``): lowercase components."""
    return all(_valid_component(c) for c in path.split("/"))


def _valid_label(label: str) -> bool:
    return bool(label) and label[0] in ALNUM and label[-1] in ALNUM and \
        all(ch in ALNUM or ch == "-" for ch in label)


def valid_domain(domain: str) -> bool:
    """A registry host with an optional port: ``host``, ``a.b.c:5000``, ``[::1]:5000``."""
    host, port = domain, None
    if domain.startswith("["):
        end = domain.find("]")
        if end < 2 or not all(ch in _HEX_COLON for ch in domain[1:end]):
            return False
        rest = domain[end + 1:]
        if rest:
            if rest[0] != ":":
                return False
            port = rest[1:]
        host = None
    elif ":" in domain:
        host, port = domain.rsplit(":", 1)
    if port is not None and not (port and all(ch in _DIGITS for ch in port)):
        return False
    return host is None or all(_valid_label(x) for x in host.split("."))


def valid_tag(tag: str) -> bool:
    return 0 < len(tag) <= 128 and tag[0] in _WORD and all(ch in _TAG_CHARS for ch in tag)


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
        if not valid_tag(tag):
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
        if not valid_tag(tag):
            raise InvalidReference(f"invalid reference {text!r}: invalid tag {tag!r}")
    if not rest:
        raise InvalidReference(f"invalid reference {text!r}: missing repository name")
    domain, path, explicit = split_domain(rest)
    if not explicit and not normalize:
        raise InvalidReference(f"invalid reference {text!r}: not fully qualified (add a registry host)")
    if not valid_domain(domain):
        raise InvalidReference(f"invalid reference {text!r}: invalid registry host {domain!r}")
    if not valid_path(path):
        if path.lower() != path and valid_path(path.lower()):
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
