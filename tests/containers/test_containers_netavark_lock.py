"""netavark runs one at a time on the host, whatever the store: the networks' bridges and
firewall chains are the host's (two setups on one network from two run roots raced:
"iptables: Chain already exists")."""

from __future__ import annotations

import os

import pytest

from pallet.errors import ContainerNetworkError


def test_every_netavark_run_holds_the_host_lock(tmp_path, monkeypatch, root_required):
    """netavark, wrapped by a script that refuses to run unless another process holds the host
    lock (its own flock -n must fail), still runs: the lock is held around every call."""
    from pallet.containers.network import netavark

    real = netavark.find_helper("netavark")
    assert real, "netavark is not installed (scripts/install.sh installs it)"
    wrapper = tmp_path / "netavark"
    wrapper.write_text("#!/bin/sh\n"
                       f"if flock -n {netavark.HOST_LOCK} true; then\n"
                       "  echo '{\"error\": \"the host lock is not held\"}'; exit 1\n"
                       "fi\n"
                       f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PALLET_NETAVARK", str(wrapper))
    options = {"container_id": "0" * 64, "container_name": "lock-test", "port_mappings": None,
               "networks": {}, "network_info": {}}
    try:  # a teardown of nothing: netavark's own answer, whatever it is, once it was let run
        netavark.teardown(str(tmp_path / "run"), str(tmp_path / "no-such-netns"), options)
    except ContainerNetworkError as e:
        assert "host lock" not in str(e), e
    # and released after it: nobody holds it now (another test's netavark may, for a moment)
    fd = os.open(netavark.HOST_LOCK, os.O_RDONLY)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks at most for another pallet's one netavark run
    finally:
        os.close(fd)


@pytest.mark.unit
def test_the_host_lock_is_where_only_root_makes_files():
    from pallet.containers.network import netavark

    assert os.path.dirname(netavark.HOST_LOCK) == "/run"
