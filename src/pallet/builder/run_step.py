"""RUN: a command run in the stage's working container (the run itself is
:mod:`.run`), its ``--mount`` options (bind, cache, secret, tmpfs), ``--network``, and the
VOLUME rule (what a RUN writes in a declared volume is discarded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import os

from .._std import json
from ..errors import BuildError
from . import config_edit
from .cache import step_key
from .dockerfile import Instruction

if TYPE_CHECKING:
    from .stage import StageState


def run_step(build, state: "StageState", ins: Instruction) -> None:
    cfg = state.doc.get("config") or {}
    shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
    env_now = build.env_of(state)
    if ins.json:
        argv = list(ins.args)
        shown = json.dumps(argv)
    elif ins.heredocs and len(ins.args) == 1 and ins.args[0].lstrip().startswith("<<") \
            and len(ins.args[0].split()) == 1 and len(ins.heredocs) == 1:
        script = ins.heredocs[0][1]
        argv = shell + [script]
        shown = ins.args[0]
    elif not ins.args and not ins.heredocs:  # buildah (imagebuilder) runs the shell with no command:
        argv = shell  # "sh: -c requires an argument", exit status 2
        shown = ""
    else:
        cmdline = ins.args[0] if ins.args else ""
        if ins.heredocs:
            cmdline += "\n" + "".join(f"{content}{name}\n" for name, content, _ in ins.heredocs)
        argv = shell + [cmdline]
        shown = ins.args[0] if ins.args else ""
    # a variable an ARG declares further down is an error here, not an empty string
    import re

    text = " ".join(argv)
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    build.check_used(state, ins, used, env_now)
    network = ins.flag("network")
    if network not in (None, "default", "host", "none"):
        raise ins.error(f"invalid --network {network!r}: want none, host or default")
    if network in (None, "default"):
        network = build.options.network
    from .network import check as check_network

    try:
        network = check_network(network)
    except BuildError as e:
        raise ins.error(str(e)) from None
    mounts_spec = [parse_mount(build, ins, m, state) for m in ins.flag_all("mount")]
    run_env = dict(env_now)
    args_env = {k: v for k, v in state.args.items() if v is not None and k not in config_edit.env_dict(cfg)}
    key = step_key(state.key, "RUN", argv, args_env, network, [m["key"] for m in mounts_spec],
                   build.epoch, build.options.volumes,
                   *([str(state.platform)] if getattr(state, "platform", None) is not None else []))
    from .network import BuildNetworks, needs_own_namespace

    # the build's namespace on this network, attached while the step's container is made
    shared = None
    if BuildNetworks.shares(network) and not needs_own_namespace(build.options.run_extras):
        shared = build.run_networks()

    def prepare():
        if shared is not None:
            shared.start(network)

    def do(root):
        import contextlib

        from .emulation import check as check_emulation

        try:  # another CPU's programs need emulation
            p = getattr(state, "platform", None)
            check_emulation(p.architecture if p else state.doc.get("architecture") or "",
                            p.os if p else state.doc.get("os") or "linux")
        except BuildError as e:
            raise ins.error(f"building at STEP \"RUN {shown}\": {e}") from None
        mounts = []
        cleanups = []
        try:
            with contextlib.ExitStack() as stack:
                mounts += volume_shadows(build, root, cfg, stack)
                for m in mounts_spec:
                    made = m["make"](cleanups)
                    if made is not None:  # a secret that was not given: the step runs without it
                        mounts.append(made)
                rc = _run_in(build, state, argv, run_env, cfg, network, mounts, shared, ins is build.last_run)
        finally:
            for fn in reversed(cleanups):
                fn()
            if shared is not None and ins is build.last_run:  # (when the command did not start)
                shared.release()
        if rc != 0:
            raise ins.error(f"building at STEP \"RUN {shown}\": exit status {rc}", exit_code=rc if rc > 0 else 125)

    build.fs_step(state, ins, key, do, args_prefix(state, cfg) + (f"/bin/sh -c {shown}" if not ins.json else shown),
                  prepare=prepare)


def args_prefix(state, cfg: dict) -> str:
    """``|N K=V ... `` before a RUN's history entry, as buildah (and Docker) write it: the
    ARGs in scope that have a value (an ENV of the same name gives it), sorted."""
    env = config_edit.env_dict(cfg)
    pairs = sorted((k, env.get(k, v)) for k, v in state.args.items() if v is not None)
    return f"|{len(pairs)} " + " ".join(f"{k}={v}" for k, v in pairs) + " " if pairs else ""


def _run_in(build, state, argv, run_env, cfg, network, mounts, shared, last) -> int:
    return state.container.run(argv, env=[f"{k}={v}" for k, v in run_env.items()], user=cfg.get("User") or None,
                            workdir=cfg.get("WorkingDir") or "/", network=network,
                            network_config_dir=build.options.network_config_dir, shared_network=shared,
                            release_network=last,
                            volumes=build.options.volumes, mounts=mounts, runtime=build.options.runtime,
                            stdout=build.options.stdout, stderr=build.options.stderr,
                            extras=build.options.run_extras, stdin=build.options.stdin)


def volume_shadows(build, root: str, cfg: dict, stack) -> list[dict]:
    """What a RUN writes in a declared VOLUME is discarded (Docker's documented rule, and
    buildah's): each volume directory is copied aside and the copy is bound over it for
    the command, then dropped. A volume directory that does not exist yet is made (root,
    0755) first, and stays in the step's layer, as buildah leaves it."""
    import subprocess

    from .. import _rootfs
    from ._paths import clean_abs

    out = []
    root_fd = _rootfs.open_root(root)
    stack.callback(os.close, root_fd)
    for vol in sorted(cfg.get("Volumes") or {}):
        vol = clean_abs(vol)
        try:
            vfd = _rootfs.mkdir_all_in_root(root_fd, vol, 0o755)
        except OSError as e:
            raise BuildError(f"VOLUME {vol}: cannot create it for RUN: {e.strerror}") from None
        stack.callback(os.close, vfd)
        d = stack.enter_context(build.store.staging())  # locked: no other process takes it for a leftover
        # cp gets the directory's fd, under the same number: it reads that very directory
        r = subprocess.run(["cp", "-a", _rootfs.fd_path(vfd) + "/.", d + "/"], capture_output=True, text=True,
                           pass_fds=(vfd,))
        if r.returncode != 0:
            raise BuildError(f"VOLUME {vol}: cannot set it aside for RUN: {r.stderr.strip()}")
        out.append({"destination": vol, "type": "bind", "source": d, "options": ["rbind", "rw"]})
    return out


def parse_mount(build, ins: Instruction, text: str | None, state) -> dict:
    opts: dict = {}
    for part in (text or "").split(","):
        if not part:
            continue
        k, sep, v = part.partition("=")
        opts[k.strip().lower()] = v if sep else "true"
    typ = opts.get("type", "bind")
    target = opts.get("target") or opts.get("dst") or opts.get("destination")
    if target and not target.startswith("/"):  # relative to the step's working directory
        import posixpath

        cfg = state.doc.get("config") or {}
        target = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", target))
    if typ == "secret":
        sid = opts.get("id") or (os.path.basename(target) if target else None)
        if not sid:
            raise ins.error("--mount=type=secret needs an id")
        target = target or f"/run/secrets/{sid}"
        required = opts.get("required", "false").lower() in ("true", "1", "")
        src = build.options.secrets.get(sid)
        if src is None and required:
            raise ins.error(f"secret required but no secret with id {sid} found (--secret id={sid},src=PATH)")
        mode = mount_number(ins, typ, opts, "mode", "0400")
        uid, gid = mount_number(ins, typ, opts, "uid", "0"), mount_number(ins, typ, opts, "gid", "0")

        def make(cleanups, src=src, target=target, mode=mode, uid=uid, gid=gid):
            if src is None:
                return None
            import tempfile

            d = tempfile.mkdtemp(prefix="pallet-secret-", dir=os.path.join(build.store.runroot))
            cleanups.append(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
            path = os.path.join(d, "secret")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(src, "rb") as f, os.fdopen(fd, "wb") as g:
                __import__("shutil").copyfileobj(f, g, 1 << 20)  # a secret file is not held whole
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            return {"destination": target, "type": "bind", "source": path, "options": ["rbind", "ro"]}

        return {"key": ["secret", sid, target], "make": make}
    if opts.get("from") == "":  # buildah's words
        raise ins.error("unable to resolve argument for `from=`: from points to an empty value")
    if not target:
        raise ins.error(f"--mount=type={typ} needs a target")
    if typ == "tmpfs":
        size = opts.get("size")
        options = ["nosuid", "nodev"] + ([f"size={size}"] if size else [])
        return {"key": ["tmpfs", target, size],
                "make": lambda cleanups: {"destination": target, "type": "tmpfs", "source": "tmpfs",
                                          "options": options, "keep": True}}
    if typ == "cache" and opts.get("from"):
        # buildah: a previous stage's files (or SOURCE in them) are the cache, written to
        # freely and never kept; an image is refused
        frm = opts["from"]
        if build.stage_index(frm) is None:  # (a --build-context of that name is no stage either)
            raise ins.error(f"no stage found with name {frm}")
        ro = opts.get("ro", opts.get("readonly", "false")).lower() in ("true", "1")
        return _bind(build, ins, state, frm, opts.get("source") or opts.get("src") or "/", target, not ro, "cache")
    if typ == "cache":
        cid = opts.get("id") or target
        d = os.path.join(build.store.graphroot, "build-cache-mounts",
                         hashlib.sha256(cid.encode()).hexdigest()[:32])
        ro = opts.get("ro", opts.get("readonly", "false")).lower() in ("true", "1")
        mode = mount_number(ins, typ, opts, "mode", "0755")
        uid, gid = mount_number(ins, typ, opts, "uid", "0"), mount_number(ins, typ, opts, "gid", "0")

        sharing = opts.get("sharing", "shared")
        if sharing not in ("shared", "locked"):
            raise ins.error(f"--mount=type=cache,sharing={sharing}: pallet supports shared and locked")

        def make(cleanups):
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
                os.chmod(d, mode)
                os.chown(d, uid, gid)
            if sharing == "locked":  # one build step at a time uses this cache, across processes
                from ..storage.lock import lock_path

                fd = lock_path(d + ".lock")
                cleanups.append(lambda: os.close(fd))
            return {"destination": target, "type": "bind", "source": d, "options": ["rbind", "ro" if ro else "rw"],
                    "keep": True}

        return {"key": ["cache", cid, target], "make": make}
    if typ == "bind":
        rw = opts.get("rw", opts.get("readwrite", "false")).lower() in ("true", "1")
        return _bind(build, ins, state, opts.get("from"), opts.get("source") or opts.get("src") or "/", target, rw,
                     "bind")
    raise ins.error(f"unknown mount type {typ!r}: want bind, cache, secret or tmpfs")


def _bind(build, ins: Instruction, state, frm: str | None, source: str, target: str, rw: bool, kind: str) -> dict:
    """A bind mount of SOURCE in the context, or in a stage's or image's files (``frm``):
    read-only, or ``rw`` as a scratch copy the step may change and that is discarded."""

    def make(cleanups):
        from ._paths import existing_in_root

        if frm:
            m = build.from_mount(frm, ins, state)
            cleanups.append(m.close)
            root = m.path
        else:
            root = build.context
        # symlinks followed inside the root, never out of it (a context's link -> /etc is missing)
        src = existing_in_root(root, source)
        if src is None:
            raise ins.error(f"--mount=type={kind}: {source}: no such file or directory")
        if rw:
            import shutil
            import tempfile

            tmp = tempfile.mkdtemp(prefix="pallet-bind-", dir=build.store.runroot)
            cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
            dst = os.path.join(tmp, "src")
            if os.path.isdir(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst)
            src = dst
        return {"destination": target, "type": "bind", "source": src,
                "options": ["rbind", "rw" if rw else "ro"], "keep": True}

    return {"key": [kind, frm, source, target, rw], "make": make}


def mount_number(ins, typ: str, opts: dict, field: str, default: str) -> int:
    """``mode`` (octal, at most 07777), ``uid`` or ``gid`` (0 to 2^32-2) of a RUN --mount, or
    an error naming the mount type and the field."""
    text = opts.get(field, default)
    try:
        n = int(text, 8 if field == "mode" else 10)
    except ValueError:
        n = -1
    if n < 0 or (field == "mode" and n > 0o7777) or n > 0xFFFFFFFE or not text.isdigit():
        want = "an octal mode up to 07777" if field == "mode" else "a number from 0 to 4294967294"
        raise ins.error(f"--mount=type={typ},{field}={text}: invalid {field}, want {want}")
    return n
