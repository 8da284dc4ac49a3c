"""A Dockerfile's instructions that change only the image config (ARG, ENV, LABEL,
MAINTAINER, WORKDIR, USER, EXPOSE, VOLUME, ENTRYPOINT, CMD, SHELL, STOPSIGNAL, HEALTHCHECK,
ONBUILD): each edits the stage's pending config through :mod:`.config_edit` (the code
``builder config`` uses too), chains the step cache key and adds an empty-layer history
entry. WORKDIR's directories are made later, with the next filesystem step (or alone at
the end of the stage: see the executor)."""

from __future__ import annotations

import os

from .._std import json
from . import config_edit as edit
from .cache import step_key
from .dockerfile import Instruction

#: proxy variables a build takes from the environment without an ARG default
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")

CONFIG_INSTRUCTIONS = ("ARG", "ENV", "LABEL", "MAINTAINER", "WORKDIR", "USER", "EXPOSE", "VOLUME", "ENTRYPOINT",
                       "CMD", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD")


def apply_config_instruction(build, state, ins: Instruction) -> None:
    """Apply the config-only instruction ``ins`` to the stage ``state`` of ``build``."""
    cfg = state.doc.setdefault("config", {})
    c = ins.cmd
    word = lambda text: build.expand_word(state, ins, text)  # noqa: E731
    if c == "ARG":
        _arg(build, state, ins)
        return
    if c == "ENV":
        # every variable keeps its value from before the instruction throughout it, as
        # Docker documents: "ENV abc=bye def=$abc" gives def the old abc
        pairs = [(word(k), word(v)) for k, v in zip(ins.args[0::2], ins.args[1::2])]
        for k, v in pairs:
            # buildah's (and podman's) order: a variable of the stage's base image moves to the
            # end the first time an ENV sets it; one this stage set already keeps its place
            edit.set_env(cfg, k, v, move_last=k not in state.env_set)
            state.env_set.add(k)
        hist = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    elif c == "LABEL":
        for k, v in zip(ins.args[0::2], ins.args[1::2]):
            edit.set_label(cfg, word(k), word(v))
        hist = ins.text()
    elif c == "MAINTAINER":
        state.doc["author"] = " ".join(ins.args)
        hist = ins.text()
    elif c == "WORKDIR":
        from ._paths import clean_abs

        path = clean_abs(word(ins.args[0]), cfg.get("WorkingDir") or "/")
        edit.set_workdir(cfg, path)
        state.workdirs.append((path, cfg.get("User") or ""))  # made as that user, as buildah and BuildKit do
        hist = f"WORKDIR {path}"
    elif c == "USER":
        edit.set_user(cfg, word(ins.args[0]))
        hist = f"USER {cfg['User']}"
    elif c == "EXPOSE":
        for a in ins.args:
            for w in word(a).split():
                edit.expose(cfg, w, ins.error)
        hist = ins.text()
    elif c == "VOLUME":
        for a in ins.args:
            for w in [word(a)] if ins.json else word(a).split():
                edit.add_volume(cfg, w, ins.error)
        hist = ins.text()
    elif c in ("ENTRYPOINT", "CMD"):
        argv = list(ins.args) if ins.json else edit.shell_form(cfg, ins.args[0])
        edit.set_command(cfg, "Entrypoint" if c == "ENTRYPOINT" else "Cmd", argv)
        if c == "ENTRYPOINT" and not state.cmd_set:
            edit.set_command(cfg, "Cmd", None)  # a base image's CMD does not outlive a new ENTRYPOINT
        if c == "CMD":
            state.cmd_set = True
        hist = f"{c} {json.dumps(argv)}"
    elif c == "SHELL":
        edit.set_shell(cfg, ins.args)
        hist = ins.text()
    elif c == "STOPSIGNAL":
        edit.set_stop_signal(cfg, word(ins.args[0]), ins.error)
        hist = ins.text()
    elif c == "HEALTHCHECK":
        edit.set_healthcheck(cfg, _healthcheck(ins))
        hist = ins.text()
    elif c == "ONBUILD":
        edit.add_onbuild(cfg, ins.original.split(None, 1)[1].strip() if " " in ins.original.strip() else "")
        hist = ins.text()
    else:
        raise ins.error("not supported")
    state.key = step_key(state.key, ins.original, build.env_of(state))
    state.history.append({"created_by": f"/bin/sh -c #(nop) {hist}", "empty_layer": True})


def _arg(build, state, ins: Instruction) -> None:
    for name, value in build.arg_pairs(ins, build.env_of(state)):
        if name in build.options.build_args:
            value = build.options.build_args[name]
            build.consumed_args.add(name)
        elif value is None and name in build.global_args:
            value = build.global_args[name]
        elif value is None and name in PROXY_ARGS:
            value = os.environ.get(name)
        state.args[name] = value
        state.later_args.pop(name, None)
    # the names only (as buildah's history-based cache): the values enter the key of each later
    # step they can change (RUN's args in scope, a config step's expansions, COPY's expanded flags)
    state.key = step_key(state.key, "ARG", sorted(k for k, v in state.args.items() if v is not None))
    # buildah's history entry: every ARG in scope that has a value, sorted
    names = sorted(k for k, v in state.args.items() if v is not None)
    state.history.append({"created_by": "/bin/sh -c #(nop) ARG" + "".join(" " + n for n in names),
                          "empty_layer": True})


def _healthcheck(ins: Instruction) -> dict:
    args = ins.args
    if args[0].upper() == "NONE":
        return edit.healthcheck(["NONE"], ins.error)
    test = ["CMD"] + list(args[1:]) if ins.json else ["CMD-SHELL", " ".join(args[1:])]
    return edit.healthcheck(test, ins.error, interval=ins.flag("interval"), timeout=ins.flag("timeout"),
                            start_period=ins.flag("start-period"), start_interval=ins.flag("start-interval"),
                            retries=ins.flag("retries"))
