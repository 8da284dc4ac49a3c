"""Go text/template for every ``--format``, as podman, buildah and skopeo run it.

What is there: text and actions with ``{{- -}}`` trim markers and ``{{/* comments */}}``;
``if``/``else if``/``else``, ``range`` (``$i, $v :=``, ``else``, ``break``, ``continue``),
``with``/``else``; pipelines with ``|``, parenthesised pipelines, variables (``$x :=``,
``$x =``, ``$``); fields (``.A.B``, ``$x.A``, ``(pipe).A``); strings, raw strings, numbers,
``true``/``false``/``nil``; the functions ``and or not len index print printf println eq ne
lt le gt ge`` (Go's) and ``json upper lower title join split truncate pad`` (podman's).

Data are plain Python values. A :class:`Struct` is a Go struct: asking it for a field it does
not have is an error (``can't evaluate field X``), as in Go; a plain ``dict`` is a Go map: a
missing key is ``<no value>``. Errors are :class:`UsageError` with Go's ``template: NAME:LINE:COL``
prefix. Pure: no I/O; imported only when ``--format`` is given.
"""

from __future__ import annotations

from .._std import json
from ..errors import UsageError


class Struct(dict):
    """A dict whose keys are a struct's fields: an unknown field is an error. ``json_view``,
    when given, is what ``{{json .}}`` prints (the verb's JSON object, as podman's reporters
    marshal the summary they wrap rather than their display fields)."""

    __slots__ = ("type_name", "json_view")

    def __init__(self, type_name: str, *args, json_view=None, **kw):
        super().__init__(*args, **kw)
        self.type_name = type_name
        self.json_view = json_view


class TemplateError(UsageError):
    pass


_MISSING = object()  # a map's missing key: Go prints "<no value>"
MAX_DEPTH = 100  # parentheses and if/range/with, together: deeper is refused, not a RecursionError
MAX_PAD = 1_000_000  # as Go's fmt refuses wider widths: no template makes gigabytes of spaces


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- lexing ----------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_IDENT_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_IDENT = _IDENT_START + "0123456789"


class _Tok:
    __slots__ = ("kind", "val", "pos", "space")

    def __init__(self, kind, val, pos, space):
        self.kind, self.val, self.pos, self.space = kind, val, pos, space

    def __repr__(self):
        return f"{self.kind}:{self.val!r}"


class _Lexer:
    def __init__(self, name: str, text: str):
        self.name, self.text = name, text

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1)
        return f"{self.name}:{line}:{col}"

    def fail(self, pos: int, msg: str):
        raise TemplateError(f"template: {self.where(pos)}: {msg}")

    def items(self):
        """Yields ("text", str, pos) and ("action", [tokens], pos)."""
        text, i, n = self.text, 0, len(self.text)
        trim_next = False
        while i < n:
            j = text.find("{{", i)
            chunk = text[i:] if j < 0 else text[i:j]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            if j < 0:
                if chunk:
                    yield "text", chunk, i
                return
            k = j + 2
            if text.startswith("-", k) and k + 1 < n and text[k + 1] in _SPACE:
                chunk = chunk.rstrip(_SPACE)
                k += 2
            if chunk:
                yield "text", chunk, i
            # a comment
            m = k
            while m < n and text[m] in _SPACE:
                m += 1
            if text.startswith("/*", m):
                end = text.find("*/", m + 2)
                if end < 0:
                    self.fail(j, "unclosed comment")
                m = end + 2
                while m < n and text[m] in _SPACE:
                    m += 1
                if text.startswith("-}}", m) and text[m - 1] in _SPACE:
                    trim_next, i = True, m + 3
                elif text.startswith("}}", m):
                    trim_next, i = False, m + 2
                else:
                    self.fail(j, "comment ends before closing delimiter")
                continue
            toks, i, trim_next = self._action(k, j)
            yield "action", toks, j

    def _action(self, i: int, start: int):
        text, n = self.text, len(self.text)
        toks = []
        space = True
        while True:
            if i >= n:
                self.fail(start, "unclosed action")
            c = text[i]
            if c in _SPACE:
                if text.startswith("-}}", i + 1) and c in _SPACE:
                    return toks, i + 4, True
                space = True
                i += 1
                continue
            if text.startswith("}}", i):
                return toks, i + 2, False
            pos = i
            if c == '"':
                j = i + 1
                while j < n and text[j] != '"':
                    if text[j] == "\\":
                        j += 1
                    elif text[j] == "\n":
                        self.fail(pos, "unterminated quoted string")
                    j += 1
                if j >= n:
                    self.fail(pos, "unterminated quoted string")
                toks.append(_Tok("str", _unquote(text[i:j + 1], lambda m: self.fail(pos, m)), pos, space))
                i = j + 1
            elif c == "`":
                j = text.find("`", i + 1)
                if j < 0:
                    self.fail(pos, "unterminated raw quoted string")
                toks.append(_Tok("str", text[i + 1:j], pos, space))
                i = j + 1
            elif c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    self.fail(pos, "unterminated character constant")
                s = _unquote('"' + text[i + 1:j] + '"', lambda m: self.fail(pos, m))
                if len(s) != 1:
                    self.fail(pos, f"malformed character constant: {text[i:j + 1]}")
                toks.append(_Tok("num", ord(s), pos, space))
                i = j + 1
            elif c == ".":
                j = i + 1
                if j < n and text[j] in _IDENT_START:
                    while j < n and text[j] in _IDENT:
                        j += 1
                    toks.append(_Tok("field", text[i + 1:j], pos, space))
                elif j < n and text[j] in "0123456789":
                    j = self._number(i, toks, space)
                else:
                    toks.append(_Tok("dot", ".", pos, space))
                i = j
            elif c == "$":
                j = i + 1
                while j < n and text[j] in _IDENT:
                    j += 1
                toks.append(_Tok("var", text[i:j], pos, space))
                i = j
            elif c in "0123456789" or (c in "+-" and i + 1 < n and text[i + 1] in "0123456789."):
                i = self._number(i, toks, space)
            elif c in _IDENT_START:
                j = i
                while j < n and text[j] in _IDENT:
                    j += 1
                word = text[i:j]
                kind = "bool" if word in ("true", "false") else "nil" if word == "nil" else "ident"
                toks.append(_Tok(kind, word == "true" if kind == "bool" else word, pos, space))
                i = j
            elif text.startswith(":=", i):
                toks.append(_Tok("declare", ":=", pos, space))
                i += 2
            elif c in "=|(),":
                toks.append(_Tok(c, c, pos, space))
                i += 1
            else:
                self.fail(pos, f"unexpected {c!r} in command")
            space = False

    def _number(self, i: int, toks: list, space: bool) -> int:
        text, n = self.text, len(self.text)
        j = i
        while j < n and (text[j] in _IDENT or text[j] in ".+-") and not (text[j] in "+-" and j > i
                                                                              and text[j - 1] not in "eEpP"):
            j += 1
        word = text[i:j].replace("_", "")
        try:
            if any(x in word for x in ".eE") and not word.lower().lstrip("+-").startswith("0x"):
                val = float(word)
            else:
                val = int(word, 0)
        except ValueError:
            self.fail(i, f"bad number syntax: {text[i:j]!r}")
        toks.append(_Tok("num", val, i, space))
        return j


def _unquote(s: str, fail) -> str:
    body = s[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
              "f": "\f", "v": "\v", "0": "\0"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[e]
            h = body[i + 2:i + 2 + width]
            try:
                out.append(chr(int(h, 16)))
            except ValueError:
                fail(f"invalid syntax: {s}")
            i += 2 + width
        elif e in simple:
            out.append(simple[e])
            i += 2
        else:
            fail(f"invalid syntax: {s}")
    return "".join(out)


# -- parsing ---------------------------------------------------------------------------------

class _Parser:
    def __init__(self, lexer: _Lexer):
        self.lx = lexer
        self.items = list(lexer.items())
        self.i = 0
        self.vars = [["$"]]
        self.kinds: list[str] = []
        self.depth = 0

    def parse(self):
        body, end = self._list(())
        if end is not None:
            self.lx.fail(end[2], f"unexpected {{{{{_describe(end[1])}}}}}")
        return body

    def _list(self, stops):
        """Nodes up to an action whose first word is in ``stops``; returns (nodes, that item)."""
        out = []
        while self.i < len(self.items):
            kind, val, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                out.append(("text", val))
                continue
            if not val:
                self.lx.fail(pos, "missing value for command")
            head = val[0]
            word = head.val if head.kind == "ident" else None
            if word in ("end", "else"):
                if word not in stops:
                    self.lx.fail(pos, f"unexpected {{{{{word}}}}}")
                return out, (word, val, pos)
            if word in ("if", "range", "with"):
                out.append(self._control(word, val, pos))
            elif word in ("break", "continue"):
                if "range" not in self.kinds:
                    self.lx.fail(pos, f"{{{{{word}}}}} outside {{{{range}}}}")
                if len(val) != 1:
                    self.lx.fail(pos, f"unexpected {val[1].val!r} in {word}")
                out.append((word,))
            elif word in ("define", "template", "block"):
                self.lx.fail(pos, f"{{{{{word}}}}} is not supported in --format")
            else:
                out.append(("action", pos, self._pipeline(val, pos, decl_ok=True)))
        if stops:
            self.lx.fail(len(self.lx.text), "unexpected EOF")
        return out, None

    def _control(self, word, toks, pos):
        self._nest(pos)
        self.vars.append([])
        self.kinds.append(word)
        try:
            pipe = self._pipeline(toks[1:], pos, decl_ok=True, ranged=word == "range")
            if not pipe[2]:
                self.lx.fail(pos, f"missing value for {word}")
            body, end = self._list(("end", "else"))
            other = []
            if end[0] == "else":
                etoks = end[1]
                if len(etoks) > 1 and etoks[1].kind == "ident" and etoks[1].val in ("if", "with"):
                    # "else if" / "else with": a nested control that shares our {{end}}
                    self.kinds.pop()
                    self.kinds.append("else")
                    nested = self._control(etoks[1].val, etoks[1:], end[2])
                    other = [nested]
                    return (word, pos, pipe, body, other)
                if len(etoks) > 1:
                    self.lx.fail(end[2], "unexpected tokens after else")
                other, end = self._list(("end",))
            return (word, pos, pipe, body, other)
        finally:
            self.vars.pop()
            if self.kinds:
                self.kinds.pop()

    def _pipeline(self, toks, pos, decl_ok=False, ranged=False):
        self.depth += 1
        try:
            return self._pipeline1(toks, pos, decl_ok, ranged)
        finally:
            self.depth -= 1

    def _nest(self, pos):
        if self.depth + len(self.kinds) > MAX_DEPTH:
            self.lx.fail(pos, f"nested more than {MAX_DEPTH} deep")

    def _pipeline1(self, toks, pos, decl_ok, ranged):
        self._nest(pos)
        decls, assign = [], False
        # $x := / $x = / $i, $v :=
        if decl_ok and toks and toks[0].kind == "var":
            if len(toks) > 1 and toks[1].kind in ("declare", "="):
                decls, assign, toks = [toks[0].val], toks[1].kind == "=", toks[2:]
            elif ranged and len(toks) > 3 and toks[1].kind == "," and toks[2].kind == "var" \
                    and toks[3].kind in ("declare", "="):
                decls, assign, toks = [toks[0].val, toks[2].val], toks[3].kind == "=", toks[4:]
        for d in decls:
            if assign:
                if not any(d in scope for scope in self.vars):
                    self.lx.fail(pos, f"undefined variable: {d}")
            else:
                self.vars[-1].append(d)
        cmds, cur = [], []
        depth = 0
        for t in toks:
            if t.kind == "(":
                depth += 1
            elif t.kind == ")":
                depth -= 1
            if t.kind == "|" and depth == 0:
                if not cur:
                    self.lx.fail(t.pos, "missing command")
                cmds.append(cur)
                cur = []
            else:
                cur.append(t)
        if depth:
            self.lx.fail(pos, "unclosed left paren" if depth > 0 else "unexpected right paren")
        if cur:
            cmds.append(cur)
        elif cmds:
            self.lx.fail(pos, "missing command")
        if not cmds and not decls:
            self.lx.fail(pos, "missing value for command")
        return (decls, assign, [self._command(c) for c in cmds])

    def _command(self, toks):
        args, i = [], 0
        while i < len(toks):
            node, i = self._operand(toks, i)
            args.append(node)
        return args

    def _operand(self, toks, i):
        t = toks[i]
        if t.kind == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(toks[j].kind, 0)
                j += 1
            node = ("pipe", t.pos, self._pipeline(toks[i + 1:j - 1], t.pos))
            i = j
        elif t.kind == "field":
            return self._chain(("dot", t.pos), toks, i + 1, [(t.val, t.pos)])
        elif t.kind == "dot":
            node, i = ("dot", t.pos), i + 1
        elif t.kind == "var":
            if not any(t.val in scope for scope in self.vars):
                self.lx.fail(t.pos, f"undefined variable: {t.val}")
            node, i = ("var", t.pos, t.val), i + 1
        elif t.kind in ("str", "num", "bool"):
            node, i = ("const", t.pos, t.val), i + 1
        elif t.kind == "nil":
            node, i = ("nil", t.pos), i + 1
        elif t.kind == "ident":
            if t.val not in _FUNCS:
                self.lx.fail(t.pos, f'function "{t.val}" not defined')
            node, i = ("func", t.pos, t.val), i + 1
        else:
            self.lx.fail(t.pos, f"unexpected {t.val!r} in operand")
        return self._chain(node, toks, i)

    def _chain(self, node, toks, i, names=None):
        names = names or []
        while i < len(toks) and toks[i].kind == "field" and not toks[i].space:
            names.append((toks[i].val, toks[i].pos))
            i += 1
        if names:
            if node[0] in ("func", "nil", "const"):
                self.lx.fail(names[0][1], f"unexpected .{names[0][0]} after {_node_text(node)}")
            node = ("field", names[0][1], node, names)
        return node, i


def _describe(toks) -> str:
    return " ".join(str(t.val) for t in toks)


# -- values ----------------------------------------------------------------------------------

def _truth(v) -> bool:
    if v is None or v is _MISSING:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


def _type(v) -> str:
    if isinstance(v, Struct):
        return v.type_name
    if v is None or v is _MISSING:
        return "nil"
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
            tuple: "[]interface {}", dict: "map[string]interface {}"}.get(type(v), type(v).__name__)


def show(v) -> str:
    """Go's %v of a value."""
    if v is _MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v))
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(show(x) for x in v) + "]"
    if isinstance(v, Struct):
        return "{" + " ".join(show(x) for x in v.values()) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{show(k)}:{show(v[k])}" for k in sorted(v, key=str)) + "]"
    return str(v)


def _go_json(v) -> str:
    """Go's json.Marshal (as podman's ``json`` function): compact, maps' keys sorted, a
    struct's fields in order, no HTML escaping."""
    return json.dumps(_go_value(v), separators=(",", ":"), ensure_ascii=False)


def _go_value(v):
    if v is _MISSING:
        return None
    if isinstance(v, Struct):
        v = v.json_view if v.json_view is not None else v
        return {k: _go_value(x) for k, x in v.items()}
    if isinstance(v, dict):
        return {k: _go_value(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, (list, tuple)):
        return [_go_value(x) for x in v]
    return v


def _sprintf(fail, fmt, *args) -> str:
    out, i, a = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "+-# 0":
            j += 1
        while j < len(fmt) and fmt[j] in "0123456789.":
            j += 1
        if j >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb, spec = fmt[j], fmt[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if a >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        v = args[a]
        a += 1
        flags = "".join(ch for ch in spec if ch in "+-# 0")
        width_prec = spec[len(flags):]
        if any(len(n) > 6 for n in width_prec.split(".")):  # Go's fmt: widths over 1e6 are refused
            out.append("%!(BADWIDTH)")
            a -= 1
            continue
        try:
            if verb in "dxXob" and isinstance(v, int) and not isinstance(v, bool):
                out.append(("%" + spec + verb).replace("b", "d") % v if verb != "b" else format(v, "b"))
            elif verb in "feEgG" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(("%" + spec + verb) % v)
            elif verb == "q":
                s = _quoted(v, show)
                out.append(("%" + flags.replace("#", "") + width_prec + "s") % s)
            elif verb == "t" and isinstance(v, bool):
                out.append(("%" + spec + "s") % show(v))
            elif verb in "sv":
                out.append(("%" + flags.replace("#", "").replace("+", "") + width_prec + "s") % show(v))
            elif verb in "xX" and isinstance(v, str):
                h = v.encode().hex()
                out.append(("%" + width_prec + "s") % (h.upper() if verb == "X" else h))
            elif verb == "T":
                out.append(_type(v))
            else:
                out.append(f"%!{verb}({_type(v)}={show(v)})")
        except (ValueError, TypeError):
            out.append(f"%!{verb}({_type(v)}={show(v)})")
    if a < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_type(x)}={show(x)}" for x in args[a:]) + ")")
    return "".join(out)


def _cmp_pair(fail, a, b, op):
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            fail("incompatible types for comparison")
        if op not in ("eq", "ne"):
            fail("invalid type for comparison")
    elif isinstance(a, num) and isinstance(b, num):
        pass
    elif isinstance(a, str) and isinstance(b, str):
        pass
    elif a is None or b is None or a is _MISSING or b is _MISSING:
        if op not in ("eq", "ne"):
            fail("invalid type for comparison")
        a = None if a is _MISSING else a
        b = None if b is _MISSING else b
    else:
        basic = (str, int, float)
        if type(a) is not type(b) and (isinstance(a, basic) or isinstance(b, basic)):
            fail("incompatible types for comparison")
        if op not in ("eq", "ne") or isinstance(a, (list, dict)):
            fail("invalid type for comparison")
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def _f_eq(fail, a, *bs):
    if not bs:
        fail("missing argument for comparison")
    return any(_cmp_pair(fail, a, b, "eq") for b in bs)


def _cmp(op):
    def f(fail, a, b):
        return _cmp_pair(fail, a, b, op)
    return f


def _f_len(fail, v):
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode()) if isinstance(v, str) else len(v)
    fail(f"len of type {_type(v)}")


def _f_index(fail, v, *keys):
    for k in keys:
        if isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                fail(f"cannot index slice/array with type {_type(k)}")
            if not 0 <= k < len(v):
                fail(f"index out of range: {k}")
            v = v[k] if not isinstance(v, str) else ord(v[k])
        elif isinstance(v, dict) and not isinstance(v, Struct):
            if not isinstance(k, str):
                fail(f"value has type {_type(k)}; should be string")
            # a missing key gives the zero value: "" in a map of strings (labels), nil otherwise
            v = v[k] if k in v else "" if all(isinstance(x, str) for x in v.values()) else None
        elif v is None or v is _MISSING:
            fail("index of untyped nil")
        else:
            fail(f"can't index item of type {_type(v)}")
    return v


def _f_join(fail, items, sep):
    if not isinstance(items, (list, tuple)) or not isinstance(sep, str):
        fail(f"wrong type for value; expected []string; got {_type(items)}")
    return sep.join(show(x) for x in items)


def _f_str(fn):
    def f(fail, s, *rest):
        if not isinstance(s, str):
            fail(f"wrong type for value; expected string; got {_type(s)}")
        return fn(s, *rest)
    return f


def _f_split(fail, s, sep):
    if not isinstance(s, str) or not isinstance(sep, str):
        fail("wrong type for value; expected string")
    if sep == "":
        return list(s)
    return s.split(sep)


def _f_truncate(fail, s, n):
    if not isinstance(s, str) or not isinstance(n, int):
        fail("wrong type for value; expected string and int")
    return s[:n]


def _f_pad(fail, s, n, m):
    if not isinstance(s, str) or not all(isinstance(x, int) and not isinstance(x, bool) for x in (n, m)):
        fail("wrong type for value; expected string, int, int")
    if not (0 <= n <= MAX_PAD and 0 <= m <= MAX_PAD):
        fail(f"padding out of range: {n}, {m}")
    return " " * n + s + " " * m


def _f_print(fail, *args):
    # Go's fmt.Sprint: a space between operands when neither is a string
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(show(a))
    return "".join(out)


def _f_title(s: str) -> str:
    out, prev = [], " "
    for c in s:
        out.append(c.upper() if not (prev.isalnum() or prev == "_" or prev == "'") else c)
        prev = c
    return "".join(out)


_FUNCS = {
    "and": None, "or": None,  # short-circuit: evaluated by the executor
    "not": lambda fail, v: not _truth(v),
    "len": _f_len,
    "index": _f_index,
    "print": _f_print,
    "printf": lambda fail, fmt, *a: _sprintf(fail, fmt, *a) if isinstance(fmt, str)
    else fail(f"wrong type for value; expected string; got {_type(fmt)}"),
    "println": lambda fail, *a: " ".join(show(x) for x in a) + "\n",
    "eq": _f_eq, "ne": _cmp("ne"), "lt": _cmp("lt"), "le": _cmp("le"), "gt": _cmp("gt"), "ge": _cmp("ge"),
    "json": lambda fail, v: _go_json(v),
    "upper": _f_str(str.upper), "lower": _f_str(str.lower), "title": _f_str(_f_title),
    "join": _f_join, "split": _f_split, "truncate": _f_truncate, "pad": _f_pad,
}

_ARITY = {"not": (1, 1), "len": (1, 1), "index": (1, None), "printf": (1, None), "eq": (1, None),
          "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2), "json": (1, 1),
          "upper": (1, 1), "lower": (1, 1), "title": (1, 1), "join": (2, 2), "split": (2, 2),
          "truncate": (2, 2), "pad": (3, 3), "and": (1, None), "or": (1, None)}


# -- executing -------------------------------------------------------------------------------

class _Exec:
    def __init__(self, lexer: _Lexer, name: str):
        self.lx, self.name = lexer, name
        self.out: list[str] = []

    def fail(self, pos: int, at: str, msg: str):
        raise TemplateError(f'template: {self.lx.where(pos)}: executing "{self.name}" at <{at}>: {msg}')

    def run(self, nodes, dot, scopes):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                v = self.pipeline(node[2], dot, scopes)
                if not node[2][0]:
                    self.out.append(show(v))
            elif kind == "if":
                _, pos, pipe, body, other = node
                scopes.append({})
                try:
                    self.run(body if _truth(self.pipeline(pipe, dot, scopes)) else other, dot, scopes)
                finally:
                    scopes.pop()
            elif kind == "with":
                _, pos, pipe, body, other = node
                scopes.append({})
                try:
                    v = self.pipeline(pipe, dot, scopes)
                    if _truth(v):
                        self.run(body, v, scopes)
                    else:
                        self.run(other, dot, scopes)
                finally:
                    scopes.pop()
            elif kind == "range":
                self.range(node, dot, scopes)
            elif kind == "break":
                raise _Break()
            elif kind == "continue":
                raise _Continue()

    def range(self, node, dot, scopes):
        _, pos, pipe, body, other = node
        decls = pipe[0]
        scopes.append({})
        try:
            v = self.pipeline(pipe, dot, scopes, bind=False)
            # (not over an integer: podman's Go predates range-over-int)
            if isinstance(v, Struct) or not isinstance(v, (list, tuple, dict)):
                if v is None or v is _MISSING:
                    v = []
                else:
                    self.fail(pos, "range", f"range can't iterate over {show(v)}")
            if isinstance(v, dict):
                pairs = [(k, v[k]) for k in sorted(v, key=str)]
            else:
                pairs = list(enumerate(v))
            if not pairs:
                self.run(other, dot, scopes)
                return
            for k, item in pairs:
                if len(decls) == 1:
                    self.setvar(scopes, decls[0], item, pipe[1])
                elif len(decls) == 2:
                    self.setvar(scopes, decls[0], k, pipe[1])
                    self.setvar(scopes, decls[1], item, pipe[1])
                scopes.append({})
                try:
                    self.run(body, item, scopes)
                except _Break:
                    break
                except _Continue:
                    continue
                finally:
                    scopes.pop()
        finally:
            scopes.pop()

    @staticmethod
    def setvar(scopes, name, value, assign):
        if assign:
            for s in reversed(scopes):
                if name in s:
                    s[name] = value
                    return
        scopes[-1][name] = value

    def pipeline(self, pipe, dot, scopes, bind=True):
        decls, assign, cmds = pipe
        v = _MISSING
        first = True
        for cmd in cmds:
            v = self.command(cmd, dot, scopes, None if first else v, not first)
            first = False
        if bind and decls:
            self.setvar(scopes, decls[0], v, assign)
        return v

    def command(self, args, dot, scopes, piped, has_piped):
        head = args[0]
        if head[0] == "func":
            name = head[2]
            at = name
            operands = args[1:]
            lo, hi = _ARITY.get(name, (0, None))
            count = len(operands) + has_piped
            if count < lo or (hi is not None and count > hi):
                self.fail(head[1], at, f"wrong number of args for {name}: want {lo if lo == hi else f'at least {lo}'}"
                                       f" got {count}")
            if name in ("and", "or"):
                v = _MISSING
                vals = [lambda a=a: self.arg(a, dot, scopes) for a in operands]
                if has_piped:
                    vals.append(lambda: piped)
                for get in vals:
                    v = get()
                    if _truth(v) == (name == "or"):
                        return v
                return v
            vals = [self.arg(a, dot, scopes) for a in operands]
            if has_piped:
                vals.append(piped)
            return _FUNCS[name](lambda m: self.fail(head[1], at, f"error calling {name}: {m}"), *vals)
        if len(args) > 1 or has_piped:
            self.fail(head[1], _node_text(head), "can't give argument to non-function " + _node_text(head))
        return self.arg(head, dot, scopes)

    def arg(self, node, dot, scopes):
        kind = node[0]
        if kind == "dot":
            return dot
        if kind == "const":
            return node[2]
        if kind == "nil":
            self.fail(node[1], "nil", "nil is not a command")
        if kind == "var":
            for s in reversed(scopes):
                if node[2] in s:
                    return s[node[2]]
            self.fail(node[1], node[2], f"undefined variable: {node[2]}")
        if kind == "pipe":
            return self.pipeline(node[2], dot, scopes, bind=False)
        if kind == "func":
            return self.command([node], dot, scopes, None, False)
        if kind == "field":
            base = self.arg(node[2], dot, scopes)
            seen = _node_text(node[2]) if node[2][0] != "dot" else ""
            for name, pos in node[3]:
                seen += "." + name
                if isinstance(base, Struct):
                    if name not in base:
                        self.fail(pos, seen, f"can't evaluate field {name} in type {base.type_name}")
                    base = base[name]
                elif isinstance(base, dict):
                    base = base.get(name, _MISSING)
                elif base is None:
                    self.fail(pos, seen, f"nil pointer evaluating interface {{}}.{name}")
                elif base is _MISSING:
                    # Go: a missing map key's zero value has no fields
                    self.fail(pos, seen, f"nil pointer evaluating interface {{}}.{name}")
                else:
                    self.fail(pos, seen, f"can't evaluate field {name} in type {_type(base)}")
            return base
        self.fail(node[1], "?", "cannot evaluate")


def _node_text(node) -> str:
    kind = node[0]
    if kind == "dot":
        return "."
    if kind == "var":
        return node[2]
    if kind == "func":
        return node[2]
    if kind == "const":
        return _go_json(node[2]) if isinstance(node[2], str) else show(node[2])
    if kind == "field":
        return (_node_text(node[2]) if node[2][0] != "dot" else "") + "".join("." + n for n, _ in node[3])
    return "(...)"


# -- the interface the verbs use ------------------------------------------------------------

class Template:
    """A parsed template; ``execute(data)`` returns the text."""

    def __init__(self, text: str, name: str = "format"):
        self.name = name
        self.lexer = _Lexer(name, text)
        self.nodes = _Parser(self.lexer).parse()

    def execute(self, data) -> str:
        ex = _Exec(self.lexer, self.name)
        ex.run(self.nodes, data, [{"$": data}])
        return "".join(ex.out)


def unescape(fmt: str) -> str:
    """podman's command-line convenience: a typed backslash-n/t in --format's text is a
    newline/tab (inside an action, Go's string literals already read their escapes)."""
    return _outside_actions(fmt, lambda t: t.replace("\\n", "\n").replace("\\t", "\t"))


def _outside_actions(body: str, fn) -> str:
    out, i = [], 0
    while i < len(body):
        j = body.find("{{", i)
        if j < 0:
            out.append(fn(body[i:]))
            break
        out.append(fn(body[i:j]))
        k = _action_end(body, j + 2)
        out.append(body[j:k])
        i = k
    return "".join(out)


def _action_end(body: str, i: int) -> int:
    """Where the action opened before ``i`` ends (after its ``}}``), quotes skipped."""
    quote = None
    while i < len(body):
        c = body[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"`'":
            quote = c
        elif body.startswith("}}", i):
            return i + 2
        i += 1
    return len(body)


def render(template: str, data, name: str = "format") -> str:
    """One value through a template (``inspect``'s --format)."""
    return Template(unescape(template), name).execute(data)


def is_table(fmt: str | None) -> bool:
    return bool(fmt) and (fmt == "table" or fmt.startswith("table ") or fmt.startswith("table\t"))


def render_rows(fmt: str, rows: list, headers: dict, name: str = "format", noheading: bool = False) -> str:
    """Listing verbs' --format: each row through the template, one line each (a newline is
    added unless the template ends with one), ``table ...`` adds a header line (each field
    shown by its column name) and aligns tab-separated cells as Go's tabwriter does for
    podman (minimum width 12, padding 2); other templates' tabs are printed as they are. Returns the text without a final newline."""
    table = is_table(fmt)
    body = unescape(fmt[5:].lstrip(" \t") if table else fmt)
    if table:
        body = _spaces_to_tabs(body)
    tmpl = Template(body, name)
    lines = []
    kind = rows[0].type_name if rows and isinstance(rows[0], Struct) else name
    if table or not rows:
        # the header line; with nothing to list it still refuses a field the rows would not have had
        try:
            header = tmpl.execute(Struct(kind, headers))
        except TemplateError as e:
            if "can't evaluate field" in str(e):
                raise  # (other errors come from a header's text where the template wants a number)
        else:
            if table and not noheading:
                lines.append(header)
    for r in rows:
        lines.append(tmpl.execute(r))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    # only a table is aligned: podman 4.3 prints another template's tabs as they are
    return (tabwrite(text) if table else text).rstrip("\n")


def _spaces_to_tabs(body: str) -> str:
    """podman's ``table`` formats: a space between fields (outside actions) separates columns."""
    return _outside_actions(body, lambda t: t.replace(" ", "\t"))


def tabwrite(text: str, minwidth: int = 12, padding: int = 2) -> str:
    """Align tab-terminated cells into columns (Go's text/tabwriter with podman's settings)."""
    if "\t" not in text:
        return text
    lines = [line.split("\t") for line in text.split("\n")]
    widths: dict[int, int] = {}
    for cells in lines:
        for i, c in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(c))
    out = []
    for cells in lines:
        parts = [c.ljust(max(minwidth, widths[i] + padding)) for i, c in enumerate(cells[:-1])]
        out.append("".join(parts) + cells[-1])
    return "\n".join(out)


def _quoted(v, show) -> str:
    """Go's %q: a string quoted; a map's or slice's elements quoted one by one
    (``map["k":"v"]``, ``["a" "b"]``), map keys sorted."""
    if isinstance(v, str):
        return _go_json(v)
    if isinstance(v, dict) and not hasattr(v, "type_name"):
        return "map[" + " ".join(f"{_quoted(k, show)}:{_quoted(v[k], show)}" for k in sorted(v, key=str)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_quoted(x, show) for x in v) + "]"
    return _go_json(show(v))
