"""podman's ``search`` over a registry's ``/v2/_catalog``: repositories whose name contains the
term, or (``list_tags``) the tags of one repository. Docker Hub's v1 search API is not used."""

from __future__ import annotations

#: the catalog pages followed at most (a registry answering ``Link`` forever stops here)
MAX_PAGES = 10000
FILTER_KEYS = ("stars", "is-automated", "is-official")


class Result:
    __slots__ = ("index", "name", "description", "stars", "official", "automated", "tag")

    def __init__(self, index: str, name: str, tag: str = ""):
        self.index, self.name, self.description, self.tag = index, name, "", tag
        self.stars, self.official, self.automated = 0, "", ""

    def fields(self) -> dict:
        return {"Index": self.index, "Name": self.name, "Description": self.description, "Stars": self.stars,
                "Official": self.official, "Automated": self.automated, "Tag": self.tag}


def parse_filters(texts: list[str]):
    """podman's search filters: ``stars=N`` (at least N), ``is-automated=BOOL``, ``is-official=BOOL``;
    a predicate over a :class:`Result`. Anything else is an error naming it."""
    from ..errors import UsageError

    tests = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise UsageError(f"invalid filter {text!r}: want one of {', '.join(k + '=...' for k in FILTER_KEYS)}")
        if key == "stars":
            if not value.isdigit():
                raise UsageError(f"invalid filter {text!r}: stars takes a number")
            n = int(value)
            tests.append(lambda r, n=n: r.stars >= n)
        else:
            if value.lower() not in ("true", "false"):
                raise UsageError(f"invalid filter {text!r}: {key} takes true or false")
            want = value.lower() == "true"
            attr = "automated" if key == "is-automated" else "official"
            tests.append(lambda r, a=attr, w=want: bool(getattr(r, a)) == w)
    return lambda r: all(t(r) for t in tests)


def split_term(term: str, ctx) -> list[tuple[str, str]]:
    """(registry, term) pairs: ``host/term`` names one registry; a bare term goes to each
    unqualified-search registry of registries.conf."""
    from ..oci import reference
    from ..transports import registries_conf

    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not reference.valid_domain(first):
            from ..errors import InvalidReference

            raise InvalidReference(f"search {term!r}: {first!r} is not a registry host")
        return [(first, rest)]
    return [(host, term) for host in registries_conf.load(ctx).unqualified_search_registries]


def catalog(host: str, ctx) -> list[str]:
    """Every repository the registry lists (following ``Link`` pages)."""
    from ..transports.docker import list_catalog

    return list_catalog(host, ctx, MAX_PAGES, what=f"searching {host}")


def search(term: str, ctx, limit: int, keep) -> list[Result]:
    results = []
    for host, text in split_term(term, ctx):
        found = [Result(host, f"{host}/{repo}") for repo in catalog(host, ctx) if text in repo]
        found = [r for r in found if keep(r)]
        results.extend(found[:limit] if limit > 0 else found)
    return results


def search_tags(term: str, ctx, limit: int) -> tuple[str, list[str]]:
    """``--list-tags``: the repository's full name and its tags (``limit`` of them, if > 0)."""
    from ..errors import UsageError
    from ..oci import reference
    from ..transports.docker import list_tags

    named = reference.parse(term)
    if named.tag or named.digest:
        raise UsageError(f"search --list-tags {term!r}: a repository, without a tag or digest")
    first = term.split("/", 1)[0]
    if "/" not in term or not ("." in first or ":" in first or first == "localhost"):
        raise UsageError(f"search --list-tags {term!r}: a fully-qualified repository (registry/name) is needed")
    tags = list_tags(named, ctx)
    return named.name, tags[:limit] if limit > 0 else tags
