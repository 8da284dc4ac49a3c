"""Writing an image to a registry: blob uploads (monolithic or streamed), mounts, manifests.

A registry makes a blob visible only when the upload's final ``PUT ?digest=`` succeeds
(and checks the digest itself), and an image only when its manifest is put, which the
copy engine does last — so ``commit`` has nothing left to do.
"""

from __future__ import annotations

from ...errors import DigestMismatch, PalletError
from ..base import ImageDestination
from ..._std import http as _http
from ._auth import pull_scope, push_scope
from ._client import Client


def _with_query(location: str, key: str, value: str) -> str:
    from urllib.parse import quote

    sep = "&" if "?" in location else "?"
    return f"{location}{sep}{key}={quote(value, safe=':')}"


class DockerDestination(ImageDestination):
    supported_manifest_types = ()  # a registry stores any manifest type
    supports_index = True
    desired_compression = None
    must_match_runtime_os = False
    needs_ordered_blobs = False

    def __init__(self, reference, ctx):
        from .. import registries_conf

        self.reference = reference
        self.ctx = ctx
        ep = registries_conf.load(ctx).push_endpoint(reference.named)
        self.named = ep.named
        self.path = ep.named.path
        self.client = Client(ep.host, ctx, insecure=ep.insecure, repo_path=self.path)
        self.scopes = (push_scope(self.path),)
        self._top_digest: str | None = None

    # -- blobs -----------------------------------------------------------------------------

    def _head_blob(self, digest: str) -> int | None:
        what = f"checking whether blob {digest} exists in {self.named.name}"
        resp = self.client.request("HEAD", f"/v2/{self.path}/blobs/{digest}", scopes=self.scopes, what=what,
                                   follow_redirects=True)
        resp.close()
        if resp.status == 200:
            return resp.content_length
        if resp.status == 404:
            return None
        self.client.check(resp, (200,), what, blob=True)
        return None

    def try_reusing_blob(self, desc, source=None):
        if not desc.digest:
            return None
        size = self._head_blob(desc.digest)
        if size is not None:
            return desc.replace(size=size if size >= 0 else desc.size)
        src_path = self._mount_source(source)
        if src_path is None:
            return None
        return self._mount(desc, src_path)

    def _mount_source(self, source) -> str | None:
        """The repository path to mount from, when ``source`` is on this same registry."""
        named = getattr(source, "named", None)
        if getattr(source, "transport", None) != "docker" or named is None:
            return None
        from .. import registries_conf

        try:
            ep = registries_conf.load(self.ctx).push_endpoint(named)
        except PalletError:
            return None
        if ep.host != self.client.host or ep.named.path == self.path:
            return None
        return ep.named.path

    def _mount(self, desc, src_path: str):
        what = f"mounting blob {desc.digest} from {src_path} into {self.named.name}"
        from urllib.parse import quote

        scopes = (push_scope(self.path), pull_scope(src_path))
        try:
            resp = self.client.request(
                "POST", f"/v2/{self.path}/blobs/uploads/?mount={quote(desc.digest, safe=':')}&from={quote(src_path, safe='/')}",
                scopes=scopes, what=what)
        except PalletError as e:  # e.g. no pull access to the source: upload instead
            self.client.log(f"{what}: {e}")
            return None
        if resp.status == 201:
            resp.close()
            self.client.log(f"{what}: mounted")
            return desc
        location = resp.headers.get("location")
        resp.close()
        if resp.status == 202 and location:
            self._cancel(location)  # the registry started a normal upload instead; we do not want it here
        return None

    def _start_upload(self, what: str) -> str:
        resp = self.client.request("POST", f"/v2/{self.path}/blobs/uploads/", scopes=self.scopes, what=what)
        self.client.check(resp, (202,), what)
        resp.close()
        loc = resp.headers.get("location")
        if not loc:
            from ...errors import RegistryError

            raise RegistryError(f"{what}: {self.client.host} started an upload without a Location header")
        return loc

    def _cancel(self, location: str) -> None:
        try:
            resp = self.client.request("DELETE", location, scopes=(f"repository:{self.path}:pull,push,delete",),
                                       what="cancelling an upload")
            resp.close()
        except Exception as e:  # best effort: the registry expires abandoned uploads anyway
            self.client.log(f"cancelling upload: {e}")

    def put_blob(self, stream, desc, *, is_config: bool = False):
        from ...layer.stream import Digesting

        digest = desc.digest
        what = f"writing blob {digest or '(digest not known yet)'} to {self.named.name}"
        location = self._start_upload(what)
        try:
            if digest and desc.size >= 0:
                # monolithic: one PUT with the whole body and its digest
                body = _http.StreamBody(stream, desc.size)
                resp = self.client.request("PUT", _with_query(location, "digest", digest), scopes=self.scopes,
                                           what=what, headers={"Content-Type": "application/octet-stream"},
                                           body=body)
                self.client.check(resp, (201,), what)
                resp.close()
                return desc
            # streamed: PATCH of unknown length (chunked), then PUT ?digest= with what we counted
            counted = Digesting(stream, "sha256" if not digest else digest.split(":", 1)[0])
            body = _http.StreamBody(counted, -1)
            resp = self.client.request("PATCH", location, scopes=self.scopes, what=what,
                                       headers={"Content-Type": "application/octet-stream"}, body=body)
            self.client.check(resp, (202,), what)
            resp.close()
            location = resp.headers.get("location") or location
            got = counted.digest
            if digest and got != digest:
                raise DigestMismatch(f"blob: digest mismatch: expected {digest}, got {got}")
            if desc.size >= 0 and counted.size != desc.size:
                raise DigestMismatch(f"blob {got}: got {counted.size} bytes, expected {desc.size}")
            what = f"writing blob {got} to {self.named.name}"
            resp = self.client.request("PUT", _with_query(location, "digest", got), scopes=self.scopes, what=what)
            self.client.check(resp, (201,), what)
            resp.close()
            return desc.replace(digest=got, size=counted.size)
        except BaseException:
            self._cancel(location)
            raise

    # -- manifests -------------------------------------------------------------------------

    def put_manifest(self, raw: bytes, media_type: str, instance_digest: str | None = None) -> None:
        from ...oci.manifest import digest_of

        if instance_digest is not None:
            ref = instance_digest
        else:
            ref = self.named.tag or self.named.digest or "latest"
            got = self._top_digest = digest_of(raw, media_type)
            if self.named.digest:
                if got != self.named.digest:
                    raise DigestMismatch(f"writing manifest to {self.named}: its digest is {got}, "
                                         f"but the destination reference asks for {self.named.digest}")
        what = f"writing manifest {ref} to {self.named.name}"
        resp = self.client.request("PUT", f"/v2/{self.path}/manifests/{ref}", scopes=self.scopes, what=what,
                                   headers={"Content-Type": media_type}, body=bytes(raw))
        self.client.check(resp, (201, 200), what)
        resp.close()

    def _lookaside(self) -> str | None:
        """The lookaside store registries.d names for writing this repository's signatures (read once)."""
        if not hasattr(self, "_lookaside_base"):
            from .. import registries_d

            self._lookaside_base = registries_d.lookaside(self.reference.named, write=True,
                                                          explicit=getattr(self.ctx, "registries_d", None))
        return self._lookaside_base

    @property
    def supports_signatures(self) -> bool:
        return self._lookaside() is not None

    def put_signatures(self, signatures: list[bytes], instance_digest: str | None = None) -> None:
        """To the lookaside staging store registries.d names (file:// only)."""
        from . import _lookaside

        digest = instance_digest or self._top_digest
        if digest is None:
            raise PalletError("internal: signatures before the manifest")
        base = self._lookaside()
        if signatures or base is not None:
            _lookaside.write(base, self.reference.named, digest, signatures)

    def commit(self) -> None:
        """Nothing to do: the manifest PUT (last) made the image visible."""

    def close(self) -> None:
        self.client.close()
