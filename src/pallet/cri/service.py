"""The gRPC servicers: protobuf requests to plain values, the library's answers back to
protobuf, errors to status codes (CRIError's ``code``; NotFound -> NOT_FOUND, UsageError ->
INVALID_ARGUMENT, a container in the wrong state -> FAILED_PRECONDITION, anything else ->
UNKNOWN with its one-line message; a bug is INTERNAL and logged). RPCs not implemented yet
answer UNIMPLEMENTED with a message saying so.

RPCs that change a pod or its containers hold that pod's lock (``PodLocks``): concurrent RPCs on
one pod are serialised, different pods proceed in parallel (the store's and the containers
model's locks keep threads and processes apart below that). Listing and status take none.
"""

from __future__ import annotations

import os
import threading
import time

import grpc

from .. import _version
from ..errors import ContainerStateError, CRIError, NotFound, PalletError, UsageError
from . import cni, imagesvc
from .api import runtime_v1_pb2 as pb
from .api import runtime_v1_pb2_grpc as pbg
from .ctrs import CREATED, EXITED, RUNNING, UNKNOWN, Ctrs
from .pods import READY, Context, Pods

RUNTIME_NAME = "pallet"
API_VERSION = "v1"
_STATES = {CREATED: pb.CONTAINER_CREATED, RUNNING: pb.CONTAINER_RUNNING, EXITED: pb.CONTAINER_EXITED,
           UNKNOWN: pb.CONTAINER_UNKNOWN}
_STATE_NAMES = {v: k for k, v in _STATES.items()}


def _abort(context, e: Exception):
    if isinstance(e, CRIError):
        code = getattr(grpc.StatusCode, e.code, grpc.StatusCode.UNKNOWN)
    elif isinstance(e, NotFound):
        code = grpc.StatusCode.NOT_FOUND
    elif isinstance(e, UsageError):
        code = grpc.StatusCode.INVALID_ARGUMENT
    elif isinstance(e, ContainerStateError):
        code = grpc.StatusCode.FAILED_PRECONDITION
    else:
        code = grpc.StatusCode.UNKNOWN
    context.abort(code, str(e))


class PodLocks:
    """One re-entrant lock per pod ID, made on first use."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._locks: dict = {}

    def __call__(self, pod_id: str):
        with self._mutex:
            lock = self._locks.get(pod_id)
            if lock is None:
                lock = self._locks[pod_id] = threading.RLock()
            return lock


def rpc(locked: bool = True):
    """A servicer method: library errors as gRPC statuses (``locked`` is kept for the reader:
    the methods that change a pod take its lock themselves)."""

    def wrap(fn):
        def method(self, request, context):
            try:
                return fn(self, request, context)
            except (PalletError, OSError) as e:
                if isinstance(e, OSError):
                    e = CRIError(f"{e.strerror or e}{': ' + e.filename if getattr(e, 'filename', None) else ''}")
                _abort(context, e)
            except (ValueError, TypeError) as e:  # a request value of the wrong shape
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

        method.__name__ = fn.__name__
        return method

    return wrap


def _unimplemented(what: str):
    def method(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by pallet's CRI server yet")

    method.__name__ = what
    return method


def _pod_config(c) -> dict:
    linux = c.linux
    sc = linux.security_context
    ns = sc.namespace_options
    return {"metadata": {"name": c.metadata.name, "uid": c.metadata.uid, "namespace": c.metadata.namespace,
                         "attempt": c.metadata.attempt},
            "hostname": c.hostname, "log_directory": c.log_directory,
            "dns": {"servers": list(c.dns_config.servers), "searches": list(c.dns_config.searches),
                    "options": list(c.dns_config.options)},
            "port_mappings": [{"protocol": pb.Protocol.Name(p.protocol).lower(), "container_port": p.container_port,
                               "host_port": p.host_port, "host_ip": p.host_ip} for p in c.port_mappings],
            "labels": dict(c.labels), "annotations": dict(c.annotations), "cgroup_parent": linux.cgroup_parent,
            "sysctls": dict(linux.sysctls),
            "host_network": ns.network == pb.NODE, "host_pid": ns.pid == pb.NODE, "host_ipc": ns.ipc == pb.NODE}


def _container_config(c) -> dict:
    if len(c.CDI_devices):
        raise CRIError(f"CDI devices ({', '.join(d.name for d in c.CDI_devices)}) are not supported yet",
                       "UNIMPLEMENTED")
    sc = c.linux.security_context
    r = c.linux.resources
    ns = sc.namespace_options
    return {"metadata": {"name": c.metadata.name, "attempt": c.metadata.attempt},
            "image": {"image": c.image.image, "annotations": dict(c.image.annotations)},
            "command": list(c.command), "args": list(c.args), "working_dir": c.working_dir,
            "envs": [{"key": kv.key, "value": kv.value} for kv in c.envs],
            "mounts": [{"container_path": m.container_path, "host_path": m.host_path, "readonly": m.readonly,
                        "propagation": m.propagation} for m in c.mounts],
            "devices": [{"container_path": d.container_path, "host_path": d.host_path,
                         "permissions": d.permissions} for d in c.devices],
            "labels": dict(c.labels), "annotations": dict(c.annotations), "log_path": c.log_path,
            "stdin": c.stdin, "tty": c.tty,
            "security_context": {
                "capabilities": {"add_capabilities": list(sc.capabilities.add_capabilities),
                                 "drop_capabilities": list(sc.capabilities.drop_capabilities)},
                "privileged": sc.privileged,
                "namespace_options": {"network": ns.network, "pid": ns.pid, "ipc": ns.ipc},
                "run_as_user": sc.run_as_user.value if sc.HasField("run_as_user") else None,
                "run_as_group": sc.run_as_group.value if sc.HasField("run_as_group") else None,
                "run_as_username": sc.run_as_username, "readonly_rootfs": sc.readonly_rootfs,
                "supplemental_groups": list(sc.supplemental_groups), "no_new_privs": sc.no_new_privs,
                "masked_paths": list(sc.masked_paths), "readonly_paths": list(sc.readonly_paths),
                "seccomp": ({"profile_type": sc.seccomp.profile_type, "localhost_ref": sc.seccomp.localhost_ref}
                            if sc.HasField("seccomp") else
                            {"profile_type": 2, "localhost_ref": sc.seccomp_profile_path[len("localhost/"):]}
                            if sc.seccomp_profile_path.startswith("localhost/") else
                            {"profile_type": 0} if sc.seccomp_profile_path in ("runtime/default", "docker/default")
                            else {}),
            },
            "resources": {"cpu_period": r.cpu_period, "cpu_quota": r.cpu_quota, "cpu_shares": r.cpu_shares,
                          "memory_limit_in_bytes": r.memory_limit_in_bytes, "oom_score_adj": r.oom_score_adj,
                          "cpuset_cpus": r.cpuset_cpus, "cpuset_mems": r.cpuset_mems,
                          "memory_swap_limit_in_bytes": r.memory_swap_limit_in_bytes,
                          "hugepage_limits": [{"page_size": h.page_size, "limit": h.limit}
                                              for h in r.hugepage_limits]}}


def _image_msg(d: dict):
    img = pb.Image(id=d["id"], repo_tags=d["repo_tags"], repo_digests=d["repo_digests"], size=d["size"],
                   username=d["username"])
    if d["uid"] is not None:
        img.uid.value = d["uid"]
    return img


class Runtime(pbg.RuntimeServiceServicer):
    def __init__(self, ctx: Context, lock):
        from .events import Events

        self.ctx, self.lock = ctx, lock
        self.pods = Pods(ctx)
        self.ctrs = Ctrs(ctx, self.pods)
        self.events = Events(ctx.containers.exits, self._exited)

    # -- GetContainerEvents (cri/events.py) ----------------------------------------------------
    def _event(self, cid: str, pod, etype) -> None:
        """Publishes an event of container (or pod) ``cid`` of ``pod`` (a record or an ID) with the
        pod's status and every container's, when somebody listens."""

        def make():
            p = pod if isinstance(pod, dict) else self.pods.get(pod)
            statuses = []
            for x in self.ctrs.ids_of(p["id"]):
                try:
                    statuses.append(self._ctr_status(self.ctrs.get(x)))
                except PalletError:  # removed meanwhile
                    pass
            return pb.ContainerEventResponse(container_id=cid, container_event_type=etype, created_at=time.time_ns(),
                                             pod_sandbox_status=self._pod_status(p), containers_statuses=statuses)

        self.events.publish(make)

    def _exited(self, cid: str) -> None:
        """conmon wrote ``cid``'s exit file: a container stopped, or a pod (its pause process)."""
        try:
            c = self.ctx.containers.get(cid)
        except PalletError:
            return
        cri = c["metadata"]["pallet"].get("cri") or {}
        if cri.get("kind") == "pause":
            self._event(cri["pod"], cri["pod"], pb.CONTAINER_STOPPED_EVENT)
        elif cri.get("kind") == "container":
            self._event(cid, cri["pod"], pb.CONTAINER_STOPPED_EVENT)

    def GetContainerEvents(self, request, context):
        q = self.events.subscribe()
        try:
            import queue

            while context.is_active():
                try:
                    yield q.get(timeout=1)
                except queue.Empty:
                    continue
        finally:
            self.events.unsubscribe(q)

    def _pod_id(self, text: str) -> str:
        """The full ID of a pod (its lock's key); an unknown one locks on the text."""
        return self.pods.resolve(text) or text

    def _ctr_lock(self, text: str):
        """The lock of the pod a container is in (an unknown container: its own text)."""
        try:
            return self.lock(self.ctrs.get(text)["metadata"]["pallet"]["cri"]["pod"])
        except CRIError:
            return self.lock(text)

    @rpc(locked=False)
    def Version(self, request, context):
        return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME,
                                  runtime_version=_version.__version__, runtime_api_version=API_VERSION)

    @rpc(locked=False)
    def Status(self, request, context):
        conds = [pb.RuntimeCondition(type="RuntimeReady", status=True)]
        try:
            net = cni.load(self.ctx.config.cni_config_dir)
            cni.check(net, self.ctx.config.cni_plugin_dirs)
            conds.append(pb.RuntimeCondition(type="NetworkReady", status=True))
        except CRIError as e:
            conds.append(pb.RuntimeCondition(type="NetworkReady", status=False, reason="NetworkPluginNotReady",
                                             message=str(e)))
        info = {}
        if request.verbose:
            from .._std import json

            c = self.ctx.config
            info["config"] = json.dumps({"runtime": self.ctx.runtime, "cgroupManager": c.cgroup_manager,
                                         "cniConfigDir": c.cni_config_dir, "cniPluginDirs": c.cni_plugin_dirs,
                                         "pauseCommand": c.pause_command, "root": self.ctx.store.graphroot,
                                         "runroot": self.ctx.store.runroot})
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conds), info=info)

    @rpc(locked=False)
    def UpdateRuntimeConfig(self, request, context):
        # the pod CIDR is the CNI configuration's business (host-local's ranges), as with CRI-O
        return pb.UpdateRuntimeConfigResponse()

    @rpc(locked=False)
    def RuntimeConfig(self, request, context):
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))

    # -- pods

    @rpc()
    def RunPodSandbox(self, request, context):
        pod_id = self.pods.run(_pod_config(request.config), request.runtime_handler)
        self._event(pod_id, pod_id, pb.CONTAINER_STARTED_EVENT)
        return pb.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    @rpc()
    def StopPodSandbox(self, request, context):
        with self.lock(self._pod_id(request.pod_sandbox_id)):
            self.pods.stop(request.pod_sandbox_id, self.ctrs)
        return pb.StopPodSandboxResponse()

    @rpc()
    def RemovePodSandbox(self, request, context):
        with self.lock(self._pod_id(request.pod_sandbox_id)):
            pod = None
            if self.events.active():  # its status as it was, for the event
                try:
                    pod = self.pods.get(request.pod_sandbox_id)
                except CRIError:
                    pass
            self.pods.remove(request.pod_sandbox_id, self.ctrs)
        if pod is not None:
            self._event(pod["id"], pod, pb.CONTAINER_DELETED_EVENT)
        return pb.RemovePodSandboxResponse()

    def _pod_status(self, pod: dict):
        md = pod["metadata"]
        ips = pod.get("ips") or []
        net = pb.PodSandboxNetworkStatus(ip=ips[0] if ips else "",
                                         additional_ips=[pb.PodIP(ip=i) for i in ips[1:]])
        nsopt = pb.NamespaceOption(network=pb.NODE if pod["host_network"] else pb.POD,
                                   pid=pb.NODE if pod["host_pid"] else pb.CONTAINER,
                                   ipc=pb.NODE if pod["host_ipc"] else pb.POD)
        return pb.PodSandboxStatus(
            id=pod["id"], metadata=pb.PodSandboxMetadata(**md),
            state=pb.SANDBOX_READY if self.pods.state(pod) == READY else pb.SANDBOX_NOTREADY,
            created_at=pod["created_at"], network=net,
            linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(options=nsopt)),
            labels=pod["labels"], annotations=pod["annotations"], runtime_handler=pod.get("runtime_handler", ""))

    @rpc()
    def PodSandboxStatus(self, request, context):
        pod = self.pods.get(request.pod_sandbox_id)
        info = {}
        if request.verbose:
            from .._std import json

            info["info"] = json.dumps({"pid": self.pods.pause_pid(pod) or 0, "netns": pod.get("netns") or "",
                                       "pause": pod.get("pause") or "", "cni": (pod.get("cni") or {}).get("name", "")})
        return pb.PodSandboxStatusResponse(status=self._pod_status(pod), info=info, timestamp=time.time_ns())

    @rpc()
    def ListPodSandbox(self, request, context):
        f = request.filter
        items = []
        for pod in self.pods.list():
            if pod.get("state") == "creating":
                continue
            if f.id and not pod["id"].startswith(f.id):
                continue
            ready = self.pods.state(pod) == READY
            state = pb.SANDBOX_READY if ready else pb.SANDBOX_NOTREADY
            if f.HasField("state") and f.state.state != state:
                continue
            if any(pod["labels"].get(k) != v for k, v in f.label_selector.items()):
                continue
            items.append(pb.PodSandbox(id=pod["id"], metadata=pb.PodSandboxMetadata(**pod["metadata"]), state=state,
                                       created_at=pod["created_at"], labels=pod["labels"],
                                       annotations=pod["annotations"],
                                       runtime_handler=pod.get("runtime_handler", "")))
        return pb.ListPodSandboxResponse(items=items)

    # -- containers

    @rpc()
    def CreateContainer(self, request, context):
        with self.lock(self._pod_id(request.pod_sandbox_id)):
            cid = self.ctrs.create(request.pod_sandbox_id, _container_config(request.config))
        self._event(cid, request.pod_sandbox_id, pb.CONTAINER_CREATED_EVENT)
        return pb.CreateContainerResponse(container_id=cid)

    @rpc()
    def StartContainer(self, request, context):
        with self._ctr_lock(request.container_id):
            self.ctrs.start(request.container_id)
        c = self.ctrs.get(request.container_id) if self.events.active() else None
        if c is not None:
            self._event(c["id"], c["metadata"]["pallet"]["cri"]["pod"], pb.CONTAINER_STARTED_EVENT)
        return pb.StartContainerResponse()

    @rpc()
    def StopContainer(self, request, context):
        # not under the pod's lock: the kubelet stops a pod's containers in parallel, each with
        # its grace period, and expects the pod down after the longest, not after their sum (the
        # containers model serialises what must be: two stops of one container, a stop and a remove)
        self.ctrs.stop(request.container_id, request.timeout)
        return pb.StopContainerResponse()

    @rpc()
    def RemoveContainer(self, request, context):
        c = None
        if self.events.active():
            try:
                c = self.ctrs.get(request.container_id)
            except CRIError:
                pass
        with self._ctr_lock(request.container_id):
            self.ctrs.remove(request.container_id)
        if c is not None:
            self._event(c["id"], c["metadata"]["pallet"]["cri"]["pod"], pb.CONTAINER_DELETED_EVENT)
        return pb.RemoveContainerResponse()

    @rpc()
    def ListContainers(self, request, context):
        f = request.filter
        state = _STATE_NAMES[f.state.state] if f.HasField("state") else None
        out = [pb.Container(id=c["id"], pod_sandbox_id=c["pod_sandbox_id"], metadata=pb.ContainerMetadata(**c["metadata"]),
                            image=pb.ImageSpec(**c["image"]), image_ref=c["image_ref"], state=_STATES[c["state"]],
                            created_at=c["created_at"], labels=c["labels"], annotations=c["annotations"])
               for c in self.ctrs.list(f.id, state, f.pod_sandbox_id, dict(f.label_selector))]
        return pb.ListContainersResponse(containers=out)

    @rpc()
    def ContainerStatus(self, request, context):
        c = self.ctrs.get(request.container_id)
        info = {}
        if request.verbose:
            from .._std import json

            info["info"] = json.dumps({"pid": self.ctrs.status(c)["pid"], "runtime": self.ctx.runtime})
        return pb.ContainerStatusResponse(status=self._ctr_status(c), info=info)

    def _ctr_status(self, c: dict):
        s = self.ctrs.status(c)
        mounts = [pb.Mount(container_path=m["container_path"], host_path=m["host_path"], readonly=m["readonly"],
                           propagation=m["propagation"]) for m in s["mounts"]]
        st = pb.ContainerStatus(id=s["id"], metadata=pb.ContainerMetadata(**s["metadata"]), state=_STATES[s["state"]],
                                created_at=s["created_at"], started_at=s["started_at"], finished_at=s["finished_at"],
                                exit_code=s["exit_code"], image=pb.ImageSpec(**s["image"]), image_ref=s["image_ref"],
                                reason=s["reason"], message=s["message"], labels=s["labels"],
                                annotations=s["annotations"], mounts=mounts, log_path=s["log_path"])
        return st

    @rpc(locked=False)
    def ExecSync(self, request, context):
        out, err, code = self.ctrs.exec_sync(request.container_id, list(request.cmd), request.timeout)
        return pb.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    @rpc()
    def UpdateContainerResources(self, request, context):
        with self._ctr_lock(request.container_id):
            self._update(request)
        return pb.UpdateContainerResourcesResponse()

    def _update(self, request):
        r = request.linux
        self.ctrs.update_resources(request.container_id, {
            "cpu_period": r.cpu_period, "cpu_quota": r.cpu_quota, "cpu_shares": r.cpu_shares,
            "memory_limit_in_bytes": r.memory_limit_in_bytes, "cpuset_cpus": r.cpuset_cpus,
            "cpuset_mems": r.cpuset_mems, "memory_swap_limit_in_bytes": r.memory_swap_limit_in_bytes,
            "hugepage_limits": [{"page_size": h.page_size, "limit": h.limit} for h in r.hugepage_limits],
            "unified": dict(r.unified)})

    @rpc()
    def ReopenContainerLog(self, request, context):
        with self._ctr_lock(request.container_id):
            self.ctrs.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    # -- streaming: a URL on the streaming server (cri/streaming.py) ---------------------------
    def _stream_url(self, kind: str, **values) -> str:
        srv = getattr(self.ctx, "streaming", None)
        if srv is None:
            raise CRIError("the streaming server is not running", "UNAVAILABLE")
        return srv.url(kind, **values)

    def _running(self, text: str) -> dict:
        c = self.ctrs.get(text)
        if self.ctrs.state(c)[0] != RUNNING:
            raise CRIError(f"container {c['id'][:13]} is not running", "FAILED_PRECONDITION")
        return c

    @staticmethod
    def _check_streams(request) -> None:
        if not (request.stdin or request.stdout or request.stderr):
            raise CRIError("one of stdin, stdout and stderr must be requested", "INVALID_ARGUMENT")
        if request.tty and request.stderr:  # the kubelet's rule: a terminal has one output
            raise CRIError("tty and stderr cannot both be requested", "INVALID_ARGUMENT")

    @rpc(locked=False)
    def Exec(self, request, context):
        c = self._running(request.container_id)
        if not request.cmd:
            raise CRIError("Exec: no command", "INVALID_ARGUMENT")
        self._check_streams(request)
        runtime = c["metadata"]["pallet"]["runtime"]
        return pb.ExecResponse(url=self._stream_url("exec", cid=c["id"], runtime=runtime, cmd=list(request.cmd),
                                                    tty=request.tty, stdin=request.stdin, stdout=request.stdout,
                                                    stderr=request.stderr))

    @rpc(locked=False)
    def Attach(self, request, context):
        c = self._running(request.container_id)
        self._check_streams(request)
        return pb.AttachResponse(url=self._stream_url("attach", cid=c["id"], tty=request.tty, stdin=request.stdin,
                                                      stdout=request.stdout, stderr=request.stderr))

    @rpc(locked=False)
    def PortForward(self, request, context):
        pod = self.pods.get(request.pod_sandbox_id)
        if self.pods.state(pod) != READY:
            raise CRIError(f"pod sandbox {pod['id'][:13]} is not ready", "FAILED_PRECONDITION")
        ports = [int(p) for p in request.port]
        if any(not 0 < p < 65536 for p in ports):
            raise CRIError(f"PortForward: invalid port in {ports}", "INVALID_ARGUMENT")
        return pb.PortForwardResponse(url=self._stream_url("portforward", pod=pod["id"], ports=ports,
                                                           netns=None if pod["host_network"] else pod["netns"]))
    def _container_stats(self, c: dict, now: int):
        cri = c["metadata"]["pallet"]["cri"]
        u = self.ctrs.stats(c)
        v = lambda k: pb.UInt64Value(value=u[k]) if u.get(k) is not None else None  # noqa: E731
        attrs = pb.ContainerAttributes(id=c["id"], metadata=pb.ContainerMetadata(**cri["metadata"]),
                                       labels=cri["labels"], annotations=cri["annotations"])
        avail = None
        if u.get("limit") is not None and u.get("working_set") is not None and u["limit"] < 1 << 62:
            avail = pb.UInt64Value(value=max(0, u["limit"] - u["working_set"]))
        return pb.ContainerStats(
            attributes=attrs,
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=v("cpu_ns"), usage_nano_cores=v("nano_cores")),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=v("working_set"), usage_bytes=v("memory_usage"),
                                  rss_bytes=v("rss"), page_faults=v("page_faults"),
                                  major_page_faults=v("major_page_faults"), available_bytes=avail),
            writable_layer=pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=u["fs_mount"]),
                                              used_bytes=pb.UInt64Value(value=u["fs_used"]),
                                              inodes_used=pb.UInt64Value(value=u["fs_inodes"])))

    @rpc()
    def ContainerStats(self, request, context):
        return pb.ContainerStatsResponse(stats=self._container_stats(self.ctrs.get(request.container_id),
                                                                     time.time_ns()))

    @rpc()
    def ListContainerStats(self, request, context):
        f = request.filter
        now = time.time_ns()
        out = [self._container_stats(self.ctrs.get(c["id"]), now)
               for c in self.ctrs.list(f.id, None, f.pod_sandbox_id, dict(f.label_selector))]
        return pb.ListContainerStatsResponse(stats=out)

    def _pod_stats(self, pod: dict, now: int):
        from . import stats

        md = pod["metadata"]
        ctrs = [self._container_stats(self.ctrs.get(cid), now) for cid in self.ctrs.ids_of(pod["id"])]
        total = lambda get: sum(get(c).value for c in ctrs if get(c) is not None)  # noqa: E731
        cpu = total(lambda c: c.cpu.usage_core_nano_seconds if c.cpu.HasField("usage_core_nano_seconds") else None)
        ws = total(lambda c: c.memory.working_set_bytes if c.memory.HasField("working_set_bytes") else None)
        usage = total(lambda c: c.memory.usage_bytes if c.memory.HasField("usage_bytes") else None)
        pid = self.pods.pause_pid(pod)
        ifaces = [pb.NetworkInterfaceUsage(name=i["name"], rx_bytes=pb.UInt64Value(value=i["rx_bytes"]),
                                           rx_errors=pb.UInt64Value(value=i["rx_errors"]),
                                           tx_bytes=pb.UInt64Value(value=i["tx_bytes"]),
                                           tx_errors=pb.UInt64Value(value=i["tx_errors"]))
                  for i in (stats.net_dev(pid) if pid and not pod["host_network"] else [])]
        default = next((i for i in ifaces if i.name == "eth0"), None)
        procs = 0
        for cid in self.ctrs.ids_of(pod["id"]) + ([pod["pause"]] if pod.get("pause") else []):
            try:
                cg = (self.ctx.containers.spec(cid).get("linux") or {}).get("cgroupsPath") or ""
            except PalletError:
                continue
            procs += stats.cgroup_usage(cg).get("pids") or 0 if cg else 0
        nano = stats.nano_cores("pod-" + pod["id"], cpu, pod.get("created_at") or None)
        linux = pb.LinuxPodSandboxStats(
            cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(value=cpu),
                            usage_nano_cores=pb.UInt64Value(value=nano) if nano is not None else None),
            memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(value=ws),
                                  usage_bytes=pb.UInt64Value(value=usage)),
            network=pb.NetworkUsage(timestamp=now, default_interface=default, interfaces=ifaces),
            process=pb.ProcessUsage(timestamp=now, process_count=pb.UInt64Value(value=procs)),
            containers=ctrs)
        return pb.PodSandboxStats(attributes=pb.PodSandboxAttributes(id=pod["id"], metadata=pb.PodSandboxMetadata(**md),
                                                                     labels=pod["labels"],
                                                                     annotations=pod["annotations"]),
                                  linux=linux)

    @rpc()
    def PodSandboxStats(self, request, context):
        return pb.PodSandboxStatsResponse(stats=self._pod_stats(self.pods.get(request.pod_sandbox_id), time.time_ns()))

    @rpc()
    def ListPodSandboxStats(self, request, context):
        f = request.filter
        now = time.time_ns()
        out = [self._pod_stats(p, now) for p in self.pods.list()
               if p.get("state") != "creating" and (not f.id or p["id"].startswith(f.id))
               and not any(p["labels"].get(k) != v for k, v in f.label_selector.items())]
        return pb.ListPodSandboxStatsResponse(stats=out)
    CheckpointContainer = _unimplemented("CheckpointContainer")
    ListMetricDescriptors = _unimplemented("ListMetricDescriptors")
    ListPodSandboxMetrics = _unimplemented("ListPodSandboxMetrics")



class Images(pbg.ImageServiceServicer):
    def __init__(self, ctx: Context, lock):
        self.ctx, self.lock = ctx, lock

    @rpc()
    def ListImages(self, request, context):
        return pb.ListImagesResponse(images=[_image_msg(d) for d in
                                             imagesvc.list_images(self.ctx.store, request.filter.image.image)])

    @rpc()
    def ImageStatus(self, request, context):
        rec = imagesvc.lookup(self.ctx.store, request.image.image)
        if rec is None:
            return pb.ImageStatusResponse()  # no image: an empty answer, not an error (the CRI's rule)
        return pb.ImageStatusResponse(image=_image_msg(imagesvc.describe(self.ctx.store, rec)))

    @rpc(locked=False)
    def PullImage(self, request, context):
        a = request.auth
        auth = {"username": a.username, "password": a.password, "auth": a.auth, "identity_token": a.identity_token,
                "registry_token": a.registry_token}
        # pulls run beside other RPCs: the store's own locks keep them apart
        ref = imagesvc.pull(self.ctx.store, request.image.image, auth, self.ctx.config.registries_conf or None)
        return pb.PullImageResponse(image_ref=ref)

    @rpc()
    def RemoveImage(self, request, context):
        imagesvc.remove(self.ctx.store, request.image.image)
        return pb.RemoveImageResponse()

    @rpc()
    def ImageFsInfo(self, request, context):
        root = self.ctx.store.graphroot
        used, inodes = imagesvc.fs_usage(root)
        u = pb.FilesystemUsage(timestamp=time.time_ns(), fs_id=pb.FilesystemIdentifier(mountpoint=root),
                               used_bytes=pb.UInt64Value(value=used), inodes_used=pb.UInt64Value(value=inodes))
        return pb.ImageFsInfoResponse(image_filesystems=[u], container_filesystems=[u])


def add_to(server, ctx: Context) -> PodLocks:
    locks = PodLocks()
    pbg.add_RuntimeServiceServicer_to_server(Runtime(ctx, locks), server)
    pbg.add_ImageServiceServicer_to_server(Images(ctx, locks), server)
    return locks


__all__ = ["add_to", "Runtime", "Images", "os"]
