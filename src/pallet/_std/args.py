"""The command-line parser: the part of argparse's interface ``pallet`` uses, and no more.

Why not argparse: it imports ``re`` and ``gettext`` (which imports ``locale``) and looks
for translations on its first message: ~8 ms of every ``pallet`` command here, a sixth of a
remote ``inspect``. This module keeps argparse's calls (``ArgumentParser``,
``add_argument``, ``add_subparsers``/``add_parser``, ``set_defaults``,
``parse_known_args``), its messages and its help layout, so the verb modules read as
argparse code. What it does differently, on purpose:

* an option with an optional value (``nargs="?"``: ``--tls-verify``, ``--pull``) takes the
  next word only when that word is a valid value for it (``--tls-verify false`` is false;
  ``--tls-verify docker://...`` leaves the image alone, as skopeo's ``--tls-verify`` would);
* long options may be abbreviated to a unique prefix, as argparse allows;
* positional words are collected wherever they stand between options and then shared out
  among the positional arguments in order (argparse's result for every way ``pallet`` uses
  them); the first positional word of a parser with sub-commands is the sub-command, and
  every word after it is the sub-command's.
"""

from __future__ import annotations

import sys

__all__ = ["ArgumentParser", "ArgumentTypeError", "Namespace"]


class ArgumentTypeError(Exception):
    """Raised by a ``type=`` function: its message follows ``argument --x: ``."""


class ArgumentError(Exception):
    pass


class Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __contains__(self, key):
        return key in self.__dict__

    def __eq__(self, other):
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __repr__(self):
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items())) + ")"


_NO_VALUE = ("store_true", "store_false", "store_const", "append_const", "count", "help", "version")


class _Action:
    __slots__ = ("option_strings", "dest", "action", "nargs", "const", "default", "type", "choices",
                 "required", "metavar", "help", "version")

    def __init__(self, option_strings, dest, action="store", nargs=None, const=None, default=None, type=None,
                 choices=None, required=False, metavar=None, help=None, version=None):
        self.option_strings = option_strings
        self.dest = dest
        self.action = action
        self.nargs = nargs
        self.const = const
        self.default = default
        self.type = type
        self.choices = choices
        self.required = required
        self.metavar = metavar
        self.help = help
        self.version = version

    @property
    def name(self) -> str:
        """How messages name it: ``--format/-f`` or the metavar of a positional."""
        if self.option_strings:
            return "/".join(self.option_strings)
        return self.metavar or self.dest

    def value_name(self) -> str:
        if self.metavar is not None:
            return self.metavar
        if self.choices is not None:
            return "{" + ",".join(map(str, self.choices)) + "}"
        return self.dest.upper() if self.option_strings else self.dest

    def convert(self, text: str):
        value = text
        if self.type is not None:
            try:
                value = self.type(text)
            except ArgumentTypeError as e:
                raise ArgumentError(f"argument {self.name}: {e}") from None
            except (TypeError, ValueError):
                tname = getattr(self.type, "__name__", repr(self.type))
                raise ArgumentError(f"argument {self.name}: invalid {tname} value: {text!r}") from None
        if self.choices is not None and value not in self.choices:
            choices = ", ".join(map(repr, self.choices))
            raise ArgumentError(f"argument {self.name}: invalid choice: {value!r} (choose from {choices})")
        return value

    def accepts(self, text: str) -> bool:
        """Would ``text`` be a valid value (for an optional value: take the next word or not)?"""
        try:
            self.convert(text)
        except ArgumentError:
            return False
        return True


class _SubParsers:
    """What ``add_subparsers`` returns: ``add_parser`` makes one parser per sub-command."""

    def __init__(self, parent: "ArgumentParser", dest, metavar, parser_class, required=False):
        self.parent = parent
        self.dest = dest
        self.metavar = metavar
        self.parser_class = parser_class or type(parent)
        self.required = required
        self.parsers: dict[str, ArgumentParser] = {}
        self.listed: list[tuple[str, list[str], str | None]] = []  # (name, aliases, help) for --help

    def add_parser(self, name: str, help=None, aliases=(), **kw) -> "ArgumentParser":
        kw.setdefault("prog", f"{self.parent.prog} {name}")
        if "formatter_class" not in kw and self.parent.formatter_class is not None:
            kw["formatter_class"] = self.parent.formatter_class
        p = self.parser_class(**kw)
        for n in (name, *aliases):
            self.parsers[n] = p
        self.listed.append((name, list(aliases), help))
        return p

    @property
    def name(self) -> str:
        return self.metavar or self.dest or "COMMAND"


def _looks_negative(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


class ArgumentParser:
    def __init__(self, prog=None, description=None, formatter_class=None, usage=None, epilog=None,
                 add_help=True, **_ignored):
        self.prog = prog or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "prog")
        self.description = description
        self.formatter_class = formatter_class
        self.usage = usage
        self.epilog = epilog
        self._options: dict[str, _Action] = {}
        self._actions: list[_Action] = []
        self._positionals: list[_Action] = []
        self._defaults: dict = {}
        self._sub: _SubParsers | None = None
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help message and exit")

    # ------------------------------------------------------------------ building
    def add_argument(self, *names, action="store", dest=None, **kw) -> _Action:
        if names and names[0].startswith("-"):
            long = [n for n in names if n.startswith("--")]
            if dest is None:
                dest = (long[0] if long else names[0]).lstrip("-").replace("-", "_")
            if action in ("store_true", "store_false"):
                kw.setdefault("default", action == "store_false")
                kw["const"] = action == "store_true"
            a = _Action(list(names), dest, action, **kw)
            for n in names:
                self._options[n] = a
        else:
            if dest is None:
                dest = names[0]
            a = _Action([], dest, action, **kw)
            if a.nargs is None and a.required is False:
                a.required = True
            self._positionals.append(a)
        self._actions.append(a)
        return a

    def add_subparsers(self, dest=None, metavar=None, parser_class=None, required=False, **_ignored) -> _SubParsers:
        self._sub = _SubParsers(self, dest, metavar, parser_class, required)
        return self._sub

    def set_defaults(self, **kw) -> None:
        self._defaults.update(kw)

    def get_default(self, dest):
        for a in self._actions:
            if a.dest == dest:
                return a.default
        return self._defaults.get(dest)

    # ------------------------------------------------------------------ parsing
    def parse_args(self, args=None, namespace=None) -> Namespace:
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        ns = namespace if namespace is not None else Namespace()
        try:
            extra = self._parse(args, ns)
        except ArgumentError as e:
            self.error(str(e))
        return ns, extra

    def _find(self, word: str):
        """(action, inline value) for an option word, or (None, None) when unknown."""
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            a = self._options.get(name)
            if a is None:
                hits = {id(x): x for k, x in self._options.items() if k.startswith("--") and k.startswith(name)}
                if len(hits) > 1:
                    names = ", ".join(k for k, x in self._options.items() if k.startswith(name))
                    raise ArgumentError(f"ambiguous option: {name} could match {names}")
                a = next(iter(hits.values()), None)
            return a, (value if eq else None)
        a = self._options.get(word[:2])
        if a is None:
            return None, None
        return a, (word[2:] if len(word) > 2 else None)

    def _is_option(self, word: str) -> bool:
        return len(word) > 1 and word[0] == "-" and not (word[1] in "0123456789." and _looks_negative(word)
                                                          and not self._negatives())

    def _negatives(self) -> bool:
        """Does some option look like a negative number (then "-1" is an option, as argparse has it)?"""
        return any(_looks_negative(k) for k in self._options)  # a handful of options: cheaper than caching

    def _parse(self, args: list[str], ns: Namespace) -> list[str]:
        for a in self._actions:
            if a.action != "help" and a.action != "version" and not hasattr(ns, a.dest):
                setattr(ns, a.dest, a.default)
        for k, v in self._defaults.items():
            if not hasattr(ns, k):
                setattr(ns, k, v)
        if self._sub is not None and self._sub.dest and not hasattr(ns, self._sub.dest):
            setattr(ns, self._sub.dest, None)
        extra: list[str] = []
        words: list[str] = []
        seen: set[int] = set()
        sub_args = None
        i = 0
        only_positionals = False
        while i < len(args):
            w = args[i]
            i += 1
            if not only_positionals and w == "--":
                only_positionals = True
                if self._sub is None:
                    continue
                words.append(w)  # a sub-command's parser sees it too
                continue
            if only_positionals or not self._is_option(w):
                rest = self._positionals[-1] if self._positionals and self._positionals[-1].nargs == "..." else None
                if rest is not None and len([x for x in words if x != "--"]) == len(self._positionals) - 1:
                    # argparse's REMAINDER: from here on every word is the command's (podman run IMAGE CMD -x)
                    setattr(ns, rest.dest, [w] + args[i:])
                    break
                if self._sub is not None and not [x for x in words if x != "--"]:
                    if w == "--":
                        continue
                    sub_args = (w, args[i:])
                    break
                words.append(w)
                continue
            a, inline = self._find(w)
            if a is None:
                extra.append(w)
                continue
            seen.add(id(a))
            if a.action == "help":
                self.print_help()
                self.exit(0)
            if a.action == "version":
                sys.stdout.write(f"{a.version}\n")
                self.exit(0)
            if a.action in _NO_VALUE:
                if inline is not None:
                    if w.startswith("--"):
                        raise ArgumentError(f"argument {a.name}: ignored explicit argument {inline!r}")
                    # -abc: flags one after the other
                    args.insert(i, "-" + inline)
                if a.action in ("store_true", "store_false", "store_const"):
                    setattr(ns, a.dest, a.const)
                elif a.action == "append_const":
                    setattr(ns, a.dest, list(getattr(ns, a.dest, None) or []) + [a.const])
                elif a.action == "count":
                    setattr(ns, a.dest, (getattr(ns, a.dest, None) or 0) + 1)
                continue
            if a.nargs == "?":
                if inline is not None:
                    value = a.convert(inline)
                elif i < len(args) and not self._is_option(args[i]) and a.accepts(args[i]):
                    value = a.convert(args[i])
                    i += 1
                else:
                    value = a.const
            else:
                if inline is None:
                    if i >= len(args) or (self._is_option(args[i]) and args[i] != "-"):
                        raise ArgumentError(f"argument {a.name}: expected one argument")
                    inline = args[i]
                    i += 1
                value = a.convert(inline)
            if a.action == "append":
                cur = getattr(ns, a.dest, None)
                setattr(ns, a.dest, (list(cur) if cur else []) + [value])
            else:
                setattr(ns, a.dest, value)
        extra += self._share_out(words, ns)
        missing = [a.name for a in self._actions if a.required and a.option_strings and id(a) not in seen]
        if missing:
            raise ArgumentError(f"the following arguments are required: {', '.join(missing)}")
        if sub_args is not None:
            name, rest = sub_args
            parser = self._sub.parsers.get(name)
            if parser is None:
                choices = ", ".join(repr(n) for n in self._sub.parsers)
                raise ArgumentError(f"argument {self._sub.name}: invalid choice: {name!r} (choose from {choices})")
            if self._sub.dest:
                setattr(ns, self._sub.dest, name)
            sub_ns, sub_extra = parser.parse_known_args(rest, Namespace())
            for k, v in vars(sub_ns).items():  # the sub-command's values win, as in argparse
                setattr(ns, k, v)
            extra += sub_extra
        elif self._sub is not None and self._sub.required:
            raise ArgumentError(f"the following arguments are required: {self._sub.name}")
        return extra

    def _share_out(self, words: list[str], ns: Namespace) -> list[str]:
        """Give the positional words to the positional arguments, in order; the rest is extra."""
        words = [w for w in words if w != "--"]
        acts = [a for a in self._positionals if a.nargs != "..."]
        need = [0 if a.nargs in ("?", "*") else 1 for a in acts]
        pos = 0
        for k, a in enumerate(acts):
            left = len(words) - pos
            later = sum(need[k + 1:])
            if a.nargs is None:
                take = 1 if left >= 1 else 0
            elif a.nargs == "?":
                take = 1 if left - later >= 1 else 0
            elif a.nargs in ("*", "+"):
                take = max(left - later, 0)
            else:  # an int
                take = min(int(a.nargs), left)
            if take < need[k] or (isinstance(a.nargs, int) and take < a.nargs):
                missing = [x.name for j, x in enumerate(acts[k:]) if need[k + j]]
                raise ArgumentError(f"the following arguments are required: {', '.join(missing)}")
            got = words[pos:pos + take]
            pos += take
            if a.nargs in (None, "?"):
                if got:
                    setattr(ns, a.dest, a.convert(got[0]))
            else:
                if got or a.nargs == "+":
                    setattr(ns, a.dest, [a.convert(w) for w in got])
                elif getattr(ns, a.dest, None) is None:
                    setattr(ns, a.dest, [])
        return words[pos:]

    # ------------------------------------------------------------------ messages
    def _width(self) -> int:
        """Columns for --help (a subclass may ask the terminal)."""
        return 78

    def format_usage(self) -> str:
        if self.usage:
            return f"usage: {self.usage}\n"
        parts = []
        for a in self._actions:
            if not a.option_strings:
                continue
            s = a.option_strings[0]
            if a.action not in _NO_VALUE:
                s += f" [{a.value_name()}]" if a.nargs == "?" else f" {a.value_name()}"
            parts.append(s if a.required else f"[{s}]")
        for a in self._positionals:
            v = a.value_name()
            parts.append({None: v, "?": f"[{v}]", "*": f"[{v} ...]", "+": f"{v} [{v} ...]"}.get(a.nargs, v))
        if self._sub is not None:
            parts.append(f"{self._sub.name} ...")
        width = self._width()
        head = f"usage: {self.prog}"
        lines, line = [], head
        for p in parts:
            if len(line) + 1 + len(p) > width and line != head:
                lines.append(line)
                line = " " * len(head)
            line += " " + p
        lines.append(line)
        return "\n".join(lines) + "\n"

    def format_help(self) -> str:
        out = [self.format_usage()]
        if self.description:
            out.append("\n" + self.description + "\n")
        rows_pos = [(a.value_name(), a.help) for a in self._positionals]
        if self._sub is not None:
            rows_pos.append((self._sub.name, None))
            rows_pos += [("    " + ", ".join([n, *al]), h) for n, al, h in self._sub.listed]
        rows_opt = []
        for a in self._actions:
            if not a.option_strings:
                continue
            if a.action in _NO_VALUE:
                inv = ", ".join(a.option_strings)
            else:
                v = a.value_name()
                v = f"[{v}]" if a.nargs == "?" else v
                inv = ", ".join(f"{o} {v}" for o in a.option_strings)
            rows_opt.append((inv, a.help))
        width = self._width()
        col = min(max([len(r[0]) for r in rows_pos + rows_opt] + [0]) + 4, 26)
        for title, rows in (("positional arguments", rows_pos), ("options", rows_opt)):
            if not rows:
                continue
            out.append(f"\n{title}:\n")
            for inv, h in rows:
                if not h:
                    out.append(f"  {inv}\n")
                    continue
                words, lines, line = h.split(), [], ""
                for w in words:
                    if line and len(line) + 1 + len(w) > max(width - col, 20):
                        lines.append(line)
                        line = w
                    else:
                        line = f"{line} {w}" if line else w
                lines.append(line)
                if len(inv) + 2 <= col - 2:
                    out.append(f"  {inv.ljust(col - 2)}{lines[0]}\n")
                else:
                    out.append(f"  {inv}\n" + " " * col + lines[0] + "\n")
                for rest in lines[1:]:
                    out.append(" " * col + rest + "\n")
        if self.epilog:
            out.append("\n" + self.epilog + "\n")
        return "".join(out)

    def print_help(self, file=None) -> None:
        (file or sys.stdout).write(self.format_help())

    def print_usage(self, file=None) -> None:
        (file or sys.stdout).write(self.format_usage())

    def exit(self, status=0, message=None):
        if message:
            sys.stderr.write(message)
        sys.exit(status)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")
