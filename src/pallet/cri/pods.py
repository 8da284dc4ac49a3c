"""Pod sandboxes: a network namespace attached through CNI and a pause container holding the
pod's IPC and UTS (and PID) namespaces, ``catatonit -P`` under conmon like any container of
the ``containers`` model (so it outlives a server restart), its root an empty store layer with
the host's static pause binary bound read-only at ``/pause``.

Records: ``GRAPHROOT/pallet-cri/pods/ID/pod.json`` (what RunPodSandbox was asked and made:
metadata, hostname, DNS, ports, labels, annotations, namespaces, the netns path, the CNI
result and addresses, the pause container's ID), ``resolv.conf`` and ``hostname`` beside it,
bound into the pod's containers. Every change is a whole-file replace; the server serialises
the RPCs that change a pod.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

from .._std import json
from ..errors import ContainerNotFound, CRIError, PalletError
from . import cni

READY, NOTREADY = "ready", "notready"
#: the cgroup parent of pods the kubelet gives none
DEFAULT_CGROUP_PARENT = "/pallet-cri"


def now_ns() -> int:
    return time.time_ns()


def check_name(value: str, what: str, limit: int = 253) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or not value.isascii() \
            or not all(c.isalnum() or c in "-._" for c in value):
        raise CRIError(f"{what} {value!r}: want 1 to {limit} letters, digits, '-', '.' or '_'", "INVALID_ARGUMENT")
    return value


def _write_json(path: str, doc: dict) -> None:
    """A whole-file replace, not synced: the record is run-time state (the pod's namespaces,
    processes and addresses do not outlive the machine either), and a killed server's writes are
    in the page cache for the next one; the rename keeps a reader from a half-written file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


class _Attach:
    """``cni.add`` in a thread of its own; ``join`` returns its result or raises its error."""

    def __init__(self, *args):
        self._result, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=args, name="cni-add", daemon=True)
        self._thread.start()

    def _run(self, *args) -> None:
        try:
            self._result = cni.add(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the joining thread
            self._error = e

    def join(self) -> dict:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


class Context:
    """What pods and containers share: the store, the containers model, the configuration."""

    def __init__(self, store, config, global_args: list[str]):
        from ..containers.container import Containers, runtime_path

        self.store, self.config = store, config
        self.containers = Containers(store, global_args)
        self.runtime = runtime_path(config.runtime)
        #: the runtime handlers (RuntimeClass names) and their runtimes, resolved now
        self.handlers = {"": self.runtime}
        for name, rt in config.runtimes.items():
            try:
                self.handlers[name] = runtime_path(rt)
            except PalletError as e:
                from ..errors import ConfigError

                raise ConfigError(f"runtime handler {name!r}: {e}") from None
        self.base = os.path.join(store.graphroot, "pallet-cri")
        self.pods_dir = os.path.join(self.base, "pods")
        os.makedirs(self.pods_dir, 0o700, exist_ok=True)


class Pods:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._reserve = threading.Lock()
        #: pod name key -> the ID of the last pod made with it (read from the records once, then
        #: kept up by ``run``; an ID whose record is gone frees its key): no listing of every pod
        #: under the lock at each RunPodSandbox
        self._keys: dict | None = None

    # -- records ------------------------------------------------------------------------------

    def _dir(self, pid: str) -> str:
        return os.path.join(self.ctx.pods_dir, pid)

    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.ctx.pods_dir) if len(n) == 64 and
                    os.path.exists(os.path.join(self.ctx.pods_dir, n, "pod.json"))]
        except FileNotFoundError:
            return []

    def _read(self, pid: str) -> dict | None:
        try:
            with open(os.path.join(self._dir(pid), "pod.json"), "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _save(self, pod: dict) -> None:
        _write_json(os.path.join(self._dir(pod["id"]), "pod.json"), pod)

    def resolve(self, text: str) -> str | None:
        """A pod's ID by its ID or a unique prefix (crictl's short IDs)."""
        if not isinstance(text, str) or not text or not all(c in "0123456789abcdef" for c in text):
            return None
        if len(text) == 64:  # a full ID: no listing
            return text if os.path.exists(os.path.join(self.ctx.pods_dir, text, "pod.json")) else None
        found = [p for p in self.ids() if p.startswith(text)]
        return found[0] if len(found) == 1 else None

    def get(self, text: str) -> dict:
        pid = self.resolve(text)
        pod = self._read(pid) if pid else None
        if pod is None:
            raise CRIError(f"pod sandbox {text!r} not found", "NOT_FOUND")
        return pod

    def list(self) -> list[dict]:
        return [p for p in (self._read(i) for i in self.ids()) if p is not None]

    def state(self, pod: dict) -> str:
        """Ready while its pause process runs (a restarted server asks the same question)."""
        if pod.get("state") != READY:
            return NOTREADY
        pause = pod.get("pause")
        if not pause:
            return NOTREADY
        try:
            st = self.ctx.containers.state(pause)
        except PalletError:
            return NOTREADY
        return READY if st.get("state") == "running" else NOTREADY

    def pause_pid(self, pod: dict) -> int | None:
        try:
            st = self.ctx.containers.state(pod["pause"])
        except (PalletError, KeyError, TypeError):
            return None
        return st.get("pid") if st.get("state") == "running" else None

    # -- RunPodSandbox ------------------------------------------------------------------------

    def run(self, config: dict, runtime_handler: str = "") -> str:
        """A ready pod from ``config`` (the request's PodSandboxConfig as a dict of plain
        values); nothing is left behind when a step fails."""
        runtime = self.ctx.handlers.get(runtime_handler or "")
        if runtime is None:
            raise CRIError(f"runtime handler {runtime_handler!r} is not configured (cri.conf's [runtimes]: "
                           f"{', '.join(sorted(h for h in self.ctx.handlers if h)) or 'none'})", "INVALID_ARGUMENT")
        md = config.get("metadata") or {}
        name = check_name(md.get("name", ""), "pod name")
        namespace = check_name(md.get("namespace", "") or "default", "pod namespace")
        uid = check_name(md.get("uid", "") or "none", "pod uid")
        attempt = int(md.get("attempt") or 0)
        key = f"{name}_{namespace}_{uid}_{attempt}"
        # none given: the node's, as containerd does (the pod name may be longer than a hostname)
        hostname = config.get("hostname") or os.uname().nodename
        check_name(hostname, "hostname", 64)
        log_dir = config.get("log_directory") or ""
        if log_dir and not log_dir.startswith("/"):
            raise CRIError(f"log_directory {log_dir!r}: not an absolute path", "INVALID_ARGUMENT")
        dns = config.get("dns") or {}
        for field in ("servers", "searches", "options"):  # each a word of the pod's resolv.conf
            for v in dns.get(field) or []:
                if not isinstance(v, str) or not v or len(v) > 253 or not v.isascii() or not v.isprintable() \
                        or " " in v:
                    raise CRIError(f"dns_config.{field} {v!r}: want one word of printable ASCII (a newline would add "
                                   "lines to the pod's resolv.conf)", "INVALID_ARGUMENT")
        parent = config.get("cgroup_parent") or DEFAULT_CGROUP_PARENT
        if not parent.startswith("/") or ".." in parent.split("/") or "\0" in parent:
            raise CRIError(f"cgroup_parent {parent!r}: want an absolute cgroup path", "INVALID_ARGUMENT")
        ports = []
        for p in config.get("port_mappings") or []:
            cport, hport = int(p.get("container_port") or 0), int(p.get("host_port") or 0)
            if not 0 < cport < 65536 or not 0 <= hport < 65536:
                raise CRIError(f"port mapping {p}: ports must be in 1..65535", "INVALID_ARGUMENT")
            if hport:  # no host port: nothing to map (as containerd and CRI-O drop them)
                ports.append({"containerPort": cport, "hostPort": hport, "protocol": p.get("protocol", "tcp"),
                              "hostIP": p.get("host_ip", "")})
        host_net, host_ipc, host_pid = (bool(config.get(k)) for k in ("host_network", "host_ipc", "host_pid"))
        sysctls = dict(config.get("sysctls") or {})
        for k, v in sysctls.items():
            if not k or not all(c.isalnum() or c in "._-" for c in k) or ".." in k or not isinstance(v, str):
                raise CRIError(f"sysctl {k!r}: not a sysctl name", "INVALID_ARGUMENT")
            # namespaced ones only, and only those of namespaces the pod has of its own
            if k.startswith("net.") and host_net or (k.startswith(("kernel.shm", "kernel.msg", "kernel.sem",
                                                                  "fs.mqueue.")) and host_ipc):
                raise CRIError(f"sysctl {k}: the pod shares the host's namespace for it", "INVALID_ARGUMENT")
            if not k.startswith(("net.", "kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")):
                raise CRIError(f"sysctl {k}: not a namespaced sysctl", "INVALID_ARGUMENT")
        net = None
        if not host_net:
            net = cni.load(self.ctx.config.cni_config_dir)
            cni.check(net, self.ctx.config.cni_plugin_dirs)
        pid = os.urandom(32).hex()
        d = self._dir(pid)
        pod = {"id": pid, "key": key, "metadata": {"name": name, "uid": uid, "namespace": namespace,
                                                   "attempt": attempt},
               "hostname": hostname, "log_directory": log_dir, "dns": dns,
               "port_mappings": ports, "labels": dict(config.get("labels") or {}),
               "annotations": dict(config.get("annotations") or {}), "cgroup_parent": parent,
               "host_network": host_net, "host_ipc": host_ipc, "host_pid": host_pid, "sysctls": sysctls,
               "runtime_handler": runtime_handler, "runtime": runtime, "created_at": now_ns(), "state": "creating",
               "netns": None, "network": None, "cni": None, "ips": [], "pause": None}
        with self._reserve:  # the name is checked and the record made at once: two requests, one pod
            if self._keys is None:
                self._keys = {p["key"]: p["id"] for p in self.list() if isinstance(p.get("key"), str)}
            other = self._keys.get(key)
            if other is not None and os.path.exists(os.path.join(self._dir(other), "pod.json")):
                raise CRIError(f"pod sandbox name {key!r} is reserved for {other}", "ALREADY_EXISTS")
            os.makedirs(d, 0o700)
            try:
                self._save(pod)
            except BaseException:
                shutil.rmtree(d, ignore_errors=True)
                raise
            self._keys[key] = pid
        attach = None
        try:
            self._write_etc(d, pod)
            if net is not None:
                from ..containers.network import netns

                pod["netns"] = netns.create_threaded(self.ctx.store.runroot, "cri-" + pid[:12])
                pod["network"] = net.name
                pod["cni"] = {"path": net.path, "name": net.name}
                self._save(pod)  # before any plugin runs: a restarted server can detach it
                # the CNI plugins attach the namespace while this thread makes and starts the pause
                # container (it only needs the namespace's path); both are done before the pod is ready
                attach = _Attach(net, pid, pod["netns"], self._cni_args(pod), self.ctx.config.cni_plugin_dirs,
                                 {"portMappings": ports})
            try:
                pod["pause"] = self._make_pause(pod)
                self._save(pod)
                self.ctx.containers.start(pod["pause"])
            finally:
                result = attach.join() if attach is not None else None  # its error first: it ran first
            if attach is not None:
                pod["cni"]["result"] = result
                pod["ips"] = cni.ips(result)
                self._write_etc(d, pod)
            pod["state"] = READY
            self._save(pod)
        except BaseException:
            try:
                self._teardown(pod, remove=True)
            finally:
                shutil.rmtree(d, ignore_errors=True)
            raise
        return pid

    def _cni_args(self, pod: dict) -> str:
        md = pod["metadata"]
        return cni.k8s_args(md["name"], md["namespace"], md["uid"], pod["id"])

    def _write_etc(self, d: str, pod: dict) -> None:
        dns = pod["dns"]
        lines = []
        if dns.get("servers") or dns.get("searches") or dns.get("options"):
            lines += [f"nameserver {s}" for s in dns.get("servers") or []]
            if dns.get("searches"):
                lines.append("search " + " ".join(dns["searches"]))
            if dns.get("options"):
                lines.append("options " + " ".join(dns["options"]))
        else:  # the host's, as CRI-O and containerd do when the kubelet gives none
            from .._fs import text_lines

            lines = [ln for ln in text_lines("/etc/resolv.conf", []) if ln.strip()]
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        hosts += [f"{ip}\t{pod['hostname']}" for ip in pod["ips"]] or [f"127.0.1.1\t{pod['hostname']}"]
        for fname, text in (("resolv.conf", "".join(ln + "\n" for ln in lines)),
                            ("hostname", pod["hostname"] + "\n"), ("hosts", "\n".join(hosts) + "\n")):
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)
            os.chmod(os.path.join(d, fname), 0o644)

    def _make_pause(self, pod: dict) -> str:
        from ..oci import runtime_spec as rs

        cmd = list(self.ctx.config.pause_command)
        exe = cmd[0]
        if not os.path.isabs(exe) or not os.access(exe, os.X_OK):
            raise CRIError(f"pause command {exe}: not an executable file (install Debian's catatonit, or set "
                           "pause_command in cri.conf)", "FAILED_PRECONDITION")
        md = pod["metadata"]
        name = f"k8s_POD_{md['name']}_{md['namespace']}_{md['uid']}_{md['attempt']}"
        netmode = "host" if pod["host_network"] else "ns:" + pod["netns"]
        meta = {"name": name, "image_name": "", "image_id": None, "command": cmd[1:], "entrypoint": ["/pause"],
                "env": [], "user": "0", "workdir": None, "networks": [netmode],
                "network_mode": "host" if pod["host_network"] else "ns", "publish": [], "network_config_dir": None,
                "hostname": pod["hostname"], "cap_add": [], "cap_drop": [], "privileged": False,
                "read_only": True, "tmpfs": [], "binds": [], "memory": None, "cpus": None, "pids_limit": None,
                "stop_signal": 15, "labels": {"io.kubernetes.pod.sandbox": pod["id"]}, "rm": False,
                "image_digest": None, "create_command": [], "interactive": False, "tty": False,
                "runtime": pod["runtime"], "restart": "no", "args": ["/pause"] + cmd[1:],
                "cri": {"kind": "pause", "pod": pod["id"]}}
        namespaces = [rs.Namespace("mount"), rs.Namespace("network")]
        if not pod["host_pid"]:
            namespaces.append(rs.Namespace("pid"))
        if not pod["host_ipc"]:
            namespaces.append(rs.Namespace("ipc"))
        if not pod["host_network"]:
            namespaces.append(rs.Namespace("uts"))
        d = self._dir(pod["id"])

        def spec(cid: str) -> dict:
            o = rs.SpecOptions(rootfs="rootfs", entrypoint=("/pause",), command=tuple(cmd[1:]) or None,
                               hostname=pod["hostname"], namespaces=tuple(namespaces), readonly_rootfs=True,
                               mounts=(rs.Mount.bind(exe, "/pause", readonly=True),
                                       rs.Mount.bind(os.path.join(d, "resolv.conf"), "/etc/resolv.conf",
                                                     readonly=True),
                                       rs.Mount.bind(os.path.join(d, "hostname"), "/etc/hostname", readonly=True)),
                               cgroups_path=f"{pod['cgroup_parent']}/pallet-{cid}", sysctl=pod["sysctls"],
                               annotations={"io.kubernetes.cri.sandbox-id": pod["id"]})
            doc = rs.generate(o, {})
            doc["_user"] = "0"
            return doc

        return self.ctx.containers.create_record(None, name, meta, spec)["id"]

    def recover(self) -> list[str]:
        """At start: a pod a killed server left half-made (``creating``) is torn down and removed
        (its pause container, CNI attachment, namespace, record); the IDs removed."""
        gone = []
        for pod in self.list():
            if pod.get("state") == "creating":
                if pod.get("pause"):
                    self._delete_from_runtime(pod)
                try:
                    self._teardown(pod, remove=True)
                except (PalletError, OSError) as e:  # kept for the next start; the server serves on
                    import logging  # (the server's: grpc has it imported already)

                    logging.getLogger("pallet").warning("cannot tear down half-made pod %s yet: %s", pod["id"][:12], e)
                    self._save(pod)
                    continue
                shutil.rmtree(self._dir(pod["id"]), ignore_errors=True)
                gone.append(pod["id"])
        return gone

    def _delete_from_runtime(self, pod: dict) -> None:
        """The pause container is started while the CNI plugins run: a server killed then may have
        left it made by the runtime (``create`` done under conmon) before its state said so, so
        the runtime is asked to delete it (its process killed, its cgroup removed) whatever the
        state says; one it does not know is fine."""
        from .._std import proc  # its spawn lets the server's other threads run

        runtime = pod.get("runtime") or self.ctx.runtime
        try:
            proc.run([runtime, "--root", self.ctx.containers.oci_root, "delete", "--force", pod["pause"]],
                     capture_output=True, stdin=proc.DEVNULL, timeout=60)
        except (OSError, proc.TimeoutExpired):
            pass

    # -- Stop / Remove ------------------------------------------------------------------------

    def _teardown(self, pod: dict, remove: bool = False) -> None:
        """Stop (and with ``remove`` remove) the pause container, detach CNI, delete the netns:
        every step tried, the first error raised after."""
        errors = []
        if pod.get("pause"):
            try:
                if remove:
                    self.ctx.containers.remove(pod["pause"], force=True, timeout=0)
                    pod["pause"] = None
                else:
                    self.ctx.containers.stop(pod["pause"], timeout=0)
            except ContainerNotFound:
                pod["pause"] = None
            except PalletError as e:
                errors.append(e)
        if pod.get("netns"):
            if pod.get("cni"):
                try:
                    net = cni.load(os.path.dirname(pod["cni"]["path"]))
                    if net.name != pod["cni"]["name"]:
                        net = None
                except CRIError:
                    net = None
                if net is not None:
                    try:
                        cni.delete(net, pod["id"], pod["netns"], self._cni_args(pod), self.ctx.config.cni_plugin_dirs,
                                   pod["cni"].get("result"), {"portMappings": pod["port_mappings"]})
                    except CRIError as e:
                        errors.append(e)
            from ..containers.network import netns

            try:
                netns.remove(pod["netns"])
                pod["netns"] = None
                pod["cni"] = None
            except PalletError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def stop(self, text: str, ctrs) -> None:
        pid = self.resolve(text)
        pod = self._read(pid) if pid else None
        if pod is None:
            return  # idempotent, as the kubelet expects
        for cid in ctrs.ids_of(pod["id"]):
            ctrs.stop(cid, 0)
        pod["state"] = NOTREADY
        self._save(pod)
        try:
            self._teardown(pod)
        finally:
            self._save(pod)

    def remove(self, text: str, ctrs) -> None:
        pid = self.resolve(text)
        pod = self._read(pid) if pid else None
        if pod is None:
            return
        for cid in ctrs.ids_of(pod["id"]):
            ctrs.remove(cid)
        from . import stats

        stats.forget("pod-" + pod["id"])
        pod["state"] = NOTREADY
        self._save(pod)
        try:
            self._teardown(pod, remove=True)
        finally:
            self._save(pod)
        shutil.rmtree(self._dir(pod["id"]), ignore_errors=True)
