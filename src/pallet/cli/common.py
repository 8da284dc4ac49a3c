"""Flags shared by several verbs, and turning them into library options."""

from __future__ import annotations

from .._std import args as _args


def tls_verify_arg(value: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise _args.ArgumentTypeError(f"invalid boolean {value!r}")


def add_registry_flags(p: _args.ArgumentParser, prefix: str = "", retry: bool = True) -> None:
    """``--tls-verify``, ``--creds``, ``--authfile``... as skopeo names them (``--src-``/``--dest-`` with a prefix)."""
    pre = f"--{prefix}-" if prefix else "--"
    dest = f"{prefix}_" if prefix else ""
    p.add_argument(f"{pre}tls-verify", dest=f"{dest}tls_verify", type=tls_verify_arg, nargs="?", const=True,
                   default=None, metavar="BOOL", help="require HTTPS and verify certificates (default true)")
    # skopeo's short spellings of --src-creds/--dest-creds (copy, sync)
    short = {"src": ("--screds",), "dest": ("--dcreds",)}.get(prefix, ())
    p.add_argument(f"{pre}creds", *short, dest=f"{dest}creds", metavar="USER[:PASSWORD]",
                   help="credentials for the registry")
    p.add_argument(f"{pre}username", dest=f"{dest}username", metavar="USER", help="user name for the registry")
    p.add_argument(f"{pre}password", dest=f"{dest}password", metavar="PASSWORD", help="password for the registry")
    p.add_argument(f"{pre}registry-token", dest=f"{dest}registry_token", metavar="TOKEN",
                   help="bearer token for the registry")
    p.add_argument(f"{pre}no-creds", dest=f"{dest}no_creds", action="store_true", help="access the registry anonymously")
    p.add_argument(f"{pre}cert-dir", dest=f"{dest}cert_dir", metavar="DIR",
                   help="certificates (*.crt, *.cert, *.key) for the registry")
    if prefix:
        p.add_argument(f"{pre}authfile", dest=f"{dest}authfile", metavar="PATH", help="path of the authentication file")


def add_retry_flags(p: _args.ArgumentParser) -> None:
    p.add_argument("--retry-times", type=int, default=3, metavar="N",
                   help="retry a failed request N times (default 3)")
    p.add_argument("--retry-delay", type=duration_arg, default=None, metavar="DURATION",
                   help="fixed delay between retries, e.g. 500ms or 2s (default: exponential backoff)")


def duration_arg(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for u in ("ms", "s", "m", "h"):
        if text.endswith(u):
            try:
                return float(text[: -len(u)]) * units[u]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise _args.ArgumentTypeError(f"invalid duration {text!r} (e.g. 500ms, 2s)") from None


def context(args: _args.Namespace, prefix: str = ""):
    """A SystemContext from the global flags and this side's registry flags."""
    from ..errors import UsageError
    from ..transports.base import SystemContext

    dest = f"{prefix}_" if prefix else ""

    def get(name, default=None):
        return getattr(args, dest + name, default)

    creds = get("creds")
    username, password = get("username"), get("password")
    if username is not None or password is not None:
        if creds:
            raise UsageError(f"--{prefix + '-' if prefix else ''}creds and --{prefix + '-' if prefix else ''}username "
                             "cannot be used together")
        creds = f"{username or ''}:{password or ''}"
    if get("no_creds") and (creds or get("registry_token")):
        raise UsageError("--no-creds cannot be combined with credentials")
    ctx = SystemContext(
        tls_verify=get("tls_verify"), creds=creds, registry_token=get("registry_token"),
        authfile=get("authfile") or getattr(args, "authfile", None),
        registries_conf=getattr(args, "registries_conf", None),
        registries_conf_dir=getattr(args, "registries_conf_dir", None), cert_dir=get("cert_dir"),
        retry_times=getattr(args, "retry_times", 3), retry_delay=getattr(args, "retry_delay", None),
        override_os=getattr(args, "override_os", None), override_arch=getattr(args, "override_arch", None),
        override_variant=getattr(args, "override_variant", None), no_creds=bool(get("no_creds")),
        debug=getattr(args, "debug", False), registries_d=getattr(args, "registries_d", None),
        # the global --policy, or buildah's --signature-policy on a verb: every copy made with
        # this context (pull, FROM, builder from, load, copy) is checked against it
        signature_policy=getattr(args, "signature_policy", None) or getattr(args, "policy", None),
        insecure_policy=bool(getattr(args, "insecure_policy", False)),
    )
    if getattr(args, "spool_limit", None) is not None:
        from ..transports._files import parse_size

        ctx.spool_limit = parse_size(args.spool_limit, "--spool-limit")
    return ctx


def targets_or_all(named, every: bool, all_ids, missing: str) -> list:
    """What a removing verb acts on: with ``--all`` every id ``all_ids()`` lists, else the named
    targets; a UsageError saying ``missing`` when there are neither."""
    if every:
        return list(all_ids())
    if not named:
        from ..errors import UsageError

        raise UsageError(missing)
    return list(named)


def key_values(items: list[str], flag: str, need_value: bool = False) -> dict:
    """``KEY=VALUE`` flag values (``--label``, ``--opt``, ...) as a dict, the first ``=`` splitting
    (a bare ``KEY`` is ``KEY=`` unless ``need_value``); a UsageError naming the flag and the value
    when the key is empty."""
    out = {}
    for v in items:
        k, sep, val = v.partition("=")
        if not k or (need_value and not sep):
            from ..errors import UsageError

            raise UsageError(f"invalid {flag} {v!r}: want KEY=VALUE")
        out[k] = val
    return out


def print_json(obj) -> None:
    from .._std import json
    import sys

    sys.stdout.write(json.dumps(obj, indent=4) + "\n")


def print_ids_or_json(entries: list, args, indent: int = 4) -> bool:
    """``-q`` (each entry's ``Id``, its first 12 characters unless ``--no-trunc``) or ``--format
    json`` (the entries, indented as the podman verb indents them): printed, True; else False
    (``ps`` and ``pod ps``)."""
    import sys

    if args.quiet:
        for e in entries:
            print(e["Id"] if args.no_trunc else e["Id"][:12])
        return True
    if args.format == "json":
        from .._std import json

        sys.stdout.write(json.dumps(entries, indent=indent) + "\n")
        return True
    return False


def export_to(output: str | None, write, terminal_error: str) -> None:
    """``export``'s tar stream: ``write(f)`` to ``--output FILE`` (``_fs.output_file``: a device
    or FIFO is written in place, a regular file replaced whole) or to stdout, never to a terminal
    (``terminal_error``: the podman verb's words). ``volume export`` and ``export``."""
    import sys

    from ..errors import UsageError

    if output:
        from .._fs import output_file

        try:
            with output_file(output, 0o644) as f:
                write(f)
        except OSError as e:
            raise UsageError(f"--output {output}: {e.strerror}") from None
        return
    if sys.stdout.isatty():
        raise UsageError(terminal_error)
    write(sys.stdout.buffer)


def progress(args):
    """Copy progress on stderr as skopeo/podman show it (none with ``--quiet``; redrawn lines
    on a terminal)."""
    import sys

    from ..transports.copy import Progress

    if getattr(args, "quiet", False):
        return Progress(None)
    if sys.stderr.isatty():
        from ._progress import TerminalProgress

        return TerminalProgress(sys.stderr)
    return Progress(lambda line: print(line, file=sys.stderr, flush=True))


def global_store_args(args) -> list[str]:
    """The global flags (the same store) a container's exit command repeats."""
    g = []
    for flag, attr in (("--root", "root"), ("--runroot", "runroot"), ("--storage-driver", "storage_driver")):
        v = getattr(args, attr, None)
        if v:
            import os

            g += [flag, os.path.abspath(v) if attr != "storage_driver" else v]
    return g


#: podman's exit codes for its verbs' errors
PODMAN_EXIT = {"default": 125, "CommandNotFound": 127, "CommandNotRunnable": 126}


def podman_verb(p, exit_map=None):
    """A podman verb's parser: usage errors and failures exit 125 (``exit_map``: other codes)."""
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or PODMAN_EXIT, usage_exit=125)
    return p

