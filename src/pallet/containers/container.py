"""The container model: podman's containers on the store, the runtime-spec generator, netavark
and conmon.

A container is a store container (``kind="container"``: a writable layer on its image, the
store's locking) whose ``metadata["pallet"]`` holds what does not change after ``create``: the
name, image, command, the user's options, the generated runtime config's path, the network
mode and ports, the runtime, the log path. What changes (state, pid, conmon pid, exit code,
times, the network sandbox) is ``RUNROOT/pallet-containers/ID/state.json``, changed only under
``RUNROOT/pallet-containers/containers.lock``.

Where things are (podman's layout, pallet's directories):

- ``GRAPHROOT/pallet-containers/ID/userdata``: the bundle (``config.json``), ``ctr.log``
  (conmon's k8s-file log), ``hosts``, ``hostname``, ``resolv.conf``;
- ``RUNROOT/pallet-containers/ID``: ``state.json``, ``pidfile``, ``conmon.pid``, ``oci-log``;
- ``RUNROOT/pallet-containers/exits/ID``: conmon's exit file; ``.../oci``: the OCI runtime's
  ``--root``; conmon's attach socket is ``userdata/attach`` (``--full-attach``).
"""

from __future__ import annotations

import os
import time

from .._fs import read_int
from .._userns import rootless_uid
from .._std import json
from ..errors import (ContainerError, ContainerNotFound, ContainerStateError, NotFound, PalletError, UsageError)

META = "pallet"
#: containers.conf's pids_limit default (podman's): --pids-limit 0 or -1 lifts it
DEFAULT_PIDS_LIMIT = 2048
#: podman's state names
CONFIGURED, CREATED, RUNNING, STOPPED, EXITED = "configured", "created", "running", "stopped", "exited"


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


#: the time now as records keep it (RFC 3339, nanoseconds, UTC)
now = _now


class Options:
    """What ``run``/``create`` take, checked before anything is made."""

    def __init__(self, image: str, command=None, *, name=None, env=(), user=None, workdir=None, entrypoint=None,
                 networks=(), publish=(), hostname=None, cap_add=(), cap_drop=(), privileged=False,
                 read_only=False, tmpfs=(), volumes=(), memory=None, cpus=None, pids_limit=None,
                 stop_signal=None, labels=None, rm=False, detach=False, interactive=False, tty=False,
                 runtime=None, pull="missing", network_config_dir=None, restart=None, create_command=None,
                 publish_all=False, extra=None, life=None, cgroup_parent=None, runflags=None, rootfs=None, pod=None):
        self.image, self.command, self.name = image, list(command) if command else None, name
        self.env, self.user, self.workdir, self.entrypoint = list(env), user, workdir, entrypoint
        self.networks, self.publish, self.hostname = list(networks), list(publish), hostname
        self.cap_add, self.cap_drop, self.privileged = list(cap_add), list(cap_drop), privileged
        self.read_only, self.tmpfs, self.volumes = read_only, list(tmpfs), list(volumes)
        self.memory, self.cpus, self.pids_limit = memory, cpus, pids_limit
        self.stop_signal, self.labels, self.rm = stop_signal, dict(labels or {}), rm
        self.detach, self.interactive, self.tty = detach, interactive, tty
        self.runtime, self.pull, self.network_config_dir = runtime, pull, network_config_dir
        self.restart = restart
        #: policies.LifeOptions: --restart, health checks, --init, --stop-timeout
        self.life = life
        self.create_command = list(create_command or [])
        self.publish_all = publish_all
        #: ``--cgroup-parent``: the cgroup the container's goes below (default /pallet_parent)
        self.cgroup_parent = cgroup_parent
        #: the flags of containers/options.py (an ``options.Extra``)
        self.extra = extra
        #: --cidfile, --conmon-pidfile, --sdnotify, --timeout... (a ``runflags.RunFlags``)
        self.runflags = runflags
        #: ``--rootfs``: ``PATH[:O]``, the root filesystem instead of an image (``image`` unused)
        self.rootfs = rootfs
        #: the pod it belongs to, ``{"id", "infra", "infra_id"}`` (set by ``pods.Pods``)
        self.pod = pod


#: the environment's PATH when there is no image (``--rootfs``): containers-common's default
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cgroup_parent(text: str | None) -> str | None:
    """``--cgroup-parent``, normalised to ``/a/b`` (cgroupfs paths; a relative one is from the
    root, as podman's): no ``..``, no empty or dot components, nothing but printable ASCII."""
    if text is None:
        return None
    parts = [p for p in text.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or not all(c.isascii() and c.isprintable() and c != " "
                                                                       for c in text):
        raise UsageError(f"invalid --cgroup-parent {text!r}: want a cgroup path such as /mygroup")
    return "/" + "/".join(parts)


_ADJ = ("admiring", "bold", "brave", "calm", "clever", "eager", "focused", "gallant", "happy", "jolly", "keen",
        "loving", "modest", "nice", "quirky", "serene", "sharp", "stoic", "trusting", "vibrant", "wizardly", "zen")
_NOUN = ("babbage", "curie", "darwin", "einstein", "euler", "fermi", "galileo", "hopper", "kepler", "lovelace",
         "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak")


def _random_name() -> str:
    b = os.urandom(2)
    return f"{_ADJ[b[0] % len(_ADJ)]}_{_NOUN[b[1] % len(_NOUN)]}"


def check_name(name: str) -> None:
    ok = name and name[0].isalnum() and all(c.isalnum() or c in "_.-" for c in name) and name.isascii()
    if not ok or len(name) > 253:
        raise UsageError(f"container name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_hostname(name: str, flag: str = "--hostname") -> None:
    """A host name is one line of printable ASCII without blanks or '/', at most 64 bytes (the
    kernel's limit): it is written into the container's ``/etc/hosts`` and ``/etc/hostname``, where
    a newline would add lines of the caller's choosing."""
    if not name or len(name) > 64 or not name.isascii() or not name.isprintable() or " " in name or "/" in name:
        raise UsageError(f"invalid {flag} {name!r}: want at most 64 letters, digits, '-' or '.', no blanks")


def replace(kind: str, name: str | None, remove, missing) -> None:
    """``--replace``: the ``kind`` (container, pod) called ``name`` removed first, with
    ``remove(name, force=True)``; none of that name (``missing`` raised) is fine; podman's error
    without ``--name``."""
    if not name:
        raise UsageError(f"cannot replace {kind} without --name being set")
    try:
        remove(name, force=True)
    except missing:
        pass


def runtime_path(name: str | None, conf=None) -> str:
    """``--runtime``: a name (pallet-runtime, runc, crun... on PATH, or containers.conf's
    ``[engine.runtimes]`` paths) or an absolute path; then ``$PALLET_RUNTIME``, then
    containers.conf's ``runtime``."""
    import sys

    name = name or os.environ.get("PALLET_RUNTIME") or (conf.runtime if conf is not None else None) or "pallet-runtime"
    if conf is not None and name in conf.runtimes:
        for path in conf.runtimes[name]:
            if os.path.isabs(path) and os.access(path, os.X_OK) and not os.path.isdir(path):
                return path
    if "/" in name:
        if not os.path.isabs(name) or not os.access(name, os.X_OK) or os.path.isdir(name):
            raise UsageError(f"--runtime {name}: not an executable file")
        return name
    if name == "pallet-runtime":
        exe = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
        if os.access(exe, os.X_OK):
            return exe
    import shutil

    found = shutil.which(name)
    if not found:
        raise UsageError(f"--runtime {name}: no such OCI runtime (give a name on PATH or an absolute path)")
    return found


def _parse_memory(text: str) -> int:
    t = text.strip().lower()
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if t.endswith("b") and len(t) > 1 and t[-2] in units and t[-2] != "b":
        t = t[:-1]
    mult = 1
    if t and t[-1] in units:
        mult, t = units[t[-1]], t[:-1]
    try:
        n = float(t)
    except ValueError:
        raise UsageError(f"invalid --memory {text!r}: want a size such as 512m or 1g") from None
    if not n >= 0 or n * mult > 1 << 62:
        raise UsageError(f"invalid --memory {text!r}: out of range")
    v = int(n * mult)
    if v and v < 6 * (1 << 20):
        raise UsageError(f"invalid --memory {text!r}: the minimum allowed memory limit is 6MB")
    return v


class Containers:
    """podman's container verbs over one store (``store``) and network configuration."""

    def __init__(self, store, global_args: list[str] | None = None, runtime_flags: list[str] | None = None):
        self.store = store
        #: the global ``--runtime-flag``s (``--debug``, ``--log=FILE``): on every runtime call this
        #: process makes, conmon's included, as podman's (not the exit command's: podman's neither)
        self.runtime_flags = list(runtime_flags or [])
        self.base = os.path.join(store.runroot, "pallet-containers")
        self.data = os.path.join(store.graphroot, "pallet-containers")
        self.exits = os.path.join(self.base, "exits")
        self.oci_root = os.path.join(self.base, "oci")
        for d in (self.base, self.data, self.exits, self.oci_root):
            os.makedirs(d, 0o700, exist_ok=True)
        #: the global flags the exit command repeats (the same store)
        self.global_args = list(global_args or [])
        self._lockfile = None
        #: container ID -> the fd of its owner lock this process holds (see _hold)
        self._held: dict[str, int] = {}

    # -- records and state ------------------------------------------------------------------

    def _lock(self):
        from ..storage.lock import FileLock

        if self._lockfile is None:
            self._lockfile = FileLock(os.path.join(self.base, "containers.lock"))
        return self._lockfile.exclusive()

    def lock(self):
        """``with ctrs.lock():`` the containers' lock (pods' records change under it too)."""
        return self._lock()

    def editing_state(self, cid: str):
        """``with ctrs.editing_state(cid) as st:`` the container's run-time state under the
        containers' lock; the dict, changed in the block, is written back when it ends without an
        error (for the modules beside this one: restart policies, health checks, pause)."""
        import contextlib

        @contextlib.contextmanager
        def edit():
            with self._lock():
                st = self._read_state(cid)
                yield st
                self._write_state(cid, st)

        return edit()

    def _rundir(self, cid: str) -> str:
        return os.path.join(self.base, cid)

    def _userdata(self, cid: str) -> str:
        return os.path.join(self.data, cid, "userdata")

    def conmon_pidfile(self, cid: str) -> str:
        """Where conmon writes its pid (a unit's PIDFile: ``generate systemd``)."""
        return os.path.join(self._rundir(cid), "conmon.pid")

    def log_path(self, cid: str, meta: dict | None = None) -> str:
        """conmon's k8s-file log (``--log-opt path=`` moves it)."""
        meta = meta or {}
        given = meta.get("log_path") or (meta.get("extra") or {}).get("log", {}).get("path")  # the CRI's, --log-opt's
        return given or os.path.join(self._userdata(cid), "ctr.log")

    def mount_root(self, cid: str, meta: dict, volatile: bool = False) -> str:
        """The container's root filesystem mounted: its store layer on the image's, or its
        ``--rootfs`` directory (bound by fd, or under an overlay with ``:O``)."""
        if meta.get("rootfs"):
            from . import rootfs as rootfs_mod

            return rootfs_mod.mount(self._rundir(cid), os.path.join(self.data, cid), meta["rootfs"])
        return self.store.mount_container(cid, volatile=volatile)

    def unmount_root(self, cid: str, meta: dict) -> None:
        if meta.get("rootfs"):
            from . import rootfs as rootfs_mod

            rootfs_mod.unmount(self._rundir(cid), os.path.join(self.data, cid), meta["rootfs"])
            return
        self.store.umount_container(cid, force=True)

    @staticmethod
    def check_has_layer(c: dict, verb: str) -> None:
        """``cp``, ``diff``, ``export``, ``commit`` read the container's store layer: a ``--rootfs``
        container has none (not supported yet)."""
        meta = c["metadata"][META]
        if meta.get("rootfs"):
            raise ContainerError(f"{verb}: container {meta['name']} runs on --rootfs {meta['rootfs']['path']}: not "
                                 "supported yet for such containers")

    def spec(self, cid: str) -> dict:
        """The runtime config generated at create (``_user``: the user to resolve at start)."""
        try:
            with open(os.path.join(self._userdata(cid), "spec.json"), "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            raise ContainerError(f"container {cid[:12]}: its generated config is missing or damaged") from None
        if not isinstance(doc, dict):
            raise ContainerError(f"container {cid[:12]}: its generated config is damaged")
        return doc

    def get(self, text: str) -> dict:
        """The store record (with ``metadata["pallet"]``) of a container by name, ID or prefix."""
        try:
            c = self.store.container(text)
        except NotFound:
            raise ContainerNotFound(f"no container with name or ID \"{text}\" found: no such container") from None
        if c.get("kind") != "container" or META not in (c.get("metadata") or {}):
            raise ContainerNotFound(f"no container with name or ID \"{text}\" found: no such container")
        return c

    def list(self) -> list[dict]:
        return [c for c in self.store.containers() if c.get("kind") == "container" and META in (c.get("metadata") or {})]

    def _read_state(self, cid: str) -> dict:
        try:
            with open(os.path.join(self._rundir(cid), "state.json"), "rb") as f:
                doc = json.loads(f.read())
            if isinstance(doc, dict):
                return doc
        except (OSError, ValueError):
            pass
        return {"state": CONFIGURED}

    def _write_state(self, cid: str, st: dict, create: bool = False) -> None:
        """``create``: the run directory is made (create, start); otherwise a container removed
        meanwhile (its directory gone) stays removed."""
        d = self._rundir(cid)
        if create:
            os.makedirs(d, 0o700, exist_ok=True)
        elif not os.path.isdir(d):
            return
        tmp = os.path.join(d, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, os.path.join(d, "state.json"))

    def _exit_code(self, cid: str) -> int | None:
        try:
            with open(os.path.join(self.exits, cid), "rb") as f:
                text = f.read(64).strip()
        except OSError:
            return None
        try:
            return int(text)
        except ValueError:
            return -1

    def state(self, cid: str) -> dict:
        """The container's state, brought up to date from conmon's exit file (and a conmon that
        died without writing one)."""
        st = self._read_state(cid)
        if st.get("state") == RUNNING:
            code = self._exit_code(cid)
            if code is None and st.get("conmon_pid") and not _alive(st["conmon_pid"]):
                code = self._exit_code(cid)
                if code is None:
                    code = -1
            if code is not None:
                with self._lock():
                    st = self._read_state(cid)
                    if st.get("state") == RUNNING:
                        st.update(state=EXITED, exit_code=code, finished_at=_now(), pid=0)
                        self._write_state(cid, st)
        return st

    @staticmethod
    def stopping(st: dict) -> bool:
        """A running container a live ``stop`` is waiting for (podman's "stopping" state); a
        stop that died on the way leaves it running."""
        pid = st.get("stopping")
        return st.get("state") == RUNNING and isinstance(pid, int) and pid > 0 and _alive(pid)

    # -- create -----------------------------------------------------------------------------

    def _image(self, o: Options, pull_fn):
        if o.pull not in ("missing", "always", "never", "newer"):
            raise UsageError(f"invalid --pull {o.pull!r}: want always, missing, never or newer")
        from ..images.refs import has_transport

        text = o.image
        if has_transport(text):
            if not text.startswith("docker://"):  # podman's: copied whatever --pull says (the
                return self.store.image(pull_fn(text))  # policy is for registries), by the new ID
            text = text[len("docker://"):]  # the policy applies to the name
        if o.pull not in ("always", "newer"):
            try:
                return self.store.image(text)
            except NotFound:
                if o.pull == "never":
                    raise ContainerError(f"{o.image}: image not known") from None
        return self.store.image(pull_fn(o.image))

    def create(self, o: Options, pull_fn, warn=None) -> dict:
        """A container from ``o`` (pulled when missing through ``pull_fn(image)``: the CLI's pull,
        so the trust policy applies). Nothing is left when it fails."""
        from ..containers.network import mode as netmode
        from ..containers.network import ports as netports
        from ..images.refs import has_transport

        from . import policies

        life = o.life or policies.LifeOptions(restart=o.restart)
        policies.parse_restart(life.restart)
        if o.rm and policies.parse_restart(life.restart)[0] != "no":
            raise UsageError("the --rm option conflicts with --restart, when the restartPolicy is not \"\" and \"no\"")
        if o.name is not None:
            check_name(o.name)
        if o.hostname is not None:
            check_hostname(o.hostname)
            try:
                self.store.container(o.name)
            except NotFound:
                pass
            else:
                raise ContainerError(f"creating container storage: the container name \"{o.name}\" is already in "
                                     "use by another container. You have to remove that container to be able to "
                                     "reuse that name: that name is already in use")
        from . import conf as conf_mod
        from . import options as extra_opts
        from . import runflags

        run_meta = runflags.meta(o.runflags)

        conf = conf_mod.load(cache_dir=self.base)  # cached in the run root (keyed by the files)
        if not o.networks and conf.get("netns") in ("host", "none"):  # containers.conf's default mode
            o.networks = [conf.get("netns")]
        from . import rootless

        # rootless: slirp4netns by default; what it cannot do yet refused before anything is made
        o.networks = rootless.check_network(o.networks)
        if o.extra is not None:
            rootless.check_userns(o.extra.userns, o.extra.uidmap, o.extra.gidmap)
        runtime = runtime_path(o.runtime, conf)
        networks = self._networks(o)
        mode = netmode.parse(o.networks or ["bridge"], networks if networks is not None and not (
            o.networks and o.networks[0] in ("none", "host")) else None)
        mappings = _discard_ports(netports.parse_all(o.publish) if o.publish else [], mode.kind, warn)
        if mode.kind == "slirp4netns":
            from .network.sandbox import check_slirp_ports

            check_slirp_ports(mappings)
        memory = _parse_memory(o.memory) if o.memory else None
        cpus = None
        if o.cpus:
            try:
                cpus = float(o.cpus)
            except ValueError:
                raise UsageError(f"invalid --cpus {o.cpus!r}: want a number of CPUs") from None
            if not 0 < cpus <= 4096:
                raise UsageError(f"invalid --cpus {o.cpus!r}: out of range")
        stop_signal = 15
        if o.stop_signal:
            from ..runtime.container import parse_signal
            from ..errors import OCIRuntimeError

            try:
                stop_signal = parse_signal(o.stop_signal)
            except OCIRuntimeError:
                raise UsageError(f"invalid --stop-signal {o.stop_signal!r}") from None
        for e in o.env:
            if "=" not in e or e.startswith("=") or "\0" in e:
                raise UsageError(f"invalid --env {e!r}: want KEY=VALUE")
        extra = extra_opts.resolve(o.extra or extra_opts.Extra(), conf, mode.kind, warn)
        if extra["log"]["driver"] == "journald":
            check_journal()
        for kind, v in extra["namespaces"].items():  # container:NAME -> container:ID (it must exist)
            if isinstance(v, str) and v.startswith("container:"):
                extra["namespaces"][kind] = "container:" + self.get(v[len("container:"):])["id"]
        binds = [_volume(v) for v in o.volumes]
        tmpfs = [_tmpfs(t) for t in o.tmpfs]
        for m in (o.extra.mounts if o.extra else ()):
            m = extra_opts.parse_mount(m)
            (tmpfs if m.pop("tmpfs", False) else binds).append(m)
        pids_limit = o.pids_limit if o.pids_limit is not None else conf.get("pids_limit")
        if rootless.no_cgroups():  # podman's rule: the limits are dropped, with its warning
            if (memory or cpus or o.pids_limit) and warn:
                warn(rootless.LIMITS_IGNORED)
            memory, cpus, pids_limit = None, None, 0
        rootfs_spec = None
        if o.rootfs is not None:  # no image: the directory is the root (containers/rootfs.py)
            from . import rootfs as rootfs_mod

            rootfs_spec = rootfs_mod.parse(o.rootfs)
            if extra.get("userns"):
                raise UsageError("--rootfs with a user namespace (--userns, --uidmap, containers.conf's userns) is "
                                 "not supported yet")
            image, img_cfg = {"id": "", "names": [], "digest": ""}, {"Env": [DEFAULT_PATH_ENV]}
        else:
            image = self._image(o, pull_fn)
            img_cfg = self.image_config(image)
        if o.publish_all:  # -P: the image's EXPOSE ports too, each on a free host port
            mappings = _discard_ports(netports.parse_all(o.publish, list(img_cfg.get("ExposedPorts") or {}), True),
                                      mode.kind, warn)
        name = o.name or self.unused_name()
        labels = img_cfg.get("Labels") if isinstance(img_cfg.get("Labels"), dict) else {}
        labels = {str(k): str(v) for k, v in labels.items()}
        labels.update(o.labels)  # the image's labels, the user's over them (podman's)
        meta = {"name": name, "image_name": o.image, "image_id": image["id"], "command": o.command,
                "entrypoint": o.entrypoint, "env": o.env, "user": o.user, "workdir": o.workdir,
                "networks": o.networks or ["bridge"], "network_mode": mode.kind, "publish": mappings,
                "network_config_dir": networks.config_dir if networks is not None else None,
                "hostname": o.hostname, "cap_add": o.cap_add, "cap_drop": o.cap_drop, "privileged": o.privileged,
                "read_only": o.read_only, "tmpfs": tmpfs, "binds": binds, "memory": memory, "cpus": cpus,
                "pids_limit": pids_limit, "stop_signal": stop_signal, "labels": labels, "rm": o.rm,
                "image_digest": image.get("digest"), "create_command": o.create_command,
                "interactive": o.interactive, "tty": o.tty, "runtime": runtime,
                "publish_all": bool(o.publish_all), "created_at": _now(), "extra": extra,
                "cgroup_parent": cgroup_parent(o.cgroup_parent), "pod": o.pod}
        meta.update(policies.meta(life, img_cfg, o.rm))
        meta.update(run_meta)
        meta["image_ref"] = resolved_name(o.image, image)
        if rootfs_spec is not None:  # podman's: no image name, no digest
            meta.update(image_name="", image_ref="", image_digest="", rootfs=rootfs_spec)
        if has_transport(o.image):  # podman's: the image as pulled, by its first name (else its ID)
            meta["image_name"] = meta["image_ref"] = (image.get("names") or [image["id"]])[0]
        from . import mounts as ctr_mounts

        ctr_mounts.add_volumes_from(self.get, o.extra.volumes_from if o.extra else (), meta)
        ctr_mounts.add_image_volumes(meta, img_cfg)
        ctr_mounts.set_sources(self.store, meta)
        # the command and options checked before anything is made
        meta["args"] = self._spec("0" * 64, meta, img_cfg)["process"]["args"]
        uns = extra.get("userns")
        if not uns:
            if any(b.get("idmap") for b in binds):
                raise UsageError("-v ...:idmap needs a user namespace of the container's own (--uidmap, --userns "
                                 "auto, ...)")
            return self.create_record(image["id"], name, meta, lambda cid: self._spec(cid, meta, img_cfg))
        from . import userns as userns_mod

        if uns["mode"] == "ns":
            uns["uid"], uns["gid"] = userns_mod.read_ns_maps(uns["path"])
        if uns["mode"] == "container":  # podman's: that container's namespace, so its maps
            other = self.get(uns["target"])
            ouns = (other["metadata"][META].get("extra") or {}).get("userns")
            if not ouns or not ouns.get("uid"):
                raise UsageError(f"--userns container:{uns['target']}: that container has no user namespace of "
                                 "its own (it runs in the host's)")
            uns.update(target=other["id"], uid=ouns["uid"], gid=ouns["gid"])
        if uns["mode"] == "keep-id":  # rootless: the user is itself inside, and runs as itself
            uns.update(rootless.keep_id_maps())
            if not meta["user"]:  # its gid and groups from the passwd and group entries added at start
                meta["user"] = str(uns["uid"][1][0])
        if uns["mode"] != "auto":
            return self.create_record(image["id"], name, meta, lambda cid: self._spec(cid, meta, img_cfg),
                                      idmap=uns)
        size = uns["size"] or userns_mod.auto_size(*self.store.image_max_ids(image["id"]))
        with self._lock():  # no other auto container takes the same ids meanwhile
            uns.update(userns_mod.allocate(size, [c["idmap"] for c in self.store.containers() if c.get("idmap")]))
            return self.create_record(image["id"], name, meta, lambda cid: self._spec(cid, meta, img_cfg),
                                      idmap=uns)

    def create_record(self, image_id: str, name: str, meta: dict, make_spec, idmap: dict | None = None) -> dict:
        """The store container, its directories, ``spec.json`` (``make_spec(cid)``: a runtime
        config whose ``_user`` is resolved at start) and state: what ``create`` and the CRI
        server's CreateContainer share. ``meta`` holds what start, stop and cleanup read (name,
        runtime, network_mode and networks, publish, cap_add/cap_drop/privileged, tty,
        interactive, rm, stop_signal; ``log_path``, ``supplemental_groups`` optional). ``idmap``
        (``{"uid": MAP, "gid": MAP}``): a user namespace's ids, the store's layers mounted
        id-mapped to them (mounted once here: a kernel that cannot is refused now, and the
        user must be in the maps). Nothing is left when it fails."""
        try:
            idmap = {"uid": idmap["uid"], "gid": idmap["gid"]} if idmap else None
            rec = self.store.create_container(image_id, name, kind="container", metadata={META: meta}, idmap=idmap)
        except PalletError as e:
            if "already in use" in str(e):
                raise ContainerError(f"the container name \"{name}\" is already in use") from None
            raise
        cid = rec["id"]
        from . import mounts as ctr_mounts

        try:
            ctr_mounts.claim(self.store, cid, meta)
            os.makedirs(self._userdata(cid), 0o700, exist_ok=True)
            spec = make_spec(cid)
            user = spec["_user"]
            if idmap or (user and not all(p.isascii() and p.isdigit() for p in user.split(":"))):  # a name: check it
                os.makedirs(self._rundir(cid), 0o700, exist_ok=True)
                rootfs = self.mount_root(cid, meta)
                try:
                    uid, gid, _ = self.resolve_user(rootfs, user or "0")
                finally:
                    self.unmount_root(cid, meta)
                if idmap:
                    from .userns import check_user

                    check_user(idmap, uid, gid, user)
            # the generated config (what needs the rootfs and network is added at start): in the
            # container's own directory, so the store's records are written once
            _write_file(os.path.join(self._userdata(cid), "spec.json"), json.dumps(spec))
            self._write_state(cid, {"state": CONFIGURED}, create=True)
        except BaseException:
            ctr_mounts.release(self.store, cid, meta, remove_anonymous=True)
            self._forget(cid)
            raise
        rec["metadata"][META] = meta
        return rec

    def unused_name(self) -> str:
        """A random adjective_noun no container has (podman's names generator retries too)."""
        taken = {n for c in self.store.containers() for n in c.get("names") or ()}
        for _ in range(50):
            name = _random_name()
            if name not in taken:
                return name
        return f"{_random_name()}_{os.urandom(3).hex()}"

    def _networks(self, o: Options):
        if o.networks and (o.networks[0] in ("none", "host") or o.networks[0].startswith("slirp4netns")):
            return None  # no network of netavark's
        from .network.config import Networks, default_config_dir

        d = o.network_config_dir or default_config_dir(self.store.graphroot if rootless_uid() is not None else None)
        nets = Networks(d)
        nets.config_dir = d
        return nets

    def image_config(self, image: dict) -> dict:
        """The image's ``config`` part (Entrypoint, Cmd, Env...)."""
        from ..storage.info import run_config

        try:
            return run_config(self.store, image)
        except PalletError:
            raise ContainerError(f"image {str(image.get('id', '?'))[:12]}: its config cannot be read") from None

    def _spec(self, cid: str, meta: dict, img_cfg: dict) -> dict:
        """The runtime config minus what needs the rootfs and the network (added at start)."""
        from ..oci import runtime_spec as rs

        res = None
        pids = meta["pids_limit"]
        pids = DEFAULT_PIDS_LIMIT if pids is None else (pids if pids > 0 else None)
        if meta["memory"] or meta["cpus"] or pids:
            quota = int(meta["cpus"] * 100000) if meta["cpus"] else None
            res = rs.Resources(memory=meta["memory"] or None, cpu_quota=quota,
                               cpu_period=100000 if quota else None, pids_limit=pids)
        env = ["container=pallet"] + list(meta["env"])
        hostname = meta["hostname"] or cid[:12]
        entrypoint = None
        if meta["entrypoint"] is not None:
            entrypoint = _entrypoint(meta["entrypoint"])
        # the container's own cgroups at /sys/fs/cgroup, read-only unless privileged (podman's)
        mounts = [rs.Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("rprivate", "nosuid", "noexec", "nodev", "relatime")
                           + (() if meta["privileged"] else ("ro",)))]
        mounts += [rs.Mount.tmpfs(t["destination"], options=tuple(t["options"])) for t in meta["tmpfs"]]
        mounts += [rs.Mount.bind(b["source"], b["destination"], readonly=b["readonly"], options=b.get("options", ()))
                   for b in meta["binds"]]
        more = {}
        if meta.get("extra"):
            from .options import spec_options

            more = spec_options(meta["extra"], meta["privileged"], meta["cap_add"], meta["cap_drop"])
            mounts = list(more.pop("mounts", ())) + mounts
        o = rs.SpecOptions(rootfs="rootfs", command=meta["command"], entrypoint=entrypoint, env=env,
                           user=meta["user"] if meta["user"] else None, workdir=meta["workdir"],
                           terminal=meta["tty"], hostname=hostname, mounts=mounts, cap_add=meta["cap_add"],
                           cap_drop=meta["cap_drop"], privileged=meta["privileged"],
                           readonly_rootfs=meta["read_only"], resources=res,
                           cgroups_path=f"{meta.get('cgroup_parent') or '/pallet_parent'}/pallet-{cid}", **more)
        # the user is resolved at start (the rootfs' passwd, by fd); here only the shape is checked
        doc = rs.generate(o, img_cfg, resolve_user=lambda spec: (0, 0, []))
        rules = (meta.get("extra") or {}).get("device_cgroup_rules")
        if rules:  # --device-cgroup-rule: after the default deny and the devices' own rules
            doc["linux"].setdefault("resources", {}).setdefault("devices", []).extend(rules)
        doc["_user"] = meta["user"] if meta["user"] else (img_cfg.get("User") or "")
        return doc

    # -- start ------------------------------------------------------------------------------

    def resolve_user(self, rootfs: str, spec: str):
        from .._rootfs import open_file_in_root
        from ..oci.users import lookup, parse_db

        rfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            def read_db(name):
                try:  # a device node there is not even opened
                    fd = open_file_in_root(rfd, f"/etc/{name}", os.O_RDONLY | os.O_NONBLOCK)
                except (FileNotFoundError, NotADirectoryError):
                    return []
                if fd is None:
                    return []
                try:
                    return parse_db(os.read(fd, 4 << 20).decode("utf-8", "replace"))
                finally:
                    os.close(fd)

            return lookup(spec, read_db("passwd"), read_db("group"), ContainerError)
        finally:
            os.close(rfd)

    def start(self, text: str, *, attach: bool = False, stdin: bool = False, warn=None,
              restart_count: int = 0, preserve_fds: int = 0) -> dict:
        """Mount, network, write the bundle and start through conmon. With ``attach`` the
        caller gets the attach socket in ``rec["attach"]`` before the process runs;
        ``preserve_fds``: pallet's fds 3 .. 2+N are the container's too (``--preserve-fds``)."""
        from ..oci import runtime_spec as rs
        from . import conmon

        c = self.get(text)
        cid, meta = c["id"], c["metadata"][META]
        infra = (meta.get("pod") or {}).get("infra_id")
        if infra and self.state(cid).get("state") != RUNNING and self.state(infra).get("state") != RUNNING:
            self.start(infra, warn=warn)  # a pod's member: the pod's infra container first (podman's)
        with self._lock():
            st = self.state(cid)
            if st.get("state") == RUNNING:
                raise ContainerStateError(f"container {meta['name']} is already running")
            self.check_not_starting(cid, st, meta)
            if restart_count and st.get("stopped_by_user"):
                raise ContainerStateError(f"container {meta['name']} was stopped: its restart policy does not apply")
            st = {"state": CONFIGURED, "started_at": None, "finished_at": None, "exit_code": None, "oci": False,
                  "starting": os.getpid(), "restart_count": restart_count}
            self._write_state(cid, st, create=True)
        try:
            os.unlink(os.path.join(self.exits, cid))
        except FileNotFoundError:
            pass
        rundir = self._rundir(cid)
        userdata = self._userdata(cid)
        cleanup = []
        net = None
        try:
            self._hold(cid)  # before conmon: its exit command waits for this start (see cleanup)
            # the network is set up (netavark: its iptables calls are most of a bridge's start) while
            # this thread mounts and writes the bundle; joined before anything needs it
            # a user namespace first: the network namespace is made inside it
            userns_path = self._userns_path(cid, st, meta)
            net = self._network_up(cid, meta, warn, userns=userns_path)
            # a --rm container's writes need not survive a crash: no sync of its layer (podman's)
            rootfs = self.mount_root(cid, meta, volatile=bool(meta.get("rm")))
            st["mounted"] = True
            self._write_state(cid, st)
            from . import mounts as ctr_mounts

            st["volumes"] = ctr_mounts.mount_all(self.store, meta)
            if st["volumes"]:
                self._write_state(cid, st)
            ctr_mounts.copy_up(self.store, rootfs, meta)
            from .etc_hosts import add_mtab
            from .userns import container_root

            add_mtab(rootfs, container_root(meta))
            uns = (meta.get("extra") or {}).get("userns") or {}
            if uns.get("mode") == "keep-id":  # podman's passwd and group entries for the user
                from .rootless import keep_id_entries

                keep_id_entries(rootfs, uns["uid"][1][0], uns["gid"][1][0], meta.get("workdir"))
            doc = self.spec(cid)
            from .policies import apply_to_spec

            apply_to_spec(doc, meta)  # --init
            user_spec = doc.pop("_user", "")
            uid, gid, extra = self.resolve_user(rootfs, user_spec or "0")
            from .userns import host_ids

            ctr_mounts.first_use_owner(self.store, rootfs, meta, host_ids(meta, uid, gid))
            if any(b.get("chown") for b in meta["binds"]):  # -v ...:U
                ctr_mounts.chown_sources(meta, *host_ids(meta, uid, gid))
            doc["process"]["user"] = {"uid": uid, "gid": gid}
            extra = list(extra) + [g for g in meta.get("supplemental_groups") or () if g not in extra]
            if extra:
                doc["process"]["user"]["additionalGids"] = extra
            if uid != 0:
                default = (meta.get("extra") or {}).get("default_caps") or rs.DEFAULT_CAPS
                caps = rs.capabilities(default, meta["cap_add"], meta["cap_drop"],
                                       privileged=meta["privileged"], uid=uid)
                doc["process"]["capabilities"] = caps
            if meta["privileged"] or "ALL" in [c.upper() for c in meta["cap_add"]]:
                # every capability pallet itself may hand on: its bounding set (podman's rule)
                have = bounding_set()
                caps = doc["process"]["capabilities"]
                for k in caps:
                    caps[k] = [c for c in caps[k] if c in have]
            doc["root"]["path"] = rootfs
            # the network: its namespace is known now; netavark's addresses (for /etc/hosts and
            # resolv.conf) are waited for only after the runtime's create, before its start
            mode_kind = meta["network_mode"]
            st["netns"] = net.netns_path
            st["netns_owned"] = net.owned
            self._userns_spec(meta, doc, userns_path)
            self._write_state(cid, st)
            ns = [n for n in doc["linux"]["namespaces"] if n["type"] != "network"]
            if mode_kind != "host":
                ns.append({"type": "network", "path": net.netns_path})
            from .rootless import adjust_mounts

            adjust_mounts(doc, mode_kind == "host")
            doc["linux"]["namespaces"] = ns
            joined_host = self._join_containers(meta, doc)
            hostname = joined_host or doc.get("hostname") or cid[:12]
            if not any(n["type"] == "uts" for n in doc["linux"]["namespaces"]):  # --uts host
                hostname = os.uname().nodename  # gethostname(2)
            for f in _ETC:  # bound at create, filled in place (the same inode) before the start
                os.close(os.open(os.path.join(userdata, f), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o644))
            if (meta.get("extra") or {}).get("userns"):  # the container's root may edit them, as podman's
                from .userns import chown_to_root

                chown_to_root(meta["extra"]["userns"], [os.path.join(userdata, f) for f in _ETC])
            etc = [rs.Mount.bind(os.path.join(userdata, f), "/etc/" + f).to_dict()
                   for f in _ETC
                   # podman: no resolver without a network; --no-hosts: the image's /etc/hosts
                   if (f != "resolv.conf" or mode_kind != "none") and (f != "hosts" or not meta.get("no_hosts"))]
            env_file = os.path.join(userdata, ".containerenv")  # podman's marker (its fields: privileged only)
            _write_file(env_file, _containerenv(cid, meta))
            etc.append(rs.Mount.bind(env_file, "/run/.containerenv").to_dict())
            mine = {m["destination"] for m in doc["mounts"]}
            doc["mounts"] += [m for m in etc if m["destination"] not in mine]
            ctr_mounts.check_workdir(rootfs, cid, meta.get("workdir"), [m["destination"] for m in doc["mounts"]])
            with open(os.path.join(userdata, "config.json"), "w") as f:
                json.dump(doc, f)
            # conmon
            os.makedirs(rundir, 0o700, exist_ok=True)
            oci_log = os.path.join(rundir, "oci-log")
            for p in (oci_log, os.path.join(rundir, "pidfile"), os.path.join(rundir, "conmon.pid")):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            runtime = meta["runtime"]
            log_arg = _log_arg(self.log_path(cid, meta), meta)
            if log_arg.startswith("k8s-file:"):
                ready_log_file(log_arg[len("k8s-file:"):])
            args = ["--api-version", "1", "-c", cid, "-u", cid, "-r", runtime, "-b", userdata,
                    "-p", os.path.join(rundir, "pidfile"), "-n", meta["name"], "--exit-dir", self.exits,
                    "--full-attach", "--persist-dir", rundir]
            for flag in self.runtime_flags:  # podman's place for them: before the rest
                args += ["--runtime-arg", flag]
            args += ["--runtime-arg", "--root", "--runtime-arg", self.oci_root,
                    "-l", log_arg, "--log-level", "error",
                    "--runtime-arg", "--log-format=json", "--runtime-arg", "--log", "--runtime-arg", oci_log,
                    "--conmon-pidfile", os.path.join(rundir, "conmon.pid")]
            log = (meta.get("extra") or {}).get("log") or {}
            if log.get("max_size"):
                args += ["--log-size-max", str(log["max_size"])]
            if log.get("tag"):  # journald's CONTAINER_TAG and SYSLOG_IDENTIFIER
                args += ["--log-tag", log["tag"]]
            if meta["tty"]:
                args.append("-t")
            elif meta["interactive"]:
                args.append("-i")
            exit_cmd = self._exit_command(cid, rm=meta["rm"])  # a foreground run holds it: see _hold
            args += ["--exit-command", exit_cmd[0]]
            for a in exit_cmd[1:]:
                args += ["--exit-command-arg", a]
            from . import runflags

            args += runflags.conmon_args(meta, preserve_fds)
            fds = runflags.check_preserved_fds(preserve_fds)
            from .network.ports import reserve

            # conmon keeps them: the ports stay the container's (slirp4netns binds its own)
            held = reserve(meta.get("publish") or []) if mode_kind != "slirp4netns" else []
            cleanup.append(lambda: [s.close() for s in held])
            st["oci"] = True  # from here the runtime may have it: deleted on teardown
            pid = conmon.start(args, runtime=runtime, oci_log=oci_log, err_path=os.path.join(rundir, "conmon.err"),
                               pass_fds=fds + tuple(s.fileno() for s in held), cwd=rundir)
            for s in held:
                s.close()
            st.update(state=CREATED, pid=pid, conmon_pid=read_int(os.path.join(rundir, "conmon.pid")))
            sandbox = net.result()  # netavark ran alongside conmon and the runtime's create
            net = None
            st["network_results"] = _results(sandbox.results)
            self._write_state(cid, st)
            ips = [s["ipnet"].split("/")[0] for r in st["network_results"].values() for i in r["interfaces"]
                   for s in i["subnets"]]
            dns = [d for r in st["network_results"].values() for d in r["dns_server_ips"]]
            if mode_kind == "slirp4netns":  # podman's: slirp4netns' resolver first
                from .network.sandbox import SLIRP_DNS

                dns = [SLIRP_DNS]
            gateways = [s["gateway"] for r in st["network_results"].values() for i in r["interfaces"]
                        for s in i["subnets"] if s.get("gateway")]
            _write_etc(userdata, hostname, meta["name"], ips, dns, mode_kind == "host", meta.get("extra"),
                       gateways[0] if gateways else None)
            sock = conmon.attach_socket(userdata) if attach else None
            cleanup.append(lambda: sock and sock.close())
            self.runtime_command(meta, "start", cid)
            st.update(state=RUNNING, started_at=_now(), starting=None)
            with self._lock():
                self._write_state(cid, st)
            runflags.after_start(meta, pid, st.get("conmon_pid"))
            if not (attach and meta.get("rm")):  # a foreground run --rm keeps it until it removed it
                self._release(cid)
            out = dict(c)
            out["attach"] = sock
            return out
        except BaseException:
            if net is not None:  # its namespace and attachments are torn down with the rest
                try:
                    sandbox = net.result()
                except BaseException:  # noqa: BLE001 - it removed what it made; the first error is raised
                    pass
                else:
                    st.update(netns=sandbox.netns_path, netns_owned=sandbox.owned,
                              network_results=_results(sandbox.results))
            for f in cleanup:
                try:
                    f()
                except OSError:
                    pass
            self._release(cid)
            self._teardown(cid, st, meta)
            with self._lock():
                st.update(state=CREATED, pid=0, starting=None)
                self._write_state(cid, st)
            raise

    def _userns_path(self, cid: str, st: dict, meta: dict) -> str | None:
        """A user namespace (``--uidmap``, ``--userns auto``): made now, kept by a file the
        config names for the runtime to join and the network namespace
        belongs to; ``ns:PATH``: that file. Its path, or None."""
        uns = (meta.get("extra") or {}).get("userns")
        if not uns:
            return None
        if uns["mode"] == "ns":
            path = uns["path"]
        elif uns["mode"] == "container":
            ost = self.state(uns["target"])
            if ost.get("state") != RUNNING or not ost.get("pid"):
                name = self.get(uns["target"])["metadata"][META]["name"]
                raise ContainerStateError(f"--userns container:{name}: that container is not running")
            path = ost.get("userns") or f"/proc/{ost['pid']}/ns/user"
        else:
            from .userns import create_ns

            path = create_ns(self.store.runroot, cid[:12], uns)
            st["userns"] = path
            self._write_state(cid, st)
        return path

    @staticmethod
    def _userns_spec(meta: dict, doc: dict, path: str | None) -> None:
        """The config's user namespace (``path``, from ``_userns_path``) and its maps."""
        if path is None:
            return
        uns = meta["extra"]["userns"]
        lx = doc["linux"]
        lx["namespaces"] = [n for n in lx["namespaces"] if n["type"] != "user"] + [{"type": "user", "path": path}]
        # the maps stay: they are the namespace's, and runc 1.1 wants them even for one it joins
        lx["uidMappings"] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in uns["uid"]]
        lx["gidMappings"] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in uns["gid"]]
        idmapped = {b["destination"] for b in meta["binds"] if b.get("idmap")}
        for m in doc["mounts"]:  # -v ...:idmap: the source's ids seen through these maps
            if m["destination"] in idmapped and m.get("type") == "bind":
                m["uidMappings"], m["gidMappings"] = lx["uidMappings"], lx["gidMappings"]

    def _network_up(self, cid: str, meta: dict, warn=None, userns: str | None = None):
        """The container's network sandbox (a namespace, netavark's attachments): a handle whose
        ``join()`` gives it, netavark's part running in a thread meanwhile (see start)."""
        from .network import mode as netmode
        from .network import sandbox as sb

        networks = None
        if meta["network_config_dir"]:
            from .network.config import Networks

            networks = Networks(meta["network_config_dir"])
        mode = netmode.parse(meta["networks"], networks)
        if networks is not None and mode.kind == "bridge":
            networks.ensure_default()
        if networks is not None:
            from .network.endpoints import Endpoints

            endpoints = Endpoints(networks, self.store.runroot)
        else:
            endpoints = _NoEndpoints(self)
        return sb.setup(endpoints, cid, meta["name"], mode, meta["publish"], warn=warn, background=_submit,
                          userns=userns)

    def _join_containers(self, meta: dict, doc: dict) -> None:
        """``--pid``/``--ipc``/``--uts``/``--cgroupns container:ID``: that running container's
        namespace (``/proc/PID/ns/TYPE``). Returns the hostname of the container whose UTS
        namespace is joined (whose hostname this one must not change), else None."""
        joined_host = None
        for kind, v in ((meta.get("extra") or {}).get("namespaces") or {}).items():
            if not (isinstance(v, str) and v.startswith("container:")):
                continue
            try:
                other = self.get(v[len("container:"):])
            except ContainerNotFound:
                raise ContainerError(f"--{'cgroupns' if kind == 'cgroup' else kind} {v}: that container no longer "
                                     "exists") from None
            ost = self.state(other["id"])
            pid = ost.get("pid")
            if ost.get("state") != RUNNING or not pid or not _alive(pid):
                raise ContainerStateError(f"cannot join the {kind} namespace of container {other['id'][:12]}: it is "
                                          f"not running: container state improper")
            path = f"/proc/{pid}/ns/{kind}"
            for n in doc["linux"]["namespaces"]:
                if n["type"] == kind:
                    n["path"] = path
            if kind == "uts":
                doc.pop("hostname", None)
                env = doc["process"]["env"]
                env[:] = [e for e in env if not e.startswith("HOSTNAME=")]
                joined_host = other["metadata"][META].get("hostname") or other["id"][:12]
        return joined_host

    def check_not_starting(self, cid: str, st: dict, meta: dict) -> None:
        """Another live pallet process is starting it: the caller must not change it now."""
        pid = st.get("starting")
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise ContainerStateError(f"container {meta['name']} is being started by another pallet process "
                                      f"(pid {pid}): container state improper")

    def _exit_command(self, cid: str, rm: bool) -> list[str]:
        import sys

        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        if not os.access(exe, os.X_OK):
            import shutil

            exe = shutil.which("pallet")
        if not exe:
            raise ContainerError("the pallet command is not installed: conmon could not clean up after the "
                                 "container (install pallet's console script)")
        cmd = [exe] + self.global_args + ["container", "cleanup"]
        if rm:
            cmd.append("--rm")
        return cmd + [cid]

    def runtime_argv(self, runtime: str) -> list[str]:
        """The runtime with the global flags and its state root: the start of every call."""
        return [runtime] + self.runtime_flags + ["--root", self.oci_root]

    def runtime_command(self, meta: dict, *args, check: bool = True):
        from .._std import proc

        p = proc.run(self.runtime_argv(meta["runtime"]) + list(args), capture_output=True,
                     stdin=proc.DEVNULL)
        if check and p.returncode != 0:
            msg = " ".join(p.stderr.decode("utf-8", "replace").split())
            raise ContainerError(f"{os.path.basename(meta['runtime'])} {args[0]}: {msg or 'exit ' + str(p.returncode)}")
        return p

    def _runtime_spawn(self, meta: dict, *args):
        """The runtime running ``args`` (its output dropped): the caller waits for it."""
        from .._std import proc

        return proc.Popen(self.runtime_argv(meta["runtime"]) + list(args), stdin=proc.DEVNULL,
                          stdout=proc.DEVNULL, stderr=proc.DEVNULL)

    # -- stop, kill, wait, cleanup, rm ---------------------------------------------------------

    def wait(self, text: str, timeout: float | None = None) -> int:
        """The container's exit code once it has exited (``timeout``: TimeoutError after that
        many seconds). No polling: woken by a change of the exit directory (conmon writes the
        exit file there; a removal deletes it) or by conmon's death (no exit file then)."""
        c = self.get(text)
        cid = c["id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = None
        try:
            while True:
                st = self.state(cid)
                if st.get("state") in (EXITED, STOPPED):
                    code = st.get("exit_code")
                    return -1 if code is None else code
                if st.get("state") in (CONFIGURED, CREATED) and not st.get("pid"):
                    code = st.get("exit_code")
                    return -1 if code is None else code
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                if watch is None:  # armed, then the state read again: no change is missed
                    watch = _ExitWatch(self.exits, st.get("conmon_pid"))
                    continue
                watch.wait(left)
        finally:
            if watch is not None:
                watch.close()

    def kill(self, text: str, signal: int = 9) -> str:
        c = self.get(text)
        st = self.state(c["id"])
        if st.get("state") != RUNNING:
            raise ContainerStateError(f"can only kill running containers. {c['id'][:12]} is in state "
                                      f"{st.get('state')}: container state improper")
        p = self.runtime_command(c["metadata"][META], "kill", c["id"], str(signal), check=False)
        if p.returncode != 0 and self.state(c["id"]).get("state") == RUNNING:
            raise ContainerError(f"sending signal {signal} to {c['id'][:12]}: "
                                 f"{' '.join(p.stderr.decode('utf-8', 'replace').split())}")
        return c["id"]

    def signal(self, cid: str, signum: int) -> None:
        """Send ``signum`` to a running container, quietly (the signal proxy of a foreground run)."""
        try:
            c = self.get(cid)
        except ContainerNotFound:
            return
        if self._read_state(c["id"]).get("state") == RUNNING:
            self.runtime_command(c["metadata"][META], "kill", c["id"], str(signum), check=False)

    def stop(self, text: str, timeout: float | None = None, warn=None) -> str:
        from .policies import before_stop

        c = self.get(text)
        cid, meta = c["id"], c["metadata"][META]
        before_stop(self, cid, meta)  # no restart policy after a stop; a paused one is thawed
        if self.state(cid).get("state") == RUNNING:
            t = meta.get("stop_timeout", 10) if timeout is None else timeout
            with self.editing_state(cid) as st:  # podman's "stopping" while this waits (see stopping())
                if st.get("state") == RUNNING:
                    st["stopping"] = os.getpid()
            if t > 0:
                self.runtime_command(meta, "kill", cid, str(meta["stop_signal"]), check=False)
                try:
                    self.wait(cid, t)
                except TimeoutError:
                    if warn:
                        warn(f"StopSignal {_signal_name(meta['stop_signal'])} failed to stop container "
                             f"{meta['name']} in {t} seconds, resorting to SIGKILL")
            if self.state(cid).get("state") == RUNNING:
                self.runtime_command(meta, "kill", cid, "9", check=False)
                try:
                    self.wait(cid, 30)
                except TimeoutError:
                    raise ContainerError(f"container {cid[:12]} did not stop after SIGKILL") from None
            with self._lock():
                st = self._read_state(cid)
                st["state"] = EXITED if st.get("state") in (STOPPED, RUNNING) else st.get("state")
                st.pop("stopping", None)
                self._write_state(cid, st)
        self.cleanup(cid)
        return cid

    def _teardown(self, cid: str, st: dict, meta: dict, meanwhile=None) -> None:
        """Delete the runtime's container, tear the network down, unmount: every step tried.

        The runtime's ``delete`` (a process of its own) and the network's teardown (netavark's,
        in a thread) run while this thread unmounts; then, the network torn down and the
        unmounts done, ``meanwhile()`` runs while the runtime may still be deleting (``remove``
        drops the store's record there: a container gone from ``ps`` has no address, veth or
        mount left). It returns when all of them are done."""
        errors = []
        delete = None
        if st.get("oci", True):
            delete = self._runtime_spawn(meta, "delete", "--force", cid)
            st["oci"] = False
        net = None
        net_failed = False  # then the state keeps the namespace: a later cleanup or rm tries again
        if st.get("netns") is not None or st.get("network_results") or meta.get("network_config_dir"):
            netns_path, owned = st.get("netns"), bool(st.get("netns_owned"))
            if meta.get("network_config_dir"):
                net = _submit(lambda: self._network_down(cid, meta, netns_path, owned))
            elif owned and netns_path:  # none: only a namespace file to unmount (no thread for that)
                try:
                    self._network_down(cid, meta, netns_path, owned)
                except (PalletError, OSError) as e:
                    errors.append(str(e))
                    net_failed = True
        try:
            if st.get("volumes"):
                from . import mounts as ctr_mounts

                errors += ctr_mounts.unmount_all(self.store, st["volumes"])
                st["volumes"] = []
            if st.get("mounted"):
                try:
                    self.unmount_root(cid, meta)
                except (PalletError, OSError) as e:
                    errors.append(str(e))
                st["mounted"] = False
        finally:
            if net is not None:
                try:
                    net.result()
                except (PalletError, OSError) as e:
                    errors.append(str(e))
                    net_failed = True
        if not net_failed:
            st["netns"] = None
            st["network_results"] = {}
        if st.get("userns"):  # after the network namespace it owns
            from .userns import remove_ns

            try:
                remove_ns(st["userns"])
            except PalletError as e:
                errors.append(str(e))
            st["userns"] = None
        try:
            if meanwhile is not None and not errors:
                meanwhile()
        finally:
            if delete is not None:
                delete.wait()
        if errors:
            raise ContainerError(f"cleaning up container {cid[:12]}: {'; '.join(errors)}")

    def _network_down(self, cid: str, meta: dict, netns_path: str | None, owned: bool) -> None:
        from .network import sandbox as sb

        if meta.get("network_config_dir"):
            from .network.config import Networks
            from .network.endpoints import Endpoints

            ep = Endpoints(Networks(meta["network_config_dir"]), self.store.runroot)
            sb.teardown(ep, cid, netns_path, owned)
        elif owned and netns_path:
            from .network import netns

            try:
                if meta.get("network_mode") == "slirp4netns":
                    sb.stop_slirp4netns(netns_path)
            finally:
                netns.remove(netns_path)

    # -- the foreground run's hold on its container --------------------------------------------

    def _owner_lock(self, cid: str) -> str:
        return os.path.join(self._rundir(cid), "owner.lock")

    def _hold(self, cid: str) -> None:
        """This process starts the container: conmon's exit command (``cleanup``) waits on this
        lock, so it never tears down a start under way (no polling of the starter's pid). A
        foreground ``run --rm`` keeps it until it has read the exit code and removed the
        container: the removal is done once, by that run, or by the exit command when the run
        dies first (the kernel drops the lock). Held by another process: refused."""
        import fcntl

        fd = os.open(self._owner_lock(cid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ContainerStateError(f"container {cid[:12]} is being started or run by another pallet process: "
                                      "container state improper") from None
        except BaseException:
            os.close(fd)
            raise
        self._held[cid] = fd

    def _release(self, cid: str) -> None:
        fd = self._held.pop(cid, None)
        if fd is not None:
            os.close(fd)

    def _wait_for_owner(self, cid: str) -> None:
        """Block until no start or foreground run holds ``cid`` (see _hold); a full ID."""
        import fcntl

        if cid in self._held:
            return
        try:
            fd = os.open(self._owner_lock(cid), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # never held, or its run removed the container already
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)

    def cleanup(self, text: str, rm: bool = False) -> None:
        """What conmon's exit command does: record the exit, tear down, and with ``rm`` remove
        (after the start, or the foreground run, that holds it is done: for a foreground ``run
        --rm`` nothing is left then)."""
        if _is_full_id(text):
            self._wait_for_owner(text)
        try:
            c = self.get(text)
        except ContainerNotFound:
            return
        cid, meta = c["id"], c["metadata"][META]
        # conmon runs this as soon as the container exits, which can be before the pallet that
        # started it has recorded the start: wait for that process (bounded)
        deadline = time.monotonic() + 60
        delay = 0.005
        while True:
            pid = self._read_state(cid).get("starting")
            if not (isinstance(pid, int) and pid != os.getpid() and _alive(pid)) or time.monotonic() > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        st = self.state(cid)
        if st.get("state") == RUNNING:
            return  # still running: nothing to clean yet
        with self._lock():
            st = self._read_state(cid)
            if st.get("mounted") or st.get("netns") or st.get("pid") or st.get("oci"):
                st["pid"] = 0
                try:
                    self._teardown(cid, st, meta)
                finally:
                    self._write_state(cid, st)
        if rm:
            try:
                self.remove(cid, force=True)
            except ContainerNotFound:  # removed meanwhile (``rm -f``, the foreground run)
                pass

    def remove(self, text: str, force: bool = False, timeout: float | None = None, volumes: bool = False,
               pod_removal: bool = False) -> str:
        """``volumes`` (``rm -v``; always for a ``--rm`` container): its anonymous volumes go too.
        A pod's infra container goes only with its pod (``pod_removal``: ``pods.Pods.remove``)."""
        c = self.get(text)
        cid, meta = c["id"], c["metadata"][META]
        if (meta.get("pod") or {}).get("infra") and not pod_removal:
            raise ContainerError(f"container {cid} is the infra container of pod {meta['pod']['id']} and cannot be "
                                 "removed without removing the pod")
        st = self.state(cid)
        if force and (st.get("state") == RUNNING or meta.get("restart_policy", "no") != "no"):
            from .policies import before_stop

            before_stop(self, cid, meta)  # a restart policy's start under way finishes; none follows
            st = self.state(cid)
        if st.get("state") == RUNNING:
            if not force:
                raise ContainerStateError(f"cannot remove container {cid} as it is running - running or paused "
                                          "containers cannot be removed without force: container state improper")
            self.stop(cid, timeout if timeout is not None else 10)
        with self._lock():
            st = self._read_state(cid)
            self.check_not_starting(cid, st, meta)
            dropped = []

            def drop_record():  # while the runtime deletes its container: see _teardown
                self._forget_record(cid)  # (its state is written only if this fails: see below)
                dropped.append(cid)

            try:
                self._teardown(cid, st, meta, meanwhile=drop_record)
            finally:
                if not dropped:
                    self._write_state(cid, st)
            self._forget(cid, record=not dropped)
        from . import mounts as ctr_mounts

        errors = ctr_mounts.release(self.store, cid, meta, remove_anonymous=volumes or bool(meta.get("rm")))
        if errors:
            raise ContainerError(f"container {cid[:12]} removed; its volumes: {'; '.join(errors)}")
        return cid

    def _forget_record(self, cid: str) -> None:
        try:
            self.store.remove_container(cid)
        except NotFound:
            pass

    def _forget(self, cid: str, record: bool = True) -> None:
        from .._fs import rmtree

        if record:
            self._forget_record(cid)
        from .rootfs import release

        for p in (self._rundir(cid), os.path.join(self.data, cid)):
            if release(p):  # never through a --rootfs directory still bound there
                rmtree(p)
        self._release(cid)
        try:
            os.unlink(os.path.join(self.exits, cid))
        except FileNotFoundError:
            pass


def remove_image(store, text: str, *, force: bool = False, every_name: bool = False,
                 global_args: list[str] | None = None) -> tuple[str, list[str], bool]:
    """podman's ``rmi``: without ``force`` an image a container uses is refused, naming the
    container; with ``force`` the run containers using it are stopped (their stop signal, SIGKILL
    after the timeout) and removed through this model first (conmon, network, mounts torn down),
    as ``podman rmi -f`` does, then the image goes with buildah's working containers on it.
    Returns what ``Store.remove_image`` returns (a pod's infra container is not removed here:
    ``pods.remove_image`` removes its pod first). The refusal is podman's words (containers/storage's
    and libimage's): ``image used by CONTAINER-ID: image is in use by a container: consider listing
    external containers and force-removing image`` (buildah's working containers count too)."""
    if not force:
        from ..storage import names as _names
        from ..storage.records import ImageInUse

        rec = store.image(text)
        users = [c["id"] for c in store.containers() if c.get("image") == rec["id"]]
        by_id = _names.is_id_like(text) and rec["id"].startswith(text.removeprefix("sha256:"))
        # named by one of several names, only that name goes (Store.remove_image): no removal
        if users and (by_id or len(rec.get("names") or []) <= 1):
            raise ImageInUse(f"image used by {users[0]}: image is in use by a container: consider listing external "
                             "containers and force-removing image")
    if force:
        iid = store.image(text)["id"]
        users = [c["id"] for c in store.containers()
                 if c.get("image") == iid and c.get("kind") == "container" and META in (c.get("metadata") or {})]
        if users:
            ctrs = Containers(store, global_args)
            for cid in users:
                try:
                    ctrs.remove(cid, force=True)
                except ContainerNotFound:  # removed meanwhile (its --rm exit command)
                    pass
    return store.remove_image(text, force=force, every_name=every_name)


class _ExitWatch:
    """What ``wait`` sleeps on: inotify on conmon's exit directory (a file written, renamed in
    or deleted) and a pidfd of conmon (it died: ``state`` then records -1). Each wait is also
    bounded to a second, a re-check in case a change came another way (a restart's new conmon)."""

    def __init__(self, exits: str, conmon_pid):
        import select

        from .._std import syscalls as sc

        self._fds = []
        self._poll = select.poll()
        fd = sc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        self._fds.append(fd)
        try:
            sc.inotify_add_watch(fd, exits, sc.IN_CLOSE_WRITE | sc.IN_MOVED_TO | sc.IN_DELETE)
            self._poll.register(fd, select.POLLIN)
            self._inotify = fd
            if isinstance(conmon_pid, int) and conmon_pid > 0:
                try:
                    pfd = os.pidfd_open(conmon_pid)
                except OSError:  # gone already: the state read after arming sees it
                    pass
                else:
                    self._fds.append(pfd)
                    self._poll.register(pfd, select.POLLIN)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float | None) -> None:
        ms = 1000 if timeout is None else max(1, min(1000, int(timeout * 1000)))
        for fd, _ in self._poll.poll(ms):
            if fd == self._inotify:
                try:
                    while os.read(fd, 65536):  # drain: the state is read again anyway
                        pass
                except BlockingIOError:
                    pass
            else:  # conmon exited: nothing more will come from it
                self._poll.unregister(fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def _submit(fn):
    """``fn()`` in a thread (the network's setup or teardown); ``result()`` waits for it."""
    from .._std import futures

    return futures.submit(fn, "pallet-network")


def _is_full_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class _NoEndpoints:
    """--network none/host: no netavark, only a namespace under the run root."""

    def __init__(self, containers: Containers):
        self.run_dir = os.path.join(containers.store.runroot, "networks")

    def detach(self, cid):
        pass


def bounding_set() -> set:
    from ..oci.capabilities import NAMES

    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return set(NAMES)
    return {n for i, n in enumerate(NAMES) if mask >> i & 1}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def resolved_name(typed: str, image: dict) -> str:
    """The image's own name that ``typed`` resolved to (``localhost/x`` -> ``localhost/x:latest``,
    a short name -> its full one), as podman's ``ImageName``; ``typed`` itself when it names the
    image by ID or no name matches."""
    names = [n for n in image.get("names") or () if isinstance(n, str)]
    last = typed.rsplit("/", 1)[-1]
    cands = [typed] + ([typed + ":latest"] if ":" not in last and "@" not in typed else [])
    for test in (lambda n, c: n == c, lambda n, c: n.endswith("/" + c)):
        for n in names:
            if any(test(n, c) for c in cands):
                return n
    return typed


def _signal_name(n) -> str:
    import signal

    try:
        return signal.Signals(int(n)).name
    except (ValueError, TypeError):
        return str(n)


def _discard_ports(mappings: list, kind: str, warn) -> list:
    """podman 4.3: published ports with ``--network host|none|container:ID|ns:PATH`` are dropped
    with its warning (the container still runs)."""
    if mappings and kind in ("host", "none", "container", "ns"):
        if warn:
            warn("Port mappings have been discarded as one of the Host, Container, Pod, and None network modes are "
                 "in use")
        return []
    return mappings


def _containerenv(cid: str, meta: dict) -> str:
    """``/run/.containerenv`` as podman 4.3 writes it: empty, but for a ``--privileged``
    container its engine, name, id, image, image id and rootless flag (shell-sourceable)."""
    if not meta.get("privileged"):
        return ""
    from .._version import __version__

    def q(v) -> str:
        return json.dumps(str(v or ""), ensure_ascii=False)

    return (f'engine="pallet-{__version__}"\nname={q(meta["name"])}\nid={q(cid)}\n'
            f'image={q(meta.get("image_ref") or meta.get("image_name"))}\nimageid={q(meta.get("image_id"))}\n'
            f"rootless={0 if rootless_uid() is None else 1}\n")


def _write_file(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)



def _results(results: dict) -> dict:
    out = {}
    for net, b in (results or {}).items():
        out[net] = {"interfaces": [{"name": i.name, "mac": i.mac_address,
                                    "subnets": [{"ipnet": s.ipnet, "gateway": s.gateway} for s in i.subnets]}
                                   for i in b.interfaces],
                    "dns_server_ips": list(b.dns_server_ips), "dns_search_domains": list(b.dns_search_domains)}
    return out


#: where journald takes entries (sd_journal_send's socket, what conmon writes to)
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def check_journal() -> None:
    """podman's create of a ``--log-driver journald`` container fails when the journal cannot
    take entries (its first one, an event, is sent then): the same check, without an entry."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(JOURNAL_SOCKET)
    except OSError as e:
        raise ContainerError(f"failed to initialize journal: {JOURNAL_SOCKET}: {(e.strerror or str(e)).lower()}") \
            from None
    finally:
        s.close()


def ready_log_file(path: str) -> None:
    """The k8s-file log, made (or found) as a regular file just before conmon, as root, opens
    it to append: a name that is now a symlink (swapped in since ``create`` checked it), a FIFO,
    device or socket is refused in one line, and conmon never starts. What is left is the
    moment between this and conmon's own open (the kernel's ``protected_symlinks`` covers
    sticky directories such as /tmp there)."""
    import errno
    import stat

    parent, name = os.path.split(path)
    try:
        dfd = os.open(parent or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerError(f"log file {path}: its directory: {e.strerror}") from None
    try:
        try:  # a device is never opened (opening one can act: a tape rewinds)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise ContainerError(f"log file {path}: "
                                     f"{'a symlink: not followed' if stat.S_ISLNK(st.st_mode) else 'not a regular file: not written'}")
        except FileNotFoundError:
            pass
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
    except OSError as e:  # swapped since the stat: a symlink (ELOOP), a FIFO or socket (ENXIO)
        why = "a symlink: not followed" if e.errno == errno.ELOOP else \
            "not a regular file: not written" if e.errno == errno.ENXIO else e.strerror
        raise ContainerError(f"log file {path}: {why}") from None
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContainerError(f"log file {path}: not a regular file: not written")
    finally:
        os.close(fd)


def _log_arg(path: str, meta: dict) -> str:
    """conmon's ``-l``: ``k8s-file:PATH``, ``journald:`` or ``none`` (podman's ``--log-driver``)."""
    driver = ((meta.get("extra") or {}).get("log") or {}).get("driver", "k8s-file")
    return {"none": "none", "journald": "journald:"}.get(driver) or "k8s-file:" + path


#: the files of userdata bound onto the container's /etc
_ETC = ("hosts", "hostname", "resolv.conf")


def _write_etc(userdata: str, hostname: str, name: str, ips: list, dns: list, host_net: bool,
               extra: dict | None = None, gateway: str | None = None) -> None:
    """``hosts`` (podman's, ``containers/etc_hosts.py``), ``hostname``, ``resolv.conf``:
    ``--dns``/``--dns-search``/``--dns-option`` (or containers.conf's) replace the host's
    nameservers, ``search`` and ``options`` (``--dns-search .``: none)."""
    from .etc_hosts import text as hosts_text

    extra = extra or {}
    hosts = hosts_text(list(extra.get("add_hosts") or ()), hostname, name, ips, host_net, gateway)
    servers, search, options = [], [], []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                w = line.split()
                if w and w[0] == "nameserver" and len(w) > 1:
                    if host_net or not (w[1].startswith("127.") or w[1] == "::1"):
                        servers.append(w[1])
                elif w and w[0] == "search":
                    search = w[1:]
                elif w and w[0] == "options":
                    options += w[1:]
    except OSError:
        pass
    servers = list(dns) + servers if dns else servers
    if extra.get("dns"):
        servers = list(extra["dns"])
    if extra.get("dns_search"):
        search = [d for d in extra["dns_search"] if d != "."]
    if extra.get("dns_options"):
        options = list(extra["dns_options"])
    resolv = ((f"search {' '.join(search)}\n" if search else "") + "".join(f"nameserver {s}\n" for s in servers)
              + (f"options {' '.join(options)}\n" if options else ""))
    for fname, text in (("hosts", hosts), ("hostname", hostname + "\n"),
                        ("resolv.conf", resolv)):
        # in place: the runtime's create bound these very files into the container already
        fd = os.open(os.path.join(userdata, fname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        try:
            os.fchmod(fd, 0o644)
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)


def _entrypoint(text) -> list[str]:
    """podman's --entrypoint: a JSON array, or one string (the command, not split)."""
    if isinstance(text, list):
        return text
    if text.startswith("["):
        try:
            v = json.loads(text)
        except ValueError:
            raise UsageError(f"invalid --entrypoint {text!r}: not a JSON array") from None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UsageError(f"invalid --entrypoint {text!r}: want a JSON array of strings")
        return v
    return [text] if text else []


def _volume(text: str) -> dict:
    """-v /HOST:/CTR[:ro|rw], -v NAME:/CTR (a named volume), -v /CTR (an anonymous one)."""
    from .options import parse_volume

    return parse_volume(text)


def _tmpfs(text: str) -> dict:
    dst, _, opts = text.partition(":")
    if not dst.startswith("/") or "\0" in text:
        raise UsageError(f"invalid --tmpfs {text!r}: want /CONTAINER/PATH[:OPTIONS]")
    options = opts.split(",") if opts else ["rw", "noexec", "nosuid", "nodev"]
    return {"destination": dst, "options": options}
