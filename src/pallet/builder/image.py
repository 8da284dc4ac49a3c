"""Image configs as a build changes them, and writing a built image into the store.

A pending config is a plain dict in the OCI image-config layout (with Docker's extra
``Healthcheck``, ``OnBuild`` and ``Shell`` fields kept, as Docker documents them); it lives in
a working container's metadata between ``builder`` commands and in memory during a build.
"""

from __future__ import annotations

import copy as _copy
import time

from ..errors import BuildError

OCI = "oci"
DOCKER = "docker"

#: the order Go's structs give the fields (so configs look like the other tools')
_CONFIG_ORDER = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
                 "WorkingDir", "Labels", "StopSignal", "OnBuild", "Shell")
_TOP_ORDER = ("created", "author", "architecture", "os", "os.version", "os.features", "variant", "config",
              "rootfs", "history")


def host_platform() -> tuple[str, str, str]:
    from ..oci.platform import host

    p = host()
    return p.os, p.architecture, p.variant or ""


#: the PATH buildah and BuildKit give a FROM scratch stage
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def empty_config(platform=None) -> dict:
    """A scratch config for ``platform`` (an ``oci.platform.Platform``; default the host's)."""
    if platform is not None:
        os_, arch, variant = platform.os, platform.architecture, platform.variant or ""
    else:
        os_, arch, variant = host_platform()
    doc = {"architecture": arch, "os": os_, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    if variant:
        doc["variant"] = variant
    return doc


def load_config(store, image_rec: dict | None) -> dict:
    """The config of a stored image as a dict to change (a fresh one for scratch)."""
    if image_rec is None:
        return empty_config()
    from ..storage.info import config

    doc = config(store, image_rec)
    if not isinstance(doc, dict):
        from ..errors import StoreError

        raise StoreError(f"image {image_rec['id'][:12]}: its config is not a JSON object")
    doc.setdefault("config", {})
    if doc["config"] is None:
        doc["config"] = {}
    doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    doc.setdefault("history", [])
    doc.pop("container_config", None)
    doc.pop("container", None)
    doc.pop("docker_version", None)
    return doc


def timestamp(value: int | None) -> str:
    t = time.time() if value is None else value
    frac = "" if value is not None else ".%09d" % int((t % 1) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + frac + "Z"


def ordered(doc: dict) -> dict:
    """``doc`` with its keys in Go's field order (unknown keys kept, after)."""
    cfg = doc.get("config") or {}
    c2 = {k: cfg[k] for k in _CONFIG_ORDER if k in cfg and cfg[k] not in (None, {}, [])}
    for k, v in cfg.items():
        if k not in c2 and k not in _CONFIG_ORDER:
            c2[k] = v
    out = {}
    for k in _TOP_ORDER:
        if k == "config":
            out["config"] = c2
        elif k in doc and doc[k] not in (None, ""):
            out[k] = doc[k]
    for k, v in doc.items():
        if k not in out and k not in _TOP_ORDER:
            out[k] = v
    return out


BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


def base_annotations(img: dict | None, spec: str) -> dict:
    """The OCI image-spec's base-image annotations buildah puts on what it commits on ``img``
    (the image record ``spec`` named; None: scratch, none): its manifest digest, and its name
    (the first that contains ``spec``, else its first; none for an image without names)."""
    if img is None:
        return {}
    out = {}
    if img.get("digest"):
        out[BASE_DIGEST] = img["digest"]
    names = img.get("names") or []
    name = next((n for n in names if spec and spec in n), names[0] if names else "")
    if name:
        out[BASE_NAME] = name
    return out


def write_image(store, doc: dict, layer_ids: list[str], fmt: str = OCI, names: list[str] = (),
                annotations: dict | None = None, keep_digest: bool = False, log: bool = True) -> dict:
    """Store an image made of ``layer_ids`` (base first, all in the store) with config ``doc``;
    ``names`` are qualified as podman does. Returns the image record. ``keep_digest``: an
    image already stored with this config keeps its manifest (the new one is added)."""
    from ..oci import mediatype as mt
    from ..oci.descriptor import Descriptor
    from ..oci.digest import of_bytes
    from ..oci.manifest import Manifest, dumps
    from ..storage.names import qualify

    if fmt not in (OCI, DOCKER):
        raise BuildError(f"unknown image format {fmt!r}: want oci or docker")
    with store.read() as st:
        gone = [lid for lid in layer_ids if lid not in st.layers]
        if gone:  # a concurrent `image prune -a` or `rmi` took them: the store's own wording
            from ..errors import StoreError

            raise StoreError(f"layer {gone[0][:12]} vanished while the image was being stored (removed by a "
                             "concurrent image prune or rmi?); try again")
        recs = [dict(st.layers[lid]) for lid in layer_ids]
    doc = _copy.deepcopy(doc)
    doc.setdefault("rootfs", {})["type"] = "layers"
    doc["rootfs"]["diff_ids"] = [r["diff_id"] for r in recs]
    if fmt == OCI:
        cfg = doc.get("config") or {}
        # OCI configs have no place for these; buildah drops them (Docker keeps them)
        for k in ("Healthcheck", "OnBuild", "Shell"):
            cfg.pop(k, None)
    config = dumps(ordered(doc))
    config_digest = of_bytes(config)
    layers = []
    for r in recs:
        comp = mt.layer_compression(r.get("media_type") or "") if r.get("media_type") else "gzip"
        layers.append(Descriptor(mt.layer_type("docker" if fmt == DOCKER else "oci", comp), r["blob"],
                                 r["blob_size"]))
    if fmt == DOCKER:
        m = Manifest.build(mt.DOCKER_V2S2, Descriptor(mt.DOCKER_CONFIG, config_digest, len(config)), layers)
    else:
        m = Manifest.build(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, config_digest, len(config)), layers,
                           annotations=annotations or None)
    qualified = [str(qualify(n)) for n in names]
    return store.add_image(config=config, config_digest=config_digest, manifest=m.raw, manifest_digest=m.digest,
                           media_type=m.media_type, layers=list(layer_ids), names=qualified,
                           keep_digest=keep_digest, log=log)
