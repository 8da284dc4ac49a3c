"""The longer ``pallet-runtime`` commands, loaded only when one of them runs: ``update``
(flags to linux.resources), ``exec``, ``events``, ``list``, ``ps``, ``spec``. The option
tables, the parser and the quick lifecycle commands are in ``cli.runtime``."""

import os
import sys

from .runtime_args import UPDATE_FLAGS, Usage, count, need_id


def update(root, o, args):
    from ..runtime import control

    control.update(root, need_id("update", args), _update_resources(o))


def _update_resources(o):
    from ..errors import OCIRuntimeError

    if o.get("resources"):
        from .._std import json as _json

        src = o["resources"]
        try:
            raw = sys.stdin.read() if src == "-" else open(src).read()
        except OSError as e:
            raise OCIRuntimeError(f"--resources {src}: {e.strerror}") from None
        try:
            res = _json.loads(raw)
        except ValueError as e:
            raise OCIRuntimeError(f"--resources {src}: not JSON: {e}") from None
        if not isinstance(res, dict):
            raise OCIRuntimeError(f"--resources {src}: must be a JSON object (linux.resources)")
    else:
        res = {}
    for name, (section, key, kind) in UPDATE_FLAGS.items():
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


def exec_(root, o, args):
    from ..errors import OCIRuntimeError
    from ..runtime import exec as _exec_mod
    from ..runtime.state import open_container

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
        with open_container(root, cid, lock=False) as c:
            base = c.state["config"]["process"]
        proc = _exec_mod.process_from_args(
            base, command, tty=o.get("tty", False), cwd=o.get("cwd"), env=o.get("env") or (), user=o.get("user"),
            caps=o.get("cap") or (), additional_gids=o.get("additional_gids") or (),
            no_new_privs=o.get("no_new_privs", False), apparmor=o.get("apparmor"),
            process_label=o.get("process_label"))
    if o.get("cgroup"):
        raise OCIRuntimeError("exec --cgroup: joining a sub-cgroup is not supported by pallet-runtime")
    return _exec_mod.exec_(root, cid, proc, detach=o.get("detach", False), pid_file=o.get("pid_file"),
                           console_socket=o.get("console_socket"),
                           preserve_fds=count(o.get("preserve_fds", "0"), "--preserve-fds"),
                           ignore_paused=o.get("ignore_paused", False))


def events(root, o, args):
    cid = need_id("events", args)
    import gc

    gc.enable()  # run_main turned it off for the short commands: this one runs until stopped
    from .._std import json as _json

    def dumps(obj):  # one compact line per event, as runc prints them
        return _json.dumps(obj, separators=(",", ":"))

    from ..runtime.control import oom_watch, stats
    from ..runtime.query import state

    if o.get("stats"):
        print(dumps(stats(root, cid)), flush=True)
        return 0
    import time

    iv = o.get("interval") or "5s"
    try:
        secs = float(iv[:-2]) / 1000 if iv.endswith("ms") else float(iv.rstrip("s"))
    except ValueError:
        raise Usage(f"--interval: {iv!r} is not a duration like 5s") from None
    if secs <= 0:
        raise Usage("--interval: must be greater than zero")
    from ..errors import OCIRuntimeError

    stats(root, cid)  # a container that is not there is an error, as with runc
    watch = oom_watch(root, cid)  # OOMs are printed as they happen: {"type":"oom","id":ID}
    import select

    poller = select.poll()
    if watch is not None:
        poller.register(watch.fileno(), select.POLLIN)
    pidfd = None
    try:  # init's exit ends the wait at once (the stream ends with the container)
        pidfd = os.pidfd_open(state(root, cid)["pid"])
        poller.register(pidfd, select.POLLIN)
    except (OSError, KeyError, OCIRuntimeError):
        pass
    try:
        while True:
            try:
                ev = stats(root, cid)
            except OCIRuntimeError:
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


def spec(root, o, args):
    from ..errors import OCIRuntimeError
    from .._std.json import dumps
    from ..oci.runtime_spec import default_config

    if args:
        raise Usage(f"spec: unexpected arguments {' '.join(args)!r}")
    bundle = o.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise OCIRuntimeError(f"File {path} exists. Remove it first")
    spec = default_config(rootless=o.get("rootless", False), uid=os.geteuid(), gid=os.getegid())
    try:
        with open(path, "w") as f:
            f.write(dumps(spec, indent="\t") + "\n")
    except OSError as e:
        raise OCIRuntimeError(f"cannot write {path}: {e.strerror}") from None
    return 0


def list_(root, o, args):
    from ..runtime.query import list_containers

    items = list_containers(root)
    fmt = o.get("format") or "table"
    if o.get("quiet"):
        for it in items:
            print(it["id"])
        return 0
    if fmt == "json":
        from .._std.json import dumps

        print(dumps(items, separators=(",", ":")))
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


def ps(root, o, args):
    from ..runtime.query import ps

    cid = need_id("ps", args[:1])
    pids = ps(root, cid)
    fmt = o.get("format") or "table"
    if fmt == "json":
        from .._std.json import dumps

        print(dumps(pids, separators=(",", ":")))
        return 0
    if fmt != "table":
        raise Usage(f"invalid format option {fmt!r}: table or json")
    import subprocess

    ps_args = args[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode:
        from ..errors import OCIRuntimeError

        raise OCIRuntimeError(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        from ..errors import OCIRuntimeError

        raise OCIRuntimeError("ps: no PID column in the output")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        f = line.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in wanted:
            print(line)
    return 0
