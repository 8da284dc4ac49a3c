"""``run``/``create`` flags for supervision and systemd units (``containers/runflags.py``,
``containers/cidfile.py``): ``--cidfile``, ``--replace``, ``--rmi``, ``--timeout``,
``--preserve-fds``, ``--conmon-pidfile``, ``--pidfile``, ``--sdnotify``, ``--cgroups``,
``--health-on-failure``, ``--no-hosts``, ``--pod``; and ``--cidfile`` for the verbs that act on
a container.
"""

from __future__ import annotations

import sys


def add_create_flags(p) -> None:
    p.add_argument("--cidfile", metavar="FILE", help="write the container ID to FILE (which must not exist)")
    p.add_argument("--replace", action="store_true", help="remove a container of the same --name first")
    p.add_argument("--conmon-pidfile", metavar="FILE", help="write conmon's PID to FILE")
    p.add_argument("--pidfile", metavar="FILE", help="write the container's PID to FILE")
    p.add_argument("--sdnotify", metavar="MODE", help="conmon (tell $NOTIFY_SOCKET when the container runs), "
                                                      "ignore; container: not supported yet")
    p.add_argument("--cgroups", metavar="MODE", help="enabled or no-conmon (conmon stays in the caller's cgroup "
                                                     "either way); disabled, split: not supported yet")
    p.add_argument("--timeout", type=int, metavar="SECONDS", help="kill the container after SECONDS")
    p.add_argument("--health-on-failure", metavar="ACTION", help="none, kill, restart or stop: what an unhealthy "
                                                                 "result of healthcheck run does")
    p.add_argument("--no-hosts", action="store_true", help="do not create /etc/hosts (the image's stays)")
    p.add_argument("--pod", metavar="POD", help="join the pod POD (new:NAME: a new pod of that name)")
    p.add_argument("--quiet", "-q", action="store_true", help="no output from pulling the image (it shows none)")
    p.add_argument("--http-proxy", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="pass the host's http_proxy, https_proxy, ftp_proxy, no_proxy (either case) in (true)")
    p.add_argument("--kernel-memory", metavar="SIZE", help="(no longer supported: a no-op, as in podman)")


def _bool(value: str) -> bool:
    from .common import tls_verify_arg

    return tls_verify_arg(value)


#: the proxy variables podman's --http-proxy passes in
PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY",
              "NO_PROXY")


def proxy_env(args) -> list:
    """``--http-proxy`` (true by default): the host's proxy variables, as podman passes them."""
    import os

    if not getattr(args, "http_proxy", True):
        return []
    return [f"{k}={os.environ[k]}" for k in PROXY_VARS if os.environ.get(k)]


def add_run_flags(p) -> None:
    p.add_argument("--attach", "-a", action="append", default=[], metavar="STREAM",
                   help="only these of stdin, stdout, stderr (repeatable)")
    p.add_argument("--rmi", action="store_true", help="remove the image once the container is gone, unless "
                                                      "another container uses it")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass fds 3 .. 2+N into the container")


def attach_streams(args):
    """``run --attach``: the set of our fds (0, 1, 2) attached, None for all; checked as podman."""
    from ..errors import UsageError

    if not args.attach:
        return None
    fds = {"stdin": 0, "stdout": 1, "stderr": 2}
    out = set()
    for s in args.attach:
        if s.lower() not in fds:
            raise UsageError(f"invalid stream \"{s}\" for --attach - must be one of stdin, stdout, or stderr: "
                             "invalid argument")
        out.add(fds[s.lower()])
    return out


def run_flags(args):
    from ..containers.runflags import RunFlags

    return RunFlags(cidfile=args.cidfile, conmon_pidfile=args.conmon_pidfile, pidfile=args.pidfile,
                    sdnotify=args.sdnotify, cgroups=args.cgroups, timeout=args.timeout,
                    preserve_fds=getattr(args, "preserve_fds", 0) or 0, no_hosts=args.no_hosts,
                    health_on_failure=args.health_on_failure, pod=args.pod)


def check_fds(args) -> None:
    """``--preserve-fds N``: fds 3 .. 2+N must be open (the caller's), checked before pallet
    opens a file of its own that could take one of those numbers."""
    if args.preserve_fds:
        from ..containers.runflags import check_preserved_fds

        check_preserved_fds(args.preserve_fds)


def warnings(args, warn) -> None:
    """Flags that only warn, and the checks of run's own flags (before anything is made)."""
    if getattr(args, "attach", None):
        attach_streams(args)
    if args.kernel_memory is not None:
        warn("The --kernel-memory flag is no longer supported. This flag is a noop.")


def before_create(args, ctrs) -> None:
    """``--replace`` (the container of that name removed first) and the ``--cidfile`` check
    (podman's error for an existing file, before anything is made)."""
    from ..containers import cidfile
    from ..containers.container import replace
    from ..errors import ContainerNotFound

    if args.cidfile is not None:
        cidfile.check_absent(args.cidfile)
    if args.replace:
        replace("container", args.name, ctrs.remove, ContainerNotFound)


def after_create(args, ctrs, rec) -> None:
    """Write ``--cidfile``; when that fails the container is removed again (podman's)."""
    if args.cidfile is None:
        return
    from ..containers import cidfile

    try:
        cidfile.write(rec["metadata"]["pallet"]["cidfile"], rec["id"])
    except BaseException:
        ctrs.remove(rec["id"], force=True)
        raise


def remove_image(ctrs, image: str) -> None:
    """``run --rmi``: the image goes unless a container still uses it (then podman's error line,
    the container's exit code unchanged)."""
    from ..errors import PalletError

    try:
        ctrs.store.remove_image(image)
    except PalletError as e:
        print(f"ERRO[0000] {e}", file=sys.stderr)


def targets(args) -> list:
    """The named containers and those of ``--cidfile`` files (``--ignore``: a missing file is
    skipped, as podman's stop and rm do)."""
    from ..containers import cidfile

    return cidfile.targets(args.containers, getattr(args, "cidfile", None) or [],
                           ignore=bool(getattr(args, "ignore", False)))


def add_cidfile_flag(p) -> None:
    p.add_argument("--cidfile", action="append", default=[], metavar="FILE", help="the container whose ID FILE holds")


#: podman 4.3's wait --condition values
CONDITIONS = ("configured", "created", "exited", "paused", "running", "stopped", "healthy", "unhealthy")


def wait_condition(ctrs, text: str, conditions: list, interval: str, public_state) -> int:
    """``wait --condition``: until the container is in one of ``conditions`` (podman's state names;
    ``stopped`` is also ``exited``, as pallet records both so; ``healthy``/``unhealthy``: its
    health check's status). Returns its exit code once it exited, else -1 (podman's)."""
    import time

    from ..containers.health import status as health_status
    from ..errors import UsageError
    from ..oci.times import parse_duration

    for c in conditions:
        if c not in CONDITIONS:
            raise UsageError(f"{c!r} is not a valid container state: want one of {', '.join(CONDITIONS)}")
    step = parse_duration(interval)
    if step is None or step <= 0:
        raise UsageError(f"invalid --interval {interval!r}: want a duration such as 250ms")
    want = set(conditions)
    if "stopped" in want or "exited" in want:
        want |= {"stopped", "exited"}
    rec = ctrs.get(text)
    cid, meta = rec["id"], rec["metadata"]["pallet"]
    health = want & {"healthy", "unhealthy"}
    if health and not meta.get("healthcheck"):
        raise UsageError(f"cannot use condition {sorted(health)[0]!r}: container {meta['name']} has no healthcheck")
    while True:
        st = ctrs.state(cid)
        state = public_state(st)
        if state in want or (health and health_status(st, meta)["Status"] in want):
            code = st.get("exit_code")
            return code if state in ("exited", "stopped") and code is not None else -1
        time.sleep(step / 1e9)
        ctrs.get(cid)  # removed meanwhile: podman's no-such-container error
