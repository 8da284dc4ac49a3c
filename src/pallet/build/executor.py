"""``pallet build``: a Dockerfile executed with the working-container primitives.

Each stage starts from an image (pulled when missing), a previous stage, or scratch. With
the cache on (``--layers``, the default) every RUN/COPY/ADD is one layer and one unnamed
intermediate image, found again when the step's key matches: the key chains the parent's
key, the instruction, the build arguments in scope, the timestamp and, for COPY/ADD, the
names, modes and contents of what is copied. Without it (``--layers=false``, ``--squash``,
``--squash-all``) a stage runs in one working container committed once at its end.
Config-only instructions change the pending config in memory.

A failed build removes its working container and mounts, and the intermediate images it
made that are not cache entries; completed steps' cache entries stay.
"""

from __future__ import annotations

import copy as _copy
import hashlib
import os

from .. import _json as json
from ..errors import BuildError, PalletError
from . import image as _image
from .dockerfile import Dockerfile, Instruction, Stage, parse, parse_text
from .shell import expand

CACHE_VERSION = b"pallet-build-cache-v1"


class BuildOptions:
    def __init__(self, context: str, *, dockerfile: str | None = None, dockerfile_text: str | None = None,
                 tags: list[str] = (), build_args: dict | None = None, target: str | None = None,
                 layers: bool = True, no_cache: bool = False, squash: bool = False, squash_all: bool = False,
                 secrets: dict | None = None, volumes: list[str] = (), labels: dict | None = None,
                 annotations: dict | None = None, fmt: str = "oci", timestamp: int | None = None,
                 output: str | None = None, quiet: bool = False, pull: str = "missing", ctx=None,
                 runtime: str | None = None, network: str = "host", out=None, stdout=None, stderr=None,
                 iidfile: str | None = None, rm: bool = True):
        self.context = context
        self.dockerfile = dockerfile
        self.dockerfile_text = dockerfile_text
        self.tags = list(tags)
        self.build_args = dict(build_args or {})
        self.target = target
        self.layers = layers
        self.no_cache = no_cache
        self.squash = squash
        self.squash_all = squash_all
        self.secrets = dict(secrets or {})
        self.volumes = list(volumes)
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.fmt = fmt
        self.timestamp = timestamp
        self.output = output
        self.quiet = quiet
        self.pull = pull
        self.ctx = ctx
        self.runtime = runtime
        self.network = network
        self.out = out or (lambda line: None)
        self.stdout = stdout
        self.stderr = stderr
        self.iidfile = iidfile
        self.rm = rm


class _StageResult:
    __slots__ = ("image", "doc", "key", "stage")

    def __init__(self, image: dict | None, doc: dict, key: str, stage: Stage):
        self.image = image  # the image holding the stage's files (None: scratch, empty)
        self.doc = doc
        self.key = key
        self.stage = stage


def find_dockerfile(context: str, dockerfile: str | None) -> str:
    if dockerfile:
        if dockerfile == "-":
            return "-"
        if os.path.exists(dockerfile):
            return dockerfile
        alt = os.path.join(context, dockerfile)
        if os.path.exists(alt):
            return alt
        raise BuildError(f"the Dockerfile {dockerfile} does not exist")
    for n in ("Containerfile", "Dockerfile"):
        p = os.path.join(context, n)
        if os.path.exists(p):
            return p
    raise BuildError(f"no Containerfile or Dockerfile in the context directory {context}")


def _predefined_args() -> dict:
    os_, arch, variant = _image.host_platform()
    plat = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
    d = {}
    for prefix in ("TARGET", "BUILD"):
        d[prefix + "PLATFORM"] = plat
        d[prefix + "OS"] = os_
        d[prefix + "ARCH"] = arch
        d[prefix + "VARIANT"] = variant
    return d


_PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
               "no_proxy", "ALL_PROXY", "all_proxy")


class Builder:
    """One build. ``run()`` returns the final image record."""

    def __init__(self, store, o: BuildOptions):
        self.store = store
        self.o = o
        self.context = os.path.abspath(o.context)
        self.results: dict[int, _StageResult] = {}
        self.step = 0
        self.total = 0
        self.epoch = o.timestamp
        if self.epoch is None:
            from ..layer.create import epoch_from_env

            self.epoch = epoch_from_env()
        self.use_cache = o.layers and not o.no_cache
        self.made_images: list[str] = []  # intermediate images this build made (not cache entries)
        self.mounted: list = []
        self.working = None  # the live working container (cleaned up on failure)
        self.consumed_args: set[str] = set()
        self.cache_dir = os.path.join(store.graphroot, "build-cache")
        self.ignore = None

    # -- entry -------------------------------------------------------------------------------

    def run(self) -> dict:
        from .ignore import IgnoreRules

        if not os.path.isdir(self.context):
            raise BuildError(f"the build context {self.o.context} is not a directory")
        if self.o.dockerfile_text is not None:
            text, fname = self.o.dockerfile_text, self.o.dockerfile or "Dockerfile"
        else:
            fname = find_dockerfile(self.context, self.o.dockerfile)
            try:
                with open(fname, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError as e:
                raise BuildError(f"reading {fname}: {e.strerror}") from None
        self.file = os.path.basename(fname) if fname != "-" else "Dockerfile"
        df = parse(text, self.file)
        self.df = df
        self.ignore = IgnoreRules.load(self.context, fname if fname != "-" else None)
        if self.o.fmt not in ("oci", "docker"):
            raise BuildError(f"unknown format {self.o.fmt!r}: want oci or docker")
        self.global_args = self._global_args(df)
        order = self._stages_needed(df)
        self.total = sum(1 + len(df.stages[i].instructions) for i in order)
        try:
            final = None
            for i in order:
                final = self._stage(df.stages[i], last=(i == order[-1]))
            rec = self._finish(final)
        except BaseException:
            self._cleanup(failed=True)
            raise
        self._cleanup(failed=False)
        unused = sorted(k for k in self.o.build_args if k not in self.consumed_args and k not in _PROXY_ARGS)
        if unused and not self.o.quiet:
            self.o.out(f"[Warning] one or more build args were not consumed: {unused}")
        self._output(rec)
        return rec

    def _cleanup(self, failed: bool) -> None:
        for m in reversed(self.mounted):
            try:
                m.close()
            except PalletError:
                pass
        self.mounted = []
        if self.working is not None:
            try:
                self.working.remove()
            except PalletError:
                pass
            self.working = None
        for iid in self.made_images:
            try:
                rec = self.store.image(iid)
                if not rec["names"]:
                    self.store.remove_image(iid)
            except PalletError:
                pass
        self.made_images = []

    # -- arguments and stages ----------------------------------------------------------------

    def _global_args(self, df: Dockerfile) -> dict:
        scope = dict(_predefined_args())
        for ins in df.global_args:
            for name, value in self._arg_pairs(ins, scope):
                if name in self.o.build_args:
                    value = self.o.build_args[name]
                    self.consumed_args.add(name)
                scope[name] = value
        return scope

    def _arg_pairs(self, ins: Instruction, env: dict):
        for a in ins.args:
            name, sep, default = a.partition("=")
            if not name or not all(c.isalnum() or c == "_" for c in name):
                raise ins.error(f"invalid ARG name {name!r}")
            yield name, (expand(default, env, self.df.escape) if sep else None)

    def _stage_index(self, text: str, before: int | None = None) -> int | None:
        t = text.lower()
        for s in self.df.stages:
            if before is not None and s.index >= before:
                break
            if s.name == t:
                return s.index
        if t.isdigit():
            n = int(t)
            if before is not None and n >= before:
                raise BuildError(f"stage {n} is not a previous build stage")
            if n < len(self.df.stages):
                return n
            raise BuildError(f"unknown stage {text!r}: the Dockerfile has {len(self.df.stages)} stage(s)")
        return None

    def _stages_needed(self, df: Dockerfile) -> list[int]:
        if self.o.target:
            t = self.o.target.lower()
            found = [s.index for s in df.stages if s.name == t]
            if not found:
                raise BuildError(f"the target stage {self.o.target!r} could not be found in {self.file}")
            target = found[0]
        else:
            target = len(df.stages) - 1
        need = {target}
        for s in reversed(df.stages[: target + 1]):
            if s.index not in need:
                continue
            base = expand(s.base, self.global_args, df.escape)
            idx = self._stage_index(base, s.index)
            if idx is not None:
                need.add(idx)
            for ins in s.instructions:
                refs = []
                if ins.cmd in ("COPY", "ADD") and ins.flag("from"):
                    refs.append(ins.flag("from"))
                if ins.cmd == "RUN":
                    for m in ins.flag_all("mount"):
                        for part in (m or "").split(","):
                            k, _, v = part.partition("=")
                            if k == "from":
                                refs.append(v)
                for r in refs:
                    try:
                        idx = self._stage_index(r, s.index)
                    except BuildError:
                        idx = None
                    if idx is not None:
                        need.add(idx)
        return sorted(need)

    # -- progress ----------------------------------------------------------------------------

    def _say_step(self, ins: Instruction) -> None:
        self.step += 1
        if not self.o.quiet:
            self.o.out(f"STEP {self.step}/{self.total}: {ins.text()}")

    # -- cache -------------------------------------------------------------------------------

    def _key(self, parent: str, *parts) -> str:
        h = hashlib.sha256(CACHE_VERSION)
        h.update(parent.encode())
        for p in parts:
            h.update(b"\0")
            h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
        return h.hexdigest()

    def _cache_get(self, key: str):
        if not self.use_cache:
            return None
        try:
            with open(os.path.join(self.cache_dir, key), "rb") as f:
                entry = json.loads(f.read())
            img = self.store.image(entry["image"]) if entry.get("image") else None
            return img, entry["config"]
        except (OSError, ValueError, KeyError, PalletError):
            return None

    def _cache_put(self, key: str, image: dict | None, doc: dict) -> None:
        if not self.o.layers:
            return
        from .. import _fs

        os.makedirs(self.cache_dir, 0o700, exist_ok=True)
        _fs.write_atomic(os.path.join(self.cache_dir, key),
                         json.dumps({"image": image["id"] if image else None, "config": doc}).encode(), 0o600)
        if image is not None and image["id"] in self.made_images:
            self.made_images.remove(image["id"])

    # -- a stage -----------------------------------------------------------------------------

    def _stage(self, stage: Stage, last: bool) -> _StageResult:
        o = self.o
        esc = self.df.escape
        self._say_step(stage.from_instr)
        base_text = expand(stage.base, self.global_args, esc)
        if not base_text:
            raise stage.from_instr.error("base name should not be blank (an ARG without a value?)")
        idx = self._stage_index(base_text, stage.index)
        if idx is not None:
            prev = self.results[idx]
            st = _State(prev.image, _copy.deepcopy(prev.doc), self._key(prev.key, "stage"))
        elif base_text.lower() == "scratch":
            doc = _image.empty_config()
            # buildah and BuildKit give a scratch stage the default PATH
            doc["config"]["Env"] = ["PATH=" + _image.DEFAULT_PATH]
            st = _State(None, doc, self._key("", "scratch", o.fmt))
        else:
            from .working import ensure_image

            try:
                img = ensure_image(self.store, base_text, o.pull, o.ctx, None if o.quiet else o.out)
            except PalletError as e:
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text}: {e}") from None
            try:
                doc = _image.load_config(self.store, img)
            except PalletError as e:  # removed since it was found (a concurrent image prune or rmi)
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text}: {e}") from None
            st = _State(img, doc, self._key("", "image", img["id"], o.fmt))  # docker and oci steps differ
        st.args = {}
        st.single = not o.layers or (last and (o.squash or o.squash_all))
        st.later_args = {}
        for ins in stage.instructions:
            if ins.cmd == "ARG":
                for a in ins.args:
                    st.later_args.setdefault(a.partition("=")[0], ins.line)
        triggers = (st.doc.get("config") or {}).get("OnBuild") or []
        if triggers:
            st.doc["config"].pop("OnBuild", None)
            st.key = self._key(st.key, "onbuild-clear")
            for t in triggers:
                for ins in parse_text(t, f"{self.file}:ONBUILD"):
                    ins.line = stage.from_instr.line
                    ins.file = self.file
                    if not o.quiet:
                        self.o.out(f"--> ONBUILD {t}")
                    self._instruction(st, ins, stage)
        for ins in stage.instructions:
            self._say_step(ins)
            self._instruction(st, ins, stage)
        self._flush_workdirs(st, stage)
        if st.container is not None:
            self._commit_single(st, squash_all=last and o.squash_all)
        elif last and o.squash_all and st.image is not None:
            self._container(st)  # squash-all of a stage that changed no files: still one layer
            self._commit_single(st, squash_all=True)
        if st.history:  # config-only steps after the last layer
            st.doc = _copy.deepcopy(st.doc)
            st.doc.setdefault("history", []).extend(self._history_entries(st))
            st.history = []
        res = _StageResult(st.image, st.doc, st.key, stage)
        self.results[stage.index] = res
        return res

    # -- instructions ------------------------------------------------------------------------

    def _env(self, st: "_State") -> dict:
        """What variables expand to here: ARGs in scope, overridden by ENV."""
        env = {k: v for k, v in st.args.items() if v is not None}
        env.update(_image.env_dict(st.doc.get("config") or {}))
        return env

    def _x(self, st: "_State", ins: Instruction, word: str) -> str:
        used: set = set()
        env = self._env(st)
        try:
            v = expand(word, env, self.df.escape, used)
        except BuildError as e:
            raise ins.error(str(e)) from None
        self._check_used(st, ins, used, env)
        return v

    def _check_used(self, st, ins: Instruction, used: set, env: dict) -> None:
        for name in used:
            if name not in env and name in st.later_args and st.later_args[name] > ins.line:
                raise ins.error(f"${name} is used before its ARG instruction (line {st.later_args[name]})")

    def _instruction(self, st: "_State", ins: Instruction, stage: Stage) -> None:
        cfg = st.doc.setdefault("config", {})
        c = ins.cmd
        if c in ("RUN", "COPY", "ADD"):
            try:
                getattr(self, "_" + c.lower())(st, ins, stage)
            except BuildError:
                raise
            except PalletError as e:  # the store changed under the step (a concurrent prune): say where
                raise BuildError(f"{ins.where()}: {ins.cmd}: {e}", getattr(e, "exit_code", None)) from None
            return
        hist = None
        if c == "ARG":
            for name, value in self._arg_pairs(ins, self._env(st)):
                if name in self.o.build_args:
                    value = self.o.build_args[name]
                    self.consumed_args.add(name)
                elif value is None and name in self.global_args:
                    value = self.global_args[name]
                elif value is None and name in _PROXY_ARGS:
                    value = os.environ.get(name)
                st.args[name] = value
                st.later_args.pop(name, None)
            st.key = self._key(st.key, "ARG", {k: v for k, v in st.args.items()})
            # buildah's history entry: every ARG in scope that has a value, sorted
            names = sorted(k for k, v in st.args.items() if v is not None)
            st.history.append({"created_by": "/bin/sh -c #(nop) ARG" + "".join(" " + n for n in names),
                               "empty_layer": True})
            return
        if c == "ENV":
            # every variable keeps its value from before the instruction throughout it, as
            # Docker documents: "ENV abc=bye def=$abc" gives def the old abc
            pairs = [(self._x(st, ins, k), self._x(st, ins, v)) for k, v in zip(ins.args[0::2], ins.args[1::2])]
            for k, v in pairs:
                _image.set_env(cfg, k, v)
            hist = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        elif c == "LABEL":
            labels = cfg.get("Labels") or {}
            for k, v in zip(ins.args[0::2], ins.args[1::2]):
                labels[self._x(st, ins, k)] = self._x(st, ins, v)
            cfg["Labels"] = labels
            hist = ins.text()
        elif c == "MAINTAINER":
            st.doc["author"] = " ".join(ins.args)
            hist = ins.text()
        elif c == "WORKDIR":
            from ._paths import clean_abs

            path = clean_abs(self._x(st, ins, ins.args[0]), cfg.get("WorkingDir") or "/")
            cfg["WorkingDir"] = path
            st.workdirs.append((path, cfg.get("User") or ""))  # made as that user, as buildah and BuildKit do
            hist = f"WORKDIR {path}"
        elif c == "USER":
            cfg["User"] = self._x(st, ins, ins.args[0])
            hist = f"USER {cfg['User']}"
        elif c == "EXPOSE":
            ports = cfg.get("ExposedPorts") or {}
            for a in ins.args:
                for w in self._x(st, ins, a).split():
                    for p in _ports(w, ins):
                        ports[p] = {}
            cfg["ExposedPorts"] = ports
            hist = ins.text()
        elif c == "VOLUME":
            vols = cfg.get("Volumes") or {}
            for a in ins.args:
                words = [self._x(st, ins, a)] if ins.json else self._x(st, ins, a).split()
                for w in words:
                    if not w:
                        raise ins.error("VOLUME specified can not be an empty string")
                    vols[w] = {}
            cfg["Volumes"] = vols
            hist = ins.text()
        elif c in ("ENTRYPOINT", "CMD"):
            argv = list(ins.args) if ins.json else list(cfg.get("Shell") or ["/bin/sh", "-c"]) + [ins.args[0]]
            key = "Entrypoint" if c == "ENTRYPOINT" else "Cmd"
            cfg[key] = argv
            if c == "ENTRYPOINT" and not st.cmd_set:
                cfg.pop("Cmd", None)
            if c == "CMD":
                st.cmd_set = True
            hist = f"{c} {json.dumps(argv)}"
        elif c == "SHELL":
            cfg["Shell"] = list(ins.args)
            hist = ins.text()
        elif c == "STOPSIGNAL":
            cfg["StopSignal"] = _image.check_stop_signal(self._x(st, ins, ins.args[0]), ins.error)
            hist = ins.text()
        elif c == "HEALTHCHECK":
            cfg["Healthcheck"] = self._healthcheck(st, ins)
            hist = ins.text()
        elif c == "ONBUILD":
            trigger = ins.original.split(None, 1)[1].strip() if " " in ins.original.strip() else ""
            cfg.setdefault("OnBuild", []).append(trigger)
            hist = ins.text()
        else:
            raise ins.error("not supported")
        st.key = self._key(st.key, ins.original, self._env(st))
        st.history.append({"created_by": f"/bin/sh -c #(nop) {hist}", "empty_layer": True})

    def _healthcheck(self, st, ins: Instruction) -> dict:
        args = ins.args
        if args[0].upper() == "NONE":
            return {"Test": ["NONE"]}
        rest = args[1:]
        if ins.json:
            test = ["CMD"] + list(rest)
        else:
            test = ["CMD-SHELL", " ".join(rest)]
        hc: dict = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            v = ins.flag(flag)
            if v is not None:
                d = _duration(v)
                if d is None:
                    raise ins.error(f"invalid --{flag} {v!r}")
                if d:
                    hc[key] = d
        r = ins.flag("retries")
        if r is not None:
            try:
                n = int(r)
            except ValueError:
                raise ins.error(f"invalid --retries {r!r}") from None
            if n < 0:
                raise ins.error("--retries cannot be negative")
            if n:
                hc["Retries"] = n
        return hc

    # -- filesystem steps ----------------------------------------------------------------------

    def _container(self, st: "_State"):
        """The working container for a filesystem step (made on the current image)."""
        from .working import Builder as WorkingContainer

        if st.container is None:
            st.container = WorkingContainer.create(self.store, None, image_rec=st.image, config=st.doc,
                                                   name=f"pallet-build-{os.urandom(6).hex()}")
            self.working = st.container
            st.root = st.container.mount()
        return st.container

    def _fs_step(self, st: "_State", ins: Instruction, key: str, do, created_by: str) -> None:
        """Run ``do(root)`` in a working container as one build step (cached in layers mode)."""
        if not st.single:
            hit = self._cache_get(key)
            if hit is not None and st.container is None:
                img, doc = hit
                st.image, st.doc = img, doc
                st.key = key
                st.history = []
                st.workdirs = []
                if not self.o.quiet:
                    self.o.out("--> Using cache " + (img["id"] if img else "(empty)"))
                return
        self._container(st)
        self._make_workdirs(st)
        do(st.root)
        st.history.append({"created_by": created_by})
        st.key = key
        if not st.single:
            self._commit_step(st)
            self._cache_put(key, st.image, st.doc)

    def _make_workdirs(self, st: "_State") -> None:
        """The WORKDIR directories that do not exist yet, each component made (by mkdirat,
        inside the root: :mod:`pallet._rootfs`) owned by the USER in force at its WORKDIR
        instruction."""
        from .. import _rootfs
        from ._paths import lookup_user

        root_fd = _rootfs.open_root(st.root)
        try:
            for w, user in st.workdirs:
                if _is_dir_in_root(st.root, w):
                    continue
                uid, gid = lookup_user(st.root, user)[:2] if user else (0, 0)
                try:
                    os.close(_rootfs.mkdir_all_in_root(root_fd, w, 0o755, owner=(uid, gid)))
                except OSError as e:
                    raise BuildError(f"WORKDIR {w}: cannot create it: {e.strerror}") from None
        finally:
            os.close(root_fd)
        st.workdirs = []

    def _flush_workdirs(self, st: "_State", stage: Stage) -> None:
        if not st.workdirs:
            return
        if st.container is None and not st.single:
            key = self._key(st.key, "workdirs", st.workdirs)
            hit = self._cache_get(key)
            if hit is not None:
                st.image, st.doc = hit
                st.key = key
                st.workdirs = []
                st.history = []
                return
            self._container(st)
            if all(_is_dir_in_root(st.root, w) for w, _ in st.workdirs):
                # every directory is there already: no layer (an empty one was made before)
                b = st.container
                b.umount()
                b.remove()
                if self.working is b:
                    self.working = None
                st.container = st.root = None
                st.workdirs = []
                return
            self._make_workdirs(st)
            st.key = key
            self._commit_step(st, empty_ok=True)
            self._cache_put(key, st.image, st.doc)
            return
        self._container(st)
        self._make_workdirs(st)

    def _history_entries(self, st: "_State", layer: bool = False) -> list[dict]:
        created = _image.timestamp(self.epoch)
        out = []
        for h in st.history:
            e = {"created": created, "created_by": h["created_by"]}
            if h.get("empty_layer"):
                e["empty_layer"] = True
            out.append(e)
        if layer and all(e.get("empty_layer") for e in out):
            # the layer holds the directories a WORKDIR made: that entry owns it
            for e in reversed(out):
                if e["created_by"].startswith("/bin/sh -c #(nop) WORKDIR "):
                    del e["empty_layer"]
                    break
            else:
                out.append({"created": created, "created_by": "/bin/sh -c #(nop) WORKDIR"})
        return out

    def _commit_step(self, st: "_State", empty_ok: bool = False, squash_all: bool = False) -> None:
        """Commit the working container as one layer on the current image; it becomes current."""
        from .working import commit_layer

        b = st.container
        b.umount()
        st.root = None
        layer = commit_layer(self.store, b, st.image, self.epoch, squash=squash_all)
        base_layers = list(st.image["layers"]) if st.image and not squash_all else []
        doc = _copy.deepcopy(st.doc)
        created = _image.timestamp(self.epoch)
        hist = doc.setdefault("history", [])
        if squash_all:
            hist.clear()
        entries = self._history_entries(st, True)
        # non-empty entries beyond the one that owns the layer are folded into it
        nonempty = [e for e in entries if not e.get("empty_layer")]
        if len(nonempty) > 1:
            keep = nonempty[-1]
            keep["created_by"] = " && ".join(e["created_by"] for e in nonempty) if st.single else keep["created_by"]
            entries = [e for e in entries if e.get("empty_layer") or e is keep]
        hist.extend(entries)
        doc["created"] = created
        rec = _image.write_image(self.store, doc, base_layers + [layer["id"]], self.o.fmt)
        self.made_images.append(rec["id"])
        st.image = rec
        st.doc = doc
        st.history = []
        b.remove()
        if self.working is b:
            self.working = None
        st.container = None

    def _commit_single(self, st: "_State", squash_all: bool = False) -> None:
        self._commit_step(st, squash_all=squash_all)

    # RUN

    def _run(self, st: "_State", ins: Instruction, stage: Stage) -> None:
        cfg = st.doc.get("config") or {}
        shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
        env_now = self._env(st)
        if ins.json:
            argv = list(ins.args)
            shown = json.dumps(argv)
        elif ins.heredocs and len(ins.args) == 1 and ins.args[0].lstrip().startswith("<<") \
                and len(ins.args[0].split()) == 1 and len(ins.heredocs) == 1:
            script = ins.heredocs[0][1]
            argv = shell + [script]
            shown = ins.args[0]
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
        self._check_used(st, ins, used, env_now)
        network = ins.flag("network") or self.o.network
        if network == "default":
            network = "host"
        if network not in ("host", "none"):
            raise ins.error(f"invalid --network {network!r}: want none, host or default")
        mounts_spec = [self._parse_mount(ins, m, st) for m in ins.flag_all("mount")]
        run_env = dict(env_now)
        args_env = {k: v for k, v in st.args.items() if v is not None and k not in _image.env_dict(cfg)}
        key = self._key(st.key, "RUN", argv, args_env, network, [m["key"] for m in mounts_spec],
                        self.epoch, self.o.volumes)

        def do(root):
            import contextlib

            mounts = []
            cleanups = []
            try:
                with contextlib.ExitStack() as stack:
                    mounts += self._volume_shadows(root, cfg, stack)
                    for m in mounts_spec:
                        made = m["make"](cleanups)
                        if made is not None:  # a secret that was not given: the step runs without it
                            mounts.append(made)
                    rc = self._run_in(st, argv, run_env, cfg, network, mounts)
            finally:
                for fn in reversed(cleanups):
                    fn()
            if rc != 0:
                raise BuildError(f"{ins.where()}: building at STEP \"RUN {shown}\": "
                                 f"the command exited with status {rc}", exit_code=rc if rc > 0 else 125)

        self._fs_step(st, ins, key, do, self._args_prefix(st, cfg) + (f"/bin/sh -c {shown}" if not ins.json else shown))

    @staticmethod
    def _args_prefix(st, cfg: dict) -> str:
        """``|N K=V ... `` before a RUN's history entry, as buildah (and Docker) write it: the
        ARGs in scope that have a value (an ENV of the same name gives it), sorted."""
        env = _image.env_dict(cfg)
        pairs = sorted((k, env.get(k, v)) for k, v in st.args.items() if v is not None)
        return f"|{len(pairs)} " + " ".join(f"{k}={v}" for k, v in pairs) + " " if pairs else ""

    def _run_in(self, st, argv, run_env, cfg, network, mounts) -> int:
        return st.container.run(argv, env=[f"{k}={v}" for k, v in run_env.items()], user=cfg.get("User") or None,
                                workdir=cfg.get("WorkingDir") or "/", network=network,
                                volumes=self.o.volumes, mounts=mounts, runtime=self.o.runtime,
                                stdout=self.o.stdout, stderr=self.o.stderr)

    def _volume_shadows(self, root: str, cfg: dict, stack) -> list[dict]:
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
            d = stack.enter_context(self.store.staging())  # locked: no other process takes it for a leftover
            # cp gets the directory's fd, under the same number: it reads that very directory
            r = subprocess.run(["cp", "-a", _rootfs.fd_path(vfd) + "/.", d + "/"], capture_output=True, text=True,
                               pass_fds=(vfd,))
            if r.returncode != 0:
                raise BuildError(f"VOLUME {vol}: cannot set it aside for RUN: {r.stderr.strip()}")
            out.append({"destination": vol, "type": "bind", "source": d, "options": ["rbind", "rw"]})
        return out

    def _parse_mount(self, ins: Instruction, text: str | None, st) -> dict:
        opts: dict = {}
        for part in (text or "").split(","):
            if not part:
                continue
            k, sep, v = part.partition("=")
            opts[k.strip().lower()] = v if sep else "true"
        typ = opts.get("type", "bind")
        target = opts.get("target") or opts.get("dst") or opts.get("destination")
        if typ == "secret":
            sid = opts.get("id") or (os.path.basename(target) if target else None)
            if not sid:
                raise ins.error("--mount=type=secret needs an id")
            target = target or f"/run/secrets/{sid}"
            required = opts.get("required", "false").lower() in ("true", "1", "")
            src = self.o.secrets.get(sid)
            if src is None and required:
                raise ins.error(f"secret {sid!r} is required but was not given (--secret id={sid},src=PATH)")
            mode = _mount_number(ins, typ, opts, "mode", "0400")
            uid, gid = _mount_number(ins, typ, opts, "uid", "0"), _mount_number(ins, typ, opts, "gid", "0")

            def make(cleanups, src=src, target=target, mode=mode, uid=uid, gid=gid):
                if src is None:
                    return None
                import tempfile

                d = tempfile.mkdtemp(prefix="pallet-secret-", dir=os.path.join(self.store.runroot))
                cleanups.append(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
                path = os.path.join(d, "secret")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(src, "rb") as f, os.fdopen(fd, "wb") as g:
                    __import__("shutil").copyfileobj(f, g, 1 << 20)  # a secret file is not held whole
                os.chown(path, uid, gid)
                os.chmod(path, mode)
                return {"destination": target, "type": "bind", "source": path, "options": ["rbind", "ro"]}

            return {"key": ["secret", sid, target], "make": make}
        if not target:
            raise ins.error(f"--mount=type={typ} needs a target")
        if typ == "tmpfs":
            size = opts.get("size")
            options = ["nosuid", "nodev"] + ([f"size={size}"] if size else [])
            return {"key": ["tmpfs", target, size],
                    "make": lambda cleanups: {"destination": target, "type": "tmpfs", "source": "tmpfs",
                                              "options": options, "keep": True}}
        if typ == "cache":
            cid = opts.get("id") or target
            d = os.path.join(self.store.graphroot, "build-cache-mounts",
                             hashlib.sha256(cid.encode()).hexdigest()[:32])
            ro = opts.get("ro", opts.get("readonly", "false")).lower() in ("true", "1")
            mode = _mount_number(ins, typ, opts, "mode", "0755")
            uid, gid = _mount_number(ins, typ, opts, "uid", "0"), _mount_number(ins, typ, opts, "gid", "0")

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
            source = opts.get("source") or opts.get("src") or "/"
            frm = opts.get("from")
            rw = opts.get("rw", opts.get("readwrite", "false")).lower() in ("true", "1")

            def make(cleanups):
                from ._paths import resolve_in_root

                if frm:
                    m = self._from_mount(frm, ins, st)
                    cleanups.append(m.close)
                    root = m.path
                else:
                    root = self.context
                src = resolve_in_root(root, source)
                if not os.path.exists(src):
                    raise ins.error(f"--mount=type=bind: {source}: no such file or directory")
                if rw:
                    import shutil
                    import tempfile

                    tmp = tempfile.mkdtemp(prefix="pallet-bind-", dir=self.store.runroot)
                    cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
                    dst = os.path.join(tmp, "src")
                    if os.path.isdir(src):
                        shutil.copytree(src, dst, symlinks=True)
                    else:
                        shutil.copy2(src, dst)
                    src = dst
                return {"destination": target, "type": "bind", "source": src,
                        "options": ["rbind", "rw" if rw else "ro"], "keep": True}

            return {"key": ["bind", frm, source, target, rw], "make": make}
        raise ins.error(f"unknown mount type {typ!r}: want bind, cache, secret or tmpfs")

    def _from_mount(self, text: str, ins: Instruction, st):
        """A read-only mount of a previous stage's files or of an image (for --from)."""
        from .working import ensure_image

        idx = self._stage_index(text)
        if idx is not None:
            if idx not in self.results:
                raise ins.error(f"stage {text!r} is not a previous build stage")
            res = self.results[idx]
            return _ImageMount(self.store, res.image, res.key)
        try:
            img = ensure_image(self.store, text, self.o.pull, self.o.ctx)
        except PalletError as e:
            raise ins.error(f"--from={text}: no build stage by that name, and no such image: {e}") from None
        return _ImageMount(self.store, img, img["id"])

    # COPY / ADD

    def _copy(self, st: "_State", ins: Instruction, stage: Stage, add: bool = False) -> None:
        from . import copy as _cp
        from ._paths import lookup_chown

        cfg = st.doc.get("config") or {}
        args = list(ins.args)
        dest = self._x(st, ins, args[-1])
        srcs_raw = args[:-1]
        heredoc_names = {h[0]: h for h in ins.heredocs}
        chown = self._x(st, ins, ins.flag("chown")) if ins.flag("chown") else None
        chmod = _cp.parse_chmod(self._x(st, ins, ins.flag("chmod"))) if ins.flag("chmod") else None
        frm = self._x(st, ins, ins.flag("from")) if not add and ins.flag("from") else None
        if add and ins.flag("from"):
            raise ins.error("ADD does not take --from: use COPY --from")
        mount = None
        try:
            if frm:
                mount = self._from_mount(frm, ins, st)
                source = _cp.Source(mount.path, preserve_owner=True, what=f"stage or image {frm!r}")
                src_key = mount.key
            else:
                source = _cp.Source(self.context, ignore=self.ignore, what="build context", strip_setid=True)
                src_key = "context"
            items: list = []
            for raw in srcs_raw:
                m = raw.strip()
                if m.startswith("<<"):
                    name = m.lstrip("<-").strip("'\"")
                    h = heredoc_names.get(name)
                    if h is None:
                        raise ins.error(f"heredoc {name} has no content")
                    content = h[1]
                    if h[2]:
                        content = _expand_heredoc(content, self._env(st), self.df.escape)
                    items.append(_cp.Item(None, name, name, data=content.encode("utf-8", "surrogateescape")))
                    continue
                s = self._x(st, ins, raw)
                if add and s.startswith(("http://", "https://")):
                    items.append(_cp.Item(None, s, "", url=s))
                    continue
                if add and s.startswith("git@") or (add and s.endswith(".git") and "://" in s):
                    raise ins.error(f"ADD of a git repository ({s}) is not supported")
                try:
                    items += source.match(s)
                except BuildError as e:
                    raise ins.error(str(e)) from None
            several = len(srcs_raw) > 1
            if (several or len(items) > 1) and not dest.endswith("/"):
                raise ins.error("When using COPY with more than one source file, the destination must be a "
                                "directory and end with a /")
            h = hashlib.sha256()
            try:
                source.checksum(items, h)
            except OSError as e:
                raise ins.error(f"reading the sources: {e.strerror}: {e.filename}") from None
            key = self._key(st.key, ins.cmd, dest, chown, chmod, src_key, h.hexdigest(), cfg.get("WorkingDir"),
                            self.epoch, add)

            def do(root):
                try:
                    owner = lookup_chown(root, chown) if chown else None
                except BuildError as e:
                    raise ins.error(str(e)) from None
                opts = _cp.CopyOptions(chown=owner, chmod=chmod, extract=add, workdir=cfg.get("WorkingDir") or "/",
                                       **_cp.limits_of(self.store))
                try:
                    _cp.copy(root, source, items, dest, opts, several=several)
                except OSError as e:
                    raise ins.error(f"{e.strerror}: {e.filename}") from None

            short = " ".join(srcs_raw)
            self._fs_step(st, ins, key, do, f"/bin/sh -c #(nop) {ins.cmd} {short} in {dest}")
        finally:
            if mount is not None:
                mount.close()

    def _add(self, st, ins, stage) -> None:
        self._copy(st, ins, stage, add=True)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self, res: _StageResult) -> dict:
        o = self.o
        doc = _copy.deepcopy(res.doc)
        cfg = doc.setdefault("config", {})
        if o.labels:
            labels = cfg.get("Labels") or {}
            labels.update(o.labels)
            cfg["Labels"] = labels
        if o.fmt == "oci":
            dropped = [k.upper() for k in ("Healthcheck", "OnBuild", "Shell") if cfg.get(k)]
            if dropped and not o.quiet:
                o.out(f"[Warning] {', '.join(dropped)} is not supported for the OCI image format and is ignored: "
                      "use --format docker")
        created = _image.timestamp(self.epoch)
        doc["created"] = created
        layers = list(res.image["layers"]) if res.image else []
        if not o.quiet:
            o.out("COMMIT " + (" ".join(o.tags) if o.tags else ""))
        rec = _image.write_image(self.store, doc, layers, o.fmt, o.tags, o.annotations)
        if rec["id"] in self.made_images:
            self.made_images.remove(rec["id"])
        if not o.quiet:
            o.out(f"--> {rec['id'][:12]}")
            for t in rec["names"]:
                o.out(f"Successfully tagged {t}")
        if o.iidfile:
            from .. import _fs

            _fs.write_output(o.iidfile, ("sha256:" + rec["id"]).encode(), what="--iidfile")
        return rec

    def _output(self, rec: dict) -> None:
        if not self.o.output:
            return
        export(self.store, rec, self.o.output, self.o.ctx)


def _expand_heredoc(content: str, env: dict, escape: str) -> str:
    """Expand ``$VAR`` in heredoc content (quotes kept: this is file content, not a word)."""
    import re

    def repl(m):
        name = m.group(1) or m.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, content)


def _ports(w: str, ins: Instruction) -> list[str]:
    """``EXPOSE`` words as config keys; a range stays one key, as buildah writes it."""
    port, _, proto = w.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ins.error(f"invalid proto: {proto}")
    if ":" in port:
        port = port.rsplit(":", 1)[1]
    lo, sep, hi = port.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise ins.error(f"invalid port {w!r}") from None
    if not (0 < a <= 65535 and a <= b <= 65535):
        raise ins.error(f"invalid port {w!r}")
    return [f"{port}/{proto}"]


def _duration(text: str) -> int | None:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    import re

    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    if text == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return int(sum(float(a) * units[b] for a, b in parts))


class _State:
    def __init__(self, image: dict | None, doc: dict, key: str):
        self.image = image
        self.doc = doc
        self.key = key
        self.args: dict = {}
        self.container = None
        self.root = None
        self.history: list[dict] = []
        self.workdirs: list[str] = []
        self.single = False
        self.cmd_set = False
        self.later_args: dict = {}


class _ImageMount:
    def __init__(self, store, image: dict | None, key: str):
        import tempfile

        self.store = store
        self.image = image
        self.key = key
        self._tmp = None
        if image is None:
            self._tmp = tempfile.mkdtemp(prefix="pallet-scratch-")
            self.path = self._tmp
        else:
            self.path = store.mount_image(image["id"])

    def close(self) -> None:
        if self.image is not None:
            try:
                self.store.umount_image(self.image["id"])
            except PalletError:
                pass
            self.image = None
        if self._tmp:
            os.rmdir(self._tmp)
            self._tmp = None


def export(store, rec: dict, output: str, ctx=None) -> None:
    """``--output``: ``type=local,dest=DIR``, ``type=tar,dest=FILE`` (``-``: stdout), or a
    transport reference (``oci:DIR:TAG``, ``docker-archive:FILE``, ...)."""
    opts = {}
    if output.startswith("type=") or ("," in output and "=" in output.split(",", 1)[0]):
        for part in output.split(","):
            k, _, v = part.partition("=")
            opts[k.strip()] = v.strip()
    elif "=" not in output and ":" not in output:
        opts = {"type": "local", "dest": output}
    if opts:
        typ = opts.get("type", "local")
        dest = opts.get("dest")
        if not dest:
            raise BuildError(f"--output {output}: missing dest=")
        path = store.mount_image(rec["id"])
        try:
            if typ == "local":
                _export_local(path, dest)
            elif typ == "tar":
                _export_tar(path, dest)
            else:
                raise BuildError(f"--output: unknown type {typ!r}: want local or tar, or a transport reference")
        finally:
            store.umount_image(rec["id"])
        return
    from ..storage.transport import LocalReference
    from ..transports import parse_reference
    from ..transports.base import SystemContext
    from ..transports.copy import CopyOptions, copy_image

    ctx = ctx or SystemContext()
    ctx.storage = store.options
    try:
        dest_ref = parse_reference(output)
    except PalletError as e:
        raise BuildError(f"--output {output}: {e}") from None
    copy_image(LocalReference(None, rec["id"]), dest_ref, ctx, ctx, CopyOptions())


def _export_local(src: str, dest: str) -> None:
    from . import copy as _cp

    os.makedirs(dest, exist_ok=True)
    w = _cp._Writer("/", _cp.Source(src, preserve_owner=True), _cp.CopyOptions())
    w.copy_children(src, None, dest)


def _export_tar(src: str, dest: str) -> None:
    import shutil
    import sys

    from ..layer.create import tar_directory

    with tar_directory(src) as stream:
        if dest == "-":
            shutil.copyfileobj(stream, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        else:
            from .. import _fs

            with _fs.output_file(dest, 0o644) as f:
                shutil.copyfileobj(stream, f, 1 << 20)


def _is_dir_in_root(root: str, path: str) -> bool:
    """Whether ``path`` is a directory inside the tree at ``root`` (resolved by fd)."""
    from .. import _rootfs

    rfd = _rootfs.open_root(root)
    try:
        os.close(_rootfs.open_in_root(rfd, path, os.O_PATH | os.O_DIRECTORY))
        return True
    except OSError:
        return False
    finally:
        os.close(rfd)


def _mount_number(ins, typ: str, opts: dict, field: str, default: str) -> int:
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


def build(store, o: BuildOptions) -> dict:
    return Builder(store, o).run()
