#!/usr/bin/env python3
"""The CRI server's pod start, side by side with containerd 1.6 (Debian's) on the same CRI calls:
RunPodSandbox + CreateContainer + StartContainer of the demo busybox image to a running container
(medians of RUNS, the servers interleaved A, B, C, A, B, C..., each pod removed untimed afterwards),
and PODS pods started in parallel (one client thread each; ROUNDS rounds, the servers in turn)
with each server's peak RSS and CPU time during the parallel start (its own, and its reaped
children's: containerd's shims, one per pod, are not its children and not counted).

Three servers, one run: pallet with its default runtime (pallet-runtime), pallet with the runtime
handler ``runc`` (the runtime containerd uses), and containerd (runc through its shim; skipped
when /usr/bin/containerd is not installed). Both pull the same two images from a local
docker-registry: the demo busybox and a pause image for containerd holding the host's catatonit
(pallet binds the host's catatonit itself). Each has its own CNI bridge and subnet.

usage (as root): .venv/bin/python bench/cri.py [RUNS] [PODS]
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import ENV, PALLET, REPO, Registry, precompile  # noqa: E402

CGROUP_PARENT = "/pallet-cri-bench"
CONTAINERD = "/usr/bin/containerd"
ROUNDS = 2  # of the parallel start


def free_subnets(n: int) -> list:
    from pallet.containers.network import subnets

    taken = subnets.host_networks() + [net for net, _ in subnets.other_tools()]
    out = []
    for i in range(250):
        net = ipaddress.ip_network(f"10.251.{i}.0/24")
        if subnets.overlapping(net, taken) is None:
            out.append(net)
            if len(out) == n:
                return out
    raise SystemExit("no free /24")


def cni_conf(d: str, name: str, bridge: str, subnet, ipam_dir: str) -> None:
    os.makedirs(d)
    with open(f"{d}/10-{name}.conflist", "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": name, "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": ipam_dir, "ranges": [[{"subnet": str(subnet)}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)


def pause_layout(root: str) -> None:
    """An OCI layout of one layer: the host's static catatonit at /pause, run as ``/pause -P``."""
    os.makedirs(f"{root}/blobs/sha256")

    def put(data: bytes) -> tuple[str, int]:
        d = hashlib.sha256(data).hexdigest()
        with open(f"{root}/blobs/sha256/{d}", "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    raw = io.BytesIO()
    with open("/usr/bin/catatonit", "rb") as src, tarfile.open(fileobj=raw, mode="w") as tf:
        data = src.read()
        ti = tarfile.TarInfo("pause")
        ti.size, ti.mode, ti.mtime = len(data), 0o755, 1700000000
        tf.addfile(ti, io.BytesIO(data))
    layer, layer_size = put(gzip.compress(raw.getvalue(), mtime=0))
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/pause", "-P"]},
                             "rootfs": {"type": "layers",
                                        "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()]}}
                            ).encode())
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config[0], "size": config[1]},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                           "digest": layer, "size": layer_size}]}).encode())
    with open(f"{root}/oci-layout", "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(f"{root}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": manifest[0], "size": manifest[1],
                   "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)


class Server:
    def __init__(self, name: str, argv: list[str], sock: str, log: str):
        self.name, self.sock = name, sock
        self.proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        self.log = log
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start: {open(log).read()[-3000:]}")
            time.sleep(0.05)

    def cpu(self) -> tuple[float, float]:
        """(the server's own CPU seconds, its reaped children's), from /proc/PID/stat."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick

    def hwm_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(runs: int, pods: int) -> None:
    import grpc

    from pallet.cri.api import runtime_v1_pb2 as pb
    from pallet.cri.api import runtime_v1_pb2_grpc as pbg

    precompile()
    w = tempfile.mkdtemp(prefix="cri-bench-")
    tag = os.getpid() % 100000
    servers: dict[str, Server] = {}
    clients: dict[str, tuple] = {}
    bridges = []
    registry = Registry(f"{w}/registry")
    try:
        subprocess.run([sys.executable, f"{REPO}/scripts/make-demo-image.py", f"{w}/busybox", "v1"], check=True,
                       capture_output=True)
        pause_layout(f"{w}/pause")
        busybox, pause = f"{registry.host}/bench/busybox:v1", f"{registry.host}/bench/pause:v1"
        for src, dst in ((f"{w}/busybox", busybox), (f"{w}/pause", pause)):
            subprocess.run([PALLET, "copy", "-q", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{dst}"],
                           check=True, capture_output=True, env=ENV)
        with_containerd = os.access(CONTAINERD, os.X_OK)
        nets = free_subnets(2 if with_containerd else 1)
        # pallet: one server, two runtime handlers ("" is pallet-runtime, "runc")
        os.makedirs(f"{w}/pallet/run")
        bridges.append(f"pcb{tag}")
        cni_conf(f"{w}/pallet/net.d", "cri-bench", bridges[-1], nets[0], f"{w}/pallet/ipam")
        with open(f"{w}/pallet/registries.conf", "w") as f:
            f.write(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
        with open(f"{w}/pallet/cri.conf", "w") as f:
            f.write(f'cni_config_dir = "{w}/pallet/net.d"\nregistries_conf = "{w}/pallet/registries.conf"\n'
                    '[runtimes]\nrunc = "runc"\n')
        sock = f"{w}/pallet/run/cri.sock"
        servers["pallet"] = Server("pallet", [PALLET, "--root", f"{w}/pallet/root", "--runroot", f"{w}/pallet/run",
                                              "cri", "serve", "--config", f"{w}/pallet/cri.conf",
                                              "--listen", "unix://" + sock], sock, f"{w}/pallet/server.log")
        ch = grpc.insecure_channel("unix://" + sock)
        clients["pallet"] = (pbg.RuntimeServiceStub(ch), pbg.ImageServiceStub(ch), "")
        clients["pallet-runc"] = (clients["pallet"][0], clients["pallet"][1], "runc")
        if with_containerd:
            c = f"{w}/containerd"
            bridges.append(f"ccb{tag}")
            cni_conf(f"{c}/net.d", "cri-bench-ctrd", bridges[-1], nets[1], f"{c}/ipam")
            os.makedirs(f"{c}/certs.d/{registry.host}")
            with open(f"{c}/certs.d/{registry.host}/hosts.toml", "w") as f:
                f.write(f'server = "http://{registry.host}"\n[host."http://{registry.host}"]\n'
                        '  capabilities = ["pull", "resolve"]\n')
            with open(f"{c}/config.toml", "w") as f:
                f.write(f'version = 2\nroot = "{c}/root"\nstate = "{c}/state"\n[grpc]\n  address = "{c}/ctrd.sock"\n'
                        '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n'
                        f'  sandbox_image = "{pause}"\n'
                        '  [plugins."io.containerd.grpc.v1.cri".cni]\n    bin_dir = "/usr/lib/cni"\n'
                        f'    conf_dir = "{c}/net.d"\n'
                        '  [plugins."io.containerd.grpc.v1.cri".registry]\n'
                        f'    config_path = "{c}/certs.d"\n')
            servers["containerd"] = Server("containerd", [CONTAINERD, "--config", f"{c}/config.toml"],
                                           f"{c}/ctrd.sock", f"{c}/containerd.log")
            ch = grpc.insecure_channel(f"unix://{c}/ctrd.sock")
            clients["containerd"] = (pbg.RuntimeServiceStub(ch), pbg.ImageServiceStub(ch), "")
        for name, (rt, im, _) in clients.items():
            rt.Version(pb.VersionRequest(), timeout=60)
            im.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=busybox)), timeout=300)

        def start(client: str, name: str) -> tuple[str, list[float]]:
            rt, _, handler = clients[client]
            t0 = time.perf_counter()
            cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=name, uid=name, namespace="bench"),
                                      hostname=name, log_directory=f"{w}/logs/{client}/{name}")
            cfg.linux.cgroup_parent = CGROUP_PARENT
            pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                   timeout=300).pod_sandbox_id
            t1 = time.perf_counter()
            cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image=busybox),
                                    command=["sleep", "3600"], log_path="c.log")
            cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid, config=cc, sandbox_config=cfg),
                                     timeout=300).container_id
            t2 = time.perf_counter()
            rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=300)
            t3 = time.perf_counter()
            return pid, [t3 - t0, t1 - t0, t2 - t1, t3 - t2]

        def remove(client: str, pid: str) -> None:
            rt = clients[client][0]
            rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=300)
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=300)

        times: dict[str, list] = {n: [] for n in clients}
        for i in range(runs + 1):
            for n in clients:
                pid, t = start(n, f"seq{i}")
                remove(n, pid)
                if i:  # the first warms the caches
                    times[n].append(t)
        print(f"one pod + container to running (busybox), median of {runs}, interleaved; ms: "
              "total (min-max) = RunPodSandbox + CreateContainer + StartContainer")
        ref = statistics.median(t[0] for t in times["containerd"]) if with_containerd else None
        for n, ts in times.items():
            med = [statistics.median(t[k] for t in ts) * 1000 for k in range(4)]
            ratio = f"  ratio to containerd {med[0] / 1000 / ref:.2f}" if ref else ""
            print(f"  {n:12} {med[0]:5.0f} ({min(t[0] for t in ts) * 1000:.0f}-{max(t[0] for t in ts) * 1000:.0f})"
                  f" = {med[1]:.0f} + {med[2]:.0f} + {med[3]:.0f}{ratio}")
        print(f"{pods} pods in parallel to running (one client thread each), {ROUNDS} rounds interleaved:")
        par: dict[str, list] = {n: [] for n in clients}
        cpu: dict[str, list] = {n: [] for n in clients}
        for r in range(ROUNDS):
            for n in clients:
                srv = servers["containerd" if n == "containerd" else "pallet"]
                c0 = srv.cpu()
                t0 = time.perf_counter()
                with ThreadPoolExecutor(pods) as ex:
                    started = list(ex.map(lambda i: start(n, f"par{r}x{i}"), range(pods)))
                par[n].append(time.perf_counter() - t0)
                c1 = srv.cpu()
                cpu[n].append((c1[0] - c0[0], c1[1] - c0[1]))
                with ThreadPoolExecutor(4) as ex:
                    list(ex.map(lambda p: remove(n, p[0]), started))
        for n, ts in par.items():
            srv = servers["containerd" if n == "containerd" else "pallet"]
            ratio = f"  ratio to containerd {statistics.mean(ts) / statistics.mean(par['containerd']):.2f}" \
                if n != "containerd" and "containerd" in par else ""
            own = statistics.mean(c[0] for c in cpu[n])
            kids = statistics.mean(c[1] for c in cpu[n])
            print(f"  {n:12} {' '.join(f'{t:.1f}' for t in ts)} s (mean {statistics.mean(ts):.1f}); "
                  f"server peak RSS {srv.hwm_mb():.0f} MB; server CPU {own:.1f} s (its reaped children "
                  f"{kids:.1f} s){ratio}")
    finally:
        for s in servers.values():
            s.stop()
        registry.stop()
        subprocess.run([PALLET, "--root", f"{w}/pallet/root", "--runroot", f"{w}/pallet/run", "rm", "-a", "-f",
                        "-t", "0"], capture_output=True)
        for b in bridges:
            subprocess.run(["ip", "link", "del", b], capture_output=True)
        for _ in range(2):
            for line in sorted((ln.split()[4] for ln in open("/proc/self/mountinfo") if ln.split()[4].startswith(w)),
                               reverse=True):
                subprocess.run(["umount", "-l", line], capture_output=True)
        shutil.rmtree(w, ignore_errors=True)
        for d in sorted(glob.glob(f"/sys/fs/cgroup/*{CGROUP_PARENT}/*") + glob.glob(f"/sys/fs/cgroup/*{CGROUP_PARENT}"),
                        reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11, int(sys.argv[2]) if len(sys.argv) > 2 else 30)
