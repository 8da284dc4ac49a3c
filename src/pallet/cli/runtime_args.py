"""``pallet-runtime``'s command line, parsed without argparse (it imports ``re`` and ``gettext``,
which would cost more than half of runc's whole ``run``): the usage text, the global options,
one option table per command, runc's ``update`` flags, and the parser. Flags are runc's
(urfave/cli style: ``--flag value``, ``--flag=value``, ``-flag value``, short aliases).
"""

USAGE = """pallet-runtime: an OCI runtime (runc's command line)

usage: pallet-runtime [global options] COMMAND [options] [arguments]

global options:
  --root DIR          state directory (default /run/pallet-runtime)
  --log FILE          also write errors to FILE
  --log-format FMT    text or json (for --log)
  --debug             more detail on errors
  --systemd-cgroup    use systemd for cgroups (refused: no systemd cgroup manager; cgroupfs is used)

commands:
  spec [--bundle DIR] [--rootless]       write a default config.json
  features                               what this runtime supports, as JSON
  create [options] ID                    create a container (--bundle, --console-socket, --pid-file,
                                         --no-pivot, --no-new-keyring, --preserve-fds N)
  start ID                               start a created container
  run [options] ID                       create + start (also --detach, --keep)
  state ID                               the container's state, as JSON
  kill [--all] ID [SIGNAL]               send a signal (default SIGTERM)
  delete [--force] ID                    delete a container
  list [--format table|json] [--quiet]   list containers
  ps [--format table|json] ID [PS ARGS]  processes of a container
  pause ID / resume ID                   freeze / thaw every process of a container
  update [options] ID                    change resources: -r/--resources FILE (JSON, - for stdin),
                                         --memory, --memory-reservation, --memory-swap, --kernel-memory,
                                         --kernel-memory-tcp, --cpu-share, --cpu-period, --cpu-quota,
                                         --cpu-rt-period, --cpu-rt-runtime, --cpuset-cpus, --cpuset-mems,
                                         --pids-limit, --blkio-weight
  events [--stats] [--interval 5s] ID    resource usage as JSON (once with --stats, else a stream)
  exec [options] ID [COMMAND...]         run a process in a container (--process FILE, --tty, --cwd,
                                         --env K=V, --user UID[:GID], --cap CAP, --detach, --pid-file,
                                         --console-socket, --additional-gids, --no-new-privs,
                                         --apparmor, --process-label, --preserve-fds)
"""

#: runc update's flags: name -> (resource section, key, kind)
UPDATE_FLAGS = {
    "memory": ("memory", "limit", "size"), "memory-reservation": ("memory", "reservation", "size"),
    "memory-swap": ("memory", "swap", "size"), "kernel-memory": ("memory", "kernel", "size"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "size"), "cpu-share": ("cpu", "shares", "int"),
    "cpu-period": ("cpu", "period", "int"), "cpu-quota": ("cpu", "quota", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"), "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpuset-cpus": ("cpu", "cpus", "str"), "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"), "blkio-weight": ("blockIO", "weight", "int"),
}

#: per command: option name -> (destination, takes a value? True, False or "list" (repeatable))
_CREATE = {
    "bundle": ("bundle", True), "b": ("bundle", True), "console-socket": ("console_socket", True),
    "pid-file": ("pid_file", True), "no-pivot": ("no_pivot", False), "no-new-keyring": ("no_new_keyring", False),
    "preserve-fds": ("preserve_fds", True),
}
COMMANDS = {
    "create": _CREATE,
    "run": dict(_CREATE, detach=("detach", False), d=("detach", False), keep=("keep", False),
                **{"no-subreaper": ("no_subreaper", False)}),
    "start": {},
    "state": {},
    "kill": {"all": ("all", False), "a": ("all", False)},
    "delete": {"force": ("force", False), "f": ("force", False)},
    "list": {"format": ("format", True), "f": ("format", True), "quiet": ("quiet", False), "q": ("quiet", False)},
    "ps": {"format": ("format", True), "f": ("format", True)},
    "spec": {"bundle": ("bundle", True), "b": ("bundle", True), "rootless": ("rootless", False)},
    "features": {},
    "pause": {},
    "resume": {},
    "events": {"stats": ("stats", False), "interval": ("interval", True)},
    "update": {"resources": ("resources", True), "r": ("resources", True),
               **{name: (name, True) for name in UPDATE_FLAGS}},
    "exec": {"process": ("process", True), "p": ("process", True), "tty": ("tty", False), "t": ("tty", False),
             "cwd": ("cwd", True), "env": ("env", "list"), "e": ("env", "list"), "user": ("user", True),
             "u": ("user", True), "cap": ("cap", "list"), "c": ("cap", "list"), "detach": ("detach", False),
             "d": ("detach", False), "pid-file": ("pid_file", True), "console-socket": ("console_socket", True),
             "additional-gids": ("additional_gids", "list"), "g": ("additional_gids", "list"),
             "no-new-privs": ("no_new_privs", False), "apparmor": ("apparmor", True),
             "process-label": ("process_label", True), "preserve-fds": ("preserve_fds", True),
             "cgroup": ("cgroup", "list"), "ignore-paused": ("ignore_paused", False)},
}
GLOBAL = {
    "root": ("root", True), "log": ("log", True), "log-format": ("log_format", True),
    "debug": ("debug", False), "systemd-cgroup": ("systemd_cgroup", False), "rootless": ("rootless_g", True),
    "criu": ("criu", True),
}


class Usage(Exception):
    pass


def _parse_opts(argv, table, opts, stop_at_positional):
    """Consume options from ``argv`` into ``opts``; returns the rest (positionals...)."""
    i = 0
    rest = []
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i + 1:])
            break
        if a.startswith("-") and len(a) > 1:
            name, eq, value = a.lstrip("-").partition("=")
            if name in ("h", "help"):
                raise Usage("help")
            if name not in table:
                raise Usage(f"flag provided but not defined: -{name}")
            dest, takes = table[name]
            if takes:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise Usage(f"flag needs an argument: -{name}")
                    value = argv[i]
                if takes == "list":
                    opts.setdefault(dest, []).append(value)
                else:
                    opts[dest] = value
            else:
                opts[dest] = value.lower() not in ("false", "0") if eq else True
            i += 1
            continue
        if stop_at_positional:
            rest.extend(argv[i:])
            break
        rest.append(a)
        i += 1
    return rest


def parse(argv):
    opts = {}
    rest = _parse_opts(argv, GLOBAL, opts, True)
    if not rest:
        raise Usage("help")
    cmd = rest[0]
    if cmd in ("--version", "-v", "version"):
        return "version", opts, []
    if cmd not in COMMANDS:
        raise Usage(f"no such command {cmd!r}")
    # ps takes ps(1) arguments after the id: stop at the first positional for it
    args = _parse_opts(rest[1:], COMMANDS[cmd], opts, cmd in ("ps", "exec"))
    if cmd == "ps" and args:
        extra = _parse_opts(args[1:], COMMANDS[cmd], opts, True) if args[1:2] and args[1] in ("-f", "--format") \
            else args[1:]
        args = args[:1] + extra
    if cmd == "exec" and args:
        args = args[:1] + _parse_opts(args[1:], COMMANDS[cmd], opts, True)
    return cmd, opts, args


def need_id(cmd, args, n_max=1):
    if not args:
        raise Usage(f"{cmd}: a container id is required")
    if len(args) > n_max:
        raise Usage(f"{cmd}: unexpected arguments {' '.join(args[n_max:])!r}")
    return args[0]


def count(text, flag):
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise Usage(f"{flag}: {text!r} is not a number") from None
    if n < 0:
        raise Usage(f"{flag}: must not be negative")
    return n
