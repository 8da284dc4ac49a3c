#!/usr/bin/env python3
"""The CRI server's pod start: RunPodSandbox + CreateContainer + StartContainer of the demo
busybox image to a running container (medians of RUNS, each pod removed untimed afterwards), and
PODS pods started in parallel (one client thread each) with the server's peak RSS.

pallet only so far: containerd 1.6 side by side (the issue's comparison) is still to come.
usage (as root): .venv/bin/python bench/cri.py [RUNS] [PODS]
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import ENV, PALLET, REPO, precompile  # noqa: E402


def free_subnet():
    from pallet.containers.network import subnets

    taken = subnets.host_networks() + [n for n, _ in subnets.other_tools()]
    for i in range(250):
        net = ipaddress.ip_network(f"10.251.{i}.0/24")
        if subnets.overlapping(net, taken) is None:
            return net
    raise SystemExit("no free /24")


def main(runs: int, pods: int) -> None:
    import grpc

    from pallet.cri.api import runtime_v1_pb2 as pb
    from pallet.cri.api import runtime_v1_pb2_grpc as pbg

    precompile()
    w = tempfile.mkdtemp(prefix="cri-bench-")
    root, runroot, sock = f"{w}/root", f"{w}/run", f"{w}/run/cri.sock"
    bridge = f"pcb{os.getpid() % 100000}"
    os.makedirs(f"{w}/net.d")
    with open(f"{w}/net.d/10.conflist", "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": "cri-bench", "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": f"{w}/ipam", "ranges": [[{"subnet": str(free_subnet())}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)
    with open(f"{w}/cri.conf", "w") as f:
        f.write(f'cni_config_dir = "{w}/net.d"\n')
    subprocess.run([sys.executable, f"{REPO}/scripts/make-demo-image.py", f"{w}/layout", "v1"], check=True,
                   capture_output=True)
    base = [PALLET, "--root", root, "--runroot", runroot]
    image = subprocess.run(base + ["pull", "-q", f"oci:{w}/layout:v1"], check=True, capture_output=True,
                           text=True, env=ENV).stdout.split()[-1]
    server = subprocess.Popen(base + ["cri", "serve", "--config", f"{w}/cri.conf", "--listen", "unix://" + sock],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=open(f"{w}/server.log", "w"))
    try:
        while not os.path.exists(sock):
            if server.poll() is not None:
                raise SystemExit(open(f"{w}/server.log").read())
            time.sleep(0.05)
        ch = grpc.insecure_channel("unix://" + sock)
        rt = pbg.RuntimeServiceStub(ch)
        rt.Version(pb.VersionRequest(), timeout=30)

        def start(name: str) -> tuple[str, float]:
            t0 = time.perf_counter()
            cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=name, uid=name, namespace="bench"),
                                      hostname=name, log_directory=f"{w}/logs/{name}")
            cfg.linux.cgroup_parent = "/pallet-cri-bench"
            pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=300).pod_sandbox_id
            cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image=image),
                                    args=["sleep", "3600"], log_path="c.log")
            cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid, config=cc, sandbox_config=cfg),
                                     timeout=300).container_id
            rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=300)
            return pid, time.perf_counter() - t0

        def remove(pid: str) -> None:
            rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=300)
            rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=300)

        times = []
        for i in range(runs + 1):
            pid, t = start(f"seq{i}")
            remove(pid)
            if i:  # the first warms the caches
                times.append(t)
        print(f"RunPodSandbox+CreateContainer+StartContainer, busybox, {runs} runs: median "
              f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(pods) as ex:
            started = list(ex.map(start, [f"par{i}" for i in range(pods)]))
        total = time.perf_counter() - t0
        with open(f"/proc/{server.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        print(f"{pods} pods in parallel to running: {total:.1f} s; server peak RSS {hwm / 1024:.0f} MB")
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(remove, [p for p, _ in started]))
    finally:
        server.terminate()
        server.wait(60)
        subprocess.run(base + ["rm", "-a", "-f", "-t", "0"], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for line in sorted((ln.split()[4] for ln in open("/proc/self/mountinfo") if ln.split()[4].startswith(w)),
                           reverse=True):
            subprocess.run(["umount", "-l", line], capture_output=True)
        shutil.rmtree(w, ignore_errors=True)
        import glob

        for d in glob.glob("/sys/fs/cgroup/*/pallet-cri-bench") + glob.glob("/sys/fs/cgroup/pallet-cri-bench"):
            try:
                os.rmdir(d)
            except OSError:
                pass


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11, int(sys.argv[2]) if len(sys.argv) > 2 else 30)
