"""Reading an image from a registry: manifests (verified when asked by digest) and resumable blobs."""

from __future__ import annotations

import time

from ...errors import DigestMismatch, InvalidDocument, NetworkError, NotFound, PalletError
from ...oci import mediatype as mt
from ..base import ImageSource
from ..._std import http as _http
from ._auth import pull_scope
from ._client import MAX_MANIFEST_SIZE, Client, read_limited, describe_os_error

ACCEPT = ", ".join(mt.ACCEPT)


def manifest_media_type(resp: _http.Response, raw: bytes) -> str:
    """The manifest's type: Content-Type, or guessed when the registry sent a generic one."""
    ctype = resp.media_type
    if not ctype or ctype in ("application/json", "text/plain", "application/octet-stream"):
        from ...oci.manifest import guess_media_type

        return guess_media_type(raw)
    return ctype


def read_manifest_body(resp: _http.Response, what: str, host: str = "") -> bytes:
    if resp.content_length > MAX_MANIFEST_SIZE:
        resp._abort()
        raise InvalidDocument(f"{what}: manifest of {resp.content_length} bytes is larger than the "
                              f"{MAX_MANIFEST_SIZE}-byte limit")
    raw = read_limited(resp, MAX_MANIFEST_SIZE + 1, what, host)
    if len(raw) > MAX_MANIFEST_SIZE:
        raise InvalidDocument(f"{what}: manifest larger than the {MAX_MANIFEST_SIZE}-byte limit")
    return raw


def fetch_manifest(client: Client, path: str, ref: str, what: str, want_digest: str | None) -> tuple[bytes, str]:
    """GET a manifest; when ``want_digest`` is set, the bytes must have that digest."""
    resp = client.request("GET", f"/v2/{path}/manifests/{ref}", scopes=(pull_scope(path),), what=what,
                          headers={"Accept": ACCEPT}, follow_redirects=True)
    client.check(resp, (200,), what)
    raw = read_manifest_body(resp, what, client.host)
    media_type = manifest_media_type(resp, raw)
    if want_digest:
        from ...oci.manifest import digest_of

        try:
            got = digest_of(raw, media_type)
        except InvalidDocument:
            from ...oci import digest as _digest

            got = _digest.of_bytes(raw)
        if got != want_digest:
            raise DigestMismatch(f"{what}: the registry served a manifest with digest {got}, "
                                 f"not the requested {want_digest}")
    return raw, media_type


class BlobReader:
    """The bytes of one blob; when the connection breaks mid-blob, continues with
    ``Range: bytes=N-`` (checking the 206 and its ``Content-Range``) instead of starting over.

    Not verified: the copy engine wraps it in ``layer.stream.Verifying``.
    """

    def __init__(self, client: Client, path: str, digest: str, size: int = -1):
        self.client = client
        self.path = path
        self.digest = digest
        self.size = size
        self.offset = 0
        #: how many times the stream was resumed (tests and --debug want to know)
        self.resumes = 0
        self.closed = False
        self.cancelled = False
        self._what = f"reading blob {digest}"
        self._resp = self._open(0)

    def _open(self, start: int) -> _http.Response:
        headers = {}
        if start:
            headers["Range"] = f"bytes={start}-"
        resp = self.client.request("GET", f"/v2/{self.path}/blobs/{self.digest}", scopes=(pull_scope(self.path),),
                                   what=self._what, headers=headers, follow_redirects=True)
        if start == 0:
            self.client.check(resp, (200,), self._what, blob=True)
            if self.size < 0 and resp.content_length >= 0:
                self.size = resp.content_length
            return resp
        self.client.check(resp, (200, 206), self._what, blob=True)
        if resp.status == 206:
            cr = resp.headers.get("content-range") or ""
            got = _range_start(cr)
            if got != start:
                resp._abort()
                raise NetworkError(f"{self._what}: resuming at byte {start}, the registry answered "
                                   f"Content-Range {cr!r}")
            return resp
        # 200: the server ignored Range; skip what we already have
        left = start
        while left:
            b = resp.read(min(left, 1 << 20))
            if not b:
                raise NetworkError(f"{self._what}: resumed stream ended before byte {start}")
            left -= len(b)
        return resp

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed blob stream")
        if n is None or n < 0:
            parts = []
            while True:
                b = self.read(1 << 20)
                if not b:
                    return b"".join(parts)
                parts.append(b)
        failures = 0
        while True:
            if self.cancelled:
                raise _http.ProtocolError(f"{self._what}: cancelled")
            if self._resp is None:
                # retries of the request itself (5xx, 429, refused connections) happen in there
                self._resp = self._open(self.offset)
                self.resumes += 1
            try:
                b = self._resp.read(n)
                if not b and 0 <= self.size and self.offset < self.size:
                    # the position is said once, by the NetworkError below
                    raise _http.ProtocolError("the stream ended early")
                self.offset += len(b)
                return b
            except OSError as e:
                self._resp._abort()
                self._resp = None
                if self.cancelled:
                    raise
                failures += 1
                if failures > self.client.retry.times:
                    raise NetworkError(f"{self._what}: {self.client.host}: {describe_os_error(e)} at byte "
                                       f"{self.offset} of {self.size if self.size >= 0 else '?'} "
                                       f"(resuming failed {failures - 1} times)") from None
                self.client.log(f"{self._what}: {describe_os_error(e)} at byte {self.offset}; "
                                f"resuming with Range (attempt {failures})")
                if failures > 1:
                    time.sleep(min(self.client.retry.wait_for(failures - 1), 2.0))

    def interrupt(self) -> None:
        """From another thread: stop at once (the copy was cancelled); no resume follows."""
        self.cancelled = True
        resp = self._resp
        if resp is not None:
            resp.interrupt()

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            resp, self._resp = self._resp, None
            if resp is not None:
                resp._abort() if not resp._done else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _range_start(content_range: str) -> int:
    """Start of ``bytes START-END/TOTAL``; -1 if malformed."""
    v = content_range.strip()
    if not v.startswith("bytes "):
        return -1
    try:
        return int(v[6:].split("-", 1)[0])
    except ValueError:
        return -1


class DockerSource(ImageSource):
    """Reads from the first endpoint (mirrors, then the registry) that has the image."""

    def __init__(self, reference, ctx):
        from .. import registries_conf

        self.reference = reference
        self.ctx = ctx
        self.endpoints = registries_conf.load(ctx).pull_sources(reference.named)
        self._clients: dict[int, Client] = {}
        self._chosen: int | None = None
        self._top_digest: str | None = None

    def _client(self, i: int) -> Client:
        c = self._clients.get(i)
        if c is None:
            ep = self.endpoints[i]
            c = Client(ep.host, self.ctx, insecure=ep.insecure, repo_path=ep.named.path)
            self._clients[i] = c
        return c

    @property
    def client(self) -> Client:
        """The client of the endpoint the image is read from (the registry until a mirror answered)."""
        return self._client(self._chosen if self._chosen is not None else len(self.endpoints) - 1)

    @property
    def named(self):
        """The reference on the endpoint in use (after registries.conf rewriting)."""
        return self.endpoints[self._chosen if self._chosen is not None else len(self.endpoints) - 1].named

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        named = self.reference.named
        if instance_digest is not None:
            ref, want = instance_digest, instance_digest
        else:
            ref = named.digest or named.tag or "latest"
            want = named.digest
        order = [self._chosen] if self._chosen is not None else list(range(len(self.endpoints)))
        last_err: PalletError | None = None
        for i in order:
            ep = self.endpoints[i]
            what = f"reading manifest {ref} in {ep.named.name}"
            try:
                raw, media_type = fetch_manifest(self._client(i), ep.named.path, ref, what, want)
            except (NotFound, NetworkError, PalletError) as e:
                if isinstance(e, DigestMismatch) or not ep.mirror:
                    raise
                self._client(i).log(f"mirror {ep.host}: {e}; trying the next endpoint")
                last_err = e
                continue
            self._chosen = i
            if instance_digest is None:
                from ...oci.manifest import digest_of

                self._top_digest = digest_of(raw, media_type)
            return raw, media_type
        raise last_err or NotFound(f"reading manifest {ref}: no endpoint to read it from")

    def get_blob(self, desc) -> BlobReader:
        return BlobReader(self.client, self.named.path, desc.digest, desc.size)

    def get_signatures(self, instance_digest: str | None = None) -> list[bytes]:
        """From the lookaside store registries.d names for this repository (as given, not a mirror)."""
        from . import _lookaside

        digest = instance_digest or self.reference.named.digest or self._top_digest
        if digest is None:
            self.get_manifest()
            digest = self._top_digest
        return _lookaside.read(self.reference.named, digest, self.ctx)

    def head_manifest(self) -> tuple[str | None, str, int]:
        """(Docker-Content-Digest, media type, size) of the top-level manifest without fetching it."""
        named = self.reference.named
        ref = named.digest or named.tag or "latest"
        c = self.client
        what = f"reading manifest {ref} in {self.named.name}"
        resp = c.request("HEAD", f"/v2/{self.named.path}/manifests/{ref}", scopes=(pull_scope(self.named.path),),
                         what=what, headers={"Accept": ACCEPT})
        c.check(resp, (200,), what)
        resp.close()
        return resp.headers.get("docker-content-digest"), resp.media_type, resp.content_length

    def get_tags(self) -> list[str]:
        """Tags of the repository, from the registry itself (never a mirror), on its pinged client."""
        from . import tags_with

        primary = len(self.endpoints) - 1
        return tags_with(self._client(primary), self.endpoints[primary].named)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
