"""podman's ``info``, ``system prune`` and ``system reset`` over pallet's store: the data and the
removals; the verbs in store.py only parse and print."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage.store import Store

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _runtime() -> dict:
    import shutil

    from .._version import __version__

    # where run finds it (containers.container.runtime_path): next to pallet's python first
    path = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
    if not os.access(path, os.X_OK):
        path = shutil.which("pallet-runtime") or ""
    return {"name": "pallet-runtime", "package": f"pallet {__version__}", "path": path,
            "version": f"pallet-runtime version {__version__}"}


def _cpus() -> int:
    """Go's runtime.NumCPU, as podman reports it: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 0


def info(store: "Store", registries: list[str]) -> dict:
    """podman info's keys that apply to pallet (camelCase, as ``podman info -f json``)."""
    from .._version import __version__

    u = os.uname()
    images = store.images()
    containers = store.containers()
    cgv = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    host = {"arch": _GOARCH.get(u.machine, u.machine), "cgroupVersion": cgv, "cpus": _cpus(),
            "hostname": u.nodename, "kernel": u.release, "ociRuntime": _runtime(), "os": u.sysname.lower()}
    from .._userns import rootless_uid

    rootless = rootless_uid() is not None
    host["security"] = {"rootless": rootless}
    if rootless and os.geteuid() == 0:  # in the user's namespace (info is a rootless verb): its maps
        maps = {}
        for kind in ("uid", "gid"):
            with open(f"/proc/self/{kind}_map") as f:
                maps[kind + "map"] = [{"container_id": int(c), "host_id": int(h), "size": int(n)}
                                      for c, h, n in (line.split() for line in f if line.strip())]
        host["idMappings"] = maps
    driver = store.options.driver
    try:
        with open(os.path.join(store.graphroot, "driver"), "rb") as f:
            driver = f.read(64).strip().decode("ascii", "replace") or driver
    except OSError:
        pass
    if driver == "auto":  # a store not made yet: the driver it would get, by the kernel's list
        try:
            with open("/proc/filesystems", "rb") as f:
                driver = "overlay" if b"\toverlay\n" in f.read() else "vfs"
        except OSError:
            driver = "vfs"
    st = {"containerStore": {"number": len(containers), "paused": 0, "running": 0, "stopped": len(containers)},
          "graphDriverName": driver, "graphRoot": store.graphroot, "imageStore": {"number": len(images)},
          "runRoot": store.runroot}
    try:
        sv = os.statvfs(store.graphroot)
        st["graphRootAllocated"] = sv.f_blocks * sv.f_frsize
        st["graphRootUsed"] = (sv.f_blocks - sv.f_bfree) * sv.f_frsize
    except OSError:
        pass
    regs = {"search": list(registries)} if registries else {}
    return {"host": host, "store": st, "registries": regs,
            "version": {"Version": __version__, "OsArch": f"{host['os']}/{host['arch']}", "Os": host["os"]}}


#: podman's Go field names where they are not the JSON key with a capital
_GO_NAMES = {"cgroupVersion": "CgroupsVersion", "os": "OS", "cpus": "CPUs", "ociRuntime": "OCIRuntime",
             "idMappings": "IDMappings", "uidmap": "UIDMap", "gidmap": "GIDMap", "container_id": "ContainerID",
             "host_id": "HostID"}
_GO_TYPES = {"host": "*define.HostInfo", "store": "*define.StoreInfo", "version": "define.Version",
             "ociRuntime": "define.OCIRuntimeInfo", "containerStore": "define.ContainerStore",
             "imageStore": "define.ImageStore"}


def go_view(v, key: str = ""):
    """The template data: podman's Go field names (``.Store.GraphDriverName``, ``.Host.OS``);
    ``.Registries`` stays a map, as podman's is."""
    from ._template import Struct

    if isinstance(v, dict):
        if key == "registries":
            return dict(v)
        return Struct(_GO_TYPES.get(key, "define.Info"),
                      {_GO_NAMES.get(k, k[:1].upper() + k[1:]): go_view(x, k) for k, x in v.items()}, json_view=v)
    if isinstance(v, list):
        return [go_view(x, key) for x in v]
    return v


def yaml(v, indent: int = 0) -> str:
    """``podman info``'s default output: YAML (block style, strings quoted only when they must be)."""
    pad = "  " * indent
    out = []
    for k, x in v.items():
        if isinstance(x, dict):
            if x:
                out.append(f"{pad}{k}:\n{yaml(x, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {{}}")
        elif isinstance(x, list):
            if x:
                out.append(f"{pad}{k}:\n" + "\n".join(f"{pad}- {_scalar(i)}" for i in x))
            else:
                out.append(f"{pad}{k}: []")
        else:
            out.append(f"{pad}{k}: {_scalar(x, pad + '  ')}")
    return "\n".join(out)


def _scalar(x, pad: str = "") -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float)):
        return str(x)
    s = str(x)
    if "\n" in s:
        return "|-\n" + "\n".join(pad + line for line in s.split("\n"))
    if not s or s[0] in "!&*{}[]|>%@`'\"#,?:-" or ": " in s or s.strip() != s or s in ("true", "false", "null"):
        import json

        return json.dumps(s)
    return s


PRUNE_WARNING = ("WARNING! This command removes:\n\t- all stopped containers\n\t- all networks not used by at "
                 "least one container\n\t- all {images} images\n\t- all dangling build cache\n\n")
RESET_WARNING = ("WARNING! This will remove:\n        - all containers\n        - all pods\n        - all images\n"
                 "        - all networks\n        - all build cache\n        - all machines\n"
                 "        - all volumes\n        - the graphRoot directory: \"{root}\"\n"
                 "        - the runRoot directory: \"{runroot}\"\n")


def confirm(warning: str, verb: str) -> None:
    """podman's prompt; without a terminal on stdin nothing can answer it: refused (use --force)."""
    from ..errors import UsageError

    sys.stdout.write(warning + "Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    if not sys.stdin.isatty():
        sys.stdout.write("\n")
        raise UsageError(f"{verb}: stdin is not a terminal to confirm on; nothing was removed (use --force)")
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise SystemExit(0)


def _layer_bytes(store: "Store") -> int:
    return sum(r.get("size", 0) or 0 for r in store.layers())


def prune(store: "Store", all_unused: bool) -> tuple[list[str], int]:
    """Stopped containers (pallet's store holds no running ones: build containers are kept,
    as podman keeps buildah's), then dangling (``all_unused``: unused) images; the removed
    image IDs and the bytes freed."""
    from ..storage import info as _info

    before = _layer_bytes(store)
    removed = _info.prune(store, all_unused=all_unused)
    return removed, max(0, before - _layer_bytes(store))


def reset(store: "Store") -> list[str]:
    """Every container and image of the store; what was removed (containers, then images)."""
    from ..containers.container import META, Containers
    from ..errors import ContainerNotFound

    gone = []
    runs = [c["id"] for c in store.containers() if c.get("kind") == "container" and META in (c.get("metadata") or {})]
    if runs:  # run containers are stopped and removed through their model: conmon, network, mounts
        ctrs = Containers(store)
        for cid in runs:
            try:
                gone.append(ctrs.remove(cid, force=True))
            except ContainerNotFound:  # removed meanwhile (its --rm exit command)
                pass
    for c in store.containers():
        gone.append(store.remove_container(c["id"]))
    for rec in store.images():
        try:
            iid, _, _ = store.remove_image(rec["id"], force=True, every_name=True)
        except Exception as e:  # an image removed with its child already
            if type(e).__name__ != "ImageUnknown":
                raise
            continue
        gone.append(iid)
    return gone
