"""``--hooks-dir``: OCI hooks for RUN steps, as buildah and podman read them (containers/common's
``pkg/hooks``, schema 1.0.0): every ``*.json`` file in the directories, later directories
overriding a file of the same name, each ``{"version": "1.0.0", "hook": {"path", "args", "env",
"timeout"}, "when": {"always", "commands", "annotations", "hasBindMounts"}, "stages": [...]}``.
A hook applies to a step when ``always`` is true or one of the other conditions matches (a
``commands`` regular expression against the command's path, ``hasBindMounts`` and the step's
bind mounts; ``annotations`` match none: RUN steps carry no annotations). The runtime runs them
(``hooks`` in the step's config.json)."""

from __future__ import annotations

import os

from ..errors import UsageError

STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_MAX = 1 << 20


def load(dirs: list[str]) -> list[dict]:
    """The hooks of ``dirs`` (each checked: a bad file is a UsageError naming it), ordered by
    file name."""
    from .._fs import read_json_file
    from ..errors import PalletError

    files: dict = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError as e:
            raise UsageError(f"--hooks-dir {d}: {e.strerror}") from None
        for n in names:
            if n.endswith(".json"):
                files[n] = os.path.join(d, n)
    out = []
    for n in sorted(files):
        path = files[n]
        try:
            doc = read_json_file(path, _MAX, "an OCI hook")
        except (OSError, PalletError) as e:
            raise UsageError(f"--hooks-dir: {path}: {e}") from None
        out.append(_check(doc, path))
    return out


def _check(doc, path: str) -> dict:
    def bad(why: str):
        raise UsageError(f"--hooks-dir: {path}: {why}")

    if not isinstance(doc, dict) or doc.get("version") != "1.0.0":
        bad('not an OCI hook of schema version "1.0.0"')
    hook, when, stages = doc.get("hook"), doc.get("when") or {}, doc.get("stages")
    if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) or not hook["path"].startswith("/"):
        bad("hook.path: want an absolute path")
    for k in ("args", "env"):
        v = hook.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            bad(f"hook.{k}: want a list of strings")
    t = hook.get("timeout")
    if t is not None and (not isinstance(t, int) or isinstance(t, bool) or t < 1):
        bad("hook.timeout: want a positive number of seconds")
    if not isinstance(when, dict):
        bad("when: want an object")
    if not isinstance(stages, list) or not stages or any(s not in STAGES for s in stages):
        bad(f"stages: want some of {', '.join(STAGES)}")
    cmds = when.get("commands") or []
    if not isinstance(cmds, list) or not all(isinstance(c, str) for c in cmds):
        bad("when.commands: want a list of regular expressions")
    import re

    for c in cmds:
        try:
            re.compile(c)
        except re.error as e:
            bad(f"when.commands: {c!r}: {e}")
    if not (when.get("always") is True or cmds or when.get("annotations") or when.get("hasBindMounts") is True):
        bad("when: no condition (always, commands, annotations or hasBindMounts)")
    entry = {"path": hook["path"]}
    for k in ("args", "env", "timeout"):
        if hook.get(k) is not None:
            entry[k] = hook[k]
    return {"hook": entry, "always": when.get("always") is True, "commands": cmds,
            "bind_mounts": when.get("hasBindMounts") is True, "stages": list(stages)}


def for_step(hooks: list[dict], command: str, has_bind_mounts: bool) -> dict:
    """The config.json ``hooks`` of a step running ``command`` (a path)."""
    import re

    out: dict = {}
    for h in hooks:
        if h["always"] or (h["bind_mounts"] and has_bind_mounts) or \
                any(re.fullmatch(c, command) for c in h["commands"]):
            for s in h["stages"]:
                out.setdefault(s, []).append(dict(h["hook"]))
    return out
