"""Named volumes and networks of run containers (``pallet volume ...``, ``pallet network ...``):
``store.volumes`` and ``store.networks``, as docker-py's ``client.volumes``/``client.networks``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ._common import about, name_arg, strings_arg
from .results import NetworkInfo, VolumeInfo, network_info, volume_info


class VolumeManager:
    """``store.volumes``: the store's named volumes (``GRAPHROOT/volumes``)."""

    def __init__(self, store: Any):
        self._store = store  # the pallet.Store (``store.volumes`` makes this)

    def __repr__(self) -> str:
        return f"<pallet.VolumeManager root={self._store.root!r}>"

    def _vols(self):
        from ..containers.volumes import Volumes

        return Volumes(self._store._s().graphroot)

    def create(self, name: str | None = None, *, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None) -> VolumeInfo:
        """``pallet volume create [NAME]`` (None: a random name); ``options`` are the local
        driver's ``-o`` (``type``, ``device``, ``o``...). A name in use is refused."""
        vols = self._vols()
        with about(name):
            rec = vols.create(name_arg(name, "volume") if name is not None else None, labels=dict(labels or {}),
                              options=dict(options or {}))
        return volume_info(vols.inspect(rec))

    def get(self, name: str) -> VolumeInfo:
        """``pallet volume inspect NAME``; :class:`pallet.errors.VolumeNotFound` if none."""
        vols = self._vols()
        with about(name):
            return volume_info(vols.inspect(vols.get(name_arg(name, "volume"))))

    def exists(self, name: str) -> bool:
        from ..errors import VolumeNotFound

        try:
            self._vols().get(name_arg(name, "volume"))
        except VolumeNotFound:
            return False
        return True

    def list(self) -> list[VolumeInfo]:
        """``pallet volume ls``, by name."""
        vols = self._vols()
        return [volume_info(vols.inspect(r)) for r in vols.list()]

    def remove(self, name: str, *, force: bool = False) -> None:
        """``pallet volume rm [--force] NAME``: a volume containers use is refused
        (:class:`pallet.errors.VolumeInUse`), unless ``force``: they are removed first."""
        vols = self._vols()
        with about(name):
            rec = vols.get(name_arg(name, "volume"))
            if force and rec.get("users"):
                ctrs = self._store.containers
                for cid in list(rec["users"]):
                    ctrs.get(cid).remove(force=True)
            vols.remove(rec["name"], force)

    def prune(self) -> list[str]:
        """``pallet volume prune -f``: every volume no container uses; their names."""
        return self._vols().prune()


class NetworkManager:
    """``store.networks``: the bridge networks run containers attach to (netavark's definitions in
    ``/etc/pallet/networks`` as root, or the store's ``network_config_dir``)."""

    def __init__(self, store: Any):
        self._store = store  # the pallet.Store (``store.networks`` makes this)

    def __repr__(self) -> str:
        return f"<pallet.NetworkManager {self._nets().dir!r}>"

    def _nets(self):
        from ..containers.network.config import Networks, default_config_dir

        s = self._store
        return Networks(s.network_config_dir or default_config_dir(s._s().graphroot))

    def create(self, name: str | None = None, *, subnet: str | Sequence[str] = (), gateway: str | Sequence[str] = (),
               ip_range: str | Sequence[str] = (), internal: bool = False, dns: bool = True,
               labels: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None,
               interface: str | None = None) -> NetworkInfo:
        """``pallet network create [NAME]``: a bridge network; a subnet given must overlap no
        host route and no other network (none given: a free one is chosen)."""
        from ..containers.network.config import check_name

        if name is not None:
            check_name(name)
        with about(name):
            doc = self._nets().create(name, subnet_texts=strings_arg(subnet, "subnet"),
                                      gateways=strings_arg(gateway, "gateway"),
                                      ip_ranges=strings_arg(ip_range, "ip_range"), internal=bool(internal),
                                      dns=bool(dns), labels=dict(labels or {}), options=dict(options or {}),
                                      interface=interface)
        return network_info(doc)

    def get(self, name_or_id: str) -> NetworkInfo:
        """``pallet network inspect``; :class:`pallet.errors.NetworkNotFound` if none."""
        with about(name_or_id):
            return network_info(self._nets().get(name_arg(name_or_id, "network")))

    def exists(self, name_or_id: str) -> bool:
        from ..errors import NetworkNotFound

        try:
            self._nets().get(name_arg(name_or_id, "network"))
        except NetworkNotFound:
            return False
        return True

    def list(self) -> list[NetworkInfo]:
        """``pallet network ls`` (the default network, ``pallet``, included), by name."""
        return [network_info(d) for d in self._nets().list()]

    def remove(self, name_or_id: str, *, force: bool = False) -> None:
        """``pallet network rm [--force]``: refused while containers use it
        (:class:`pallet.errors.NetworkInUse`) unless ``force`` disconnects them."""
        from ..containers.network.endpoints import Endpoints

        with about(name_or_id):
            Endpoints(self._nets(), self._store._s().runroot).remove_network(name_arg(name_or_id, "network"), force)
