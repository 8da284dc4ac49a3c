"""podman's process and life verbs: ``exec``, ``attach``, ``restart``, ``pause``, ``unpause``,
``healthcheck run``; and ``run``/``create``'s life flags (``--restart``, ``--health-*``,
``--init``, ``--stop-timeout``, ``--detach-keys``, ``--sig-proxy``).

Exit codes as podman 4.3: ``exec`` the command's own, 126 cannot invoke, 127 not found, 255 when
the session cannot be made (a container not running, an unknown user), 125 for an unknown
container or bad flags; ``healthcheck run`` 0 healthy, 1 unhealthy (prints it), 125 errors.
"""

from __future__ import annotations

import sys

VERBS = ("exec", "attach", "restart", "pause", "unpause", "healthcheck")
EXIT = {"default": 125, "CommandNotFound": 127, "CommandNotRunnable": 126}
EXEC_EXIT = {"default": 125, "ExecSetupError": 255, "CommandNotFound": 127, "CommandNotRunnable": 126}

HEALTH_HELP = ("run a container's health check once: exit 0 healthy, 1 unhealthy, 125 on error. pallet runs "
               "no daemon and sets no timer: have a systemd timer or a cron job call `pallet healthcheck run "
               "CONTAINER` every interval (podman makes a transient systemd timer; that needs systemd as PID 1)")


def _podman(p, exit_map=None):
    p.usage_exit = 125
    p.set_defaults(exit_map=exit_map or EXIT, usage_exit=125)
    return p


def register(sub, only: str | None = None) -> None:
    adders = {"exec": _exec, "attach": _attach, "restart": _restart, "pause": _pause, "unpause": _unpause}
    for name, add in adders.items():
        if only in (None, name):
            add(sub, name)
    if only in (None, "healthcheck"):
        grp = _podman(sub.add_parser("healthcheck", help="run containers' health checks"))
        hsub = grp.add_subparsers(dest="healthcheck_verb", metavar="COMMAND", parser_class=type(grp))
        p = _podman(hsub.add_parser("run", help=HEALTH_HELP, description=HEALTH_HELP))
        p.add_argument("container", metavar="CONTAINER")
        p.set_defaults(func=cmd_healthcheck_run)


def register_container_verbs(csub) -> None:
    """The same verbs under ``pallet container``."""
    register(csub)


def _exec(sub, name):
    p = _podman(sub.add_parser(name, help="run a process in a running container"), EXEC_EXIT)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs="...", default=[], metavar="COMMAND")
    p.add_argument("--interactive", "-i", action="store_true", help="keep stdin open")
    p.add_argument("--tty", "-t", action="store_true", help="a pseudo-terminal (the runtime's console socket)")
    p.add_argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE")
    p.add_argument("--user", "-u", metavar="USER[:GROUP]")
    p.add_argument("--workdir", "-w", metavar="DIR")
    p.add_argument("--detach", "-d", action="store_true", help="run it in the background; print the session ID")
    p.add_argument("--privileged", action="store_true", help="every capability pallet has")
    p.set_defaults(func=cmd_exec)


def _attach(sub, name):
    p = _podman(sub.add_parser(name, help="attach to a running container's output (and stdin with -i)"))
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--detach-keys", metavar="KEYS", help="the keys that detach (default ctrl-p,ctrl-q; \"\": none)")
    p.add_argument("--sig-proxy", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="forward the signals pallet gets to the container (default true)")
    p.set_defaults(func=cmd_attach)


def _restart(sub, name):
    p = _podman(sub.add_parser(name, help="restart containers (stop, then start)"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--time", "-t", type=int, metavar="SECONDS", help="seconds before SIGKILL (default: the "
                   "container's --stop-timeout)")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--running", action="store_true", help="with --all: only the running ones")
    p.set_defaults(func=cmd_restart)


def _pause(sub, name):
    p = _podman(sub.add_parser(name, help="pause containers (the runtime's cgroup freezer)"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--all", "-a", action="store_true")
    p.set_defaults(func=cmd_pause)


def _unpause(sub, name):
    p = _podman(sub.add_parser(name, help="unpause paused containers"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--all", "-a", action="store_true")
    p.set_defaults(func=cmd_unpause)


def _bool(value: str) -> bool:
    from .common import tls_verify_arg

    return tls_verify_arg(value)


# -- run/create's flags ------------------------------------------------------------------------

def add_create_flags(p) -> None:
    p.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], always, unless-stopped: carried out "
                   "by conmon's exit command when the container exits; stop disables it")
    p.add_argument("--health-cmd", metavar="CMD", help="a command (string: run by /bin/sh -c; or a JSON array) "
                   "that `pallet healthcheck run` runs in the container; \"none\" disables the image's")
    p.add_argument("--health-interval", metavar="DURATION", help="how often a timer should run the check "
                   "(default 30s; pallet sets no timer: see `pallet healthcheck run --help`)")
    p.add_argument("--health-retries", type=int, metavar="N", help="failures in a row before unhealthy (3)")
    p.add_argument("--health-start-period", metavar="DURATION", help="failures do not count before (0s)")
    p.add_argument("--health-timeout", metavar="DURATION", help="the check's time limit (30s)")
    p.add_argument("--no-healthcheck", action="store_true", help="no health check (not even the image's)")
    p.add_argument("--init", action="store_true", help="run catatonit as PID 1 (reaps zombies, forwards signals)")
    p.add_argument("--init-path", metavar="PATH", help="the init to use with --init (default: catatonit)")
    p.add_argument("--stop-timeout", type=int, metavar="SECONDS", help="seconds stop waits before SIGKILL (10)")


def add_run_flags(p) -> None:
    p.add_argument("--detach-keys", metavar="KEYS", help="the keys that detach from -i (default ctrl-p,ctrl-q)")
    p.add_argument("--sig-proxy", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="forward the signals pallet gets to the container (default true)")


def life_options(args):
    from ..containers.policies import LifeOptions

    return LifeOptions(restart=args.restart, health_cmd=args.health_cmd, health_interval=args.health_interval,
                       health_retries=args.health_retries, health_start_period=args.health_start_period,
                       health_timeout=args.health_timeout, no_healthcheck=args.no_healthcheck, init=args.init,
                       init_path=args.init_path, stop_timeout=args.stop_timeout)


# -- handlers ------------------------------------------------------------------------------------

def _containers(args):
    from .container_common import open_containers

    return open_containers(args)


def _env(args) -> list[str]:
    import os

    from ..errors import UsageError

    env = []
    for path in args.env_file:
        try:
            with open(path, encoding="utf-8") as f:
                env += [line.strip() for line in f if line.strip() and not line.strip().startswith("#")]
        except OSError as e:
            raise UsageError(f"--env-file {path}: {e.strerror}") from None
    env += args.env
    out = []
    for e in env:
        if "=" not in e:
            v = os.environ.get(e)
            if v is None:
                continue
            e = f"{e}={v}"
        out.append(e)
    return out


def cmd_exec(args) -> int:
    from ..containers import exec as ex

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        from ..errors import UsageError

        raise UsageError("exec requires the name or ID of a container or the --latest flag")
    o = ex.ExecOptions(command, interactive=args.interactive, tty=args.tty, env=_env(args), user=args.user,
                       workdir=args.workdir, detach=args.detach, privileged=args.privileged)
    rc, session = ex.run(_containers(args), args.container, o)
    if args.detach:
        print(session)
        return 0
    return rc


def cmd_attach(args) -> int:
    from ..containers import attach as at
    from ..containers.attach import sig_proxy

    keys = at.parse_detach_keys(args.detach_keys)
    ctrs = _containers(args)
    c = ctrs.get(args.container)
    with sig_proxy(ctrs, c["id"], args.sig_proxy):
        cid, detached = at.attach(ctrs, c["id"], no_stdin=args.no_stdin, detach_keys=keys)
    if detached:  # podman prints a newline
        print()
        return 0
    return ctrs.wait(cid)


def _targets(args, ctrs, running_only=False) -> list[str]:
    from .common import targets_or_all

    def everyone():
        out = []
        for c in ctrs.list():
            st = ctrs.state(c["id"])
            if not running_only or st.get("state") == "running":
                out.append(c["id"])
        return out

    return targets_or_all(args.containers, args.all, everyone, "you must provide at least one container name or ID")


def cmd_restart(args) -> int:
    from ..containers import restart

    ctrs = _containers(args)
    for text in _targets(args, ctrs, running_only=args.running):
        restart.restart(ctrs, text, args.time, warn=_warn)
        print(text)
    return 0


def cmd_pause(args) -> int:
    from ..containers import restart

    ctrs = _containers(args)
    for text in _targets(args, ctrs, running_only=args.all):
        restart.pause(ctrs, text)
        print(text)
    return 0


def cmd_unpause(args) -> int:
    from ..containers import restart

    ctrs = _containers(args)
    targets = args.containers
    if args.all:
        targets = [c["id"] for c in ctrs.list() if ctrs.state(c["id"]).get("paused")
                   and ctrs.state(c["id"]).get("state") == "running"]
    elif not targets:
        from ..errors import UsageError

        raise UsageError("you must provide at least one container name or ID")
    for text in targets:
        restart.unpause(ctrs, text)
        print(text)
    return 0


def cmd_healthcheck_run(args) -> int:
    from ..containers import health

    result = health.run(_containers(args), args.container)
    if result != health.HEALTHY:
        print(result)
        return 1
    return 0


def cmd_cleanup_then_restart(ctrs, text: str) -> None:
    """conmon's exit command, after the cleanup: the restart policy."""
    from ..containers import restart

    restart.on_exit(ctrs, text, warn=_warn)


def _warn(msg: str) -> None:
    print(f"WARN[0000] {msg}", file=sys.stderr)
