"""Health checks without a daemon: ``healthcheck run`` runs a container's check once.

The check (``--health-cmd`` or the image's ``HEALTHCHECK``) runs through the OCI runtime's exec
in the running container, its output captured (both streams, as podman keeps them), bounded by
its timeout. The result updates the container's health, kept in its ``state.json`` (reset to
``starting`` by every start), as podman 4.3 does:

- success: ``healthy``, the failing streak back to 0;
- failure: the streak grows, unless the container is still in its start period; at ``Retries``
  failures in a row the status is ``unhealthy``.

The log keeps podman's last 5 results, each output cut to 500 characters. pallet runs no timer:
a systemd timer or a cron job calls ``pallet healthcheck run CONTAINER`` every interval (podman
itself makes a transient systemd timer, which needs systemd as PID 1).
"""

from __future__ import annotations

import time

from ..errors import ContainerError
from .container import META, RUNNING

MAX_LOGS = 5
MAX_OUTPUT = 500
HEALTHY, UNHEALTHY, STARTING = "healthy", "unhealthy", "starting"


class HealthCheckError(ContainerError):
    """``healthcheck run`` could not run the check (no check, not running): exit 125."""


def status(st: dict, meta: dict) -> dict:
    """podman's ``State.Health`` for a container (``starting`` before the first result)."""
    if not meta.get("healthcheck"):
        return {"Status": "", "FailingStreak": 0, "Log": None}
    h = st.get("health")
    if not isinstance(h, dict):
        return {"Status": STARTING, "FailingStreak": 0, "Log": None}
    return {"Status": h.get("Status") or STARTING, "FailingStreak": int(h.get("FailingStreak") or 0),
            "Log": h.get("Log") or None}


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def command(test: list[str]) -> list[str]:
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:]) if test[0] == "CMD" else list(test)


def _started(st: dict) -> float:
    from ..oci.times import parse_rfc3339

    try:
        return parse_rfc3339(st.get("started_at") or "")
    except (ValueError, TypeError):
        return 0.0


def run(ctrs, text: str) -> str:
    """Run the container's check once; record and return its status (healthy, unhealthy, or
    starting: a failure in the start period)."""
    from .exec import ExecOptions, capture

    c = ctrs.get(text)
    cid, meta = c["id"], c["metadata"][META]
    hc = meta.get("healthcheck")
    if not hc:
        raise HealthCheckError(f"container {meta['name']} has no defined healthcheck")
    st = ctrs.state(cid)
    if st.get("state") != RUNNING or st.get("paused"):
        raise HealthCheckError(f"container {meta['name']} is not running")
    start = _now()
    timeout = (hc.get("Timeout") or 30 * 10**9) / 1e9
    rc, output, timed_out = capture(ctrs, cid, ExecOptions(command(hc["Test"])), timeout)
    end = _now()
    if timed_out:
        output = "Healthcheck command timed out"
        rc = -1
    if output.endswith("\n"):
        output = output[:-1]
    # podman's: the exit code is the check's result (0 passed, 1 failed), the output one string
    entry = {"Start": start, "End": end, "ExitCode": 0 if rc == 0 else 1, "Output": output[:MAX_OUTPUT]}
    in_start_period = time.time() - _started(st) < (hc.get("StartPeriod") or 0) / 1e9
    with ctrs.editing_state(cid) as st:
        if st.get("state") != RUNNING:
            raise HealthCheckError(f"container {meta['name']} is not running")
        h = st.get("health") if isinstance(st.get("health"), dict) else {}
        log = (list(h.get("Log") or []) + [entry])[-MAX_LOGS:]
        streak = int(h.get("FailingStreak") or 0)
        state = h.get("Status") or STARTING
        if rc == 0:
            state, streak = HEALTHY, 0
        elif not in_start_period:
            streak += 1
            if streak >= int(hc.get("Retries") or 3):
                state = UNHEALTHY
        st["health"] = {"Status": state, "FailingStreak": streak, "Log": log}
    if state == UNHEALTHY and meta.get("health_on_failure"):
        on_failure(ctrs, cid, meta["health_on_failure"])
    return HEALTHY if rc == 0 else UNHEALTHY


def on_failure(ctrs, cid: str, action: str) -> None:
    """``--health-on-failure``: what an unhealthy result does (podman 4.3's kill, stop,
    restart; none does nothing)."""
    if action == "kill":
        ctrs.kill(cid, 9)
    elif action == "stop":
        ctrs.stop(cid)
    elif action == "restart":
        from .restart import restart

        restart(ctrs, cid)
