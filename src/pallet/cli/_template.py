"""A small subset of Go templates for ``--format``: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .X}}``,
``{{range .List}}...{{end}}`` with ``{{.}}``, and ``{{index .Map "key"}}``."""

from __future__ import annotations

import re

from .. import _json as json
from ..errors import UsageError

_TOKEN = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def _lookup(path: str, data):
    if path == ".":
        return data
    if not path.startswith("."):
        raise UsageError(f"template: cannot evaluate {path!r}")
    cur = data
    for part in path[1:].split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise UsageError(f"template: no field {part!r} in {path!r}")
    return cur


def _show(value) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _eval(expr: str, data) -> str:
    words = expr.split()
    if words[0] == "json" and len(words) == 2:
        return json.dumps(_lookup(words[1], data))
    if words[0] == "index" and len(words) == 3:
        container = _lookup(words[1], data)
        key = words[2].strip('"')
        try:
            return _show(container[int(key)] if isinstance(container, list) else container[key])
        except (KeyError, IndexError, ValueError, TypeError):
            raise UsageError(f"template: index {key!r} not found") from None
    if len(words) == 1:
        return _show(_lookup(words[0], data))
    raise UsageError(f"template: unsupported expression {{{{{expr}}}}}")


def render(template: str, data) -> str:
    template = template.replace("\\n", "\n").replace("\\t", "\t")
    out = []
    pos = 0
    tokens = list(_TOKEN.finditer(template))
    i = 0
    while i < len(tokens):
        t = tokens[i]
        out.append(template[pos:t.start()])
        expr = t.group(1)
        if expr.startswith("range "):
            depth, j = 1, i + 1
            while j < len(tokens) and depth:
                e = tokens[j].group(1)
                depth += e.startswith("range ")
                depth -= e == "end"
                j += 1
            if depth:
                raise UsageError("template: range without end")
            body = template[t.end():tokens[j - 1].start()]
            items = _lookup(expr.split(None, 1)[1], data) or []
            if isinstance(items, dict):
                items = list(items.values())
            for item in items:
                out.append(render(body, item))
            pos = tokens[j - 1].end()
            i = j
            continue
        out.append(_eval(expr, data))
        pos = t.end()
        i += 1
    out.append(template[pos:])
    return "".join(out)
