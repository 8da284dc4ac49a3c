"""``pull``: a name (a short name resolved through registries.conf, as podman does) or
``transport:details`` into the store."""

from __future__ import annotations

from ..errors import NotFound, PalletError, UsageError
from ..storage.names import qualify
from ..storage.transport import LocalReference
from ..transports.copy import CopyOptions, copy_image
from .refs import has_transport, local_name_for, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store
    from ..transports.base import SystemContext


def pull(store: "Store", text: str, ctx: "SystemContext", options: CopyOptions | None = None,
         all_tags: bool = False, say=None) -> list[dict]:
    """Pull ``text`` (a name, resolved through registries.conf, or transport:details) into the store.
    ``say``: called with ``Trying to pull NAME...`` before each registry candidate (podman's and
    buildah's line)."""
    options = options or CopyOptions()
    options.multi_arch = "system"
    if has_transport(text):
        src = parse_reference(text, store)
        if all_tags:
            if src.transport != "docker":
                raise UsageError("--all-tags works with registries only")
            return _pull_all_tags(store, src.docker_reference(), ctx, options)
        name = local_name_for(src)
        if name is None and src.transport == "docker-archive":
            return [_pull_archive_tagged(store, src, ctx, options)]
        return [pull_one(store, src, name, ctx, options)]
    from ..transports import registries_conf

    conf = registries_conf.load(ctx)
    resolution = conf.resolve_short_name(text)
    if all_tags:
        named = resolution.candidates[0]
        if named.tag and named.tag != "latest" or named.digest or ":" in text.rsplit("/", 1)[-1]:
            raise UsageError("--all-tags takes a repository name without a tag or digest")
        return _pull_all_tags(store, named.repo_only(), ctx, options)
    candidates, chosen = registries_conf.choose_candidates(resolution)
    errors = []
    for named in candidates:
        if say is not None:
            say(f"Trying to pull {named}...")
        src = parse_reference(f"docker://{named}")
        try:
            done = [pull_one(store, src, str(named), ctx, options)]
            if chosen:  # the prompt's answer becomes an alias, as containers/image records it
                short = text.split("@", 1)[0]
                if ":" in short.rsplit("/", 1)[-1]:
                    short = short.rsplit(":", 1)[0]
                registries_conf.record_alias(short, named.name)
            return done
        except PalletError as e:
            errors.append(f"{named}: {e}")
            if not isinstance(e, NotFound) and len(candidates) == 1:
                raise
    if len(errors) == 1:
        raise NotFound(errors[0]) if all("unknown" in e or "not found" in e for e in errors) else PalletError(errors[0])
    raise PalletError(f"pulling {text}: every candidate failed: " + "; ".join(errors))


def _pull_archive_tagged(store, src, ctx, options) -> dict:
    """A docker-archive reference without a name (``docker-archive:PATH``): the image it
    chooses gets every one of its ``RepoTags``, as podman's pull names it (``podman run
    docker-archive:PATH`` then ``rmi NAME``); none: no name."""
    source = src.new_source(ctx)
    try:
        tags = source.repo_tags
    finally:
        source.close()
    img = pull_one(store, src, tags[0] if tags else None, ctx, options)
    if len(tags) > 1:
        store.tag(img["id"], tags[1:])
    return img


def _pull_all_tags(store, named, ctx, options) -> list[dict]:
    from ..transports import docker

    tags = docker.list_tags(docker.parse("//" + named.name), ctx)
    if not tags:
        raise NotFound(f"{named.name}: the repository has no tags")
    return [pull_one(store, parse_reference(f"docker://{named.with_tag(t)}"), str(named.with_tag(t)), ctx, options)
            for t in tags]


def pull_one(store, src, name: str | None, ctx, options, keep_digest: bool = False) -> dict:
    """Copy ``src`` into the store under ``name`` (``REPO@DIGEST`` by digest; None: no name).
    ``keep_digest``: an image already stored keeps the manifest it pushes with (loads)."""
    named = qualify(name) if name else None
    # by digest from a registry: it checked the digest (of the manifest, or of the index the
    # image was chosen from), and the image is named REPO@DIGEST, as podman names it
    dest = LocalReference(store, named, None, keep_digest=keep_digest, digest_verified=src.transport == "docker")
    return copy_image(src, dest, ctx, ctx, options).committed


