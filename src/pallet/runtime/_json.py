"""JSON without ``import json``.

``json`` imports ``re`` (and ``re`` imports ``enum``, ``functools``...), which costs
about 10 ms here: half of what runc needs for a whole ``run``.  The C accelerator
``_json`` has everything we need for the hot path (read config.json, write
state.json); pretty output (``spec``, ``state``) uses the real ``json`` module.
"""

import _json

_WS = " \t\n\r"


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"{name} is not valid JSON")


_scan = _json.make_scanner(_Ctx())
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)


def loads(text):
    """Parse one JSON document; ValueError (with the position) when it is not JSON."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        obj, end = _scan(text, i)
    except Exception:  # bad input: let the real module say where and why
        import json

        json.loads(text)
        raise ValueError("invalid JSON") from None
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise ValueError(f"extra data after JSON at character {end}")
    return obj


def dumps(obj):
    """Compact JSON (``TypeError`` for what JSON cannot hold)."""
    return "".join(_encode(obj, 0))


def dumps_pretty(obj, indent="\t"):
    import json

    return json.dumps(obj, indent=indent)
