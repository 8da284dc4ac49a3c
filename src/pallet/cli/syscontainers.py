"""System containers (docs/system.md): ``install --system``, ``uninstall``, ``containers
update|rollback|list``. atomic's verbs, on pallet's store and pallet-runtime."""

from __future__ import annotations

import sys

VERBS = ("install", "uninstall", "containers", "generate")


def _paths_flags(p) -> None:
    p.add_argument("--host-root", metavar="DIR", default="/",
                   help="the host's root for the unit, tmpfiles and hostfs files and the dpkg database "
                        "(default /; systemd is only driven with /)")
    p.add_argument("--system-dir", metavar="DIR",
                   help="where deployments go (default HOST_ROOT/var/lib/pallet/system)")
    p.add_argument("--runtime", metavar="NAME|PATH", help="the OCI runtime the units run (default pallet-runtime)")
    p.add_argument("--runtime-root", metavar="DIR", default="/run/pallet/system",
                   help="the runtime's state directory named in the units (default /run/pallet/system)")


def register(sub, only: str | None = None) -> None:
    if only in (None, "install"):
        p = sub.add_parser("install", help="install an image as a systemd service (--system)")
        p.add_argument("image", metavar="IMAGE")
        p.add_argument("--system", action="store_true", help="as a system container (the only kind)")
        p.add_argument("--name", metavar="NAME", help="the service's name (default: the image's repository name)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a template variable (over manifest.json's defaultValues)")
        p.add_argument("--rootfs", metavar="DIR", help="run this existing tree instead of a checkout of the image")
        p.add_argument("--no-start", action="store_true", help="enable the unit but do not start it")
        p.add_argument("--force", action="store_true",
                       help="overwrite host files that exist (the originals are put back at uninstall)")
        _paths_flags(p)
        from . import common

        common.add_registry_flags(p)
        p.set_defaults(func=cmd_install)
    if only in (None, "uninstall"):
        p = sub.add_parser("uninstall", help="remove a system container: unit, host files, deployments")
        p.add_argument("name", metavar="NAME")
        _paths_flags(p)
        p.set_defaults(func=cmd_uninstall)
    if only in (None, "containers"):
        grp = sub.add_parser("containers", help="system containers: update, rollback, list")
        csub = grp.add_subparsers(dest="containers_verb", metavar="COMMAND", parser_class=type(grp))
        p = csub.add_parser("update", help="a new deployment of a system container; switch to it and restart")
        p.add_argument("name", metavar="NAME")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--rebase", metavar="IMAGE", help="update to another image")
        p.add_argument("--force", action="store_true",
                       help="overwrite host files the new image adds that exist (the originals are put back at "
                            "uninstall)")
        _paths_flags(p)
        from . import common

        common.add_registry_flags(p)
        p.set_defaults(func=cmd_update)
        p = csub.add_parser("rollback", help="switch back to the previous deployment and restart")
        p.add_argument("name", metavar="NAME")
        _paths_flags(p)
        p.set_defaults(func=cmd_rollback)
        p = csub.add_parser("list", aliases=["ls"], help="system containers: image, deployment, service state")
        p.add_argument("--all", "-a", action="store_true", help="also the previous deployments")
        p.add_argument("--format", default="table", metavar="json|table")
        p.add_argument("--no-trunc", action="store_true")
        _paths_flags(p)
        p.set_defaults(func=cmd_list)
    if only in (None, "generate"):
        _generate(sub)


def _generate(sub) -> None:
    grp = sub.add_parser("generate", help="generate structured data: systemd units for containers")
    grp.usage_exit = 125
    gsub = grp.add_subparsers(dest="generate_verb", metavar="COMMAND", parser_class=type(grp))
    p = gsub.add_parser("systemd", help="a systemd unit for a container made by run/create (podman's)")
    p.usage_exit = 125
    p.set_defaults(usage_exit=125, exit_map={"default": 125})
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--name", "-n", action="store_true", help="use the container's name instead of its ID")
    p.add_argument("--new", action="store_true", help="a unit that creates the container at each start and "
                                                      "removes it at each stop (from its create command)")
    p.add_argument("--restart-policy", default=None, metavar="POLICY",
                   help="systemd's Restart= (default on-failure)")
    p.add_argument("--stop-timeout", "-t", type=int, default=None, metavar="SECONDS",
                   help="the stop timeout (default: the container's, 10)")
    p.add_argument("--files", "-f", action="store_true", help="write the unit to ./container-NAME.service")
    p.set_defaults(func=cmd_generate_systemd)


def cmd_generate_systemd(args) -> int:
    import os

    from ..containers.container import META
    from ..errors import PalletError, UsageError
    from ..system.generate import container_unit, new_container_unit
    from ..containers.container import Containers
    from .common import global_store_args
    from .store import open_store

    if args.stop_timeout is not None and args.stop_timeout < 0:
        raise UsageError(f"--stop-timeout {args.stop_timeout}: must be 0 or more")
    ctrs = Containers(open_store(args), global_store_args(args))
    rec = ctrs.get(args.container)
    meta = rec["metadata"][META]
    name = meta.get("name") or (rec.get("names") or [rec["id"]])[0]
    from ..system.unit import command_line

    timeout = args.stop_timeout if args.stop_timeout is not None else int(meta.get("stop_timeout") or 10)
    if args.new:
        if not meta.get("create_command"):
            raise UsageError(f"cannot use --new on container {rec['id'][:12]}: no create command found")
        try:
            env = ctrs.spec(rec["id"]).get("process", {}).get("env") or []
        except PalletError:
            env = []
        exe = command_line([os.path.join(os.path.dirname(sys.executable), "pallet")])
        fname, text = new_container_unit(create_command=meta["create_command"], image=meta["image_name"],
                                         command=meta.get("command"), exe=exe, cid=rec["id"], name=name, env=env,
                                         use_name=args.name, restart_policy=args.restart_policy,
                                         stop_timeout=timeout)
    else:
        exe = command_line([os.path.join(os.path.dirname(sys.executable), "pallet"), *global_store_args(args)])
        fname, text = container_unit(cid=rec["id"], name=name, exe=exe, runroot=ctrs.store.runroot,
                                     pidfile=ctrs.conmon_pidfile(rec["id"]), use_name=args.name,
                                     restart_policy=args.restart_policy or "on-failure", stop_timeout=timeout)
    if args.files:
        from .._fs import write_output

        path = os.path.join(os.getcwd(), fname)
        write_output(path, text.encode(), 0o644, "--files")
        print(path)
    else:
        sys.stdout.write(text)
    return 0


def _system(args, store: bool = True):
    from ..containers.container import runtime_path
    from ..system.deploy import Paths, SystemContainers
    from .store import open_store

    paths = Paths(args.host_root, args.system_dir, runtime_root=args.runtime_root)
    return SystemContainers(open_store(args) if store else None, paths, runtime_path(args.runtime))


def _pull_missing(args, sc, image: str) -> None:
    from ..errors import NotFound

    try:
        sc.store.image(image)
        return
    except NotFound:
        pass
    from ..images.pull import pull
    from ..transports.copy import CopyOptions
    from . import common

    from ..errors import PalletError

    try:
        pull(sc.store, image, common.context(args), CopyOptions(policy=args.policy,
                                                                insecure_policy=args.insecure_policy))
    except PalletError as e:  # the message names the image the user gave
        e.message = f"pulling {image}: {e.message}"
        raise


def _default_name(image: str) -> str:
    base = image.rsplit("/", 1)[-1]
    for sep in ("@", ":"):
        base = base.split(sep, 1)[0]
    return base


def cmd_install(args) -> int:
    from ..errors import UsageError
    from ..system.template import parse_sets

    if not args.system:
        raise UsageError("install: only system containers are supported: add --system")
    sets = parse_sets(args.set)
    sc = _system(args)
    name = args.name or _default_name(args.image)
    from ..system.unit import check_name

    check_name(name)
    _pull_missing(args, sc, args.image)
    res = sc.install(args.image, name, sets, rootfs=args.rootfs, force=args.force, start=not args.no_start)
    if res.get("recovered"):
        print(res["recovered"], file=sys.stderr)
    co = res.get("checkout") or {}
    how = f" ({co.get('files', 0)} files by {co.get('mode')})" if co else ""
    print(f"Installed {name} from {args.image} as {sc.paths.unit_dir}/{name}.service, deployment "
          f"{res['deployment']}{how}")
    if res["started"] != "started":
        print(f"{name}.service was {res['started']}", file=sys.stderr if "not started" in res["started"] else sys.stdout)
    return 0


def cmd_uninstall(args) -> int:
    res = _system(args, store=False).uninstall(args.name)
    for path in res["kept"]:
        print(f"kept {path}: changed since it was installed", file=sys.stderr)
    print(f"Uninstalled {args.name}")
    return 0


def cmd_update(args) -> int:
    from ..system.template import parse_sets

    sets = parse_sets(args.set)
    sc = _system(args)
    if args.rebase:
        _pull_missing(args, sc, args.rebase)
    res = sc.update(args.name, sets, rebase=args.rebase, force=args.force)
    return _switched(args, res, f"Updated {args.name} to deployment {res['deployment']} ({res['image']}); "
                                f"previous: {res['previous']}")


def cmd_rollback(args) -> int:
    res = _system(args, store=False).rollback(args.name)
    return _switched(args, res, f"Rolled {args.name} back to deployment {res['deployment']} ({res['image']})")


def _switched(args, res: dict, line: str) -> int:
    """What update and rollback say: the kept files, the switch, a restart that did not happen."""
    for path in res["kept"]:
        print(f"kept {path}: changed since it was installed", file=sys.stderr)
    print(line)
    if not res["restarted"]:
        print(f"{args.name}.service was not restarted: systemd is not PID 1 here", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from ..errors import UsageError

    if args.format not in ("json", "table"):
        raise UsageError(f"--format {args.format!r}: want json or table")
    rows = _system(args, store=False).list(args.all)
    if args.format == "json":
        from .common import print_json

        print_json(rows)
        return 0
    from ._table import table

    cells = [[r["name"], r["image"], (r["image_id"] or "")[:None if args.no_trunc else 12],
              f"{r['deployment']}{' *' if r['current'] else ''}", r["created"], r["state"]] for r in rows]
    print(table(["NAME", "IMAGE", "IMAGE ID", "DEPLOYMENT", "CREATED", "STATE"], cells))
    return 0
