"""JSON as the ``json`` module reads and writes it, without importing ``json``.

``json`` imports ``re`` (which imports ``enum``, ``functools``, ``collections``...): about
10 ms of every ``pallet`` and ``pallet-runtime`` start here, more than the rest of a quick
command. The C accelerator ``_json`` does the work either way; this module calls it
directly. ``loads``, ``load``, ``dumps``, ``dump`` take the ``json`` arguments pallet uses
(``indent``, ``separators``, ``sort_keys``, ``ensure_ascii``) and give the same text and
the same objects; ``indent`` (which 3.11's C encoder cannot do) is a small pure-Python
printer. Bad input is handed to the real ``json`` module, so errors are its
``JSONDecodeError`` with line and column — only when there is an error to report. A
document nested deeper than the interpreter can recurse (the C scanner raises
``RecursionError``) is a ``ValueError`` too, so every caller's "invalid JSON" path covers it.
"""

import _json

_WS = " \t\n\r"
_INF = float("inf")


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name, _c={"NaN": float("nan"), "Infinity": _INF, "-Infinity": -_INF}):
        return _c[name]


_scan = _json.make_scanner(_Ctx())


def loads(text):
    """``json.loads``: ``str`` or UTF-8 ``bytes``; ValueError (``json.JSONDecodeError``) if it is not JSON."""
    try:
        s = text.decode("utf-8") if isinstance(text, (bytes, bytearray)) else text
        n = len(s)
        i = 0
        while i < n and s[i] in _WS:
            i += 1
        obj, end = _scan(s, i)
        while end < n and s[end] in _WS:
            end += 1
        if end == n:
            return obj
    except RecursionError:  # hostile nesting (50k "["): one ValueError, as for any bad document
        raise ValueError("nested too deeply (more levels of arrays/objects than the parser allows)") from None
    except Exception:  # noqa: BLE001  (the real module says where and why, or copes: BOMs, UTF-16)
        pass
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply (arrays and objects inside each other beyond "
                         "what pallet parses)") from None


def load(f):
    return loads(f.read())


def _unserializable(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_encoders = {}


def _encoder(item_sep, key_sep, sort_keys, ensure_ascii):
    key = (item_sep, key_sep, sort_keys, ensure_ascii)
    enc = _encoders.get(key)
    if enc is None:
        enc = _encoders[key] = _json.make_encoder(
            None, _unserializable, _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
            None, key_sep, item_sep, sort_keys, False, True)
    return enc


def _float(o):
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _key(k):
    if isinstance(k, str):
        return k
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, float):
        return _float(k)
    if isinstance(k, int):
        return int.__repr__(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def _pretty(o, out, nl, indent, level, item_sep, key_sep, sort_keys, enc):
    if isinstance(o, str):
        out.append(enc(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append(_float(o))
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        inner = nl + indent * (level + 1)
        out.append("[")
        first = True
        for v in o:
            out.append(inner if first else item_sep + inner)
            first = False
            _pretty(v, out, nl, indent, level + 1, item_sep, key_sep, sort_keys, enc)
        out.append(nl + indent * level + "]")
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = nl + indent * (level + 1)
        out.append("{")
        items = sorted(o.items()) if sort_keys else o.items()  # by the keys as given, as json does
        first = True
        for k, v in items:
            out.append(inner if first else item_sep + inner)
            first = False
            out.append(enc(_key(k)) + key_sep)
            _pretty(v, out, nl, indent, level + 1, item_sep, key_sep, sort_keys, enc)
        out.append(nl + indent * level + "}")
    else:
        _unserializable(o)


def dumps(obj, indent=None, separators=None, sort_keys=False, ensure_ascii=True):
    """``json.dumps`` with those arguments: the same text."""
    if indent is None:
        item_sep, key_sep = separators or (", ", ": ")
        return "".join(_encoder(item_sep, key_sep, sort_keys, ensure_ascii)(obj, 0))
    item_sep, key_sep = separators or (",", ": ")
    if isinstance(indent, int):
        indent = " " * indent
    out = []
    enc = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    _pretty(obj, out, "\n", indent, 0, item_sep, key_sep, sort_keys, enc)
    return "".join(out)


def dump(obj, f, **kw):
    f.write(dumps(obj, **kw))
