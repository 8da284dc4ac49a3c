"""The OCI runtime (``pallet-runtime``, runc's verbs) on bundles: create, start, state, kill, delete."""

from __future__ import annotations

import os
from typing import Sequence

from ..errors import OCIRuntimeError, UsageError
from .results import ContainerState, container_state

#: where containers' state lives unless ``root`` is given (``pallet-runtime --root``)
DEFAULT_ROOT = "/run/pallet-runtime"


def write_spec(bundle: str, *, args: Sequence[str] = ("sh",), rootfs: str = "rootfs", readonly: bool = True,
               env: Sequence[str] | None = None, cwd: str = "/", hostname: str = "pallet") -> dict:
    """Write ``bundle/config.json``: ``pallet-runtime spec``'s default config without a terminal,
    running ``args`` on ``rootfs`` (relative to the bundle, or absolute). Returns the config."""
    from .. import _fs
    from .._std import json as _json
    from ..oci.runtime_spec import default_config
    from ..runtime import spec as _spec

    if isinstance(args, str) or not args:
        raise UsageError("args: a non-empty list of strings, e.g. ['/bin/sh', '-c', 'echo hi']")
    config = default_config()
    proc = config["process"]
    proc["terminal"] = False
    proc["args"] = list(args)
    proc["cwd"] = cwd
    if env is not None:
        proc["env"] = list(env)
    config["root"] = {"path": rootfs, "readonly": readonly}
    config["hostname"] = hostname
    _spec.validate(config)
    os.makedirs(bundle, 0o755, exist_ok=True)
    _fs.write_atomic(os.path.join(bundle, "config.json"), _json.dumps(config, indent=2).encode(), 0o644)
    return config


class WaitTimeout(OCIRuntimeError, TimeoutError):
    """:meth:`Container.wait` gave up: the container still runs."""


class Container:
    """A container of the OCI runtime, by id under a state ``root``."""

    def __init__(self, id: str, *, root: str | None = None):
        from ..runtime import state as _state

        _state.check_id(id)
        self.id = id
        self.root = root or DEFAULT_ROOT

    def __repr__(self) -> str:
        return f"<pallet.Container {self.id!r} root={self.root!r}>"

    @classmethod
    def create(cls, bundle: str, id: str | None = None, *, root: str | None = None) -> "Container":
        """``pallet-runtime create --bundle BUNDLE ID``: the container is created, its process
        waits for :meth:`start`. ``id`` defaults to a random one. Its stdio is this process's."""
        from ..runtime import create

        c = cls(id or os.urandom(16).hex(), root=root)
        state, _pid = create.create(c.root, c.id, bundle)
        state.close()
        return c

    @classmethod
    def run(cls, bundle: str, id: str | None = None, *, root: str | None = None) -> int:
        """``pallet-runtime run --bundle BUNDLE ID``: create, start, wait, delete; the exit code."""
        from ..runtime import run

        c = cls(id or os.urandom(16).hex(), root=root)
        return run.run(c.root, c.id, bundle)

    @classmethod
    def list(cls, *, root: str | None = None) -> list[ContainerState]:
        """``pallet-runtime list``."""
        from ..runtime import query

        return [container_state(d) for d in query.list_containers(root or DEFAULT_ROOT)]

    def start(self) -> None:
        """``pallet-runtime start``: run the process ``create`` prepared."""
        from ..runtime import start

        start.start(self.root, self.id)

    def state(self) -> ContainerState:
        """``pallet-runtime state``: ``.status`` is creating, created, running, paused or stopped."""
        from ..runtime import query

        return container_state(query.state(self.root, self.id))

    def kill(self, signal: int | str = "TERM", *, all: bool = False) -> None:
        """``pallet-runtime kill ID SIGNAL`` (a number, ``TERM`` or ``SIGTERM``)."""
        from ..runtime import kill

        kill.kill(self.root, self.id, kill.parse_signal(str(signal)), all)

    def pause(self) -> None:
        from ..runtime import control

        control.pause(self.root, self.id)

    def resume(self) -> None:
        from ..runtime import control

        control.resume(self.root, self.id)

    def wait(self, timeout: float | None = None) -> ContainerState:
        """Wait until the container's process has exited (the state says ``stopped``); its state.
        :class:`WaitTimeout` (a :class:`pallet.errors.OCIRuntimeError` and a :class:`TimeoutError`)
        after ``timeout`` seconds."""
        import select
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.state()
            if st.status == "stopped":
                return st
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"container {self.id} is still {st.status} after {timeout} s", reference=self.id)
            # the pid's exit wakes us; the state is read again at least twice a second all the
            # same, so a pid reused by another process cannot keep us waiting
            step = 0.5 if left is None else min(0.5, left)
            try:
                fd = os.pidfd_open(st.pid)
            except (OSError, ValueError):  # exited between the two looks: look again
                continue
            try:
                p = select.poll()
                p.register(fd, select.POLLIN)
                p.poll(int(step * 1000) + 1)
            finally:
                os.close(fd)

    def delete(self, *, force: bool = False) -> None:
        """``pallet-runtime delete`` (``force``: kill it first if it runs)."""
        from ..runtime import delete

        delete.delete(self.root, self.id, force)
