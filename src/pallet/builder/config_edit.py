"""Edits of an image config's ``config`` object: the one implementation behind a
Dockerfile's config instructions (ENV, LABEL, ENTRYPOINT, CMD, USER, WORKDIR, EXPOSE, VOLUME,
STOPSIGNAL, HEALTHCHECK, ONBUILD, SHELL), ``pallet builder config`` and the Python API's
``WorkingContainer.configure``. Every function takes the ``config`` dict and changes it in
place; bad values raise ``error(message)`` (the caller's error type: a Dockerfile line's
BuildError, the CLI's UsageError).
"""

from __future__ import annotations

from ..errors import BuildError

DEFAULT_SHELL = ["/bin/sh", "-c"]


def _build_error(message: str) -> Exception:
    return BuildError(message)


# -- Env ------------------------------------------------------------------------------------

def env_dict(cfg: dict) -> dict:
    """The config's ``Env`` as a dict (later entries win)."""
    out = {}
    for e in cfg.get("Env") or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def set_env(cfg: dict, key: str, value: str, move_last: bool = False) -> None:
    """Set ``key`` in the config's Env: in place (Docker's ENV; buildah's for a variable its
    stage set before), or ``move_last`` as ``buildah config --env`` and buildah's ENV of a base
    image's variable do (the variable moves to the end)."""
    env = cfg.setdefault("Env", [])
    for i, e in enumerate(env):
        if e.partition("=")[0] == key:
            if not move_last:
                env[i] = f"{key}={value}"
                return
            del env[i]
            break
    env.append(f"{key}={value}")


def unset_env(cfg: dict, key: str) -> None:
    cfg["Env"] = [e for e in cfg.get("Env") or [] if e.partition("=")[0] != key]


# -- Labels, User, WorkingDir, Shell, OnBuild -------------------------------------------------

def set_label(cfg: dict, key: str, value: str) -> None:
    if cfg.get("Labels") is None:
        cfg["Labels"] = {}
    cfg["Labels"][key] = value


def unset_label(cfg: dict, key: str) -> None:
    (cfg.get("Labels") or {}).pop(key, None)


def set_user(cfg: dict, user: str) -> None:
    cfg["User"] = user


def set_workdir(cfg: dict, path: str) -> None:
    cfg["WorkingDir"] = path


def set_shell(cfg: dict, argv: list[str]) -> None:
    cfg["Shell"] = list(argv)


def add_onbuild(cfg: dict, trigger: str) -> None:
    if cfg.get("OnBuild") is None:
        cfg["OnBuild"] = []
    cfg["OnBuild"].append(trigger)


# -- Entrypoint, Cmd --------------------------------------------------------------------------

def shell_form(cfg: dict, command: str) -> list[str]:
    """A shell-form command as the config's ``Shell`` (``/bin/sh -c`` by default) runs it."""
    return list(cfg.get("Shell") or DEFAULT_SHELL) + [command]


def set_command(cfg: dict, key: str, argv: list[str] | None, drop_empty: bool = False) -> None:
    """``Entrypoint`` or ``Cmd`` (``key``) set to ``argv``; with ``drop_empty`` an empty one is
    removed (``builder config --cmd ''``), else kept empty (a Dockerfile's ``CMD []``)."""
    if key not in ("Entrypoint", "Cmd"):
        raise ValueError(key)
    if argv is None or (drop_empty and not argv):
        cfg.pop(key, None)
    else:
        cfg[key] = list(argv)


# -- ExposedPorts, Volumes ----------------------------------------------------------------------

def port_keys(word: str, error=_build_error) -> list[str]:
    """An ``EXPOSE`` word (``80``, ``53/udp``, ``8000-8010``, ``1.2.3.4:80``) as config keys;
    a range stays one key, as buildah writes it."""
    from ..oci.config import exposed_port
    try:
        return [exposed_port(word)]
    except ValueError as e:
        raise error(str(e)) from None


def expose(cfg: dict, word: str, error=_build_error) -> None:
    if cfg.get("ExposedPorts") is None:
        cfg["ExposedPorts"] = {}
    for key in port_keys(word, error):
        cfg["ExposedPorts"][key] = {}


def unexpose(cfg: dict, word: str) -> None:
    (cfg.get("ExposedPorts") or {}).pop(word if "/" in word else word + "/tcp", None)


def add_volume(cfg: dict, path: str, error=_build_error) -> None:
    if not path:
        raise error("VOLUME specified can not be an empty string")
    if cfg.get("Volumes") is None:
        cfg["Volumes"] = {}
    cfg["Volumes"][path] = {}


def remove_volume(cfg: dict, path: str) -> None:
    (cfg.get("Volumes") or {}).pop(path, None)


# -- StopSignal ---------------------------------------------------------------------------------

def check_stop_signal(text: str, error=_build_error) -> str:
    """``text`` if it names a signal as buildah accepts one (a name with or without ``SIG``,
    any case; a number from 1 to 64; ``RTMIN+n``/``RTMAX-n``), else ``error(message)`` is raised."""
    from ..errors import PalletError
    from ..runtime.kill import parse_signal

    try:
        parse_signal(text)
    except PalletError:
        raise error(f"invalid stop signal {text!r}: want a signal name (TERM, SIGKILL, RTMIN+3) "
                    "or a number from 1 to 64") from None
    return text


def set_stop_signal(cfg: dict, text: str, error=_build_error) -> None:
    cfg["StopSignal"] = check_stop_signal(text, error)


# -- Healthcheck --------------------------------------------------------------------------------

_HEALTH_TIMES = (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                 ("start_interval", "StartInterval"))


def parse_duration(text: str) -> int | None:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, or None if it is not one
    (a signed one neither: a healthcheck's times are not negative)."""
    from ..oci.times import parse_duration as go_duration

    return None if text[:1] in ("+", "-") else go_duration(text)


def healthcheck(test: list[str], error=_build_error, *, flag_prefix: str = "--", keep_zero: bool = False,
                retries=None, **times) -> dict:
    """A ``Healthcheck`` object: ``test`` (``["NONE"]``, ``["CMD", ...]``, ``["CMD-SHELL", cmd]``)
    and the Go durations ``interval``, ``timeout``, ``start_period``, ``start_interval`` and
    ``retries`` given as text (None: not given); zero values are left out unless ``keep_zero``.
    ``flag_prefix`` names the options in errors (``--`` for HEALTHCHECK, ``--healthcheck-``)."""
    hc: dict = {"Test": list(test)}
    if test == ["NONE"]:
        return hc
    for name, key in _HEALTH_TIMES:
        v = times.pop(name, None)
        if v is None:
            continue
        d = parse_duration(v)
        if d is None:
            raise error(f"invalid {flag_prefix}{name.replace('_', '-')} {v!r}")
        if d or keep_zero:
            hc[key] = d
    if times:
        raise TypeError(f"unknown healthcheck fields {sorted(times)}")
    if retries is not None:
        try:
            n = int(retries)
        except ValueError:
            raise error(f"invalid {flag_prefix}retries {retries!r}") from None
        if n < 0:
            raise error(f"{flag_prefix}retries cannot be negative")
        if n or keep_zero:
            hc["Retries"] = n
    return hc


def set_healthcheck(cfg: dict, hc: dict | None) -> None:
    if hc is None:
        cfg.pop("Healthcheck", None)
    else:
        cfg["Healthcheck"] = hc
