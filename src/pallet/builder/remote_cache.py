"""``--cache-from REPO`` / ``--cache-to REPO`` (buildah 1.28): a registry repository used as
a layer cache. A step's image is pushed as ``REPO:KEY`` (KEY: the step's cache key, the
local cache's), and a step not in the local cache is looked for there before it is built:
found, it is pulled (an unnamed image, as the local steps are) and used. A failed pull is a
miss (buildah's); a failed push fails the build."""

from __future__ import annotations

from ..errors import BuildError, PalletError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store


def repository(text: str, flag: str) -> str:
    """The repository ``--cache-from``/``--cache-to`` names, qualified; a tag or digest is
    refused (buildah's words)."""
    from ..storage.names import qualify

    try:
        named = qualify(text)
    except PalletError as e:
        raise UsageError(f"unable to parse value provided `{text}` to {flag}: invalid repo {text!r}: must contain "
                         f"registry and repository: {e}") from None
    last = text.rsplit("/", 1)[-1]
    if "@" in text or ":" in last:
        raise UsageError(f"unable to parse value provided `{text}` to {flag}: repository must contain neither a "
                         f"tag nor digest: {text}")
    return named.name


class RemoteCache:
    """Pulls from ``source`` and pushes to ``dest`` (repositories; either may be None) with
    the build's registry context; ``say`` prints buildah's lines."""

    def __init__(self, store: "Store", source: str | None, dest: str | None, ctx, say=None):
        self.store = store
        self.source = source
        self.dest = dest
        self.ctx = ctx
        self.say = say
        self.pulled: set[str] = set()
        self.pushed: set[str] = set()

    def _options(self):
        from ..transports.copy import CopyOptions, Progress

        return CopyOptions(progress=Progress(None))

    def pull(self, key: str) -> dict | None:
        """The image ``SOURCE:KEY`` pulled into the store, or None (not there, or unreachable)."""
        if not self.source:
            return None
        from .._log import debug
        from ..images.pull import pull_one
        from ..images.refs import parse_reference

        ref = f"{self.source}:{key}"
        try:
            rec = pull_one(self.store, parse_reference(f"docker://{ref}"), None, self.ctx, self._options())
        except PalletError as e:  # a miss, as buildah's (said at --log-level debug)
            debug(f"failed pulling cache from source {ref}: {e}")
            return None
        self.pulled.add(key)
        if self.say:
            self.say(f"--> Cache pulled from remote {ref}")
        return rec

    def push(self, key: str, image_id: str) -> None:
        """Push the image as ``DEST:KEY`` (once per build; not what was just pulled)."""
        if not self.dest or key in self.pushed or key in self.pulled:
            return
        from ..images.push import push

        ref = f"{self.dest}:{key}"
        if self.say:
            self.say(f"--> Pushing cache {ref}")
        try:
            push(self.store, image_id, f"docker://{ref}", self.ctx, self.ctx, self._options())
        except PalletError as e:
            raise BuildError(f"failed pushing cache to {ref!r}: {e}") from None
        self.pushed.add(key)
