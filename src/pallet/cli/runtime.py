"""``pallet-runtime``: an OCI runtime with runc's command line.

Its own small parser instead of argparse: argparse imports ``re`` and ``gettext``,
which would cost more than half of runc's whole ``run``. Flags are runc's (urfave/cli
style: ``--flag value``, ``--flag=value``, ``-flag value``, short aliases); errors are
one line on stderr (and in ``--log`` as runc writes it), exit code 1.
"""

import os
import sys

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
_UPDATE_FLAGS = {
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
               **{name: (name, True) for name in _UPDATE_FLAGS}},
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


def _need_id(cmd, args, n_max=1):
    if not args:
        raise Usage(f"{cmd}: a container id is required")
    if len(args) > n_max:
        raise Usage(f"{cmd}: unexpected arguments {' '.join(args[n_max:])!r}")
    return args[0]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-v"):
        from .._version import __version__

        print(f"pallet-runtime version {__version__}\nspec: 1.0.2-dev")
        return 0
    try:
        cmd, opts, args = parse(argv)
    except Usage as e:
        if str(e) == "help":
            sys.stdout.write(USAGE)
            return 0
        sys.stderr.write(f"pallet-runtime: {e}\n")
        return 1
    from ..errors import PalletError

    try:
        return _dispatch(cmd, opts, args) or 0
    except Usage as e:
        _error(opts, str(e))
        return 1
    except PalletError as e:
        _error(opts, str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _error(opts, "interrupted")
        return 130
    except OSError as e:
        if opts.get("debug"):
            raise
        _error(opts, f"{e.strerror or e}{': ' + str(e.filename) if getattr(e, 'filename', None) else ''}")
        return 1
    except Exception as e:  # a bug: still one line (--debug shows the traceback)
        if opts.get("debug"):
            raise
        _error(opts, f"{cmd}: internal error: {type(e).__name__}: {e} (please report it)")
        return 1


def _error(opts, msg):
    msg = " ".join(msg.split("\n"))
    sys.stderr.write(f"pallet-runtime: {msg}\n")
    log = opts.get("log")
    if log:
        try:
            with open(log, "a") as f:
                if opts.get("log_format") == "json":
                    from ..runtime import _json
                    from ..runtime.container import _now

                    f.write(_json.dumps({"level": "error", "msg": msg, "time": _now()}) + "\n")
                else:
                    f.write(f"level=error msg={msg!r}\n")
        except OSError:
            pass


def _dispatch(cmd, o, args):
    root = o.get("root") or "/run/pallet-runtime"
    if o.get("systemd_cgroup"):
        from ..errors import RuntimeError_

        if not os.path.isdir("/run/systemd/system"):
            raise RuntimeError_("--systemd-cgroup: systemd is not running on this host")
        raise RuntimeError_("--systemd-cgroup: the systemd cgroup manager is not implemented yet")
    if cmd == "spec":
        return _spec(o, args)
    if cmd == "features":
        from ..runtime.features import features
        from ..runtime._json import dumps_pretty

        print(dumps_pretty(features(), indent="    "))
        return 0
    if cmd in ("create", "run"):
        from ..runtime import container

        cid = _need_id(cmd, args)
        kw = {"console_socket": o.get("console_socket"), "pid_file": o.get("pid_file"),
              "no_pivot": o.get("no_pivot", False), "no_new_keyring": o.get("no_new_keyring", False),
              "preserve_fds": _int(o.get("preserve_fds", "0"), "--preserve-fds"),
              "systemd_cgroup": o.get("systemd_cgroup", False)}
        bundle = o.get("bundle") or os.getcwd()
        if cmd == "create":
            c, _pid = container.create(root, cid, bundle, **kw)
            c.close()
            return 0
        return container.run(root, cid, bundle, detach=o.get("detach", False), keep=o.get("keep", False), **kw)
    from ..runtime import container

    if cmd == "start":
        container.start(root, _need_id(cmd, args))
    elif cmd == "state":
        from ..runtime._json import dumps_pretty

        print(dumps_pretty(container.state(root, _need_id(cmd, args)), indent="  "))
    elif cmd == "kill":
        cid = _need_id(cmd, args, 2)
        sig = container.parse_signal(args[1]) if len(args) > 1 else 15
        container.kill(root, cid, sig, o.get("all", False))
    elif cmd == "delete":
        container.delete(root, _need_id(cmd, args), o.get("force", False))
    elif cmd == "list":
        return _list(root, o)
    elif cmd == "ps":
        return _ps(root, o, args)
    elif cmd == "pause":
        container.pause(root, _need_id(cmd, args))
    elif cmd == "resume":
        container.resume(root, _need_id(cmd, args))
    elif cmd == "update":
        container.update(root, _need_id(cmd, args), _update_resources(o))
    elif cmd == "events":
        return _events(root, o, _need_id(cmd, args))
    elif cmd == "exec":
        return _exec(root, o, args)
    return 0


def _update_resources(o):
    from ..errors import RuntimeError_

    if o.get("resources"):
        from ..runtime import _json

        src = o["resources"]
        try:
            raw = sys.stdin.read() if src == "-" else open(src).read()
        except OSError as e:
            raise RuntimeError_(f"--resources {src}: {e.strerror}") from None
        try:
            res = _json.loads(raw)
        except ValueError as e:
            raise RuntimeError_(f"--resources {src}: not JSON: {e}") from None
        if not isinstance(res, dict):
            raise RuntimeError_(f"--resources {src}: must be a JSON object (linux.resources)")
    else:
        res = {}
    for name, (section, key, kind) in _UPDATE_FLAGS.items():
        v = o.get(name)
        if v is None:
            continue
        if kind == "size":
            from ..runtime.cgroups import parse_size

            val = parse_size(v, "--" + name)
        elif kind == "int":
            try:
                val = int(v)
            except ValueError:
                raise Usage(f"--{name}: {v!r} is not a number") from None
        else:
            val = v
        res.setdefault(section, {})[key] = val
    if not res:
        raise Usage("update: nothing to update (give --resources or a flag such as --memory)")
    return res


def _exec(root, o, args):
    from ..errors import RuntimeError_
    from ..runtime import exec as _exec_mod
    from ..runtime import container

    if not args:
        raise Usage("exec: a container id is required")
    cid, command = args[0], args[1:]
    if o.get("process"):
        if command:
            raise Usage("exec: give either --process or a command, not both")
        proc = _exec_mod.load_process(o["process"])
    else:
        if not command:
            raise Usage("exec: a command is required (or --process FILE)")
        with container._state.open_container(root, cid, lock=False) as c:
            base = c.state["config"]["process"]
        proc = _exec_mod.process_from_args(
            base, command, tty=o.get("tty", False), cwd=o.get("cwd"), env=o.get("env") or (), user=o.get("user"),
            caps=o.get("cap") or (), additional_gids=o.get("additional_gids") or (),
            no_new_privs=o.get("no_new_privs", False), apparmor=o.get("apparmor"),
            process_label=o.get("process_label"))
    if o.get("cgroup"):
        raise RuntimeError_("exec --cgroup: joining a sub-cgroup is not supported by pallet-runtime")
    return _exec_mod.exec_(root, cid, proc, detach=o.get("detach", False), pid_file=o.get("pid_file"),
                           console_socket=o.get("console_socket"),
                           preserve_fds=_int(o.get("preserve_fds", "0"), "--preserve-fds"),
                           ignore_paused=o.get("ignore_paused", False))


def _events(root, o, cid):
    from ..runtime import container
    from ..runtime._json import dumps

    if o.get("stats"):
        print(dumps(container.stats(root, cid)), flush=True)
        return 0
    import time

    iv = o.get("interval") or "5s"
    try:
        secs = float(iv[:-2]) / 1000 if iv.endswith("ms") else float(iv.rstrip("s"))
    except ValueError:
        raise Usage(f"--interval: {iv!r} is not a duration like 5s") from None
    if secs <= 0:
        raise Usage("--interval: must be greater than zero")
    from ..errors import RuntimeError_

    container.stats(root, cid)  # a container that is not there is an error, as with runc
    watch = container.oom_watch(root, cid)  # OOMs are printed as they happen: {"type":"oom","id":ID}
    import select

    poller = select.poll()
    if watch is not None:
        poller.register(watch.fileno(), select.POLLIN)
    pidfd = None
    try:  # init's exit ends the wait at once (the stream ends with the container)
        pidfd = os.pidfd_open(container.state(root, cid)["pid"])
        poller.register(pidfd, select.POLLIN)
    except (OSError, KeyError, RuntimeError_):
        pass
    try:
        while True:
            try:
                ev = container.stats(root, cid)
            except RuntimeError_:
                return 0  # stopped or deleted: the stream ends
            try:
                print(dumps(ev), flush=True)
                deadline = time.monotonic() + secs
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    ready = {fd for fd, _ in poller.poll(left * 1000)}
                    if watch is not None and watch.fileno() in ready:
                        for _ in range(watch.read()):
                            print(dumps({"type": "oom", "id": cid}), flush=True)
                    if pidfd is not None and pidfd in ready:
                        poller.unregister(pidfd)
                        break  # init is gone: one more look at the container ends the stream
            except BrokenPipeError:
                return 0
    finally:
        if watch is not None:
            watch.close()
        if pidfd is not None:
            os.close(pidfd)


def _int(text, flag):
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise Usage(f"{flag}: {text!r} is not a number") from None
    if n < 0:
        raise Usage(f"{flag}: must not be negative")
    return n


def _spec(o, args):
    from ..errors import RuntimeError_
    from ..runtime._json import dumps_pretty
    from ..runtime.spec import default_spec

    if args:
        raise Usage(f"spec: unexpected arguments {' '.join(args)!r}")
    bundle = o.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeError_(f"File {path} exists. Remove it first")
    spec = default_spec(rootless=o.get("rootless", False), uid=os.geteuid(), gid=os.getegid())
    try:
        with open(path, "w") as f:
            f.write(dumps_pretty(spec) + "\n")
    except OSError as e:
        raise RuntimeError_(f"cannot write {path}: {e.strerror}") from None
    return 0


def _list(root, o):
    from ..runtime import container

    items = container.list_containers(root)
    fmt = o.get("format") or "table"
    if o.get("quiet"):
        for it in items:
            print(it["id"])
        return 0
    if fmt == "json":
        from ..runtime._json import dumps

        print(dumps(items))
        return 0
    if fmt != "table":
        raise Usage(f"invalid format option {fmt!r}: table or json")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for it in items:
        rows.append((it["id"], str(it["pid"]), it["status"], it["bundle"], it["created"], it["owner"] or "root"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("   ".join(r[i].ljust(widths[i]) for i in range(5)) + "   " + r[5])
    return 0


def _ps(root, o, args):
    from ..runtime import container

    cid = _need_id("ps", args[:1])
    pids = container.ps(root, cid)
    fmt = o.get("format") or "table"
    if fmt == "json":
        from ..runtime._json import dumps

        print(dumps(pids))
        return 0
    if fmt != "table":
        raise Usage(f"invalid format option {fmt!r}: table or json")
    import subprocess

    ps_args = args[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode:
        from ..errors import RuntimeError_

        raise RuntimeError_(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        from ..errors import RuntimeError_

        raise RuntimeError_("ps: no PID column in the output")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        f = line.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in wanted:
            print(line)
    return 0


def run_main():
    """Console-script entry: skip the interpreter's teardown (start-up *and* exit time count)."""
    rc = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(rc if isinstance(rc, int) else 1)


if __name__ == "__main__":
    run_main()
