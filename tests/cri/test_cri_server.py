"""``pallet cri serve`` driven over its unix socket with real gRPC calls (and with crictl from
cri-tools v1.29 when it is on PATH or in /opt/peers): the image service on a real registry,
pods with catatonit and Debian's CNI plugins on a test-private bridge and subnet, containers
under conmon with CRI logs, and a server restart that leaves the containers running.

The module's fixture starts one server on a temp store, a test-private CNI configuration
directory (bridge ``pcri<N>``, a free /24, host-local's data in a temp dir) and a registries.conf
that makes the test registry insecure; it removes every pod, container, mount, namespace,
veth and the bridge afterwards, even when a test fails.
"""

from __future__ import annotations

import contextlib
import grpc
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import need, release_all, unmount_under, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
#: the pods' cgroup parent: this run's own (other sessions run these tests on the machine too)
CGPARENT = f"pallet-cri-test-{os.getpid()}"
PALLET = os.path.join(os.path.dirname(sys.executable), "pallet")


def _pb():
    from pallet.cri.api import runtime_v1_pb2 as pb
    from pallet.cri.api import runtime_v1_pb2_grpc as pbg

    return pb, pbg


def _free_subnet() -> ipaddress.IPv4Network:
    from pallet.containers.network import subnets

    taken = subnets.host_networks() + [n for n, _ in subnets.other_tools()]
    for i in range(200):
        net = ipaddress.ip_network(f"10.{200 + (os.getpid() + i) % 50}.{(os.getpid() // 50 + i) % 250}.0/24")
        if subnets.overlapping(net, taken) is None:
            return net
    pytest.fail("no free /24 for the test bridge")


def _links() -> set:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True, text=True).stdout
    return {l["ifname"] for l in json.loads(out)}


def _daemon(argv: list[str], log: str) -> int:
    """Start ``argv`` detached from pytest (a server that outlives one test, as a real one
    outlives its client): its pid."""
    r = subprocess.run(["sh", "-c", 'log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 & echo $!', "sh", log] + argv,
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _runs(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is alive with ``marker`` in its command line (pids are reused quickly on a
    busy machine: never signal a process that only has its number)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read() and _alive(pid)
    except OSError:
        return False


def _listening(path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class CRI:
    def __init__(self, work: str, runroot: str, registry_host: str, tag: str = "cri"):
        """``tag`` names this server's bridge (``p<tag><pid>``), network and image repository: a
        module with a server of its own uses its own."""
        self.work, self.runroot = work, runroot
        self.root = os.path.join(work, "root")
        self.sock = os.path.join(runroot, "cri.sock")
        self.cni_dir = os.path.join(work, "net.d")
        self.ipam_dir = os.path.join(work, "ipam")
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.cni_dir)
        os.makedirs(self.logs)
        self.bridge = f"p{tag[:4]}{os.getpid() % 100000}"
        self.subnet = _free_subnet()
        self.net_name = f"p{tag}-test-{os.getpid()}"
        self.write_conflist(f"10-p{tag}.conflist", [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": self.ipam_dir, "ranges": [[{"subnet": str(self.subnet)}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}])
        self.registries_conf = os.path.join(work, "registries.conf")
        with open(self.registries_conf, "w") as f:
            f.write(f'[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n')
        self.plugins = os.path.join(work, "plugins")
        os.makedirs(self.plugins)
        self.config = os.path.join(work, "cri.conf")
        handlers = 'runc = "runc"\n'
        if shutil.which("crun"):
            # crun 1.8 refuses the host's hybrid cgroups: it runs without the v2 mount (PEERS.md)
            wrapper = os.path.join(work, "crun")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec unshare --mount --propagation private sh -c "
                        "'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"' crun \"$@\"\n")
            os.chmod(wrapper, 0o755)
            handlers += f'crun = "{wrapper}"\n'
        with open(self.config, "w") as f:
            f.write(f'cni_config_dir = "{self.cni_dir}"\nregistries_conf = "{self.registries_conf}"\n'
                    f'cni_plugin_dirs = ["{self.plugins}", "/usr/lib/cni"]\n[runtimes]\n{handlers}')
        self.image = f"{registry_host}/{tag}/busybox:v1"
        self.pid = None
        self.channel = None

    def write_conflist(self, fname: str, plugins: list) -> str:
        path = os.path.join(self.cni_dir, fname)
        with open(path, "w") as f:
            json.dump({"cniVersion": "0.4.0", "name": self.net_name, "plugins": plugins}, f)
        return path

    def start(self) -> None:
        self.pid = _daemon([PALLET, "--root", self.root, "--runroot", self.runroot, "cri", "serve",
                            "--config", self.config, "--listen", "unix://" + self.sock],
                           os.path.join(self.work, "server.log"))
        wait_for(lambda: _listening(self.sock) or not _alive(self.pid), 60, "the CRI server's socket")
        assert _alive(self.pid), open(os.path.join(self.work, "server.log")).read()[-2000:]
        pb, pbg = _pb()
        self.channel = grpc.insecure_channel("unix://" + self.sock)
        self.rt = pbg.RuntimeServiceStub(self.channel)
        self.img = pbg.ImageServiceStub(self.channel)

    def ours(self) -> bool:
        """Whether ``self.pid`` is still this server."""
        return _runs(self.pid, self.sock)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.pid and self.ours():
            os.kill(self.pid, sig)
            wait_for(lambda: not self.ours(), 60, "the CRI server to exit")
            # a process being torn down has no cmdline any more but may still hold its listening
            # socket (a loaded machine takes its time): the next server would find it answering
            wait_for(lambda: not _listening(self.sock), 60, "the CRI server's socket to close")
        self.pid = None

    def pod_config(self, name: str, **kw):
        pb, _ = _pb()
        cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="test"),
                                  hostname=name, log_directory=os.path.join(self.logs, name), **kw)
        cfg.linux.cgroup_parent = "/" + CGPARENT
        return cfg

    def run_pod(self, name: str, **kw) -> tuple[str, object]:
        pb, _ = _pb()
        cfg = self.pod_config(name, **kw)
        return self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id, cfg

    def container(self, pod_id: str, pod_cfg, name: str, args: list[str], **kw) -> str:
        pb, _ = _pb()
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=self.image),
                                 args=args, log_path=f"{name}.log", **kw)
        return self.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                                 sandbox_config=pod_cfg), timeout=120).container_id

    def status(self, cid: str):
        pb, _ = _pb()
        return self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=60).status

    def remove_all_pods(self) -> None:
        pb, _ = _pb()
        for p in self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items:
            self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=120)
            self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=120)

    def netns(self) -> list:
        d = os.path.join(self.runroot, "netns")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def allocations(self) -> list:
        d = os.path.join(self.ipam_dir, self.net_name)
        return sorted(n for n in os.listdir(d) if n[0].isdigit()) if os.path.isdir(d) else []

    def cgroups(self) -> list:
        out = []
        for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            d = os.path.join(base, CGPARENT)
            if os.path.isdir(d):
                out += [os.path.join(d, x) for x in os.listdir(d) if x.startswith("pallet-")]
        return sorted(out)


@contextlib.contextmanager
def serving(tmp_path_factory, registry, tag: str = "cri"):
    """A started ``CRI`` server (``tag``: see CRI); afterwards every pod, container, mount and
    the bridge removed, even when a test failed, and nothing left on the bridge."""
    need("conmon")
    need("skopeo")
    if not os.path.exists("/usr/bin/catatonit") or not os.path.exists("/usr/lib/cni/bridge"):
        pytest.fail("catatonit and containernetworking-plugins are needed: run scripts/install.sh")
    work = str(tmp_path_factory.mktemp("cri"))
    runroot = tempfile.mkdtemp(prefix="pcri-")
    layout = os.path.join(work, "layout")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "scripts", "make-demo-image.py"), layout, "v1"],
                   check=True, capture_output=True)
    c = CRI(work, runroot, registry.host, tag)
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{c.image}"],
                   check=True, capture_output=True, timeout=120)
    c.start()
    left_on_bridge = []
    try:
        yield c
    finally:
        def stop_server():
            if c.pid is None or not c.ours():
                c.start()
            try:
                c.remove_all_pods()
                # what the pods attached to the test's bridge (veths) must be gone with them
                # (other links come and go with other sessions on this machine: not compared)
                out = subprocess.run(["ip", "-j", "link", "show", "master", c.bridge], capture_output=True,
                                     text=True).stdout
                left_on_bridge.extend(l["ifname"] for l in json.loads(out or "[]"))
            finally:
                c.stop()

        release_all(stop_server,
                    lambda: subprocess.run([PALLET, "--root", c.root, "--runroot", runroot, "rm", "-a", "-f", "-t", "0"],
                                           capture_output=True, timeout=120),
                    lambda: subprocess.run(["ip", "link", "del", c.bridge], capture_output=True),
                    lambda: unmount_under(runroot),
                    lambda: unmount_under(c.root),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))
        assert left_on_bridge == [] and c.bridge not in _links()


@pytest.fixture(scope="module")
def cri(tmp_path_factory, registry):
    with serving(tmp_path_factory, registry) as c:
        yield c
    assert c.cgroups() == []
    import glob

    for d in glob.glob(f"/sys/fs/cgroup/*/{CGPARENT}") + glob.glob(f"/sys/fs/cgroup/{CGPARENT}"):
        try:
            os.rmdir(d)  # the runtime made the pods' parent cgroup: empty now
        except OSError:
            pass


# -- the server and its configuration -----------------------------------------------------------

def test_version_status_and_runtime_config(cri):
    pb, _ = _pb()
    v = cri.rt.Version(pb.VersionRequest(version="v1"), timeout=30)
    assert (v.runtime_name, v.runtime_api_version) == ("pallet", "v1") and v.runtime_version
    st = cri.rt.Status(pb.StatusRequest(verbose=True), timeout=30)
    conds = {c.type: c.status for c in st.status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}
    assert json.loads(st.info["config"])["cniConfigDir"] == cri.cni_dir
    cri.rt.UpdateRuntimeConfig(pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.0.0/16"))), timeout=30)
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.Exec(pb.ExecRequest(container_id="x", cmd=["sh"], stdout=True), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("text,words", [("listen = [\n", "not valid TOML"), ("nosuch = 1\n", "unknown key 'nosuch'"),
                                        ("cni_plugin_dirs = 'x'\n", "cni_plugin_dirs must be a list"),
                                        ("listen = 'tcp://1.2.3.4:5'\n", "want unix:///"),
                                        ("pause_image = 'registry.k8s.io/pause:3.9'\n", "not supported yet")])
def test_bad_config_is_one_line_and_125(tmp_path, text, words):
    conf = tmp_path / "cri.conf"
    conf.write_text(text)
    p = subprocess.run([PALLET, "--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "rr"), "cri", "serve",
                        "--config", str(conf), "--listen", f"unix://{tmp_path}/s.sock"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 125
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("Error: ") and words in p.stderr, p.stderr
    assert not os.path.exists(tmp_path / "s.sock")


def test_grpc_is_not_imported_by_other_commands():
    code = "import sys; from pallet.cli import main; main.build_parser(); print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- images --------------------------------------------------------------------------------------

def test_pull_list_status_remove_image(cri):
    pb, _ = _pb()
    ref = cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120).image_ref
    assert ref.startswith("sha256:") and len(ref) == 71
    imgs = cri.img.ListImages(pb.ListImagesRequest(), timeout=30).images
    mine = [i for i in imgs if i.id == ref]
    assert mine and cri.image in mine[0].repo_tags and mine[0].size > 0
    assert mine[0].repo_digests and mine[0].repo_digests[0].startswith(cri.image.rsplit(":", 1)[0] + "@sha256:")
    for text in (cri.image, ref, ref[7:19]):
        assert cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=text)), timeout=30).image.id == ref
    assert not cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="nosuch/image:1")),
                                   timeout=30).HasField("image")
    fs = cri.img.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=60).image_filesystems[0]
    assert fs.fs_id.mountpoint == cri.root and fs.used_bytes.value > 0 and fs.inodes_used.value > 0
    with pytest.raises(grpc.RpcError) as e:
        cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image.replace("busybox", "nosuch"))),
                          timeout=120)
    assert e.value.code() == grpc.StatusCode.UNKNOWN and "nosuch" in e.value.details()
    # removed, and removing again is fine; pulled back for the other tests
    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)
    assert not any(i.id == ref for i in cri.img.ListImages(pb.ListImagesRequest(), timeout=30).images)
    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)


def test_pull_with_credentials_from_the_request(cri, make_registry, tmp_path):
    from conftest import htpasswd_registry

    pb, _ = _pb()
    reg = htpasswd_registry(make_registry, tmp_path, "cri/auth")
    with open(cri.registries_conf, "a") as f:
        f.write(f'[[registry]]\nlocation = "{reg.host}"\ninsecure = true\n')
    image = f"{reg.host}/cri/auth:v1"
    with pytest.raises(grpc.RpcError) as e:
        cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=120)
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError):
        cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image),
                                              auth=pb.AuthConfig(username="bob", password="wrong")), timeout=120)
    ref = cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image),
                                                auth=pb.AuthConfig(username="bob", password="builder")),
                            timeout=120).image_ref
    assert ref.startswith("sha256:")
    import base64

    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)
    auth = base64.b64encode(b"bob:builder").decode()
    assert cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=pb.AuthConfig(auth=auth)),
                             timeout=120).image_ref == ref
    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)


# -- pods ----------------------------------------------------------------------------------------

def _veths_on(bridge: str) -> list:
    out = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return [l["ifname"] for l in json.loads(out or "[]")]


def test_pod_lifecycle_with_cni(cri):
    pb, _ = _pb()
    netns_before, allocs_before = cri.netns(), cri.allocations()
    pod_id, cfg = cri.run_pod("web", labels={"app": "web"},
                              port_mappings=[pb.PortMapping(container_port=80, host_port=0)])
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True), timeout=30)
    s = st.status
    assert s.state == pb.SANDBOX_READY and s.metadata.name == "web" and s.labels["app"] == "web"
    assert ipaddress.ip_address(s.network.ip) in cri.subnet
    info = json.loads(st.info["info"])
    assert _alive(info["pid"])
    with open(f"/proc/{info['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[1:2] == [b"-P"]  # catatonit -P holds the namespaces
    assert os.readlink(f"/proc/{info['pid']}/ns/net") != os.readlink("/proc/self/ns/net")
    assert len(cri.netns()) == len(netns_before) + 1 and len(cri.allocations()) == len(allocs_before) + 1
    assert len(_veths_on(cri.bridge)) >= 1
    # listed, filtered by id prefix, label and state
    ids = lambda **f: [p.id for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(
        filter=pb.PodSandboxFilter(**f)), timeout=30).items]
    assert pod_id in ids() and ids(id=pod_id[:12]) == [pod_id]
    assert ids(label_selector={"app": "web"}) == [pod_id] and ids(label_selector={"app": "nope"}) == []
    assert pod_id in ids(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    # the same name and attempt again: refused
    with pytest.raises(grpc.RpcError) as e:
        cri.run_pod("web")
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # stop: not ready, network gone; twice is fine; remove; twice is fine
    for _ in range(2):
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
    s = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=30).status
    assert s.state == pb.SANDBOX_NOTREADY and not _alive(info["pid"])
    assert cri.netns() == netns_before and cri.allocations() == allocs_before
    for _ in range(2):
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert cri.cgroups() == []


def test_host_network_pod(cri):
    pb, _ = _pb()
    cfg = cri.pod_config("hostnet")
    cfg.linux.security_context.namespace_options.network = pb.NODE
    before = cri.netns()
    pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    try:
        st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True), timeout=30)
        pid = json.loads(st.info["info"])["pid"]
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net") and cri.netns() == before
    finally:
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def test_failed_run_pod_sandbox_leaves_nothing(cri):
    """A CNI plugin after bridge fails: bridge's veth and host-local's address are released, the
    namespace, the pause container and its cgroup never stay, no pod is listed."""
    pb, _ = _pb()
    before = (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups())
    bad = cri.write_conflist("00-failing.conflist", [
        {"type": "bridge", "bridge": cri.bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": cri.ipam_dir, "ranges": [[{"subnet": str(cri.subnet)}]]}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_sysctl": "1"}}])
    try:
        with pytest.raises(grpc.RpcError) as e:
            cri.run_pod("broken")
        assert "tuning" in e.value.details()
    finally:
        os.unlink(bad)
    assert (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups()) == before
    assert not [p for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
                if p.metadata.name == "broken"]
    # a failing pause process (after the network was made) leaves nothing either
    cfg = cri.pod_config("badparent")
    cfg.linux.cgroup_parent = "relative/parent"
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=120)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups()) == before


@pytest.mark.parametrize("field,value,code", [("name", "", grpc.StatusCode.INVALID_ARGUMENT),
                                              ("name", "../x", grpc.StatusCode.INVALID_ARGUMENT),
                                              ("hostname", "a b", grpc.StatusCode.INVALID_ARGUMENT),
                                              ("dns", "1.1.1.1\nnameserver 6.6.6.6", grpc.StatusCode.INVALID_ARGUMENT)])
def test_bad_pod_requests(cri, field, value, code):
    pb, _ = _pb()
    cfg = cri.pod_config("bad")
    if field == "name":
        cfg.metadata.name = value
    elif field == "dns":  # a newline would add a resolver of the pod author's to resolv.conf
        cfg.dns_config.servers.append(value)
    else:
        cfg.hostname = value
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60)
    assert e.value.code() == code and e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cri.pod_config("h"), runtime_handler="kata"), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'kata' is not configured" in e.value.details()


# -- containers ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _server_still_up(request):
    """A server that died during a test is that test's error, with its log; the next test gets
    a fresh one (one death is not every later test's failure)."""
    yield
    if "cri" not in request.fixturenames:
        return
    c = request.getfixturevalue("cri")
    if c.pid is not None and c.ours():
        return
    try:
        with open(os.path.join(c.work, "server.log"), errors="replace") as f:
            log = f.read()[-3000:]
    except OSError as e:
        log = f"(no log: {e})"
    c.start()
    pytest.fail(f"the CRI server died during this test; its log ends:\n{log}")


@pytest.fixture
def pod(cri):
    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    name = f"p{time.monotonic_ns() % 10**9}"
    pod_id, cfg = cri.run_pod(name)
    try:
        yield pod_id, cfg
    finally:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def _cri_log(path: str) -> list:
    """(stream, tag, text) of each line of a CRI log (TIMESTAMP STREAM P|F TEXT)."""
    out = []
    with open(path) as f:
        for line in f:
            ts, stream, tag, text = line.rstrip("\n").split(" ", 3)
            assert ts[:4].isdigit() and "T" in ts
            out.append((stream, tag, text))
    return out


def test_log_path_stays_in_the_pod_log_directory(cri, pod, tmp_path):
    """An absolute log_path is joined under the pod's log directory as containerd's and CRI-O's
    filepath.Join does (os.path.join would have conmon append to that host path); '..' is refused."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    outside = str(tmp_path / "escaped.log")
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="abslog"), image=pb.ImageSpec(image=cri.image),
                             args=["echo", "hi"], log_path=outside)
    cid = cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                           sandbox_config=pod_cfg), timeout=120).container_id
    try:
        want = os.path.join(pod_cfg.log_directory, outside.lstrip("/"))
        assert cri.status(cid).log_path == want
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 60, "the container to exit")
        assert not os.path.exists(outside) and _cri_log(want) == [("stdout", "F", "hi")]
    finally:
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    for bad in ("../../escaped.log", "a/../../b.log", "/", "x\0y"):
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="badlog"), image=pb.ImageSpec(image=cri.image),
                                 args=["true"], log_path=bad)
        with pytest.raises(grpc.RpcError) as e:
            cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                             sandbox_config=pod_cfg), timeout=120)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "log_path" in e.value.details(), bad
    assert not os.path.exists(os.path.join(os.path.dirname(pod_cfg.log_directory), "escaped.log"))


def test_runtime_annotations_do_not_reach_the_runtime(cri, pod, tmp_path):
    """Annotations an OCI runtime acts on (crun's run.oci.hooks.stderr opens that host path,
    runc's org.systemd.property.* set unit properties) are left out of the container's runtime
    config; the status keeps every annotation the kubelet gave."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    given = {"run.oci.hooks.stderr": str(tmp_path / "planted"), "org.systemd.property.CPUQuota": "1000%",
             "org.criu.config": "/etc/shadow", "example.com/kept": "yes"}
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="annotated"), image=pb.ImageSpec(image=cri.image),
                             args=["true"], log_path="annotated.log", annotations=given)
    cid = cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                           sandbox_config=pod_cfg), timeout=120).container_id
    try:
        assert dict(cri.status(cid).annotations) == given
        with open(os.path.join(cri.root, "pallet-containers", cid, "userdata", "spec.json")) as f:
            spec = json.load(f)
        assert spec["annotations"].get("example.com/kept") == "yes"
        assert not [k for k in spec["annotations"] if k.startswith(("run.oci.", "org.systemd.", "org.criu."))]
    finally:
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)


def test_container_lifecycle_logs_and_exit_reasons(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "main", ["sh", "-c", "echo out; echo err >&2; echo $GREETING; exit 3"],
                        envs=[pb.KeyValue(key="GREETING", value="hello")], labels={"tier": "one"})
    s = cri.status(cid)
    assert s.state == pb.CONTAINER_CREATED and s.metadata.name == "main" and s.created_at > 0
    assert s.log_path == os.path.join(cri.logs, pod_cfg.metadata.name, "main.log")
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 60, "the container to exit")
    s = cri.status(cid)
    assert (s.exit_code, s.reason) == (3, "Error") and s.finished_at >= s.started_at > 0
    assert sorted(_cri_log(s.log_path)) == sorted([("stdout", "F", "out"), ("stderr", "F", "err"),
                                                   ("stdout", "F", "hello")])
    ok = cri.container(pod_id, pod_cfg, "ok", ["true"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=ok), timeout=120)
    wait_for(lambda: cri.status(ok).state == pb.CONTAINER_EXITED, 60, "the container to exit")
    assert (cri.status(ok).exit_code, cri.status(ok).reason) == (0, "Completed")
    listed = lambda **f: sorted(c.id for c in cri.rt.ListContainers(pb.ListContainersRequest(
        filter=pb.ContainerFilter(**f)), timeout=30).containers)
    assert listed(pod_sandbox_id=pod_id) == sorted([cid, ok])
    assert listed(label_selector={"tier": "one"}) == [cid] and listed(id=ok[:12]) == [ok]
    assert listed(pod_sandbox_id=pod_id, state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING)) == []
    # starting an exited container again is refused
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for _ in range(2):
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    assert listed(pod_sandbox_id=pod_id) == [ok]
    with pytest.raises(grpc.RpcError) as e:
        cri.status(cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_running_container_shares_the_pod_and_stops_with_sigkill_after_timeout(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    # ignores SIGTERM: StopContainer must kill it after the timeout
    cid = cri.container(pod_id, pod_cfg, "sleeper", ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    assert cri.status(cid).state == pb.CONTAINER_RUNNING
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "hostname; ip -4 -o addr show eth0 "
                                                                  "2>/dev/null || cat /proc/net/fib_trie | head -1; "
                                                                  "echo E >&2; exit 4"], timeout=30), timeout=60)
    assert r.exit_code == 4 and r.stderr == b"E\n"
    assert r.stdout.decode().splitlines()[0] == pod_cfg.hostname
    ps = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=30).status
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/proc/net/fib_trie"], timeout=30),
                        timeout=60)
    assert ps.network.ip in r.stdout.decode()  # the pod's network namespace
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "1234"], timeout=1), timeout=60)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "ps | grep -v grep | grep 'sleep 1234'"],
                                           timeout=30), timeout=60)
    assert r.stdout == b""  # the timed-out command was killed
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "cat /proc/[0-9]*/stat | grep '(sleep) Z'"],
                                           timeout=30), timeout=60)
    assert r.stdout == b""  # and reaped by the runtime, not left a zombie of the container's init
    t0 = time.monotonic()
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1), timeout=120)
    assert 1 <= time.monotonic() - t0 < 30
    s = cri.status(cid)
    assert s.state == pb.CONTAINER_EXITED and s.exit_code == 137 and s.reason == "Error"
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1), timeout=60)  # idempotent


def test_containers_of_a_pod_stop_in_parallel(cri, pod):
    """The kubelet stops a pod's containers at once, each with its grace period: the pod is down
    after the longest one, not after their sum (StopContainer waits outside the pod's lock)."""
    import threading

    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cids = [cri.container(pod_id, pod_cfg, f"deaf{i}", ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
            for i in range(2)]
    for cid in cids:
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    ended, errors = {}, []

    def stop(cid):
        try:
            cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=3), timeout=120)
            ended[cid] = time.monotonic()
        except grpc.RpcError as e:
            errors.append(e)

    threads = [threading.Thread(target=stop, args=(cid,)) for cid in cids]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and all(cri.status(cid).state == pb.CONTAINER_EXITED for cid in cids)
    # one after the other, the second would end a whole grace period (3 s) after the first
    assert all(e - t0 >= 3 for e in ended.values()) and abs(ended[cids[0]] - ended[cids[1]]) < 2


def test_bad_container_requests(cri, pod, tmp_path):
    pb, _ = _pb()
    pod_id, pod_cfg = pod

    def create(**kw):
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=kw.pop("name", "bad")),
                                 image=pb.ImageSpec(image=kw.pop("image", cri.image)), args=["true"], **kw)
        with pytest.raises(grpc.RpcError) as e:
            cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=kw.pop("pod", pod_id), config=cfg),
                                   timeout=60)
        return e.value

    e = create(mounts=[pb.Mount(container_path="/data", host_path=str(tmp_path / "missing"))])
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "missing" in e.details()
    sc = pb.LinuxContainerSecurityContext(run_as_group=pb.Int64Value(value=5))
    e = create(linux=pb.LinuxContainerConfig(security_context=sc))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "run_as_group" in e.details()
    e = create(image="nosuch/image:1")
    assert e.code() == grpc.StatusCode.NOT_FOUND
    sc = pb.LinuxContainerSecurityContext(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost,
                                                                     localhost_ref=str(tmp_path / "nosuch.json")))
    e = create(linux=pb.LinuxContainerConfig(security_context=sc))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "nosuch.json" in e.details()
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="x"), image=pb.ImageSpec(image=cri.image))
    with pytest.raises(grpc.RpcError) as ei:
        cri.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id="f" * 64, config=cfg), timeout=60)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    # nothing was left: no container in the pod
    assert not cri.rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod_id)),
                                     timeout=30).containers


# -- restart safety ------------------------------------------------------------------------------

def test_restarted_server_sees_pods_and_containers_that_kept_running(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "long", ["sh", "-c", "while :; do echo tick; sleep 0.2; done"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    pid = json.loads(cri.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True),
                                            timeout=30).info["info"])["pid"]
    assert _alive(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        cri.stop(sig)
        path = os.path.join(cri.logs, pod_cfg.metadata.name, "long.log")
        lines = len(_cri_log(path))
        wait_for(lambda: len(_cri_log(path)) > lines + 2, 30, "the container to go on logging with no server")
        assert _alive(pid)
        cri.start()
        pods = {p.id: p.state for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items}
        assert pods[pod_id] == pb.SANDBOX_READY
        s = cri.status(cid)
        assert s.state == pb.CONTAINER_RUNNING and s.metadata.name == "long"
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "still"], timeout=30), timeout=60)
        assert r.stdout == b"still\n"
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=5), timeout=120)
    s = cri.status(cid)
    assert s.state == pb.CONTAINER_EXITED and s.exit_code == 143 and not _alive(pid)


def test_server_killed_mid_run_pod_sandbox_is_cleaned_up_at_restart(cri):
    """kill -9 while a CNI plugin of RunPodSandbox runs: the restarted server detaches the
    network, removes the namespace and forgets the pod."""
    pb, _ = _pb()
    marker = os.path.join(cri.work, "slow-started")
    plugin = os.path.join(cri.plugins, "slowplugin")
    with open(plugin, "w") as f:
        f.write(f'#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] || exit 0\necho $$ > {marker}\n'
                f'i=0; while [ $i -lt 300 ] && [ -e {marker} ]; do sleep 0.1; i=$((i+1)); done\nexit 1\n')
    os.chmod(plugin, 0o755)
    before = (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups())
    bad = cri.write_conflist("00-slow.conflist", [
        {"type": "bridge", "bridge": cri.bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": cri.ipam_dir, "ranges": [[{"subnet": str(cri.subnet)}]]}},
        {"type": "slowplugin"}])
    import threading

    errors = []
    t = threading.Thread(target=lambda: errors.append(_call_quietly(cri, "slowpod")))
    try:
        t.start()
        wait_for(lambda: os.path.exists(marker) or not t.is_alive(), 60, "the slow CNI plugin to run")
        assert os.path.exists(marker), (errors, open(os.path.join(cri.work, "server.log"), errors="replace").read()[-3000:])
        assert len(cri.netns()) == len(before[0]) + 1 and len(cri.allocations()) == len(before[1]) + 1
        cri.stop(signal.SIGKILL)
        t.join(60)
    finally:
        os.unlink(bad)
        try:
            os.unlink(marker)  # the orphaned plugin ends
        except FileNotFoundError:
            pass
    cri.start()
    assert (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups()) == before, \
        open(os.path.join(cri.work, "server.log"), errors="replace").read()[-4000:]
    assert not [p for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
                if p.metadata.name == "slowpod"]


def test_server_killed_while_the_pause_container_starts_is_cleaned_up_at_restart(cri):
    """The pause container starts while the CNI plugins run: kill -9 while the runtime's
    ``create`` of it is under way (conmon goes on and finishes it), and the restarted server
    deletes it from the runtime (process, cgroup), detaches the network and forgets the pod."""
    need("runc")
    pb, _ = _pb()
    marker, done = os.path.join(cri.work, "create-started"), os.path.join(cri.work, "create-done")
    wrapper = os.path.join(cri.work, "slowruntime")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nfor a; do if [ "$a" = create ]; then echo $$ > {marker}\n'
                f'  i=0; while [ $i -lt 300 ] && [ -e {marker} ]; do sleep 0.1; i=$((i+1)); done\n'
                f'  runc "$@"; rc=$?; touch {done}; exit $rc; fi; done\nexec runc "$@"\n')
    os.chmod(wrapper, 0o755)
    with open(cri.config, "a") as f:
        f.write(f'slow = "{wrapper}"\n')
    cri.stop()
    cri.start()
    oci_root = os.path.join(cri.runroot, "pallet-containers", "oci")

    def runc_ids():
        out = subprocess.run(["runc", "--root", oci_root, "list", "-q"], capture_output=True, text=True).stdout
        return sorted(out.split())

    before = (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups(), runc_ids())
    import threading

    def call():
        try:
            cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cri.pod_config("slowpause"), runtime_handler="slow"),
                                 timeout=120)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=call)
    try:
        t.start()
        wait_for(lambda: os.path.exists(marker), 60, "the runtime's create of the pause container")
        cri.stop(signal.SIGKILL)
        t.join(60)
    finally:
        try:
            os.unlink(marker)  # the runtime's create goes on, under conmon
        except FileNotFoundError:
            pass
    wait_for(lambda: os.path.exists(done), 60, "the runtime's create to finish")
    cri.start()
    assert (cri.netns(), cri.allocations(), _veths_on(cri.bridge), cri.cgroups(), runc_ids()) == before
    assert not [p for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
                if p.metadata.name == "slowpause"]


def _call_quietly(cri, name):
    try:
        cri.run_pod(name)
    except grpc.RpcError as e:
        return e.code()
    return None


# -- crictl (cri-tools v1.29), when it is here ----------------------------------------------------

def _crictl() -> str | None:
    for path in (shutil.which("crictl"), "/opt/peers/crictl"):
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.mark.skipif(_crictl() is None, reason="crictl (cri-tools v1.29, no Debian package: built from source "
                                               "outside the repo, e.g. /opt/peers) is not here; the server is tested "
                                               "through grpc directly above; runs wherever crictl is on PATH")
def test_crictl_drives_a_whole_life(cri, tmp_path):
    crictl = _crictl()
    ep = "unix://" + cri.sock

    def run(*args, check=True):
        p = subprocess.run([crictl, "--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"] + list(args),
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    assert "RuntimeName:  pallet" in run("version").stdout
    run("pull", cri.image)
    assert cri.image.rsplit(":", 1)[0] in run("images").stdout
    pod_json = tmp_path / "pod.json"
    pod_json.write_text(json.dumps({"metadata": {"name": "crictl-pod", "namespace": "test", "uid": "crictl-uid"},
                                    "log_directory": str(tmp_path / "logs"), "hostname": "crictl-pod",
                                    "linux": {"cgroup_parent": "/" + CGPARENT}}))
    ctr_json = tmp_path / "ctr.json"
    ctr_json.write_text(json.dumps({"metadata": {"name": "hello"}, "image": {"image": cri.image},
                                    "args": ["sh", "-c", "echo hello from crictl; sleep 300"],
                                    "log_path": "hello.log"}))
    pod_id = run("runp", str(pod_json)).stdout.strip()
    try:
        assert pod_id in run("pods", "-q").stdout
        cid = run("create", pod_id, str(ctr_json), str(pod_json)).stdout.strip()
        run("start", cid)
        assert cid in run("ps", "-q").stdout
        wait_for(lambda: "hello from crictl" in run("logs", cid).stdout, 30, "the container's log through crictl")
        assert run("exec", "-s", cid, "cat", "/etc/hostname").stdout.split() == ["crictl-pod"]
        assert json.loads(run("inspect", cid).stdout)["status"]["state"] == "CONTAINER_RUNNING"
        assert cid[:13] in run("stats").stdout and pod_id[:13] in run("statsp").stdout
        run("stop", "-t", "1", cid)
        assert json.loads(run("inspect", cid).stdout)["status"]["state"] == "CONTAINER_EXITED"
        run("rm", cid)
        run("stopp", pod_id)
        run("rmp", pod_id)
        assert pod_id not in run("pods", "-q").stdout
    finally:
        run("rmp", "-f", pod_id, check=False)


def test_oom_killed_reason(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    # conmon writes an "oom" file in its working directory: the container's, never the server's
    server_oom = os.path.join(os.readlink(f"/proc/{cri.pid}/cwd"), "oom")
    before = os.stat(server_oom).st_mtime_ns if os.path.exists(server_oom) else None
    res = pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20)
    cid = cri.container(pod_id, pod_cfg, "hog", ["sh", "-c", "x=a; while :; do x=$x$x$x$x; done"],
                        linux=pb.LinuxContainerConfig(resources=res))
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 60, "the memory hog to be killed")
    s = cri.status(cid)
    assert (s.exit_code, s.reason) == (137, "OOMKilled")
    assert (os.stat(server_oom).st_mtime_ns if os.path.exists(server_oom) else None) == before


def test_host_port_mapping_through_portmap(cri):
    """A pod's hostPort reaches its container (CNI portmap's DNAT, from 127.0.0.1 too), and goes
    with the pod."""
    import urllib.request

    from conftest import free_port

    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    port = free_port()
    pod_id, cfg = cri.run_pod("ported", port_mappings=[pb.PortMapping(container_port=8080, host_port=port,
                                                                      host_ip="127.0.0.1")])

    def get():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        except OSError:
            return None

    try:
        cid = cri.container(pod_id, cfg, "web", ["sh", "-c", "mkdir -p /tmp/w && echo served > /tmp/w/index.html && "
                                                            "exec httpd -f -p 8080 -h /tmp/w"])
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        assert wait_for(get, 30, f"the container's httpd on host port {port}") == b"served\n"
    finally:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
    assert get() is None


def test_runtime_handler_picks_the_oci_runtime(cri):
    """RuntimeClass: the pod's handler (cri.conf's [runtimes]) runs its pause and containers."""
    need("runc")
    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    cfg = cri.pod_config("withrunc")
    pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler="runc"),
                                  timeout=120).pod_sandbox_id
    try:
        st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True), timeout=30)
        assert st.status.runtime_handler == "runc"
        assert [p.runtime_handler for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(id=pod_id)), timeout=30).items] == ["runc"]
        cid = cri.container(pod_id, cfg, "c", ["sleep", "60"])
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        oci_root = os.path.join(cri.runroot, "pallet-containers", "oci")
        for ident in (cid, json.loads(st.info["info"])["pause"]):
            state = subprocess.run(["runc", "--root", oci_root, "state", ident], capture_output=True, text=True)
            assert state.returncode == 0 and json.loads(state.stdout)["status"] == "running", state.stderr
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "via-runc"], timeout=30), timeout=60)
        assert r.stdout == b"via-runc\n"
    finally:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def test_reopen_container_log_after_rotation(cri, pod):
    """The kubelet's rotation: rename the log, ReopenContainerLog, conmon writes a new file."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "chatty", ["sh", "-c", "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.1; done"])
    path = cri.status(cid).log_path
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # not running yet
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    wait_for(lambda: os.path.exists(path) and len(_cri_log(path)) >= 2, 30, "the first log lines")
    os.rename(path, path + ".1")
    cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid), timeout=30)
    assert os.path.exists(path)  # there when the call returns (critest's check)
    wait_for(lambda: os.path.exists(path) and len(_cri_log(path)) >= 2, 30, "lines in the reopened log")
    old, new = _cri_log(path + ".1"), _cri_log(path)
    n = lambda entry: int(entry[2][4:])
    assert n(new[0]) > n(old[0]) and all(e[0] == "stdout" for e in new)


def test_update_container_resources(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    res = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_shares=512)
    cid = cri.container(pod_id, pod_cfg, "tunable", ["sleep", "60"], linux=pb.LinuxContainerConfig(resources=res))
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    read = lambda f: cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/sys/fs/cgroup/" + f],
                                                        timeout=30), timeout=60).stdout.strip()
    v1 = os.path.isdir("/sys/fs/cgroup/memory")  # this machine's hybrid layout, or cgroup v2
    limits = (lambda: (read("memory/memory.limit_in_bytes"), read("cpu/cpu.shares"))) if v1 else \
        (lambda: (read("memory.max"), None))
    assert limits() == (str(64 << 20).encode(), b"512" if v1 else None)
    cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=32 << 20, cpu_shares=256)),
        timeout=60)
    assert limits() == (str(32 << 20).encode(), b"256" if v1 else None)
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(cpu_shares=-5)), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_container_and_pod_stats(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "busy", ["sh", "-c", "dd if=/dev/zero of=/big bs=1k count=512 2>/dev/null; "
                                                             "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                                                             "sleep 60"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    get = lambda: cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=60).stats
    # usage_nano_cores: the first sample's is the average since the start (the shell has run)
    first = get()
    assert first.cpu.HasField("usage_nano_cores") and first.cpu.usage_nano_cores.value > 0
    wait_for(lambda: get().writable_layer.used_bytes.value >= 512 << 10, 30, "the container's file in its layer")
    s = get()
    assert s.attributes.id == cid and s.attributes.metadata.name == "busy"
    assert s.cpu.usage_core_nano_seconds.value > 0 and s.memory.working_set_bytes.value > 0
    assert s.writable_layer.inodes_used.value >= 1 and s.writable_layer.fs_id.mountpoint == cri.root
    # then between samples (at most the machine's cores); the CPU time is the cgroup's own
    # (cgroup v1 cpuacct, else v2 cpu.stat)
    s2 = get()
    assert s2.cpu.HasField("usage_nano_cores") and s2.cpu.usage_nano_cores.value <= os.cpu_count() * 10**9
    import glob

    acct = glob.glob(f"/sys/fs/cgroup/cpuacct/{CGPARENT}/pallet-{cid}/cpuacct.usage") + \
        glob.glob(f"/sys/fs/cgroup/cpu,cpuacct/{CGPARENT}/pallet-{cid}/cpuacct.usage")
    assert acct or not os.path.isdir("/sys/fs/cgroup/cpuacct")  # probed: v1 here, v2 elsewhere
    if acct:
        assert s2.cpu.usage_core_nano_seconds.value <= int(open(acct[0]).read())
    listed = cri.rt.ListContainerStats(pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=pod_id)), timeout=60).stats
    assert [x.attributes.id for x in listed] == [cid]
    p = cri.rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id), timeout=60).stats
    assert p.attributes.id == pod_id and [c.attributes.id for c in p.linux.containers] == [cid]
    assert p.linux.cpu.usage_core_nano_seconds.value >= s.cpu.usage_core_nano_seconds.value
    assert p.linux.network.default_interface.name == "eth0" and p.linux.process.process_count.value >= 2
    assert pod_id in [x.attributes.id for x in cri.rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(),
                                                                          timeout=60).stats]


def test_container_events_stream(cri):
    """GetContainerEvents (the kubelet's EventedPLEG): a container's created, started, stopped
    (its process ended on its own) and deleted events, and the pod's started, stopped and
    deleted ones, each with the pod's status and its containers' statuses."""
    import queue
    import threading

    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    pod_id, cfg = cri.run_pod(f"ev{time.monotonic_ns() % 10**9}")
    call = cri.rt.GetContainerEvents(pb.GetEventsRequest(), timeout=300)
    got: queue.Queue = queue.Queue()

    def collect():
        try:
            for ev in call:
                got.put(ev)
        except grpc.RpcError:
            pass

    threading.Thread(target=collect, daemon=True).start()

    def next_event(cid, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev = got.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev.container_id == cid:
                return ev
        return None

    try:
        # the stream is up once an event comes (a container made until one does)
        for _ in range(50):
            cid = cri.container(pod_id, cfg, "quick", ["sh", "-c", "read x; exit 4"], stdin=True, stdin_once=True)
            ev = next_event(cid, 1)
            if ev is not None:
                break
            cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
        assert ev is not None and ev.container_event_type == pb.CONTAINER_CREATED_EVENT
        assert ev.pod_sandbox_status.id == pod_id and ev.pod_sandbox_status.metadata.uid == cfg.metadata.uid
        assert [c.id for c in ev.containers_statuses] == [cid]
        assert ev.containers_statuses[0].state == pb.CONTAINER_CREATED and ev.created_at > 0
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        ev = next_event(cid)
        assert ev.container_event_type == pb.CONTAINER_STARTED_EVENT
        assert ev.containers_statuses[0].state == pb.CONTAINER_RUNNING
        url = cri.rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True), timeout=30).url
        sess = _session(url)
        try:
            _, stdin, _ = _open(sess, "error", "stdin", "stdout")
            stdin.write(b"go\n")
            ev = next_event(cid)  # it ends on its own: conmon's exit file
        finally:
            sess.close()
        assert ev.container_event_type == pb.CONTAINER_STOPPED_EVENT
        assert (ev.containers_statuses[0].state, ev.containers_statuses[0].exit_code) == (pb.CONTAINER_EXITED, 4)
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
        ev = next_event(cid)
        assert ev.container_event_type == pb.CONTAINER_DELETED_EVENT and list(ev.containers_statuses) == []
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        ev = next_event(pod_id)
        assert ev.container_event_type == pb.CONTAINER_STOPPED_EVENT
        assert ev.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        ev = next_event(pod_id)
        assert ev.container_event_type == pb.CONTAINER_DELETED_EVENT and ev.pod_sandbox_status.id == pod_id
    finally:
        call.cancel()
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def test_pod_sysctls(cri):
    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    cfg = cri.pod_config("sysctls")
    cfg.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "123"
    cfg.linux.sysctls["kernel.shm_rmid_forced"] = "1"
    pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
    try:
        cid = cri.container(pod_id, cfg, "c", ["sleep", "60"])
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=[
            "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shm_rmid_forced"], timeout=30),
            timeout=60)
        assert r.stdout.split() == [b"123", b"1"]
    finally:
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
    bad = cri.pod_config("badsysctl")
    bad.linux.sysctls["kernel.hostname"] = "x"
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=bad), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a namespaced sysctl" in e.value.details()


@pytest.mark.parametrize("profile,privileged,want", [(None, False, "0"), ("RuntimeDefault", False, "2"),
                                                      ("Unconfined", False, "0"), ("RuntimeDefault", True, "0")])
def test_seccomp_profiles(cri, pod, profile, privileged, want):
    """No profile and Unconfined: no filter; RuntimeDefault: a filter (swapoff refused); a
    privileged container runs unconfined."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    sc = pb.LinuxContainerSecurityContext(privileged=privileged)
    if profile:
        sc.seccomp.profile_type = getattr(pb.SecurityProfile, profile)
    cid = cri.container(pod_id, pod_cfg, f"sc{profile}{privileged}", ["sleep", "60"],
                        linux=pb.LinuxContainerConfig(security_context=sc))
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["grep", "^Seccomp:", "/proc/self/status"],
                                           timeout=30), timeout=60)
    assert r.stdout.split() == [b"Seccomp:", want.encode()]
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)


@pytest.mark.parametrize("handler", ["", "runc"])
def test_bidirectional_mount_propagation(cri, tmp_path, handler):
    """PROPAGATION_BIDIRECTIONAL (the host path a shared mount): a mount made on the host appears
    in the container, and one made in the container appears on the host (the root's propagation
    rshared: the runtime keeps its copies of the host's shared mounts peers of the host's)."""
    pb, _ = _pb()
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    cfg = cri.pod_config(f"prop{handler}")
    pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                  timeout=120).pod_sandbox_id
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "fromctr").mkdir()
    (vol / "fromhost").mkdir()
    subprocess.run(["mount", "--bind", str(vol), str(vol)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(vol)], check=True)
        m = pb.Mount(container_path="/vol", host_path=str(vol), propagation=pb.PROPAGATION_BIDIRECTIONAL)
        cid = cri.container(pod_id, cfg, "prop", ["sleep", "60"], mounts=[m],
                            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                                privileged=True)))
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        subprocess.run(["mount", "-t", "tmpfs", "h", str(vol / "fromhost")], check=True)
        (vol / "fromhost" / "seen").write_text("x")
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/vol/fromhost/seen"], timeout=30),
                            timeout=60)
        assert r.stdout == b"x"
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["mount", "-t", "tmpfs", "t",
                                                                      "/vol/fromctr"], timeout=30), timeout=60)
        assert r.exit_code == 0, r.stderr
        assert os.path.ismount(vol / "fromctr")
    finally:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        unmount_under(str(vol))


def test_concurrent_run_pod_sandbox(cri):
    """Pods start in parallel; the same name twice at once: one pod, one ALREADY_EXISTS."""
    pb, _ = _pb()
    from concurrent.futures import ThreadPoolExecutor

    before = (cri.netns(), cri.allocations())
    names = ["conc1", "conc2", "conc3", "dup", "dup"]
    with ThreadPoolExecutor(len(names)) as ex:
        results = list(ex.map(lambda n: _call_or_code(cri, n), names))
    ids = [r for r in results if isinstance(r, str)]
    assert len(ids) == 4 and [r for r in results if not isinstance(r, str)] == [grpc.StatusCode.ALREADY_EXISTS]
    try:
        assert len(cri.netns()) == len(before[0]) + 4 and len(cri.allocations()) == len(before[1]) + 4
        ips = {cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=i), timeout=30).status.network.ip
               for i in ids}
        assert len(ips) == 4
    finally:
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda i: cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=i), timeout=120),
                        ids))
    assert (cri.netns(), cri.allocations()) == before


def _call_or_code(cri, name):
    try:
        return cri.run_pod(name)[0]
    except grpc.RpcError as e:
        return e.code()


# -- the streaming server: Exec, Attach, PortForward over SPDY/3.1 ---------------------------------

def _upgrade(url: str, protocols: list[str], upgrade: str = "SPDY/3.1"):
    """POST to a streaming URL asking for the upgrade: (status code, headers, socket)."""
    import socket
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    head = [f"POST {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 0"]
    if upgrade:
        head += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
    head += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        assert b, buf
        buf += b
    lines = buf.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    s.settimeout(None)
    return int(lines[0].split()[1]), headers, s


def _session(url: str, protocol: str = "v4.channel.k8s.io"):
    from pallet.cri import spdy

    code, headers, s = _upgrade(url, [protocol, "v3.channel.k8s.io"])
    assert code == 101 and headers["upgrade"] == "SPDY/3.1", (code, headers)
    assert headers["x-stream-protocol-version"] == protocol
    return spdy.Session(s, server=False).start()


def _open(sess, *types):
    """The exec/attach streams, opened in the order the kubelet's clients open them."""
    return [sess.open({"streamType": t}) for t in types]


def _exec_url(cri, cid, cmd, **kw):
    pb, _ = _pb()
    return cri.rt.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, **kw), timeout=30).url


@pytest.fixture
def sleeper(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "sleeper", ["sleep", "300"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def test_exec_streams_stdin_stdout_stderr_and_exit_code(cri, sleeper):
    url = _exec_url(cri, sleeper, ["sh", "-c", "read x; echo out:$x; echo err >&2; exit 3"],
                    stdin=True, stdout=True, stderr=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    sess = _session(url)
    try:
        err, stdin, out, errs = _open(sess, "error", "stdin", "stdout", "stderr")
        stdin.write(b"ping\n")
        stdin.close()
        assert out.read_all(30) == b"out:ping\n"
        assert errs.read_all(30) == b"err\n"
        status = json.loads(err.read_all(30))
    finally:
        sess.close()
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    # the token was for one use
    code, _, s = _upgrade(url, ["v4.channel.k8s.io"])
    s.close()
    assert code == 404


@pytest.fixture(params=["", "runc", "crun"])
def any_sleeper(cri, request):
    """A running ``sleep`` in a pod of each runtime handler (pallet-runtime, runc, crun)."""
    pb, _ = _pb()
    if request.param:
        need(request.param)
    cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=cri.image)), timeout=120)
    cfg = cri.pod_config(f"h{request.param}{time.monotonic_ns() % 10**9}")
    pod_id = cri.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=request.param),
                                  timeout=120).pod_sandbox_id
    try:
        cid = cri.container(pod_id, cfg, "sleeper", ["sleep", "300"])
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
        yield cid
    finally:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def test_exec_with_a_terminal_and_resize(cri, any_sleeper):
    """A terminal (pallet-runtime's console socket; runc's own terminal relayed through a pty of
    the server's): one output; the first size is the console's from the start, later ones reach
    it (stty); success is a Status, a failure its exit code."""
    sleeper = any_sleeper
    url = _exec_url(cri, sleeper, ["sh", "-c", 'stty size; tty; while [ "$(stty size)" != "40 120" ]; '
                                               'do sleep 0.05; done; echo resized; read x; echo got:$x'],
                    stdin=True, stdout=True, tty=True)
    sess = _session(url)
    try:
        err, stdin, out, resize = _open(sess, "error", "stdin", "stdout", "resize")
        resize.write(b'{"Width":100,"Height":30}')
        seen = b""

        def read_until(word):
            nonlocal seen
            while word not in seen:
                chunk = out.read(30)
                assert chunk, seen
                seen += chunk

        read_until(b"/dev/pts/")
        # no 0x0 first, however fast the command asks (runc's relay may add a \r to line ends)
        assert seen.replace(b"\r", b"").startswith(b"30 100\n"), seen
        resize.write(b'{"Width":120,"Height":40}')
        read_until(b"resized")
        stdin.write(b"tty-input\r")
        rest = out.read_all(30)
        status = json.loads(err.read_all(30))
    finally:
        sess.close()
    assert b"got:tty-input" in rest.replace(b"\r", b"")
    assert status == {"metadata": {}, "status": "Success"}
    sess = _session(_exec_url(cri, sleeper, ["sh", "-c", "exit 7"], stdout=True, tty=True))
    try:
        err, out, _ = _open(sess, "error", "stdout", "resize")
        out.read_all(30)
        status = json.loads(err.read_all(30))
    finally:
        sess.close()
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_streaming_bad_requests(cri, sleeper):
    pb, _ = _pb()
    for kw, code in ((dict(cmd=["true"]), grpc.StatusCode.INVALID_ARGUMENT),  # no stream at all
                     (dict(cmd=["true"], tty=True, stdout=True, stderr=True), grpc.StatusCode.INVALID_ARGUMENT),
                     (dict(cmd=[], stdout=True), grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as e:
            cri.rt.Exec(pb.ExecRequest(container_id=sleeper, **kw), timeout=30)
        assert e.value.code() == code
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id="nosuchpod"), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    url = _exec_url(cri, sleeper, ["true"], stdout=True)
    bad = url.rsplit("/", 1)[0] + "/not-a-token"
    for u, protos, upgrade, want in ((bad, ["v4.channel.k8s.io"], "SPDY/3.1", 404),
                                     (url, ["v4.channel.k8s.io"], "", 400),
                                     (url, ["v9.channel.k8s.io"], "SPDY/3.1", 403)):
        code, _, s = _upgrade(u, protos, upgrade)
        s.close()
        assert code == want, (u, protos, upgrade)


def _attached(cri, pod, name: str, tty: bool, **kw):
    """A shell container reading its stdin, started, and a session attached to it: (container
    ID, session, its streams: error, stdin, stdout and stderr or resize)."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, name, ["sh"], stdin=True, tty=tty, **kw)
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    url = cri.rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=not tty, tty=tty),
                        timeout=30).url
    sess = _session(url)
    return cid, sess, _open(sess, "error", "stdin", "stdout", "resize" if tty else "stderr")


def test_attach_to_a_shell_with_stdin_once(cri, pod):
    pb, _ = _pb()
    cid, sess, (err, stdin, out, errs) = _attached(cri, pod, "shell", False, stdin_once=True)
    try:
        stdin.write(b"echo hello; echo oops >&2\n")
        assert out.read(30) == b"hello\n"
        assert errs.read(30) == b"oops\n"
        stdin.close()  # stdin_once: the shell's stdin closes, it exits, the attachment ends
        assert out.read_all(30) == b""
        status = json.loads(err.read_all(30))
    finally:
        sess.close()
    assert status["status"] == "Success"
    wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 30, "the shell to exit")


def test_attach_to_a_terminal_follows_resizes(cri, pod):
    """A container with a terminal: attach carries it (one output), the resize stream's sizes go
    to conmon, which sizes the container's terminal."""
    pb, _ = _pb()
    cid, sess, (err, stdin, out, resize) = _attached(cri, pod, "tty", True)
    try:
        resize.write(b'{"Width":77,"Height":22}')
        seen = b""
        stdin.write(b'while [ "$(stty size)" != "22 77" ]; do sleep 0.05; done; echo SIZED\r')
        while b"SIZED\r\n" not in seen:
            chunk = out.read(30)
            assert chunk, seen
            seen += chunk
        stdin.write(b"exit\r")
        out.read_all(30)
        assert json.loads(err.read_all(30))["status"] == "Success"
    finally:
        sess.close()
    wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 30, "the shell to exit")


def test_port_forward_into_the_pod(cri, pod):
    """The pod's port 8080 (busybox httpd, reachable only in the pod's namespace) through the
    port-forward protocol; a port nobody listens on is an error on the error stream."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "web", ["httpd", "-f", "-p", "8080", "-h", "/etc"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    name = pod_cfg.hostname
    wait_for(lambda: cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["wget", "-qO-",
                                                                               "http://127.0.0.1:8080/hostname"],
                                                        timeout=10), timeout=30).exit_code == 0,
             30, "httpd in the pod")
    url = cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id, port=[8080, 8081]), timeout=30).url
    sess = _session(url, "portforward.k8s.io")
    try:
        for rid in ("0", "1"):  # two connections over one session
            err = sess.open({"streamType": "error", "port": "8080", "requestID": rid})
            err.close()
            data = sess.open({"streamType": "data", "port": "8080", "requestID": rid})
            data.write(b"GET /hostname HTTP/1.0\r\n\r\n")
            reply = data.read_all(30)
            assert reply.startswith(b"HTTP/1.") and reply.endswith(name.encode() + b"\n"), reply
            assert err.read_all(30) == b""
        err = sess.open({"streamType": "error", "port": "8081", "requestID": "2"})
        data = sess.open({"streamType": "data", "port": "8081", "requestID": "2"})
        assert b"connecting to port 8081" in err.read_all(30)
        assert data.read_all(30) == b""
        err = sess.open({"streamType": "error", "port": "9", "requestID": "3"})
        data = sess.open({"streamType": "data", "port": "9", "requestID": "3"})
        assert b"port 9 was not among the PortForward request's ports" in err.read_all(30)
        for i, bad in enumerate(("8_080", "+8080", "99999", "")):  # int() would take the first two
            err = sess.open({"streamType": "error", "port": bad, "requestID": f"bad{i}"})
            sess.open({"streamType": "data", "port": bad, "requestID": f"bad{i}"})
            assert b"invalid port" in err.read_all(30), bad
    finally:
        sess.close()


@pytest.mark.skipif(_crictl() is None, reason="crictl (cri-tools v1.29, no Debian package: built from source "
                                               "outside the repo, e.g. /opt/peers) is not here; the streaming server "
                                               "is tested through grpc and pallet.cri.spdy's client above; runs wherever crictl is on PATH")
def test_crictl_exec_attach_and_port_forward(cri, pod, tmp_path):
    import urllib.request

    from conftest import free_port

    pb, _ = _pb()
    crictl = _crictl()
    ep = "unix://" + cri.sock
    base = [crictl, "--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"]
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "web", ["httpd", "-f", "-p", "8080", "-h", "/etc"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)

    def run(*args, input=None):
        return subprocess.run(base + list(args), capture_output=True, input=input, timeout=120,
                              stdin=None if input is not None else subprocess.DEVNULL)

    p = run("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 4")
    # crictl v1.29 exits 1 and names the command's exit code, which the Status carried
    assert (p.returncode, p.stdout) == (1, b"out\n") and p.stderr.startswith(b"err\n"), p
    assert b"command terminated with exit code 4" in p.stderr
    p = run("exec", "-i", cid, "sh", "-c", "read x; echo got:$x", input=b"piped\n")
    assert (p.returncode, p.stdout) == (0, b"got:piped\n"), p
    # exec -it wants a terminal: crictl runs on one (ours, a pty); its size reaches the container
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    try:
        t = subprocess.Popen(base + ["exec", "-i", "-t", cid, "sh", "-c", "tty; stty size; read x; echo got:$x"],
                             stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        seen = b""

        def read_until(word):
            nonlocal seen
            import select

            while word not in seen:
                assert select.select([master], [], [], 60)[0], ("nothing more on the terminal", seen)
                chunk = os.read(master, 4096)
                assert chunk, seen
                seen += chunk

        read_until(b"33 111")  # the terminal's size inside the exec
        os.write(master, b"typed\r")
        read_until(b"got:typed")
        assert t.wait(timeout=60) == 0 and b"/dev/pts/" in seen, seen
    finally:
        os.close(master)
    # attach to a shell reading its stdin (stdin_once: our EOF ends it)
    sh = cri.container(pod_id, pod_cfg, "shell", ["sh"], stdin=True, stdin_once=True)
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=sh), timeout=120)
    p = run("attach", "-i", sh, input=b"echo attached\n")
    assert p.returncode == 0 and p.stdout == b"attached\n", p
    wait_for(lambda: cri.status(sh).state == pb.CONTAINER_EXITED, 30, "the attached shell to exit")
    # port-forward: a local port to the pod's 8080
    port = free_port()
    fwd = subprocess.Popen(base + ["port-forward", pod_id, f"{port}:8080"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: b"Forwarding from" in fwd.stdout.readline() or fwd.poll() is not None, 60,
                 "crictl port-forward to listen")
        assert fwd.poll() is None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=30) as r:
            assert r.read() == pod_cfg.hostname.encode() + b"\n"
    finally:
        fwd.send_signal(signal.SIGINT)
        fwd.communicate(timeout=30)


def test_container_root_keeps_setuid(cri, sleeper):
    """A container's root is mounted nodev but not nosuid (containers-storage's default), so a
    setuid binary raises privileges unless no_new_privs (critest's NoNewPrivs specs)."""
    pb, _ = _pb()
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=sleeper, cmd=["sh", "-c", "grep ' / ' /proc/self/mountinfo"],
                                           timeout=30), timeout=60)
    opts = set(r.stdout.split()[5].decode().split(","))
    assert "nosuid" not in opts and "nodev" in opts, r.stdout


def test_devices(cri, pod, tmp_path):
    """Devices: a node at another path with its permissions in the device cgroup, a directory's
    nodes below container_path; a path that is no device is INVALID_ARGUMENT."""
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    devdir = tmp_path / "devs"
    devdir.mkdir()
    # loop-control's numbers: not in the default allow list, and opening it does nothing
    os.mknod(tmp_path / "ctl", 0o600 | 0o020000, os.makedev(10, 237))
    os.mknod(devdir / "nul", 0o666 | 0o020000, os.makedev(1, 3))
    (devdir / "notadevice").write_text("x")
    devs = [pb.Device(container_path="/dev/writeonly-ctl", host_path=str(tmp_path / "ctl"), permissions="w"),
            pb.Device(container_path="/dev/more", host_path=str(devdir))]
    cid = cri.container(pod_id, pod_cfg, "devs", ["sleep", "300"], devices=devs)
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)

    def sh(cmd):
        return cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", cmd], timeout=30), timeout=60)

    r = sh("stat -c '%t:%T %F' /dev/writeonly-ctl /dev/more/nul; ls /dev/more")
    assert r.stdout.decode().split("\n")[:3] == ["a:ed character special file", "1:3 character special file", "nul"]
    assert sh("exec 3> /dev/writeonly-ctl && echo opened").stdout == b"opened\n"
    # a device not asked for is denied by the device cgroup, even one made inside
    r = sh("mknod /tmp/loop0 b 7 0 && exec 3< /tmp/loop0 && echo opened")
    assert r.exit_code != 0 and b"Operation not permitted" in r.stderr, r
    for host in (str(devdir / "notadevice"), str(tmp_path / "missing"), "relative"):
        with pytest.raises(grpc.RpcError) as e:
            cri.container(pod_id, pod_cfg, "baddev", ["true"], devices=[pb.Device(container_path="/dev/x", host_path=host)])
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "device" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.container(pod_id, pod_cfg, "cdi", ["true"], CDI_devices=[pb.CDIDevice(name="vendor.com/gpu=0")])
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "vendor.com/gpu=0" in e.value.details()


def test_hugepage_limits(cri, pod):
    """A hugepage limit lands in the container's hugetlb cgroup (v1 or the unified hierarchy);
    a page size this kernel lacks is INVALID_ARGUMENT."""
    import glob

    pb, _ = _pb()
    pod_id, pod_cfg = pod
    res = pb.LinuxContainerResources(hugepage_limits=[pb.HugepageLimit(page_size="2MB", limit=4 << 20)])
    if not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        with pytest.raises(grpc.RpcError) as e:
            cri.container(pod_id, pod_cfg, "huge", ["sleep", "300"], linux=pb.LinuxContainerConfig(resources=res))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return
    cid = cri.container(pod_id, pod_cfg, "huge", ["sleep", "300"], linux=pb.LinuxContainerConfig(resources=res))
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    files = [f for f in glob.glob(f"/sys/fs/cgroup/**/pallet-{cid}/hugetlb.2MB.*", recursive=True)
             if f.endswith((".limit_in_bytes", ".max")) and ".rsvd." not in f]
    assert files and all(open(f).read().strip() == str(4 << 20) for f in files), files
    bad = pb.LinuxContainerResources(hugepage_limits=[pb.HugepageLimit(page_size="3MB", limit=1)])
    with pytest.raises(grpc.RpcError) as e:
        cri.container(pod_id, pod_cfg, "huge2", ["true"], linux=pb.LinuxContainerConfig(resources=bad))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "3MB" in e.value.details()


# -- the streaming server over WebSocket (v5.channel.k8s.io and the older channel protocols) ------

#: the exec/attach channels a client has over WebSocket
WS_EXEC = {0: {"streamtype": "stdin"}, 1: {"streamtype": "stdout"}, 2: {"streamtype": "stderr"},
           3: {"streamtype": "error"}, 4: {"streamtype": "resize"}}


def _ws_connect(url: str, protocols: list[str], path_suffix: str = ""):
    """(status, headers, socket) of a websocket upgrade of a streaming URL."""
    import socket
    import urllib.parse

    from pallet.cri import websocket

    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    code, headers = websocket.client_handshake(s, u.netloc, u.path + path_suffix, protocols)
    s.settimeout(None)
    return code, headers, s


def _ws(url: str, protocol: str, channels: dict = WS_EXEC, path_suffix: str = ""):
    from pallet.cri import websocket

    code, headers, s = _ws_connect(url, [protocol, "v4.channel.k8s.io"] if protocol else [], path_suffix)
    assert code == 101 and headers.get("sec-websocket-protocol", "") == protocol, (code, headers)
    return websocket.Session(s, server=False, channels=channels, base64=".base64." in "." + protocol,
                             close_signal=protocol == "v5.channel.k8s.io").start()


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_websocket_exec_streams_and_exit_code(cri, sleeper, protocol):
    """Exec over WebSocket: stdin, stdout, stderr and the v4 Status with the exit code; v5's CLOSE
    signal ends the command's stdin (``cat`` returns), base64 frames decode the same."""
    cmd = ["sh", "-c", "cat; echo err >&2; exit 3"] if protocol.startswith("v5") else \
        ["sh", "-c", "read x; echo $x; echo err >&2; exit 3"]
    url = _exec_url(cri, sleeper, cmd, stdin=True, stdout=True, stderr=True)
    sess = _ws(url, protocol)
    try:
        sess.streams[0].write(b"ping\n")
        sess.streams[0].close()  # v5: the CLOSE signal; older ones cannot say it (read ends at the line)
        assert sess.streams[1].read_all(30) == b"ping\n"
        assert sess.streams[2].read_all(30) == b"err\n"
        status = json.loads(sess.streams[3].read_all(30))
    finally:
        sess.close()
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_websocket_exec_v1_and_terminal(cri, sleeper):
    """channel.k8s.io (v1): the error channel carries the text, nothing on success; a terminal
    over v5 follows the resize channel."""
    sess = _ws(_exec_url(cri, sleeper, ["sh", "-c", "exit 2"], stdout=True), "channel.k8s.io")
    try:
        assert sess.streams[1].read_all(30) == b""
        assert sess.streams[3].read_all(30) == b"command terminated with non-zero exit code: exit status 2"
    finally:
        sess.close()
    url = _exec_url(cri, sleeper, ["sh", "-c", 'while [ "$(stty size)" != "25 90" ]; do sleep 0.05; done; '
                                               'echo sized; read x; echo got:$x'], stdin=True, stdout=True, tty=True)
    sess = _ws(url, "v5.channel.k8s.io")
    try:
        sess.streams[4].write(b'{"Width":90,"Height":25}')
        seen = b""
        while b"sized" not in seen:
            chunk = sess.streams[1].read(30)
            assert chunk, seen
            seen += chunk
        sess.streams[0].write(b"typed\r")
        rest = sess.streams[1].read_all(30)
        assert json.loads(sess.streams[3].read_all(30))["status"] == "Success"
    finally:
        sess.close()
    assert b"got:typed" in rest.replace(b"\r", b"")


def test_websocket_attach(cri, pod):
    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "wsshell", ["sh"], stdin=True, stdin_once=True)
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    url = cri.rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True), timeout=30).url
    sess = _ws(url, "v5.channel.k8s.io")
    try:
        sess.streams[0].write(b"echo hello; echo oops >&2\n")
        assert sess.streams[1].read(30) == b"hello\n"
        assert sess.streams[2].read(30) == b"oops\n"
        sess.streams[0].close()  # stdin_once: the shell's stdin ends, it exits
        assert sess.streams[1].read_all(30) == b""
        assert json.loads(sess.streams[3].read_all(30))["status"] == "Success"
    finally:
        sess.close()
    wait_for(lambda: cri.status(cid).state == pb.CONTAINER_EXITED, 30, "the shell to exit")


def test_websocket_port_forward(cri, pod):
    """Port forward over WebSocket: a channel pair per ``port`` of the query, each starting with
    the port (little endian); a port nobody listens on is its error channel's text."""
    import struct

    pb, _ = _pb()
    pod_id, pod_cfg = pod
    cid = cri.container(pod_id, pod_cfg, "wsweb", ["httpd", "-f", "-p", "8080", "-h", "/etc"])
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
    wait_for(lambda: cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["wget", "-qO-",
                                                                               "http://127.0.0.1:8080/hostname"],
                                                        timeout=10), timeout=30).exit_code == 0,
             30, "httpd in the pod")
    url = cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id), timeout=30).url
    chans = {0: {}, 1: {}, 2: {}, 3: {}}
    sess = _ws(url, "portforward.k8s.io", chans, "?port=8080&port=8081")
    try:
        prefixes = [sess.streams[n].read(30)[:2] for n in range(4)]
        assert prefixes == [struct.pack("<H", p) for p in (8080, 8080, 8081, 8081)]
        sess.streams[0].write(b"GET /hostname HTTP/1.0\r\n\r\n")
        reply = b""
        while not reply.endswith(pod_cfg.hostname.encode() + b"\n"):
            chunk = sess.streams[0].read(30)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.")
        assert b"connecting to port 8081" in sess.streams[3].read(30)
    finally:
        sess.close()
    for suffix, want in (("", 400), ("?port=0", 400), ("?port=80x", 400)):
        url = cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id), timeout=30).url
        code, _, s = _ws_connect(url, ["portforward.k8s.io"], suffix)
        s.close()
        assert code == want, suffix


def test_websocket_bad_handshakes_and_hostile_frames(cri, sleeper):
    """Bad upgrades get HTTP errors; frames that break RFC 6455 (unmasked, a reserved opcode,
    an oversized length, text on a binary protocol) close that connection with the RFC's code
    and a log line, and the server serves on."""
    import socket
    import struct
    import urllib.parse

    from pallet.cri import websocket

    url = _exec_url(cri, sleeper, ["cat"], stdin=True, stdout=True)
    code, _, s = _ws_connect(url, ["v9.channel.k8s.io"])
    s.close()
    assert code == 403
    u = urllib.parse.urlsplit(url)
    for head, want in (("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==", 426),
                       ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short", 400)):
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        s.sendall(f"GET {u.path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{head}\r\n\r\n"
                  .encode())
        assert s.recv(100).split()[1] == str(want).encode()
        s.close()
    log = os.path.join(cri.work, "server.log")
    mask = b"\1\2\3\4"
    for raw, code, words in ((websocket.frame(websocket.OP_BINARY, b"\0hi"), 1002, "unmasked"),
                             (websocket.frame(5, b"", mask), 1002, "reserved opcode 5"),
                             (b"\x82\xff" + struct.pack(">Q", 1 << 40) + mask, 1009, "bytes"),
                             (websocket.frame(websocket.OP_TEXT, b"0aGk=", mask), 1003, "text message")):
        url = _exec_url(cri, sleeper, ["cat"], stdin=True, stdout=True)
        code101, _, s = _ws_connect(url, ["v5.channel.k8s.io"])
        assert code101 == 101
        s.settimeout(30)
        s.sendall(raw)
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        s.close()
        # the first message (an empty stdout one), then the close frame with the code
        close = got[got.index(b"\x88"):]
        assert struct.unpack(">H", close[2:4])[0] == code, (raw, got)
        wait_for(lambda: words in open(log).read(), 30, f"the log line about {words}")
    # the server serves on: an exec over the same protocol still works
    sess = _ws(_exec_url(cri, sleeper, ["echo", "alive"], stdout=True), "v5.channel.k8s.io")
    try:
        assert sess.streams[1].read_all(30) == b"alive\n"
    finally:
        sess.close()


def _wsexec() -> str | None:
    exe = os.environ.get("PALLET_TEST_WSEXEC") or "/opt/peers/wsexec/wsexec"
    return exe if os.access(exe, os.X_OK) else None


@pytest.mark.skipif(_wsexec() is None, reason="a client-go websocket exec client (remotecommand's WebSocket "
                                                "executor from cri-tools v1.29's vendored client-go, built outside "
                                                "the repo; see docs/cri.md) is not here; runs wherever "
                                                "$PALLET_TEST_WSEXEC or /opt/peers/wsexec/wsexec is")
def test_client_go_websocket_executor(cri, sleeper):
    """client-go's own WebSocket executor (v5.channel.k8s.io, what kubectl 1.30+ speaks): exit
    codes, stdin to its end (the CLOSE signal), a terminal with its size."""
    exe = _wsexec()
    p = subprocess.run([exe, _exec_url(cri, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 5"],
                                       stdout=True, stderr=True)], capture_output=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (5, b"out\n", b"err\n"), p
    p = subprocess.run([exe, "-stdin", _exec_url(cri, sleeper, ["sh", "-c", "wc -c"], stdin=True, stdout=True)],
                       input=b"x" * 100000, capture_output=True, timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, b"100000"), p
    p = subprocess.run([exe, "-tty", "-width", "91", "-height", "27",
                        _exec_url(cri, sleeper, ["stty", "size"], stdout=True, tty=True)],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout) == (0, b"27 91\r\n"), p


def test_pod_namespaces_are_made_by_threads_in_parallel(tmp_path):
    """The server's network namespaces (``netns.create_threaded``): made by short-lived threads at
    once, each its own with ``lo`` up, the caller's namespace untouched; removed, nothing left."""
    from concurrent.futures import ThreadPoolExecutor

    from pallet.containers.network import netns

    runroot = str(tmp_path / "run")
    mine = os.stat("/proc/self/ns/net").st_ino
    paths = []
    try:
        with ThreadPoolExecutor(8) as ex:
            paths = list(ex.map(lambda i: netns.create_threaded(runroot, f"t{os.getpid()}-{i}"), range(8)))
        assert os.stat("/proc/self/ns/net").st_ino == mine
        inodes = {os.stat(p).st_ino for p in paths}
        assert len(inodes) == 8 and mine not in inodes and all(netns.is_mounted(p) for p in paths)
        out = subprocess.run(["nsenter", f"--net={paths[0]}", "ip", "-j", "link", "show"], capture_output=True,
                             text=True, check=True).stdout
        assert [(l["ifname"], "UP" in l["flags"]) for l in json.loads(out)] == [("lo", True)]
        with pytest.raises(Exception, match="already exists"):
            netns.create_threaded(runroot, f"t{os.getpid()}-0")
    finally:
        for p in paths:
            netns.remove(p)
        unmount_under(runroot)
    assert not any(netns.is_mounted(p) for p in paths)
