"""The state of a Dockerfile stage while it is built, what it leaves behind, and read-only
mounts of stages and images for ``--from``."""

from __future__ import annotations

import os

from ..errors import PalletError
from .dockerfile import Stage


class StageState:
    """A stage being built: its current image and pending config, the cache key so far, the
    ARGs in scope, the working container of a filesystem step (and its mounted root), the
    history entries and WORKDIR directories not yet committed."""

    def __init__(self, image: dict | None, doc: dict, key: str):
        self.image = image
        self.doc = doc
        self.key = key
        self.args: dict = {}
        self.container = None
        self.root = None
        self.history: list[dict] = []
        self.workdirs: list[str] = []
        self.single = False
        self.cmd_set = False
        self.env_set: set = set()  # the variables this stage's ENV instructions set (buildah's Env order)
        self.later_args: dict = {}
        self.annotations: dict = {}  # the base-image annotations of what the stage commits
        self.platform = None  # an oci.platform.Platform its RUN steps are for (None: the host's)


class StageResult:
    """What a finished stage leaves for later ones (``FROM stage``, ``--from``) and the build."""

    __slots__ = ("image", "doc", "key", "stage", "annotations")

    def __init__(self, image: dict | None, doc: dict, key: str, stage: Stage, annotations: dict | None = None):
        self.image = image  # the image holding the stage's files (None: scratch, empty)
        self.doc = doc
        self.key = key
        self.stage = stage
        self.annotations = annotations or {}  # its base image's (FROM STAGE inherits them)


class ImageMount:
    """A read-only view of a stage's or image's files (``--from``, ``RUN --mount=from=``);
    an empty directory for scratch."""

    def __init__(self, store, image: dict | None, key: str, owner: str | None = None):
        import tempfile

        self.store = store
        self.image = image
        self.key = key
        self.owner = owner  # the build's (Store.owner): a killed build's mount is reaped
        self._empty_dir = None
        if image is None:
            self._empty_dir = tempfile.mkdtemp(prefix="pallet-scratch-")
            self.path = self._empty_dir
        else:
            self.path = store.mount_image(image["id"], owner=owner)

    def close(self) -> None:
        if self.image is not None:
            try:
                self.store.umount_image(self.image["id"], owner=self.owner)
            except PalletError:
                pass
            self.image = None
        if self._empty_dir:
            os.rmdir(self._empty_dir)
            self._empty_dir = None


class DirContext:
    """A directory given as an additional build context (``--build-context NAME=DIR``), read
    in place as the main context is (``--from=NAME``, ``RUN --mount=from=NAME``)."""

    host_dir = True

    def __init__(self, path: str):
        self.path = path
        self.key = "context:" + path  # what is copied is keyed by its contents too

    def close(self) -> None:
        pass
