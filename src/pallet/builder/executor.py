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
import os

from ..errors import BuildError, PalletError
from . import config_edit
from . import image as _image
from .cache import StepCache, step_key
from .config_steps import PROXY_ARGS, apply_config_instruction
from .copy_step import copy_step
from .dockerfile import Dockerfile, Instruction, Stage, escape_directive, parse, parse_text
from .export import export
from .run_step import run_step
from .shell import expand
from .stage import ImageMount, StageResult, StageState


class BuildOptions:
    def __init__(self, context: str, *, dockerfile: str | None = None, dockerfile_text: str | None = None,
                 tags: list[str] = (), build_args: dict | None = None, target: str | None = None,
                 layers: bool = True, no_cache: bool = False, squash: bool = False, squash_all: bool = False,
                 secrets: dict | None = None, volumes: list[str] = (), labels: dict | None = None,
                 annotations: dict | None = None, fmt: str = "oci", timestamp: int | None = None,
                 output: str | None = None, quiet: bool = False, pull: str = "missing", ctx=None,
                 runtime: str | None = None, network: str | None = None, out=None, stdout=None, stderr=None,
                 iidfile: str | None = None, rm: bool = True, network_config_dir: str | None = None,
                 run_extras=None, stdin=None,
                 env: list[str] = (), unsetenv: list[str] = (), omit_history: bool = False,
                 ignorefile: str | None = None, skip_unused_stages: bool = True,
                 build_contexts: dict | None = None, platform=None, cpp_flags: list[str] = (), warn=None,
                 context_stream=None, cache_ttl: float | None = None, os_version: str | None = None,
                 more_dockerfiles: list[str] = (),
                 os_features: list[str] = (), log_rusage: bool = False, rusage_out=None,
                 from_image: str | None = None, cache_from: str | None = None, cache_to: str | None = None):
        self.context = context
        self.cache_from = cache_from  # --cache-from: a repository the steps are looked for in (with layers)
        self.cache_to = cache_to  # --cache-to: a repository each step's image is pushed to (with layers)
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
        #: RUN's network (None: builder/network.py's default, buildah's private namespace)
        self.network = network
        self.network_config_dir = network_config_dir
        self.out = out or (lambda line: None)
        self.stdout = stdout
        self.stderr = stderr
        self.iidfile = iidfile
        self.rm = rm
        #: what every RUN step gets (resources, limits, capabilities...): a run.RunExtras
        self.run_extras = run_extras
        self.stdin = stdin
        self.env = list(env)            # NAME=VALUE set in the image's config
        self.unsetenv = list(unsetenv)  # names removed from it (after env)
        self.omit_history = omit_history
        self.ignorefile = ignorefile
        self.skip_unused_stages = skip_unused_stages
        #: --build-context: name -> ("image", reference), ("dir", absolute path) or ("url", text)
        self.build_contexts = {k.lower(): v for k, v in (build_contexts or {}).items()}
        #: --platform/--os/--arch/--variant: an oci.platform.Platform (None: the host's)
        self.platform = platform
        self.os_version = os_version
        self.from_image = from_image  # --from: replaces the first stage's base
        self.log_rusage = log_rusage  # resource use per instruction, lines to rusage_out (default out)
        self.rusage_out = rusage_out or self.out
        self.os_features = list(os_features)  # FEATURE adds, FEATURE- removes (in order)
        self.cache_ttl = cache_ttl  # seconds (--cache-ttl; 0: as --no-cache)
        self.context_stream = context_stream  # what context "-" reads (a binary stream)
        self.more_dockerfiles = list(more_dockerfiles)  # further -f files, read after the first as one
        self.cpp_flags = list(cpp_flags)  # for a Containerfile.in (after $BUILDAH_CPPFLAGS)
        self.warn = warn or (lambda line: None)  # warnings, shown even with quiet


def find_dockerfile(context: str, dockerfile: str | None) -> str:
    if dockerfile:
        if dockerfile == "-":
            return "-"
        for p in (dockerfile, os.path.join(context, dockerfile)):
            if os.path.isdir(p):
                raise BuildError(f"the Dockerfile {dockerfile} cannot be path to a directory")
            if os.path.exists(p):
                return p
        try:
            os.stat(dockerfile)
            why = "no such file or directory"
        except OSError as e:  # ENOTDIR for a file in the path, as buildah says it
            why = (e.strerror or "no such file or directory").lower()
        raise BuildError(f"the Dockerfile {dockerfile}: {why}")
    for n in ("Containerfile", "Dockerfile"):
        p = os.path.join(context, n)
        if os.path.exists(p):
            if not os.path.isfile(p):
                raise BuildError(f"{p} is not a file")
            return p
    # buildah's words (pkg/util DiscoverContainerfile: the stat of CONTEXT/Dockerfile)
    raise BuildError("cannot find Containerfile or Dockerfile in context directory: "
                     f"stat {os.path.join(context, 'Dockerfile')}: no such file or directory")


def _predefined_args(target=None) -> dict:
    """BUILDPLATFORM & co. (the host's) and TARGETPLATFORM & co. (``target``, an
    ``oci.platform.Platform``, else the host's)."""
    host = _image.host_platform()
    d = {}
    for prefix, (os_, arch, variant) in (("BUILD", host), ("TARGET", host if target is None else
                                                               (target.os, target.architecture, target.variant or ""))):
        d[prefix + "PLATFORM"] = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
        d[prefix + "OS"] = os_
        d[prefix + "ARCH"] = arch
        d[prefix + "VARIANT"] = variant
    return d


class DockerfileBuild:
    """One build. ``run()`` returns the final image record."""

    def __init__(self, store, options: BuildOptions):
        self.store = store
        self.options = options
        self.context = os.path.abspath(options.context)
        self.results: dict[int, StageResult] = {}
        self.step = 0
        self.stage_now = None  # the stage being built (for the STEP lines)
        self.built_stages: list[int] = []
        self.epoch = options.timestamp
        if self.epoch is None:
            from ..layer.create import epoch_from_env

            self.epoch = epoch_from_env()
        self.made_images: list[str] = []  # intermediate images this build made (not cache entries)
        self.unlogged_images: set[str] = set()  # stage images buildah would not have committed (yet)
        self.stage_last = False
        self.mounted: list = []
        self.working = None  # the live working container (cleaned up on failure)
        #: this build's owner (Store.owner): its working containers and image mounts are reaped
        #: by the next open of the store if the process is killed
        self.owner: str | None = None
        self.consumed_args: set[str] = set()
        remote = None
        if options.layers and (options.cache_from or options.cache_to):  # buildah's: only with --layers
            from .remote_cache import RemoteCache

            remote = RemoteCache(store, options.cache_from, options.cache_to, options.ctx,
                                 None if options.quiet else options.out)
        self.cache = StepCache(store, use=options.layers and not options.no_cache and options.cache_ttl != 0,
                               record=options.layers, made_images=self.made_images, ttl=options.cache_ttl,
                               remote=remote)
        self.ignore = None
        #: the RUN steps' network namespaces (builder/network.py), made at the first step that
        #: needs one; torn down after the last RUN instruction, and in any case when the build ends
        self.networks = None
        self.last_run = None  # the last RUN instruction of the stages built
        self._stack = None  # the build's ExitStack (staging directories live as long as it)
        self._remote: dict[str, str] = {}  # remote contexts fetched: text -> directory

    # -- entry -------------------------------------------------------------------------------

    def run(self) -> dict:
        import contextlib

        from .network import reap_at_start

        reap_at_start(self.store.runroot, self.store.graphroot, self.options.network_config_dir)
        with self.store.owner() as owner:
            self.owner = owner
            try:
                with contextlib.ExitStack() as stack:
                    self._stack = stack
                    self._prepare_context(stack)
                    rec = self._run_build()
            except BaseException:
                self._close_networks()
                raise
            finally:
                self.owner = None
            self._close_networks()
            return rec

    def run_networks(self):
        """The build's :class:`.network.BuildNetworks` (made on first use)."""
        if self.networks is None:
            from .network import BuildNetworks

            self.networks = BuildNetworks(self.store.runroot, self.store.graphroot, self.options.network_config_dir)
        return self.networks

    def _start_network_early(self, runs: list) -> None:
        """When no step can come from the cache (none used, or none recorded yet) every RUN
        step runs: the namespace of the build's network is attached now, while the base image
        is pulled and mounted (otherwise at the first step that misses the cache: run_step)."""
        from .network import BuildNetworks, check, needs_own_namespace

        if needs_own_namespace(self.options.run_extras) \
                or not any(ins.flag("network") in (None, "default") for ins in runs):
            return
        try:
            network = check(self.options.network)
        except BuildError:
            return  # the first RUN step reports it, naming its line
        if BuildNetworks.shares(network):
            try:
                self.run_networks().start(network)
            except PalletError:
                pass  # (an unknown network's name): the first RUN step tries again and reports it

    def _close_networks(self) -> None:
        """Tear down the RUN steps' namespaces and wait for it; a failure is a warning (the
        build's outcome stands, as buildah logs a failed network teardown)."""
        if self.networks is None:
            return
        try:
            self.networks.close()
        except PalletError as e:
            self.options.warn(f"tearing down the build's network namespace: {e}")

    def _prepare_context(self, stack) -> None:
        """The context as buildah takes it: a directory; a Dockerfile (its directory is the
        context); a tar archive, plain or compressed (extracted into the store's staging,
        removed after the build); ``-``: stdin holding a Dockerfile (an empty context) or
        such an archive; a URL or a git repository (``builder.remote``: fetched into the
        staging too)."""
        from . import remote

        o = self.options
        text = o.context
        if remote.is_remote(text):
            self.context = self._fetch_remote(text)
            return
        if text != "-":
            if not os.path.exists(text):
                raise BuildError(f"the build context {text}: no such file or directory")
            if os.path.isdir(text):
                return
        from .copy import extract_archive, is_archive

        scratch = stack.enter_context(self.store.staging())
        if text == "-":
            src = os.path.join(scratch, "stdin")
            with open(src, "wb") as f:
                import shutil

                shutil.copyfileobj(o.context_stream, f, 1 << 20)
        else:
            src = text
        if is_archive(src):
            ctx = os.path.join(scratch, "context")
            os.mkdir(ctx, 0o755)
            extract_archive(src, ctx, f"the build context {text}")
            self.context = ctx
            return
        if text == "-":  # a Dockerfile on stdin, and an empty context
            with open(src, encoding="utf-8", errors="surrogateescape") as f:
                o.dockerfile_text = f.read()
            ctx = os.path.join(scratch, "context")
            os.mkdir(ctx, 0o755)
            self.context = ctx
            return
        # a Dockerfile named as the context: its directory is the context
        if o.dockerfile is None and o.dockerfile_text is None:
            o.dockerfile = os.path.abspath(text)
        self.context = os.path.dirname(os.path.abspath(text))

    def _warn_unset_args(self, df) -> None:
        """buildah's warning for an ARG that has no value anywhere (no default in an earlier ARG
        of that name, no --build-arg), in its words (logrus quotes them)."""
        found: set = set()
        for ins in list(df.global_args) + [i for st in df.stages for i in st.instructions]:
            if ins.cmd != "ARG" or not ins.args:
                continue
            name, sep, value = ins.args[0].partition("=")
            if sep and value:
                found.add(name)
            if not (sep or name in found) and name not in self.options.build_args:
                self.options.warn(f'missing \\"{name}\\" build argument. Try adding '
                                  f'\\"--build-arg {name}=<VALUE>\\" to the command line')

    def _fetch_remote(self, text: str) -> str:
        """A context from a URL or git repository (the build's or a ``--build-context``'s),
        fetched once into the store's staging, removed after the build."""
        from . import remote
        from .copy import limits_of

        done = self._remote.get(text)
        if done is None:
            scratch = self._stack.enter_context(self.store.staging())
            ctx = os.path.join(scratch, "context")
            os.mkdir(ctx, 0o755)
            done = self._remote[text] = remote.fetch(text, ctx, **limits_of(self.store))
        return done

    def _run_build(self) -> dict:
        from .ignore import IgnoreRules

        if not os.path.isdir(self.context):
            raise BuildError(f"the build context {self.options.context} is not a directory")
        if self.options.dockerfile_text is not None:
            text, fname = self.options.dockerfile_text, self.options.dockerfile or "Dockerfile"
        else:
            fname = find_dockerfile(self.context, self.options.dockerfile)
            try:
                with open(fname, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError as e:
                raise BuildError(f"reading {fname}: {e.strerror}") from None
            if not text.strip():
                raise BuildError(f'no contents in "{fname}"')
            if fname.endswith(".in"):
                text = self._preprocess(fname, text)
        for more in self.options.more_dockerfiles:  # buildah reads several -f as one Dockerfile
            mname = find_dockerfile(self.context, more)
            try:
                with open(mname, encoding="utf-8", errors="surrogateescape") as f:
                    more_text = f.read()
            except OSError as e:
                raise BuildError(f"reading {mname}: {e.strerror}") from None
            if mname.endswith(".in"):
                more_text = self._preprocess(mname, more_text)
            try:  # each file's parser directives are its own: buildah parses every -f before joining them
                escape_directive(more_text)
            except BuildError as e:
                raise BuildError(f"parsing additional Dockerfile {mname}: invalid ESCAPE: {e}") from None
            text = text.rstrip("\n") + "\n" + more_text
        self.file = os.path.basename(fname) if fname != "-" else "Dockerfile"
        df = parse(text, self.file)
        self.dockerfile = df
        if self.options.ignorefile:
            self.ignore = IgnoreRules.from_file(self.options.ignorefile)
        else:
            self.ignore = IgnoreRules.load(self.context, fname if fname != "-" else None)
        if self.options.fmt not in ("oci", "docker"):
            raise BuildError(f"unknown format {self.options.fmt!r}: want oci or docker")
        self.global_args = self._global_args(df)
        self._warn_unset_args(df)
        order = self._stages_needed(df)
        self.built_stages = order  # the STEP lines number stages among those built, as buildah
        runs = [ins for i in order for ins in df.stages[i].instructions if ins.cmd == "RUN"]
        self.last_run = runs[-1] if runs else None
        if runs and not self.cache.can_hit():
            self._start_network_early(runs)
        try:
            final = None
            for i in order:
                final = self._stage(df.stages[i], last=(i == order[-1]))
            rec = self._finish(final)
        except BaseException:
            self._cleanup(failed=True)
            raise
        self._cleanup(failed=False)
        unused = sorted(k for k in self.options.build_args if k not in self.consumed_args and k not in PROXY_ARGS)
        if unused and not self.options.quiet:
            self.options.out(f"[Warning] one or more build args were not consumed: [{' '.join(unused)}]")  # Go's %v
        self._output(rec)
        return rec

    def _preprocess(self, fname: str, text: str) -> str:
        """A ``*.in`` Containerfile goes through cpp first, as buildah runs it (``-E -iquote DIR
        -traditional -undef``, then ``$BUILDAH_CPPFLAGS`` and ``--cpp-flag``): ``#include``
        files next to it, macros; cpp's complaints are warnings while it still wrote output."""
        import shlex
        import subprocess

        argv = ["cpp", "-E", "-iquote", os.path.dirname(os.path.abspath(fname)), "-traditional", "-undef", "-"]
        argv += shlex.split(os.environ.get("BUILDAH_CPPFLAGS", "")) + self.options.cpp_flags
        try:
            p = subprocess.run(argv, input=text.encode("utf-8", "surrogateescape"), capture_output=True)
        except OSError as e:
            raise BuildError(f"preprocessing {fname}: cannot run cpp: {e.strerror} (install the cpp package)") \
                from None
        err = p.stderr.decode("utf-8", "replace").strip()
        if p.returncode != 0:
            if err:
                self.options.warn(f"Ignoring {err}")
            if not p.stdout:
                raise BuildError(f"preprocessing {fname}: cpp exited with status {p.returncode}")
        return p.stdout.decode("utf-8", "surrogateescape")

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
            except PalletError as e:  # said, never silent: `pallet rm ID` removes it later
                self.options.warn(f"the working container {self.working.id[:12]} stays: {e}")
            self.working = None
        for iid in self.made_images:
            try:
                rec = self.store.image(iid)
                if not rec["names"]:
                    self.store.remove_image(iid)
            except PalletError:
                pass
        self.made_images.clear()

    # -- arguments and stages ----------------------------------------------------------------

    def _global_args(self, df: Dockerfile) -> dict:
        scope = dict(_predefined_args(self.options.platform))
        for ins in df.global_args:
            for name, value in self.arg_pairs(ins, scope):
                if name in self.options.build_args:
                    value = self.options.build_args[name]
                    self.consumed_args.add(name)
                scope[name] = value
        return scope

    def base_scope(self) -> dict:
        """What a FROM line expands: the global ARGs, and a --build-arg for a name an ARG
        declares in any stage (buildah's rule; a name no ARG declares stays empty)."""
        scope = dict(self.global_args)
        declared = {a.partition("=")[0] for s in self.dockerfile.stages for ins in s.instructions
                    if ins.cmd == "ARG" for a in ins.args}
        for name in declared:
            if name in self.options.build_args and name not in scope:
                scope[name] = self.options.build_args[name]
                self.consumed_args.add(name)
        return scope

    def arg_pairs(self, ins: Instruction, env: dict):
        for a in ins.args:
            name, sep, default = a.partition("=")
            if not name or not all(c.isalnum() or c == "_" for c in name):
                raise ins.error(f"invalid ARG name {name!r}")
            yield name, (expand(default, env, self.dockerfile.escape) if sep else None)

    def stage_index(self, text: str, before: int | None = None) -> int | None:
        t = text.lower()
        if t in self.options.build_contexts and not t.isdigit():
            return None  # an additional build context wins over a stage of the same name (BuildKit's rule)
        found = None
        for s in self.dockerfile.stages:
            if before is not None and s.index >= before:
                break
            if s.name == t:
                found = s.index  # the latest of that name (buildah lets a name come again)
        if found is not None:
            return found
        if t.isdigit():
            n = int(t)
            if before is not None and n >= before:
                raise BuildError(f"stage {n} is not a previous build stage")
            if n < len(self.dockerfile.stages):
                return n
            raise BuildError(f"unknown stage {text!r}: the Dockerfile has {len(self.dockerfile.stages)} stage(s)")
        return None

    def _stages_needed(self, df: Dockerfile) -> list[int]:
        if self.options.target:
            t = self.options.target.lower()
            found = [s.index for s in df.stages if s.name == t]
            if not found:
                raise BuildError(f"the target stage {self.options.target!r} could not be found in {self.file}")
            target = found[0]
        else:
            target = len(df.stages) - 1
        if not self.options.skip_unused_stages:
            return list(range(target + 1))
        need = {target}
        for s in reversed(df.stages[: target + 1]):
            if s.index not in need:
                continue
            base = self.options.from_image if s.index == 0 and self.options.from_image else \
                expand(s.base, self.base_scope(), df.escape)
            idx = self.stage_index(base, s.index)
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
                        idx = self.stage_index(r, s.index)
                    except BuildError:
                        idx = None
                    if idx is not None:
                        need.add(idx)
        return sorted(need)

    # -- progress ----------------------------------------------------------------------------

    def _say_step(self, ins: Instruction, shown: str | None = None) -> None:
        """``STEP j/m: ...``, numbered within the stage (m: its FROM and instructions), and
        with ``[i/n] `` before it in a Dockerfile of several stages: buildah's lines."""
        self.step += 1
        if not self.options.quiet:
            st = self.stage_now
            built = self.built_stages
            prefix = f"[{built.index(st.index) + 1}/{len(built)}] " if len(built) > 1 else ""
            self.options.out(f"{prefix}STEP {self.step}/{1 + len(st.instructions)}: {shown or ins.text()}")

    # -- a stage -----------------------------------------------------------------------------

    def _stage(self, stage: Stage, last: bool) -> StageResult:
        if not self.options.log_rusage:
            return self._stage_steps(stage, last, None)
        from .run import RusageMeter

        meter = RusageMeter(self.options.rusage_out)  # from before the base image is pulled
        try:
            return self._stage_steps(stage, last, meter)
        finally:
            meter.log()  # the stage's last instruction (and its commit), as buildah's deferred line

    def _stage_steps(self, stage: Stage, last: bool, meter) -> StageResult:
        options = self.options
        esc = self.dockerfile.escape
        self.stage_now = stage
        self.stage_last = last
        self.step = 0
        if stage.index == 0 and options.from_image:  # --from: the first FROM's image replaced
            base_text = options.from_image
            self._say_step(stage.from_instr, f"FROM {base_text}" + (f" AS {stage.name}" if stage.name else ""))
        else:  # the STEP line shows the base as expanded (buildah's)
            base_text = expand(stage.base, self.base_scope(), esc)
            self._say_step(stage.from_instr, f"FROM {base_text}" + (f" AS {stage.name}" if stage.name else "")
                           if base_text and base_text != stage.base else None)
        if not base_text:
            raise stage.from_instr.error("base name should not be blank (an ARG without a value?)")
        idx = self.stage_index(base_text, stage.index)
        if idx is not None:
            prev = self.results[idx]
            if prev.image is not None and prev.image["id"] in self.unlogged_images:
                from ..storage.imagestore import log_created

                self.unlogged_images.discard(prev.image["id"])
                log_created(prev.image["id"])
            state = StageState(prev.image, _copy.deepcopy(prev.doc), step_key(prev.key, "stage"))
            state.annotations = dict(prev.annotations)
        elif base_text.lower() in options.build_contexts:
            kind, value = options.build_contexts[base_text.lower()]
            if kind != "image":
                raise stage.from_instr.error(f"FROM {base_text}: the build context {base_text!r} is a directory, "
                                             "not an image")
            from .working import ensure_image

            try:
                img = ensure_image(self.store, value, options.pull, options.ctx, None if options.quiet else options.out)
                doc = _image.load_config(self.store, img)
            except PalletError as e:
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text} (--build-context {value}): {e}") \
                    from None
            state = StageState(img, doc, step_key("", "image", img["id"], options.fmt))
            state.annotations = _image.base_annotations(img, value)
        elif base_text.lower() == "scratch":
            doc = _image.empty_config(self._stage_platform(stage))
            # buildah and BuildKit give a scratch stage the default PATH
            doc["config"]["Env"] = ["PATH=" + _image.DEFAULT_PATH]
            state = StageState(None, doc, step_key("", "scratch", options.fmt))
        else:
            from .working import ensure_image

            from ..images.refs import has_transport
            from ..oci.reference import parse as parse_name

            try:
                if not has_transport(base_text) and "@" not in base_text:
                    parse_name(base_text)
            except PalletError as e:  # buildah's wording first, which scripts match
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text}: invalid reference format: {e}") \
                    from None
            try:
                img = ensure_image(self.store, base_text, options.pull, options.ctx,
                                   None if options.quiet else options.out, platform=self._stage_platform(stage))
            except PalletError as e:
                if str(e).startswith("creating build container: "):  # the peers' words first, the place after
                    raise BuildError(f"{e} ({stage.from_instr.where()})") from None
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text}: {e}") from None
            try:
                doc = _image.load_config(self.store, img)
            except PalletError as e:  # removed since it was found (a concurrent image prune or rmi)
                raise BuildError(f"{stage.from_instr.where()}: FROM {base_text}: {e}") from None
            state = StageState(img, doc, step_key("", "image", img["id"], options.fmt))  # docker and oci steps differ
            state.annotations = _image.base_annotations(img, base_text)
        state.args = {}
        # the platform its RUN steps run for: FROM --platform, else the build's (None: the host's)
        state.platform = self._stage_platform(self.results[idx].stage) if idx is not None and getattr(
            self.results[idx], "stage", None) is not None else self._stage_platform(stage)
        state.single = not options.layers or (last and (options.squash or options.squash_all))
        state.later_args = {}
        for ins in stage.instructions:
            if ins.cmd == "ARG":
                for a in ins.args:
                    state.later_args.setdefault(a.partition("=")[0], ins.line)
        triggers = (state.doc.get("config") or {}).get("OnBuild") or []
        if triggers:
            state.doc["config"].pop("OnBuild", None)
            state.key = step_key(state.key, "onbuild-clear")
            for t in triggers:
                for ins in parse_text(t, f"{self.file}:ONBUILD"):
                    ins.line = stage.from_instr.line
                    ins.file = self.file
                    if not options.quiet:
                        self.options.out(f"--> ONBUILD {t}")
                    self._instruction(state, ins)
        for ins in stage.instructions:
            if meter is not None:  # what the step before used (the first: the base image's pull)
                meter.log()
            self._say_step(ins)
            self._instruction(state, ins)
        self._flush_workdirs(state, stage)
        if state.container is not None:
            self._commit_step(state, squash_all=last and options.squash_all)
        elif last and options.squash_all and state.image is not None:
            self._working_container(state)  # squash-all of a stage that changed no files: still one layer
            self._commit_step(state, squash_all=True)
        if state.history:  # config-only steps after the last layer
            state.doc = _copy.deepcopy(state.doc)
            state.doc.setdefault("history", []).extend(self._history_entries(state))
            state.history = []
        res = StageResult(state.image, state.doc, state.key, stage, state.annotations)
        self.results[stage.index] = res
        return res

    def _stage_platform(self, stage: Stage):
        """The platform a stage's base is for: FROM --platform (its ARGs expanded), else the
        build's --platform, else None (the host's)."""
        if stage.platform:
            from ..oci.platform import Platform

            text = expand(stage.platform, self.global_args, self.dockerfile.escape)
            try:
                return Platform.parse(text)
            except PalletError as e:
                raise stage.from_instr.error(f"FROM --platform={text}: {e}") from None
        return self.options.platform

    # -- instructions ------------------------------------------------------------------------

    def env_of(self, state: StageState) -> dict:
        """What variables expand to here: ARGs in scope, overridden by ENV."""
        env = {k: v for k, v in state.args.items() if v is not None}
        env.update(config_edit.env_dict(state.doc.get("config") or {}))
        return env

    def expand_word(self, state: StageState, ins: Instruction, word: str) -> str:
        used: set = set()
        env = self.env_of(state)
        try:
            v = expand(word, env, self.dockerfile.escape, used)
        except BuildError as e:
            raise ins.error(str(e)) from None
        self.check_used(state, ins, used, env)
        return v

    def check_used(self, state, ins: Instruction, used: set, env: dict) -> None:
        for name in used:
            if name not in env and name in state.later_args and state.later_args[name] > ins.line:
                raise ins.error(f"${name} is used before its ARG instruction (line {state.later_args[name]})")

    def _instruction(self, state: StageState, ins: Instruction) -> None:
        if ins.cmd in ("RUN", "COPY", "ADD"):
            try:
                if ins.cmd == "RUN":
                    run_step(self, state, ins)
                else:
                    copy_step(self, state, ins, add=ins.cmd == "ADD")
            except BuildError:
                raise
            except PalletError as e:  # the store changed under the step (a concurrent prune): say where
                raise BuildError(f"{ins.where()}: {ins.cmd}: {e}", getattr(e, "exit_code", None)) from None
            return
        apply_config_instruction(self, state, ins)

    # -- filesystem steps ----------------------------------------------------------------------

    def _working_container(self, state: StageState):
        """The working container for a filesystem step (made on the current image)."""
        from . import working

        if state.container is None:
            state.container = working.BuilderContainer.create(self.store, None, image_rec=state.image, config=state.doc,
                                                     name=f"pallet-build-{os.urandom(6).hex()}", owner=self.owner)
            self.working = state.container
            state.root = state.container.mount()
        return state.container

    def fs_step(self, state: StageState, ins: Instruction, key: str, do, created_by: str, prepare=None) -> None:
        """Run ``do(root)`` in a working container as one build step (cached in layers mode);
        ``prepare()``, when the step is not a cache hit, first (before the container is made)."""
        if not state.single:
            hit = self.cache.get(key)
            if hit is not None and state.container is None:
                img, doc = hit
                state.image, state.doc = img, doc
                state.key = key
                state.history = []
                state.workdirs = []
                if not self.options.quiet:
                    self.options.out("--> Using cache " + (img["id"] if img else "(empty)"))
                self.cache.share(key, img)  # --cache-to: what this store has, the remote may lack
                return
        if prepare is not None:
            prepare()
        self._working_container(state)
        self._make_workdirs(state)
        do(state.root)
        state.history.append({"created_by": created_by})
        state.key = key
        if not state.single:
            self._commit_step(state)
            self.cache.put(key, state.image, state.doc)

    def _make_workdirs(self, state: StageState) -> None:
        """The WORKDIR directories that do not exist yet, each component made (by mkdirat,
        inside the root: :mod:`pallet._rootfs`) owned by the USER in force at its WORKDIR
        instruction."""
        from .. import _rootfs
        from ._paths import lookup_user

        root_fd = _rootfs.open_root(state.root)
        try:
            for w, user in state.workdirs:
                if _is_dir_in_root(state.root, w):
                    continue
                uid, gid = lookup_user(state.root, user)[:2] if user else (0, 0)
                try:
                    os.close(_rootfs.mkdir_all_in_root(root_fd, w, 0o755, owner=(uid, gid)))
                except OSError as e:
                    raise BuildError(f"WORKDIR {w}: cannot create it: {e.strerror}") from None
        finally:
            os.close(root_fd)
        state.workdirs = []

    def _flush_workdirs(self, state: StageState, stage: Stage) -> None:
        if not state.workdirs:
            return
        if state.container is None and not state.single:
            key = step_key(state.key, "workdirs", state.workdirs)
            hit = self.cache.get(key)
            if hit is not None:
                state.image, state.doc = hit
                state.key = key
                state.workdirs = []
                state.history = []
                return
            self._working_container(state)
            if all(_is_dir_in_root(state.root, w) for w, _ in state.workdirs):
                # every directory is there already: no layer (an empty one was made before)
                b = state.container
                b.umount()
                b.remove()
                if self.working is b:
                    self.working = None
                state.container = state.root = None
                state.workdirs = []
                return
            self._make_workdirs(state)
            state.key = key
            self._commit_step(state, empty_ok=True)
            self.cache.put(key, state.image, state.doc)
            return
        self._working_container(state)
        self._make_workdirs(state)

    def _history_entries(self, state: StageState, layer: bool = False) -> list[dict]:
        created = _image.timestamp(self.epoch)
        out = []
        for h in state.history:
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

    def _commit_step(self, state: StageState, empty_ok: bool = False, squash_all: bool = False) -> None:
        """Commit the working container as one layer on the current image; it becomes current."""
        from .working import commit_layer

        b = state.container
        b.umount()
        state.root = None
        layer = commit_layer(self.store, b, state.image, self.epoch, squash=squash_all)
        base_layers = list(state.image["layers"]) if state.image and not squash_all else []
        doc = _copy.deepcopy(state.doc)
        created = _image.timestamp(self.epoch)
        hist = doc.setdefault("history", [])
        if squash_all:
            hist.clear()
        entries = self._history_entries(state, True)
        nonempty = [e for e in entries if not e.get("empty_layer")]
        if state.single and state.history:
            # a stage committed once (no --layers, --squash): every instruction keeps its entry, in
            # order, and the last one owns the layer (buildah's layout)
            for e in entries:
                e["empty_layer"] = True
            del entries[-1]["empty_layer"]
        elif len(nonempty) > 1:  # non-empty entries beyond the one that owns the layer are folded into it
            entries = [e for e in entries if e.get("empty_layer") or e is nonempty[-1]]
        hist.extend(entries)
        doc["created"] = created
        # buildah commits a stage built without --layers only when it is the last or a later
        # stage's base: the store's debug line for it waits until a FROM uses it
        log = not state.single or self.stage_last
        rec = _image.write_image(self.store, doc, base_layers + [layer["id"]], self.options.fmt, log=log)
        if not log:
            self.unlogged_images.add(rec["id"])
        self.made_images.append(rec["id"])
        state.image = rec
        state.doc = doc
        state.history = []
        b.remove()
        if self.working is b:
            self.working = None
        state.container = None

    def from_mount(self, text: str, ins: Instruction, state):
        """A read-only mount of a previous stage's files or of an image (for --from)."""
        from .working import ensure_image

        name = text.lower()
        if text.isdigit() and int(text) < len(self.dockerfile.stages):
            name = self.dockerfile.stages[int(text)].name or ""  # a stage by number is its name's context too
        extra = self.options.build_contexts.get(name) if name and not name.isdigit() else None
        if extra is not None:
            kind, value = extra
            if kind == "url":
                kind, value = "dir", self._fetch_remote(value)
            if kind == "dir":
                from .stage import DirContext

                return DirContext(value)
            text = value  # an image: pulled as FROM's are
        idx = self.stage_index(text) if extra is None else None
        if idx is not None:
            if idx not in self.results:  # this stage itself, or a later one
                raise ins.error(f"COPY --from={text}: no stage or image found with that name "
                                "(the stage is not a previous one)")
            res = self.results[idx]
            return ImageMount(self.store, res.image, res.key, self.owner)
        try:
            img = ensure_image(self.store, text, self.options.pull, self.options.ctx)
        except PalletError as e:
            raise ins.error(f"{ins.cmd} --from={text}: no stage or image found with that name: {e}") from None
        return ImageMount(self.store, img, img["id"], self.owner)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self, res: StageResult) -> dict:
        options = self.options
        doc = _copy.deepcopy(res.doc)
        cfg = doc.setdefault("config", {})
        if options.labels:
            labels = cfg.get("Labels") or {}
            labels.update(options.labels)
            cfg["Labels"] = labels
        if options.platform is not None:  # the image is for the target platform, whatever its base's
            p = options.platform
            doc["os"], doc["architecture"] = p.os, p.architecture
            if p.variant:
                doc["variant"] = p.variant
            else:
                doc.pop("variant", None)
        if options.os_version is not None:
            doc["os.version"] = options.os_version
        if options.os_features:
            feats = list(doc.get("os.features") or [])
            for f in options.os_features:
                if f.endswith("-"):
                    feats = [x for x in feats if x != f[:-1]]
                elif f not in feats:
                    feats.append(f)
            if feats:
                doc["os.features"] = feats
            else:
                doc.pop("os.features", None)
        for e in options.env:
            k, _, v = e.partition("=")
            config_edit.set_env(cfg, k, v)
        for k in options.unsetenv:
            config_edit.unset_env(cfg, k)
        if options.omit_history:
            doc["history"] = []
        if options.fmt == "oci":
            for k in ("Healthcheck", "OnBuild", "Shell"):  # buildah's warnings, word for word
                if cfg.get(k) and not options.quiet:
                    what = "will be ignored" if k == "Healthcheck" else f"{_go_list(cfg[k])} will be ignored"
                    options.warn(f"{k.upper()} is not supported for OCI image format, {what}. "
                                 "Must use `docker` format")
        created = _image.timestamp(self.epoch)
        doc["created"] = created
        keep = False
        if res.image is not None:
            # the image holding the stage's files already says all this (the last step's, cached
            # or committed, or a base nothing changed): it is the image, as buildah's last step
            # commit is, not a copy with another creation time
            try:
                prev = _image.load_config(self.store, res.image)
            except PalletError:
                prev = None
            if prev is not None and prev.get("created") and \
                    {k: v for k, v in prev.items() if k not in ("created", "rootfs")} == \
                    {k: v for k, v in doc.items() if k not in ("created", "rootfs")}:  # (same layers)
                doc["created"] = prev["created"]
                # a named image (a base) keeps its own manifest, unless --annotation asks for another
                keep = bool(res.image.get("names")) and not options.annotations
        # the image's own edits (--label, --env, ...) are a cached step too, as buildah's last
        # commit is: the same edits on the same stage give the same image again
        fkey = step_key(res.key, "finish", _timeless(doc), options.fmt)
        hit = self.cache.get(fkey, remote=False) if res.image is not None and doc["created"] == created else None
        if hit is not None and hit[0] is not None and hit[1].get("created") and _timeless(hit[1]) == _timeless(doc):
            doc = hit[1]  # its times too (the config steps' history entries)
            cfg = doc.setdefault("config", {})
        layers = list(res.image["layers"]) if res.image else []
        if not options.quiet:
            options.out("COMMIT " + (" ".join(options.tags) if options.tags else ""))
        if keep:  # a base nothing changed is the image: named, as buildah
            rec = self.store.tag(res.image["id"], options.tags) if options.tags else self.store.image(res.image["id"])
        else:
            rec = _image.write_image(self.store, doc, layers, options.fmt, options.tags,
                                     {**res.annotations, **options.annotations}, keep_digest=keep)
            if res.image is not None:
                self.cache.put(fkey, rec, doc)
        if rec["id"] in self.made_images:
            self.made_images.remove(rec["id"])
        if not options.quiet:
            options.out(f"--> {rec['id'][:11]}")
            for t in rec["names"]:
                options.out(f"Successfully tagged {t}")
        if options.iidfile:
            from .. import _fs

            _fs.write_output(options.iidfile, ("sha256:" + rec["id"]).encode(), what="--iidfile")
        return rec

    def _output(self, rec: dict) -> None:
        if not self.options.output:
            return
        export(self.store, rec, self.options.output, self.options.ctx, owner=self.owner)


def _timeless(doc: dict) -> dict:
    """An image config without its creation times (its own and its history entries')."""
    out = {k: v for k, v in doc.items() if k != "created"}
    if isinstance(out.get("history"), list):
        out["history"] = [{k: v for k, v in h.items() if k != "created"} if isinstance(h, dict) else h
                          for h in out["history"]]
    return out


def _go_list(v) -> str:
    """A list as Go's %v prints it: ``[/bin/bash -c]``."""
    return "[" + " ".join(str(x) for x in v) + "]" if isinstance(v, list) else str(v)


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


def build(store, options: BuildOptions) -> dict:
    return DockerfileBuild(store, options).run()
