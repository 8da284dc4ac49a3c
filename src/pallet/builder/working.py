"""Working containers: buildah's primitives (from, mount, run, copy, config, commit, rm).

A working container is a store container of kind ``builder``; its pending image config and
what it was made from live in the record's ``metadata["builder"]``, so each ``pallet builder``
command is a separate process that picks up where the last one left off.
"""

from __future__ import annotations

import copy as _copy
import os

from ..errors import BuildError, NotFound, PalletError
from . import config_edit
from . import image as _image

KIND = "builder"


def ensure_image(store, text: str, policy: str = "missing", ctx=None, out=None, platform=None) -> dict:
    """The stored image ``text`` names, pulled first as ``policy`` says (missing, always, never).
    With ``platform`` (an ``oci.platform.Platform``), a stored image of another platform counts
    as missing, and the pull picks that platform from an index."""
    from ..storage.store import ImageUnknown

    if platform is not None:
        import copy

        ctx = copy.copy(ctx) if ctx is not None else None
        if ctx is None:
            from ..transports.base import SystemContext

            ctx = SystemContext()
        ctx.override_os, ctx.override_arch = platform.os, platform.architecture
        ctx.override_variant = platform.variant or None

    if policy not in ("missing", "always", "never", "newer", "ifmissing", "ifnewer", "true", "false"):
        raise BuildError(f"invalid pull policy {policy!r}: want missing, always or never")
    policy = {"ifmissing": "missing", "newer": "always", "ifnewer": "always", "true": "always",
              "false": "missing"}.get(policy, policy)
    if policy != "always":
        try:
            rec = store.image(text)
            if platform is None or policy == "never" or _of_platform(store, rec, platform):
                return rec
        except ImageUnknown:
            if policy == "never":
                # podman's and buildah's words (scripts match them)
                raise BuildError(f"creating build container: {text}: image not known (the pull policy is never)") \
                    from None
    from ..images import pull as _pull
    from ..transports.base import SystemContext
    from ..transports.copy import CopyOptions, Progress

    if ctx is None:
        ctx = SystemContext()
    try:  # "Trying to pull NAME..." for each candidate a short name resolves to, as buildah
        return _pull.pull(store, text, ctx, CopyOptions(progress=Progress(None)), say=out)[0]
    except NotFound:
        raise
    except BuildError:
        raise
    except Exception as e:
        from ..errors import PalletError

        if isinstance(e, PalletError):
            raise BuildError(f"pulling {text}: {e}") from None
        raise


def _of_platform(store, rec: dict, platform) -> bool:
    """Whether a stored image's config says ``platform`` (its os and architecture; the variant
    when both name one)."""
    from .image import load_config

    try:
        doc = load_config(store, rec)
    except Exception:  # an unreadable config: pull again
        return False
    v = doc.get("variant") or ""
    return doc.get("os") == platform.os and doc.get("architecture") == platform.architecture and \
        (not v or not platform.variant or v == platform.variant)


def _container_name(store, image_text: str | None) -> str:
    if image_text is None:
        base = "working-container"
    else:
        text = image_text
        try:  # an image by ID: named after its first name, as buildah does
            rec = store.image(image_text)
            bare = image_text.removeprefix("sha256:")
            if rec["names"] and (image_text.startswith("sha256:") or rec["id"].startswith(bare)):
                text = rec["names"][0]
        except PalletError:  # not in the store (pulled later, a bad name): its own text
            pass
        short = text.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        base = f"{short}-working-container"
    taken = {n for c in store.containers() for n in c["names"]}
    if base not in taken:
        return base
    i = 1
    while f"{base}-{i}" in taken:
        i += 1
    return f"{base}-{i}"


class BuilderContainer:
    """A `pallet builder` (buildah) working container: a writable layer on an image, its
    pending config and metadata, and what it is run, copied into and committed with."""

    def __init__(self, store, rec: dict):
        self.store = store
        self.rec = rec

    # -- making and finding --------------------------------------------------------------------

    @classmethod
    def create(cls, store, image_text: str | None, *, name: str | None = None, pull: str = "missing",
               ctx=None, image_rec: dict | None = None, config: dict | None = None,
               owner: str | None = None) -> "BuilderContainer":
        """A working container on ``image_text`` (None or ``scratch``: on nothing). ``owner``
        (``Store.owner``, a build's): it goes when that process dies; without one (``builder
        from``) it is the user's, never removed but by them."""
        if image_text == "scratch":
            image_text = None
        if image_rec is None and image_text is not None:
            image_rec = ensure_image(store, image_text, pull, ctx)
        doc = config if config is not None else _image.load_config(store, image_rec)
        meta = {"builder": {"from": image_text or "scratch", "image_id": image_rec["id"] if image_rec else None,
                            "config": doc, "created_by": None,
                            "annotations": _image.base_annotations(image_rec, image_text or "")}}
        name = name or _container_name(store, image_text)
        rec = store.create_container(image_rec["id"] if image_rec else None, name, KIND, meta, owner=owner)
        return cls(store, rec)

    @classmethod
    def get(cls, store, text: str) -> "BuilderContainer":
        rec = store.container(text)
        if rec.get("kind") != KIND:
            raise BuildError(f"{text} is not a working container (pallet builder containers lists them)")
        return cls(store, rec)

    @classmethod
    def all(cls, store) -> list["BuilderContainer"]:
        return [cls(store, c) for c in store.containers() if c.get("kind") == KIND]

    # -- accessors -----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.rec["id"]

    @property
    def name(self) -> str:
        return self.rec["names"][0] if self.rec["names"] else self.rec["id"][:12]

    @property
    def meta(self) -> dict:
        return self.rec["metadata"]["builder"]

    @property
    def config(self) -> dict:
        """The pending image config (the whole document; ``config["config"]`` is the runtime part)."""
        return self.meta["config"]

    def save(self) -> None:
        self.rec = self.store.update_container(self.id, metadata=self.rec["metadata"])

    # -- mounts --------------------------------------------------------------------------------

    def mount(self) -> str:
        return self.store.mount_container(self.id)

    def umount(self, force: bool = False) -> None:
        self.store.umount_container(self.id, force=force)

    def mountpoint(self) -> str | None:
        return self.store.container_mountpoint(self.id)

    # -- run -----------------------------------------------------------------------------------

    def run(self, argv: list[str], *, env: list[str] = (), user: str | None = None, workdir: str | None = None,
            network: str | None = None, volumes: list[str] = (), mounts: list[dict] = (), runtime: str | None = None,
            stdout=None, stderr=None, network_config_dir: str | None = None, extras=None, stdin=None,
            shared_network=None, release_network: bool = False) -> int:
        """Run ``argv`` in the container (its config's Env, User, WorkingDir unless overridden;
        ``extras``: a build's :class:`.run.RunExtras`; ``shared_network``: a build's
        :class:`.network.BuildNetworks`, whose namespace on ``network`` the command joins, and
        releases as soon as it exited with ``release_network``)."""
        from . import run as _run
        from .. import _rootfs
        from ._paths import lookup_user

        cfg = self.config.get("config") or {}
        from .network import check as check_network

        network = check_network(network)
        root = self.mount()
        try:
            envd = config_edit.env_dict(cfg)
            for e in env:
                k, sep, v = e.partition("=")
                if not sep:
                    v = os.environ.get(k, "")
                envd[k] = v
            cwd = workdir or cfg.get("WorkingDir") or "/"
            root_fd = _rootfs.open_root(root)
            try:
                os.close(_rootfs.mkdir_all_in_root(root_fd, cwd, 0o755))
            except OSError as e:
                raise BuildError(f"working directory {cwd}: cannot create it in the container: {e.strerror}") from None
            finally:
                os.close(root_fd)
            uid, gid, extra = lookup_user(root, user if user is not None else (cfg.get("User") or ""))
            if gid not in extra:  # buildah's: the primary group is among the supplementary ones too
                extra = list(extra) + [gid]
            all_mounts = [parse_volume(v) for v in volumes] + list(mounts)
            o = _run.RunOptions(env=[f"{k}={v}" for k, v in envd.items()], cwd=cwd, user=(uid, gid, extra),
                                network=network, mounts=all_mounts, hostname=self.id[:12], runtime=runtime,
                                state_root=os.path.join(self.store.runroot, "build-runtime"),
                                runroot=self.store.runroot, graphroot=self.store.graphroot,
                                network_config_dir=network_config_dir, shared_network=shared_network,
                                release_network=release_network,
                                stdin=stdin, stdout=stdout, stderr=stderr, extras=extras)
            with self.store.staging() as scratch:
                return _run.run(root, argv, o, scratch)
        finally:
            self.umount()

    # -- copy ----------------------------------------------------------------------------------

    def copy(self, sources: list[str], dest: str, *, add: bool = False, chown: str | None = None,
             chmod: str | None = None, from_: str | None = None, context: str | None = None,
             ignore=None, pull: str = "missing", ctx=None) -> None:
        """``builder copy``/``add``: host paths (or, with ``from_``, paths in another working
        container or image) into the container."""
        from . import copy as _copy_mod
        from ._paths import lookup_chown

        root = self.mount()
        other = None
        try:
            cfg = self.config.get("config") or {}
            opts = _copy_mod.FileCopyOptions(chown=lookup_chown(root, chown) if chown else None,
                                         chmod=_copy_mod.parse_chmod(chmod) if chmod else None, extract=add,
                                         workdir=cfg.get("WorkingDir") or "/",
                                         **_copy_mod.limits_of(self.store))
            if from_:
                other = _FromMount(self.store, from_, pull, ctx)
                src = _copy_mod.Source(other.path, preserve_owner=True, what=from_)
                items = [it for s in sources for it in src.match(s)]
            else:
                items = []
                for s in sources:
                    if add and s.startswith(("http://", "https://")):
                        items.append(_copy_mod.Item(None, s, "", url=s))
                        continue
                    path = os.path.abspath(os.path.join(context or os.getcwd(), s))
                    if not os.path.lexists(path):
                        raise BuildError(f"{s}: no such file or directory")
                    src = _copy_mod.Source(os.path.dirname(path), ignore=None)
                    items += src.match(os.path.basename(path))
                src = _copy_mod.Source("/")
            _copy_mod.copy(root, src, items, dest, opts, several=len(sources) > 1)
        finally:
            if other is not None:
                other.close()
            self.umount()

    # -- commit --------------------------------------------------------------------------------

    def commit(self, names: list[str], *, fmt: str = "oci", squash: bool = False, timestamp: int | None = None,
               created_by: str | None = None, rm: bool = False, annotations: dict | None = None,
               history_comment: str | None = None) -> dict:
        """Make an image of the container: its changes as one new layer on its image's layers."""
        ann = dict(self.meta.get("annotations") or {})
        ann.update(annotations or {})
        rec = commit_image(self.store, self.id, self.meta["image_id"], self.config, names, fmt=fmt, squash=squash,
                           timestamp=timestamp, created_by=created_by or self.meta.get("created_by") or "/bin/sh",
                           annotations=ann, history_comment=history_comment)
        if rm:
            self.remove()
        return rec

    def commit_to(self, destination: str, ctx=None, **kw) -> dict:
        """Commit to a transport reference (``docker://...``, ``oci:DIR:TAG``, ``dir:...``,
        ``docker-archive:...``), as buildah does: the image is made in the store, copied
        there through the copy engine, and not left in the store unless it already was."""
        from ..errors import PalletError
        from ..images.refs import parse_reference
        from ..transports.base import SystemContext
        from ..transports.copy import Progress

        try:
            dest = parse_reference(destination, self.store)
        except PalletError as e:
            raise BuildError(f"commit: destination {destination!r}: {e}") from None
        if dest.transport == "local":
            named = dest.docker_reference()
            return self.commit([str(named)] if named is not None else [], **kw)
        known = image_ids(self.store)
        rm = kw.pop("rm", False)
        rec = self.commit([], **kw)
        copy_out(self.store, rec, dest, ctx or SystemContext(), known, Progress(None))
        if rm:
            self.remove()
        return rec

    def remove(self) -> None:
        self.store.remove_container(self.id)


def image_ids(store) -> set:
    """The IDs of the store's images now (what :func:`copy_out` must leave in place)."""
    with store.read() as st:
        return set(st.images)


def copy_out(store, rec: dict, dest, ctx, known: set, progress=None) -> None:
    """The store's image ``rec`` copied to the transport reference ``dest``, as buildah commits
    to ``docker://``, ``oci:``, ``dir:``... (``builder commit``, ``build -t dir:...``). The
    signature policy is not evaluated on the store's own image (the source; buildah's). An
    image made only to be copied -- not among ``known`` (:func:`image_ids` before it was made)
    and without a name -- is removed afterwards, copied or not: nothing stays behind."""
    from ..storage.transport import LocalReference
    from ..transports.copy import CopyOptions, copy_image

    opts = CopyOptions(trust_local_source=True) if progress is None else \
        CopyOptions(progress=progress, trust_local_source=True)
    try:
        copy_image(LocalReference(store, None, rec["id"]), dest, ctx, ctx, opts)
    finally:
        if rec["id"] not in known and not rec.get("names"):
            store.remove_image(rec["id"], force=True)


def commit_image(store, cid: str, image_id: str | None, config: dict, names: list[str], *, fmt: str = "oci",
                 squash: bool = False, timestamp: int | None = None, created_by: str = "/bin/sh",
                 annotations: dict | None = None, history_comment: str | None = None) -> dict:
    """An image of the store container ``cid`` made on ``image_id`` (None: on nothing): its
    changes as one new layer on the image's layers (``squash``: its whole tree as the only
    layer), with the image config ``config`` (not changed here) and a history entry. The one
    commit of working containers and of ``pallet commit``."""
    from ..layer.create import epoch_from_env

    epoch = timestamp if timestamp is not None else epoch_from_env()
    created = _image.timestamp(epoch)
    base = store.image(image_id) if image_id else None
    base_layers = list(base["layers"]) if base else []
    doc = _copy.deepcopy(config)
    layer = container_layer(store, cid, base, epoch, squash)
    layers = [layer["id"]] if squash else base_layers + [layer["id"]]
    doc["created"] = created
    if squash:
        doc["history"] = []
    entry = {"created": created, "created_by": created_by}
    if history_comment:
        entry["comment"] = history_comment
    doc.setdefault("history", []).append(entry)
    return _image.write_image(store, doc, layers, fmt, names, annotations)


def commit_layer(store, b: BuilderContainer, base: dict | None, epoch: int | None, squash: bool = False) -> dict:
    """The container's changes (or, squashed, its whole tree) as a layer in the store."""
    return container_layer(store, b.id, base, epoch, squash)


def container_layer(store, cid: str, base: dict | None, epoch: int | None, squash: bool = False) -> dict:
    """:func:`commit_layer` for any store container (a working one, or ``pallet commit``'s)."""
    from ..layer.create import tar_directory

    top = base["top_layer"] if base else None
    if squash:
        root = store.mount_container(cid)
        try:
            with tar_directory(root, epoch=epoch) as stream:
                return store.add_layer_from_tar(stream, parent=None)
        finally:
            store.umount_container(cid)
    with store.container_changes(cid, epoch) as stream:
        return store.add_layer_from_tar(stream, parent=top)


class _FromMount:
    """A read-only view of another working container or an image, for ``copy --from``."""

    def __init__(self, store, text: str, pull: str, ctx):
        self.store = store
        self.kind = None
        try:
            c = store.container(text)
            self.kind, self.key = "container", c["id"]
            self.path = store.mount_container(c["id"])
            return
        except NotFound:
            pass
        img = ensure_image(store, text, pull, ctx)
        self.kind, self.key = "image", img["id"]
        self.path = store.mount_image(img["id"])

    def close(self) -> None:
        if self.kind == "container":
            self.store.umount_container(self.key)
        elif self.kind == "image":
            self.store.umount_image(self.key)
        self.kind = None


def parse_volume(text: str) -> dict:
    """``-v HOST:CONTAINER[:OPTIONS]`` as an OCI bind mount (options: ro, rw, z, Z, ...)."""
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise BuildError(f"invalid volume {text!r}: want HOST-DIR:CONTAINER-DIR[:OPTIONS]")
    src, dest = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) > 2 and parts[2] else []
    if not os.path.isabs(dest):
        raise BuildError(f"invalid volume {text!r}: the container path must be absolute")
    if not os.path.exists(src):
        raise BuildError(f"invalid volume {text!r}: {src} does not exist")
    mo = ["rbind"]
    mo.append("ro" if "ro" in opts else "rw")
    # its mount point stays in the layer (empty), as buildah leaves it; never what is mounted
    return {"destination": dest, "type": "bind", "source": os.path.abspath(src), "options": mo, "keep": "target"}
