"""Pods as podman 4.3 has them, without a daemon: a group of containers sharing namespaces
(``--share``: ipc, net and uts by default, as Kubernetes' pods) held by an infra container, one
cgroup parent for them all, published ports that belong to the pod.

- The infra container is an ordinary container of the model (``container.py``) whose only
  process is Debian's ``catatonit -P`` (podman's pause process), from the image
  ``localhost/podman-pause:VERSION-0`` made here from the host's catatonit (as podman makes
  ``localhost/podman-pause``), or containers.conf's ``infra_image`` (``infra_command``, else its
  own entrypoint). It owns the pod's namespaces, network attachments and ``-p`` ports; its
  hostname is the pod's (``--hostname``, else the pod's name).
- A member is a container whose record says ``pod`` (``{"id", "infra", "infra_id"}``): it joins
  the infra container's shared namespaces (``--network container:INFRA`` and
  ``--ipc/--uts/--pid/--cgroupns container:INFRA``), and its cgroup goes below the pod's,
  ``CGROUP_PARENT/POD_ID`` (podman's cgroupfs layout). Starting a member starts the infra
  container first (``Containers.start``).
- The records: ``GRAPHROOT/pallet-pods/pods.json``, replaced whole (temp file, fsync, rename:
  ``_fs.write_atomic``) and changed only under the containers' lock
  (``RUNROOT/pallet-containers/containers.lock``), so a pod and its containers change together.
  Membership is not duplicated there: a pod's containers are those whose record names it.
  A removal marks the pod ``removing`` first, removes its containers (members, then the infra
  container), the pod's cgroup, and then the record: a crash on the way leaves a pod that
  ``pod rm`` finishes, never a container in no pod.
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import ContainerError, ContainerNotFound, ContainerStateError, NotFound, UsageError
from .container import META, RUNNING, Containers, Options, cgroup_parent, check_hostname, check_name, now, replace

RECORDS = "pods.json"
MAX_RECORDS = 64 << 20
#: the namespaces ``--share`` takes, and podman 4.3's default (Kubernetes')
SHARES = ("cgroup", "ipc", "net", "pid", "uts")
DEFAULT_SHARE = ("ipc", "net", "uts")
#: a shared namespace -> the run/create flag of the member that joins it (Extra's attribute)
_JOIN_FLAG = {"cgroup": "cgroupns", "ipc": "ipc", "pid": "pid", "uts": "uts"}
DEFAULT_CGROUP_PARENT = "/pallet_parent"
#: podman's pod states
CREATED, RUNNING_POD, DEGRADED, EXITED, STOPPED, PAUSED, ERROR = ("Created", "Running", "Degraded", "Exited",
                                                                    "Stopped", "Paused", "Error")


class PodNotFound(ContainerNotFound):
    """No pod by that name or ID (podman's ``pod rm`` exits 1 for it)."""


def _not_found(text: str) -> PodNotFound:
    return PodNotFound(f"no pod with name or ID {text} found: no such pod")


class PodOptions:
    """What ``pod create`` takes, checked before anything is made."""

    def __init__(self, *, name=None, infra=True, infra_image=None, infra_command=None, infra_name=None,
                 publish=(), networks=(), hostname=None, share=None, labels=None, cgroup_parent=None,
                 network_config_dir=None, create_command=None, exit_policy="continue", add_hosts=(), dns=(),
                 dns_search=(), dns_options=(), replace=False, mac_address=None, ip=None):
        self.name, self.infra, self.infra_image, self.infra_command = name, infra, infra_image, infra_command
        self.infra_name, self.publish, self.networks, self.hostname = infra_name, list(publish), list(networks), \
            hostname
        self.share, self.labels, self.cgroup_parent = share, dict(labels or {}), cgroup_parent
        self.network_config_dir, self.create_command = network_config_dir, list(create_command or [])
        self.exit_policy, self.add_hosts, self.dns = exit_policy, list(add_hosts), list(dns)
        self.dns_search, self.dns_options, self.replace = list(dns_search), list(dns_options), replace
        self.mac_address, self.ip = mac_address, ip


def parse_share(text: str | None) -> list[str]:
    """``--share``: a comma list of SHARES replacing the default, ``+LIST`` added to it, ``none``
    or empty for none; podman's error for another name."""
    if text is None:
        return list(DEFAULT_SHARE)
    base: list[str] = []
    if text.startswith("+"):
        base, text = list(DEFAULT_SHARE), text[1:]
    if text in ("", "none"):
        return base
    out = list(base)
    for kind in text.split(","):
        kind = kind.strip()
        if kind not in SHARES:
            raise UsageError(f"invalid kernel namespace to share: {kind}. Options are: cgroup, ipc, net, pid, uts "
                             "or none")
        if kind not in out:
            out.append(kind)
    return sorted(out)


def status_of(states: list[str]) -> str:
    """The pod's state from its containers' (podman 4.3's rule)."""
    if not states:
        return CREATED
    n = len(states)
    running = sum(s == "running" for s in states)
    paused = sum(s == "paused" for s in states)
    stopped = sum(s in ("exited", "stopped") for s in states)
    created = sum(s in ("created", "configured") for s in states)
    if running == n:
        return RUNNING_POD
    if running:
        return DEGRADED
    if paused == n:
        return PAUSED
    if stopped == n:
        return EXITED
    if stopped:
        return STOPPED
    if n - paused - created - stopped > 0:
        return ERROR
    return CREATED


def container_state(ctrs: Containers, cid: str) -> str:
    """A container's public state (podman's word: created, running, paused, exited...)."""
    st = ctrs.state(cid)
    s = st.get("state") or "configured"
    if s == RUNNING and st.get("paused"):
        return "paused"
    return "created" if s == "configured" else s


class Pods:
    """podman's pod verbs over one container model (``ctrs``: the store and its lock)."""

    def __init__(self, ctrs: Containers):
        self.ctrs = ctrs
        self.store = ctrs.store
        self.dir = os.path.join(ctrs.store.graphroot, "pallet-pods")

    # -- records ------------------------------------------------------------------------------

    def _path(self) -> str:
        return os.path.join(self.dir, RECORDS)

    def _load(self) -> dict:
        from .._fs import read_json_file

        try:
            doc = read_json_file(self._path(), MAX_RECORDS, "pallet's pod records")
        except FileNotFoundError:
            return {"pods": {}}
        pods = doc.get("pods") if isinstance(doc, dict) else None
        if not isinstance(pods, dict) or not all(isinstance(r, dict) and isinstance(r.get("name"), str)
                                                 for r in pods.values()):
            raise ContainerError(f"{self._path()}: not pallet's pod records (damaged?)")
        return doc

    def _save(self, doc: dict) -> None:
        from .._fs import write_atomic

        os.makedirs(self.dir, 0o700, exist_ok=True)
        write_atomic(self._path(), (json.dumps(doc, indent=1) + "\n").encode(), 0o600)

    def _edit(self):
        """``with pods._edit() as doc:`` the records under the containers' lock, written back
        when the block ends without an error."""
        import contextlib

        @contextlib.contextmanager
        def edit():
            with self.ctrs.lock():
                doc = self._load()
                yield doc
                self._save(doc)

        return edit()

    def _unused_name(self) -> str:
        """A random name no pod has (nor a container: the generator's)."""
        taken = {r["name"] for r in self._load()["pods"].values()}
        for _ in range(50):
            name = self.ctrs.unused_name()
            if name not in taken:
                return name
        return f"{self.ctrs.unused_name()}_{os.urandom(3).hex()}"

    def list(self) -> list[dict]:
        """Every pod's record (but those being removed), oldest first."""
        return sorted((r for r in self._load()["pods"].values() if not r.get("removing")),
                      key=lambda r: r.get("created") or "")

    def get(self, text: str, removing: bool = False) -> dict:
        """A pod by name, ID or unique ID prefix (``removing``: one a removal left, too)."""
        if not isinstance(text, str) or not text:
            raise _not_found(text)
        pods = [r for r in self._load()["pods"].values() if removing or not r.get("removing")]
        for test in (lambda r: r["name"] == text or r["id"] == text,
                     lambda r: r["id"].startswith(text)):
            hits = [r for r in pods if test(r)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise ContainerError(f"more than one result for pod ID {text}: pod ID prefix is ambiguous")
        raise _not_found(text)

    def containers(self, rec: dict) -> list[dict]:
        """The pod's containers (store records), the infra container first, then by creation."""
        mine = [c for c in self.ctrs.list() if (c["metadata"][META].get("pod") or {}).get("id") == rec["id"]]
        return sorted(mine, key=lambda c: (not c["metadata"][META]["pod"].get("infra"),
                                           c["metadata"][META].get("created_at") or ""))

    def status(self, rec: dict, members: list[dict] | None = None) -> str:
        members = self.containers(rec) if members is None else members
        return status_of([container_state(self.ctrs, c["id"]) for c in members])

    def cgroup(self, rec: dict) -> str:
        """The cgroup the pod's containers go below (podman's cgroupfs layout: PARENT/POD_ID)."""
        return f"{rec['cgroup_parent']}/{rec['id']}"

    # -- create -------------------------------------------------------------------------------

    def create(self, o: PodOptions, pull_fn, warn=None) -> dict:
        """A pod (and its infra container, unless ``o.infra`` is false); nothing is left when it
        fails. ``pull_fn(image)`` pulls containers.conf's ``infra_image`` when missing."""
        from . import conf as conf_mod
        from .network import ports as netports

        share = parse_share(o.share)
        if o.exit_policy not in ("continue", "stop"):
            raise UsageError(f"running pod create option: invalid pod exit policy: \"{o.exit_policy}\"")
        # podman's "private" is the default network
        o.networks = ["bridge" if n == "private" else n for n in o.networks]
        fixed = [f"{k}={v}" for k, v in (("mac", o.mac_address), ("ip", o.ip)) if v]
        if fixed:  # --mac-address, --ip: the infra container's, on its one network
            if len(o.networks) > 1 or (o.networks and (":" in o.networks[0] or o.networks[0] in ("none", "host"))):
                raise UsageError("--mac-address and --ip need one network of the pod's (a bridge network)")
            o.networks = [f"{(o.networks or ['bridge'])[0]}:{','.join(fixed)}"]
        parent = cgroup_parent(o.cgroup_parent) or DEFAULT_CGROUP_PARENT
        if o.name is not None:
            check_name(o.name)
        if o.hostname is not None:
            check_hostname(o.hostname)
        if not o.infra:
            for given, flag in ((o.publish, "-p/--publish"), (o.networks, "--network"), (o.hostname, "--hostname"),
                                (o.infra_image, "--infra-image"), (o.infra_command, "--infra-command"),
                                (o.infra_name, "--infra-name"), (o.add_hosts, "--add-host"), (o.dns, "--dns")):
                if given:
                    raise UsageError(f"you must have an infra container to use {flag}")
            if set(share) - {"cgroup"} and o.share is not None:
                raise UsageError("you must have an infra container to share namespaces (--share)")
            share = []
        if o.publish:
            netports.parse_all(o.publish)  # a bad spec is refused before anything is made
        if o.replace:
            replace("pod", o.name, self.remove, PodNotFound)
        pod_id = os.urandom(32).hex()
        name = o.name or self._unused_name()
        with self._edit() as doc:  # the name is the pod's from here (a concurrent create sees it)
            for r in doc["pods"].values():
                if r["name"] == name:
                    raise ContainerError(f"adding pod to state: name \"{name}\" is in use: pod already exists")
            doc["pods"][pod_id] = {"id": pod_id, "name": name, "created": now(), "removing": False,
                                   "creating": os.getpid(), "create_command": o.create_command,
                                   "labels": o.labels, "hostname": o.hostname or "", "share": share,
                                   "cgroup_parent": parent, "infra": bool(o.infra), "infra_id": "",
                                   "exit_policy": o.exit_policy}
        rec = None
        try:
            infra_id = ""
            if o.infra:
                conf = conf_mod.load(cache_dir=self.ctrs.base)
                image = o.infra_image or conf.get("infra_image") or None
                command = o.infra_command or conf.get("infra_command") or None
                if image is None:
                    image = pause_image(self.store)["names"][0]
                    pull = "never"
                else:
                    pull = "missing"
                entry = command or None  # one string: the command itself (not split), as --entrypoint
                from .options import Extra

                infra = Options(image, None, name=o.infra_name or f"{pod_id[:12]}-infra", entrypoint=entry,
                                networks=o.networks if "net" in share else (o.networks or ["none"]),
                                publish=o.publish, hostname=o.hostname or name,
                                cgroup_parent=f"{parent}/{pod_id}", network_config_dir=o.network_config_dir,
                                pull=pull, extra=Extra(add_hosts=o.add_hosts, dns=o.dns, dns_search=o.dns_search,
                                                       dns_options=o.dns_options),
                                volumes=self._shm_volume(pod_id, share),
                                pod={"id": pod_id, "infra": True, "infra_id": ""})
                infra_rec = self.ctrs.create(infra, pull_fn, warn=warn)
                infra_id = infra_rec["id"]
                # the files members bind (filled in place when the infra container starts)
                for f in ("hosts", "resolv.conf", "hostname"):
                    os.close(os.open(self._infra_file(infra_id, f), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW |
                                     os.O_CLOEXEC, 0o644))
            with self._edit() as doc:
                rec = doc["pods"][pod_id]
                rec["infra_id"] = infra_id
                rec.pop("creating", None)
            return rec
        finally:
            if rec is None:  # nothing half-made: the infra container, then the record
                self.remove(pod_id, force=True)

    # -- members ------------------------------------------------------------------------------

    def join(self, o: Options, text: str) -> dict:
        """Make ``o`` (run/create's options) a member of the pod ``text``: its shared namespaces
        joined, its cgroup below the pod's; flags the pod decides are refused as podman refuses
        them. Returns the pod's record."""
        rec = self.get(text)
        share = rec["share"]
        infra_id = rec["infra_id"]
        extra = o.extra
        if extra is None:
            from .options import Extra

            extra = o.extra = Extra()
        if "net" in share and infra_id:
            if o.publish or o.publish_all:
                raise UsageError("invalid config provided: published or exposed ports must be defined when the pod "
                                 "is created: network cannot be configured when it is shared with a pod")
            if o.networks:
                raise UsageError("invalid config provided: networks must be defined when the pod is created: "
                                 "network cannot be configured when it is shared with a pod")
            o.networks = [self._infra_network(infra_id)]
        for kind in share:
            if kind == "net" or not infra_id:
                continue
            flag = _JOIN_FLAG[kind]
            if getattr(extra, flag) is not None:
                raise UsageError(f"invalid config provided: --{flag} cannot be set when joining a pod that shares "
                                 f"its {kind} namespace")
            setattr(extra, flag, f"container:{infra_id}")
        if "uts" in share and infra_id and o.hostname:
            raise UsageError("invalid config provided: cannot set hostname when joining the pod UTS namespace: "
                             "invalid configuration")
        if infra_id:  # the pod's /etc/hosts, resolv.conf, hostname and /dev/shm: the infra container's
            binds = {"net": ("hosts", "resolv.conf"), "uts": ("hostname",)}
            o.volumes += [f"{self._infra_file(infra_id, f)}:/etc/{f}" for kind in share for f in binds.get(kind, ())
                          if not (f == "resolv.conf" and o.networks and o.networks[0].startswith(("host", "ns:")))]
            o.volumes += self._shm_volume(rec["id"], share)
        if o.cgroup_parent is None:
            o.cgroup_parent = self.cgroup(rec)
        o.pod = {"id": rec["id"], "infra": False, "infra_id": infra_id}
        return rec

    def _infra_file(self, infra_id: str, name: str) -> str:
        return os.path.join(self.ctrs.data, infra_id, "userdata", name)

    def _shm_volume(self, pod_id: str, share: list) -> list:
        """A pod sharing its IPC namespace shares ``/dev/shm`` (as podman's): a directory of the
        pod's (``GRAPHROOT/pallet-pods/ID/shm``, mode 1777) bound there in each of its containers."""
        if "ipc" not in share:
            return []
        d = os.path.join(self.dir, pod_id, "shm")
        os.makedirs(d, 0o700, exist_ok=True)
        os.chmod(d, 0o1777)
        return [f"{d}:/dev/shm"]

    def _infra_network(self, infra_id: str) -> str:
        """The ``--network`` a member joining the infra container's network namespace gets:
        ``container:ID`` for an attached one (bridge networks), ``host`` for the host's, else
        (``none``) the path the infra container's namespace has while it runs."""
        meta = self.ctrs.get(infra_id)["metadata"][META]
        kind = meta.get("network_mode")
        if kind == "host":
            return "host"
        if kind == "none":
            from .network import netns

            return "ns:" + os.path.join(netns.netns_dir(self.store.runroot), infra_id[:12])
        return f"container:{infra_id}"

    def check_member(self, cid: str) -> None:
        """After a member's create: its pod must still be there (a concurrent ``pod rm`` may
        have removed it meanwhile); if it is not, the container goes and the error is the
        pod's."""
        c = self.ctrs.get(cid)
        pod = c["metadata"][META].get("pod") or {}
        try:
            self.get(pod.get("id") or "")
        except PodNotFound:
            self.ctrs.remove(cid, force=True, pod_removal=True)
            raise _not_found(pod.get("id") or "?") from None

    # -- life ---------------------------------------------------------------------------------

    def start(self, text: str, warn=None) -> str:
        """The infra container, then every member that is not running."""
        rec = self.get(text)
        errors = []
        for c in self.containers(rec):
            if self.ctrs.state(c["id"]).get("state") == RUNNING:
                continue
            try:
                self.ctrs.start(c["id"], warn=warn)
            except ContainerError as e:
                errors.append(f"starting container {c['id']}: {e}")
        if errors:
            raise ContainerError("; ".join(errors))
        return rec["id"]

    def stop(self, text: str, timeout: float | None = None, warn=None) -> str:
        """The members (each its stop signal, then SIGKILL after ``timeout``), then the infra."""
        rec = self.get(text)
        for c in reversed(self.containers(rec)):  # the infra container last
            try:
                self.ctrs.stop(c["id"], timeout, warn=warn)
            except ContainerNotFound:
                pass
        return rec["id"]

    def kill(self, text: str, signal: int = 9) -> str:
        rec = self.get(text)
        running = [c for c in reversed(self.containers(rec))
                   if self.ctrs.state(c["id"]).get("state") == RUNNING]
        if not running:
            raise ContainerStateError(f"no containers in pod {rec['id']} are running: container state improper")
        for c in running:
            try:
                self.ctrs.kill(c["id"], signal)
            except (ContainerStateError, ContainerNotFound):  # exited meanwhile
                pass
        return rec["id"]

    def stop_if_idle(self, pod_id: str) -> None:
        """A member exited: a pod whose exit policy is ``stop`` stops its infra container when
        none of its other containers runs (podman's)."""
        try:
            rec = self.get(pod_id)
        except PodNotFound:
            return
        if rec.get("exit_policy") != "stop" or not rec.get("infra_id"):
            return
        others = [c for c in self.containers(rec) if c["id"] != rec["infra_id"]]
        if any(self.ctrs.state(c["id"]).get("state") == RUNNING for c in others):
            return
        try:
            self.ctrs.stop(rec["infra_id"])
        except ContainerNotFound:
            pass

    def restart(self, text: str, warn=None) -> str:
        self.stop(text, warn=warn)
        return self.start(text, warn=warn)

    def pause(self, text: str, paused: bool = True) -> str:
        from . import restart

        rec = self.get(text)
        for c in self.containers(rec):
            st = self.ctrs.state(c["id"])
            if st.get("state") == RUNNING and bool(st.get("paused")) != paused:
                (restart.pause if paused else restart.unpause)(self.ctrs, c["id"])
        return rec["id"]

    def processes(self, text: str) -> list[tuple[str, int]]:
        """``(container ID, init pid)`` of each running container of the pod (``pod top``)."""
        rec = self.get(text)
        out = []
        for c in self.containers(rec):
            st = self.ctrs.state(c["id"])
            if st.get("state") == RUNNING and st.get("pid"):
                out.append((c["id"], st["pid"]))
        if not out:
            raise ContainerStateError(f"no containers in pod {rec['name']} are running: pod state improper")
        return out

    # -- removal ------------------------------------------------------------------------------

    def remove(self, text: str, force: bool = False, timeout: float | None = None) -> str:
        """The pod and its containers: without ``force`` a pod with a running container is
        refused (podman's words); with it they are stopped first. Marked ``removing`` first,
        the record dropped last (see the module's docstring)."""
        rec = self.get(text, removing=True)
        members = self.containers(rec)
        if not force:  # a running infra container does not count (it goes with its pod)
            for c in members:
                if c["id"] != rec.get("infra_id") and self.ctrs.state(c["id"]).get("state") == RUNNING:
                    raise ContainerStateError(
                        f"pod {rec['id']} has containers that are not ready to be removed: cannot remove container "
                        f"{c['id']} as it is running - running or paused containers cannot be removed without "
                        "force: container state improper")
        with self._edit() as doc:
            if rec["id"] not in doc["pods"]:
                raise _not_found(text)
            doc["pods"][rec["id"]]["removing"] = True
        # listed again once marked: a member made meanwhile is here, or its check_member sees the mark
        errors = []
        for c in reversed(self.containers(rec)):  # the infra container last
            try:
                self.ctrs.remove(c["id"], force=True, timeout=timeout, pod_removal=True)
            except ContainerNotFound:
                pass
            except ContainerError as e:
                errors.append(str(e))
        if errors:  # the pod stays (marked): a later pod rm finishes it
            raise ContainerError(f"removing pod {rec['id']}: {'; '.join(errors)}")
        remove_cgroup(self.cgroup(rec))
        from .._fs import rmtree

        rmtree(os.path.join(self.dir, rec["id"]))  # its /dev/shm
        with self._edit() as doc:
            doc["pods"].pop(rec["id"], None)
        return rec["id"]

    def prune(self) -> list[str]:
        """Every pod none of whose containers runs (podman's ``pod prune``)."""
        out = []
        for rec in self.list():
            if all(self.ctrs.state(c["id"]).get("state") != RUNNING for c in self.containers(rec)):
                try:
                    out.append(self.remove(rec["id"]))
                except PodNotFound:
                    pass
        return out

    # -- reports ------------------------------------------------------------------------------

    def inspect(self, rec: dict) -> dict:
        """podman 4.3's ``pod inspect`` object (its keys; empty ones left out as podman does)."""
        members = self.containers(rec)
        doc = {"Id": rec["id"], "Name": rec["name"], "Created": rec["created"]}
        if rec.get("create_command"):
            doc["CreateCommand"] = rec["create_command"]
        doc["ExitPolicy"] = rec.get("exit_policy") or "continue"
        doc["State"] = self.status(rec, members)
        doc["Hostname"] = rec.get("hostname") or ""
        if rec.get("labels"):
            doc["Labels"] = rec["labels"]
        doc.update(CreateCgroup=True, CgroupParent=rec["cgroup_parent"], CgroupPath=self.cgroup(rec))
        doc["CreateInfra"] = bool(rec.get("infra"))
        infra = next((c for c in members if c["id"] == rec.get("infra_id")), None)
        if rec.get("infra_id"):
            doc["InfraContainerID"] = rec["infra_id"]
        if infra is not None:
            doc["InfraConfig"] = self._infra_config(infra, rec)
        if rec.get("share"):
            doc["SharedNamespaces"] = list(rec["share"])
        doc["NumContainers"] = len(members)
        if members:
            doc["Containers"] = [{"Id": c["id"], "Name": c["metadata"][META]["name"],
                                  "State": container_state(self.ctrs, c["id"])} for c in members]
        return doc

    def _infra_config(self, infra: dict, rec: dict) -> dict:
        meta = infra["metadata"][META]
        extra = meta.get("extra") or {}
        bindings: dict = {}
        for p in meta.get("publish") or []:
            for i in range(p.get("range") or 1):
                key = f"{p['container_port'] + i}/{p.get('protocol', 'tcp')}"
                bindings.setdefault(key, []).append({"HostIp": p.get("host_ip") or "",
                                                     "HostPort": str(p["host_port"] + i)})
        kind = meta.get("network_mode")
        out = {}
        if bindings:
            out["PortBindings"] = bindings
        ns = extra.get("namespaces") or {}
        out.update(HostNetwork=kind == "host", StaticIP="", StaticMAC="", NoManageResolvConf=False,
                   DNSServer=list(extra.get("dns") or ()) or None, DNSSearch=list(extra.get("dns_search") or ())
                   or None, DNSOption=list(extra.get("dns_options") or ()) or None,
                   NoManageHosts=bool(meta.get("no_hosts")), HostAdd=list(extra.get("add_hosts") or ()) or None,
                   Networks=self.networks(infra), NetworkOptions=None,
                   pid_ns=ns.get("pid") or "private", userns="host", uts_ns=ns.get("uts") or "private")
        return out

    def networks(self, infra: dict | None) -> list[str]:
        """The networks the infra container attaches to (podman's default is named ``podman``,
        pallet's ``pallet``)."""
        if infra is None:
            return []
        meta = infra["metadata"][META]
        if meta.get("network_mode") != "bridge":
            return []
        from .network import mode as netmode

        try:
            nets = netmode.parse(meta.get("networks") or ["bridge"], None).networks
        except (UsageError, ContainerError, NotFound):
            return []
        return sorted(nets) if isinstance(nets, dict) else list(nets)

    def ps_entry(self, rec: dict) -> dict:
        """podman 4.3's ``pod ps --format json`` object."""
        members = self.containers(rec)
        infra = next((c for c in members if c["id"] == rec.get("infra_id")), None)
        return {"Cgroup": rec["cgroup_parent"],
                "Containers": [{"Id": c["id"], "Names": c["metadata"][META]["name"],
                                "Status": container_state(self.ctrs, c["id"])} for c in members],
                "Created": rec["created"], "Id": rec["id"], "InfraId": rec.get("infra_id") or "",
                "Name": rec["name"], "Namespace": "", "Networks": self.networks(infra),
                "Status": self.status(rec, members), "Labels": rec.get("labels") or {}}


def remove_cgroup(path: str) -> None:
    """Remove the pod's cgroup directory (empty once its containers are gone) in every mounted
    hierarchy (v2, or each v1 controller and the hybrid layout's unified tree)."""
    from .procs import cgroup_roots

    rel = path.strip("/")
    if not rel:
        return
    for base in cgroup_roots():
        try:
            os.rmdir(os.path.join(base, rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ContainerError(f"removing the pod's cgroup {path} in {base}: {e.strerror}") from None


def remove_image(store, text: str, *, force: bool = False, every_name: bool = False,
                 global_args: list[str] | None = None) -> tuple[str, list[str], bool]:
    """``container.remove_image``, and with ``force`` first the pods whose infra container uses the
    image, their other containers too (podman's ``rmi -f`` of its pause image)."""
    from .container import remove_image as remove_one

    if force:
        iid = store.image(text)["id"]
        infra = [c for c in store.containers() if c.get("image") == iid and c.get("kind") == "container"
                 and ((c.get("metadata") or {}).get(META, {}).get("pod") or {}).get("infra")]
        if infra:
            ctrs = Containers(store, global_args)
            for c in infra:
                try:
                    Pods(ctrs).remove(c["metadata"][META]["pod"]["id"], force=True)
                except PodNotFound:  # removed meanwhile, or half removed: its infra container may be left
                    try:
                        ctrs.remove(c["id"], force=True, pod_removal=True)
                    except ContainerNotFound:
                        pass
    return remove_one(store, text, force=force, every_name=every_name, global_args=global_args)


def pause_image_name() -> str:
    """podman's name for its pause image, ``localhost/podman-pause:VERSION-BUILT``, with
    ``pallet version``'s fields (``BUILT`` 0), so that scripts that name it from ``podman version
    --format '{{.Server.Version}}-{{.Server.Built}}'`` (podman's own tests do) find it."""
    from .._version import __version__

    return f"localhost/podman-pause:{__version__}-0"


def pause_image(store) -> dict:
    """:func:`pause_image_name`: the host's (static) catatonit as ``/catatonit``, its
    entrypoint ``/catatonit -P`` -- made once, as podman makes its own."""
    name = pause_image_name()
    try:
        return store.image(name)
    except NotFound:
        pass
    import io
    import shutil
    import tarfile

    from .policies import init_binary

    exe = shutil.which("catatonit") or init_binary(None)
    buf = io.BytesIO()
    with open(exe, "rb") as f, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("catatonit")
        info.size, info.mode, info.mtime = os.fstat(f.fileno()).st_size, 0o755, 0
        tf.addfile(info, f)
    buf.seek(0)
    layer = store.add_layer_from_tar(buf, parent=None)
    from ..oci import mediatype as mt
    from ..oci import platform
    from ..oci.descriptor import Descriptor
    from ..oci.digest import of_bytes
    from ..oci.manifest import Manifest, dumps

    host = platform.host()
    doc = {"architecture": host.architecture, "os": host.os,
           "config": {"Entrypoint": ["/catatonit", "-P"], "Labels": {"io.pallet.pause": "true"}},
           "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"]]},
           "history": [{"created_by": "pallet pod create: the host's catatonit -P (the pause process)"}]}
    config = dumps(doc)
    digest = of_bytes(config)
    comp = mt.layer_compression(layer.get("media_type") or "")
    m = Manifest.build(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, digest, len(config)),
                       [Descriptor(mt.layer_type("oci", comp), layer["blob"], layer["blob_size"])])
    return store.add_image(config=config, config_digest=digest, manifest=m.raw, manifest_digest=m.digest,
                           media_type=m.media_type, layers=[layer["id"]], names=[name])
