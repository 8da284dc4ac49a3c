"""Pods (``pallet pod ...``, ``run/create --pod``) with real conmon, pallet-runtime, netavark and
catatonit, side by side with podman 4.3 on ``pod ps``/``pod inspect`` keys.

The module's pallet and podman stores are test_containers_run's fixtures (their teardown runs
``rm -a -f``, which removes pods too). The pods here go below that module's cgroup parent
(``--cgroup-parent``), each test's names are its own, and what a pod leaves on the host
(container records, namespaces, mounts, cgroups, veths, firewall rules) is snapshot before and
compared after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from conftest import free_port, need, wait_for
from test_containers_run import (CGROUP_PARENT, _firewall, _hierarchies, _one_line_error,  # noqa: F401
                                 _without_podman_warnings, pallet, podman)


def _pallet(pallet, *args, check=False, timeout=60):
    """pallet on the module's store, without the flags the fixture adds to run/create (a member's
    cgroup parent is its pod's)."""
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    p = subprocess.run([exe] + pallet.base + list(args), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p


def _pod_create(pallet, *args) -> str:
    return _pallet(pallet, "pod", "create", "--network-config-dir", pallet.nets, "--cgroup-parent", CGROUP_PARENT,
                   *args, check=True).stdout.strip()


def _pod_ids(pallet) -> set:
    return set(_pallet(pallet, "pod", "ps", "-q", "--no-trunc", check=True).stdout.split())


def _pod_cgroups(pod_id: str) -> list:
    return [d for d in (os.path.join(h, CGROUP_PARENT, pod_id) for h in _hierarchies()) if os.path.isdir(d)]


def _links(pallet) -> set:
    """The module store's bridges and the veths on them (other pallets on the host have theirs)."""
    bridges = set()
    for f in os.listdir(pallet.nets) if os.path.isdir(pallet.nets) else ():
        if f.endswith(".json"):
            with open(os.path.join(pallet.nets, f)) as fh:
                bridges.add(json.load(fh).get("network_interface"))
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True, text=True).stdout
    return {link["ifname"] for link in json.loads(out) if link["ifname"] in bridges or link.get("master") in bridges}


def _state(pallet) -> dict:
    """What pallet has on the host: the fixture's leftovers, pods, the store's links."""
    out = pallet.leftovers()
    out["pods"] = _pod_ids(pallet)
    out["links"] = _links(pallet)
    return out


def _ns(pid: int) -> dict:
    return {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in ("net", "ipc", "uts", "pid")}


def _pid(pallet, name: str) -> int:
    return json.loads(_pallet(pallet, "container", "inspect", name, check=True).stdout)[0]["State"]["Pid"]


def test_pod_members_share_localhost_hostname_ipc_and_the_pods_port(pallet):
    """Two containers in one pod: B fetches A's httpd on localhost (bounded by timeout), both see
    the pod's hostname and one IPC and UTS namespace (the infra container's), the pod's published
    port reaches A from the host, their cgroups are below the pod's; ``pod rm -f`` then leaves no
    container, namespace, cgroup, veth or firewall rule."""
    need("iptables-save")
    before = _state(pallet)
    rules = _firewall()
    port = free_port()
    tag = f"pt{os.getpid()}"
    pod = _pod_create(pallet, "--name", tag, "-p", f"127.0.0.1:{port}:80", "--add-host", "pod.example:10.1.2.3")
    assert len(pod) == 64
    web = _pallet(pallet, "run", "-d", "--pod", tag, "--name", f"{tag}-web", pallet.image, "sh", "-c",
                  "mkdir -p /www && echo hello-pod > /www/index.html && echo shm > /dev/shm/pod-shm && "
                  "exec httpd -f -p 80 -h /www",
                  check=True).stdout.strip()

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                return resp.read()
        except OSError:
            return None

    assert wait_for(fetch, what="the pod's published port") == b"hello-pod\n"  # httpd listens now
    r = _pallet(pallet, "run", "--rm", "--pod", tag, pallet.image, "sh", "-c",
                "timeout 5 wget -qO- http://127.0.0.1:80/; hostname; cat /etc/hostname /dev/shm/pod-shm; "
                "grep -c '^10.1.2.3.pod.example$' /etc/hosts")
    # one localhost, hostname, /dev/shm and /etc/hosts (the pod's --add-host) for both
    assert (r.returncode, r.stdout) == (0, f"hello-pod\n{tag}\n{tag}\nshm\n1\n"), r.stderr
    doc = json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)
    infra = doc["InfraContainerID"]
    assert doc["State"] == "Running" and doc["NumContainers"] == 2
    assert doc["InfraConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    infra_ns, web_ns = _ns(_pid(pallet, infra)), _ns(_pid(pallet, web))
    assert {k: infra_ns[k] == web_ns[k] for k in infra_ns} == {"net": True, "ipc": True, "uts": True, "pid": False}
    with open(f"/proc/{_pid(pallet, web)}/cgroup") as f:
        assert f"/{CGROUP_PARENT}/{pod}/pallet-{web}" in f.read()
    assert _pod_cgroups(pod)
    # ps knows the pod: --pod's columns, --filter pod=, the infra container's IsInfra
    ps = json.loads(_pallet(pallet, "ps", "-a", "--pod", "--format", "json", "--filter", f"pod={tag}",
                            check=True).stdout)
    assert sorted((e["Id"], e["Pod"], e["PodName"], e["IsInfra"]) for e in ps) == \
        sorted([(infra, pod, tag, True), (web, pod, tag, False)])
    assert _pallet(pallet, "ps", "-a", "-q", "--filter", "pod=nosuchpod", check=True).stdout == ""
    table = _pallet(pallet, "ps", "--pod", "--filter", f"pod={pod[:12]}", check=True).stdout.splitlines()
    assert table[0].split()[-4:] == ["POD", "ID", "PODNAME"][-3:] or table[0].endswith("POD ID        PODNAME")
    assert all(line.split()[-2:] == [pod[:12], tag] for line in table[1:]) and len(table) == 3

    r = _pallet(pallet, "pod", "rm", "-f", "-t", "0", tag)
    assert (r.returncode, r.stdout) == (0, pod + "\n"), r.stderr
    assert _state(pallet) == before
    assert not _pod_cgroups(pod)
    left = [line for line in _firewall() - rules if f"dport {port}" in line or infra[:12] in line]
    assert left == []
    assert fetch() is None


def test_bad_input_is_one_line_125_and_makes_nothing(pallet):
    tag = f"pb{os.getpid()}"
    _pod_create(pallet, "--name", tag)
    before = _state(pallet)
    pod_recs = _pallet(pallet, "pod", "ps", "--format", "json", check=True).stdout
    cases = [
        (["run", "--rm", "--pod", "nosuchpod", pallet.image, "true"], "no pod with name or ID nosuchpod found"),
        (["pod", "create", "--name", tag], f'name "{tag}" is in use: pod already exists'),
        (["run", "--rm", "--pod", tag, "--network", "none", pallet.image, "true"],
         "network cannot be configured when it is shared with a pod"),
        (["create", "--pod", tag, "-p", "8080:80", pallet.image, "true"], "published or exposed ports must be "
                                                                          "defined when the pod is created"),
        (["create", "--pod", tag, "--uts", "host", pallet.image, "true"], "--uts cannot be set when joining"),
        (["pod", "create", "--share", "mnt"], "invalid kernel namespace to share: mnt"),
        (["pod", "create", "--infra=false", "-p", "8080:80"], "you must have an infra container"),
        (["pod", "create", "-p", "notaport"], "notaport"),
        (["run", "--rm", "--pod", f"new:{tag}x", pallet.image.replace("busybox:v1", "nosuch:v1"), "true"], ""),
    ]
    for argv, words in cases:
        r = _pallet(pallet, *argv)
        assert r.returncode == 125, (argv, r.returncode, r.stderr)
        assert words in r.stderr.splitlines()[-1], (argv, r.stderr)
        if argv[0] != "run" or "nosuch:v1" not in argv[-2]:  # a pull prints its "Trying to pull" line first
            _one_line_error(r.stderr)
    assert _state(pallet) == before  # no container, pod (new:... taken back), namespace, mount
    assert _pallet(pallet, "pod", "ps", "--format", "json", check=True).stdout == pod_recs
    assert _pallet(pallet, "pod", "rm", tag, check=True).returncode == 0


def test_pod_life_and_the_infra_container_goes_only_with_its_pod(pallet):
    tag = f"pl{os.getpid()}"
    before = _state(pallet)
    pod = _pod_create(pallet, "--name", tag, "--label", "team=a", "--share", "+pid")
    member = _pallet(pallet, "create", "--pod", tag, "--name", f"{tag}-m", pallet.image, "sleep", "60",
                     check=True).stdout.strip()
    doc = json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)
    infra = doc["InfraContainerID"]
    assert (doc["State"], doc["SharedNamespaces"], doc["Labels"]) == ("Created", ["ipc", "net", "pid", "uts"],
                                                                     {"team": "a"})
    assert _pallet(pallet, "container", "inspect", "--format", "{{.Pod}} {{.IsInfra}}", infra, member,
                   check=True).stdout == f"{pod} true\n{pod} false\n"
    r = _pallet(pallet, "rm", "-f", infra)  # refused while its pod is there, whatever its members
    assert r.returncode == 125 and "is the infra container of pod" in _one_line_error(r.stderr)
    assert _pallet(pallet, "pod", "exists", tag).returncode == 0
    assert _pallet(pallet, "pod", "exists", "nosuchpod").returncode == 1
    assert _pallet(pallet, "pod", "start", tag, check=True).stdout == pod + "\n"
    ps = json.loads(_pallet(pallet, "pod", "ps", "--format", "json", "--filter", f"name=^{tag}$", check=True).stdout)
    assert [(p["Status"], [(c["Id"], c["Status"]) for c in p["Containers"]]) for p in ps] == \
        [("Running", [(infra, "running"), (member, "running")])]
    top = _pallet(pallet, "pod", "top", tag, "pid", "args", check=True).stdout
    assert "/catatonit -P" in top and "sleep 60" in top  # one pid namespace (--share +pid): both seen
    assert _pallet(pallet, "pod", "pause", tag, check=True).returncode == 0
    assert _pallet(pallet, "pod", "ps", "-q", "--filter", "status=paused", "--no-trunc", check=True).stdout.split() \
        == [pod]
    assert _pallet(pallet, "pod", "unpause", tag, check=True).returncode == 0
    assert _pallet(pallet, "pod", "kill", "-s", "KILL", tag, check=True).stdout == pod + "\n"
    wait_for(lambda: json.loads(_pallet(pallet, "pod", "inspect", tag).stdout)["State"] == "Exited",
             what="the killed pod's containers to exit")
    assert _pallet(pallet, "pod", "restart", tag, check=True).stdout == pod + "\n"
    assert json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)["State"] == "Running"
    r = _pallet(pallet, "pod", "rm", tag)  # running: refused without -f
    assert r.returncode == 125 and "cannot be removed without force" in _one_line_error(r.stderr)
    assert _pallet(pallet, "pod", "stop", "-t", "0", tag, check=True).stdout == pod + "\n"
    assert json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)["State"] == "Exited"
    assert _pallet(pallet, "pod", "rm", tag, check=True).stdout == pod + "\n"
    assert _state(pallet) == before and not _pod_cgroups(pod)
    r = _pallet(pallet, "pod", "rm", tag)
    assert r.returncode == 1 and "no such pod" in _one_line_error(r.stderr)
    assert _pallet(pallet, "pod", "rm", "-f", tag).returncode == 0


def test_the_pause_image_by_podmans_name_and_rmi_f_of_it_removes_its_pods(pallet):
    """podman 010 "rmi -f can remove infra images": the pause image is named from ``version``'s
    fields as podman's is; ``rmi`` refuses it in podman's words; ``rmi -f`` removes the pods whose
    infra container uses it (and their members); other images stay."""
    tag = f"pi{os.getpid()}"
    before = _state(pallet)
    member = _pallet(pallet, "create", "--pod", f"new:{tag}", "--network-config-dir", pallet.nets, pallet.image,
                     "true", check=True).stdout.strip()  # never started: no network, no cgroup
    fields = _pallet(pallet, "version", "--format", "{{.Server.Version}}-{{.Server.Built}}", check=True).stdout
    from pallet import __version__

    assert fields == f"{__version__}-0\n"
    pause = "localhost/podman-pause:" + fields.strip()
    pause_id = _pallet(pallet, "image", "inspect", "--format", "{{.Id}}", pause, check=True).stdout.strip()
    infra = json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)["InfraContainerID"]
    r = _pallet(pallet, "rmi", pause)
    assert (r.returncode, r.stderr) == (2, f"Error: image used by {infra}: image is in use by a container: consider "
                                           "listing external containers and force-removing image\n")
    r = _pallet(pallet, "rmi", "-f", pause, check=True)
    assert r.stdout == f"Untagged: {pause}\nDeleted: {pause_id}\n"
    assert _pallet(pallet, "pod", "exists", tag).returncode == 1
    assert _pallet(pallet, "container", "exists", member).returncode == 1
    assert _pallet(pallet, "image", "exists", pallet.image).returncode == 0
    assert _state(pallet) == before


def test_exit_policy_stop_and_rm_all_and_rm_depend(pallet):
    """``--exit-policy stop``: when its last member exits, conmon's exit command stops the infra
    container (the pod is Exited, and ``pod prune`` takes it); ``rm --depend INFRA`` removes its pod; ``rm -a -f`` (the
    fixtures' teardown too) removes pods and their infra containers, as podman's does."""
    tag = f"pa{os.getpid()}"
    before = _state(pallet)
    _pod_create(pallet, "--name", tag, "--exit-policy", "stop")
    member = _pallet(pallet, "create", "--pod", tag, pallet.image, "true", check=True).stdout.strip()
    assert _pallet(pallet, "start", "-a", member, check=True).returncode == 0
    wait_for(lambda: json.loads(_pallet(pallet, "pod", "inspect", tag).stdout)["State"] == "Exited",
             what="the pod to stop")
    # container prune takes the exited member, not the infra container (it goes with its pod)
    assert _pallet(pallet, "container", "prune", "-f", check=True).stdout.split() == [member]
    # another pod, made by run --pod new:NAME, running: pod prune takes only the exited one
    pod = json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)["Id"]
    _pallet(pallet, "run", "-d", "--pod", f"new:{tag}n", pallet.image, "sleep", "60", check=True)
    assert _pallet(pallet, "pod", "prune", "-f", check=True).stdout.split() == [pod]
    assert len(_pod_ids(pallet) - before["pods"]) == 1
    infra = json.loads(_pallet(pallet, "pod", "inspect", f"{tag}n", check=True).stdout)["InfraContainerID"]
    r = _pallet(pallet, "rm", "--depend", "-f", "-t", "0", infra)  # its pod goes, with its container
    assert r.returncode == 0 and infra in r.stdout.split() and len(r.stdout.split()) == 2, r.stderr
    assert _pod_ids(pallet) == before["pods"]
    _pallet(pallet, "create", "--pod", f"new:{tag}r", pallet.image, "true", check=True)
    r = _pallet(pallet, "rm", "-a", "-f", "-t", "0")
    assert r.returncode == 0, r.stderr
    assert _pod_ids(pallet) == set() and pallet.ids() == set()
    assert _state(pallet) == dict(before, containers=set(), pods=set())


def test_pod_ps_and_inspect_keys_as_podman(pallet, podman):
    tag = f"pk{os.getpid()}"
    port = free_port()
    _pod_create(pallet, "--name", tag, "-p", f"127.0.0.1:{port}:80", "--label", "a=b")
    try:
        r = podman("pod", "create", "--name", tag, "-p", f"127.0.0.1:{port}:80", "--label", "a=b")
        assert r.returncode == 0, r.stderr
        mine = json.loads(_pallet(pallet, "pod", "inspect", tag, check=True).stdout)
        theirs = json.loads(podman("pod", "inspect", tag).stdout)
        assert list(mine) == list(theirs)
        assert list(mine["InfraConfig"]) == list(theirs["InfraConfig"])
        assert mine["InfraConfig"]["PortBindings"] == theirs["InfraConfig"]["PortBindings"]
        assert [list(c) for c in mine["Containers"]] == [list(c) for c in theirs["Containers"]]
        assert (mine["State"], mine["NumContainers"], mine["Labels"], sorted(mine["SharedNamespaces"])) == \
            (theirs["State"], theirs["NumContainers"], theirs["Labels"], sorted(theirs["SharedNamespaces"]))
        mine = json.loads(_pallet(pallet, "pod", "ps", "--format", "json", "--filter", f"name={tag}").stdout)
        theirs = json.loads(podman("pod", "ps", "--format", "json", "--filter", f"name={tag}").stdout)
        assert [list(p) for p in mine] == [list(p) for p in theirs]
        assert [[list(c) for c in p["Containers"]] for p in mine] == [[list(c) for c in p["Containers"]]
                                                                     for p in theirs]
        assert [(p["Status"], p["Labels"]) for p in mine] == [(p["Status"], p["Labels"]) for p in theirs]
        mine = _pallet(pallet, "pod", "ps", "--filter", f"name={tag}", check=True).stdout.splitlines()
        theirs = podman("pod", "ps", "--filter", f"name={tag}").stdout.splitlines()
        assert mine[0].split() == theirs[0].split() and len(mine) == len(theirs) == 2  # (CREATED's width: "ago")
        for verb in (["rm"], ["inspect"], ["stop"], ["exists"]):
            m, t = _pallet(pallet, "pod", *verb, "nosuchpod"), podman("pod", *verb, "nosuchpod")
            assert m.returncode == t.returncode, (verb, m.stderr, t.stderr)
            assert m.stderr == _without_podman_warnings(t.stderr), verb
    finally:
        podman("pod", "rm", "-f", "-t", "0", tag)
        _pallet(pallet, "pod", "rm", "-f", "-t", "0", tag)


def test_concurrent_pod_creates_of_one_name_make_one_pod(pallet):
    """The name is taken under the containers' lock before anything is made: of four ``pod create``
    racing for one name, one makes the pod (and its one infra container), the others fail with
    podman's error and leave nothing."""
    tag = f"pc{os.getpid()}"
    before = _state(pallet)
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    procs = [subprocess.Popen([exe] + pallet.base + ["pod", "create", "--name", tag, "--network", "none"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    made = [out.strip() for rc, out, _ in results if rc == 0]
    assert len(made) == 1, results
    assert all(rc == 125 and f'name "{tag}" is in use' in _one_line_error(err) for rc, _, err in results if rc)
    assert _pod_ids(pallet) - before["pods"] == set(made)
    assert len(pallet.ids() - before["containers"]) == 1  # one infra container
    assert _pallet(pallet, "pod", "rm", tag, check=True).stdout.strip() == made[0]
    assert _state(pallet) == before
