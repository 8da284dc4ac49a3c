"""Pods' pure parts: ``--share`` and the pod's state from its containers' (podman 4.3's rules)."""

from __future__ import annotations

import pytest

from pallet.containers.pods import parse_share, status_of
from pallet.errors import UsageError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,want", [(None, ["ipc", "net", "uts"]), ("net", ["net"]), ("none", []), ("", []),
                                       ("+pid", ["ipc", "net", "pid", "uts"]), ("uts,ipc,uts", ["ipc", "uts"]),
                                       ("+none", ["ipc", "net", "uts"]), ("cgroup,pid", ["cgroup", "pid"])])
def test_share(text, want):
    assert parse_share(text) == want


@pytest.mark.parametrize("text", ["mnt", "net,user", "+bogus", "net,"])
def test_share_refuses_unknown_namespaces_as_podman(text):
    with pytest.raises(UsageError, match=r"invalid kernel namespace to share: .*\. Options are: cgroup, ipc, net, "
                                         r"pid, uts or none"):
        parse_share(text)


@pytest.mark.parametrize("states,want", [([], "Created"), (["running", "running"], "Running"),
                                         (["running", "exited"], "Degraded"), (["running", "created"], "Degraded"),
                                         (["paused", "paused"], "Paused"), (["exited", "stopped"], "Exited"),
                                         (["exited", "created"], "Stopped"), (["created", "configured"], "Created"),
                                         (["created", "removing"], "Error"), (["paused", "created"], "Created")])
def test_pod_state_from_its_containers(states, want):
    assert status_of(states) == want
