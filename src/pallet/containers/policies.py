"""What ``run``/``create`` decide about a container's life, checked before anything is made:
``--restart``, the health check (``--health-*``, ``--no-healthcheck``, the image's
``Healthcheck``), ``--init`` and ``--stop-timeout``. ``meta(...)`` turns them into the fields
kept in the container's record; ``apply_to_spec`` adds ``--init`` to the generated runtime config.
``before_stop`` marks a container stopped by the user (no restart policy applies after it) and
``set_paused`` records ``pause``; they live here, below ``container.py``, which calls them.
"""

from __future__ import annotations

import os

from ..errors import ContainerStateError, UsageError

#: where podman binds its init (catatonit) in the container
INIT_PATH = "/run/podman-init"
#: podman's health check defaults (Go durations as nanoseconds)
HEALTH_DEFAULTS = {"Interval": 30 * 10**9, "Timeout": 30 * 10**9, "StartPeriod": 0, "Retries": 3}
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


class LifeOptions:
    def __init__(self, *, restart=None, health_cmd=None, health_interval=None, health_retries=None,
                 health_start_period=None, health_timeout=None, no_healthcheck=False, init=False, init_path=None,
                 stop_timeout=None):
        self.restart = restart
        self.health_cmd, self.health_interval, self.health_retries = health_cmd, health_interval, health_retries
        self.health_start_period, self.health_timeout = health_start_period, health_timeout
        self.no_healthcheck, self.init, self.init_path, self.stop_timeout = no_healthcheck, init, init_path, stop_timeout


def parse_restart(text: str | None) -> tuple[str, int]:
    """``no|on-failure[:N]|always|unless-stopped`` as (policy, maximum retries: 0 is unbounded)."""
    if text is None or text == "":
        return "no", 0
    name, sep, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise UsageError(f"invalid restart policy {text!r}: want no, on-failure[:N], always or unless-stopped")
    if sep:
        if name != "on-failure":
            raise UsageError(f"invalid restart policy {text!r}: only on-failure takes a retry count")
        if not (count.isascii() and count.isdigit()) or int(count) > 1 << 31:
            raise UsageError(f"invalid restart policy {text!r}: the retry count must be a non-negative number")
        return name, int(count)
    return name, 0


def _duration(flag: str, text: str, allow_disable: bool = False) -> int:
    from ..oci.times import parse_duration

    if allow_disable and text == "disable":
        return 0
    d = parse_duration(text)
    if d is None or d < 0:
        raise UsageError(f"invalid {flag} {text!r}: want a duration such as 30s or 1m30s")
    return d


def _health_test(text: str) -> list[str]:
    """podman's --health-cmd: a JSON array (``["CMD", ...]``, ``["CMD-SHELL", "..."]`` or a
    bare command array, taken as CMD), or a string run by ``/bin/sh -c``; ``none`` disables."""
    from .._std import json

    t = text.strip()
    if not t:
        raise UsageError("--health-cmd: must not be empty")
    if t.lower() == "none":
        return ["NONE"]
    if t.startswith("["):
        try:
            v = json.loads(t)
        except ValueError:
            raise UsageError(f"invalid --health-cmd {text!r}: not a JSON array") from None
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise UsageError(f"invalid --health-cmd {text!r}: want a JSON array of strings")
        if v[0] in ("CMD", "CMD-SHELL", "NONE"):
            return v
        return ["CMD"] + v
    return ["CMD-SHELL", t]


def healthcheck(o: LifeOptions, image_config: dict) -> dict | None:
    """The container's health check (the image's ``Healthcheck`` under the user's flags), or None."""
    given = any(v is not None for v in (o.health_interval, o.health_retries, o.health_start_period,
                                        o.health_timeout))
    if o.no_healthcheck:
        if o.health_cmd is not None or given:
            raise UsageError("--no-healthcheck and --health-* options conflict")
        return None
    hc = None
    img = image_config.get("Healthcheck") if isinstance(image_config, dict) else None
    if o.health_cmd is not None:
        test = _health_test(o.health_cmd)
        if test == ["NONE"]:
            if given:
                raise UsageError("--health-cmd none: no other --health-* option can be given")
            return None
        hc = {"Test": test}
    elif isinstance(img, dict) and isinstance(img.get("Test"), list) and img["Test"] and \
            all(isinstance(x, str) for x in img["Test"]) and img["Test"][0] != "NONE":
        hc = {"Test": list(img["Test"])}
        for k in ("Interval", "Timeout", "StartPeriod", "Retries"):
            v = img.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                hc[k] = v
    elif given:
        raise UsageError("--health-* options need a health check: give --health-cmd (the image has none)")
    if hc is None:
        return None
    if hc["Test"][0] == "CMD-SHELL" and len(hc["Test"]) != 2:
        raise UsageError(f"invalid health check {hc['Test']!r}: CMD-SHELL takes one string")
    if len(hc["Test"]) < 2:
        raise UsageError(f"invalid health check {hc['Test']!r}: no command")
    for k, v in HEALTH_DEFAULTS.items():
        hc.setdefault(k, v)
    if not hc["StartPeriod"]:
        del hc["StartPeriod"]  # podman leaves a zero start period out
    if o.health_interval is not None:
        hc["Interval"] = _duration("--health-interval", o.health_interval, allow_disable=True)
    if o.health_timeout is not None:
        hc["Timeout"] = _duration("--health-timeout", o.health_timeout)
        if hc["Timeout"] < 10**9:
            raise UsageError("healthcheck-timeout must be at least 1 second")
    if o.health_start_period is not None:
        hc["StartPeriod"] = _duration("--health-start-period", o.health_start_period) or hc.pop("StartPeriod", 0)
    if o.health_retries is not None:
        if o.health_retries < 1:
            raise UsageError("healthcheck-retries must be greater than 0")
        hc["Retries"] = o.health_retries
    return hc


def init_binary(path: str | None) -> str:
    """catatonit (Debian's package), as containers.conf's ``init_path`` would name it."""
    import shutil

    for p in ([path] if path else [os.environ.get("PALLET_INIT_PATH"), "/usr/libexec/podman/catatonit",
                                   "/usr/bin/catatonit", shutil.which("catatonit")]):
        if p and os.path.isabs(p) and os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    raise UsageError(f"--init: {path or 'catatonit'} not found (install Debian's catatonit package, or give "
                     "--init-path)")


def meta(o: LifeOptions | None, image_config: dict, rm: bool) -> dict:
    """The fields of the container's record (every option checked; nothing is made here)."""
    o = o or LifeOptions()
    policy, retries = parse_restart(o.restart)
    if rm and policy != "no":
        raise UsageError("the --rm option conflicts with --restart, when the restartPolicy is not \"\" and \"no\"")
    if o.stop_timeout is not None and o.stop_timeout < 0:
        raise UsageError(f"invalid --stop-timeout {o.stop_timeout}: must not be negative")
    out = {"restart": policy if policy != "on-failure" or not retries else f"on-failure:{retries}",
           "restart_policy": policy, "restart_retries": retries,
           "healthcheck": healthcheck(o, image_config),
           "init": init_binary(o.init_path) if o.init else None,
           "stop_timeout": 10 if o.stop_timeout is None else o.stop_timeout}
    return out


def apply_to_spec(doc: dict, meta: dict) -> None:
    """``--init``: catatonit bound read-only at /run/podman-init runs the command as its child."""
    init = meta.get("init")
    if not init:
        return
    proc = doc["process"]
    proc["args"] = [INIT_PATH, "--"] + list(proc.get("args") or [])
    doc.setdefault("mounts", []).append({"destination": INIT_PATH, "type": "bind", "source": init,
                                         "options": ["bind", "private", "ro"]})


def before_stop(ctrs, cid: str, meta: dict) -> None:
    """``stop`` (and ``rm -f``, ``restart``): no restart policy applies to the exits that follow
    (a restart under way finishes first, then the mark is set: a later one sees it and does not
    start); a paused container is thawed so that its stop signal is delivered."""
    import time

    deadline = time.monotonic() + 60
    while True:
        with ctrs.editing_state(cid) as st:
            try:
                ctrs.check_not_starting(cid, st, meta)
                starting = False
            except ContainerStateError:
                starting = True
            done = not starting or time.monotonic() > deadline
            if done:
                st["stopped_by_user"] = True
                paused = st.get("paused") and st.get("state") == "running"
        if done:
            break
        time.sleep(0.02)
    if paused:
        ctrs.runtime_command(meta, "resume", cid, check=False)
        set_paused(ctrs, cid, False)


def set_paused(ctrs, cid: str, paused: bool) -> None:
    with ctrs.editing_state(cid) as st:
        st["paused"] = paused
