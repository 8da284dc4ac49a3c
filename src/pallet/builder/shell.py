"""Docker's variable expansion for Dockerfile words (BuildKit's shell lexer, re-done).

``expand(word, env)`` processes one word as Docker does for ENV, LABEL, ARG, COPY, ADD,
WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and FROM: ``$V`` and ``${V}``; ``${V:-x}``,
``${V-x}``, ``${V:+x}``, ``${V+x}``, ``${V:?msg}``, ``${V?msg}``; ``${V#p}``, ``${V##p}``,
``${V%p}``, ``${V%%p}`` (shell patterns); single quotes (literal), double quotes (expansion,
escapes only of ``"``, ``$`` and the escape character); the escape character outside quotes
takes the next character literally. Quotes are removed. A ``$`` not followed by a name is
kept. ``used`` (a set), when given, collects the variable names the word refers to.
"""

from __future__ import annotations

from ..errors import BuildError


class _Lexer:
    __slots__ = ("s", "i", "env", "escape", "used")

    def __init__(self, s: str, env, escape: str, used):
        self.s = s
        self.i = 0
        self.env = env
        self.escape = escape
        self.used = used

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        if self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            return c
        return ""

    def word(self, stop: str = "") -> str:
        out = []
        while self.i < len(self.s):
            c = self.peek()
            if stop and c == stop:
                break
            self.i += 1
            if c == self.escape:
                n = self.next()
                if n:
                    out.append(n)
            elif c == "'":
                out.append(self.single_quote())
            elif c == '"':
                out.append(self.double_quote())
            elif c == "$":
                out.append(self.dollar())
            else:
                out.append(c)
        return "".join(out)

    def single_quote(self) -> str:
        end = self.s.find("'", self.i)
        if end < 0:
            raise BuildError("unexpected end of statement while looking for matching single-quote")
        out = self.s[self.i:end]
        self.i = end + 1
        return out

    def double_quote(self) -> str:
        out = []
        while True:
            c = self.next()
            if not c:
                raise BuildError("unexpected end of statement while looking for matching double-quote")
            if c == '"':
                return "".join(out)
            if c == "$":
                out.append(self.dollar())
            elif c == self.escape:
                n = self.peek()
                if n in ('"', "$", self.escape):
                    out.append(self.next())
                elif n:
                    out.append(c)
            else:
                out.append(c)

    def name(self) -> str:
        start = self.i
        c = self.peek()
        if c.isdigit():
            self.i += 1
            return c
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        return self.s[start:self.i]

    def lookup(self, name: str):
        if self.used is not None:
            self.used.add(name)
        return self.env.get(name)

    def dollar(self) -> str:
        c = self.peek()
        if c != "{":
            name = self.name()
            if not name:
                return "$"
            v = self.lookup(name)
            return v if v is not None else ""
        self.i += 1
        name = self.name()
        if not name:
            raise BuildError(f"bad substitution in {self.s!r}: missing a variable name after ${{")
        c = self.next()
        if c == "}":
            v = self.lookup(name)
            return v if v is not None else ""
        value = self.lookup(name)
        colon = c == ":"
        if colon:
            c = self.next()
        if c in ("-", "+", "?"):
            word = self.word("}")
            if self.next() != "}":
                raise BuildError(f"syntax error: missing '}}' in {self.s!r}")
            unset = value is None or (colon and value == "")
            if c == "-":
                return word if unset else value
            if c == "+":
                return "" if unset else word
            if unset:
                raise BuildError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if not colon and c in ("#", "%"):
            longest = self.peek() == c
            if longest:
                self.i += 1
            pattern = self.word("}")
            if self.next() != "}":
                raise BuildError(f"syntax error: missing '}}' in {self.s!r}")
            return _trim(value or "", pattern, c == "#", longest)
        raise BuildError(f"unsupported modifier ({c}) in substitution {self.s!r}")


def _trim(value: str, pattern: str, prefix: bool, longest: bool) -> str:
    from fnmatch import fnmatchcase

    rng = range(len(value), -1, -1) if longest else range(0, len(value) + 1)
    for n in rng:
        if prefix and fnmatchcase(value[:n], pattern):
            return value[n:]
        if not prefix and fnmatchcase(value[len(value) - n:], pattern):
            return value[:len(value) - n]
    return value


def expand(word: str, env, escape: str = "\\", used: set | None = None) -> str:
    """``word`` with variables expanded and quotes removed (Docker's ProcessWord)."""
    return _Lexer(word, env, escape, used).word()


def expand_words(text: str, env, escape: str = "\\", used: set | None = None) -> list[str]:
    """``text`` split on unquoted whitespace, each piece expanded (Docker's ProcessWords)."""
    words: list[str] = []
    cur: list[str] = []
    i = 0
    quote = ""
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == escape and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c == escape and i + 1 < len(text):
            cur.append(c + text[i + 1])
            i += 1
        elif c in ("'", '"'):
            quote = c
            cur.append(c)
        elif c.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return [expand(w, env, escape, used) for w in words]


def env_list_to_dict(env: list[str]) -> dict:
    out = {}
    for e in env or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out
