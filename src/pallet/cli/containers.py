"""podman's container verbs: run, create, start, stop, kill, rm, ps, logs, wait and
``container ...`` (inspect, ls, cleanup...). Containers are supervised by conmon; pallet exits.

Exit codes as podman: the container's own for ``run``/``start -a``/``wait``; 125 when pallet
fails, 126 when the command cannot be invoked, 127 when it does not exist; ``rm`` 1 for an
unknown container and 2 for a running one without ``-f``.
"""

from __future__ import annotations

import os
import sys

VERBS = ("run", "create", "start", "stop", "kill", "rm", "ps", "logs", "wait", "container")
from .common import PODMAN_EXIT as EXIT, podman_verb as _podman  # noqa: F401  (shared with the other verb modules)

RM_EXIT = {"default": 125, "ContainerNotFound": 1, "ContainerStateError": 2}


def register(sub, only: str | None = None) -> None:
    adders = {"run": _run, "create": _create, "start": _start, "stop": _stop, "kill": _kill, "rm": _rm, "ps": _ps,
              "logs": _logs, "wait": _wait}
    for name, add in adders.items():
        if only in (None, name):
            add(sub, name)
    if only in (None, "container"):
        grp = _podman(sub.add_parser("container", help="manage containers (run, ps, inspect, rm...)"))
        csub = grp.add_subparsers(dest="container_verb", metavar="COMMAND", parser_class=type(grp))
        for name, add in adders.items():
            add(csub, name)
        _ps(csub, "ls", aliases=["list"])
        from . import container_files, container_procs

        container_files.register(csub)
        container_procs.register(csub, group=True)
        p = _podman(csub.add_parser("inspect", help="show containers' details as JSON"))
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.add_argument("--format", "-f", metavar="TEMPLATE", help="a Go template over each container")
        p.set_defaults(func=cmd_inspect)
        p = _podman(csub.add_parser("cleanup", help="(conmon's exit command) unmount, tear the network down; "
                                                    "--rm: remove"))
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.add_argument("--rm", action="store_true")
        p.set_defaults(func=cmd_cleanup)
        p = _podman(csub.add_parser("exists", help="exit 0 if the container exists, 1 if not"),
                    {"default": 125, "ContainerNotFound": 1})
        p.add_argument("container", metavar="CONTAINER")
        p.set_defaults(func=cmd_exists)
        from .container_life import register_container_verbs

        register_container_verbs(csub)  # exec, attach, restart, pause, unpause


def _create_flags(p) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs="...", default=[], metavar="COMMAND")
    p.add_argument("--rootfs", action="store_true",
                   help="IMAGE is an exploded root filesystem, PATH (the container writes into it) or PATH:O "
                        "(an overlay on it: it is never written, the changes go when the container stops)")
    p.add_argument("--name", metavar="NAME")
    p.add_argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE")
    p.add_argument("--user", "-u", metavar="USER[:GROUP]")
    p.add_argument("--workdir", "-w", metavar="DIR")
    p.add_argument("--entrypoint", metavar="CMD|JSON")
    p.add_argument("--network", "--net", action="append", default=[], metavar="MODE",
                   help="none, host, bridge (the default network), NAME, container:ID")
    p.add_argument("--publish", "-p", action="append", default=[], metavar="[IP:]HOST:CTR[/PROTO]")
    p.add_argument("--publish-all", "-P", action="store_true", help="publish the image's EXPOSE ports on free host ports")
    p.add_argument("--hostname", "-h", metavar="NAME")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="/HOST:/CTR[:ro]",
                   help="a host path, NAME:/CTR (a named volume, made when missing) or /CTR (an anonymous one)")
    p.add_argument("--volumes-from", action="append", default=[], metavar="CONTAINER[:ro|rw|z]",
                   help="the host binds and volumes of CONTAINER at the same places (shared, not copied)")
    p.add_argument("--mount", action="append", default=[], metavar="type=bind|volume|tmpfs,...",
                   help="type=bind,src=,dst=[,ro]; type=volume[,src=NAME],dst=[,ro]; type=tmpfs,dst=[,tmpfs-size=]")
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="replaces containers.conf's default_ulimits")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP")
    p.add_argument("--dns", action="append", default=[], metavar="IP")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    p.add_argument("--dns-option", "--dns-opt", action="append", default=[], metavar="OPTION")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="no-new-privileges, seccomp=unconfined|FILE, label=disable")
    p.add_argument("--device", action="append", default=[], metavar="HOST[:CTR][:PERMS]")
    p.add_argument("--device-cgroup-rule", action="append", default=[], metavar="'TYPE MAJOR:MINOR ACCESS'",
                   help="allow devices in the device cgroup (type a, b or c; * for any minor; access of rwm)")
    p.add_argument("--log-driver", metavar="DRIVER", help="k8s-file (default), journald or none")
    p.add_argument("--log-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="path=FILE, max-size=SIZE (k8s-file); tag=TAG (journald)")
    for flag in ("--cgroupns", "--ipc", "--pid", "--uts"):
        p.add_argument(flag, metavar="MODE", help="host, private or ns:PATH")
    p.add_argument("--userns", metavar="MODE",
                   help="user namespace: host (default), auto[:size=N] (from /etc/subuid's containers ranges), "
                        "ns:PATH, container:ID; keep-id and nomap are rootless only")
    p.add_argument("--uidmap", action="append", default=[], metavar="CTR:HOST:SIZE",
                   help="run in a new user namespace with this uid mapping (repeatable)")
    p.add_argument("--gidmap", action="append", default=[], metavar="CTR:HOST:SIZE",
                   help="its gid mapping (repeatable; the uid mapping when not given)")
    p.add_argument("--memory", "-m", metavar="SIZE")
    p.add_argument("--cpus", metavar="N")
    p.add_argument("--pids-limit", type=int, metavar="N")
    p.add_argument("--cgroup-parent", metavar="PATH",
                   help="the cgroup the container's cgroup goes below (default /pallet_parent)")
    p.add_argument("--stop-signal", metavar="SIGNAL")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pull", default="missing", metavar="POLICY", help="always, missing, never, newer")
    p.add_argument("--quiet", "-q", action="store_true", help="no pull progress (podman's: \"Trying to pull\"...)")
    p.add_argument("--runtime", metavar="NAME|PATH", help="pallet-runtime (default), runc, crun or a path")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--interactive", "-i", action="store_true")
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--network-config-dir", metavar="DIR", help="as for pallet network")
    p.add_argument("--authfile", metavar="PATH", help="credentials for pulling the image")
    from . import common, container_life, container_run

    common.add_registry_flags(p)
    container_life.add_create_flags(p)  # --restart, --health-*, --init, --stop-timeout
    container_run.add_create_flags(p)  # --cidfile, --replace, --sdnotify, --timeout...


def _run(sub, name):
    p = _podman(sub.add_parser(name, help="run a command in a new container (supervised by conmon)"))
    _create_flags(p)
    p.add_argument("--detach", "-d", action="store_true", help="print the ID and leave it running")
    from .container_life import add_run_flags
    from .container_run import add_run_flags as add_more_run_flags

    add_run_flags(p)  # --detach-keys, --sig-proxy
    add_more_run_flags(p)  # --rmi, --preserve-fds
    p.set_defaults(func=cmd_run)


def _create(sub, name):
    p = _podman(sub.add_parser(name, help="create a container (start it with pallet start)"))
    _create_flags(p)
    p.set_defaults(func=cmd_create, detach=True)


def _start(sub, name):
    p = _podman(sub.add_parser(name, help="start containers"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--all", action="store_true", help="every container that is not running")
    p.add_argument("--attach", "-a", action="store_true", help="relay its output and exit with its code")
    p.add_argument("--interactive", "-i", action="store_true")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="only the containers ps --filter would list (restart-policy=, exited=, label=...)")
    _cidfile_flag(p)
    p.set_defaults(func=cmd_start)


def _stop(sub, name):
    p = _podman(sub.add_parser(name, help="stop containers (stop signal, then SIGKILL after -t seconds)"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--time", "--timeout", "-t", type=int, metavar="SECONDS")
    p.add_argument("--all", "-a", action="store_true", help="every running container")
    p.add_argument("--ignore", "-i", action="store_true", help="no error for unknown containers")
    _cidfile_flag(p)
    p.set_defaults(func=cmd_stop)


def _kill(sub, name):
    p = _podman(sub.add_parser(name, help="send a signal to containers"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--signal", "-s", default="KILL", metavar="SIGNAL")
    p.add_argument("--all", "-a", action="store_true", help="every running container")
    _cidfile_flag(p)
    p.set_defaults(func=cmd_kill)


def _rm(sub, name):
    p = _podman(sub.add_parser(name, help="remove containers"), RM_EXIT)
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--force", "-f", action="store_true", help="stop running ones first")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--time", "-t", type=int, metavar="SECONDS")
    p.add_argument("--ignore", "-i", action="store_true", help="no error for unknown containers")
    p.add_argument("--volumes", "-v", action="store_true", help="remove its anonymous volumes too")
    p.add_argument("--depend", action="store_true", help="remove the containers that joined its namespaces first")
    p.add_argument("--latest", "-l", action="store_true", help="the container created last")
    _cidfile_flag(p)
    p.set_defaults(func=cmd_rm)


def _cidfile_flag(p) -> None:
    from .container_run import add_cidfile_flag

    add_cidfile_flag(p)


def _ps(sub, name, aliases=()):
    p = _podman(sub.add_parser(name, aliases=list(aliases), help="list containers"))
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--format", metavar="FORMAT", help="json, table, or a Go template")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--noheading", action="store_true")
    p.add_argument("--sort", default="created", metavar="KEY",
                   help="command, created (the default: oldest first), id, image, names, runningfor, size, status")
    p.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="id, name (regular expressions), status, exited, label, ancestor, network, pod; the same "
                        "key given twice matches either value, different keys must all match (podman's)")
    p.add_argument("--pod", "-p", action="store_true", help="show each container's pod (POD ID, PODNAME)")
    p.set_defaults(func=cmd_ps)


def _logs(sub, name):
    p = _podman(sub.add_parser(name, help="show containers' output (conmon's k8s-file log; several: each line "
                                          "after its container's ID, or name with --names)"))
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("--names", "-n", action="store_true", help="with several containers: prefix names, not IDs")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=-1, metavar="N")
    p.add_argument("--timestamps", "-t", action="store_true")
    p.add_argument("--since", metavar="TIME", help="only lines written since TIME (RFC 3339, Unix seconds, or a "
                                                   "duration such as 10m before now)")
    p.add_argument("--until", metavar="TIME", help="only lines written before TIME (same forms)")
    p.set_defaults(func=cmd_logs)


def _wait(sub, name):
    p = _podman(sub.add_parser(name, help="wait for containers to exit; print their exit codes"))
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("--condition", action="append", default=[], metavar="STATE",
                   help="wait for this state instead (repeatable: any of them): configured, created, exited, "
                        "paused, running, stopped, healthy, unhealthy")
    p.add_argument("--interval", "-i", default="250ms", metavar="DURATION", help="how often to look (250ms)")
    p.set_defaults(func=cmd_wait)


# -- handlers ------------------------------------------------------------------------------

def _containers(args):
    from .container_common import open_containers

    return open_containers(args)


#: warnings podman prints as they are, not as log lines (scripts match them at a line's start)
#: podman prints these (its create's warnings) as they are, not as log lines
PLAIN_WARNINGS = ("Port mappings have been discarded", "Resource limits are not supported")


def _warn(msg: str) -> None:
    print(msg if msg.startswith(PLAIN_WARNINGS) else f"WARN[0000] {msg}", file=sys.stderr)


def _options(args):
    from ..containers.container import Options
    from ..errors import UsageError
    from . import container_life, container_run
    from .common import key_values

    env = []
    for path in args.env_file:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        env.append(line if "=" in line else _env_from_host(line))
        except OSError as e:
            raise UsageError(f"--env-file {path}: {e.strerror}") from None
    for e in args.env:
        env.append(e if "=" in e else _env_from_host(e))
    env = container_run.proxy_env(args) + env  # --http-proxy: the host's, under the user's
    labels = key_values(args.label, "--label")
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    rootfs = args.image if getattr(args, "rootfs", False) else None
    return Options("" if rootfs is not None else args.image, command or None, rootfs=rootfs, name=args.name, env=[e for e in env if e], user=args.user,
                   workdir=args.workdir, entrypoint=args.entrypoint, networks=args.network, publish=args.publish,
                   hostname=args.hostname, cap_add=args.cap_add, cap_drop=args.cap_drop,
                   privileged=args.privileged, read_only=args.read_only, tmpfs=args.tmpfs, volumes=args.volume,
                   memory=args.memory, cpus=args.cpus, pids_limit=args.pids_limit, stop_signal=args.stop_signal,
                   labels=labels, rm=args.rm, detach=getattr(args, "detach", False), interactive=args.interactive,
                   tty=args.tty, runtime=args.runtime, pull=args.pull, network_config_dir=args.network_config_dir,
                   restart=args.restart, create_command=["pallet"] + sys.argv[1:], publish_all=args.publish_all,
                   cgroup_parent=args.cgroup_parent,
                   extra=_extra(args), life=container_life.life_options(args),
                   runflags=container_run.run_flags(args))


def _extra(args):
    from ..containers.options import Extra

    return Extra(ulimits=args.ulimit, add_hosts=args.add_host, dns=args.dns, dns_search=args.dns_search,
                 dns_options=args.dns_option, security_opts=args.security_opt, devices=args.device,
                 log_driver=args.log_driver, log_opts=args.log_opt, cgroupns=args.cgroupns, ipc=args.ipc,
                 pid=args.pid, uts=args.uts, userns=args.userns, uidmap=args.uidmap, gidmap=args.gidmap,
                 mounts=args.mount, device_cgroup_rules=getattr(args, "device_cgroup_rule", ()),
                 volumes_from=getattr(args, "volumes_from", ()))


def _env_from_host(name: str) -> str:
    import os

    v = os.environ.get(name)
    return f"{name}={v}" if v is not None else ""


def _pull_fn(args, store):
    def pull(image: str) -> None:
        from ..images.pull import pull as pull_images
        from ..transports.copy import CopyOptions
        from . import common

        ctx = common.context(args)
        say = None if getattr(args, "quiet", False) else (lambda line: (sys.stderr.write(line + "\n"),
                                                                      sys.stderr.flush()))
        options = CopyOptions(policy=args.policy, insecure_policy=args.insecure_policy, progress=common.progress(args))
        images = pull_images(store, image, ctx, options, say=say)  # podman's lines on stderr, as pull's
        return images[0]["id"]

    return pull


#: the pull ``create`` uses (``pod create``'s infra image too)
pull_fn = _pull_fn


def cmd_create(args) -> int:
    from . import container_run
    from .pod_members import pod_member

    ctrs = _containers(args)
    o = _options(args)
    container_run.warnings(args, _warn)
    container_run.before_create(args, ctrs)
    with pod_member(args, ctrs, o, _pull_fn(args, ctrs.store), _warn) as member:  # --pod
        rec = ctrs.create(o, _pull_fn(args, ctrs.store), warn=_warn)
        member(rec)
    container_run.after_create(args, ctrs, rec)
    print(rec["id"])
    return 0


def _raise_start_error(e: BaseException):
    """podman 4.3's exit code for a ``run`` whose start fails (libpod's define.ExitCode): 127
    when the error says "not found", "no such file" or "executable path is empty", else 126 --
    the error's words unchanged. Anything but pallet's errors is raised as it is, and so are
    state refusals (125)."""
    from ..errors import CommandNotFound, CommandNotRunnable, ContainerStateError, PalletError

    # pallet's own refusals of a state (a container to join that is not running) stay 125
    if not isinstance(e, PalletError) or isinstance(e, (CommandNotFound, CommandNotRunnable, ContainerStateError)):
        raise e
    low = str(e).lower()
    if "not found" in low or "no such file" in low or "executable path is empty" in low:
        raise CommandNotFound(str(e)) from None
    raise CommandNotRunnable(str(e)) from None


def cmd_run(args) -> int:
    from ..containers.attach import parse_detach_keys

    # podman 4.3 watches for the detach keys only when its stdin is a terminal; else they are input
    keys = parse_detach_keys(args.detach_keys) if args.interactive else b""
    keys = keys if os.isatty(0) else b""
    from . import container_run

    container_run.check_fds(args)  # before pallet opens files of its own
    ctrs = _containers(args)
    o = _options(args)
    container_run.warnings(args, _warn)
    container_run.before_create(args, ctrs)
    from .pod_members import pod_member

    with pod_member(args, ctrs, o, _pull_fn(args, ctrs.store), _warn) as member:  # --pod
        rec = ctrs.create(o, _pull_fn(args, ctrs.store), warn=_warn)
        member(rec)
    container_run.after_create(args, ctrs, rec)
    cid = rec["id"]
    if o.detach:
        try:
            ctrs.start(cid, warn=_warn, preserve_fds=args.preserve_fds)
        except BaseException as e:
            if o.rm:
                ctrs.remove(cid, force=True)
            _raise_start_error(e)
        print(cid)
        return 0
    try:
        started = ctrs.start(cid, attach=True, warn=_warn, preserve_fds=args.preserve_fds)
    except BaseException as e:
        if o.rm:
            ctrs.remove(cid, force=True)
        _raise_start_error(e)
    sock = started["attach"]
    from ..containers import attach

    streams = container_run.attach_streams(args)
    if streams is not None and not streams & {1, 2}:
        print(cid)  # podman's: neither stdout nor stderr attached
    stdin = 0 if o.interactive and (streams is None or 0 in streams) else None
    try:
        with attach.sig_proxy(ctrs, cid, args.sig_proxy), attach.raw_tty(0, o.interactive and o.tty):
            detached = attach.relay(sock, stdin, keys, streams=streams)
    finally:
        sock.close()
    if detached:  # the detach keys: it keeps running under conmon (podman prints a newline)
        print()
        return 0
    code = ctrs.wait(cid)
    if o.rm:  # this process holds it: conmon's exit command (cleanup --rm) waits, then finds it gone
        from ..errors import ContainerNotFound

        try:
            ctrs.remove(cid, force=True)
        except ContainerNotFound:  # removed meanwhile (rm -f)
            pass
    else:
        ctrs.cleanup(cid)
    if args.rmi and rec["metadata"]["pallet"]["image_id"]:  # --rootfs: no image
        container_run.remove_image(ctrs, rec["metadata"]["pallet"]["image_id"])
    return code


def cmd_start(args) -> int:
    from ..errors import UsageError

    if args.all and args.containers:
        raise UsageError("either start all containers or the container(s) provided in the arguments")
    ctrs = _containers(args)
    if args.filter:  # podman's: of the named containers (or all of them), those its ps filters match
        keep = _ps_filter(args.filter, lambda t: _created(ctrs.get(t)))
        pool = args.containers or [c["id"] for c in ctrs.list()]
        names = [t for t in pool if keep(_filter_entry(ctrs, ctrs.get(t)))
                 and (not args.all or _public_state(ctrs.state(ctrs.get(t)["id"])) != "running")]
    else:
        names = _named_or_all(ctrs, args, lambda st: st != "running", "start")
    if args.attach and len(names) > 1:
        from ..errors import UsageError

        raise UsageError("you cannot start and attach multiple containers at once")
    for text in names:
        if args.attach:
            started = ctrs.start(text, attach=True, warn=_warn)
            try:
                from ..containers.attach import relay, sig_proxy

                with sig_proxy(ctrs, started["id"]):
                    relay(started["attach"], stdin_fd=0 if args.interactive else None)
            finally:
                started["attach"].close()
            code = ctrs.wait(started["id"])
            ctrs.cleanup(started["id"], rm=started["metadata"]["pallet"]["rm"])
            return code
        ctrs.start(text, warn=_warn)
        print(text)
    return 0


def _named_or_all(ctrs, args, pick, verb: str) -> list:
    """The containers a verb acts on: the named ones, or with ``--all`` every container whose
    podman state ``pick`` accepts (by ID, as podman prints them); both or neither: podman's error."""
    from ..errors import UsageError

    if args.all and args.containers:
        raise UsageError(f"either specify --all or the containers to {verb}, not both")
    if args.all and args.cidfile:
        raise UsageError("--all, --latest, and --cidfile cannot be used together")
    if not args.all:
        if not args.containers and not args.cidfile:
            raise UsageError(f"specify one or more containers to {verb} (or --all)")
        from .container_run import targets

        return targets(args)
    return [c["id"] for c in ctrs.list() if pick(_public_state(ctrs.state(c["id"])))]


def cmd_stop(args) -> int:
    from ..errors import ContainerNotFound

    ctrs = _containers(args)
    for text in _named_or_all(ctrs, args, lambda st: st in ("running", "paused"), "stop"):
        try:
            ctrs.stop(text, args.time, warn=_warn)
        except ContainerNotFound:
            if args.ignore:
                continue
            raise
        print(text)
    return 0


def kill_signal(text: str) -> int:
    """``kill -s``'s signal (a name or number; podman's error otherwise)."""
    from ..errors import OCIRuntimeError, UsageError
    from ..runtime.container import parse_signal

    try:
        return parse_signal(text)
    except OCIRuntimeError:
        raise UsageError(f"invalid signal: {text}") from None


def cmd_kill(args) -> int:
    sig = kill_signal(args.signal)
    ctrs = _containers(args)
    for text in _named_or_all(ctrs, args, lambda st: st in ("running", "paused"), "kill"):
        ctrs.kill(text, sig)
        print(text)
    return 0


def cmd_rm(args) -> int:
    from ..errors import ContainerNotFound
    from .common import targets_or_all

    from ..errors import UsageError
    from .container_run import targets

    if sum(map(bool, (args.all, args.cidfile, getattr(args, "latest", False)))) > 1:
        raise UsageError("--all, --latest, and --cidfile cannot be used together")
    if getattr(args, "latest", False):
        if args.containers:
            raise UsageError("--latest and containers cannot be used together")
        args.containers = [latest_container(args)]
    ctrs = _containers(args)
    if args.all:  # podman's: every pod goes with its containers
        from .pod_members import remove_all

        for cid in remove_all(ctrs, args.force, args.time):
            print(cid)
    if args.cidfile and not args.all:
        names = targets(args)
    else:
        names = targets_or_all(args.containers, args.all, lambda: [c["id"] for c in ctrs.list()],
                               "specify one or more containers to remove")
    from ..containers.depend import dependents, removal_order
    from ..errors import ContainerError

    for text in names:
        try:
            c = ctrs.get(text)
            cid = c["id"]
            if (c["metadata"]["pallet"].get("pod") or {}).get("infra"):
                if args.depend:  # the pod goes, with its containers (podman's)
                    from .pod_members import remove_pod_of

                    for gone in remove_pod_of(ctrs, c, args.force, args.time):
                        print(gone)
                    continue
                ctrs.remove(cid)  # refused (podman's words): it goes with its pod, not before its dependents
            deps = dependents(ctrs, cid)
            if deps and not (args.depend or args.all):
                raise ContainerError(f"container {cid} has dependent containers which must be removed before it: "
                                     f"{','.join(deps)}: dependency error")
            for dep in (removal_order(ctrs, cid)[:-1] if deps else []):  # --depend, --all: dependents first
                try:
                    print(ctrs.remove(dep, force=args.force, timeout=args.time, volumes=args.volumes))
                except ContainerNotFound:
                    pass
            cid = ctrs.remove(text, force=args.force, timeout=args.time, volumes=args.volumes)
        except ContainerNotFound:
            if args.ignore or args.force or args.all:  # podman: rm --force of a missing container succeeds
                continue  # (--all: removed meanwhile, e.g. as a dependent)
            raise
        print(cid if args.all or text == cid else text)
    return 0


def cmd_wait(args) -> int:
    ctrs = _containers(args)
    if args.condition:
        from .container_run import wait_condition

        for text in args.containers:
            print(wait_condition(ctrs, text, args.condition, args.interval, _public_state))
        return 0
    for text in args.containers:
        print(ctrs.wait(text))
    return 0


def cmd_cleanup(args) -> int:
    ctrs = _containers(args)
    from .container_life import cmd_cleanup_then_restart

    from .pod_members import exit_policy

    for text in args.containers:
        then = exit_policy(ctrs, text)  # a pod's member: its pod's exit policy, after the cleanup
        ctrs.cleanup(text, rm=args.rm)
        if not args.rm:
            cmd_cleanup_then_restart(ctrs, text)  # the restart policy
        then()
    return 0


def cmd_exists(args) -> int:
    _containers(args).get(args.container)
    return 0


# -- ps / inspect ----------------------------------------------------------------------------

def _public_state(st: dict) -> str:
    from ..containers.inspect import public_state

    return public_state(st)


def _status(st: dict, meta: dict | None = None) -> str:
    from ._table import ago

    s = st.get("state")
    if s == "running" and st.get("paused"):
        return "Paused"
    if s == "running":
        from ..containers.health import status as health

        h = health(st, meta or {})["Status"]
        return "Up " + ago(st.get("started_at")) + (f" ({h})" if h else "")
    if s in ("exited", "stopped"):
        return f"Exited ({st.get('exit_code')}) {ago(st.get('finished_at'))}"
    return "Created"


def _ports_text(ports: list) -> str:
    out = []
    for p in ports or []:
        host = p.get("host_ip") or "0.0.0.0"
        n = p.get("range") or 1
        hp, cp = p.get("host_port"), p.get("container_port")
        if n > 1:
            out.append(f"{host}:{hp}-{hp + n - 1}->{cp}-{cp + n - 1}/{p.get('protocol', 'tcp')}")
        else:
            out.append(f"{host}:{hp}->{cp}/{p.get('protocol', 'tcp')}")
    return ", ".join(out)


def parse_time_or_none(text):
    from ._table import parse_time

    try:
        return parse_time(text) if text else None
    except ValueError:
        return None


def _ps_entry(ctrs, c) -> dict:
    from .pod_members import pod_ports

    meta = c["metadata"]["pallet"]
    st = ctrs.state(c["id"])
    args = meta.get("args") or []
    state = _public_state(st)
    return {"AutoRemove": meta.get("rm", False), "Command": args, "Created": int(parse_time_or_none(c["created"]) or 0),
            "CreatedAt": c["created"], "Exited": state in ("exited", "stopped"), "ExitedAt": 0,
            "ExitCode": st.get("exit_code") or 0, "Id": c["id"], "Image": meta.get("image_name"),
            "ImageID": meta.get("image_id"), "IsInfra": bool((meta.get("pod") or {}).get("infra")),
            "Labels": meta.get("labels") or None,
            "Mounts": [b["destination"] for b in meta.get("binds") or []], "Names": [meta["name"]],
            "Namespaces": {}, "Networks": list((st.get("network_results") or {}).keys()),
            "Pid": st.get("pid") or 0, "Pod": (meta.get("pod") or {}).get("id") or "", "PodName": "",
            "Ports": meta.get("publish") or pod_ports(ctrs, meta) or None,
            "Size": None, "StartedAt": int(parse_time_or_none(st.get("started_at")) or 0),
            "State": state, "Status": _status(st, meta)}


PS_FILTERS = ("id", "name", "status", "exited", "label", "ancestor", "network", "since", "before", "until", "volume",
              "restart-policy", "pod")
#: restart-policy= values (podman's; none: no policy given)
RESTART_FILTER = ("always", "on-failure", "unless-stopped", "no", "none")
STATUSES = ("created", "running", "paused", "stopped", "exited", "unknown")


def _ps_filter(texts: list[str], created_of=None, pod_of=None):
    """podman's ps filters, every value checked before anything is listed; ``created_of(name)``:
    a container's creation time (since=, before=), asked when a filter first needs it;
    ``pod_of(text)``: the ID of the pod a name or ID prefix names ("" for none)."""
    if not texts:
        return lambda e: True
    import re

    from ..errors import UsageError
    from ._filters import match_labels, split

    groups: dict = {}
    for text in texts:
        key, neg, value = split(text, PS_FILTERS, "ps")
        if key in ("id", "name"):
            try:
                rx = re.compile(value)
            except re.error as e:
                raise UsageError(f"invalid filter {text!r}: {e}") from None
            test = (lambda e, rx=rx: rx.search(e["Id"]) is not None) if key == "id" else \
                (lambda e, rx=rx: any(rx.search(n) for n in e["Names"]))
        elif key == "status":
            if value not in STATUSES:
                raise UsageError(f"invalid filter {text!r}: status must be one of {', '.join(STATUSES)}")
            # podman's: "stopped" is "exited" (a container that ran and stopped)
            test = lambda e, v="exited" if value == "stopped" else value: e["State"] == v  # noqa: E731
        elif key == "exited":
            if not (value.isascii() and value.lstrip("-").isdigit()):
                raise UsageError(f"invalid filter {text!r}: exited wants an exit code")
            test = lambda e, v=int(value): e["Exited"] and e["ExitCode"] == v  # noqa: E731
        elif key == "label":
            test = lambda e, v=value: match_labels(v, e["Labels"] or {})  # noqa: E731
        elif key == "ancestor":
            test = lambda e, v=value: v in (e["Image"], e["ImageID"]) or (len(v) >= 3 and  # noqa: E731
                                                                         (e["ImageID"] or "").startswith(v))
        elif key in ("since", "before", "until"):
            test = _time_filter(key, value, text, created_of)
        elif key == "volume":
            test = lambda e, v=value: v in e["_volumes"]  # noqa: E731
        elif key == "pod":
            test = _pod_filter(value, pod_of)
        elif key == "restart-policy":
            if value not in RESTART_FILTER:
                raise UsageError(f"{value} invalid restart policy")
            test = lambda e, v="no" if value == "none" else value: e["_restart"] == v  # noqa: E731
        else:
            test = lambda e, v=value: v in e["Networks"]  # noqa: E731
        groups.setdefault(key, []).append((neg, test))
    return lambda e: all(any(t(e) != neg for neg, t in tests) for tests in groups.values())


def _pod_filter(value: str, pod_of):
    """pod=NAME|ID: the containers of that pod (``pod_of`` resolves it when first needed)."""
    ref: list = []

    def test(e):
        if not ref:
            ref.append(pod_of(value) if pod_of else value)
        return bool(ref[0]) and e["Pod"] == ref[0]

    return test


def _time_filter(key: str, value: str, text: str, created_of):
    """since=CONTAINER / before=CONTAINER (created after / before it), until=TIME (created before)."""
    import time

    from ._filters import parse_until

    if key == "until":
        limit = parse_until(value, time.time())
        return lambda e: e["_created"] < limit
    ref: list = []

    def test(e):
        if not ref:
            ref.append(created_of(value))
        return e["_created"] > ref[0] if key == "since" else e["_created"] < ref[0]

    return test


#: ps --sort: podman's keys
PS_SORT = {"command": lambda e: " ".join(e["Command"]), "created": lambda e: e["_created"],
           "id": lambda e: e["Id"], "image": lambda e: e["Image"] or "", "names": lambda e: e["Names"][0],
           "runningfor": lambda e: -e["_created"], "size": lambda e: 0, "status": lambda e: e["Status"]}


def _created(c: dict) -> float:
    """A container's creation time, to the nanosecond when its record has it (since=, before=)."""
    return parse_time_or_none(c["metadata"]["pallet"].get("created_at") or c["created"]) or 0


def _filter_entry(ctrs, c: dict, e: dict | None = None) -> dict:
    """A ps row with what only the filters read (``_volumes``, ``_created``, ``_restart``)."""
    e = e if e is not None else _ps_entry(ctrs, c)
    meta = c["metadata"]["pallet"]
    e["_volumes"], e["_created"] = _volumes_of(meta), _created(c)
    e["_restart"] = meta.get("restart_policy") or "no"
    return e


def _volumes_of(meta: dict) -> set:
    """What ps's volume= filter matches: a mount's destination, a bind's source, a volume's name."""
    out = set()
    for m in (meta.get("binds") or []) + (meta.get("mounts") or []) + (meta.get("volumes") or []):
        if isinstance(m, dict):
            out.update(str(m[k]) for k in ("source", "destination", "name") if m.get(k))
    return out


def cmd_ps(args) -> int:
    from ._template import Struct, render_rows
    from .common import print_ids_or_json
    from ._table import ago, table

    sort_key = PS_SORT.get(args.sort)
    if sort_key is None:
        from ..errors import UsageError

        raise UsageError(f"invalid argument \"{args.sort}\" for \"--sort\" flag: \"{args.sort}\" is not a valid "
                         f"value.  Choose from: \"{', '.join(sorted(PS_SORT))}\"")
    from .pod_members import pod_id, pod_names

    keep = _ps_filter(args.filter, lambda text: _created(ctrs.get(text)),
                      lambda text: pod_id(ctrs, text))
    show_all = args.all or any(f.partition("=")[0].rstrip("!") in ("status", "exited") for f in args.filter)
    ctrs = _containers(args)
    entries = []
    for c in ctrs.list():
        e = _ps_entry(ctrs, c)
        e = _filter_entry(ctrs, c, e)
        if (show_all or e["State"] == "running") and keep(e):
            entries.append(e)
    entries.sort(key=sort_key)
    for e in entries:
        del e["_volumes"], e["_created"], e["_restart"]
    if args.pod:  # podman fills PodName only then
        names = pod_names(ctrs)
        for e in entries:
            e["PodName"] = names.get(e["Pod"], "")
    if print_ids_or_json(entries, args):
        return 0
    if args.format and args.format != "table":
        rows = []
        for e in entries:
            d = dict(e)
            d["ID"] = e["Id"] if args.no_trunc else e["Id"][:12]
            d["Names"] = e["Names"][0]
            d["Command"] = " ".join(e["Command"])
            d["Ports"] = _ports_text(e["Ports"])
            d["CreatedHuman"] = ago(e["CreatedAt"])
            d["Pod"] = e["Pod"] if args.no_trunc else e["Pod"][:12]
            rows.append(Struct("container", d))
        headers = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedHuman": "CREATED",
                   "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE", "Pid": "PID",
                   "Labels": "LABELS", "Networks": "NETWORKS", "ExitCode": "EXIT CODE", "Pod": "POD ID",
                   "PodName": "PODNAME"}
        out = render_rows(args.format, rows, headers, "ps", noheading=args.noheading)
        if out:
            print(out)
        return 0
    rows = []
    for e in entries:
        cmd = " ".join(e["Command"])
        rows.append([e["Id"] if args.no_trunc else e["Id"][:12], e["Image"] or "",
                     cmd if args.no_trunc or len(cmd) <= 17 else cmd[:17] + "...", ago(e["CreatedAt"]),
                     e["Status"], _ports_text(e["Ports"]), e["Names"][0]]
                    + ([e["Pod"] if args.no_trunc else e["Pod"][:12], e["PodName"]] if args.pod else []))
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
                + (["POD ID", "PODNAME"] if args.pod else []), rows, noheading=args.noheading))
    return 0


def inspect_doc(ctrs, c) -> dict:
    from ..containers.inspect import inspect_doc as doc

    return doc(ctrs, c)


def inspect_one(args, name: str):
    """(JSON document, template data) of one container, for the top-level ``inspect``
    (ContainerNotFound when there is none by that name or ID)."""
    ctrs = _containers(args)
    doc = inspect_doc(ctrs, ctrs.get(name))
    return doc, doc


def latest_container(args) -> str:
    """podman's ``--latest``: the ID of the container created last (ContainerNotFound when the
    store has none)."""
    from ..errors import ContainerNotFound

    recs = _containers(args).list()
    if not recs:
        raise ContainerNotFound("no containers to use with --latest")
    return max(recs, key=_created)["id"]  # to the nanosecond: two creates within a second differ


def cmd_inspect(args) -> int:
    import json

    ctrs = _containers(args)
    docs = [inspect_doc(ctrs, ctrs.get(t)) for t in args.containers]
    if args.format:
        from ._template import render

        for d in docs:
            print(render(args.format, d, "inspect"))
        return 0
    print(json.dumps(docs, indent=4))
    return 0


def cmd_logs(args) -> int:
    from .container_logs import cmd_logs as logs

    return logs(args)
