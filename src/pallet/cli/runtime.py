"""``pallet-runtime``: an OCI runtime with runc's command line.

The command line is parsed by ``runtime_args`` (option tables, no argparse); here each
command is a small handler in ``HANDLERS`` that calls the runtime module of its verb
(``runtime.create``, ``runtime.run``, ...); the longer ones (update, exec, events, list,
ps, spec) are in ``runtime_cmds``, imported only when they run. Errors are one line on
stderr (and in ``--log`` as runc writes it), exit code 1.
"""

import os
import sys

from .runtime_args import USAGE, Usage, count, need_id, parse


def _version(root=None, o=None, args=None):
    from .._version import __version__

    print(f"pallet-runtime version {__version__}\nspec: 1.0.2-dev")


#: the commands a container engine runs for every container (and ``features``, which a build
#: asks first): ``run_main`` preloads their snapshot (``_std.importer.preload``: the modules
#: they loaded last time, executed without importlib's bookkeeping)
PRELOADED = ("create", "start", "run", "kill", "delete", "state", "features")


def main(argv=None, *, preload=False):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-v"):
        _version()
        return 0
    try:
        cmd, opts, args = parse(argv)
    except Usage as e:
        if str(e) == "help":
            sys.stdout.write(USAGE)
            return 0
        sys.stderr.write(f"pallet-runtime: {e}\n")
        return 1
    if preload and cmd in PRELOADED:
        from .._std import importer

        importer.preload("runtime-" + cmd)
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
                    from .._std import json as _json
                    from ..runtime.container import timestamp

                    f.write(_json.dumps({"level": "error", "msg": msg, "time": timestamp()}, separators=(",", ":")) + "\n")
                else:
                    f.write(f"level=error msg={msg!r}\n")
        except OSError:
            pass


def _dispatch(cmd, o, args):
    root = o.get("root") or "/run/pallet-runtime"
    if o.get("systemd_cgroup"):
        from ..errors import OCIRuntimeError

        if not os.path.isdir("/run/systemd/system"):
            raise OCIRuntimeError("--systemd-cgroup: systemd is not running on this host")
        raise OCIRuntimeError("--systemd-cgroup: the systemd cgroup manager is not implemented yet")
    return HANDLERS[cmd](root, o, args)


def _create_options(o):
    return {"console_socket": o.get("console_socket"), "pid_file": o.get("pid_file"),
            "no_pivot": o.get("no_pivot", False), "no_new_keyring": o.get("no_new_keyring", False),
            "preserve_fds": count(o.get("preserve_fds", "0"), "--preserve-fds"),
            "systemd_cgroup": o.get("systemd_cgroup", False)}


def _create(root, o, args):
    from ..runtime.create import create

    cid = need_id("create", args)
    c, _pid = create(root, cid, o.get("bundle") or os.getcwd(), **_create_options(o))
    c.close()


def _run(root, o, args):
    from ..runtime.run import run

    cid = need_id("run", args)
    return run(root, cid, o.get("bundle") or os.getcwd(), detach=o.get("detach", False), keep=o.get("keep", False),
               **_create_options(o))


def _start(root, o, args):
    from ..runtime.start import start

    start(root, need_id("start", args))


def _state(root, o, args):
    from .._std.json import dumps
    from ..runtime.query import state

    print(dumps(state(root, need_id("state", args)), indent="  "))


def _kill(root, o, args):
    from ..runtime.kill import kill, parse_signal

    cid = need_id("kill", args, 2)
    kill(root, cid, parse_signal(args[1]) if len(args) > 1 else 15, o.get("all", False))


def _delete(root, o, args):
    from ..runtime.delete import delete

    delete(root, need_id("delete", args), o.get("force", False))


def _pause(root, o, args):
    from ..runtime.control import pause

    pause(root, need_id("pause", args))


def _resume(root, o, args):
    from ..runtime.control import resume

    resume(root, need_id("resume", args))


def _features(root, o, args):
    from .._std.json import dumps
    from ..runtime.features import features

    print(dumps(features(), indent="    "))


def _later(name):
    """A command of ``runtime_cmds``, imported when it runs."""
    def handler(root, o, args):
        from . import runtime_cmds

        return getattr(runtime_cmds, name)(root, o, args)
    return handler


#: command -> handler(root, options, arguments) -> exit code (None: 0); options per command: COMMANDS
HANDLERS = {
    "create": _create, "run": _run, "start": _start, "state": _state, "kill": _kill, "delete": _delete,
    "pause": _pause, "resume": _resume, "features": _features, "spec": _later("spec"), "list": _later("list_"),
    "ps": _later("ps"), "update": _later("update"), "events": _later("events"), "exec": _later("exec_"),
    "version": _version,
}


def run_main():
    """Console-script entry: no cyclic garbage collection (a command lives for milliseconds: the
    collections its imports set off were a tenth of a ``run``'s instructions, and a collection in
    the forked init would copy every page it touches; ``events``, which runs on, turns it back on),
    pallet's modules through ``_std.importer`` (half importlib's instructions each; a lifecycle
    command's from its snapshot, without importlib's bookkeeping), and no interpreter teardown
    (start-up *and* exit time count)."""
    import gc

    from .._std import importer

    gc.disable()
    importer.install(record=True)  # pallet's modules found and loaded in half importlib's instructions
    rc = main(preload=True)
    importer.save_snapshot()  # only when the command's snapshot was missing, stale or short
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(rc if isinstance(rc, int) else 1)


if __name__ == "__main__":
    run_main()
