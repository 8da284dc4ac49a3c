"""A container's network, from its ``--network`` mode to a namespace path (what ``run`` will call).

- ``none``: a new namespace with only ``lo``; published ports are refused (nothing to publish on).
- ``host``: no namespace of its own (path None); published ports are discarded with a warning,
  as podman does.
- ``container:ID``: the namespace of another attached container (by name, ID or prefix).
- ``ns:PATH``: that namespace file.
- networks (``bridge`` = the default network): a new namespace attached through netavark; when
  the attachment fails the namespace is removed again.
"""

from __future__ import annotations

import os

from ...errors import ContainerNetworkError, UsageError
from . import netns
from .mode import NetworkMode


# ``endpoints`` below: an endpoints.Endpoints (or, for none/host, an object with ``run_dir`` and
# ``detach``); not imported here, so ``--network none`` loads neither it nor ``ipaddress``


class Sandbox:
    __slots__ = ("netns_path", "owned", "results")

    def __init__(self, netns_path: str | None, owned: bool, results: dict | None = None):
        #: the namespace the container joins (None: the host's)
        self.netns_path = netns_path
        #: whether it was made for this container (and goes with it)
        self.owned = owned
        #: netavark's StatusBlocks per network (bridge mode)
        self.results = results or {}


def setup(endpoints, cid: str, name: str, mode: NetworkMode, port_mappings: list | None = None,
          warn=None, background=None, userns: str | None = None):
    """The container's sandbox for ``mode``. With ``background`` (``background(fn)`` runs ``fn``
    elsewhere and returns a handle whose ``result()`` gives ``fn()``'s result or raises its
    error) netavark's attachment, the slow part of a bridge, runs through it, and the handle is
    returned: ``netns_path`` and ``owned`` at once (the namespace itself is made here first, so
    no other thread forks), ``result()`` gives the Sandbox. ``userns``: the container's user
    namespace file; a namespace made here belongs to it."""
    runroot = os.path.dirname(endpoints.run_dir)
    if mode.kind == "host":
        if port_mappings and warn is not None:
            warn("Port mappings have been discarded as one of the Host, Container, Pod, and None network "
                 "modes are in use")
        return _ready(Sandbox(None, False), background)
    if mode.kind in ("container", "ns"):
        if port_mappings:
            raise UsageError(f"published ports cannot be used with --network {mode.kind}:{mode.target}: "
                             "publish them on the container that owns the namespace")
        if mode.kind == "container":
            return _ready(Sandbox(endpoints.find(mode.target)["netns"], False), background)
        if not os.path.exists(mode.target):
            raise ContainerNetworkError(f"network namespace {mode.target} does not exist")
        return _ready(Sandbox(mode.target, False), background)
    if mode.kind == "none":
        if port_mappings:
            raise UsageError("published ports cannot be used with --network none: it has only lo")
        return _ready(Sandbox(netns.create(runroot, cid[:12], userns), True), background)
    for net in mode.networks:  # every network named exists, before anything is made
        endpoints.networks.get(net)
    path = netns.create(runroot, cid[:12], userns)

    def attach() -> Sandbox:
        try:
            results = endpoints.attach(cid, name, path, mode.networks, port_mappings)
        except BaseException:
            netns.remove(path)
            raise
        return Sandbox(path, True, results)

    if background is None:
        return attach()
    handle = background(attach)
    handle.netns_path, handle.owned = path, True
    return handle


class _Ready:
    def __init__(self, value: Sandbox):
        self.value = value
        self.netns_path, self.owned = value.netns_path, value.owned

    def result(self):
        return self.value


def _ready(sandbox: Sandbox, background):
    return sandbox if background is None else _Ready(sandbox)


def teardown(endpoints, cid: str, sandbox_path: str | None, owned: bool) -> None:
    """Detach every network of ``cid`` and remove its namespace when it owned one: removed even
    when netavark's teardown fails (the detach releases the addresses and the record either
    way; a namespace left would keep its veth, and so the bridge, on the host)."""
    try:
        endpoints.detach(cid)
    finally:
        if owned and sandbox_path:
            netns.remove(sandbox_path)
