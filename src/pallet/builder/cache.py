"""The build's step cache: each RUN/COPY/ADD (and WORKDIR-made directories) with the cache on
is one unnamed intermediate image, found again when the step's key matches. A key chains the
parent step's key and the step's own parts (the instruction, the build arguments in scope,
the timestamp, ``--format``, and for COPY/ADD the names, modes and contents of what is
copied). Entries are files ``GRAPHROOT/build-cache/KEY`` holding the image ID and config; their mtime
is when the step was built (``--cache-ttl`` ignores older ones).
"""

from __future__ import annotations

import hashlib
import os

from .._std import json
from ..errors import PalletError

CACHE_VERSION = b"pallet-build-cache-v1"


def step_key(parent: str, *parts) -> str:
    """The cache key of a step: ``parent``'s key and ``parts`` (bytes, or anything JSON)."""
    h = hashlib.sha256(CACHE_VERSION)
    h.update(parent.encode())
    for p in parts:
        h.update(b"\0")
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()


class StepCache:
    """Lookups (``use``: ``--layers`` without ``--no-cache``) and records (``record``:
    ``--layers``) of steps in ``store``. An image recorded here stops being one of
    ``made_images``, the intermediate images a failed build removes."""

    def __init__(self, store, *, use: bool, record: bool, made_images: list[str], ttl: float | None = None,
                 remote=None):
        self.store = store
        self.remote = remote  # a remote_cache.RemoteCache (--cache-from, --cache-to), or None
        self.ttl = ttl  # seconds: an entry recorded longer ago is not used (--cache-ttl)
        self.use = use
        self.record = record
        self.made_images = made_images
        self.directory = os.path.join(store.graphroot, "build-cache")

    def can_hit(self) -> bool:
        """Whether a lookup may find anything (lookups on, and some step recorded in the store)."""
        if not self.use:
            return False
        try:
            with os.scandir(self.directory) as it:
                return any(True for _ in it)
        except OSError:
            return False

    def get(self, key: str, remote: bool = True):
        """``(image record or None, config)`` of a recorded step, or None; with a remote cache
        (``remote``) a step not recorded here is pulled from it, recorded, and used."""
        if not self.use:
            return None
        hit = self._local(key)
        if hit is not None or not remote or self.remote is None:
            return hit
        rec = self.remote.pull(key)
        if rec is None:
            return None
        from .image import load_config

        try:
            doc = load_config(self.store, rec)
        except PalletError:
            return None
        self.put(key, rec, doc, source=self.remote.source)
        return rec, doc

    def share(self, key: str, image: dict | None) -> None:
        """Push a step's image to the remote cache (``--cache-to``), if any."""
        if self.remote is not None and image is not None:
            self.remote.push(key, image["id"])

    def _local(self, key: str):
        try:
            with open(os.path.join(self.directory, key), "rb") as f:
                if self.ttl is not None:
                    import time

                    if time.time() - os.fstat(f.fileno()).st_mtime > self.ttl:
                        return None
                entry = json.loads(f.read())
            # a step pulled from a remote cache serves only builds that name that cache: what a
            # registry handed one build is not another's (one without --cache-from) own step
            if entry.get("remote") and entry["remote"] != getattr(self.remote, "source", None):
                return None
            img = self.store.image(entry["image"]) if entry.get("image") else None
            from .._log import debug

            # buildah's debug line (scripts look for it)
            debug(f"Found a cache hit in the first iteration with id {entry.get('image') or key}")
            return img, entry["config"]
        except (OSError, ValueError, KeyError, TypeError, PalletError):
            return None

    def put(self, key: str, image: dict | None, doc: dict, source: str | None = None) -> None:
        """Record a step; ``source``: the remote cache it was pulled from (see ``_local``)."""
        if not self.record:
            return
        from .. import _fs

        os.makedirs(self.directory, 0o700, exist_ok=True)
        entry = {"image": image["id"] if image else None, "config": doc}
        if source:
            entry["remote"] = source
        _fs.write_atomic(os.path.join(self.directory, key), json.dumps(entry).encode(), 0o600)
        if image is not None and image["id"] in self.made_images:
            self.made_images.remove(image["id"])
        self.share(key, image)
