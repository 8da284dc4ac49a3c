"""The Python API's run containers (``store.containers``): real conmon, pallet-runtime and the test
registry's busybox image, on a store of the module's own (no network: ``network="none"``).

Checked: podman-py's ``run`` (output, ``ContainerFailed`` with the exit code and stderr, ``remove``),
a detached container's life (status, exec_run, logs, inspect equal to ``pallet container inspect``,
wait with a timeout, stop, remove), options never changed, bad input refused with nothing made.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile

import pytest

from api_fixtures import busybox  # noqa: F401  (a fixture)
from conftest import need, release_all, run_pallet, unmount_under, wait_for

pytestmark = pytest.mark.usefixtures("isolated")

#: this module's containers go below a cgroup parent of their own: what is left there is theirs
CGROUP_PARENT = f"pallet_api_test_{os.getpid()}"


def _cgroups() -> list:
    base = "/sys/fs/cgroup"
    roots = [base] if os.path.exists(os.path.join(base, "cgroup.controllers")) else \
        [os.path.join(base, d) for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))
         and not os.path.islink(os.path.join(base, d))]
    out = []
    for r in roots:
        d = os.path.join(r, CGROUP_PARENT)
        if os.path.isdir(d):
            out += [os.path.join(d, x) for x in os.listdir(d) if x.startswith("pallet-")]
    return out


def _remove_cgroup_parent() -> None:
    base = "/sys/fs/cgroup"
    for d in [base] + [os.path.join(base, x) for x in os.listdir(base)]:
        try:
            os.rmdir(os.path.join(d, CGROUP_PARENT))
        except OSError:
            pass


@pytest.fixture(scope="module")
def ctr_store(busybox, tmp_path_factory):
    """A store of the module's own with the busybox image pulled; every container, mount and
    cgroup of it gone at the end, even when a test failed."""
    import pallet

    need("conmon")
    root = str(tmp_path_factory.mktemp("api-ctrs") / "root")
    runroot = tempfile.mkdtemp(prefix="pac-")  # short: conmon's socket paths must fit sun_path
    s = pallet.open_store(root, runroot=runroot, tls_verify=False)
    image = busybox.removeprefix("docker://")
    s.pull(image)
    s.test_image = image  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        base = ["--root", root, "--runroot", runroot]
        release_all(lambda: run_pallet(*base, "rm", "-a", "-f", "-t", "0", check=False),
                    lambda: run_pallet(*base, "image", "umount", "--all", check=False),
                    lambda: unmount_under(runroot),
                    lambda: shutil.rmtree(runroot, ignore_errors=True))
        left = _cgroups()
        _remove_cgroup_parent()
        assert not left, left


def _opts(**kw):
    return dict(network="none", cgroup_parent=CGROUP_PARENT, **kw)


def test_foreground_run_gives_output_or_raises_with_the_exit_code(ctr_store):
    import pallet

    cm = ctr_store.containers
    img = ctr_store.test_image
    env, labels, tmpfs = {"WHO": "api"}, {"purpose": "test"}, ["/scratch"]
    before = copy.deepcopy((env, labels, tmpfs))
    out = cm.run(img, ["sh", "-c", "echo out $WHO; echo err >&2"], remove=True, env=env, labels=labels,
                 tmpfs=tmpfs, **_opts())
    assert out == b"out api\n"
    assert (env, labels, tmpfs) == before  # options are never changed
    assert cm.run(img, "sh -c 'echo one; echo two >&2'", stderr=True, remove=True, **_opts()) == b"one\ntwo\n"
    with pytest.raises(pallet.ContainerFailed) as e:
        cm.run(img, ["sh", "-c", "echo bad >&2; exit 3"], name="api-fails", remove=True, **_opts())
    assert isinstance(e.value, pallet.ContainerError) and isinstance(e.value, pallet.PalletError)
    assert (e.value.exit_code, e.value.stderr, e.value.reference) == (3, b"bad\n", "api-fails")
    assert e.value.image == img and e.value.command == ["sh", "-c", "echo bad >&2; exit 3"]
    with pytest.raises(pallet.ContainerError) as e:  # a command that cannot start: podman's 127
        cm.run(img, ["/no/such/command"], name="api-nocmd", remove=True, **_opts())
    assert e.value.exit_code == 127 and e.value.reference == "api-nocmd" and "/no/such/command" in str(e.value)
    assert cm.list(all=True) == []  # remove=True: nothing stays
    # without remove the container stays, exited, with its exit code
    cm.run(img, ["true"], name="api-kept", **_opts())
    kept = cm.get("api-kept")
    assert kept.status == "exited" and kept.wait() == 0 and kept.inspect().exit_code == 0
    kept.remove()
    assert not cm.exists("api-kept")


def test_a_detached_containers_life(ctr_store):
    import pallet

    cm = ctr_store.containers
    script = "echo hello; echo oops >&2; trap 'exit 0' TERM; while :; do sleep 0.1; done"
    c = cm.run(ctr_store.test_image, ["sh", "-c", script], name="api-life", detach=True, env=["FOO=bar"],
               labels={"k": "v"}, **_opts())
    assert isinstance(c, pallet.ManagedContainer) and not isinstance(c, pallet.Container)
    try:
        assert c.status == "running" and c.name == "api-life" and c.labels["k"] == "v"
        assert cm.list() == [c] and cm.get("api-life") == c and cm.get(c.id[:12]) == c

        r = c.exec_run(["sh", "-c", "echo $FOO; echo e >&2; exit 4"])
        assert isinstance(r, pallet.ExecResult) and (r.exit_code, r.output) == (4, b"bar\ne\n")
        code, output = c.exec_run("cat /proc/1/cmdline")
        assert code == 0 and output.startswith(b"sh\0-c\0")
        assert json.loads(r.to_json()) == {"ExitCode": 4, "Output": "bar\ne\n"}

        wait_for(lambda: list(c.logs(stdout=False)) == [b"oops\n"], 10, "the container's stderr in its log")
        assert list(c.logs(stderr=False)) == [b"hello\n"]
        assert list(c.logs()) == [b"hello\n", b"oops\n"]
        assert list(c.logs(tail=1)) == [b"oops\n"] and list(c.logs(tail=0)) == []
        assert list(c.logs(since=4102444800)) == []  # 2100-01-01: nothing logged since
        stamped = list(c.logs(timestamps=True))
        assert stamped[0].endswith(b" hello\n") and stamped[0][:4].isdigit()

        info = c.inspect()
        assert isinstance(info, pallet.ContainerInfo) and dataclasses.is_dataclass(info)
        cli = json.loads(run_pallet("--root", ctr_store.root, "--runroot", ctr_store.runroot, "container",
                                    "inspect", "api-life").stdout)[0]
        assert info.as_dict() == cli  # podman's keys, the command's values
        assert (info.id, info.name, info.status, info.running) == (c.id, "api-life", "running", True)
        assert info.command == ("sh", "-c", script) and info.labels["k"] == "v" and info.pid > 0

        with pytest.raises(pallet.ContainerWaitTimeout) as e:
            c.wait(timeout=0.2)
        assert isinstance(e.value, TimeoutError) and e.value.reference == c.id
        c.stop(timeout=10)
        assert c.status == "exited" and c.wait() == 0
        assert cm.list() == [] and cm.list(all=True) == [c]
    finally:
        c.remove(force=True)
    assert not cm.exists(c.id)
    with pytest.raises(pallet.ContainerNotFound) as e:
        cm.get("api-life")
    assert e.value.reference == "api-life" and e.value.exit_code == 125


def test_follow_streams_until_the_container_exits(ctr_store):
    cm = ctr_store.containers
    c = cm.create(ctr_store.test_image, ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.05; done"],
                  name="api-follow", **_opts())
    try:
        assert c.status == "created"
        c.start()
        lines = list(c.logs(follow=True))  # ends when the container exits: no line missed
        assert lines == [b"line1\n", b"line2\n", b"line3\n"]
        assert c.wait() == 0
    finally:
        c.remove(force=True)


def test_bad_input_is_refused_naming_it_and_nothing_is_made(ctr_store):
    import pallet

    cm = ctr_store.containers
    img = ctr_store.test_image
    cases = [(dict(env=["NOEQUALS"]), pallet.UsageError, "NOEQUALS"),
             (dict(volumes={"/tmp": {"mode": "ro"}}), pallet.UsageError, "volumes"),
             (dict(ports={80: ["x"]}), pallet.UsageError, "ports"),
             (dict(name="../bad"), pallet.UsageError, "../bad"),
             (dict(mem_limit="lots"), pallet.UsageError, "lots"),
             (dict(pull="sometimes"), pallet.UsageError, "sometimes")]
    for kw, err, word in cases:
        with pytest.raises(err, match=None) as e:
            cm.create(img, ["true"], **_opts(), **kw)
        assert word in str(e.value) and "\n" not in str(e.value), kw
    with pytest.raises(pallet.ContainerError, match="image not known"):
        cm.create("localhost/not-here:1", ["true"], pull="never", **_opts())
    with pytest.raises(pallet.UsageError):
        cm.get(42)  # type: ignore[arg-type]
    with pytest.raises(pallet.UsageError, match="invalid signal"):
        cm.create(img, ["true"], name="api-sig", **_opts()).kill("NOSUCHSIGNAL")
    cm.get("api-sig").remove()
    assert cm.list(all=True) == []


def test_named_volumes(ctr_store):
    import pallet

    vols, cm = ctr_store.volumes, ctr_store.containers
    labels = {"team": "api"}
    v = vols.create("api-vol", labels=labels)
    assert labels == {"team": "api"}
    assert isinstance(v, pallet.VolumeInfo) and (v.name, v.driver, v.labels) == ("api-vol", "local", labels)
    cli = json.loads(run_pallet("--root", ctr_store.root, "--runroot", ctr_store.runroot, "volume", "inspect",
                                "api-vol").stdout)
    assert v.as_dict() == cli[0] and vols.get("api-vol") == v and vols.list() == [v]
    with pytest.raises(pallet.VolumeError, match="already exists"):
        vols.create("api-vol")
    img = ctr_store.test_image
    cm.run(img, ["sh", "-c", "echo kept > /data/f"], volumes={"api-vol": {"bind": "/data", "mode": "rw"}},
           remove=True, **_opts())
    assert cm.run(img, ["cat", "/data/f"], volumes=["api-vol:/data:ro"], remove=True, **_opts()) == b"kept\n"
    user = cm.create(img, ["true"], volumes={"api-vol": "/data"}, **_opts())
    with pytest.raises(pallet.VolumeInUse) as e:
        vols.remove("api-vol")
    assert e.value.reference == "api-vol"
    vols.remove("api-vol", force=True)  # its container goes first
    assert not vols.exists("api-vol") and not cm.exists(user.id)
    with pytest.raises(pallet.VolumeNotFound):
        vols.get("api-vol")


def test_networks_in_a_directory_of_their_own(ctr_store, tmp_path):
    import pallet

    netdir = str(tmp_path / "networks")
    with pallet.open_store(ctr_store.root, runroot=ctr_store.runroot, network_config_dir=netdir) as s:
        n = s.networks.create("apinet", labels={"a": "b"})
        assert isinstance(n, pallet.NetworkInfo) and n.name == "apinet" and n.driver == "bridge"
        assert len(n.subnets) == 1 and n.gateways and n.labels == {"a": "b"}
        cli = json.loads(run_pallet("--root", s.root, "network", "inspect", "apinet",
                                    env={"PALLET_NETWORK_CONFIG_DIR": netdir}).stdout)
        assert n.as_dict() == cli[0] and s.networks.get(n.id[:12]) == n
        assert [x.name for x in s.networks.list()] == ["apinet", "pallet"]  # and the default one
        with pytest.raises(pallet.PalletError, match="already exists") as e:
            s.networks.create("apinet")
        assert e.value.reference == "apinet" and e.value.exit_code == 125
        with pytest.raises(pallet.UsageError):
            s.networks.create("bad/name")
        s.networks.remove("apinet")
        assert not s.networks.exists("apinet")
        with pytest.raises(pallet.NetworkNotFound) as e:
            s.networks.get("apinet")
        assert e.value.reference == "apinet"
