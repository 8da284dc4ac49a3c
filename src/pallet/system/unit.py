"""systemd unit text for a system container: names, the default unit atomic wrote, the
start/stop command lines, and ordering from image labels. Pure, no I/O."""

from __future__ import annotations

from ..errors import UsageError

#: the unit atomic wrote when an image had no ``/exports/service.template`` (its variables
#: are filled by template.substitute); ``$DEPENDENCIES`` is ours: the image labels' ordering
DEFAULT_SERVICE = """[Unit]
Description=pallet system container $NAME ($IMAGE_NAME)
$DEPENDENCIES
[Service]
Type=simple
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
TimeoutStopSec=10
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
"""

#: image labels that order the unit (systemd's own directive names)
DEPENDENCY_LABELS = ("After", "Before", "Requires", "Wants")

_UNIT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
_UNIT_TYPES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice",
               "scope")


def check_name(name: str) -> None:
    """A system container's name: a valid systemd service name without the suffix, and a name
    that cannot be mistaken for a deployment (``NAME.0``) or leave its directory."""
    if not isinstance(name, str) or not name or len(name) > 200 or not name.isascii():
        raise UsageError(f"name {name!r}: want 1 to 200 ASCII characters")
    if not name[0].isalnum() or not all(c.isalnum() or c in "_.:-" for c in name):
        raise UsageError(f"name {name!r} is not a valid systemd unit name: want [A-Za-z0-9][A-Za-z0-9_.:-]*")
    last = name.rpartition(".")[2]
    if "." in name and last.isdigit():
        raise UsageError(f"name {name!r}: a name may not end in .NUMBER (deployments are NAME.0, NAME.1)")


def check_unit_ref(unit: str, what: str) -> None:
    """A unit name another unit may refer to (``etcd.service``, ``network-online.target``)."""
    base, dot, kind = unit.rpartition(".")
    if not dot or kind not in _UNIT_TYPES or not base or len(unit) > 255 or not set(unit) <= _UNIT_CHARS \
            or base.startswith("-"):
        raise UsageError(f"{what}: {unit!r} is not a valid systemd unit name")


def dependencies(labels: dict | None) -> list[tuple[str, str]]:
    """``(directive, unit)`` pairs from the image labels ``After``, ``Before``, ``Requires``,
    ``Wants`` (any case; values are unit names separated by spaces or commas)."""
    out: list[tuple[str, str]] = []
    for key, value in (labels or {}).items():
        directive = next((d for d in DEPENDENCY_LABELS if d.lower() == str(key).lower()), None)
        if directive is None:
            continue
        if not isinstance(value, str):
            raise UsageError(f"image label {key}: want unit names, not {value!r}")
        for unit in value.replace(",", " ").split():
            check_unit_ref(unit, f"image label {key}")
            out.append((directive, unit))
    return out


def dependency_lines(deps: list[tuple[str, str]]) -> str:
    return "".join(f"{d}={u}\n" for d, u in deps)


def add_dependencies(unit_text: str, deps: list[tuple[str, str]]) -> str:
    """An image's own unit with the label ordering added at the end of its ``[Unit]`` section
    (one made when it has none)."""
    if not deps:
        return unit_text
    lines = unit_text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.strip() == "[Unit]"), None)
    if start is None:
        return "[Unit]\n" + dependency_lines(deps) + "\n" + unit_text
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    if end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end]) + dependency_lines(deps) + "".join(lines[end:])


def quote(arg: str) -> str:
    """One word of an ``Exec*=`` line, quoted as systemd splits them (and ``%``/``$`` escaped)."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(argv: list[str]) -> str:
    return " ".join(quote(a) for a in argv)


def stop_signal(value) -> str:
    """The image's ``StopSignal`` (``SIGQUIT``, ``QUIT``, ``3``, ``SIGRTMIN+3``) for the
    runtime's ``kill``; SIGTERM when the image sets none."""
    if value in (None, ""):
        return "TERM"
    text = str(value)
    if not text.isascii() or not text or not all(c.isalnum() or c in "+-" for c in text):
        raise UsageError(f"image config: StopSignal {value!r} is not a signal")
    return text


def runtime_commands(runtime: str, runtime_root: str, name: str, bundle: str, signal: str = "TERM") -> dict:
    """``EXEC_START``/``EXEC_STOP``/``EXEC_STARTPRE``/``EXEC_STOPPOST`` for the runtime: ``run``
    in the foreground (the service's main process), ``kill`` (the image's stop signal) to stop, and a forced
    ``delete`` after it stopped, so a container SIGKILLed with its runtime cannot block the
    next start. Prefixed ``-`` where failure must not fail the unit."""
    base = [runtime, "--root", runtime_root]
    return {
        "EXEC_START": command_line(base + ["run", "--bundle", bundle, name]),
        "EXEC_STOP": command_line(base + ["kill", name, signal]),
        "EXEC_STARTPRE": "",
        "EXEC_STOPPOST": "-" + command_line(base + ["delete", "--force", name]),
    }
