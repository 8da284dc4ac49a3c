"""What the container verb modules share (``containers``, ``container_files``,
``container_procs``): the container model opened on the store the global flags name."""

from __future__ import annotations


def open_containers(args):
    """The container model on the store the global flags name (the exit command repeats them)."""
    from ..containers.container import Containers
    from .common import global_store_args
    from .store import open_store

    return Containers(open_store(args), global_store_args(args), runtime_flags(args))


def runtime_flags(args) -> list[str]:
    """The global ``--runtime-flag`` values as the runtime's flags (podman's: ``--`` before each)."""
    return ["--" + f for f in getattr(args, "global_runtime_flags", None) or ()]


def add_verbs(sub, adders: dict, only: str | None) -> None:
    """Register each ``name: add(podman_verb, sub, name)`` (only ``only`` when given)."""
    from .common import podman_verb

    for name, add in adders.items():
        if only in (None, name):
            add(podman_verb, sub, name)
