"""buildah's ``inspect`` document (``buildah.Builder``) for a working container or an image, as
JSON and as template data with buildah's Go field names (``.OCIv1.Config.Env``,
``.Docker.Architecture``, ``.FromImageID``), and ``containers -a``'s rows."""

from __future__ import annotations

#: docker's container Config, every field (a template may name any): JSON key = Go name
_DOCKER_CONFIG = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                  ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False),
                  ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Healthcheck", None),
                  ("ArgsEscaped", False), ("Image", ""), ("Volumes", None), ("WorkingDir", ""),
                  ("Entrypoint", None), ("NetworkDisabled", False), ("MacAddress", ""), ("OnBuild", None),
                  ("Labels", None), ("StopSignal", ""), ("StopTimeout", None), ("Shell", None))
#: what docker's JSON always has (omitempty on the others)
_DOCKER_ALWAYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                  "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
                  "OnBuild", "Labels")
_OCI_CONFIG = (("User", ""), ("ExposedPorts", None), ("Env", None), ("Entrypoint", None), ("Cmd", None),
               ("Volumes", None), ("WorkingDir", ""), ("Labels", None), ("StopSignal", ""), ("ArgsEscaped", False))
_IMAGE_KEYS = {"created": "Created", "author": "Author", "architecture": "Architecture", "variant": "Variant",
               "os": "OS", "os.version": "OSVersion", "os.features": "OSFeatures", "config": "Config",
               "rootfs": "RootFS", "history": "History"}
_DOCKER_KEYS = dict(_IMAGE_KEYS, id="ID", parent="Parent", comment="Comment", container="Container",
                    container_config="ContainerConfig", docker_version="DockerVersion", size="Size")
_HISTORY_KEYS = (("created", "Created"), ("author", "Author"), ("created_by", "CreatedBy"), ("comment", "Comment"),
                 ("empty_layer", "EmptyLayer"))


def _docker_config(cfg: dict, working: bool) -> dict:
    out = {k: cfg.get(k, d) for k, d in _DOCKER_CONFIG if k in _DOCKER_ALWAYS or cfg.get(k) not in (None, "", False)}
    if out.get("OnBuild") is None and working:  # a working container's is an empty list, an image's null
        out["OnBuild"] = []
    return out


def docker_of(doc: dict, working: bool = True) -> dict:
    """The docker view of an OCI config, as containers/image converts it (buildah's .Docker)."""
    cfg = _docker_config(doc.get("config") or {}, working)
    out = {"created": doc.get("created")}
    out["container_config"] = dict(cfg)
    out["config"] = cfg
    for k in ("author", "architecture", "variant", "os", "os.version", "os.features", "rootfs", "history"):
        if doc.get(k) not in (None, "") and not (k == "os.features" and not doc[k]):
            out[k] = doc[k]
    if not out.get("created"):
        out.pop("created")
    return out


def oci_of(doc: dict) -> dict:
    out = {}
    for k in ("created", "author", "architecture", "variant", "os", "os.version", "os.features", "config", "rootfs",
              "history"):
        if doc.get(k) not in (None, "") and not (k == "os.features" and not doc[k]):
            out[k] = doc[k]
    return out


def builder_doc(*, from_image: str, from_id: str, from_digest: str, config: bytes, manifest: bytes,
                container: str, container_id: str, mountpoint: str, annotations: dict, doc: dict,
                working: bool) -> dict:
    """buildah inspect's JSON, its keys in buildah's order."""
    return {
        "Type": "buildah 0.0.1", "FromImage": from_image, "FromImageID": from_id, "FromImageDigest": from_digest,
        "Config": config.decode("utf-8", "replace"), "Manifest": manifest.decode("utf-8", "replace"),
        "Container": container, "ContainerID": container_id, "MountPoint": mountpoint, "ProcessLabel": "",
        "MountLabel": "", "ImageAnnotations": annotations, "ImageCreatedBy": "", "OCIv1": oci_of(doc),
        "Docker": docker_of(doc, working), "DefaultMountsFilePath": "", "Isolation": "oci",
        "NamespaceOptions": [{"Name": n, "Host": n in ("cgroup", "user"), "Path": ""}
                             for n in ("cgroup", "ipc", "mount", "network", "pid", "user", "uts")],
        "Capabilities": list(DEFAULT_CAPS) if working else None,
        "ConfigureNetwork": "NetworkDefault", "CNIPluginPath": "", "CNIConfigDir": "",
        "IDMappingOptions": {"HostUIDMapping": True, "HostGIDMapping": True, "UIDMap": [], "GIDMap": [],
                             "AutoUserNs": False, "AutoUserNsOpts": {"Size": 0, "InitialSize": 0, "PasswdFile": "",
                                                                     "GroupFile": "", "AdditionalUIDMappings": None,
                                                                     "AdditionalGIDMappings": None}},
        "History": list(doc.get("history") or []), "Devices": [] if working else None,
    }


DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"]


def _time(v):
    """A Go time.Time as templates print it (``2023-11-14 22:13:20 +0000 UTC``)."""
    from ._reports import go_time, parse_ts

    ts = parse_ts(v) if isinstance(v, str) else None
    return go_time(ts) if ts is not None else (v if v else "0001-01-01 00:00:00 +0000 UTC")


def _hist_view(h) -> object:
    from ._template import Struct

    h = h if isinstance(h, dict) else {}
    zero = {"empty_layer": False}
    return Struct("v1.History", {g: (_time(h.get(k)) if k == "created" else h.get(k, zero.get(k, "")))
                                 for k, g in _HISTORY_KEYS}, json_view=h)


#: fields that are Go maps and slices: a nil one prints as map[] / [] in a template, not <nil>
_GO_MAPS = ("Labels", "ExposedPorts", "Volumes")
_GO_SLICES = ("Env", "Cmd", "Entrypoint", "OnBuild", "Shell")


def _go_value(field: str, v):
    if v is None and field in _GO_MAPS:
        return {}
    if v is None and field in _GO_SLICES:
        return []
    return v


def _image_view(doc: dict, keys: dict, type_name: str, config_fields, config_type: str) -> object:
    from ._template import Struct

    out = {}
    for k, g in keys.items():
        v = doc.get(k)
        if k == "created":
            v = _time(v)
        elif k in ("config", "container_config"):
            c = v if isinstance(v, dict) else {}
            v = Struct(config_type, {f: _go_value(f, c.get(f, d)) for f, d in config_fields}, json_view=c)
        elif k == "rootfs":
            r = v if isinstance(v, dict) else {}
            v = Struct("v1.RootFS", {"Type": r.get("type", ""), "DiffIDs": r.get("diff_ids") or []}, json_view=r)
        elif k == "history":
            v = [_hist_view(h) for h in (v or [])]
        elif k == "size":
            v = v or 0
        elif v is None:
            v = [] if k == "os.features" else ""
        out[g] = v
    return Struct(type_name, out, json_view=doc)


def builder_view(doc: dict) -> object:
    """The template data: buildah.Builder's Go fields."""
    from ._template import Struct

    view = dict(doc)
    view["OCIv1"] = _image_view(doc["OCIv1"], _IMAGE_KEYS, "v1.Image", _OCI_CONFIG, "v1.ImageConfig")
    view["Docker"] = _image_view(doc["Docker"], _DOCKER_KEYS, "docker.V2Image", _DOCKER_CONFIG, "docker.Config")
    view["History"] = [_hist_view(h) for h in doc["History"]]
    return Struct("buildah.Builder", view, json_view=doc)


def _blob(store, digest: str | None) -> bytes:
    if not digest:
        return b""
    try:
        with store.open_blob(digest) as f:
            return f.read()
    except Exception as e:
        if type(e).__name__ == "BlobNotFound":
            return b""
        raise


def of_container(store, b) -> dict:
    from .._std import json

    rec = None
    if b.meta.get("image_id"):
        try:
            rec = store.image(b.meta["image_id"])
        except Exception as e:
            if type(e).__name__ != "ImageUnknown":
                raise
    doc = b.config
    return builder_doc(from_image=(rec["names"][0] if rec and rec["names"] else b.meta.get("from") or ""),
                       from_id=b.meta.get("image_id") or "", from_digest=rec["digest"] if rec else "",
                       config=json.dumps(doc).encode(), manifest=_blob(store, rec["digest"]) if rec else b"",
                       container=b.name, container_id=b.id, mountpoint=b.mountpoint() or "",
                       annotations=b.meta.get("annotations") or {}, doc=doc, working=True)


def of_image(store, text: str) -> dict:
    from .._std import json

    rec = store.image(text)
    config = _blob(store, rec.get("config"))
    try:
        doc = json.loads(config) if config else {}
    except ValueError:
        doc = {}
    return builder_doc(from_image=rec["names"][0] if rec["names"] else "", from_id=rec["id"],
                       from_digest=rec["digest"], config=config, manifest=_blob(store, rec["digest"]),
                       container="", container_id="", mountpoint="", annotations=_manifest_annotations(store, rec),
                       doc=doc if isinstance(doc, dict) else {}, working=False)


def _manifest_annotations(store, rec: dict) -> dict:
    """An image's manifest annotations (buildah's .ImageAnnotations of an image)."""
    from .._std import json

    try:
        m = json.loads(_blob(store, rec["digest"]) or b"{}")
    except ValueError:
        return {}
    a = m.get("annotations") if isinstance(m, dict) else None
    return {k: v for k, v in a.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(a, dict) else {}


def other_rows(store, builders) -> list:
    """``containers -a``: the store's other containers (a running build's step containers),
    buildah's rows with an empty BUILDER column (as buildah shows other tools' containers)."""
    from ._template import Struct

    ours = {b.id for b in builders}
    names = {}
    for r in store.images():
        names[r["id"]] = r["names"][0] if r["names"] else ""
    rows = []
    for c in store.containers():
        if c["id"] in ours:
            continue
        rows.append(Struct("main.containerOutputParams", {
            "ContainerID": c["id"], "Builder": "    ", "ImageID": c.get("image") or "",
            "ImageName": names.get(c.get("image"), ""), "ContainerName": (c.get("names") or [c["id"][:12]])[0]}))
    return rows
