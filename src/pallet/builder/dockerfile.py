"""Reading a Dockerfile/Containerfile: BuildKit's own grammar (through the ``dockerfile``
package, which wraps it), then the checks Docker makes before building, with file:line in
every message: known instructions, known flags, enough arguments, a FROM first."""

from __future__ import annotations

from ..errors import BuildError

#: instruction -> flags it takes
FLAGS = {
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
#: flags Docker knows that pallet does not implement yet: refused, never silently ignored
#: (an ignored ``ADD --checksum`` would skip a verification the Dockerfile asked for)
NOT_YET = {("RUN", "security"), ("COPY", "parents"), ("COPY", "exclude"), ("ADD", "exclude"),
           ("ADD", "checksum"), ("ADD", "keep-git-dir")}
#: what buildah says of a flag COPY or ADD does not take, or takes only as --flag=value
COPY_FLAGS_WORDING = {
    "COPY": "COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from=<image|stage> flags",
    "ADD": "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags",
}
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


class Instruction:
    __slots__ = ("cmd", "args", "flags", "json", "original", "line", "heredocs", "sub", "file")

    def __init__(self, cmd: str, args: list[str], flags: list[tuple[str, str | None]], json_form: bool,
                 original: str, line: int, heredocs: list[tuple[str, str, bool]], sub: str | None, file: str):
        self.cmd = cmd
        self.args = args
        self.flags = flags
        self.json = json_form
        self.original = original
        self.line = line
        #: (name, content, expand) per heredoc; ``<<-`` tabs already stripped
        self.heredocs = heredocs
        self.sub = sub
        self.file = file

    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def flag(self, name: str, default=None):
        vals = [v for k, v in self.flags if k == name]
        return vals[-1] if vals else default

    def flag_all(self, name: str) -> list:
        return [v for k, v in self.flags if k == name]

    def text(self) -> str:
        """The instruction as written, on one line (for progress and history)."""
        return " ".join(self.original.split("\n", 1)[0].split())

    def error(self, message: str, exit_code: int | None = None) -> BuildError:
        if message.startswith("building at STEP "):  # the peers' words first (scripts match "Error: building
            return BuildError(f"{message} ({self.where()})", exit_code)  # at STEP"), the place after
        return BuildError(f"{self.where()}: {self.cmd}: {message}", exit_code)


class Stage:
    __slots__ = ("index", "name", "base", "platform", "instructions", "from_instr")

    def __init__(self, index: int, base: str, name: str | None, platform: str | None, from_instr: Instruction):
        self.index = index
        self.base = base
        self.name = name
        self.platform = platform
        self.instructions: list[Instruction] = []
        self.from_instr = from_instr


class Dockerfile:
    def __init__(self, global_args: list[Instruction], stages: list[Stage], escape: str, file: str):
        self.global_args = global_args
        self.stages = stages
        self.escape = escape
        self.file = file


def escape_directive(text: str) -> str:
    """The escape character a Dockerfile's ``# escape=`` parser directive chooses (``\\``
    without one); BuildError for any other than ``\\`` and `````."""
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        body = s[1:].strip()
        key, sep, val = body.partition("=")
        if not sep:
            break
        if key.strip().lower() == "escape":
            v = val.strip()
            if v not in ("\\", "`"):
                raise BuildError(f"invalid escape token {v!r}: only \\ and ` are allowed")
            return v
    return "\\"


def _locate_error(text: str, file: str, message: str) -> BuildError:
    import dockerfile

    lines = text.split("\n")
    for n in range(1, len(lines) + 1):
        try:
            dockerfile.parse_string("\n".join(lines[:n]) + "\n")
        except dockerfile.GoParseError as e:
            if str(e) == message or n == len(lines):
                return BuildError(f"{file}:{n}: {message}")
    return BuildError(f"{file}: {message}")


def _heredoc_specs(cmdline: str) -> list[tuple[str, bool, bool]]:
    """(name, chomp, expand) of each ``<<NAME`` on the instruction line."""
    import re

    out = []
    for m in re.finditer(r"<<(-?)(['\"]?)([A-Za-z0-9_.-]+)\2", cmdline):
        out.append((m.group(3), m.group(1) == "-", m.group(2) == ""))
    return out


def parse_instruction(c, file: str) -> Instruction:
    cmd = c.cmd.upper()
    if cmd not in INSTRUCTIONS:
        raise BuildError(f"{file}:{c.start_line}: unknown instruction: {c.cmd}")
    flags: list[tuple[str, str | None]] = []
    allowed = FLAGS.get(cmd if not c.sub_cmd else c.sub_cmd.upper(), set())
    for f in c.flags:
        body = f[2:] if f.startswith("--") else f
        k, sep, v = body.partition("=")
        if cmd in COPY_FLAGS_WORDING and (k not in allowed or (k in ("chown", "chmod", "from") and not sep)):
            # buildah's wording, which scripts match (--chown 1:2 without "=" among them)
            raise BuildError(f"{file}:{c.start_line}: {COPY_FLAGS_WORDING[cmd]}")
        if k not in allowed:
            raise BuildError(f"{file}:{c.start_line}: {cmd}: unknown flag: --{k}")
        if (cmd if not c.sub_cmd else c.sub_cmd.upper(), k) in NOT_YET:
            raise BuildError(f"{file}:{c.start_line}: {cmd} --{k} is not supported by pallet yet")
        flags.append((k, v if sep else None))
    first_line = c.original.split("\n", 1)[0]
    specs = _heredoc_specs(first_line)
    heredocs = []
    for i, h in enumerate(c.heredocs):
        chomp, expand = (specs[i][1], specs[i][2]) if i < len(specs) else (False, True)
        content = h.content
        if chomp:
            content = "\n".join(line.lstrip("\t") for line in content.split("\n"))
        heredocs.append((h.name, content, expand))
    return Instruction(cmd, list(c.value), flags, bool(c.json), c.original, c.start_line, heredocs,
                       c.sub_cmd.upper() if c.sub_cmd else None, file)


_MIN_ARGS = {"COPY": 2, "ADD": 2, "ENV": 1, "LABEL": 1, "EXPOSE": 1, "VOLUME": 1, "USER": 1, "WORKDIR": 1,
             "ARG": 1, "STOPSIGNAL": 1, "MAINTAINER": 1, "SHELL": 1, "ENTRYPOINT": 1, "CMD": 1,
             "HEALTHCHECK": 1, "FROM": 1, "ONBUILD": 1}  # an empty RUN runs the shell without a command, as buildah


def check(ins: Instruction) -> None:
    n = _MIN_ARGS.get(ins.cmd, 0)
    args = [a for a in ins.args if a != ""] if not ins.json and ins.cmd not in ("ENV", "LABEL") else ins.args
    if ins.cmd in ("CMD", "ENTRYPOINT") and ins.json:
        return  # CMD [] is valid
    if len(args) < n:
        what = "at least two arguments" if n == 2 else "at least one argument"
        raise BuildError(f"{ins.where()}: {ins.cmd} requires {what}")
    if ins.cmd == "ENV" and len(args) % 2:
        raise BuildError(f"{ins.where()}: ENV: missing a value (ENV NAME=VALUE)")
    if ins.cmd == "LABEL" and len(args) % 2:
        raise BuildError(f"{ins.where()}: LABEL: missing a value (LABEL NAME=VALUE)")
    if ins.cmd == "SHELL" and not ins.json:
        raise BuildError(f"{ins.where()}: SHELL requires the arguments to be in JSON form")
    if ins.cmd == "FROM":
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
            raise BuildError(f"{ins.where()}: FROM: want FROM IMAGE [AS NAME]")
    if ins.cmd == "ONBUILD":
        if ins.sub in ("ONBUILD",):
            raise BuildError(f"{ins.where()}: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if ins.sub in ("FROM", "MAINTAINER"):
            raise BuildError(f"{ins.where()}: {ins.sub} isn't allowed as an ONBUILD trigger")
    if ins.cmd == "HEALTHCHECK":
        kind = args[0].upper()
        if kind not in ("CMD", "NONE"):
            raise BuildError(f"{ins.where()}: HEALTHCHECK: unknown type {args[0]!r}: want CMD or NONE")
        if kind == "NONE" and (len(args) > 1 or ins.flags):
            raise BuildError(f"{ins.where()}: HEALTHCHECK NONE takes no other arguments")
        if kind == "CMD" and len(args) < 2:
            raise BuildError(f"{ins.where()}: HEALTHCHECK CMD requires a command")


#: BuildKit's parser is quadratic in a heredoc's lines (40,000 take ~0.7 s, a million hours):
#: no real Dockerfile comes near this many lines
MAX_LINES = 100_000


def check_text(text: str, file: str) -> None:
    """Refuse what the Go parser must never see: text that is not UTF-8 (it crashes the Go
    runtime with SIGSEGV: read with surrogateescape, or a lone surrogate from a JSON ONBUILD
    trigger), NUL bytes (the C boundary silently cuts the text there), and more lines than
    :data:`MAX_LINES`. The error names the file and line."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        ch = ord(text[e.start])
        what = f"byte 0x{ch - 0xDC00:02x}" if 0xDC80 <= ch <= 0xDCFF else f"lone surrogate U+{ch:04X}"
        raise BuildError(f"{file}:{line}: not valid UTF-8 ({what}); a Dockerfile must be UTF-8 text") from None
    nul = text.find("\0")
    if nul >= 0:
        raise BuildError(f"{file}:{text.count(chr(10), 0, nul) + 1}: a NUL byte; a Dockerfile must be text")
    lines = text.count("\n") + 1
    if lines > MAX_LINES:
        raise BuildError(f"{file}: {lines} lines; pallet reads Dockerfiles of up to {MAX_LINES} lines")


def parse_text(text: str, file: str) -> list[Instruction]:
    import dockerfile

    check_text(text, file)
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        raise _locate_error(text, file, str(e)) from None
    out = []
    for c in cmds:
        ins = parse_instruction(c, file)
        check(ins)
        out.append(ins)
    return out


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    escape = escape_directive(text)
    instrs = parse_text(text, file)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instrs:
        if ins.cmd == "FROM":
            base = ins.args[0]
            name = ins.args[2].lower() if len(ins.args) == 3 else None
            if name is not None:
                import re

                if not re.fullmatch(r"[a-z][a-z0-9-_./]*", name):  # "/" too, as buildah (platform-arm/v7)
                    raise BuildError(f"{ins.where()}: invalid name for build stage: {ins.args[2]!r}, "
                                     "name can't start with a number or contain symbols")
                # a name may come again (buildah's): a later reference means the latest before it
            stages.append(Stage(len(stages), base, name, ins.flag("platform"), ins))
        elif not stages:
            if ins.cmd != "ARG":
                raise BuildError(f"{ins.where()}: {ins.cmd} before the first FROM: only ARG may come first")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise BuildError(f"{file}: no FROM instruction: a Dockerfile must start with FROM (after ARGs)")
    return Dockerfile(global_args, stages, escape, file)
