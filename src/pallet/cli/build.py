"""``pallet build`` / ``pallet bud`` (a Dockerfile build) and ``pallet builder ...`` (buildah's
working-container verbs: from, mount, umount, run, copy, add, config, commit, containers, rm).

Exit codes follow buildah/podman: 125 when pallet fails; a RUN that fails exits with the
command's own status.
"""

from __future__ import annotations

import os
import sys

from . import common

BUILD_EXIT = {"default": 125}

VERBS = ("build", "bud", "builder", "buildx")


def _podman(p):
    p.usage_exit = 125
    p.set_defaults(exit_map=BUILD_EXIT, usage_exit=125)
    return p


def _store(args):
    from .store import open_store

    return open_store(args)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def register(sub, only: str | None = None) -> None:
    for name in ("build", "bud"):
        if only in (None, name):
            _build_parser(sub, name)
    if only in (None, "builder"):
        _builder_group(sub)
    if only in (None, "buildx"):  # podman's `buildx build`: an alias of build
        bx = _podman(sub.add_parser("buildx", help="podman's alias: buildx build is build"))
        bsub = bx.add_subparsers(dest="buildx_verb", metavar="COMMAND", parser_class=type(bx))
        bsub.required = True
        p = _build_parser(bsub, "build")
        p.add_argument("--load", action="store_true", help="accepted: the image goes to the store either way")


def _add_pull_flags(p) -> None:
    p.add_argument("--pull", nargs="?", const="always", default="missing", metavar="POLICY",
                   choices=("missing", "always", "never", "newer", "ifmissing", "ifnewer", "true", "false"),
                   help="missing (default), always or never")
    p.add_argument("--pull-always", action="store_const", const="always", dest="pull")
    p.add_argument("--pull-never", action="store_const", const="never", dest="pull")
    p.add_argument("--authfile", metavar="PATH")
    p.add_argument("--signature-policy", metavar="PATH", help="trust policy for the images pulled (default: "
                   "the global --policy, else containers-policy.json's locations)")
    common.add_registry_flags(p)


def _build_parser(sub, name: str):
    p = _podman(sub.add_parser(name, help="build an image from a Dockerfile/Containerfile"))
    p.add_argument("context", nargs="*", default=[], metavar="CONTEXT")
    p.add_argument("--file", "-f", action="append", default=[], metavar="FILE",
                   help="the Dockerfile (default CONTEXT/Containerfile or Dockerfile); several are read as one, "
                        "in order")
    p.add_argument("--tag", "-t", action="append", default=[], metavar="NAME")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME[=VALUE]")
    p.add_argument("--target", metavar="STAGE")
    p.add_argument("--layers", type=common.tls_verify_arg, nargs="?", const=True, default=None, metavar="BOOL",
                   help="cache every step as a layer (default: $BUILDAH_LAYERS, else true for build (podman's "
                        "default), false for bud (buildah's))")
    p.add_argument("--no-cache", action="store_true", help="do not use cached steps")
    p.add_argument("--squash", action="store_true", help="squash the new layers into one (bud, as buildah: every layer, as --squash-all)")
    p.add_argument("--squash-all", action="store_true", help="squash every layer, the base's too, into one")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=PATH")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="HOST:CONTAINER[:OPTS]")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--hooks-dir", action="append", default=[], metavar="DIR",
                   help="OCI hooks (JSON, schema 1.0.0) for the RUN steps, as buildah reads them")
    p.add_argument("--manifest", metavar="LIST",
                   help="add the image to this manifest list in the store (created if missing)")
    p.add_argument("--format", default=None, choices=("oci", "docker"))
    p.add_argument("--timestamp", type=int, default=None, metavar="SECONDS")
    p.add_argument("--output", "-o", metavar="OUTPUT", help="type=local,dest=DIR | type=tar,dest=FILE | TRANSPORT:REF")
    p.add_argument("--quiet", "-q", type=common.tls_verify_arg, nargs="?", const=True, default=False, metavar="BOOL")
    p.add_argument("--runtime", metavar="NAME|PATH", help="OCI runtime for RUN (default pallet-runtime, else runc)")
    p.add_argument("--network", "--net", default=None, metavar="MODE",
                   help="for RUN: private (the default as root: the default network, outbound access), "
                        "host, none or a network's name")
    p.add_argument("--network-config-dir", metavar="DIR", help="as for pallet network")
    p.add_argument("--iidfile", metavar="FILE")
    p.add_argument("--scan", nargs="?", const="", metavar="POLICY", type=_scan_policy,
                   help="scan the image before tagging it; refuse it when the (scan) policy fails (docs/scan.md)")
    p.add_argument("--rm", type=common.tls_verify_arg, nargs="?", const=True, default=True, metavar="BOOL")
    p.add_argument("--force-rm", type=common.tls_verify_arg, nargs="?", const=True, default=True, metavar="BOOL")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT][,...]",
                   help="the platform to build for: bases pulled for it, TARGETPLATFORM & co., the image's config; "
                        "several (comma-separated): one build each, collected by --manifest")
    p.add_argument("--all-platforms", action="store_true",
                   help="not supported yet: list the platforms with --platform")
    p.add_argument("--os", metavar="OS", help="as --platform, the OS alone")
    p.add_argument("--arch", metavar="ARCH", help="as --platform, the architecture alone")
    p.add_argument("--variant", metavar="VARIANT", help="as --platform, the variant alone")
    p.add_argument("--from", dest="from_image", metavar="IMAGE", help="the first stage's base instead of its FROM's")
    p.add_argument("--log-rusage", action="store_true",
                   help="print the resources used by each instruction (buildah's lines; none with --quiet)")
    p.add_argument("--rusage-logfile", metavar="FILE", help="write --log-rusage's lines to FILE (emptied first)")
    p.add_argument("--os-version", metavar="VERSION", help="the image config's os.version")
    p.add_argument("--os-feature", action="append", default=[], metavar="FEATURE[-]",
                   help="add to the image config's os.features (FEATURE- removes it)")
    p.add_argument("--cpp-flag", action="append", default=[], metavar="FLAG",
                   help="a flag for cpp, which preprocesses a Containerfile named *.in")
    p.add_argument("--build-context", action="append", default=[], metavar="NAME=DIR|docker-image://IMAGE",
                   help="an additional context for FROM NAME, COPY --from=NAME, RUN --mount=from=NAME "
                        "(it wins over a stage of that name)")
    p.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                   help="set in the image's config (NAME alone: this process's value)")
    p.add_argument("--unsetenv", action="append", default=[], metavar="NAME",
                   help="remove from the image's config (after --env)")
    p.add_argument("--omit-history", type=common.tls_verify_arg, nargs="?", const=True, default=False,
                   metavar="BOOL", help="write no history entries in the image")
    p.add_argument("--identity-label", type=common.tls_verify_arg, nargs="?", const=True, default=True,
                   metavar="BOOL", help="accepted for buildah: pallet writes no io.buildah.version label either way")
    p.add_argument("--ignorefile", metavar="FILE", help="the ignore rules (default: .containerignore, .dockerignore)")
    p.add_argument("--logfile", metavar="FILE", help="write the build's output to FILE instead of stdout/stderr")
    p.add_argument("--logsplit", action="store_true",
                   help="with --logfile: one file per platform, FILE_OS_ARCH (buildah's)")
    p.add_argument("--stdin", action="store_true", help="pass stdin to RUN steps")
    p.add_argument("--skip-unused-stages", type=common.tls_verify_arg, nargs="?", const=True, default=True,
                   metavar="BOOL", help="build only the stages the target needs (default true)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="accepted for buildah: stages are built one after another")
    p.add_argument("--isolation", metavar="TYPE", default=os.environ.get("BUILDAH_ISOLATION") or None,
                   choices=("oci", "chroot", "rootless"),
                   help="accepted for buildah: RUN steps always run under the OCI runtime; chroot shares the "
                        "host's PID namespace and allows only host networking, as buildah's")
    p.add_argument("--compress", action="store_true", help="accepted for docker build: a no-op, as in buildah")
    p.add_argument("--cache-ttl", type=common.duration_arg, default=None, metavar="DURATION",
                   help="use cached steps built at most this long ago (0: as --no-cache), e.g. 30m, 1h")
    p.add_argument("--cache-from", metavar="REPOSITORY",
                   help="with --layers: look for the steps the store lacks in this registry repository")
    p.add_argument("--cache-to", metavar="REPOSITORY",
                   help="with --layers: push each step's image to this registry repository (REPOSITORY:KEY)")
    common.add_retry_flags(p)
    p.add_argument("--retry", dest="retry_times", type=int, metavar="N", help="as --retry-times (buildah)")
    # what every RUN step gets (buildah's resource and security flags)
    p.add_argument("--cpu-shares", "-c", nargs="?", const="", metavar="SHARES")
    p.add_argument("--cpu-period", type=int, metavar="MICROSECONDS")
    p.add_argument("--cpu-quota", type=int, metavar="MICROSECONDS")
    p.add_argument("--cpuset-cpus", metavar="CPUS")
    p.add_argument("--cpuset-mems", metavar="NODES")
    p.add_argument("--memory", "-m", metavar="SIZE")
    p.add_argument("--memory-swap", metavar="SIZE|-1")
    p.add_argument("--shm-size", metavar="SIZE")
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP[,CAP...]")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP[,CAP...]")
    p.add_argument("--security-opt", action="append", default=[], metavar="seccomp=PATH|no-new-privileges|...")
    p.add_argument("--device", action="append", default=[], metavar="HOST[:CONTAINER][:PERMS]")
    p.add_argument("--dns", action="append", default=[], metavar="IP")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    p.add_argument("--dns-option", action="append", default=[], metavar="OPTION")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP")
    p.add_argument("--no-hosts", action="store_true", help="do not bind an /etc/hosts into RUN steps")
    p.add_argument("--cgroup-parent", metavar="PATH")
    p.add_argument("--cgroupns", metavar="private|host")
    p.add_argument("--pid", metavar="private|host")
    p.add_argument("--ipc", metavar="private|host")
    p.add_argument("--uts", metavar="private|host")
    p.add_argument("--runtime-flag", action="append", default=[], metavar="FLAG",
                   help="a global flag for the runtime (debug -> --debug)")
    _add_pull_flags(p)
    p.set_defaults(func=cmd_build)
    return p


def _build_args(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            if k not in os.environ:
                continue
            v = os.environ[k]
        out[k] = v
    return out


def _secrets(items: list[str]) -> dict:
    from ..errors import UsageError

    out = {}
    for it in items:
        opts = common.key_values(it.split(","), "--secret")
        sid = opts.get("id")
        if not sid:
            raise UsageError(f"invalid --secret {it!r}: want id=ID,src=PATH")
        typ = opts.get("type")
        if typ not in (None, "file", "env"):
            raise UsageError(f"invalid --secret {it!r}: type must be file or env")
        src = opts.get("src") or opts.get("source")
        # buildah's rules: env=NAME, or type=env with src=NAME, is a variable; src=PATH a file;
        # id=ID alone is the variable ID when it is set, else the file ID
        var = opts.get("env") or (src or sid if typ == "env" else None)
        if var is None and src is None and typ is None and sid in os.environ:
            var = sid
        if var is not None:
            if var not in os.environ:
                raise UsageError(f"--secret {it}: the environment variable {var} is not set")
            # a file only this process holds, in memory (a RUN step's secret mount copies it):
            # nothing on disk to remove, even when the build is killed
            fd = os.memfd_create("pallet-secret-env", os.MFD_CLOEXEC)
            view = memoryview(os.environ[var].encode())
            while view:
                view = view[os.write(fd, view):]
            out[sid] = f"/proc/self/fd/{fd}"
            continue
        src = src or sid
        if not os.path.isfile(src):
            raise UsageError(f"--secret {it}: {src} is not a file (want id=ID,src=PATH or id=ID,env=NAME)")
        out[sid] = src
    return out


def _own_exit(fn):
    """A failing RUN exits with the command's status (buildah's behaviour), not 125."""
    def wrapped(args) -> int:
        from ..errors import BuildError

        try:
            return fn(args)
        except BuildError as e:
            if e.exit_code == 125:
                raise
            print(f"Error: {e}", file=sys.stderr)
            return e.exit_code

    return wrapped


def _run_extras(args):
    """The RUN steps' resources and security from build's flags (checked: UsageError)."""
    from ..builder.run import run_extras
    from ..errors import UsageError

    network = args.network
    if args.isolation == "chroot":
        if network not in (None, "host", "default"):
            raise UsageError("cannot set --network other than host with --isolation chroot")
        args.network = network = "host"  # buildah's chroot isolation makes no network namespace
    pid = args.pid
    if args.isolation == "chroot" and pid in (None, "private"):
        pid = "host"  # buildah's chroot isolation makes no PID namespace
    shares = args.cpu_shares
    if shares is not None:
        if not shares.isdigit():  # buildah's (pflag's) wording, which scripts match
            raise UsageError(f'invalid argument "{shares}" for "-c, --cpu-shares" flag: strconv.ParseUint: '
                             f'parsing "{shares}": invalid syntax')
        shares = int(shares)
    return run_extras(cpu_shares=shares, cpu_period=args.cpu_period, cpu_quota=args.cpu_quota,
                      cpuset_cpus=args.cpuset_cpus, cpuset_mems=args.cpuset_mems, memory=args.memory,
                      memory_swap=args.memory_swap, shm_size=args.shm_size, ulimits=args.ulimit,
                      cap_add=args.cap_add, cap_drop=args.cap_drop, devices=args.device, dns=args.dns,
                      dns_search=args.dns_search, dns_options=args.dns_option, add_hosts=args.add_host,
                      no_hosts=args.no_hosts, network=network, cgroup_parent=args.cgroup_parent, pid=pid,
                      ipc=args.ipc, uts=args.uts, cgroupns=args.cgroupns, security_opts=args.security_opt,
                      runtime_flags=list(getattr(args, "global_runtime_flags", None) or ()) + args.runtime_flag, hooks_dirs=args.hooks_dir)


def _build_contexts(items: list[str]) -> dict:
    """``--build-context NAME=VALUE``: an image (``docker-image://``, ``docker://``,
    ``container-image://``), a URL or git repository (as the build's context), or a local
    directory."""
    from ..errors import UsageError

    out = {}
    for it in items:
        name, sep, value = it.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"invalid --build-context {it!r}: want NAME=VALUE")
        for prefix in ("docker-image://", "container-image://", "docker://"):
            if value.startswith(prefix):
                out[name] = ("image", value[len(prefix):])
                break
        else:
            if value.startswith(("http://", "https://", "git://", "github.com/")):
                out[name] = ("url", value)  # fetched when a step first uses it
                continue
            if not os.path.isdir(value):
                raise UsageError(f"--build-context {it}: {value} is not a directory")
            out[name] = ("dir", os.path.abspath(value))
    return out


def _platforms(args) -> list:
    """``--platform`` (comma-separated: several builds), ``--os``/``--arch``/``--variant``: a
    ``Platform`` per build ([None]: none given)."""
    if not args.platform or "," not in args.platform:
        return [_platform(args, args.platform)]
    texts = [t.strip() for t in args.platform.split(",") if t.strip()]
    out = []
    for t in texts:
        p = _platform(args, t)
        if p not in out:
            out.append(p)
    return out


def _platform(args, text: str | None):
    """One platform from ``text`` and ``--os``/``--arch``/``--variant`` (None: none given)."""
    from ..errors import UsageError
    from ..oci.platform import Platform, host

    if not (text or args.os or args.arch or args.variant):
        return None
    p = host()
    if text:
        parts = text.split("/")
        if len(parts) == 3 and not parts[2]:  # "linux/amd64/": no variant
            parts = parts[:2]
        if len(parts) in (2, 3) and not all(parts[:2]):  # "windows/" or "/arm": the host's for the empty part
            parts = [parts[0] or p.os, parts[1] or p.architecture] + parts[2:]
        p = Platform.parse("/".join(parts))
    if args.os or args.arch or args.variant:
        p = Platform(args.os or p.os, args.arch or p.architecture,
                     args.variant if args.variant is not None else ("" if args.arch else p.variant)).normalized()
    for what, v in (("os", p.os), ("architecture", p.architecture), ("variant", p.variant)):
        if v and (not all(c.isalnum() or c in "._-" for c in v)):
            raise UsageError(f"invalid {what} {v!r}")
    return p


def _rusage_file(path: str):
    """``--rusage-logfile FILE``: a line writer to FILE, emptied first as buildah opens it
    (``O_TRUNC``). Found as every user-named output file is (``_fs.output_target``): a symlink
    is followed to its target, one another user planted in a sticky directory refused; a FIFO,
    device or socket is written in place, never replaced. Lines go out as they come."""
    from .._fs import output_target
    from ..errors import UsageError

    try:
        target, stream = output_target(path)
        if stream:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise UsageError(f"--rusage-logfile {path}: {e.strerror}") from None

    def write(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    return write


def _env_items(items: list[str]) -> list[str]:
    out = []
    for it in items:
        k, sep, v = it.partition("=")
        if not k:
            from ..errors import UsageError

            raise UsageError(f"invalid --env {it!r}: want NAME[=VALUE]")
        out.append(f"{k}={v if sep else os.environ.get(k, '')}")
    return out


@_own_exit
def cmd_build(args) -> int:
    import signal

    from ..errors import UsageError

    # a build started in the background by a script (`pallet build ... &`) inherits SIGINT
    # ignored (POSIX shells do that to asynchronous commands), and Python keeps it ignored:
    # kill -INT would leave the build running. buildah (Go's signal.Notify) takes SIGINT
    # whatever it inherited, and so does a build here: interrupted, it stops its RUN step and
    # leaves nothing behind (exit 130)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.logsplit and not args.logfile:  # buildah's words
        raise UsageError("cannot use --logsplit without --logfile")
    if args.all_platforms:
        raise UsageError("--all-platforms (every platform the base images have) is not supported yet: "
                         "give them with --platform OS/ARCH,OS/ARCH...")
    if args.logfile and not args.logsplit:
        return _with_logfile(args, args.logfile, lambda: _build(args))
    return _build(args)


def _with_logfile(args, path: str, fn) -> int:
    """``--logfile FILE``: the build's output (steps, RUN output, errors) goes to FILE (written
    as every user-named output file: a regular file replaced whole at the end, a FIFO or
    device in place): ``fn()`` runs with stdout and stderr there."""
    from .._fs import output_file
    from ..errors import PalletError

    try:
        cm = output_file(path)
        f = cm.__enter__()
    except OSError as e:
        raise PalletError(f"--logfile {path}: cannot write: {e.strerror}") from None
    saved = os.dup(1), os.dup(2)
    ok = False
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            rc = fn()
        except PalletError as e:  # the error goes to the log file too, as buildah's
            print(f"Error: {e}", file=sys.stderr)
            rc = getattr(e, "exit_code", 125) or 125
        ok = True
        return rc
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        if ok:
            cm.__exit__(None, None, None)
        else:
            cm.__exit__(*sys.exc_info())


def _build(args) -> int:
    from ..builder.executor import BuildOptions, build
    from ..errors import PalletError, UsageError

    if args.authfile and not os.path.exists(args.authfile):  # buildah's and podman's words
        raise UsageError(f"checking authfile: stat {args.authfile}: no such file or directory")
    if args.output == "-":  # buildah's short form of a tar on stdout
        args.output = "type=tar,dest=-"
    if len(args.context) > 1:  # buildah's (cobra's) wording
        raise UsageError(f"accepts at most 1 arg(s), received {len(args.context)}")
    args.context = args.context[0] if args.context else "."

    if args.layers is None:  # buildah's $BUILDAH_LAYERS, else podman's default (build) or buildah's (bud)
        env = os.environ.get("BUILDAH_LAYERS", "").strip().lower()
        args.layers = env in ("1", "true", "t") if env else args.verb != "bud"
    if args.verb == "bud" and args.squash:  # buildah's --squash: every layer, the base's too (podman's --squash-all)
        args.squash, args.squash_all = False, True
    fmt = args.format or os.environ.get("BUILDAH_FORMAT") or "oci"
    from .._log import debug

    if args.cache_ttl == 0:  # buildah's debug lines, which scripts grep
        debug("Setting --no-cache=true since --cache-ttl was set to 0s which effectively means user wants to "
              "ignore cache")
    if args.debug or args.log_level in ("debug", "trace"):
        from ..containers.procs import go_duration

        delay = args.retry_delay if args.retry_delay is not None else 2.0
        debug(f"Setting MaxPullPushRetries to {args.retry_times} and PullPushRetryDelay to "
              f"{go_duration(round(delay * 1e9))}")
    text = None
    scan = args.scan is not None
    if scan and args.output:
        from ..errors import UsageError

        raise UsageError("--scan scans an image in the store: it cannot be used with --output")
    if args.scan:
        from ..scan.policy import load

        load(args.scan)  # a bad policy file is said before anything is built
    files = args.file
    args.file = files[0] if files else None
    if args.file == "-":
        text = sys.stdin.read()
    if args.output:
        from ..builder.export import parse_output

        parse_output(args.output)  # a bad --output is said before anything is built
    commit_to = None  # buildah's: a first tag with a transport (dir:, oci:, docker://) is where the image goes
    if args.tag and _transport_tag(args.tag[0]):
        commit_to = args.tag.pop(0)
        from ..images.refs import parse_reference

        try:
            parse_reference(commit_to)
        except PalletError as e:
            raise UsageError(f"tag {commit_to}: {e}") from None
    for t in args.tag:  # and a bad tag (buildah's words)
        from ..errors import InvalidReference
        from ..storage.names import qualify

        try:
            qualify(t)
        except InvalidReference as e:
            why = str(e).split("': ", 1)[-1]
            raise UsageError(f"tag {t}: invalid reference format: {why}") from None
    extras = _run_extras(args)  # first: chroot isolation settles --network
    platforms = _platforms(args)
    several = len(platforms) > 1
    if several and args.iidfile:  # buildah's words
        raise UsageError(f"building multiple images, but iidfile {args.iidfile!r} can only be used to store one "
                         "image ID")
    if commit_to and (several or scan or args.manifest or args.output):
        raise UsageError(f"tag {commit_to}: a tag with a transport cannot be used with several platforms, --scan, "
                         "--manifest or --output")
    if several and (scan or args.output or args.context == "-"):
        raise UsageError("--scan, --output and a context on stdin build one image: give one --platform")
    from ..builder.remote_cache import repository

    cache_from = repository(args.cache_from, "--cache-from") if args.cache_from else None
    cache_to = repository(args.cache_to, "--cache-to") if args.cache_to else None
    secrets = _secrets(args.secret)
    contexts = _build_contexts(args.build_context)
    store = _store(args)
    if args.manifest:  # a bad list name is said before anything is built
        from ..storage.names import qualify

        qualify(args.manifest)

    # opened (and emptied) once for every platform's build
    rusage_out = _rusage_file(args.rusage_logfile) if args.rusage_logfile and args.log_rusage and not args.quiet \
        else None

    def options(platform, say):
        return BuildOptions(
            args.context, dockerfile=args.file, dockerfile_text=text, tags=[] if scan else args.tag,
            more_dockerfiles=files[1:],
            build_args=_build_args(args.build_arg), target=args.target, layers=args.layers, no_cache=args.no_cache,
            squash=args.squash, squash_all=args.squash_all, secrets=secrets, volumes=args.volume,
            labels=common.key_values(args.label, "--label"),
            annotations=common.key_values(args.annotation, "--annotation"), fmt=fmt,
            timestamp=args.timestamp, output=args.output, quiet=args.quiet, pull=args.pull,
            ctx=common.context(args), runtime=args.runtime, network=args.network,
            network_config_dir=args.network_config_dir,
            out=(lambda line: sys.stderr.write(line + "\n")) if args.output in ("type=tar,dest=-", "-") else say,
            iidfile=None if scan else args.iidfile, rm=args.rm,
            stdout=sys.stderr.fileno() if args.output and args.output.endswith("dest=-") else
            (os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) if args.quiet else None),  # -q drops RUN's stdout
            run_extras=extras, stdin=0 if args.stdin else None, env=_env_items(args.env),
            unsetenv=args.unsetenv, omit_history=args.omit_history, ignorefile=args.ignorefile,
            skip_unused_stages=args.skip_unused_stages, build_contexts=contexts,
            platform=platform, cpp_flags=args.cpp_flag,
            context_stream=sys.stdin.buffer if args.context == "-" else None, cache_ttl=args.cache_ttl,
            # buildah 1.28: no resource lines at all with --quiet, not even to --rusage-logfile
            os_version=args.os_version, os_features=args.os_feature, log_rusage=args.log_rusage and not args.quiet,
            from_image=args.from_image, cache_from=cache_from, cache_to=cache_to,
            rusage_out=rusage_out,
            warn=lambda line: (sys.stderr.write(f"WARN {line}\n"), sys.stderr.flush()))

    from ..builder.working import copy_out, image_ids

    known = image_ids(store) if commit_to else set()
    recs = []
    for platform in platforms:
        prefix = f"[{platform}] " if several else ""
        say = (lambda line, prefix=prefix: _say(prefix + line)) if prefix else _say
        if args.logsplit:  # buildah's FILE_OS_ARCH, each platform's output (and error) in its own file
            from ..oci.platform import host

            p = platform or host()
            made: list = []
            rc = _with_logfile(args, f"{args.logfile}_{p.os}_{p.architecture}",
                               lambda: made.append(build(store, options(platform, say))) or 0)
            if rc:
                return rc
            recs.append(made[0])
        else:
            recs.append(build(store, options(platform, say)))
    rec = recs[0]
    if commit_to:  # buildah's: the image goes there; made only for that, it does not stay
        from ..images.refs import parse_reference

        copy_out(store, rec, parse_reference(commit_to, store), common.context(args), known)
    if args.manifest:  # made or changed once every platform's image is there (no partial list)
        from ..images.manifests import ManifestLists

        lists = ManifestLists(store)
        lists.create(args.manifest, amend=True)
        for r in recs:
            lists.add(args.manifest, r["id"])
        if several:  # buildah prints the list's ID then
            rec = lists.find(args.manifest) or rec
    if scan:
        _scan_gate(args, store, rec, args.tag, (lambda line: None) if args.quiet else _say)
        if args.iidfile:
            from .._fs import write_output

            write_output(args.iidfile, ("sha256:" + rec["id"]).encode(), what="--iidfile")
    if args.quiet:
        print(rec["id"])
    elif not (args.output and args.output.endswith("dest=-")):
        print(rec["id"])
    return 0


def _transport_tag(tag: str) -> bool:
    """Does a ``-t`` name a transport other than the store (``dir:``, ``oci:``, ``docker://``)?"""
    from ..images.refs import has_transport
    from ..transports import PARSED_WITH_A_STORE

    return has_transport(tag) and tag.partition(":")[0] not in PARSED_WITH_A_STORE


def _scan_policy(text: str) -> str:
    """``--scan=POLICY``: a policy file; ``--scan WORD`` takes the word only when it is a file
    (so ``build --scan DIR`` and ``builder commit --scan CONTAINER`` keep their positional)."""
    if not os.path.isfile(text):
        from .._std.args import ArgumentTypeError

        raise ArgumentTypeError(f"{text}: no such policy file")
    return text


def _scan_gate(args, store, rec: dict, names: list[str], say) -> None:
    """``--scan[=POLICY]``: the image is named only when the scan passes (cli/scan.py's gate)."""
    from .scan import gate

    gate(store, rec["id"], names, args.scan, common.context(args), say)


# -- builder -------------------------------------------------------------------------------

def _builder_group(sub) -> None:
    b = _podman(sub.add_parser("builder", help="working containers, step by step (buildah's verbs)"))
    bsub = b.add_subparsers(dest="builder_verb", metavar="COMMAND", parser_class=type(b))

    p = _podman(bsub.add_parser("from", help="make a working container from an image (or scratch); prints its name"))
    p.add_argument("image", metavar="IMAGE|scratch")
    p.add_argument("--name", metavar="NAME")
    p.add_argument("--quiet", "-q", action="store_true")
    _add_pull_flags(p)
    p.set_defaults(func=cmd_from)

    p = _podman(bsub.add_parser("mount", help="mount a working container's root filesystem; prints the path"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(func=cmd_mount)

    p = _podman(bsub.add_parser("umount", aliases=["unmount"], help="unmount a working container"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--all", "-a", action="store_true")
    p.set_defaults(func=cmd_umount)

    p = _podman(bsub.add_parser("run", help="run a command in a working container"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs="...", metavar="COMMAND", help="the command and its arguments (options "
                   "after the container name belong to the command)")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="HOST:CONTAINER[:OPTS]")
    p.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--user", metavar="USER[:GROUP]")
    p.add_argument("--workingdir", metavar="DIR")
    p.add_argument("--network", "--net", default=None, metavar="MODE",
                   help="private (the default as root), host, none or a network's name")
    p.add_argument("--network-config-dir", metavar="DIR", help="as for pallet network")
    p.add_argument("--runtime", metavar="NAME|PATH")
    p.set_defaults(func=cmd_run)

    for verb in ("copy", "add"):
        p = _podman(bsub.add_parser(verb, help=f"{verb} files into a working container"))
        p.add_argument("container", metavar="CONTAINER")
        p.add_argument("paths", nargs="+", metavar="SRC... DEST")
        p.add_argument("--chown", metavar="USER[:GROUP]")
        p.add_argument("--chmod", metavar="MODE")
        p.add_argument("--from", dest="from_", metavar="CONTAINER|IMAGE")
        p.add_argument("--quiet", "-q", action="store_true")
        p.set_defaults(func=cmd_copy, add=verb == "add")

    p = _podman(bsub.add_parser("config", help="change a working container's image config"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE (NAME- removes)")
    p.add_argument("--entrypoint", metavar="JSON|COMMAND")
    p.add_argument("--cmd", metavar="JSON|COMMAND")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY=VALUE (KEY- removes)")
    p.add_argument("--annotation", "-a", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workingdir", metavar="DIR")
    p.add_argument("--user", "-u", metavar="USER[:GROUP]")
    p.add_argument("--port", "-p", action="append", default=[], metavar="PORT[/PROTO]")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="PATH (PATH- removes)")
    p.add_argument("--stop-signal", metavar="SIGNAL")
    p.add_argument("--healthcheck", metavar="COMMAND")
    p.add_argument("--healthcheck-interval", metavar="DURATION")
    p.add_argument("--healthcheck-timeout", metavar="DURATION")
    p.add_argument("--healthcheck-retries", type=int, metavar="N")
    p.add_argument("--healthcheck-start-period", metavar="DURATION")
    p.add_argument("--shell", metavar="JSON|COMMAND")
    p.add_argument("--onbuild", action="append", default=[], metavar="INSTRUCTION")
    p.add_argument("--author", metavar="AUTHOR")
    p.add_argument("--created-by", metavar="TEXT")
    p.add_argument("--comment", metavar="TEXT")
    p.add_argument("--os", metavar="OS")
    p.add_argument("--arch", metavar="ARCH")
    p.add_argument("--variant", metavar="VARIANT")
    p.set_defaults(func=cmd_config)

    p = _podman(bsub.add_parser("commit", help="make an image of a working container (in the store, or at a "
                                               "transport reference: docker://..., oci:DIR:TAG, dir:...)"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", nargs="?", metavar="IMAGE|TRANSPORT:REF")
    p.add_argument("--authfile", metavar="PATH")
    common.add_registry_flags(p)
    p.add_argument("--format", "-f", default=None, choices=("oci", "docker"))
    p.add_argument("--squash", action="store_true")
    p.add_argument("--rm", action="store_true", help="remove the working container afterwards")
    p.add_argument("--timestamp", type=int, default=None, metavar="SECONDS")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--iidfile", metavar="FILE")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--scan", nargs="?", const="", metavar="POLICY", type=_scan_policy,
                   help="scan the image before naming it; refuse it when the (scan) policy fails (docs/scan.md)")
    p.set_defaults(func=cmd_commit)

    p = _podman(bsub.add_parser("containers", aliases=["ls", "list"], help="list working containers"))
    p.add_argument("--all", "-a", action="store_true",
                   help="also the store's other containers (a build's steps), with an empty BUILDER column")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--noheading", "-n", action="store_true")
    p.add_argument("--notruncate", action="store_true")
    p.add_argument("--format", metavar="TEMPLATE", help="a Go template over .ContainerID .Builder .ImageID "
                   ".ImageName .ContainerName (table ... adds headers)")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE[,...]",
                   help="id=PREFIX, name=SUBSTRING, ancestor=IMAGE (as buildah's)")
    p.set_defaults(func=cmd_containers)

    p = _podman(bsub.add_parser("rm", aliases=["delete"], help="remove working containers"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--all", "-a", action="store_true")
    p.set_defaults(func=cmd_rm)

    p = _podman(bsub.add_parser("inspect", help="a working container or an image, in buildah's layout (JSON)"))
    p.add_argument("container", metavar="NAME")
    p.add_argument("--type", "-t", choices=("container", "image"), default=None,
                   help="what NAME is (default: a container, else an image, as buildah)")
    p.add_argument("--format", "-f", metavar="TEMPLATE",
                   help="a Go template over buildah's fields (.FromImageID, .OCIv1.Config.Env, "
                        ".Docker.Architecture, ...)")
    p.set_defaults(func=cmd_inspect)


def _get(args, text):
    from ..builder import working

    return working.BuilderContainer.get(_store(args), text)


def cmd_from(args) -> int:
    from ..builder import working

    b = working.BuilderContainer.create(_store(args), args.image, name=args.name, pull=args.pull, ctx=common.context(args))
    print(b.name)
    return 0


def cmd_mount(args) -> int:
    from ..builder import working

    store = _store(args)
    if not args.containers:
        for b in working.BuilderContainer.all(store):
            mp = b.mountpoint()
            if mp:
                print(f"{b.name} {mp}")
        return 0
    for text in args.containers:
        path = working.BuilderContainer.get(store, text).mount()
        print(path if len(args.containers) == 1 else f"{text} {path}")
    return 0


def cmd_umount(args) -> int:
    from ..builder import working

    store = _store(args)
    targets = [working.BuilderContainer.get(store, t) for t in args.containers]
    if args.all:
        targets = working.BuilderContainer.all(store)
    for b in targets:
        b.umount(force=True)
        print(b.id)
    return 0


def cmd_run(args) -> int:
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        from ..errors import UsageError

        raise UsageError("command must be specified")
    b = _get(args, args.container)
    return b.run(cmd, env=args.env, user=args.user, workdir=args.workingdir, network=args.network,
                 volumes=args.volume, runtime=args.runtime, network_config_dir=args.network_config_dir)


def cmd_copy(args) -> int:
    from ..errors import UsageError

    if len(args.paths) < 2:
        raise UsageError(f"{'add' if args.add else 'copy'} needs a source and a destination")
    b = _get(args, args.container)
    b.copy(args.paths[:-1], args.paths[-1], add=args.add, chown=args.chown, chmod=args.chmod, from_=args.from_)
    return 0


def _argv(text: str, shell: list | None = None) -> list:
    from .._std import json

    t = text.strip()
    if t.startswith("["):
        try:
            v = json.loads(t)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
        except ValueError:
            pass
    if not t:
        return []
    return list(shell or ["/bin/sh", "-c"]) + [text]


def cmd_config(args) -> int:
    from ..builder import config_edit as edit
    from ..errors import UsageError

    b = _get(args, args.container)
    doc = b.config
    cfg = doc.setdefault("config", {})

    def error(option):
        return lambda message: UsageError(f"{option}: {message}")

    for e in args.env:
        if e.endswith("-") and "=" not in e:
            edit.unset_env(cfg, e[:-1])
            continue
        k, sep, v = e.partition("=")
        if not sep:
            v = os.environ.get(k, "")
        from ..builder.shell import expand

        edit.set_env(cfg, k, expand(v, edit.env_dict(cfg)) if "$" in v else v, move_last=True)
    if args.shell is not None:
        edit.set_shell(cfg, _argv(args.shell, edit.DEFAULT_SHELL) if args.shell.strip().startswith("[")
                       else args.shell.split())
    if args.entrypoint is not None:
        edit.set_command(cfg, "Entrypoint", _argv(args.entrypoint, cfg.get("Shell")), drop_empty=True)
    if args.cmd is not None:
        edit.set_command(cfg, "Cmd", _argv(args.cmd, None) if args.cmd.strip().startswith("[") else args.cmd.split(),
                         drop_empty=True)
    for lab in args.label:
        if lab.endswith("-") and "=" not in lab:
            edit.unset_label(cfg, lab[:-1])
            continue
        k, _, v = lab.partition("=")
        edit.set_label(cfg, k, v)
    for a in args.annotation:
        k, _, v = a.partition("=")
        b.meta.setdefault("annotations", {})[k] = v
    if args.workingdir is not None:
        edit.set_workdir(cfg, args.workingdir)
    if args.user is not None:
        edit.set_user(cfg, args.user)
    for port in args.port:
        if port.endswith("-"):
            edit.unexpose(cfg, port[:-1])
        else:
            edit.expose(cfg, port, error("--port"))
    for v in args.volume:
        if v.endswith("-"):
            edit.remove_volume(cfg, v[:-1])
        else:
            edit.add_volume(cfg, v, error("--volume"))
    if args.stop_signal is not None:
        edit.set_stop_signal(cfg, args.stop_signal, error("--stop-signal"))
    if args.healthcheck is not None:
        hc = args.healthcheck.strip()
        if not hc:
            edit.set_healthcheck(cfg, None)
        elif hc.upper() == "NONE":
            edit.set_healthcheck(cfg, edit.healthcheck(["NONE"]))
        else:
            if hc.startswith("["):
                test = _argv(hc)
            else:
                kind, _, rest = hc.partition(" ")
                test = ["CMD-SHELL", rest] if kind.upper() == "CMD-SHELL" else (
                    ["CMD"] + rest.split() if kind.upper() == "CMD" else ["CMD-SHELL", hc])
            edit.set_healthcheck(cfg, edit.healthcheck(test))
    if cfg.get("Healthcheck") and cfg["Healthcheck"].get("Test") != ["NONE"]:
        given = edit.healthcheck(cfg["Healthcheck"]["Test"], UsageError, flag_prefix="--healthcheck-",
                                 keep_zero=True, interval=args.healthcheck_interval or None,
                                 timeout=args.healthcheck_timeout or None,
                                 start_period=args.healthcheck_start_period or None,
                                 retries=args.healthcheck_retries)
        cfg["Healthcheck"].update(given)
    for t in args.onbuild:
        edit.add_onbuild(cfg, t)
    if args.author is not None:
        doc["author"] = args.author
    if args.created_by is not None:
        b.meta["created_by"] = args.created_by
    if args.comment is not None:
        b.meta["comment"] = args.comment
    if args.os is not None:
        doc["os"] = args.os
    if args.arch is not None:
        doc["architecture"] = args.arch
    if args.variant is not None:
        doc["variant"] = args.variant
    b.save()
    return 0


def cmd_commit(args) -> int:
    b = _get(args, args.container)
    fmt = args.format or os.environ.get("BUILDAH_FORMAT") or "oci"
    from ..images.refs import has_transport

    kw = dict(fmt=fmt, squash=args.squash, timestamp=args.timestamp, rm=args.rm,
              annotations=common.key_values(args.annotation, "--annotation"), history_comment=b.meta.get("comment"))
    scan = args.scan is not None
    if args.scan:
        from ..scan.policy import load

        load(args.scan)
    if args.image and has_transport(args.image):
        if scan:
            from ..errors import UsageError

            raise UsageError("--scan: committing to a transport reference is not supported with --scan yet "
                             "(commit into the store, then push)")
        rec = b.commit_to(args.image, common.context(args), **kw)
    else:
        rec = b.commit([] if scan or not args.image else [args.image], **kw)
        if scan:
            _scan_gate(args, b.store, rec, [args.image] if args.image else [], lambda line: None)
    if args.iidfile:
        from .._fs import write_output

        write_output(args.iidfile, ("sha256:" + rec["id"]).encode(), what="--iidfile")
    print(rec["id"])
    return 0


def cmd_containers(args) -> int:
    from ..builder import working
    from ._table import table

    store = _store(args)
    every = working.BuilderContainer.all(store)
    bs = [b for b in every if not b.rec.get("owner")]  # a running build's are its own: -a lists them
    others = []
    if args.all:
        from ._buildah import other_rows

        others = other_rows(store, bs)
    if args.filter:
        from ._filters import builder_filter

        ok = builder_filter(args.filter)
        bs = [b for b in bs if ok(b.id, b.name, b.meta.get("image_id") or "", b.meta.get("from") or "")]
        others = [r for r in others if ok(r["ContainerID"], r["ContainerName"], r["ImageID"], r["ImageName"])]
    if args.format and (args.json or args.quiet):
        from ..errors import UsageError

        raise UsageError("--format cannot be used with --json or --quiet")
    if args.format:
        from ._reports import BUILDER_FIELDS, BUILDER_HEADERS, builder_row, output

        output(args.format, [builder_row(b) for b in bs] + others, BUILDER_FIELDS, BUILDER_HEADERS, "containers",
               args.noheading)
        return 0
    if args.json:
        common.print_json([{"id": b.id, "builder": True, "imageid": b.meta.get("image_id") or "",
                            "imagename": b.meta.get("from"), "containername": b.name} for b in bs] +
                          [{"id": r["ContainerID"], "builder": False, "imageid": r["ImageID"],
                            "imagename": r["ImageName"], "containername": r["ContainerName"]} for r in others])
        return 0
    if args.quiet:
        for i in [b.id for b in bs] + [r["ContainerID"] for r in others]:
            print(i if args.notruncate else i[:12])
        return 0
    rows = [[b.id if args.notruncate else b.id[:12], "*", (b.meta.get("image_id") or "")[:12],
             b.meta.get("from") or "", b.name] for b in bs]
    rows += [[r["ContainerID"] if args.notruncate else r["ContainerID"][:12], "", r["ImageID"][:12],
              r["ImageName"], r["ContainerName"]] for r in others]
    text = table(["CONTAINER ID", "BUILDER", "IMAGE ID", "IMAGE NAME", "CONTAINER NAME"], rows, args.noheading)
    if text:
        print(text)
    return 0


def cmd_rm(args) -> int:
    from ..builder import working
    from ..errors import UsageError

    store = _store(args)
    # --all: the user's working containers, not those of a build still running (a killed build's
    # went when the store was opened)
    targets = [b for b in working.BuilderContainer.all(store) if not b.rec.get("owner")] if args.all \
        else [working.BuilderContainer.get(store, t) for t in args.containers]
    if not targets and not args.all:
        raise UsageError("rm needs a container, or --all")
    for b in targets:
        b.remove()
        print(b.id)
    return 0


def cmd_inspect(args) -> int:
    from . import _buildah

    store = _store(args)
    if args.type == "image":
        doc = _buildah.of_image(store, args.container)
    else:
        from ..errors import BuildError, NotFound

        try:
            doc = _buildah.of_container(store, _get(args, args.container))
        except (NotFound, BuildError):
            if args.type == "container":
                raise
            doc = _buildah.of_image(store, args.container)  # buildah's fallback without --type
    if args.format and args.format != "json":
        from ._template import Template, unescape

        text = Template(unescape(args.format), "format").execute(_buildah.builder_view(doc))
        sys.stdout.write(text)  # as buildah: no newline added
        return 0
    common.print_json(doc)
    return 0
