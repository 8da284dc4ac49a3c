"""``pallet``: the command line. Parses arguments, calls the library, renders results.

Each area registers its verbs from its own module (``register(subparsers)``); a verb's
handler imports the library only when it runs, so ``pallet --help`` and quick verbs
start fast. Errors become one line on stderr and the verb's exit code.
"""

from __future__ import annotations

import sys

from .._version import PEERS, __version__
from .._std import args as _args

#: modules under pallet.cli that add verbs, in --help order
AREAS = ("transport", "registry", "store", "build", "containers", "container_life", "container_files",
         "container_procs", "pods", "network", "volume", "scan", "syscontainers", "cri", "manifest")

#: the area that owns each verb: a verb named here imports only its own area's module (the
#: thirteen together cost ~2 ms on every quick command); any other verb, or none, imports
#: them all. tests/cli/test_cli_startup.py checks it against each area's VERBS.
VERB_AREAS = {
    **dict.fromkeys(("inspect", "copy", "sync", "delete", "manifest-digest", "standalone-sign",
                     "standalone-verify"), "transport"),
    **dict.fromkeys(("list-tags", "login", "logout"), "registry"),
    **dict.fromkeys(("pull", "push", "images", "rmi", "tag", "untag", "save", "load", "image", "system", "info",
                     "history", "import", "search", "unshare", "version"), "store"),
    **dict.fromkeys(("build", "bud", "builder", "buildx"), "build"),
    **dict.fromkeys(("run", "create", "start", "stop", "kill", "rm", "ps", "logs", "wait", "container"),
                    "containers"),
    **dict.fromkeys(("exec", "attach", "restart", "pause", "unpause", "healthcheck"), "container_life"),
    **dict.fromkeys(("cp", "diff", "export", "commit"), "container_files"),
    **dict.fromkeys(("top", "stats", "port", "rename"), "container_procs"),
    "pod": "pods", "network": "network", "volume": "volume", "scan": "scan", "manifest": "manifest",
    **dict.fromkeys(("install", "uninstall", "containers", "generate"), "syscontainers"),
    "cri": "cri",
}

#: areas whose verbs run in the rootless user namespace when pallet is not root (podman's rule:
#: the store, containers and builds are the user's, mapped through /etc/subuid); skopeo's verbs
#: (transport, registry) run as the user, as skopeo does
ROOTLESS_AREAS = frozenset(("store", "build", "containers", "container_life", "container_files", "container_procs",
                            "network", "volume", "scan", "syscontainers", "manifest"))


class _Parser(_args.ArgumentParser):
    #: exit code for usage errors: skopeo's verbs use 1, podman's 125 (set per verb)
    usage_exit = 1

    def _width(self) -> int:
        import os

        try:
            width = int(os.environ.get("COLUMNS") or os.get_terminal_size(2).columns)
        except (OSError, ValueError):
            width = 80
        return max(40, width - 2)

    def error(self, message):  # one line, never the usage dump
        self.exit(self.usage_exit, f"Error: {message}\nSee '{self.prog} --help'.\n")


#: global options that take a value (to find the verb without building every parser)
_GLOBAL_VALUES = {"--registries-conf", "--registries-conf-dir", "--policy", "--override-arch", "--override-os", "--override-variant", "--root",
                  "--runroot", "--storage-driver", "--registries.d", "--runtime-flag"}


def _verb(argv: list[str]) -> str | None:
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return None
        if a.startswith("-"):
            i += 2 if a in _GLOBAL_VALUES else 1
            continue
        return a
    return None


def build_parser(verb: str | None = None) -> _args.ArgumentParser:
    """The parser; with ``verb`` only that verb's sub-parser is built (start-up time: building
    all of them costs more than the rest of a quick verb)."""
    p = _Parser(prog="pallet", description="pallet: a daemonless OCI container toolchain "
                "(image transport, storage, build, runtime)")
    p.add_argument("--version", "-v", action="version", version=f"pallet version {__version__} (follows {PEERS})")
    p.add_argument("--debug", action="store_true", help="log what is done on stderr")
    p.add_argument("--log-level", metavar="LEVEL", choices=("trace", "debug", "info", "warn", "warning", "error",
                                                         "fatal", "panic"),
                   help="podman's: debug or trace log what is done on stderr (as --debug); others change nothing")
    p.add_argument("--noout", action="store_true", help="podman's: discard what the command prints on stdout")
    p.add_argument("--registries-conf", metavar="PATH", help="use PATH as registries.conf")
    p.add_argument("--registries-conf-dir", metavar="DIR",
                   help="read registries.conf drop-ins from DIR only (default: /etc/containers/registries.conf.d "
                        "and the user's)")
    p.add_argument("--policy", metavar="PATH", help="trust policy file (default: containers-policy.json locations)")
    p.add_argument("--insecure-policy", action="store_true", help="accept any image, whatever the trust policy says")
    p.add_argument("--override-arch", metavar="ARCH", help="use ARCH instead of the host's when choosing images")
    p.add_argument("--override-os", metavar="OS", help="use OS instead of the host's when choosing images")
    p.add_argument("--override-variant", metavar="VARIANT", help="use VARIANT when choosing images")
    p.add_argument("--root", metavar="DIR", help="the local store's root (default /var/lib/pallet)")
    p.add_argument("--runroot", metavar="DIR", help="the local store's run-time state (default /run/pallet)")
    p.add_argument("--storage-driver", metavar="DRIVER", help="overlay or vfs")
    p.add_argument("--runtime-flag", dest="global_runtime_flags", action="append", default=[], metavar="FLAG",
                   help="podman's: a global flag for the OCI runtime at every call (debug -> --debug, "
                        "log=FILE -> --log=FILE)")
    p.add_argument("--spool-limit", metavar="SIZE",
                   help="how much a piped or compressed archive may spool to disk (e.g. 32G; 0: no limit)")
    p.add_argument("--registries.d", dest="registries_d", metavar="DIR",
                   help="where signature (lookaside) locations are configured (containers-registries.d)")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser)
    import importlib

    def load(areas) -> list:
        mods = []
        for area in areas:
            name = f"pallet.cli.{area}"
            try:
                mods.append(importlib.import_module(name))
            except ModuleNotFoundError as e:  # areas land one by one; a broken one still fails loudly
                if e.name != name:
                    raise
        return mods

    mods = load((VERB_AREAS[verb],) if verb in VERB_AREAS else AREAS)
    owner = next((m for m in mods if verb in getattr(m, "VERBS", ())), None) if verb else None
    if owner is None and verb in VERB_AREAS:  # the table is behind the areas: look in them all
        mods = load(AREAS)
        owner = next((m for m in mods if verb in getattr(m, "VERBS", ())), None)
    if owner is not None:
        owner.register(sub, only=verb)
    elif verb != "--version":
        for mod in mods:
            mod.register(sub)
    return p


#: build's flags whose values are themselves flags (``--cpp-flag -DX``, ``--runtime-flag --debug``)
_DASH_VALUED = ("--cpp-flag", "--runtime-flag")


def _glue_dash_values(argv: list[str]) -> list[str]:
    """``--cpp-flag -DX`` -> ``--cpp-flag=-DX`` (argparse takes a value starting with - for a
    flag), up to a ``--``."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out += argv[i:]
            break
        if a in _DASH_VALUED and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


#: short-lived verbs whose memory is bounded by what they print: they run without the cyclic
#: garbage collector, whose collections (set off by the allocations of their imports, which
#: free nothing) were ~5 % of an ``inspect``'s instructions (as ``pallet-runtime`` runs; only
#: when ``main`` is the process's, called without ``argv``)
NO_GC_VERBS = frozenset(("inspect", "images", "manifest-digest", "list-tags", "history", "ps", "info"))


def main(argv: list[str] | None = None) -> int:
    from .._std import importer

    importer.install()  # pallet's modules found and loaded in half importlib's instructions
    process = argv is None  # the console script (a caller in Python keeps its collector)
    if argv is None:
        argv = sys.argv[1:]
    verb = None if "-h" in argv or "--help" in argv else _verb(argv)
    if process and verb in NO_GC_VERBS:
        import gc

        gc.disable()
    if verb is None and argv and argv[-1] in ("--version", "-v"):
        verb = "--version"  # no verb parsers needed to print the version
    if verb in ("build", "bud"):
        argv = _glue_dash_values(argv)
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported here, so the verb's own usage exit code applies (podman's 125)
        print(f"Error: unrecognized arguments: {' '.join(extra)}\nSee 'pallet --help'.", file=sys.stderr)
        return getattr(args, "usage_exit", 1)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from ..errors import PalletError

    if args.log_level in ("debug", "trace"):
        args.debug = True
    if args.debug:
        from .. import _log

        _log.enable()
    if args.noout:  # podman's --noout: the command's stdout goes nowhere, its errors still show
        import os

        sys.stdout.flush()
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        os.dup2(null, 1)
        os.close(null)
    import _signal  # the C module: "signal" would import enum wrappers we do not need

    def _terminated(signum, frame):  # unwind like Ctrl-C, so staged files are removed on the way out
        raise SystemExit(128 + signum)

    _signal.signal(_signal.SIGTERM, _terminated)
    _signal.signal(_signal.SIGHUP, _terminated)
    try:
        import os

        if os.geteuid() != 0 and VERB_AREAS.get(args.verb) in ROOTLESS_AREAS:
            from .._userns import enter_rootless

            enter_rootless()
        rc = args.func(args)
    except PalletError as e:
        print(f"Error: {e}", file=sys.stderr)
        return _exit_code(args, e)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:  # a file or device problem the library did not wrap: still one line
        if args.debug:
            raise
        print(f"Error: {e.strerror or e}{': ' + str(e.filename) if getattr(e, 'filename', None) else ''}",
              file=sys.stderr)
        return (getattr(args, "exit_map", None) or {}).get("default", 1)
    except Exception as e:  # a bug: still one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"Error: internal error: {type(e).__name__}: {e} (this is a bug in pallet; "
              "run with --debug for the traceback)", file=sys.stderr)
        return (getattr(args, "exit_map", None) or {}).get("default", 1)
    return rc or 0


def _exit_code(args, e) -> int:
    """The verb family's exit code for an error: skopeo's (the error's own) unless the verb
    has a map (podman's verbs: 125 by default, a few errors with their own code)."""
    exit_map = getattr(args, "exit_map", None)
    if not exit_map:
        return e.exit_code
    for cls in type(e).__mro__:
        if cls.__name__ in exit_map:
            return exit_map[cls.__name__]
    return exit_map.get("default", e.exit_code)


if __name__ == "__main__":
    sys.exit(main())
