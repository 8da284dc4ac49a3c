"""The copy engine: any ImageSource to any ImageDestination.

One function, :func:`copy_image`, serves every pair of transports. Blobs stream through
``layer.stream.Verifying`` so corrupt data fails at EOF before a destination publishes
it; layers are copied in parallel; blobs the destination already has are not sent;
manifests are converted (OCI <-> Docker schema 2) and layers recompressed only when
asked or when the destination needs it, and the original manifest bytes are kept
whenever nothing changed, so digests are preserved.
"""

from __future__ import annotations

import threading

from .._log import debug
from ..errors import InvalidDocument, PalletError, Unsupported, UsageError
from ..layer import stream as _stream
from ..oci import manifest as _manifest
from ..oci import mediatype as mt
from ..oci import platform as _platform
from ..oci.config import MAX_CONFIG_SIZE  # a larger config is not one (protects memory)
from ..oci.descriptor import Descriptor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import ImageDestination, ImageReference, ImageSource, SystemContext


class CopyOptions:
    """What ``pallet copy`` can ask for (skopeo's flags)."""

    def __init__(self, *, format: str | None = None, multi_arch: str = "system", compress_format: str | None = None,
                 compress_level: int | None = None, decompress: bool = False, preserve_digests: bool = False,
                 parallel: int = 6, progress=None, additional_tags: list | None = None,
                 policy: str | None = None, insecure_policy: bool = False, remove_signatures: bool = False,
                 sign_by: str | None = None, sign_passphrase_file: str | None = None,
                 sign_identity: str | None = None, trust_local_source: bool = False):
        if multi_arch not in ("system", "all", "index-only"):
            raise UsageError(f"invalid --multi-arch value {multi_arch!r}: want system, all or index-only")
        if format is not None and format not in (mt.OCI_MANIFEST, mt.DOCKER_V2S2, mt.DOCKER_V2S1_SIGNED):
            raise UsageError(f"invalid format {format!r}")
        if compress_format not in (None, "gzip", "zstd"):
            raise UsageError(f"invalid compression format {compress_format!r}: want gzip or zstd")
        if parallel < 1:
            raise UsageError("--image-parallel-copies must be at least 1")
        self.format = format
        self.multi_arch = multi_arch
        self.compress_format = compress_format
        self.compress_level = compress_level
        self.decompress = decompress
        self.preserve_digests = preserve_digests
        self.parallel = parallel
        self.progress = progress or Progress(None)
        self.additional_tags = additional_tags or []
        self.policy = policy
        self.insecure_policy = insecure_policy
        #: signatures: the source's are copied unless removed; sign_by adds one (a GPG key)
        self.remove_signatures = remove_signatures
        self.sign_by = sign_by
        self.sign_passphrase_file = sign_passphrase_file
        self.sign_identity = sign_identity
        #: push and commit (buildah's, libimage's PolicyAllowStorage): a source in pallet's own
        #: store ("local" transport) is read whatever the policy says; any other source is checked
        self.trust_local_source = trust_local_source
        if sign_identity is not None and not sign_by:
            raise UsageError("--sign-identity needs --sign-by")


class Progress:
    """Reports blob copies. The library never prints: it calls ``sink(line)`` (None: silent)."""

    def __init__(self, sink):
        self.sink = sink
        self._lock = threading.Lock()

    def emit(self, line: str) -> None:
        if self.sink:
            with self._lock:
                self.sink(line)

    def blob(self, kind: str, desc: Descriptor, state: str) -> None:
        self.emit(f"Copying {kind} {(desc.digest or '').split(':')[-1][:12]} {state}")

    def wrap(self, stream, kind: str, desc: Descriptor):
        """Wrap a stream to report bytes as they pass (subclasses draw bars)."""
        return stream


class _FirstLine:
    """A Progress that shows ``line`` once, before the first line it reports."""

    def __init__(self, progress: Progress, line: str):
        self._p = progress
        self._line = line
        self._lock = threading.Lock()

    def _first(self) -> None:
        with self._lock:
            line, self._line = self._line, None
        if line:
            self._p.emit(line)

    def emit(self, line: str) -> None:
        self._first()
        self._p.emit(line)

    def blob(self, kind: str, desc: Descriptor, state: str) -> None:
        self._first()
        self._p.blob(kind, desc, state)

    def wrap(self, stream, kind: str, desc: Descriptor):  # a bar only: a blob that fails shows no line
        return self._p.wrap(stream, kind, desc)


class CopyResult:
    def __init__(self, digest: str, manifest: bytes, media_type: str):
        self.digest = digest
        self.manifest = manifest
        self.media_type = media_type
        #: what the destination reports it made (ImageDestination.committed)
        self.committed = None


def copy_image(src_ref: "ImageReference", dest_ref: "ImageReference", src_ctx: "SystemContext",
               dest_ctx: "SystemContext", options: CopyOptions | None = None) -> CopyResult:
    """Copy the image ``src_ref`` names to ``dest_ref``; return the top-level manifest written."""
    options = options or CopyOptions()
    from . import policy

    # the one trust-policy check: every image that comes in (pull, build's FROM and --from,
    # builder from, load, copy) is copied here, so the path comes from the options or the context
    trusted = options.insecure_policy or bool(getattr(src_ctx, "insecure_policy", False)) \
        or (options.trust_local_source and src_ref.transport == "local")
    pending = policy.check(src_ref, options.policy or getattr(src_ctx, "signature_policy", None), trusted)
    identity = _sign_identity(options, dest_ref)
    with src_ref.new_source(src_ctx) as src:
        raw, media_type = src.get_manifest()
        policy.verify(pending, src_ref, src, raw, media_type)
        top = _manifest.parse(raw, media_type)
        debug(f"copy {src_ref} -> {dest_ref}: source manifest {top.digest} ({top.media_type})")
        # the signatures of what is copied: the top-level manifest's, or with an index copied
        # as the one image for this system, that instance's (known once it is chosen)
        sigs = [] if options.remove_signatures or (top.is_index and options.multi_arch == "system") \
            else src.get_signatures()
        with dest_ref.new_destination(dest_ctx) as dest:
            _check_signatures(dest, sigs or options.sign_by)  # before anything is copied
            engine = _Engine(src, dest, src_ctx, options)
            if top.is_index:
                result = engine.copy_index(top)
            else:
                result = engine.copy_single(top, None)
            signed = top.digest
            if engine.chosen is not None and not options.remove_signatures:
                signed = engine.chosen
                sigs = src.get_signatures(signed)
            _check_signatures(dest, sigs, signed, result.digest, str(src_ref))
            if options.sign_by:
                from . import signature

                options.progress.emit("Signing manifest using simple signing")
                sigs = sigs + [signature.sign(signature.payload(identity, result.digest), options.sign_by,
                                              options.sign_passphrase_file)]
            options.progress.emit("Storing signatures")
            if sigs:
                dest.put_signatures(sigs)
            dest.commit()
            result.committed = dest.committed
    return result


def _check_signatures(dest, sigs, signed: str | None = None, written: str | None = None, what: str = "") -> None:
    """Refuse to copy signatures (or sign) where the destination cannot keep them, or when the
    manifest written is not the one they vouch for (``signed``)."""
    if not sigs:
        return
    if not dest.supports_signatures:
        raise Unsupported(f"cannot copy signatures to {dest.reference}: it cannot store them"
                          + (" (use --remove-signatures to copy the image without them)"
                             if isinstance(sigs, list) else ""))
    if written is not None and written != signed:
        raise Unsupported(f"copying {what} changes its manifest ({signed} -> {written}), which would "
                          f"invalidate its {len(sigs)} signature(s): use --remove-signatures")


def _sign_identity(options: CopyOptions, dest_ref) -> str | None:
    """The docker reference a new signature vouches for (checked before anything is copied)."""
    if not options.sign_by:
        return None
    from ..oci import reference

    if options.sign_identity:
        named = reference.parse(options.sign_identity)
        if not (named.tag or named.digest):
            raise UsageError(f"--sign-identity {options.sign_identity}: needs a tag or digest")
        return str(named)
    named = dest_ref.docker_reference()
    if named is None:
        raise UsageError(f"cannot tell which docker reference signing {dest_ref} vouches for: use --sign-identity")
    return str(named.tagged_or_latest() if not named.digest else named)


class _Engine:
    def __init__(self, src: "ImageSource", dest: "ImageDestination", src_ctx: "SystemContext",
                 options: CopyOptions):
        self.src = src
        self.dest = dest
        self.ctx = src_ctx
        self.opt = options
        self.progress = options.progress
        self._index_source_type = None
        #: the instance copied as the image, when an index was copied for this system only
        self.chosen: str | None = None
        #: stops the parallel layer copies on the first failure or a Ctrl-C
        self._cancel = _Cancel()

    # -- indexes -----------------------------------------------------------------------------

    def copy_index(self, index: _manifest.Index) -> CopyResult:
        opt = self.opt
        if opt.multi_arch == "system":
            want = _platform.wanted(self.ctx.override_os, self.ctx.override_arch, self.ctx.override_variant)
            chosen = index.select(want)
            debug(f"index {index.digest}: chose {chosen.digest} for {want}")
            self.chosen = chosen.digest
            note = getattr(self.dest, "note_index", None)  # the store records what was pulled (podman's Digest)
            if note is not None:
                note(index.digest)
            raw, media_type = self.src.get_manifest(chosen.digest)
            inst = self._parse_instance(raw, media_type, chosen)
            return self.copy_single(inst, None)
        if not self.dest.supports_index:
            raise Unsupported(f"{self.dest.reference} cannot store a multi-platform index: "
                              "use --multi-arch system or another destination")
        target = self._index_target(index)
        self._index_source_type = index.media_type
        if opt.multi_arch == "index-only":
            if target != index.media_type and opt.preserve_digests:
                raise Unsupported("--preserve-digests: the index would have to be converted to " + target)
            out = index.convert(target)
            self.dest.put_manifest(out.raw, out.media_type, None)
            return CopyResult(out.digest, out.raw, out.media_type)
        updated = []
        for desc in index.manifests:
            if desc.media_type in mt.INDEXES:
                raise Unsupported(f"nested index {desc.digest} is not supported")
            raw, media_type = self.src.get_manifest(desc.digest)
            inst = self._parse_instance(raw, media_type, desc)
            res = self.copy_single(inst, desc.digest, index_target=target)
            self._copy_instance_signatures(desc.digest, res.digest)
            updated.append(desc.replace(media_type=res.media_type, digest=res.digest, size=len(res.manifest)))
        if updated == index.manifests and target == index.media_type:
            out = index
        else:
            if opt.preserve_digests:
                raise Unsupported("--preserve-digests: copying would change the index digest")
            out = index.convert(target, updated)
        self.progress.emit("Writing manifest list to image destination")
        self.dest.put_manifest(out.raw, out.media_type, None)
        return CopyResult(out.digest, out.raw, out.media_type)

    def _copy_instance_signatures(self, source_digest: str, written_digest: str) -> None:
        """An instance's own signatures go with it (they vouch for its digest: it must not change)."""
        if self.opt.remove_signatures:
            return
        sigs = self.src.get_signatures(source_digest)
        if sigs:
            _check_signatures(self.dest, sigs, source_digest, written_digest, f"instance {source_digest}")
            self.dest.put_signatures(sigs, written_digest)

    def _parse_instance(self, raw: bytes, media_type: str, desc: Descriptor):
        from ..errors import DigestMismatch

        got = _manifest.digest_of(raw, media_type or desc.media_type)
        if got != desc.digest:
            raise DigestMismatch(f"manifest {desc.digest}: the source served data with digest {got}")
        inst = _manifest.parse(raw, media_type or desc.media_type)
        if inst.is_index:
            raise Unsupported(f"nested index {desc.digest} is not supported")
        return inst

    def _index_target(self, index: _manifest.Index) -> str:
        fmt = self.opt.format
        if fmt == mt.DOCKER_V2S1_SIGNED:
            raise Unsupported("a multi-platform index cannot be written as Docker schema 1 (--format v2s1): "
                              "copy one image of it (--multi-arch system)")
        if fmt is not None:
            return mt.DOCKER_LIST if fmt == mt.DOCKER_V2S2 else mt.OCI_INDEX
        supported = self.dest.supported_manifest_types
        if supported and index.media_type not in supported:
            for cand in supported:
                if cand in mt.INDEXES:
                    return cand
            raise Unsupported(f"{self.dest.reference} cannot store {index.media_type}")
        if self.opt.compress_format == "zstd" and index.media_type == mt.DOCKER_LIST:
            return mt.OCI_INDEX
        return index.media_type

    # -- single images -------------------------------------------------------------------------

    def _target_type(self, m, index_target: str | None) -> str:
        """The manifest type to write for ``m``; ``index_target`` is set when ``m`` is an instance
        of an index being converted to that type (its instances follow the index's family)."""
        fmt = self.opt.format
        if fmt is None and index_target is not None and index_target != self._index_source_type:
            fmt = mt.DOCKER_V2S2 if index_target == mt.DOCKER_LIST else mt.OCI_MANIFEST
        if fmt is not None:
            return fmt
        supported = self.dest.supported_manifest_types
        if supported and m.media_type not in supported:
            for cand in supported:
                if cand in (mt.OCI_MANIFEST, mt.DOCKER_V2S2):
                    return cand
            raise Unsupported(f"{self.dest.reference} cannot store {m.media_type} manifests")
        if self._desired_compression() == "zstd" and m.media_type == mt.DOCKER_V2S2:
            return mt.OCI_MANIFEST
        return m.media_type

    def _desired_compression(self) -> str | None:
        """The compression layers must end up with: None keeps the source's, "none" means plain tar."""
        dest_wants = self.dest.desired_compression
        if dest_wants is not None:
            return dest_wants
        if self.opt.decompress:
            return "none"
        return self.opt.compress_format

    def copy_single(self, m, instance_digest: str | None, index_target: str | None = None) -> CopyResult:
        if isinstance(m, _manifest.Schema1Manifest):
            return self._copy_schema1(m, instance_digest)
        target = self._target_type(m, index_target)
        if target == mt.DOCKER_V2S1_SIGNED:
            return self._write_schema1(m)
        if target == mt.DOCKER_V2S2 and m.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
            raise Unsupported(f"{m.config.media_type} artifacts cannot be stored as Docker schema 2")
        if self.opt.preserve_digests and (target != m.media_type or self._would_recompress(m)):
            raise Unsupported("--preserve-digests: copying would change the manifest digest "
                              f"(conversion to {target} or recompression needed)")
        self._started()
        debug(f"image {m.digest}: writing {target}, layer compression "
              f"{self._desired_compression() or 'as the source has it'}, {len(m.layers)} layers")
        config = self._read_config(m.config)
        self.dest.begin_image(m, config)
        layers = self._copy_layers(m.layers)
        self._put_config(m.config, config)
        if layers == m.layers and target == m.media_type:
            out = m
        else:
            out = m.convert(target, layers)
        self.progress.emit("Writing manifest to image destination")
        self._put_manifest(out, instance_digest)
        return CopyResult(out.digest, out.raw, out.media_type)

    def _started(self) -> None:
        """containers/image's first progress line for an image (skopeo's own tests and scripts
        look for it), shown with the first line of progress: a copy refused before anything
        moved fails with its one error line alone."""
        self.progress = _FirstLine(self.opt.progress, "Getting image source signatures")

    def _put_manifest(self, m, instance_digest: str | None) -> None:
        """Write a manifest; an index instance is stored under the digest of what is written
        (which differs from the source's when the copy converted or recompressed it)."""
        self.dest.put_manifest(m.raw, m.media_type, None if instance_digest is None else m.digest)

    def _would_recompress(self, m) -> bool:
        want = self._desired_compression()
        if want is None:
            return False
        for layer in m.layers:
            if mt.is_layer(layer.media_type) and (mt.layer_compression(layer.media_type) or "none") != want:
                return True
        return False

    def _read_config(self, desc: Descriptor) -> bytes:
        """The config blob, verified. Configs are small (capped), so they are read whole."""
        if desc.size > MAX_CONFIG_SIZE:
            raise InvalidDocument(f"manifest.config.size: {desc.size} bytes is too large for an image config")
        with _stream.Verifying(self.src.get_blob(desc), desc.digest, desc.size, "config") as s:
            return s.read()

    def _put_config(self, desc: Descriptor, config: bytes) -> Descriptor:
        import io

        got = self.dest.try_reusing_blob(desc, self.src.reference)
        if got is not None:
            self.progress.blob("config", desc, "skipped: already exists")
            return got
        got = self.dest.put_blob(io.BytesIO(config), desc, is_config=True)
        self.progress.blob("config", desc, "done")
        return got

    def _copy_layers(self, layers: list[Descriptor]) -> list[Descriptor]:
        if not layers:
            return []
        workers = 1 if self.dest.needs_ordered_blobs else min(self.opt.parallel, len(layers))
        if workers == 1:
            return [self._copy_layer(d) for d in layers]
        return _parallel(self._copy_layer, layers, workers, self._cancel)

    def _copy_layer(self, desc: Descriptor) -> Descriptor:
        if desc.urls and not mt.is_layer(desc.media_type):
            return desc
        if desc.urls and mt.is_nondistributable(desc.media_type):
            self.progress.blob("blob", desc, "skipped: foreign layer")
            return desc
        have = mt.layer_compression(desc.media_type) if mt.is_layer(desc.media_type) else None
        want = self._desired_compression()
        change = mt.is_layer(desc.media_type) and want is not None and (have or "none") != want
        if not change:
            got = self.dest.try_reusing_blob(desc, self.src.reference)
            if got is not None:
                self.progress.blob("blob", desc, "skipped: already exists")
                return got
        # opened on first read: a destination that finds it has the blob after all (another
        # process finished pulling it while this one waited for its lock) never downloads it
        s = _stream.Verifying(_Lazy(lambda: self.src.get_blob(desc), self._cancel), desc.digest, desc.size, "blob")
        try:
            if not change:
                got = self.dest.put_blob(self.progress.wrap(s, "blob", desc), desc)
            else:
                data = _stream.Decompress(s, have) if have else s
                if want != "none":
                    data = _stream.Compress(data, want, self.opt.compress_level)
                fmt = "oci" if mt.is_oci(desc.media_type) else "docker"
                if want == "zstd":
                    fmt = "oci"
                new = desc.replace(media_type=mt.layer_type(fmt, None if want == "none" else want),
                                   digest=None, size=-1)
                got = self.dest.put_blob(self.progress.wrap(data, "blob", desc), new)
                # keep the family of the source; convert() fixes it for the target format
                got = got.replace(media_type=mt.layer_type("oci" if mt.is_oci(desc.media_type) or want == "zstd"
                                                           else "docker", None if want == "none" else want),
                                  annotations=desc.annotations, urls=desc.urls)
        finally:
            s.close()
        self.progress.blob("blob", desc, "done")
        return got

    # -- Docker schema 1 ---------------------------------------------------------------------

    def _write_schema1(self, m) -> CopyResult:
        """``--format v2s1``: the image converted to a signed schema 1 manifest, as containers/image
        does it (no config blob is stored; the gzipped empty layer is, when history has empty layers)."""
        import io

        from . import schema1

        supported = self.dest.supported_manifest_types
        if supported and mt.DOCKER_V2S1_SIGNED not in supported:
            raise Unsupported(f"{self.dest.reference} cannot store Docker schema 1 manifests (--format v2s1)")
        if m.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
            raise Unsupported(f"{m.config.media_type} artifacts cannot be stored as Docker schema 1")
        if self._desired_compression() not in (None, "gzip") or any(
                mt.layer_compression(d.media_type) == "zstd" for d in m.layers if mt.is_layer(d.media_type)):
            raise Unsupported("Docker schema 1 layers cannot be zstd-compressed: use --dest-compress-format gzip")
        self._started()
        config = self._read_config(m.config)
        self.dest.begin_image(m, config)
        layers = self._copy_layers(m.layers)
        ref = self.dest.reference.docker_reference()
        name = ref.path if ref is not None else ""
        tag = (ref.tag or "") if ref is not None else ""
        unsigned, empty = schema1.build(config, [d.digest for d in layers], name, tag)
        if empty:
            desc = Descriptor(mt.DOCKER_LAYER_GZIP, schema1.GZIPPED_EMPTY_LAYER_DIGEST,
                              len(schema1.GZIPPED_EMPTY_LAYER))
            if self.dest.try_reusing_blob(desc, self.src.reference) is None:
                self.dest.put_blob(io.BytesIO(schema1.GZIPPED_EMPTY_LAYER), desc)
        out = _manifest.Schema1Manifest.from_bytes(schema1.sign(unsigned), mt.DOCKER_V2S1_SIGNED)
        self.progress.emit("Writing manifest to image destination")
        self._put_manifest(out, None)
        return CopyResult(out.digest, out.raw, out.media_type)

    def _copy_schema1(self, m: _manifest.Schema1Manifest, instance_digest: str | None) -> CopyResult:
        supported = self.dest.supported_manifest_types
        target = None if self.opt.format == mt.DOCKER_V2S1_SIGNED else self.opt.format  # already schema 1
        if target is None and (not supported or m.media_type in supported):
            if self._desired_compression() not in (None, "gzip"):
                raise Unsupported("schema 1 images cannot be recompressed; use --format oci or v2s2 to convert")
            self._started()
            for desc in m.layers_all():
                self._copy_layer(desc)
            self.progress.emit("Writing manifest to image destination")
            self._put_manifest(m, instance_digest)
            return CopyResult(m.digest, m.raw, m.media_type)
        return self._convert_schema1(m, target or next(
            (c for c in supported if c in (mt.DOCKER_V2S2, mt.OCI_MANIFEST)), mt.DOCKER_V2S2), instance_digest)

    def _convert_schema1(self, m: _manifest.Schema1Manifest, target: str, instance_digest: str | None) -> CopyResult:
        """Schema 1 -> schema 2/OCI: the config is made from the v1 history and the layers'
        diffIDs, computed while the layers stream through (as containers/image does)."""
        if self.opt.preserve_digests:
            raise Unsupported("--preserve-digests: converting a schema 1 image changes its digest")
        self._started()
        layer_descs = m.layers
        diff_ids: dict[str, str] = {}

        def tee(desc: Descriptor) -> Descriptor:
            got = self._copy_layer_with_diffid(desc, diff_ids)
            return got

        self.dest.begin_image(m, None)
        copied = [tee(d) for d in layer_descs]
        config_raw = m.synthesize_config([diff_ids[d.digest] for d in layer_descs])
        from ..oci import digest as _digest

        cfg_desc = Descriptor(mt.DOCKER_CONFIG if target == mt.DOCKER_V2S2 else mt.OCI_CONFIG,
                              _digest.of_bytes(config_raw), len(config_raw))
        self._put_config(cfg_desc, config_raw)
        fmt = "docker" if target == mt.DOCKER_V2S2 else "oci"
        layers = [d.replace(media_type=mt.layer_type(fmt, "gzip")) for d in copied]  # schema 1 layers are gzip
        out = _manifest.Manifest.build(target, cfg_desc, layers)
        self.progress.emit("Writing manifest to image destination")
        self._put_manifest(out, instance_digest)
        return CopyResult(out.digest, out.raw, out.media_type)

    def _copy_layer_with_diffid(self, desc: Descriptor, diff_ids: dict) -> Descriptor:
        """Copy a layer while computing the digest of its uncompressed content (one pass: the
        bytes the destination reads are also decompressed into a hash)."""
        unpack = _stream.DiffIDWriter()
        with _stream.Verifying(self.src.get_blob(desc), desc.digest, desc.size, "blob") as raw:
            tee = _stream.Tee(raw, unpack)
            got = self.dest.put_blob(tee, desc)
            while tee.read(_stream.CHUNK):  # a destination that already had the blob read none of it
                pass
        unpack.close()
        diff_ids[desc.digest] = unpack.digest
        self.progress.blob("blob", desc, "done")
        return got


class Cancelled(PalletError):
    """A layer copy stopped because another one failed or the user interrupted the copy."""


class _Cancel:
    """Stops the layer copies in flight at once: reads check :attr:`cancelled`, and source
    streams blocked in a network read are interrupted (``interrupt()``: the socket is shut
    down under them) instead of being waited for. The destinations then remove what they
    staged on their way out, as on any failure."""

    def __init__(self):
        self.cancelled = False
        self._lock = threading.Lock()
        self._open: set = set()

    def opened(self, f) -> None:
        with self._lock:
            self._open.add(f)
            if not self.cancelled:
                return
        _interrupt(f)

    def closed(self, f) -> None:
        with self._lock:
            self._open.discard(f)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            streams = list(self._open)
        for f in streams:
            _interrupt(f)


def _interrupt(f) -> None:
    fn = getattr(f, "interrupt", None)
    if fn is not None:
        try:
            fn()
        except OSError:
            pass


def _parallel(fn, items: list, workers: int, cancel: _Cancel) -> list:
    """``[fn(x) for x in items]`` on ``workers`` threads. The first failure (or a Ctrl-C in
    the main thread) cancels the others at once and is raised once they have stopped (they
    stop within a read: they are not waited for to finish their blobs)."""
    results: list = [None] * len(items)
    errors: list = []
    todo = iter(range(len(items)))
    lock = threading.Lock()
    done = threading.Event()
    running = [workers]

    def work():
        try:
            while not cancel.cancelled:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # noqa: BLE001  (handed to the main thread)
                    with lock:
                        errors.append(e)
                    cancel.cancel()
                    return
        finally:
            with lock:
                running[0] -= 1
                if running[0] == 0:
                    done.set()

    threads = [threading.Thread(target=work, name=f"pallet-copy-{n}", daemon=True) for n in range(workers)]
    for t in threads:
        t.start()
    try:
        done.wait()
    except BaseException:  # Ctrl-C, SIGTERM: stop the others, let them clean up, then go
        cancel.cancel()
        for t in threads:
            t.join(10)
        raise
    if errors:  # the first is the cause; the others are its consequences (Cancelled...)
        raise errors[0]
    return results


class _Lazy:
    """A stream opened by ``opener`` on the first read (never, if nobody reads); with a
    :class:`_Cancel`, reads stop once it is cancelled."""

    def __init__(self, opener, cancel: _Cancel | None = None):
        self._opener = opener
        self._f = None
        self._cancel = cancel

    def read(self, n: int = -1) -> bytes:
        c = self._cancel
        if c is not None and c.cancelled:
            raise Cancelled("copy cancelled")
        if self._f is None:
            self._f = self._opener()
            if c is not None:
                c.opened(self._f)
        try:
            return self._f.read(n)
        except (OSError, PalletError):
            if c is not None and c.cancelled:
                raise Cancelled("copy cancelled") from None
            raise

    def close(self) -> None:
        if self._f is not None:
            if self._cancel is not None:
                self._cancel.closed(self._f)
            self._f.close()
