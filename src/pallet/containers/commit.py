"""What ``pallet commit`` puts in the new image's config: the image's config with the
container's settings over it, as podman 4.3's commit does (libpod's container_commit): the
container's whole environment, its command and entrypoint, user, working directory, labels,
the ports it publishes (exposed), and a stop signal that is not the default."""

from __future__ import annotations

from .._std import json


def _entrypoint(text) -> list[str]:
    if isinstance(text, list):
        return list(text)
    if text.startswith("["):
        try:
            v = json.loads(text)
        except ValueError:
            return [text]
        return [str(x) for x in v] if isinstance(v, list) else [text]
    return [text] if text else []


def apply_container(cfg: dict, meta: dict, spec: dict, volumes: bool = False) -> None:
    """Change the image config ``cfg`` (the ``config`` part) by the container's settings
    (``meta``: its ``metadata["pallet"]``; ``spec``: its generated runtime config); ``volumes``
    (``--include-volumes``): its bind mounts' destinations become VOLUMEs."""
    proc = spec.get("process") or {}
    env = [e for e in proc.get("env") or [] if isinstance(e, str) and "=" in e]
    if env:
        merged = {}
        for e in (cfg.get("Env") or []) + env:
            k, _, v = e.partition("=")
            merged.pop(k, None)
            merged[k] = v
        cfg["Env"] = [f"{k}={v}" for k, v in merged.items()]
    if meta.get("entrypoint") is not None:
        ep = _entrypoint(meta["entrypoint"])
        cfg["Entrypoint"] = ep
        args = meta.get("args") or []
        cfg["Cmd"] = list(args[len(ep):]) if args[:len(ep)] == ep else list(meta.get("command") or [])
    elif meta.get("command"):
        cfg["Cmd"] = list(meta["command"])
    if meta.get("user"):
        cfg["User"] = meta["user"]
    if proc.get("cwd"):
        cfg["WorkingDir"] = proc["cwd"]
    if meta.get("labels"):
        labels = dict(cfg.get("Labels") or {})
        labels.update(meta["labels"])
        cfg["Labels"] = labels
    for p in meta.get("publish") or []:
        n = p.get("range") or 1
        for i in range(n):
            cfg.setdefault("ExposedPorts", {})[f"{p['container_port'] + i}/{p.get('protocol', 'tcp')}"] = {}
    if volumes:
        for b in meta.get("binds") or []:
            cfg.setdefault("Volumes", {})[b["destination"]] = {}
    sig = meta.get("stop_signal")
    if isinstance(sig, int) and sig != 15:
        from ..runtime.container import SIGNALS

        names = {n: k for k, n in SIGNALS.items() if k not in ("IOT", "POLL")}
        cfg["StopSignal"] = "SIG" + names[sig] if sig in names else str(sig)
