"""``pallet cri serve``: the Kubernetes CRI server (docs/cri.md). grpc is imported only when it
runs: no other verb pays for it."""

from __future__ import annotations

VERBS = ("cri",)
EXIT = {"default": 125}


def _podman(p):
    p.usage_exit = 125
    p.set_defaults(exit_map=EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    if only not in (None, "cri"):
        return
    cri = _podman(sub.add_parser("cri", help="the Kubernetes CRI server",
                                 description="The Kubernetes Container Runtime Interface (runtime.v1) over a unix "
                                             "socket, on pallet's store (docs/cri.md)."))
    cri.set_defaults(func=_missing)
    csub = cri.add_subparsers(dest="cri_verb", metavar="COMMAND", parser_class=type(cri))
    p = _podman(csub.add_parser("serve", help="serve the CRI on a unix socket until SIGTERM"))
    p.add_argument("--listen", metavar="ADDRESS", help="unix:///PATH (default: the config's, unix:///run/pallet/cri.sock)")
    p.add_argument("--config", metavar="PATH", help="TOML configuration (default: /etc/pallet/cri.conf when it exists)")
    p.set_defaults(func=cmd_serve)


def _missing(args) -> int:
    from ..errors import UsageError

    raise UsageError("cri: give a command (serve)")


def cmd_serve(args) -> int:
    import sys

    from ..cri import config as _config
    from .common import global_store_args
    from .store import store_options

    cfg = _config.load(args.config)
    if args.listen:
        _config.socket_path(args.listen)
        cfg.listen = args.listen
    # the store: the global flags, else the config's root/runroot, else pallet's default
    if not getattr(args, "root", None) and cfg.root:
        args.root = cfg.root
    if not getattr(args, "runroot", None) and cfg.runroot:
        args.runroot = cfg.runroot
    from ..storage.store import Store

    store = Store(store_options(args))
    from ..cri.server import serve

    def ready(path):
        print(f"pallet CRI server listening on unix://{path}", file=sys.stderr, flush=True)

    serve(store, cfg, global_store_args(args), ready=ready)
    return 0
