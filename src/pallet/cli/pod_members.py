"""What ``run``/``create --pod``, ``ps --pod``/``--filter pod=`` and ``rm --all`` need of pods
(``containers/pods.py``); the ``pod`` verbs themselves are in ``pods.py``."""

from __future__ import annotations

import sys


def pod_member(args, ctrs, o, pull_fn, warn):
    """``run``/``create --pod NAME|new:NAME``: ``with pod_member(...) as member:`` the options
    made a member of the pod (a ``new:`` one created first, with default options); in the block
    the caller creates the container and calls ``member(rec)``. When anything fails a pod made
    here is removed again: nothing is left half made."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        text = getattr(args, "pod", None)
        if not text:
            yield lambda rec: None
            return
        from ..containers.pods import PodOptions, Pods

        pods = Pods(ctrs)
        made = None
        try:
            if text.startswith("new:"):  # the container's --hostname becomes the new pod's (podman's)
                made = pods.create(PodOptions(name=text[4:], network_config_dir=o.network_config_dir,
                                              hostname=o.hostname, create_command=["pallet"] + sys.argv[1:]),
                                   pull_fn, warn=warn)
                o.hostname = None
                text = made["id"]
            pods.join(o, text)
            yield lambda rec: pods.check_member(rec["id"])
        except BaseException:
            if made is not None:
                pods.remove(made["id"], force=True)
            raise

    return scope()


def exit_policy(ctrs, text: str):
    """conmon's exit command for a pod's member: what to call after its cleanup (a pod whose
    exit policy is ``stop`` stops its infra container when no other member runs)."""
    from ..containers.pods import Pods
    from ..errors import ContainerNotFound

    try:
        pod = ctrs.get(text)["metadata"]["pallet"].get("pod") or {}
    except ContainerNotFound:
        pod = {}
    if not pod.get("id") or pod.get("infra"):
        return lambda: None
    return lambda: Pods(ctrs).stop_if_idle(pod["id"])


def remove_pod_of(ctrs, rec: dict, force: bool, timeout) -> list[str] | None:
    """``rm --depend`` of an infra container: its pod goes (podman's); the IDs of the containers
    removed, or None when ``rec`` is no infra container."""
    pod = rec["metadata"]["pallet"].get("pod") or {}
    if not pod.get("infra"):
        return None
    from ..containers.pods import Pods

    pods = Pods(ctrs)
    ids = [c["id"] for c in pods.containers(pods.get(pod["id"], removing=True))]
    pods.remove(pod["id"], force=force, timeout=timeout)
    return ids


def remove_all(ctrs, force: bool, timeout) -> list[str]:
    """``rm --all``: every pod goes with its containers (podman's); the IDs of the containers
    removed."""
    from ..containers.pods import PodNotFound, Pods

    pods = Pods(ctrs)
    out = []
    for rec in pods.list():
        ids = [c["id"] for c in pods.containers(rec)]
        try:
            pods.remove(rec["id"], force=force, timeout=timeout)
        except PodNotFound:
            continue
        out += ids
    return out


def pod_ports(ctrs, meta: dict) -> list:
    """A pod member's published ports: its pod's (the infra container's), as podman's ps shows."""
    infra = (meta.get("pod") or {}).get("infra_id")
    if not infra or not (meta.get("networks") or [""])[0].startswith("container:"):
        return []
    from ..errors import ContainerNotFound

    try:
        return ctrs.get(infra)["metadata"]["pallet"].get("publish") or []
    except ContainerNotFound:
        return []


def pod_names(ctrs) -> dict:
    """Pod ID -> name (``ps --pod``)."""
    from ..containers.pods import Pods

    return {r["id"]: r["name"] for r in Pods(ctrs).list()}


def pod_id(ctrs, text: str) -> str:
    """The ID of the pod ``text`` names (``ps --filter pod=``), or "" for none."""
    from ..containers.pods import PodNotFound, Pods

    try:
        return Pods(ctrs).get(text)["id"]
    except PodNotFound:
        return ""
