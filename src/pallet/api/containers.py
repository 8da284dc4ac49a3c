"""podman's containers (``pallet run``, ``ps``, ``logs``, ``exec``...) as docker-py and podman-py
users know them: ``store.containers.run(image, command, ...)``, ``.create``, ``.list``, ``.get``,
and on each :class:`ManagedContainer` ``start``, ``stop``, ``kill``, ``wait``, ``logs``,
``exec_run``, ``inspect``, ``remove``.

Everything goes through the command line's own model (``containers.container.Containers``):
conmon supervises each container, so it outlives this process, and ``pallet ps`` lists it.
"""

from __future__ import annotations

import datetime
import time
from typing import Any, Iterator, Literal, Mapping, Sequence, Union

from ..errors import ContainerError, UsageError
from ._common import about, name_arg, strings_arg
from .results import ContainerInfo, ExecResult, container_info, exec_result


#: ``pull=``: podman's ``--pull`` values
ContainerPullPolicy = Literal["missing", "always", "never", "newer"]

#: ``volumes=``: ``["/host:/ctr:ro", "NAME:/ctr", "/ctr"]`` (``-v``'s text), or docker-py's mapping
#: ``{"/host": {"bind": "/ctr", "mode": "ro"}}`` (``"/ctr"`` alone for read-write)
Volumes = Union[Sequence[str], Mapping[str, Union[str, Mapping[str, str]]]]

#: ``ports=``: ``["8080:80/tcp"]`` (``-p``'s text), or docker-py's mapping of a container port to a
#: host port: ``{"80/tcp": 8080}``, ``{80: ("127.0.0.1", 8080)}``, ``{"80": None}`` (a free one)
Ports = Union[Sequence[str], Mapping[Union[str, int], Union[int, str, None, tuple[str, int]]]]


class ContainerFailed(ContainerError):
    """A foreground :meth:`ContainerManager.run` whose command exited non-zero (docker-py's
    ``ContainerError``): ``exit_code`` is the command's, ``stderr`` its error output,
    ``reference`` the container's name, ``image`` and ``command`` what ran."""

    def __init__(self, message: str, *, exit_code: int, stderr: bytes, image: str, command: list[str],
                 reference: str | None = None):
        super().__init__(message, reference=reference)
        self.exit_code = exit_code
        self.stderr = stderr
        self.image = image
        self.command = command


class ContainerManager:
    """``store.containers``: the run containers of one store (``pallet ps -a``)."""

    def __init__(self, store: Any):
        self._store = store  # the pallet.Store it belongs to (its owner makes it: ``store.containers``)
        self._model = None

    def __repr__(self) -> str:
        return f"<pallet.ContainerManager root={self._store.root!r}>"

    def _ctrs(self):
        from ..containers.container import Containers

        s = self._store._s()
        if self._model is None:
            # conmon's exit command (``pallet container cleanup``) names this same store
            self._model = Containers(s, ["--root", s.graphroot, "--runroot", s.runroot, "--storage-driver",
                                         s.driver.name])
        return self._model

    # -- the collection ------------------------------------------------------------------------

    def create(self, image: str, command: str | Sequence[str] | None = None, *, name: str | None = None,
               entrypoint: str | Sequence[str] | None = None, env: Mapping[str, str] | Sequence[str] | None = None,
               volumes: Volumes | None = None, ports: Ports | None = None,
               network: str | Sequence[str] | None = None, user: str | None = None, workdir: str | None = None,
               hostname: str | None = None, labels: Mapping[str, str] | None = None,
               cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (), privileged: bool = False,
               read_only: bool = False, tmpfs: Sequence[str] = (), mem_limit: str | int | None = None,
               cpus: float | None = None, pids_limit: int | None = None, stop_signal: str | int | None = None,
               restart: str | None = None, remove: bool = False, tty: bool = False,
               pull: ContainerPullPolicy = "missing", runtime: str | None = None,
               network_config_dir: str | None = None, cgroup_parent: str | None = None) -> "ManagedContainer":
        """``pallet create``: a container of ``image`` (pulled first as ``pull`` says, through the
        store's registry options), not started. Keywords are run's flags (``--name``, ``-e``,
        ``-v``, ``-p``, ``--network``, ``-u``, ``-w``...); ``remove`` is ``--rm``, ``mem_limit``
        ``--memory``. Nothing is left when it fails."""
        ctrs = self._ctrs()
        o = self._options(image, command, name=name, entrypoint=entrypoint, env=env, volumes=volumes, ports=ports,
                          network=network, user=user, workdir=workdir, hostname=hostname, labels=labels,
                          cap_add=cap_add, cap_drop=cap_drop, privileged=privileged, read_only=read_only,
                          tmpfs=tmpfs, mem_limit=mem_limit, cpus=cpus, pids_limit=pids_limit,
                          stop_signal=stop_signal, restart=restart, remove=remove, tty=tty, pull=pull,
                          runtime=runtime, network_config_dir=network_config_dir, cgroup_parent=cgroup_parent)
        if o.network_config_dir is None:
            o.network_config_dir = self._store.network_config_dir
        with about(name or image):
            rec = ctrs.create(o, self._pull, warn=_warn)
        return ManagedContainer(self, rec["id"])

    def run(self, image: str, command: str | Sequence[str] | None = None, *, detach: bool = False,
            stdout: bool = True, stderr: bool = False, remove: bool = False,
            **options: object) -> "bytes | ManagedContainer":
        """``pallet run``, as podman-py's ``containers.run``: with ``detach`` the started
        :class:`ManagedContainer`; else it waits for the command and returns its output (stdout,
        and stderr too with ``stderr=True``), raising :class:`ContainerFailed` (with
        ``exit_code`` and ``stderr``) when it exits non-zero. ``remove`` (``--rm``): the
        container is removed once it exited. Other keywords are :meth:`create`'s."""
        c = self.create(image, command, remove=remove, **options)  # type: ignore[arg-type]
        ctrs = self._ctrs()
        name = c.name
        if detach:
            try:
                with about(name):
                    ctrs.start(c.id, warn=_warn)
            except BaseException:
                if remove:
                    ctrs.remove(c.id, force=True)
                raise
            return c
        # attached: a --rm container is this process's until it was removed (conmon's exit
        # command then finds it gone), so its output and exit code are read first
        try:
            with about(name):
                sock = ctrs.start(c.id, attach=True, warn=_warn)["attach"]
        except BaseException:
            if remove:
                ctrs.remove(c.id, force=True)
            raise
        out, err = bytearray(), bytearray()
        try:
            try:
                _collect(sock, out if stdout else None, err)
            finally:
                sock.close()
            code = ctrs.wait(c.id)
        except BaseException:
            if remove:  # interrupted: nothing stays behind a --rm run
                ctrs.remove(c.id, force=True, timeout=0)
            raise
        if remove:
            from ..errors import ContainerNotFound

            try:
                ctrs.remove(c.id, force=True)
            except ContainerNotFound:  # removed meanwhile
                pass
        else:
            ctrs.cleanup(c.id)
        if code != 0:
            argv = _command(command) or []
            raise ContainerFailed(f"container {name}: {image} exited with status {code}", exit_code=code,
                                  stderr=bytes(err), image=image, command=argv, reference=name)
        return bytes(out) + (bytes(err) if stderr else b"")

    def get(self, container: str) -> "ManagedContainer":
        """The container a name, ID or ID prefix names; :class:`pallet.errors.ContainerNotFound` if none."""
        with about(container):
            return ManagedContainer(self, self._ctrs().get(name_arg(container, "container"))["id"])

    def exists(self, container: str) -> bool:
        from ..errors import ContainerNotFound

        try:
            self._ctrs().get(name_arg(container, "container"))
        except ContainerNotFound:
            return False
        return True

    def list(self, *, all: bool = False) -> "list[ManagedContainer]":
        """``pallet ps`` (``all``: ``ps -a``, stopped ones too), oldest first."""
        from ..containers.inspect import public_state

        ctrs = self._ctrs()
        recs = sorted(ctrs.list(), key=lambda c: c.get("created") or "")
        return [ManagedContainer(self, c["id"]) for c in recs
                if all or public_state(ctrs.state(c["id"])) in ("running", "paused", "stopping")]

    # -- internals -----------------------------------------------------------------------------

    def _pull(self, image: str) -> str:
        return self._store.pull(image).id

    @staticmethod
    def _options(image: str, command, *, name, entrypoint, env, volumes, ports, network, user, workdir, hostname,
                 labels, cap_add, cap_drop, privileged, read_only, tmpfs, mem_limit, cpus, pids_limit, stop_signal,
                 restart, remove, tty, pull, runtime, network_config_dir, cgroup_parent):
        from ..containers.container import Options

        if not isinstance(image, str) or not image:
            raise UsageError("image: want an image name or ID as a string")
        ep = entrypoint
        if ep is not None and not isinstance(ep, str):
            from .._std import json

            ep = json.dumps(strings_arg(ep, "entrypoint"))  # run's --entrypoint takes a JSON array
        return Options(image, _command(command), name=name, env=_env(env), user=user, workdir=workdir,
                       entrypoint=ep, networks=strings_arg(network, "network") if network is not None else [],
                       publish=_ports(ports), hostname=hostname, cap_add=strings_arg(cap_add, "cap_add"),
                       cap_drop=strings_arg(cap_drop, "cap_drop"), privileged=bool(privileged),
                       read_only=bool(read_only), tmpfs=strings_arg(tmpfs, "tmpfs"), volumes=_volumes(volumes),
                       memory=str(mem_limit) if mem_limit is not None else None,
                       cpus=str(cpus) if cpus is not None else None, pids_limit=pids_limit,
                       stop_signal=str(stop_signal) if stop_signal is not None else None,
                       labels=dict(labels or {}), rm=bool(remove), detach=True, interactive=False, tty=bool(tty),
                       runtime=runtime, pull=pull, network_config_dir=network_config_dir, restart=restart,
                       cgroup_parent=cgroup_parent)


class ManagedContainer:
    """One container of ``pallet run``/``create`` (not the OCI runtime's :class:`pallet.Container`).
    Its properties are read when asked (another process may change the container meanwhile)."""

    def __init__(self, manager: ContainerManager, id: str):
        self._manager = manager
        self.id: str = id

    def __repr__(self) -> str:
        return f"<pallet.ManagedContainer {self.id[:12]}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManagedContainer) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _rec(self) -> dict:
        with about(self.id[:12]):
            return self._manager._ctrs().get(self.id)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self._rec()["metadata"]["pallet"]["name"]

    @property
    def image(self) -> str:
        """The image as it was named at create."""
        return self._rec()["metadata"]["pallet"].get("image_name") or ""

    @property
    def image_id(self) -> str:
        return self._rec()["metadata"]["pallet"].get("image_id") or ""

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._rec()["metadata"]["pallet"].get("labels") or {})

    @property
    def status(self) -> str:
        """podman's state name: ``created``, ``running``, ``paused``, ``stopping``, ``exited``."""
        from ..containers.inspect import public_state

        return public_state(self._manager._ctrs().state(self._rec()["id"]))

    # -- verbs ---------------------------------------------------------------------------------

    def start(self) -> None:
        """``pallet start``."""
        with about(self.name):
            self._manager._ctrs().start(self.id, warn=_warn)

    def stop(self, timeout: float | None = None) -> None:
        """``pallet stop -t TIMEOUT``: the stop signal, SIGKILL after ``timeout`` seconds (None:
        the container's stop timeout, 10 unless ``--stop-timeout``)."""
        with about(self.id[:12]):
            self._manager._ctrs().stop(self.id, timeout, warn=_warn)

    def kill(self, signal: str | int = "KILL") -> None:
        """``pallet kill -s SIGNAL`` (a number, ``TERM`` or ``SIGTERM``)."""
        from ..errors import OCIRuntimeError
        from ..runtime.container import parse_signal

        try:
            sig = parse_signal(str(signal))
        except OCIRuntimeError:
            raise UsageError(f"invalid signal: {signal}") from None
        with about(self.id[:12]):
            self._manager._ctrs().kill(self.id, sig)

    def wait(self, timeout: float | None = None) -> int:
        """``pallet wait``: the exit code once the container exited. After ``timeout`` seconds
        :class:`ContainerWaitTimeout` (a :class:`TimeoutError` too)."""
        with about(self.id[:12]):
            try:
                return self._manager._ctrs().wait(self.id, timeout)
            except TimeoutError:
                raise ContainerWaitTimeout(f"container {self.id[:12]} still runs after {timeout} s",
                                           reference=self.id) from None

    def logs(self, *, stdout: bool = True, stderr: bool = True, tail: int | None = None,
             since: float | str | datetime.datetime | None = None, until: float | str | datetime.datetime | None = None,
             timestamps: bool = False, follow: bool = False) -> Iterator[bytes]:
        """``pallet logs``: the container's output, line by line as bytes (each with its ``\\n``;
        a very long line comes in pieces), read as it is iterated (never the whole log in memory),
        from its k8s-file log or, for ``--log-driver journald``, the journal.
        ``tail``: the last N lines of the log only (read back from its end; as podman's, counted
        before ``since``/``until`` and the stream choice filter them); ``since``/``until``: lines
        logged in that window (Unix seconds, a ``datetime``, or text as ``pallet logs --since``/
        ``--until`` reads it: RFC 3339, a date, Unix seconds, or a duration such as ``"10m"`` --
        before now for ``since``, after it for ``until``, as podman's); ``timestamps``: each line after its log time; ``follow``: go on
        until the container exited."""
        from ..containers.logs import check_readable, window

        rec = self._rec()
        check_readable(rec)
        if tail is not None and (not isinstance(tail, int) or isinstance(tail, bool) or tail < 0):
            raise UsageError(f"tail: want a number of lines (0 or more), not {tail!r}")
        now = time.time()
        keep = window(_when(since, "since", now), _when(until, "until", now))
        streams = {s for s, on in ((1, stdout), (2, stderr)) if on}
        return _log_lines(self._manager._ctrs(), rec, streams, -1 if tail is None else tail, keep, timestamps,
                          follow)

    def exec_run(self, cmd: str | Sequence[str], *, env: Mapping[str, str] | Sequence[str] | None = None,
                 user: str | None = None, workdir: str | None = None, privileged: bool = False,
                 timeout: float | None = None) -> ExecResult:
        """``pallet exec``: run ``cmd`` in the running container; its exit code and output
        (stdout and stderr together, as docker-py's). ``timeout``: SIGTERM, then SIGKILL, after
        that many seconds."""
        from ..containers import exec as _exec

        o = _exec.ExecOptions(_command(cmd) or [], env=_env(env), user=user, workdir=workdir,
                              privileged=bool(privileged))
        with about(self.id[:12]):
            code, out, _timed_out = _exec.capture(self._manager._ctrs(), self.id, o, timeout, raw=True)
        return exec_result(code, out)

    def inspect(self) -> ContainerInfo:
        """``pallet container inspect``: ``as_dict()`` is podman's object (its keys)."""
        from ..containers.inspect import inspect_doc

        ctrs = self._manager._ctrs()
        return container_info(inspect_doc(ctrs, self._rec()))

    def restart(self, timeout: float | None = None) -> None:
        """``pallet restart``: stopped as :meth:`stop` stops, then started."""
        from ..containers import restart

        with about(self.id[:12]):
            restart.restart(self._manager._ctrs(), self.id, timeout, warn=_warn)

    def pause(self) -> None:
        from ..containers import restart

        with about(self.id[:12]):
            restart.pause(self._manager._ctrs(), self.id)

    def unpause(self) -> None:
        from ..containers import restart

        with about(self.id[:12]):
            restart.unpause(self._manager._ctrs(), self.id)

    def remove(self, *, force: bool = False, volumes: bool = False) -> None:
        """``pallet rm``: ``force`` stops a running one first; ``volumes`` removes its anonymous volumes."""
        with about(self.id[:12]):
            self._manager._ctrs().remove(self.id, force=force, volumes=volumes)


class ContainerWaitTimeout(ContainerError, TimeoutError):
    """:meth:`ManagedContainer.wait` gave up: the container still runs."""


# -- helpers ---------------------------------------------------------------------------------------

def _warn(msg: str) -> None:
    from .._log import debug

    debug(msg)


def _command(command) -> list[str] | None:
    if command is None:
        return None
    if isinstance(command, str):
        import shlex

        try:
            return shlex.split(command)
        except ValueError as e:
            raise UsageError(f"command {command!r}: {e}") from None
    return strings_arg(command, "command")


def _env(env) -> list[str]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [f"{k}={v}" for k, v in env.items()]
    return strings_arg(env, "env")


def _volumes(volumes) -> list[str]:
    if volumes is None:
        return []
    if not isinstance(volumes, Mapping):
        return strings_arg(volumes, "volumes")
    out = []
    for src, spec in volumes.items():
        if isinstance(spec, str):
            out.append(f"{src}:{spec}")
        elif isinstance(spec, Mapping) and isinstance(spec.get("bind"), str):
            mode = spec.get("mode")
            out.append(f"{src}:{spec['bind']}" + (f":{mode}" if mode else ""))
        else:
            raise UsageError(f"volumes: {src!r}: want a path in the container or {{'bind': PATH, 'mode': 'ro'}}")
    return out


def _ports(ports) -> list[str]:
    if ports is None:
        return []
    if not isinstance(ports, Mapping):
        return strings_arg(ports, "ports")
    out = []
    for ctr, host in ports.items():
        ctr = str(ctr)
        if host is None:
            out.append(ctr)
        elif isinstance(host, tuple) and len(host) == 2:
            out.append(f"{host[0]}:{host[1]}:{ctr}")
        elif isinstance(host, (int, str)) and not isinstance(host, bool):
            out.append(f"{host}:{ctr}")
        else:
            raise UsageError(f"ports: {ctr}: want a host port, (address, port) or None, not {host!r}")
    return out


def _collect(sock, out: bytearray | None, err: bytearray) -> None:
    """The container's output from conmon's attach socket until it closes: packets whose first
    byte names the stream."""
    from ..containers.conmon import BUF, STDERR, STDOUT

    while True:
        try:
            pkt = sock.recv(BUF)
        except ConnectionResetError:
            return
        if not pkt:
            return
        if pkt[0] == STDOUT and out is not None:
            out += pkt[1:]
        elif pkt[0] == STDERR:
            err += pkt[1:]


def _when(v, what: str, now: float) -> float | None:
    """``logs``' ``since``/``until``: a datetime, Unix seconds, or text read as ``pallet logs
    --since/--until`` reads it (``oci.times.parse_log_time``)."""
    if v is None:
        return None
    if isinstance(v, datetime.datetime):
        return v.timestamp()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        from ..oci.times import parse_log_time

        try:
            return parse_log_time(v, now, what == "since")
        except ValueError:
            pass
    raise UsageError(f"{what}: want Unix seconds, a datetime, an RFC 3339 time or a duration (10m), not {v!r}")


def _log_lines(ctrs, rec: dict, streams: set, tail: int, keep, timestamps: bool, follow: bool) -> Iterator[bytes]:
    """The container's log lines through ``containers/logs.py``, as the API gives them: the
    chosen streams, each piece of a line (its time first with ``timestamps``)."""
    from ..containers import logs

    def pieces(pairs) -> Iterator[bytes]:
        for _, (ts, fd, text, full) in pairs:
            if fd in streams:
                yield (ts.encode() + b" " if timestamps else b"") + text + (b"\n" if full else b"")

    src = logs.open_log(ctrs, rec)
    try:
        yield from pieces(logs.history([src], tail, keep))
        if follow:
            for got in logs.follow(ctrs, [src], keep):
                yield from pieces(got)
    finally:
        src.close()
