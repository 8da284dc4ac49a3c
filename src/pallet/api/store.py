"""The local store (podman's image verbs), working containers (buildah's) and builds."""

from __future__ import annotations

import contextlib
import os
from typing import IO, Iterator, Literal, Mapping, Sequence

from ..errors import BuildError, UsageError
from ._common import Context, Format, Reference, about, context_of, copy_options, image_format
from .containers import ContainerManager
from .objects import NetworkManager, VolumeManager
from .results import (CopyResult, HistoryEntry, ImageInfo, RemoveResult, ScanReport, SystemContainerInfo, copy_result,
                      history_entry, image_info, system_container_info)
from .scans import TargetKind
from .system import SystemPaths

#: how ``pull`` treats an image already in the store (buildah's ``--pull`` values)
PullPolicy = Literal["missing", "always", "never"]

#: archive and directory formats of ``save`` (``pallet save --format``)
SaveFormat = Literal["oci-archive", "docker-archive", "oci-dir", "docker-dir"]


def open_store(root: str | None = None, *, runroot: str | None = None, driver: str | None = None,
               context: Context | None = None, tls_verify: bool | None = None,
               network_config_dir: str | None = None) -> "Store":
    """Open the local store (``pallet --root ROOT --runroot RUNROOT --storage-driver DRIVER``).

    ``root=None`` is the default store (``/var/lib/pallet`` for root, or storage.conf's
    ``graphroot``). ``context`` (or ``tls_verify``) is how the store's pulls and pushes reach
    registries unless a call gives its own. ``network_config_dir`` is ``--network-config-dir``:
    where the networks of run containers are defined (default ``/etc/pallet/networks`` as root).
    Use it as a context manager, or call ``close()``.
    """
    return Store(root, runroot=runroot, driver=driver, context=context_of(context, tls_verify),
                 network_config_dir=network_config_dir)


class Store:
    """One local store; cheap to open, safe to share with other processes (they lock)."""

    def __init__(self, root: str | None = None, *, runroot: str | None = None, driver: str | None = None,
                 context: Context | None = None, network_config_dir: str | None = None):
        from ..storage.options import resolve
        from ..storage.store import Store as _Store

        if driver is not None and driver not in ("overlay", "vfs", "auto"):
            raise UsageError(f"driver: unknown storage driver {driver!r}: want overlay, vfs or auto")
        self._store = _Store(resolve(root, runroot, driver))
        self.context: Context = context_of(context, None)
        self._closed = False
        #: ``--network-config-dir`` of the run containers' networks (None: the default directory)
        self.network_config_dir: str | None = os.path.abspath(network_config_dir) if network_config_dir else None
        self._containers: ContainerManager | None = None

    # -- the store itself ----------------------------------------------------------------------

    @property
    def root(self) -> str:
        """The store's directory (graphroot)."""
        return self._store.graphroot

    @property
    def runroot(self) -> str:
        return self._store.runroot

    @property
    def driver(self) -> str:
        """The storage driver in use: ``overlay`` or ``vfs``."""
        return self._store.driver.name

    def close(self) -> None:
        """Nothing stays open between calls; after close() the object refuses further use."""
        self._closed = True

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pallet.Store root={self.root!r} driver={self.driver!r}>"

    def _s(self):
        if self._closed:
            raise UsageError("the store is closed")
        return self._store

    def _ctx(self, context: Context | None, tls_verify: bool | None):
        c = context_of(context if context is not None else self.context, tls_verify)
        return c.system_context()

    # -- images --------------------------------------------------------------------------------

    def _info(self, rec: dict, all_recs: list[dict] | None = None) -> ImageInfo:
        from ..storage import info

        store = self._s()
        recs = all_recs if all_recs is not None else store.images()
        cfg = info.config(store, rec)
        labels = (cfg.get("config") or {}).get("Labels") or {}
        containers = sum(1 for c in store.containers() if c.get("image") == rec["id"])
        dangling = not rec["names"] and rec["id"] not in info.intermediate_ids(recs)
        return image_info(rec, labels, containers, dangling)

    def images(self, *, all: bool = False) -> list[ImageInfo]:
        """The images, newest first, as ``pallet images`` lists them (``all``: with intermediate ones)."""
        from ..storage import info

        recs = self._s().images()
        hidden = set() if all else info.intermediate_ids(recs)
        recs = sorted((r for r in recs if r["id"] not in hidden), key=lambda r: r.get("created", ""), reverse=True)
        return [self._info(r, recs) for r in recs]

    def image(self, ref: str) -> ImageInfo:
        """The image a name, ID or ID prefix names; :class:`pallet.errors.NotFound` if none."""
        with about(ref):
            return self._info(self._s().image(_text(ref)))

    def exists(self, ref: str) -> bool:
        from ..storage.store import ImageUnknown

        try:
            self._s().image(_text(ref))
        except ImageUnknown:
            return False
        return True

    def inspect_image(self, ref: str) -> dict:
        """``pallet image inspect``'s object (podman's keys): config, layers, graph driver data."""
        from ..storage import info

        with about(ref):
            return info.inspect_image(self._s(), _text(ref))

    def history(self, ref: str) -> list[HistoryEntry]:
        """``pallet image history``: newest first."""
        from ..storage import info

        with about(ref):
            return [history_entry(r) for r in info.history(self._s(), _text(ref))]

    def pull(self, ref: str, *, context: Context | None = None, tls_verify: bool | None = None,
             policy: str | None = None, insecure_policy: bool = False) -> ImageInfo:
        """``pallet pull REF``: a name (short names resolve through registries.conf) or
        ``transport:details`` (``docker://``, ``oci:``, ``oci-archive:``, ``dir:``...)."""
        from ..images import pull as _pull

        with about(ref):
            text = _text(ref)
            options = copy_options(policy=policy, insecure_policy=insecure_policy)
            recs = _pull.pull(self._s(), text, self._ctx(context, tls_verify), options)
            return self._info(self._s().image(recs[0]["id"]))

    def push(self, image: str, destination: Reference | None = None, *, format: Format | None = None,
             context: Context | None = None, tls_verify: bool | None = None, remove_signatures: bool = False,
             sign_by: str | None = None, compress: str | None = None) -> CopyResult:
        """``pallet push IMAGE [DEST]``: DEST defaults to the registry the image's name points at;
        a destination without a transport is a registry (``host/repo:tag``)."""
        from ..images import push as _push

        with about(image):
            ctx = self._ctx(context, tls_verify)
            dest = destination if destination is None or isinstance(destination, str) else str(destination)
            options = copy_options(format=format, remove_signatures=remove_signatures, sign_by=sign_by,
                                   compress=compress)
            return copy_result(_push.push(self._s(), _text(image), dest, ctx, self._ctx(context, tls_verify),
                                        options))

    def tag(self, image: str, *names: str) -> ImageInfo:
        """``pallet tag IMAGE NAME...``: names move from other images, as podman's do."""
        if not names:
            raise UsageError("tag: give at least one new name")
        with about(image):
            return self._info(self._s().tag(_text(image), [_text(n) for n in names]))

    def untag(self, image: str, *names: str) -> ImageInfo:
        """``pallet untag IMAGE [NAME...]`` (no names: every name)."""
        with about(image):
            return self._info(self._s().untag(_text(image), [_text(n) for n in names]))

    def remove(self, image: str, *, force: bool = False) -> RemoveResult:
        """``pallet rmi IMAGE``: by one of several names, only that name goes; with ``force`` the
        run containers using the image are stopped and removed first (``podman rmi -f``)."""
        from ..containers import pods as _pods  # a pod's infra container goes with its pod

        with about(image):
            iid, untagged, deleted = _pods.remove_image(self._s(), _text(image), force=force)
        return RemoveResult(id=iid, untagged=tuple(untagged), deleted=deleted,
                            _doc={"Id": iid, "Untagged": list(untagged), "Deleted": deleted})

    def save(self, images: str | Sequence[str], output: str, *, format: SaveFormat = "oci-archive",
             context: Context | None = None) -> None:
        """``pallet save -o OUTPUT --format FORMAT IMAGE...`` (archives, or ``oci-dir``/``docker-dir``)."""
        from ..images import archive as _archive
        from ..transports.copy import CopyOptions, Progress

        names = [images] if isinstance(images, str) else [_text(i) for i in images]
        with about(names[0] if names else None):
            _archive.save(self._s(), names, output, format, self._ctx(context, None),
                     CopyOptions(progress=Progress(None)))

    def load(self, archive: str, *, context: Context | None = None) -> list[str]:
        """``pallet load -i ARCHIVE``: every image of a docker-archive or oci-archive; the names loaded."""
        from ..images import archive as _archive
        from ..transports.copy import CopyOptions, Progress

        with about(archive):
            return _archive.load(self._s(), archive, self._ctx(context, None), CopyOptions(progress=Progress(None)))

    @contextlib.contextmanager
    def mount(self, image: str) -> Iterator[str]:
        """``with store.mount(image) as path:`` the image's files, read-only (nodev, nosuid);
        unmounted when the block ends (mounts are counted: other users keep theirs)."""
        with about(image):
            store = self._s()
            rec = store.image(_text(image))
            path = store.mount_image(rec["id"])
        try:
            yield path
        finally:
            store.umount_image(rec["id"])

    # -- run containers, scans, system containers -----------------------------------------------

    @property
    def containers(self) -> ContainerManager:
        """The store's run containers (``pallet run``, ``ps``...): ``store.containers.run(...)``."""
        if self._containers is None:
            self._containers = ContainerManager(self)
        return self._containers

    @property
    def volumes(self) -> VolumeManager:
        """The store's named volumes (``pallet volume ...``)."""
        return VolumeManager(self)

    @property
    def networks(self) -> NetworkManager:
        """The networks run containers attach to (``pallet network ...``)."""
        return NetworkManager(self)

    def scan(self, target: str, *, policy: str | None = None, kind: TargetKind | None = None,
             context: Context | None = None, tls_verify: bool | None = None) -> ScanReport:
        """``pallet scan TARGET``: see :func:`pallet.scan`."""
        from .scans import run_scan

        return run_scan(self._s(), target, policy, kind, self._ctx(context, tls_verify))

    def import_vulnerabilities(self, paths: str | Sequence[str]) -> int:
        """``pallet scan db import PATH...``: OSV records (JSON files, directories, OSV's zips)
        into the store's database; how many records were imported."""
        from .scans import import_vulnerabilities

        return import_vulnerabilities(self._s(), [paths] if isinstance(paths, str) else list(paths))

    def install_system(self, image: str, name: str, *, values: Mapping[str, str] | None = None,
                       rootfs: str | None = None, force: bool = False, start: bool = True,
                       paths: SystemPaths | None = None, context: Context | None = None,
                       tls_verify: bool | None = None) -> SystemContainerInfo:
        """``pallet install --system --name NAME IMAGE``: the image (pulled when missing) as the
        systemd service ``NAME.service``; ``values`` are ``--set``'s template variables, ``paths``
        the ``--host-root``/``--system-dir``/``--runtime`` options. Its current deployment."""
        from . import system as _system
        from ..system.unit import check_name

        check_name(_text(name))
        v = _system.sets(values)
        sc = _system.system_containers(self._s(), paths)
        if not self.exists(_text(image)):
            self.pull(image, context=context, tls_verify=tls_verify)
        with about(name):
            sc.install(image, name, v, rootfs=rootfs, force=force, start=start)
            return _system.current(sc, name)

    def update_system(self, name: str, *, values: Mapping[str, str] | None = None, rebase: str | None = None,
                      force: bool = False, paths: SystemPaths | None = None, context: Context | None = None,
                      tls_verify: bool | None = None) -> SystemContainerInfo:
        """``pallet containers update NAME [--rebase IMAGE]``: a new deployment, switched to and restarted."""
        from . import system as _system

        v = _system.sets(values)
        sc = _system.system_containers(self._s(), paths)
        if rebase is not None and not self.exists(_text(rebase)):
            self.pull(rebase, context=context, tls_verify=tls_verify)
        with about(name):
            sc.update(_text(name), v, rebase=rebase, force=force)
            return _system.current(sc, name)

    def rollback_system(self, name: str, *, paths: SystemPaths | None = None) -> SystemContainerInfo:
        """``pallet containers rollback NAME``: back to the previous deployment."""
        from . import system as _system

        sc = _system.system_containers(self._s(), paths)
        with about(name):
            sc.rollback(_text(name))
            return _system.current(sc, name)

    def uninstall_system(self, name: str, *, paths: SystemPaths | None = None) -> list[str]:
        """``pallet uninstall NAME``: unit, host files and deployments removed; the host files
        kept because they changed since the install."""
        from . import system as _system

        with about(name):
            return list(_system.system_containers(None, paths).uninstall(_text(name))["kept"])

    def system_containers(self, *, all: bool = False,
                          paths: SystemPaths | None = None) -> list[SystemContainerInfo]:
        """``pallet containers list`` (``all``: the previous deployments too)."""
        from . import system as _system

        return [system_container_info(d) for d in _system.system_containers(None, paths).list(all)]

    # -- working containers and builds ----------------------------------------------------------

    @contextlib.contextmanager
    def working_container(self, image: str | None = None, *, name: str | None = None,
                          pull: PullPolicy = "missing", keep: bool = False,
                          context: Context | None = None) -> Iterator["WorkingContainer"]:
        """``with store.working_container(image) as wc:`` buildah's ``from``: a writable container on
        ``image`` (None or ``"scratch"``: on nothing), pulled first as ``pull`` says. It is
        removed when the block ends unless ``keep`` (``pallet builder containers`` lists it then)."""
        wc = self.new_working_container(image, name=name, pull=pull, context=context)
        try:
            yield wc
        finally:
            if not keep and not wc.removed:
                wc.remove()

    def new_working_container(self, image: str | None = None, *, name: str | None = None,
                              pull: PullPolicy = "missing", context: Context | None = None) -> "WorkingContainer":
        """The same as :meth:`working_container` without the block: remove it yourself."""
        from ..builder import working

        with about(image):
            b = working.BuilderContainer.create(self._s(), _text(image) if image is not None else None, name=name,
                                                pull=pull, ctx=self._ctx(context, None))
        return WorkingContainer(self, b)

    def working_containers(self) -> list["WorkingContainer"]:
        """Every working container (``pallet builder containers``)."""
        from ..builder import working

        return [WorkingContainer(self, b) for b in working.BuilderContainer.all(self._s())]

    def build(self, context: str, *, dockerfile: str | None = None, tags: Sequence[str] = (),
              build_args: Mapping[str, str] | None = None, target: str | None = None,
              labels: Mapping[str, str] | None = None, format: Format = "oci", layers: bool = True,
              no_cache: bool = False, timestamp: int | None = None, pull: PullPolicy = "missing",
              runtime: str | None = None, network: str | None = None, secrets: Mapping[str, str] | None = None,
              stdout: IO | int | None = None, stderr: IO | int | None = None,
              registry_context: Context | None = None) -> ImageInfo:
        """``pallet build -t TAG -f DOCKERFILE CONTEXT``; returns the image built.

        RUN steps' output goes to ``stdout``/``stderr`` (files or descriptors; None: this
        process's, as ``subprocess.run``); the build's step messages go to the ``pallet``
        logger. ``secrets`` maps an id to a file (``--secret id=ID,src=FILE``). ``network`` is
        ``--network``'s: None is the command's default (containers.conf's ``netns``, else, as
        root, a private namespace on the default network, as buildah's), or ``"host"``,
        ``"none"``, ``"private"`` or a network's name.
        """
        from ..builder.executor import BuildOptions, build
        from .._log import debug

        with about(context):
            o = BuildOptions(context, dockerfile=dockerfile, tags=list(tags), build_args=dict(build_args or {}),
                             target=target, labels=dict(labels or {}), fmt=image_format(format), layers=layers,
                             no_cache=no_cache, timestamp=timestamp, pull=pull, ctx=self._ctx(registry_context, None),
                             runtime=runtime, network=network, secrets=dict(secrets or {}),
                             out=debug, stdout=stdout, stderr=stderr)
            rec = build(self._s(), o)
        return self._info(self._s().image(rec["id"]))


class WorkingContainer:
    """A buildah working container: run commands in it, copy files in, then commit an image."""

    def __init__(self, store: Store, builder: object):
        self._store = store
        self._b = builder
        self.removed = False

    def __repr__(self) -> str:
        return f"<pallet.WorkingContainer {self.name} on {self.image_name}>"

    @property
    def id(self) -> str:
        return self._b.id  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return self._b.name  # type: ignore[attr-defined]

    @property
    def image_id(self) -> str | None:
        return self._b.meta.get("image_id")  # type: ignore[attr-defined]

    @property
    def image_name(self) -> str:
        return self._b.meta.get("from") or "scratch"  # type: ignore[attr-defined]

    def run(self, argv: Sequence[str], *, env: Sequence[str] = (), user: str | None = None,
            workdir: str | None = None, network: str | None = None, runtime: str | None = None,
            stdout: IO | int | None = None, stderr: IO | int | None = None, check: bool = True) -> int:
        """``pallet builder run``: run ``argv`` in the container; its exit code. A non-zero exit
        raises :class:`pallet.errors.BuildError` (``exit_code`` is the command's) unless
        ``check=False``. Output goes to ``stdout``/``stderr`` (None: this process's).
        ``network``: as :meth:`Store.build`'s (None: the command's default, a private one)."""
        if isinstance(argv, str) or not argv:
            raise UsageError("run: argv is a non-empty list of strings, e.g. ['sh', '-c', 'echo hi']")
        code = self._b.run(list(argv), env=list(env), user=user, workdir=workdir, network=network,  # type: ignore
                           runtime=runtime, stdout=stdout, stderr=stderr)
        if code and check:
            raise BuildError(f"{argv[0]}: exited with status {code}", exit_code=code, reference=self.name)
        return code

    def copy(self, sources: str | Sequence[str], dest: str, *, chown: str | None = None,
             chmod: str | None = None, add: bool = False, from_image: str | None = None) -> None:
        """``pallet builder copy``: host paths (or, with ``from_image``, paths in that image or
        working container) to ``dest`` in the container."""
        srcs = [sources] if isinstance(sources, str) else list(sources)
        self._b.copy(srcs, dest, add=add, chown=chown, chmod=chmod, from_=from_image,  # type: ignore
                     ctx=self._store._ctx(None, None))

    @contextlib.contextmanager
    def mount(self) -> Iterator[str]:
        """``with wc.mount() as path:`` the container's files, writable (``pallet builder mount``)."""
        path = self._b.mount()  # type: ignore[attr-defined]
        try:
            yield path
        finally:
            self._b.umount()  # type: ignore[attr-defined]

    def configure(self, *, env: Mapping[str, str] | None = None, entrypoint: Sequence[str] | None = None,
                  cmd: Sequence[str] | None = None, workdir: str | None = None, user: str | None = None,
                  labels: Mapping[str, str] | None = None) -> None:
        """``pallet builder config``: what the committed image's config says (given fields only)."""
        from ..builder import config_edit as edit

        cfg = self._b.config.setdefault("config", {})  # type: ignore[attr-defined]
        for k, v in (env or {}).items():
            edit.set_env(cfg, k, v)
        if entrypoint is not None:
            edit.set_command(cfg, "Entrypoint", list(entrypoint))
        if cmd is not None:
            edit.set_command(cfg, "Cmd", list(cmd))
        if workdir is not None:
            edit.set_workdir(cfg, workdir)
        if user is not None:
            edit.set_user(cfg, user)
        for k, v in (labels or {}).items():
            edit.set_label(cfg, k, v)
        self._b.save()  # type: ignore[attr-defined]

    def commit(self, name: str | None = None, *, format: Format = "oci", squash: bool = False,
               timestamp: int | None = None) -> ImageInfo:
        """``pallet builder commit``: an image of the container (its changes as one new layer)."""
        with about(name):
            rec = self._b.commit([name] if name else [], fmt=image_format(format), squash=squash,  # type: ignore
                                 timestamp=timestamp)
        return self._store._info(self._store._s().image(rec["id"]))

    def remove(self) -> None:
        """``pallet builder rm``."""
        self._b.remove()  # type: ignore[attr-defined]
        self.removed = True


def _text(ref: object) -> str:
    if not isinstance(ref, str):
        raise UsageError(f"want an image name or ID as a string, not {type(ref).__name__}")
    return ref

