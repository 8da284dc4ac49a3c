"""podman's image verbs on the store, end to end: save/load round trips, prune and the build
cache, pulls by digest, foreign roots, killed builds (against real podman where it matters)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

import images
from conftest import need
from test_schema1_progress import schema1_dir  # noqa: F401  (a fixture)
from test_storage import StoreCLI, push_layout

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def s(tmp_path):
    st = StoreCLI(str(tmp_path / "store"), "overlay")
    yield st
    st.cleanup()


def _image(registry, tmp_path, repo: str, layers=None) -> str:
    layout = str(tmp_path / ("layout-" + repo.replace("/", "-")))
    if layers is None:
        images.make_layout(layout, "v1")
    else:
        images.make_layout(layout, "v1", layers=layers)
    return push_layout(registry, layout, "v1", repo)


def _sha(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _remote_digest(ref: str) -> str:
    return subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                           f"docker://{ref}"], capture_output=True, text=True, check=True).stdout.strip()


# -- issue 13.1: save -> load in the same store --------------------------------------------

def test_save_load_save_in_the_same_store_is_byte_identical(s, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/saveload")
    s("pull", "-q", "--tls-verify=false", ref)
    a, b = str(tmp_path / "a.tar"), str(tmp_path / "b.tar")
    s("save", "-o", a, ref)
    s("load", "-i", a)
    s("save", "-o", b, ref)
    assert _sha(a) == _sha(b)
    dest = f"{registry.host}/imgs/saveload-pushed:1"
    s("push", "--tls-verify=false", ref, dest)
    assert _remote_digest(dest) == _remote_digest(ref)
    s("system", "check")
    # and the image loaded into a fresh store saves the same archive again
    other = StoreCLI(str(tmp_path / "other"), "overlay")
    try:
        other("load", "-i", a)
        c = str(tmp_path / "c.tar")
        other("save", "-o", c, ref)
        assert _sha(a) == _sha(c)
        other("push", "--tls-verify=false", ref, f"{registry.host}/imgs/saveload-other:1")
        other("system", "check")
    finally:
        other.cleanup()


class Podman:
    """Real podman on a store of its own in temp dirs (vfs; the run root short, as podman wants)."""

    def __init__(self, root: str, driver: str = "vfs"):
        import tempfile

        self.root = root
        self.driver = driver
        self.runroot = tempfile.mkdtemp(prefix="psr-")

    def __call__(self, *args, check=True):
        p = subprocess.run([need("podman"), "--root", self.root, "--runroot", self.runroot, "--storage-driver",
                            self.driver, "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args],
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def cleanup(self):
        import shutil

        self("rmi", "-a", "-f", check=False)
        subprocess.run(["umount", "-R", "-l", self.runroot], capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


@pytest.fixture
def podman(tmp_path):
    p = Podman(str(tmp_path / "podman-root"))
    yield p
    p.cleanup()


def test_podmans_archive_of_an_image_whose_layers_are_stored_loads_whole(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/podmansave")
    s("pull", "-q", "--tls-verify=false", ref)
    podman("pull", "-q", "--tls-verify=false", ref)
    archive = str(tmp_path / "podman.tar")
    podman("save", "-o", archive, ref)
    s("load", "-i", archive)
    s("system", "check")
    s("save", "-o", str(tmp_path / "a.tar"), ref)
    dest = f"{registry.host}/imgs/podmansave-pushed:1"
    s("push", "--tls-verify=false", ref, dest)
    assert _remote_digest(dest) == _remote_digest(ref)
    # every image the store lists saves and pushes, by ID too
    for i, iid in enumerate(s("images", "-q", "--no-trunc").stdout.split()):
        s("save", "-o", str(tmp_path / f"id{i}.tar"), iid)
        s("push", "--tls-verify=false", iid, f"{registry.host}/imgs/podmansave-byid:{i}")
    # the archive podman wrote loads into a fresh store too, and saves back to the same layers
    other = StoreCLI(str(tmp_path / "other"), "overlay")
    try:
        other("load", "-i", archive)
        c = str(tmp_path / "c.tar")
        other("save", "-o", c, ref)
        other("system", "check")
    finally:
        other.cleanup()


# -- issue 14.14: a foreign layer copied into local: ---------------------------------------

def _foreign_layout(root: str) -> str:
    """An OCI layout whose base layer is non-distributable, with a URL, and (as such layers are)
    not in the layout; returns that layer's digest."""
    images.make_layout(root, "v1", layers=[{"base.txt": "base"}, {"top.txt": "top"}])
    with open(os.path.join(root, "index.json")) as f:
        index = json.load(f)
    mdesc = index["manifests"][0]
    mpath = os.path.join(root, "blobs", "sha256", mdesc["digest"].split(":", 1)[1])
    with open(mpath) as f:
        manifest = json.load(f)
    layer = manifest["layers"][0]
    layer["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    layer["urls"] = ["https://example.invalid/base.tar.gz"]
    os.unlink(os.path.join(root, "blobs", "sha256", layer["digest"].split(":", 1)[1]))
    raw = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", digest.split(":", 1)[1]), "wb") as f:
        f.write(raw)
    mdesc.update(digest=digest, size=len(raw))
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    return layer["digest"]


def test_a_foreign_layer_copied_into_local_is_named_not_said_to_have_vanished(s, tmp_path):
    layout = str(tmp_path / "foreign")
    digest = _foreign_layout(layout)
    for args in (("copy", f"oci:{layout}:v1", "local:foreign"), ("pull", f"oci:{layout}:v1")):
        p = s(*args, check=False)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert digest in lines[0] and "non-distributable (foreign)" in lines[0], lines[0]
        assert "vanished" not in lines[0]
    assert s("images", "-q", "-a").stdout == ""
    s("system", "check")


# -- issue 13.3: image prune keeps the build cache -----------------------------------------

@pytest.fixture
def busybox_store(tmp_path):
    from buildtools import PalletStore, make_busybox_layout

    layout = str(tmp_path / "bb")
    make_busybox_layout(layout, "v1")
    st = PalletStore(str(tmp_path / "bstore"))
    st("copy", f"oci:{layout}:v1", "local:localhost/busybox:v1")
    yield st
    st.unmount_all()


def test_prune_keeps_the_build_cache_and_removes_what_dangles(busybox_store, tmp_path):
    s = busybox_store
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN echo $(date +%s%N) > /stamp\n"
                                    "COPY f.txt /f.txt\nRUN cat /f.txt /stamp > /both\nENV E=1\n")
    (ctx / "f.txt").write_text("one")
    s("build", "-t", "c1", str(ctx))
    cache = set(s("images", "-q", "-a", "--no-trunc").stdout.split())
    assert len(cache) >= 4  # busybox, c1 and the steps under it
    # a dangling image: an unnamed one nothing is built on
    other = tmp_path / "other"
    images.make_layout(str(other), "v1", layers=[{"x.txt": "x"}])
    s("copy", f"oci:{other}:v1", "local:dangling")
    s("untag", "dangling")
    dangling = (set(s("images", "-q", "-a", "--no-trunc").stdout.split()) - cache).pop()
    assert s("image", "prune").stdout.split() == [dangling.removeprefix("sha256:")]
    assert set(s("images", "-q", "-a", "--no-trunc").stdout.split()) == cache
    out = s("build", "-t", "c2", str(ctx)).stdout
    assert out.count("Using cache") == 3, out
    assert s.tree("c2")["/stamp"] == s.tree("c1")["/stamp"]
    # removing what the steps are under leaves the whole chain dangling: rmi removes it with the
    # image, step by step, as podman's does (image prune would, otherwise)
    bb = s("images", "-q", "--no-trunc", "localhost/busybox:v1").stdout.split()
    steps = set(s("images", "-q", "-a", "--no-trunc").stdout.split()) - set(bb)
    assert len(steps) >= 3
    out = s("rmi", "c1", "c2").stdout.splitlines()
    assert {"sha256:" + ln.split()[1] for ln in out if ln.startswith("Deleted: ")} == steps
    assert s("image", "prune").stdout == ""
    assert s("images", "-q", "-a", "--no-trunc").stdout.split() == bb
    s("system", "check")


# -- issue 13.4: a pull by digest keeps its name -------------------------------------------

def _repo_tag_rows(out: str) -> list[list[str]]:
    return [line.split()[:2] for line in out.splitlines()[1:]]


def test_pull_by_digest_is_named_repo_at_digest_as_podman_does(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/bydigest")
    digest = _remote_digest(ref)
    repo = ref.rsplit(":", 1)[0]
    dref = f"{repo}@{digest}"
    iid = s("pull", "-q", "--tls-verify=false", dref).stdout.strip()
    podman("pull", "-q", "--tls-verify=false", dref)
    assert _repo_tag_rows(s("images").stdout) == _repo_tag_rows(podman("images").stdout) == [[repo, "<none>"]]
    (ours,) = json.loads(s("images", "--format", "json").stdout)
    (theirs,) = json.loads(podman("images", "--format", "json").stdout)
    for key in ("Id", "RepoTags", "RepoDigests", "Names", "Digest"):
        assert ours[key] == theirs[key], key
    (ins,) = json.loads(s("image", "inspect", dref).stdout)
    assert ins["Id"] == iid and ins["RepoTags"] == [] and ins["RepoDigests"] == [dref]
    assert s("image", "exists", dref).returncode == 0
    # not dangling
    assert s("image", "prune").stdout == ""
    assert s("images", "-q", "--no-trunc").stdout.strip() == "sha256:" + iid
    # save, push and tag take the digest reference
    s("save", "-o", str(tmp_path / "d.tar"), dref)
    dest = f"{registry.host}/imgs/bydigest-pushed:1"
    s("push", "--tls-verify=false", dref, dest)
    assert _remote_digest(dest) == digest
    s("push", "--tls-verify=false", dref)  # to where its name points: the same digest
    s("tag", dref, "again")
    assert s("images", "-q", "--no-trunc", "localhost/again").stdout.strip() == "sha256:" + iid
    # rmi by the digest reference drops that name; the image stays under its other one
    out = s("rmi", dref).stdout
    assert out.strip() == f"Untagged: {dref}"
    assert s("image", "exists", dref, check=False).returncode == 1
    assert _repo_tag_rows(s("images").stdout) == [["localhost/again", "latest"]]
    s("rmi", "again")
    # pulled by tag and by digest: listed by its tag only, as podman lists it
    s("pull", "-q", "--tls-verify=false", ref)
    s("pull", "-q", "--tls-verify=false", dref)
    podman("pull", "-q", "--tls-verify=false", ref)
    assert _repo_tag_rows(s("images").stdout) == _repo_tag_rows(podman("images").stdout) == [[repo, "v1"]]
    s("rmi", "-f", ref)
    # named only by digest, rmi by digest removes it
    s("pull", "-q", "--tls-verify=false", dref)
    assert s("rmi", dref).stdout.splitlines() == [f"Untagged: {dref}", f"Deleted: {iid}"]
    assert s("images", "-q", "-a").stdout == ""
    s("system", "check")


def test_a_digest_name_must_be_the_manifests_digest(s, tmp_path):
    layout = str(tmp_path / "lay")
    images.make_layout(layout, "v1")
    wrong = "sha256:" + "ab" * 32
    p = s("copy", f"oci:{layout}:v1", f"local:localhost/lying@{wrong}", check=False)
    assert p.returncode != 0 and f"its manifest's digest is" in p.stderr and "Traceback" not in p.stderr
    assert s("images", "-q", "-a").stdout == ""


# -- issue 14.15: a killed build leaves nothing behind -------------------------------------

def _store_mounts(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root)]


def _containers(root: str) -> dict:
    try:
        with open(os.path.join(root, "containers.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def test_a_killed_build_leaves_no_container_mount_or_layer(busybox_store, tmp_path):
    import signal
    import time

    s = busybox_store
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM localhost/busybox:v1 AS base\nRUN echo one > /one\n"
        "FROM localhost/busybox:v1\nCOPY --from=base /one /one\nRUN echo two > /two\n"
        "COPY f.txt /f.txt\nRUN cat /one /two /f.txt > /all\n")
    (ctx / "f.txt").write_text("f")
    user = s("builder", "from", "localhost/busybox:v1").stdout.strip()  # the user's: never reaped
    s("builder", "mount", user)
    for nth in (1, 2, 3, 4, 5):
        p = subprocess.Popen(s.args("build", "--no-cache", "-t", "killed", str(ctx)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: set = set()
        deadline = time.monotonic() + 60
        while len(seen) < nth and p.poll() is None and time.monotonic() < deadline:
            seen.update(cid for cid, c in _containers(s.root).items() if c["names"] != [user])
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert seen, "the build made no working container before it ended"
        s("system", "check")  # passes without --repair: what the dead build owned is gone
        assert os.listdir(os.path.join(s.root, "staging")) == []
        assert [c["names"] for c in _containers(s.root).values()] == [[user]]
        assert all(m.startswith(os.path.join(s.root, "overlay")) for m in _store_mounts(s.root)), _store_mounts(s.root)
        assert len(_store_mounts(s.root)) == 1  # the user's working container, still mounted
        from pallet.storage.options import derived_runroot

        with open(os.path.join(derived_runroot(s.root), "mounts.json")) as f:
            assert [k for k in json.load(f) if k.startswith("image-")] == []
    # builder rm --all removes the user's; a build after all that works
    s("builder", "rm", "--all")
    assert _containers(s.root) == {} and _store_mounts(s.root) == []
    s("build", "-t", "whole", str(ctx))
    assert s.tree("whole")["/all"]
    s("system", "check")
    # a killed build's network namespace goes too, even when this build's RUN steps all came
    # from the cache (it attached no network): reaped as a build starts
    netns_dir = os.path.join(derived_runroot(s.root), "netns")
    assert not os.path.isdir(netns_dir) or os.listdir(netns_dir) == []


def test_a_schema1_image_whose_layers_are_stored_as_other_blobs_keeps_its_own(schema1_dir, tmp_path):
    """Schema 1 layers are applied at commit: a layer already stored (here: from an uncompressed
    copy of the same image) gets the schema 1 blob kept too, so the image copies out again."""
    src, _ = schema1_dir
    first = StoreCLI(str(tmp_path / "first"), "vfs")
    first("copy", "-q", f"dir:{src}", "local:s1:latest")
    plain = str(tmp_path / "plain")
    first("copy", "-q", "--dest-decompress", "local:s1:latest", f"oci:{plain}:x")
    s = StoreCLI(str(tmp_path / "second"), "vfs")
    s("copy", "-q", f"oci:{plain}:x", "local:plain")
    s("copy", "-q", f"dir:{src}", "local:s1:latest")
    s("system", "check")
    s("copy", "-q", "local:s1:latest", f"dir:{tmp_path}/out")
    s("save", "-o", str(tmp_path / "s1.tar"), "s1")


# -- issue 16: podman's info, system prune/reset, history, push --format docker, save --uncompressed

def _ids(text: str) -> list[str]:
    return [x for x in text.split() if len(x) == 64]


def test_info_has_podmans_keys_and_template_fields(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/info")
    s("pull", "-q", "--tls-verify=false", ref)
    podman("pull", "-q", "--tls-verify=false", ref)
    fields = ("{{.Host.Arch}} {{.Host.OS}} {{.Host.Kernel}} {{.Host.CgroupsVersion}} {{.Host.CPUs}} "
              "{{.Store.ImageStore.Number}} {{.Store.ContainerStore.Number}} {{.Version.OsArch}} "
              "{{json .Store.ImageStore}} {{.Registries}}")
    mine, theirs = s("info", "--format", fields), podman("info", "--format", fields)
    assert mine.stdout == theirs.stdout, (mine.stdout, theirs.stdout, theirs.stderr)
    assert s("info", "-f", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}").stdout == f"{s.root} overlay\n"
    mine, theirs = json.loads(s("info", "-f", "json").stdout), json.loads(podman("info", "-f", "json").stdout)
    for key in ("host", "store"):
        assert set(mine[key]) <= set(theirs[key]), (key, set(mine[key]) - set(theirs[key]))
    assert set(mine["host"]["ociRuntime"]) == {"name", "package", "path", "version"}
    assert s("system", "info", "-f", "{{.Store.ImageStore.Number}}").stdout == "1\n"
    # the CPUs the process may use, as Go's runtime.NumCPU (taskset limits both alike)
    one = ["taskset", "-c", "0"]
    assert subprocess.run(one + s.args("info", "-f", "{{.Host.CPUs}}"), capture_output=True, text=True).stdout == "1\n"
    assert "  graphDriverName: overlay" in s("info").stdout.splitlines()  # podman's YAML by default
    bad = s("info", "-f", "{{.Host.Nope}}", check=False)
    assert bad.returncode == 125 and bad.stdout == ""
    assert bad.stderr.strip().endswith("can't evaluate field Nope in type *define.HostInfo")
    # buildah's info is a map of the same keys, with the host's variant and its build runtime
    arch, variant, runtime = s("info", "-f", "{{.host.arch}}|{{.host.variant}}|{{.host.OCIRuntime}}").stdout \
        .strip().split("|")
    assert arch == s("info", "-f", "{{.Host.Arch}}").stdout.strip() and variant in ("", "v7", "v8")
    assert os.access(runtime, os.X_OK)


def test_system_prune_and_reset_ask_as_podman_does_and_refuse_without_a_terminal(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/sysprune")
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    iid = s("images", "-q", "--no-trunc").stdout.split()
    for verb in ("prune", "reset"):
        mine, theirs = s("system", verb, check=False, input=""), podman("system", verb, check=False)
        assert mine.returncode != 0 and theirs.returncode != 0
        # the same warning, to the question, as scripts see it
        assert mine.stdout.split("[y/N]")[0].replace(s.root, "R").splitlines()[:8] == \
            theirs.stdout.split("[y/N]")[0].replace(podman.root, "R").splitlines()[:8]
        assert "not a terminal" in mine.stderr and "--force" in mine.stderr
        assert s("images", "-q", "--no-trunc").stdout.split() == iid  # nothing was removed
    # -f: nothing dangles, nothing goes; -a -f: the unused image goes, in podman's words
    assert s("system", "prune", "-f").stdout == podman("system", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    mine, theirs = s("system", "prune", "-a", "-f").stdout, podman("system", "prune", "-a", "-f").stdout
    assert mine.splitlines()[0] == theirs.splitlines()[0] == "Deleted Images"
    assert ["sha256:" + i for i in _ids(mine)] == ["sha256:" + i for i in _ids(theirs)] == iid
    assert mine.splitlines()[-1].startswith("Total reclaimed space: ") and not mine.endswith("0B\n")
    assert s("images", "-q").stdout == ""
    s("pull", "-q", "--tls-verify=false", ref)
    s("builder", "from", "--name", "w", ref)
    s("system", "reset", "-f")
    assert s("images", "-q").stdout == "" and s("builder", "containers", "-q").stdout == ""
    s("system", "check")


def test_history_at_the_top_level_is_image_history_and_podmans(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/hist", layers=[{"a": "1"}, {"b": "2"}])
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    tmpl = "{{.ID}}|{{.CreatedBy}}|{{.Comment}}"
    assert s("history", "--format", tmpl, ref).stdout == s("image", "history", "--format", tmpl, ref).stdout
    assert s("history", "--format", tmpl, ref).stdout == podman("history", "--format", tmpl, ref).stdout
    assert s("history", "-q", "--no-trunc", ref).stdout == podman("history", "-q", "--no-trunc", ref).stdout
    gone = s("history", "nosuch", check=False)
    assert gone.returncode == 125 and gone.stderr.count("\n") == 1


def _media_type(ref: str) -> str:
    raw = subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(raw)["mediaType"]


def test_push_format_docker_converts_to_v2s2_as_podmans(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/pushfmt")
    assert _media_type(ref) == "application/vnd.oci.image.manifest.v1+json"
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    mine, theirs = f"{registry.host}/imgs/pushfmt-pallet:1", f"{registry.host}/imgs/pushfmt-podman:1"
    s("push", "--tls-verify=false", "--format", "docker", ref, mine)
    podman("push", "--tls-verify=false", "--format", "docker", ref, theirs)
    assert _media_type(mine) == _media_type(theirs) == "application/vnd.docker.distribution.manifest.v2+json"
    s("push", "-q", "--tls-verify=false", "-f", "oci", ref, mine)
    assert _media_type(mine) == "application/vnd.oci.image.manifest.v1+json"


def test_save_uncompressed_is_accepted_as_podmans(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/saveplain")
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    types = []
    for tool, out in ((s, tmp_path / "mine"), (podman, tmp_path / "theirs")):
        tool("save", "--format", "oci-dir", "--uncompressed", "-o", str(out), ref)
        with open(out / "index.json") as f:
            (desc,) = json.load(f)["manifests"]
        with open(out / "blobs" / "sha256" / desc["digest"].split(":")[1]) as f:
            types.append([la["mediaType"] for la in json.load(f)["layers"]])
    # podman's --uncompressed accepts uncompressed layers: each is saved as stored (here: as pulled)
    assert types[0] == types[1] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * len(types[0])
    both = s("save", "--compress", "--uncompressed", "--format", "oci-dir", "-o", str(tmp_path / "x"), ref, check=False)
    assert both.returncode == 125 and "mutually exclusive" in both.stderr


def _layers_part(tree: str) -> list[str]:
    """image tree's layer lines with the layer IDs and sizes left out (podman's storage names a
    layer above the base by another chain formula; its image Size counts the config too)."""
    import re

    lines = tree.splitlines()
    return [re.sub(r"ID: [0-9a-f]{12} Size: \S+", "ID", x) for x in lines[lines.index("Image Layers"):]]


def test_image_tree_and_diff_print_what_podman_prints(s, podman, registry, tmp_path):
    base = _image(registry, tmp_path, "imgs/treebase", layers=[{"a": "1", "d/x": "x", "gone": "g"}])
    top = _image(registry, tmp_path, "imgs/treetop", layers=[{"a": "1", "d/x": "x", "gone": "g"},
                                                              {"a": "three", "b": "2",
                                                               "gone": {"type": "whiteout"}}])
    # an opaque directory marker after an entry of the same layer: it hides only the layers below
    opq = _image(registry, tmp_path, "imgs/treeopq", layers=[{"a": "1", "d/x": "x", "gone": "g"},
                                                             {"d/new": "n", "d": {"type": "opaque"}}])
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", base, top, opq)
    assert s("image", "diff", opq).stdout == "C /d\nA /d/new\nD /d/x\n"  # /d/new kept, /d/x hidden
    for args in (["tree", top], ["tree", base], ["tree", "--whatrequires", base]):
        mine, theirs = s("image", *args).stdout, podman("image", *args).stdout
        # the layers built on one: made in the same second here, so their order is not compared
        mine_l, theirs_l = _layers_part(mine), _layers_part(theirs)
        assert mine_l[:2] == theirs_l[:2] and [x[:4] for x in mine_l] == [x[:4] for x in theirs_l], (mine, theirs)
        assert sorted(x[4:] for x in mine_l[2:]) == sorted(x[4:] for x in theirs_l[2:]), (args, mine, theirs)
        assert mine.splitlines()[:2] == theirs.splitlines()[:2]  # Image ID, Tags
    for args in ([top], [base], [top, base], [base, top], [opq], [opq, top]):
        mine, theirs = s("image", "diff", *args).stdout, podman("image", "diff", *args).stdout
        # podman lists in its directory walk's order; pallet sorts by path
        assert mine.splitlines() == sorted(mine.splitlines(), key=lambda x: x[2:]) and sorted(mine.splitlines()) == \
            sorted(theirs.splitlines()), (args, mine, theirs)
        mine, theirs = (json.loads(t("image", "diff", "--format", "json", *args).stdout) for t in (s, podman))
        assert {k: sorted(v) for k, v in mine.items()} == {k: sorted(v) for k, v in theirs.items()}
    assert s("image", "diff", top).stdout == "C /a\nA /b\nD /gone\n"
    gone = s("image", "tree", "nosuch", check=False)
    assert gone.returncode == 125 and gone.stderr == podman("image", "tree", "nosuch", check=False).stderr


def _inspect(tool, ref: str) -> dict:
    (doc,) = json.loads(tool("image", "inspect", ref).stdout)
    return doc


def test_import_makes_the_image_podman_makes(s, podman, tmp_path):
    import gzip
    import tarfile

    src = tmp_path / "root"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "motd").write_text("hello\n")
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("etc", "etc/motd"):
            info = tf.gettarinfo(str(src / name), name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 1_700_000_000, 0, 0, "", ""
            with open(src / name, "rb") if info.isfile() else open(os.devnull, "rb") as f:
                tf.addfile(info, f if info.isfile() else None)
    # podman's --change: ENV and LABEL take one KEY=VALUE, the value the rest of the line
    changes = ["--change", "ENV A=1 B=two", "-c", 'ENV Q="q r"', "--change", 'CMD ["/bin/sh", "-c", "cat /etc/motd"]',
               "-c", "WORKDIR /srv", "-c", "WORKDIR sub", "-c", "EXPOSE 8080/tcp", "-c", "LABEL k=v x=y",
               "-c", "USER 1000:1000", "-c", "VOLUME /a /b", "-c", 'ENTRYPOINT ["/e"]',
               "-m", "from a tarball"]
    mine = s("import", *changes, str(tarball), "imported:1").stdout
    theirs = podman("import", *changes, str(tarball), "imported:1").stdout
    assert mine.startswith("sha256:") and len(mine.strip()) == len(theirs.strip()) == 71
    a, b = _inspect(s, "imported:1"), _inspect(podman, "imported:1")
    assert a["RepoTags"] == b["RepoTags"] == ["localhost/imported:1"]
    for key in ("Config", "Architecture", "Os", "RootFS", "Comment"):
        assert a.get(key) == b.get(key), key
    strip = lambda hist: [{k: v for k, v in h.items() if k != "created"} for h in hist]  # noqa: E731
    assert strip(a["History"]) == strip(b["History"])
    assert a["History"][0]["created_by"].startswith("/bin/sh -c #(nop) ADD file:")
    # stdin, compressed: the same layer
    gz = gzip.compress(tarball.read_bytes())
    iid = subprocess.run(s.args("import", "-"), input=gz, capture_output=True, check=True).stdout.decode().strip()
    assert _inspect(s, iid)["RootFS"] == a["RootFS"]
    # a bad change or a bad tarball: refused, one line naming it, nothing stored
    before = s("images", "-q", "-a", "--no-trunc").stdout
    bad = s("import", "-c", "RUN rm -rf /", str(tarball), check=False)
    assert bad.returncode == 125 and "--change 'RUN rm -rf /'" in bad.stderr and bad.stderr.count("\n") == 1
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all\n" * 3)
    bad = s("import", str(junk), check=False)
    assert bad.returncode == 125 and f"import {junk}:" in bad.stderr and bad.stderr.count("\n") == 1
    assert s("images", "-q", "-a", "--no-trunc").stdout == before
    s("system", "check")


def test_search_prints_what_podman_prints(s, podman, registry, tmp_path):
    for repo in ("srch/alpha", "srch/beta", "srchother/alphabet"):
        _image(registry, tmp_path, repo)
    host = registry.host
    for args in ([f"{host}/srch/alpha"], [f"{host}/alpha"], [f"{host}/srch"], ["--limit", "1", f"{host}/alpha"],
                 ["--no-trunc", f"{host}/alphabet"], ["--filter", "stars=1", f"{host}/alpha"],
                 ["--filter", "is-official=false", f"{host}/beta"], [f"{host}/nosuchthing"],
                 ["--format", "{{.Index}}|{{.Name}}|{{.Description}}|{{.Stars}}|{{.Official}}|{{.Automated}}|{{.Tag}}",
                  f"{host}/srch"], ["--format", "table {{.Name}} {{.Stars}}", f"{host}/beta"],
                 ["--list-tags", f"{host}/srch/alpha"], ["--list-tags", "--format", "{{.Name}}:{{.Tag}}",
                                                          f"{host}/srch/beta"]):
        mine, theirs = s("search", "--tls-verify=false", *args), podman("search", "--tls-verify=false", *args)
        assert mine.stdout == theirs.stdout, (args, mine.stdout, theirs.stdout)
    for args in (["--format", "json", f"{host}/alpha"], ["--list-tags", "--format", "json", f"{host}/srch/alpha"]):
        mine, theirs = s("search", "--tls-verify=false", *args), podman("search", "--tls-verify=false", *args)
        assert json.loads(mine.stdout) == json.loads(theirs.stdout), args
    names = s("search", "--tls-verify=false", "--format", "{{.Name}}", f"{host}/alpha").stdout.split()
    assert sorted(names) == [f"{host}/srch/alpha", f"{host}/srchother/alphabet"]
    for bad in (["--filter", "bogus=1"], ["--filter", "stars=many"], ["--format", "{{.Nope}}"]):
        p = s("search", "--tls-verify=false", *bad, f"{host}/alpha", check=False)
        assert p.returncode == 125 and p.stdout == "" and p.stderr.count("\n") == 1, (bad, p.stderr)
    p = s("search", "--tls-verify=false", "--list-tags", "alpha", check=False)
    assert p.returncode == 125 and "fully-qualified" in p.stderr


def test_unknown_images_are_worded_as_podman_words_them(s, podman, registry, tmp_path):
    ref = _image(registry, tmp_path, "imgs/wording")
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    for args in (["rmi", "nosuch"], ["image", "inspect", "nosuch"], ["image", "inspect", "--format", "{{.Id}}", ref,
                                                                    "nosuch"],
                 ["history", "nosuch"], ["tag", "nosuch", "x"], ["image", "tree", "nosuch"],
                 ["image", "diff", "nosuch"],
                 ["image", "diff", ref, "nosuch"], ["untag", "nosuch"], ["image", "exists", "nosuch"]):
        mine, theirs = s(*args, check=False), podman(*args, check=False)
        # podman's own log lines (time="..." level=warning ...) are not part of the wording
        theirs_err = "".join(x + "\n" for x in theirs.stderr.splitlines() if not x.startswith("time="))
        assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs_err), \
            (args, mine.stderr, theirs.stderr)
    # rmi's lines, as scripts grep them
    s("tag", ref, "second:1")
    podman("tag", ref, "second:1")
    assert s("rmi", "second:1").stdout == podman("rmi", "second:1").stdout == "Untagged: localhost/second:1\n"
    mine, theirs = s("rmi", ref).stdout, podman("rmi", ref).stdout
    assert mine == theirs and mine.splitlines()[-1].startswith("Deleted: ")


def test_an_images_parent_is_the_nearest_whatever_order_the_store_lists(busybox_store, tmp_path):
    """An ENV step makes no layer: its image's layers are the previous step's, and the step
    before that (one layer fewer) passes libimage's parent test too. The parent is the nearest,
    in any order of the store's records (rmi's chain of dangling parents depends on it)."""
    import pallet.api as api
    from pallet.images import lineage

    s = busybox_store
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN echo a > /a\nRUN echo b > /b\nENV E=1\n")
    s("build", "--network", "none", "-t", "top", str(ctx))
    with api.open_store(s.root, driver=s.driver) as store:
        st = store._s()
        top = st.image("top")
        images = st.images()
        want = lineage.parent(st, top, images)
        assert want is not None and want["layers"] == top["layers"]  # the RUN b step's image
        assert lineage.parent(st, top, list(reversed(images)))["id"] == want["id"]
        chain = lineage.ancestors(st, top)
        assert chain[0] == want["id"] and len(chain) == 3  # RUN b, RUN a, busybox
