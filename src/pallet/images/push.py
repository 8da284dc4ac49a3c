"""``push``: a stored image to a registry (by default the one its name points at) or any
transport."""

from __future__ import annotations

from ..errors import UsageError
from ..storage.names import qualify
from ..storage.transport import LocalReference
from ..transports.copy import CopyOptions, copy_image
from .refs import has_transport, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store
    from ..transports.base import SystemContext


def push(store: "Store", image: str, destination: str | None, src_ctx: "SystemContext",
         dest_ctx: "SystemContext", options: CopyOptions | None = None):
    """Push a stored image to ``destination`` (default: the registry its name points at)."""
    options = options or CopyOptions()
    rec = store.image(image)
    src = LocalReference(store, None, rec["id"])
    if destination is None:
        named = qualify(image) if not image.startswith("sha256:") else None
        if named is None or named.domain == "localhost":
            raise UsageError(f"{image}: no registry in the name: give a destination such as docker://HOST/REPO:TAG")
        destination = f"docker://{named}"
    elif not has_transport(destination):
        destination = "docker://" + destination
    dest = parse_reference(destination, store)
    # the policy is not evaluated on pallet's own store as the source (buildah's and podman's
    # push force it to accept local storage): a deny-all policy does not stop a push
    options.trust_local_source = True
    return copy_image(src, dest, src_ctx, dest_ctx, options)


