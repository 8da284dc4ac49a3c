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

from .._fs import drop_owner_lock, hold_owner_lock
from .._userns import rootless_uid
from ..errors import BuildError, PalletError, UsageError

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
    return "private" if rootless_uid() is None else "host"


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


#: capabilities with which a RUN step could change its network namespace for the next one
_NS_CHANGING_CAPS = ("NET_ADMIN", "SYS_ADMIN", "ALL")


def needs_own_namespace(extras) -> bool:
    """Whether RUN steps with these :class:`.run.RunExtras` each get a namespace of their own
    (a step given CAP_NET_ADMIN, CAP_SYS_ADMIN or all capabilities could change a shared one:
    routes, links, firewall rules, sysctls)."""
    if extras is None:
        return False
    caps = {c.strip().upper().removeprefix("CAP_") for c in extras.cap_add}
    return bool(caps & set(_NS_CHANGING_CAPS))


class Attached:
    """A namespace attached to a network (a context manager, or :meth:`start` / :meth:`wait` /
    :meth:`close`): ``path``, the container's addresses ``ips`` and DNS servers ``dns``.

    :meth:`start` makes the namespace here (by a short-lived thread of its own, no fork of the
    build's process) and attaches it in a thread: netavark runs ~20 iptables commands (~40 ms of CPU, more of waiting), during which
    the caller prepares the container; :meth:`wait` joins it. :meth:`close` detaches and
    removes the namespace (``background=True``: in a thread, joined by :meth:`join`), whatever
    state the setup reached; every started Attached is closed and joined by its owner."""

    def __init__(self, network: str, runroot: str, config_dir: str | None, graphroot: str | None, name: str):
        self.network, self.runroot, self.name = network, runroot, name
        self.config_dir, self.graphroot = config_dir, graphroot
        self.id = os.urandom(32).hex()
        self.path = None
        self.ips: list[str] = []
        self.dns: list[str] = []
        self._endpoints = None
        self._owned = False
        self._results = None  # netavark's StatusBlocks, once attached
        self._error: BaseException | None = None  # the setup's
        self._teardown_error: BaseException | None = None
        self._setup = None  # the thread attaching the namespace
        self._teardown = None  # the thread detaching it (close(background=True))
        self._owner_fd: int | None = None  # the lock saying this process uses the namespace

    def _fail(self, e: BaseException) -> BaseException:
        if isinstance(e, PalletError) and not isinstance(e, BuildError):
            return BuildError(f"--network {self.network}: {e}")
        return e

    def start(self) -> "Attached":
        from ..containers.network import mode as netmode
        from ..containers.network import netns
        from ..containers.network import sandbox as sb
        from ..containers.network.config import Networks, default_config_dir
        from ..containers.network.endpoints import Endpoints

        try:
            nets = Networks(self.config_dir or default_config_dir(self.graphroot if rootless_uid() is not None else None))
            mode = netmode.parse([self.network], nets)
            endpoints = Endpoints(nets, self.runroot)
            if mode.kind != "bridge":  # ns:PATH: nothing to make, nothing to wait for
                box = sb.setup(endpoints, self.id, self.name, mode, [])
                self._endpoints, self.path, self._owned, self._results = endpoints, box.netns_path, box.owned, {}
                return self
            nets.ensure_default()
            for net in mode.networks:  # every network named exists, before anything is made
                nets.get(net)
            reap_orphans(self.runroot, endpoints)
            self._owner_fd = hold_owner_lock(_owners_dir(self.runroot), self.id)
            self.path = netns.create_threaded(self.runroot, self.id[:12])  # (no fork of the build)
        except PalletError as e:
            self._disown()
            raise self._fail(e) from None
        self._endpoints, self._owned = endpoints, True
        import threading

        def attach():
            try:
                self._results = endpoints.attach(self.id, self.name, self.path, mode.networks, [])
            except BaseException as e:  # noqa: BLE001 - handed to wait(), in the caller's thread
                self._error = e

        # not a daemon: an interpreter that exits meanwhile still lets netavark finish
        self._setup = threading.Thread(target=attach, name="pallet-network-setup")
        self._setup.start()
        return self

    def wait(self) -> "Attached":
        """The namespace, attached (its setup's error, if it failed: the namespace is gone then)."""
        if self._setup is not None:
            self._setup.join()
            self._setup = None
        if self._error is not None:
            e, self._error = self._error, None
            try:
                self.close()  # what the failed attach left: the namespace
            except PalletError:
                pass  # the setup's error is the one to show
            raise self._fail(e) from None
        if self._results is not None and not self.ips and not self.dns:
            for block in self._results.values():
                for iface in block.interfaces:
                    self.ips += [s.ipnet.split("/")[0] for s in iface.subnets]
                self.dns += list(block.dns_server_ips)
        return self

    def close(self, background: bool = False) -> None:
        """Detach every network and remove the namespace (after the setup, if it still runs)."""
        if background:
            import threading

            self._teardown = threading.Thread(target=self._close_quietly, name="pallet-network-teardown")
            self._teardown.start()
            return
        if self._setup is not None:
            self._setup.join()
            self._setup = None
        endpoints, self._endpoints = self._endpoints, None
        if endpoints is not None:
            from ..containers.network import sandbox as sb

            try:
                sb.teardown(endpoints, self.id, self.path, self._owned)
            except PalletError:
                # netavark failed (another run root's teardown took the shared bridge away
                # meanwhile): the attachment's record is gone all the same; the namespace too
                if self._owned and self.path:
                    from ..containers.network import netns

                    netns.remove(self.path)
                raise
            finally:
                self._disown()

    def _disown(self) -> None:
        if self._owner_fd is not None:
            fd, self._owner_fd = self._owner_fd, None
            drop_owner_lock(_owners_dir(self.runroot), self.id, fd)

    def _close_quietly(self) -> None:
        try:
            self.close()
        except BaseException as e:  # noqa: BLE001 - raised again by join()
            self._teardown_error = e

    def join(self) -> None:
        """Wait for a ``close(background=True)``; its error, if it failed."""
        if self._teardown is not None:
            self._teardown.join()
            self._teardown = None
        if self._teardown_error is not None:
            e, self._teardown_error = self._teardown_error, None
            raise self._fail(e) from None

    def __enter__(self) -> "Attached":
        return self.start().wait()

    def __exit__(self, *exc):
        self.close()
        return False


def _owners_dir(runroot: str) -> str:
    return os.path.join(runroot, "networks", "build-owners")


def reap_orphans(runroot: str, endpoints) -> list[str]:
    """Tear down the namespaces of builds that died without doing it (a pallet killed mid-build:
    their lock is free): the attachment (addresses, netavark's firewall rules and veth) and the
    namespace file. Returns their IDs. Run before a build attaches a namespace of its own."""
    from .._fs import reap_orphaned_locks
    from ..containers.network import netns
    from ..containers.network import sandbox as sb

    def clean(stem: str) -> bool:
        ns_id = os.path.basename(stem)
        if len(ns_id) != 64 or any(c not in "0123456789abcdef" for c in ns_id):
            return False
        ns_path = os.path.join(netns.netns_dir(runroot), ns_id[:12])
        try:
            try:
                sb.teardown(endpoints, ns_id, ns_path if os.path.exists(ns_path) else None, True)
            except PalletError:
                if os.path.exists(ns_path):
                    netns.remove(ns_path)
        except PalletError:
            return False  # tried again by the next build
        return True

    return reap_orphaned_locks(_owners_dir(runroot), clean)


def reap_at_start(runroot: str, graphroot: str | None, config_dir: str | None) -> list[str]:
    """:func:`reap_orphans` when a killed build left an owner lock here (nothing to read
    otherwise): every build calls it as it starts, so a build whose RUN steps all come from the
    cache (it never attaches a network) still tears down what a killed one left."""
    try:
        if not any(n.endswith(".lock") for n in os.listdir(_owners_dir(runroot))):
            return []
    except OSError:
        return []
    from ..containers.network.config import Networks, default_config_dir
    from ..containers.network.endpoints import Endpoints

    try:
        nets = Networks(config_dir or default_config_dir(graphroot if rootless_uid() is not None else None))
        return reap_orphans(runroot, Endpoints(nets, runroot))
    except PalletError:
        return []  # tried again when a step attaches a network (its error is shown then)


class BuildNetworks:
    """The network namespaces of one build's RUN steps: one per network, attached at the
    first step that runs on it and shared by the later ones, as one container's would be
    (netavark's setup and teardown cost ~0.1 s of CPU and more of waiting each; buildah pays
    them on every RUN). Each step still gets its own container (PID, mount, UTS and IPC
    namespaces, hostname, /etc/hosts and resolv.conf); without CAP_NET_ADMIN (not among a
    RUN step's capabilities unless ``--cap-add``ed) a step cannot change the namespace it
    leaves to the next one. With ``--cap-add NET_ADMIN`` (or ALL) every step gets a fresh
    namespace, as before.

    :meth:`start` begins a network's setup (the step then prepares its container meanwhile),
    :meth:`get` waits for it, :meth:`release` tears every namespace down in the background
    (after the build's last RUN step, while the build goes on), :meth:`close` tears down what
    is left and waits for all of it: the build calls it on success and on failure."""

    def __init__(self, runroot: str, graphroot: str | None, config_dir: str | None):
        self.runroot, self.graphroot, self.config_dir = runroot, graphroot, config_dir
        self._live: dict[str, Attached] = {}
        self._closing: list[Attached] = []
        self._errors: list[BaseException] = []

    @staticmethod
    def shares(network: str) -> bool:
        """Whether steps on ``network`` get a namespace of this build's (not host, none, ns:PATH)."""
        return network not in ("host", "none") and not network.startswith("ns:")

    def start(self, network: str) -> None:
        if self.shares(network) and network not in self._live:
            self._join_closing()  # (a step after the release: netavark's runs take turns anyway)
            a = Attached(network, self.runroot, self.config_dir, self.graphroot, "pallet-build-" + os.urandom(6).hex())
            self._live[network] = a.start()

    def get(self, network: str) -> Attached:
        self.start(network)
        a = self._live[network]
        try:
            return a.wait()
        except BaseException:
            del self._live[network]  # wait() removed what the failed setup left
            raise

    def release(self) -> None:
        """Tear every namespace down in the background (a later step on a network attaches anew)."""
        for a in self._live.values():
            a.close(background=True)
            self._closing.append(a)
        self._live = {}

    def close(self) -> None:
        """Tear down what is left and wait for every teardown; the first error is raised after all ran."""
        first = None
        for a in self._live.values():
            try:
                a.close()
            except BaseException as e:  # noqa: BLE001
                first = first or e
        self._live = {}
        self._join_closing()
        errors, self._errors = self._errors, []
        first = first or (errors[0] if errors else None)
        if first is not None:
            raise first

    def _join_closing(self) -> None:
        """Wait for the teardowns started by release(); their errors are close()'s."""
        for a in self._closing:
            try:
                a.join()
            except BaseException as e:  # noqa: BLE001 - raised by close()
                self._errors.append(e)
        self._closing = []
