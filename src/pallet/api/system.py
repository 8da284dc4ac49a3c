"""System containers (``pallet install --system``, ``uninstall``, ``containers update|rollback|list``):
an image installed as a systemd service run by the OCI runtime, no engine needed at boot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..errors import UsageError
from .results import SystemContainerInfo, system_container_info


@dataclass(frozen=True)
class SystemPaths:
    """Where system containers go: the command's ``--host-root``, ``--system-dir``, ``--runtime``
    and ``--runtime-root``. ``host_root`` prefixes the unit, tmpfiles and host files (systemd is
    driven only when it is ``/`` and systemd runs); ``system_dir`` defaults to
    ``HOST_ROOT/var/lib/pallet/system``; ``runtime`` is the OCI runtime the units run
    (default pallet-runtime), ``runtime_root`` its state directory on the running host."""

    host_root: str = "/"
    system_dir: str | None = None
    runtime: str | None = None
    runtime_root: str = "/run/pallet/system"


def system_containers(store, paths: SystemPaths | None):
    """The library's SystemContainers on ``store`` (the library's Store; None: verbs that need no images)."""
    from ..containers.container import runtime_path
    from ..system.deploy import Paths, SystemContainers

    p = paths if paths is not None else SystemPaths()
    if not isinstance(p, SystemPaths):
        raise UsageError(f"paths: want a pallet.SystemPaths, not {type(p).__name__}")
    return SystemContainers(store,
                            Paths(p.host_root, p.system_dir, runtime_root=p.runtime_root), runtime_path(p.runtime))


def current(sc, name: str) -> SystemContainerInfo:
    """The current deployment of ``name`` as ``list`` shows it."""
    from ..errors import NotFound

    for d in sc.list():
        if d["name"] == name:
            return system_container_info(d)
    raise NotFound(f"{name}: no such system container", reference=name)


def sets(values: Mapping[str, str] | None) -> dict[str, str]:
    """``--set KEY=VALUE`` as a mapping, checked as the command line checks it."""
    from ..system.template import parse_sets

    return parse_sets([f"{k}={v}" for k, v in (values or {}).items()])
