"""The ``docker://`` transport: images in a registry (distribution-spec v1.1).

``parse("//host/repo:tag")`` gives a :class:`DockerReference`; it opens a source (pull)
or a destination (push) and can delete. ``list_tags``, ``login`` and ``logout`` are the
library side of the commands of the same names; ``list_catalog`` is ``search``'s. Inside:
``_http`` (a small HTTP/1.1 client), ``_retry`` (the retry policy), ``_auth`` (challenges,
tokens), ``_client`` (one registry host), ``_source`` and ``_destination``.

Only the standard library's light modules are imported here; ``ssl`` loads when an
``https`` connection is opened.
"""

from __future__ import annotations

from ...errors import InvalidReference, NotFound, PalletError
from ..base import ImageReference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...oci.reference import Named
    from ..base import SystemContext


class DockerReference(ImageReference):
    """An image in a registry: a :class:`~pallet.oci.reference.Named` with a tag or a digest."""

    transport = "docker"

    def __init__(self, named: "Named"):
        self.named = named

    def string_within_transport(self) -> str:
        return "//" + self.named.familiar()

    def docker_reference(self) -> "Named":
        return self.named

    def __repr__(self) -> str:
        return f"DockerReference({str(self.named)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DockerReference) and self.named == other.named

    def __hash__(self) -> int:
        return hash(("docker", str(self.named)))

    def new_source(self, ctx: "SystemContext"):
        from ._source import DockerSource

        return DockerSource(self, ctx)

    def new_destination(self, ctx: "SystemContext"):
        from ._destination import DockerDestination

        return DockerDestination(self, ctx)

    def delete(self, ctx: "SystemContext") -> None:
        """Delete the manifest this reference names (by its digest: every tag pointing at it goes)."""
        from .. import registries_conf
        from ._auth import push_scope
        from ._client import Client
        from ._source import ACCEPT

        ep = registries_conf.load(ctx).push_endpoint(self.named)
        client = Client(ep.host, ctx, insecure=ep.insecure, repo_path=ep.named.path)
        try:
            path = ep.named.path
            scopes = (push_scope(path).replace("pull,push", "pull,push,delete"),)
            ref = ep.named.digest or ep.named.tag or "latest"
            what = f"deleting {ep.named}"
            digest = ep.named.digest
            if not digest:
                resp = client.request("HEAD", f"/v2/{path}/manifests/{ref}", scopes=scopes, what=what,
                                      headers={"Accept": ACCEPT})
                client.check(resp, (200,), what)
                resp.close()
                digest = resp.headers.get("docker-content-digest")
                if not digest:
                    from ._source import fetch_manifest
                    from ...oci.manifest import digest_of

                    raw, media_type = fetch_manifest(client, path, ref, what, None)
                    digest = digest_of(raw, media_type)
            resp = client.request("DELETE", f"/v2/{path}/manifests/{digest}", scopes=scopes, what=what)
            client.check(resp, (202, 200), what)
            resp.close()
        finally:
            client.close()


def parse(details: str) -> DockerReference:
    """``//host[:port]/repo[:tag][@digest]`` (what follows ``docker:``), as skopeo accepts it."""
    from ...oci import reference

    if not details.startswith("//"):
        raise InvalidReference(f"invalid image name 'docker:{details}': a docker reference must start with "
                               "'docker://' (e.g. docker://registry.example.com/repo:tag)")
    text = details[2:]
    full = f"docker://{text}"
    if not text:
        raise InvalidReference(f"invalid image name {full!r}: invalid reference format (missing repository)")
    try:
        named = reference.parse(text)
    except InvalidReference as e:
        msg = str(e)
        prefix = f"invalid reference {text!r}: "
        reason = msg[len(prefix):] if msg.startswith(prefix) else msg
        raise InvalidReference(f"invalid image name {full!r}: invalid reference format: {reason}") from None
    if named.tag and named.digest:
        raise InvalidReference(f"invalid image name {full!r}: Docker references with both a tag and digest "
                               "are currently not supported")
    return DockerReference(named.tagged_or_latest())


def _named_of(ref_or_named) -> "Named":
    from ...oci import reference

    if isinstance(ref_or_named, DockerReference):
        return ref_or_named.named
    if isinstance(ref_or_named, reference.Named):
        return ref_or_named
    if isinstance(ref_or_named, str):
        text = ref_or_named
        if text.startswith("docker:"):
            return parse(text[len("docker:"):]).named
        return reference.parse(text)
    raise InvalidReference(f"not a docker reference: {ref_or_named!r}")


def _parse_link_next(value: str | None) -> str | None:
    """The ``rel="next"`` target of a Link header."""
    if not value:
        return None
    for part in value.split(","):
        segs = part.split(";")
        target = segs[0].strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for p in segs[1:]:
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "rel" and "next" in v.strip().strip('"').split():
                return target[1:-1]
    return None


def list_tags(ref_or_named, ctx: "SystemContext", page_size: int | None = None) -> list[str]:
    """Every tag of the repository (following ``Link`` pagination); ``page_size`` sets ``?n=``."""
    from .. import registries_conf
    from ._client import Client

    named = _named_of(ref_or_named)
    ep = registries_conf.load(ctx).push_endpoint(named)
    client = Client(ep.host, ctx, insecure=ep.insecure, repo_path=ep.named.path)
    try:
        return tags_with(client, ep.named, page_size)
    finally:
        client.close()


def tags_with(client, named, page_size: int | None = None) -> list[str]:
    """The tag listing over an existing client (a source reuses its pinged, authenticated one)."""
    from ..._std import json

    from ._auth import pull_scope
    from ._client import read_limited

    path = named.path
    what = f"listing tags of {named.name}"
    url = f"/v2/{path}/tags/list" + (f"?n={int(page_size)}" if page_size else "")
    tags: list[str] = []
    seen: set[str] = set()
    for _ in range(100000):
        resp = client.request("GET", url, scopes=(pull_scope(path),), what=what,
                              headers={"Accept": "application/json"})
        client.check(resp, (200,), what)
        body = read_limited(resp, 64 << 20, what, client.host)
        try:
            doc = json.loads(body)
            page = doc.get("tags") or []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise ValueError("tags is not a list of strings")
        except (ValueError, AttributeError) as e:
            from ...errors import InvalidDocument

            raise InvalidDocument(f"{what}: the registry answered a malformed tag list ({e})") from None
        for t in page:
            if t not in seen:
                seen.add(t)
                tags.append(t)
        nxt = _parse_link_next(resp.headers.get("link"))
        if not nxt or nxt == url:
            return tags
        url = nxt
    return tags


def list_catalog(host: str, ctx: "SystemContext", max_pages: int = 10000, what: str | None = None) -> list[str]:
    """Every repository the registry ``host`` lists in ``/v2/_catalog`` (following ``Link``
    pages, at most ``max_pages`` of them: a registry answering ``Link`` forever stops there)."""
    from ..._std import json
    from ...errors import InvalidDocument
    from ...oci import reference
    from .. import registries_conf
    from ._client import Client, read_limited

    ep = registries_conf.load(ctx).push_endpoint(reference.parse(f"{host}/search"))
    client = Client(ep.host, ctx, insecure=ep.insecure)
    what = what or f"listing the catalog of {host}"
    out: list[str] = []
    url = "/v2/_catalog"
    try:
        for _ in range(max_pages):
            resp = client.request("GET", url, scopes=("registry:catalog:*",), what=what,
                                  headers={"Accept": "application/json"})
            client.check(resp, (200,), what)
            try:
                doc = json.loads(read_limited(resp, 64 << 20, what, client.host))
            except ValueError as e:
                raise InvalidDocument(f"{what}: the registry answered malformed JSON ({e})") from None
            if not isinstance(doc, dict):
                raise InvalidDocument(f"{what}: the registry answered {type(doc).__name__}, not an object")
            page = doc.get("repositories") or []
            if not isinstance(page, list) or not all(isinstance(r, str) for r in page):
                raise InvalidDocument(f"{what}: the registry's catalog: repositories is not a list of strings")
            out.extend(page)
            nxt = _parse_link_next(resp.headers.get("link"))
            if not nxt or nxt == url:
                break
            url = nxt
    finally:
        client.close()
    return out


def split_login_key(host: str) -> tuple[str, str]:
    """``host[/namespace]`` -> (registry host, key stored in auth.json)."""
    key = host
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
    key = key.rstrip("/")
    from ..credentials import normalize_key

    key = normalize_key(key) if "/" not in key else key
    if not key:
        raise InvalidReference("login: missing registry host")
    registry = key.split("/", 1)[0]
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
        key = "docker.io" + key[len(key.split("/", 1)[0]):]
    from ...oci import reference

    if not reference.valid_domain(registry):
        raise InvalidReference(f"login: {host!r} is not a registry host")
    return registry, key


def verify_credentials(host: str, username: str, password: str, ctx: "SystemContext") -> None:
    """Check ``username``/``password`` against the registry's ``/v2/`` (Basic) or its token server (Bearer)."""
    from ..base import SystemContext
    from ._auth import basic_credentials
    from ._client import Client, read_limited
    from ..credentials import Credentials

    registry, key = split_login_key(host)
    c2 = SystemContext(**{k: getattr(ctx, k) for k in SystemContext.__slots__})
    c2.creds, c2.registry_token, c2.no_creds = None, None, True
    client = Client(registry, c2)
    try:
        client.ping()
        creds = Credentials(username, password, source="login")
        client.auth.creds = creds
        ch = client.auth._pick()
        if ch is None:
            return  # the registry asks for nothing: any credentials "work"
        if ch.scheme == "bearer":
            client.auth.token(ch, ())
            return
        what = f"logging in to {registry}"
        resp = client.request("GET", "/v2/", scopes=(), what=what,
                              headers={"Authorization": "Basic " + basic_credentials(username, password)})
        if resp.status == 401:
            read_limited(resp)
            from ...errors import AuthenticationRequired

            raise AuthenticationRequired(f'logging into "{registry}": invalid username/password')  # podman's words
        client.check(resp, (200,), what)
        resp.close()
    finally:
        client.close()


def login(host: str, username: str, password: str, ctx: "SystemContext") -> str:
    """Verify the credentials against ``host`` (``registry[:port][/namespace]``) and store them.

    Returns the path of the auth file written (mode 0600).
    """
    from .. import credentials
    from ...errors import UsageError

    if not username:
        raise UsageError("login: a user name is required")
    if not password:
        raise UsageError("login: a password is required")
    registry, key = split_login_key(host)
    verify_credentials(key, username, password, ctx)
    return credentials.store(key, username, password, ctx)


def logout(host: str | None, ctx: "SystemContext", all: bool = False) -> str:
    """Forget the credentials of ``host`` (or every credential with ``all``); returns the auth file."""
    from .. import credentials

    if all:
        return credentials.remove_all(ctx)
    if not host:
        from ...errors import UsageError

        raise UsageError("logout: a registry is required (or --all)")
    _, key = split_login_key(host)
    if not credentials.remove(key, ctx):
        raise PalletError(f"not logged into {key}")
    return credentials.write_path(ctx)


__all__ = ["DockerReference", "parse", "list_tags", "login", "logout", "verify_credentials", "NotFound"]
