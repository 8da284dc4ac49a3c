"""The network of a RUN step or ``builder run``, as buildah gives it: ``host`` (the host's),
``none`` (a namespace with only ``lo``), ``ns:PATH`` (that namespace), or a private namespace attached through netavark --
``private``/``bridge`` (the default network, with outbound access: netavark's masquerade) or a
network by name -- made for the one command and torn down after it.

The networks are the containers' (``containers/network``: the same definitions directory,
``--network-config-dir``/``$PALLET_NETWORK_CONFIG_DIR``/``/etc/pallet/networks``, and the same
run-time state under the store's run root).
"""

from __future__ import annotations

import os

from ..errors import BuildError, UsageError

#: what ``--network`` may say besides a network's name
MODES = ("host", "none", "private", "bridge", "default")


def default_mode() -> str:
    """containers.conf's ``netns`` (``host``, ``none``; ``private``/``bridge``, its default:
    buildah's private namespace on the default network); without root (netavark changes the
    host's links and firewall) ``private`` is the host's network."""
    from ..containers import conf as conf_mod

    conf = conf_mod.load()
    value = conf.get("netns") or "private"
    if value in ("host", "none"):
        return value
    if value not in ("private", "bridge"):
        raise BuildError(f"{conf.where('netns')}: {value!r}: want private, bridge, host or none")
    return "private" if os.geteuid() == 0 else "host"


def check(value: str | None) -> str:
    """A ``--network`` value, normalised (``default``/None: :func:`default_mode`)."""
    if value in (None, "", "default"):
        return default_mode()
    if value in MODES:
        return value
    if value.startswith("ns:") and value[3:].startswith("/") and "\0" not in value:
        return value
    from ..containers.network.config import check_name

    try:
        check_name(value)
    except UsageError:
        raise BuildError(f"invalid --network {value!r}: want host, none, private or a network's name") from None
    return value


class Attached:
    """A namespace attached to a network for one command (a context manager): ``path``, the
    container's addresses ``ips`` and DNS servers ``dns``."""

    def __init__(self, network: str, runroot: str, config_dir: str | None, graphroot: str | None, name: str):
        self.network, self.runroot, self.name = network, runroot, name
        self.config_dir, self.graphroot = config_dir, graphroot
        self.id = os.urandom(32).hex()
        self.path = None
        self.ips: list[str] = []
        self.dns: list[str] = []
        self._endpoints = None
        self._owned = False

    def __enter__(self) -> "Attached":
        from ..containers.network import mode as netmode
        from ..containers.network import sandbox as sb
        from ..containers.network.config import Networks, default_config_dir
        from ..containers.network.endpoints import Endpoints
        from ..errors import PalletError

        try:
            nets = Networks(self.config_dir or default_config_dir(self.graphroot if os.geteuid() else None))
            mode = netmode.parse([self.network], nets)
            if mode.kind == "bridge":
                nets.ensure_default()
            self._endpoints = Endpoints(nets, self.runroot)
            box = sb.setup(self._endpoints, self.id, self.name, mode, [])
        except PalletError as e:
            raise BuildError(f"--network {self.network}: {e}") from None
        self.path, self._owned = box.netns_path, box.owned
        for block in box.results.values():
            for iface in block.interfaces:
                self.ips += [s.ipnet.split("/")[0] for s in iface.subnets]
            self.dns += list(block.dns_server_ips)
        return self

    def __exit__(self, *exc):
        from ..containers.network import sandbox as sb

        if self._endpoints is not None:
            sb.teardown(self._endpoints, self.id, self.path, self._owned)
        return False
