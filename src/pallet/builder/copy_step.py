"""COPY and ADD as build steps: sources matched (the context, ``--from`` a stage or image,
heredocs, ADD's URLs), the step's cache key from their contents, and the copy itself
(:mod:`.copy`) in the stage's working container."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import posixpath

from ..errors import BuildError
from .cache import step_key
from .dockerfile import Instruction

if TYPE_CHECKING:
    from .stage import StageState


def copy_step(build, state: "StageState", ins: Instruction, add: bool = False) -> None:
    from . import copy as _cp
    from ._paths import lookup_chown

    cfg = state.doc.get("config") or {}
    args = list(ins.args)
    dest = build.expand_word(state, ins, args[-1])
    srcs_raw = args[:-1]
    heredoc_names = {h[0]: h for h in ins.heredocs}
    chown = build.expand_word(state, ins, ins.flag("chown")) if ins.flag("chown") else None
    chmod = _cp.parse_chmod(build.expand_word(state, ins, ins.flag("chmod"))) if ins.flag("chmod") else None
    frm = build.expand_word(state, ins, ins.flag("from")) if not add and ins.flag("from") else None
    if add and ins.flag("from"):
        raise ins.error("ADD does not take --from: use COPY --from")
    mount = None
    try:
        if frm:
            mount = build.from_mount(frm, ins, state)
            if getattr(mount, "host_dir", False):  # --build-context NAME=DIR: as the main context
                source = _cp.Source(mount.path, what=f"build context {frm!r}", strip_setid=True)
            else:
                source = _cp.Source(mount.path, preserve_owner=True, what=f"stage or image {frm!r}")
            src_key = mount.key
        else:
            source = _cp.Source(build.context, ignore=build.ignore, what="build context", strip_setid=True)
            src_key = "context"
        items: list = []
        missed: list = []  # globs that matched nothing
        for raw in srcs_raw:
            m = raw.strip()
            if m.startswith("<<"):
                name = m.lstrip("<-").strip("'\"")
                h = heredoc_names.get(name)
                if h is None:
                    raise ins.error(f"heredoc {name} has no content")
                content = h[1]
                if h[2]:
                    content = expand_heredoc(content, build.env_of(state), build.dockerfile.escape)
                items.append(_cp.Item(None, name, name, data=content.encode("utf-8", "surrogateescape")))
                continue
            s = build.expand_word(state, ins, raw)
            if s.startswith(("http://", "https://")):
                if not add:  # buildah's words
                    raise ins.error(f'building at STEP "{ins.text()}": source can\'t be a URL for COPY')
                items.append(_cp.Item(None, s, "", url=s))
                continue
            if add and s.startswith("git@") or (add and s.endswith(".git") and "://" in s):
                raise ins.error(f"ADD of a git repository ({s}) is not supported")
            if not frm and (posixpath.normpath(s) == ".." or posixpath.normpath(s).startswith("../")):
                # buildah refuses what would be outside the context (pallet would stop at its top)
                raise ins.error(f'building at STEP "{ins.text()}": possible escaping context directory error: '
                                f'"{s}" is outside of "{build.context}"')
            try:
                items += source.match(s)
            except BuildError as e:  # buildah's wording, which scripts match: building at STEP "...": ...
                if len(srcs_raw) > 1 and set(s) & set("*?["):  # buildah: a glob among several may match
                    missed.append(e)  # nothing, as long as the instruction copies something
                    continue
                raise ins.error(f'building at STEP "{ins.text()}": {e}') from None
        if missed and not items:
            raise ins.error(f'building at STEP "{ins.text()}": {missed[0]}')
        several = len(srcs_raw) - len(missed) > 1
        # several sources named need a DEST/ (Docker's and buildah's rule); one glob matching
        # several files copies them into DEST as a directory (buildah's)
        if several and not dest.endswith("/"):
            raise ins.error("When using COPY with more than one source file, the destination must be a "
                            "directory and end with a /")
        h = hashlib.sha256()
        try:
            source.checksum(items, h)
        except OSError as e:
            raise ins.error(f"reading the sources: {e.strerror}: {e.filename}") from None
        key = step_key(state.key, ins.cmd, dest, chown, chmod, src_key, h.hexdigest(), cfg.get("WorkingDir"),
                        build.epoch, add)

        def do(root):
            try:
                owner = lookup_chown(root, chown) if chown else None
            except BuildError as e:
                raise ins.error(str(e)) from None
            opts = _cp.FileCopyOptions(chown=owner, chmod=chmod, extract=add, workdir=cfg.get("WorkingDir") or "/",
                                   **_cp.limits_of(build.store))
            try:
                _cp.copy(root, source, items, dest, opts, several=several)
            except OSError as e:
                raise ins.error(f"{e.strerror}: {e.filename}") from None
            except BuildError as e:  # a URL that fails, a destination that cannot be: the step's error
                if str(e).startswith(ins.where()) or f"({ins.where()})" in str(e):
                    raise
                raise ins.error(f'building at STEP "{ins.text()}": {e}', getattr(e, "exit_code", None)) from None

        short = " ".join(srcs_raw)
        build.fs_step(state, ins, key, do, f"/bin/sh -c #(nop) {ins.cmd} {short} in {dest}")
    finally:
        if mount is not None:
            mount.close()


def expand_heredoc(content: str, env: dict, escape: str) -> str:
    """Expand ``$VAR`` in heredoc content (quotes kept: this is file content, not a word)."""
    import re

    def repl(m):
        name = m.group(1) or m.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, content)
