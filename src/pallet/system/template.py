"""atomic's template language for ``/exports/*.template`` files: Python's ``string.Template``
(``$NAME``, ``${NAME}``, ``$$`` for a dollar), which atomic used. Pure, no I/O.

Unlike a shell, a variable nobody defines is an error naming it, never an empty string: an
install with a typo in a template must not write a unit that runs something else."""

from __future__ import annotations

from string import Template

from ..errors import UsageError


class TemplateError(UsageError):
    """A template names a variable no one set, or has a ``$`` that is no placeholder."""


def variables(text: str) -> list[str]:
    """The variable names ``text`` uses, in order of first use."""
    out: list[str] = []
    for m in Template.pattern.finditer(text):
        name = m.group("named") or m.group("braced")
        if name and name not in out:
            out.append(name)
    return out


def substitute(text: str, values: dict, what: str) -> str:
    """``text`` with every variable replaced by ``values[name]`` (made a string); ``what``
    names the template in errors. Every unknown variable is named at once."""
    missing = [v for v in variables(text) if v not in values]
    if missing:
        names = ", ".join("$" + v for v in missing)
        raise TemplateError(f"{what}: unknown variable{'s' if len(missing) > 1 else ''} {names} (set "
                            f"{'them' if len(missing) > 1 else 'it'} with --set NAME=VALUE, or in the image's "
                            "/exports/manifest.json defaultValues)")
    try:
        return Template(text).substitute({k: str(v) for k, v in values.items()})
    except ValueError as e:  # "Invalid placeholder in string: line L, col C"
        where = str(e).partition(":")[2].strip()
        raise TemplateError(f"{what}: a '$' that is not a variable ({where}; write $$ for a dollar)") from None


def parse_sets(items) -> dict:
    """``--set KEY=VALUE`` items as a dict; a bad one is a one-line error naming it."""
    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key or not (key[0].isalpha() or key[0] == "_") or \
                not all(c.isalnum() or c == "_" for c in key) or not key.isascii():
            raise UsageError(f"--set {item!r}: want NAME=VALUE, NAME made of letters, digits and _")
        if "\n" in value or "\r" in value or "\0" in value:  # a value must not add a line to a unit
            raise UsageError(f"--set {key}: the value contains a line break or NUL")
        out[key] = value
    return out
