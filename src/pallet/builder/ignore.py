""".dockerignore / .containerignore patterns, as Docker's pattern matcher reads them.

One pattern a line; ``#`` lines are comments; ``!`` re-includes; patterns are cleaned like
Go's ``filepath.Clean`` and a leading ``/`` is dropped; ``*`` and ``?`` do not cross ``/``,
``**`` matches any number of directories; a path is excluded when it or one of its parent
directories matches (the last matching pattern decides).
"""

from __future__ import annotations

import os
import posixpath
import re

from ..errors import BuildError


def _clean(p: str) -> str:
    p = posixpath.normpath(p)
    if p.startswith("//"):
        p = p[1:]
    return p


def _regex(pattern: str) -> re.Pattern:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":  # **/ : zero or more directories
                    i += 1
                    out.append("(.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as e:  # [z-a], a bad escape: Docker refuses the pattern too
        raise ValueError(e.msg) from None


class IgnoreRules:
    def __init__(self, lines: list[str], source: str = ".dockerignore"):
        self.patterns: list[tuple[re.Pattern, bool, str]] = []
        self.source = source  # the file the rules came from (named in errors)
        for number, line in enumerate(lines, 1):
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            if not p:
                continue
            p = _clean(p)
            if len(p) > 1 and p.startswith("/"):
                p = p[1:]
            try:
                rx = _regex(p)
            except ValueError as e:
                from ..errors import BuildError

                raise BuildError(f"{source}:{number}: invalid pattern {line.strip()!r}: {e}") from None
            self.patterns.append((rx, exclusion, p))
        self.has_exclusions = any(e for _, e, _ in self.patterns)

    @classmethod
    def load(cls, context: str, dockerfile: str | None = None) -> "IgnoreRules":
        """The rules for a build: ``<Dockerfile>.dockerignore`` next to it, else the context's
        ``.containerignore``, else its ``.dockerignore``."""
        cands = []
        if dockerfile:
            cands += [dockerfile + ".containerignore", dockerfile + ".dockerignore"]
        cands += [os.path.join(context, ".containerignore"), os.path.join(context, ".dockerignore")]
        import stat

        for c in cands:
            # opened without waiting (a FIFO named .dockerignore would block the build forever),
            # then read only if it is a regular file; a symlink is followed as buildah follows it
            # (a monorepo's shared rules): the rules choose what is copied, they are never copied
            try:
                fd = os.open(c, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            except OSError as e:
                raise BuildError(f"{c}: {e.strerror}") from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(fd)
                if stat.S_ISDIR(mode):
                    continue
                raise BuildError(f"{c}: not a regular file: ignore rules are read from a text file")
            with open(fd, encoding="utf-8", errors="surrogateescape") as f:
                return cls(f.read().splitlines(), c)
        return cls([])

    @classmethod
    def from_file(cls, path: str) -> "IgnoreRules":
        """The rules in ``path`` (``--ignorefile``); a missing file is an error."""
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return cls(f.read().splitlines(), path)
        except OSError as e:
            raise BuildError(f"--ignorefile {path}: {e.strerror}") from None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, rel: str) -> bool:
        """Is ``rel`` (a path relative to the context, ``/``-separated) excluded?"""
        if not self.patterns:
            return False
        rel = _clean(rel).lstrip("/")
        if rel in (".", ""):
            return False
        parents = []
        p = rel
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            parents.append(p)
        matched = False
        for rx, exclusion, _ in self.patterns:
            if matched != exclusion:  # only a pattern that could change the answer is tried
                continue
            hit = rx.match(rel) is not None or any(rx.match(q) for q in parents)
            if hit:
                matched = not exclusion
        return matched

    def may_include_below(self, rel: str) -> bool:
        """Could something below the excluded directory ``rel`` be re-included by a ``!`` rule?
        Only a rule naming a path below it (``!rel/...``), as buildah's copier descends: a
        wildcard rule (``!*/keep*``) does not bring an excluded directory back (Docker's would)."""
        if not self.has_exclusions:
            return False
        rel = _clean(rel).lstrip("/")
        return any(exclusion and pat.startswith(rel + "/") for _, exclusion, pat in self.patterns)
