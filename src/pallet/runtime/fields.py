"""Checks of one value of a runtime config, each naming its field in the error
(``config.json: process.args[0]: must be a string, not a number``). Shared by ``spec``
(config.json) and ``seccomp`` (linux.seccomp); imports nothing of the runtime.
"""

from ..errors import InvalidDocument


def bad(field, problem):
    raise InvalidDocument(f"config.json: {field}: {problem}")


TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", list: "an array", dict: "an object"}


def check_type(value, typ, field, required=False):
    """Check ``value`` is of ``typ`` (None allowed unless required); returns it."""
    if value is None:
        if required:
            bad(field, "is required")
        return None
    if typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, typ)
    if not ok:
        bad(field, f"must be {TYPE_NAMES[typ]}, not {json_type(value)}")
    return value


def json_type(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "null")


def check_strlist(value, field, required=False):
    value = check_type(value, list, field, required)
    for i, s in enumerate(value or ()):
        check_type(s, str, f"{field}[{i}]", True)
    return value


def check_uint(value, field, required=False, bits=32):
    check_type(value, int, field, required)
    if value is not None and not 0 <= value < (1 << bits):
        bad(field, f"{value} is out of range")
    return value


def check_abspath(value, field, required=False):
    check_type(value, str, field, required)
    if value is not None and not value.startswith("/"):
        bad(field, f"{value!r} is not an absolute path")
    return value


MAX_DEPTH = 32  # a runtime-spec config nests ~6 levels; deeper is hostile (and would blow recursion later)


def field_name(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out or "(document)"


def check_strings(document):
    """Every string of the document (keys too) is one the kernel can take: no NUL byte
    (args, env, paths, options, hostname... all end up as C strings). Also bounds the
    nesting. Iterative: a hostile document cannot blow the stack here."""
    stack = [(document, ())]
    while stack:
        obj, path = stack.pop()
        if len(path) > MAX_DEPTH:
            bad(field_name(path[:MAX_DEPTH]), f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(obj, dict):
            for k, v in obj.items():
                if "\0" in k:
                    bad(field_name(path), f"key {k!r} contains a NUL byte")
                if isinstance(v, str):
                    if "\0" in v:
                        bad(field_name(path + (k,)), f"{v!r} contains a NUL byte")
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (k,)))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, str):
                    if "\0" in v:
                        bad(field_name(path + (i,)), f"{v!r} contains a NUL byte")
                elif isinstance(v, (dict, list)):
                    stack.append((v, path + (i,)))
