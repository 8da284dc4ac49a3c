"""podman's ``import``: a tarball (a file, or stdin; gzip or zstd compressed, or not) becomes a
one-layer image, its config edited by ``--change`` instructions and its history entry carrying
``--message``, as podman writes them."""

from __future__ import annotations

#: the instructions ``--change`` takes (podman's list)
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME",
                       "WORKDIR")


def apply_changes(doc: dict, changes: list[str]) -> None:
    """Edit the image config ``doc`` by Dockerfile instructions, one a string; anything else is
    an error naming the change."""
    from . import config_edit as edit
    from .dockerfile import parse_text
    from ..errors import UsageError

    cfg = doc.setdefault("config", {})
    for text in changes:
        def fail(message, _t=text):
            return UsageError(f"--change {_t!r}: {message}")

        if "\n" in text or "\r" in text:
            raise fail("one instruction, on one line")
        try:
            (ins,) = parse_text(text + "\n", "--change")
        except ValueError:
            raise fail("not one instruction") from None
        except Exception as e:
            if type(e).__name__ in ("BuildError", "UsageError"):
                raise fail(str(e).split(": ", 1)[-1]) from None
            raise
        c = ins.cmd
        if c not in CHANGE_INSTRUCTIONS:
            raise fail(f"{c} is not an instruction import applies (want one of {', '.join(CHANGE_INSTRUCTIONS)})")
        err = lambda m: fail(m)  # noqa: E731
        rest = text.strip().split(None, 1)[1].strip() if len(text.split(None, 1)) > 1 else ""
        if c in ("ENV", "LABEL"):  # podman's: one KEY=VALUE, the value the rest of the line, unquoted
            if "=" in rest.split(None, 1)[0]:
                k, v = rest.split("=", 1)
            elif c == "ENV":
                k, v = (rest.split(None, 1) + [""])[:2]
            else:
                raise fail("LABEL must be formatted key=value")
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            (edit.set_env if c == "ENV" else edit.set_label)(cfg, k.strip(), v)
        elif c == "WORKDIR":  # relative to the one before, if any, as podman joins them
            import posixpath

            prev = cfg.get("WorkingDir")
            edit.set_workdir(cfg, posixpath.normpath(posixpath.join(prev, ins.args[0])) if prev else ins.args[0])
        elif c == "USER":
            edit.set_user(cfg, ins.args[0])
        elif c == "EXPOSE":
            for a in ins.args:
                for w in a.split():
                    edit.expose(cfg, w, err)
        elif c == "VOLUME":
            for a in ins.args:
                for w in [a] if ins.json else a.split():
                    edit.add_volume(cfg, w, err)
        elif c in ("ENTRYPOINT", "CMD"):
            argv = list(ins.args) if ins.json else edit.shell_form(cfg, ins.args[0])
            edit.set_command(cfg, "Entrypoint" if c == "ENTRYPOINT" else "Cmd", argv)
        elif c == "STOPSIGNAL":
            edit.set_stop_signal(cfg, ins.args[0], err)
        elif c == "ONBUILD":
            edit.add_onbuild(cfg, text.split(None, 1)[1].strip() if len(text.split(None, 1)) > 1 else "")


def import_tarball(store, source, names: list[str], changes: list[str], message: str | None,
                   os_: str | None = None, arch: str | None = None, variant: str | None = None) -> dict:
    """Store the tar read from ``source`` (a binary file) as an image; returns its record."""
    from .image import empty_config, timestamp, write_image
    from ..layer.stream import open_decompressed

    doc = empty_config()
    if os_:
        doc["os"] = os_
    if arch:
        doc["architecture"] = arch
        doc.pop("variant", None)
    if variant:
        doc["variant"] = variant
    apply_changes(doc, changes)  # every change checked before a byte is stored
    layer = store.add_layer_from_tar(open_decompressed(source), parent=None)
    now = timestamp(None)
    doc["created"] = now
    entry = {"created": now, "created_by": f"/bin/sh -c #(nop) ADD file:{layer['diff_id'].split(':', 1)[1]} in /"}
    if message:
        entry["comment"] = message
    doc["history"] = [entry]
    return write_image(store, doc, [layer["id"]], names=names)
