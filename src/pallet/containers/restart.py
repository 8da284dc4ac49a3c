"""A container's life without a daemon: restart policies carried out by conmon's exit command,
the ``restart`` verb, ``pause``/``unpause``.

conmon runs ``pallet container cleanup ID`` when the container exits; after tearing down, that
process calls ``on_exit``, which decides by the policy (podman's rules) and starts the container
again under a new conmon, counting ``restart_count``:

- ``no``: never; ``always``/``unless-stopped``: whatever the exit code; ``on-failure[:N]``: a
  non-zero exit code, at most N times (0: no limit);
- never after ``stop`` (or ``rm -f``): ``before_stop`` marks the container stopped by the user
  before any signal is sent, so the exit command that the stop causes sees the mark. ``kill``
  does not mark it (podman's: a killed ``always`` container comes back).

With no daemon nothing restarts containers after a reboot (podman needs systemd units for that
too: ``unless-stopped`` is ``always`` here).
"""

from __future__ import annotations

from ..errors import ContainerError, ContainerStateError
from .container import EXITED, META, RUNNING, STOPPED
from .policies import set_paused


def should_restart(policy: str, retries: int, exit_code: int | None, restart_count: int) -> bool:
    if policy in ("always", "unless-stopped"):
        return True
    if policy == "on-failure":
        return exit_code not in (0, None) and (retries == 0 or restart_count < retries)
    return False


def on_exit(ctrs, text: str, warn=None) -> bool:
    """After conmon's exit command cleaned up: restart the container if its policy says so.
    Returns whether it was started again."""
    from ..errors import ContainerNotFound

    try:
        c = ctrs.get(text)
    except ContainerNotFound:
        return False
    cid, meta = c["id"], c["metadata"][META]
    policy = meta.get("restart_policy") or "no"
    if policy == "no":
        return False
    st = ctrs.state(cid)
    if st.get("state") not in (EXITED, STOPPED) or st.get("stopped_by_user"):
        return False
    count = int(st.get("restart_count") or 0)
    if not should_restart(policy, int(meta.get("restart_retries") or 0), st.get("exit_code"), count):
        return False
    try:
        ctrs.start(cid, warn=warn, restart_count=count + 1)
    except ContainerStateError:  # stopped (or started by someone else) meanwhile
        return False
    return True


def restart(ctrs, text: str, timeout: float | None = None, warn=None) -> str:
    """podman's ``restart``: stop a running container (its stop signal, SIGKILL after the
    timeout), then start it; a stopped or created one is started."""
    c = ctrs.get(text)
    cid = c["id"]
    if ctrs.state(cid).get("state") == RUNNING:
        ctrs.stop(cid, timeout)
    ctrs.start(cid, warn=warn)
    return cid


def pause(ctrs, text: str) -> str:
    """The runtime's ``pause`` (the cgroup freezer): state "paused" until ``unpause``."""
    return _freeze(ctrs, text, True)


def unpause(ctrs, text: str) -> str:
    """The runtime's ``resume`` of a paused container."""
    return _freeze(ctrs, text, False)


def _freeze(ctrs, text: str, paused: bool) -> str:
    c = ctrs.get(text)
    cid, meta = c["id"], c["metadata"][META]
    st = ctrs.state(cid)
    if st.get("state") != RUNNING or bool(st.get("paused")) == paused:
        if paused:
            state = "paused" if st.get("paused") else st.get("state")
            raise ContainerStateError(f"\"{state}\" is not running, can't pause: container state improper")
        raise ContainerStateError(f"\"{cid}\" is not paused, can't unpause: container state improper")
    p = ctrs.runtime_command(meta, "pause" if paused else "resume", cid, check=False)
    if p.returncode != 0:
        raise ContainerError(f"{'pausing' if paused else 'unpausing'} {cid[:12]}: "
                             f"{' '.join(p.stderr.decode('utf-8', 'replace').split())}")
    set_paused(ctrs, cid, paused)
    return cid
