"""The local store against the real kernel, a real registry and real peers (skopeo, umoci).

Every test has its own store (--root in a temp dir): nothing touches /var/lib/pallet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

import images
from conftest import need, run_pallet, unmount_under, wait_for
from test_layer_apply import assert_same_tree, snapshot

DRIVERS = ["overlay", "vfs"]


class StoreCLI:
    """``pallet --root R --storage-driver D ...`` for one test's store."""

    def __init__(self, root: str, driver: str):
        self.root = root
        self.driver = driver

    def __call__(self, *args, check=True, **kw):
        return run_pallet("--root", self.root, "--storage-driver", self.driver, *args, check=check, **kw)

    def args(self, *args) -> list[str]:
        return [os.path.join(os.path.dirname(sys.executable), "pallet"), "--root", self.root,
                "--storage-driver", self.driver, *args]

    def cleanup(self):
        # unmount whatever a failed test left, then the store goes with tmp_path
        unmount_under(self.root)


@pytest.fixture(params=DRIVERS)
def store(request, tmp_path):
    s = StoreCLI(str(tmp_path / "store"), request.param)
    yield s
    s.cleanup()


@pytest.fixture
def overlay_store(tmp_path):
    s = StoreCLI(str(tmp_path / "store"), "overlay")
    yield s
    s.cleanup()


def push_layout(registry, layout: str, tag: str, repo: str) -> str:
    """Push an OCI layout's image to the registry with skopeo; returns the docker reference."""
    ref = f"{registry.host}/{repo}:{tag}"
    subprocess.run([need("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                    f"docker://{ref}"], check=True, capture_output=True)
    return ref


@pytest.fixture
def standard_image(registry, tmp_path, request):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    repo = "store/" + request.node.name.lower().replace("[", "-").replace("]", "").replace("_", "-")
    return layout, push_layout(registry, layout, "v1", repo)


def mount_options(path: str) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return set(fields[5].split(","))
    return set()


# -- pull, mount, compare --------------------------------------------------------------------

def test_pull_and_mount_match_umoci(store, standard_image, tmp_path):
    layout, ref = standard_image
    image_id = store("pull", "--quiet", "--tls-verify=false", ref).stdout.strip()
    assert len(image_id) == 64
    path = store("image", "mount", ref).stdout.strip()
    try:
        opts = mount_options(path)
        assert {"ro", "nodev", "nosuid"} <= opts, opts
        bundle = str(tmp_path / "bundle")
        subprocess.run([need("umoci"), "unpack", "--image", f"{layout}:v1", bundle], check=True, capture_output=True)
        assert_same_tree(snapshot(path, dir_mtimes=False), snapshot(os.path.join(bundle, "rootfs"), dir_mtimes=False))
        # the whiteout and the opaque directory did their job
        assert not os.path.exists(os.path.join(path, "etc/hostname"))
        assert sorted(os.listdir(os.path.join(path, "var/cache"))) == ["c"]
        with pytest.raises(OSError):
            open(os.path.join(path, "new-file"), "w")
    finally:
        store("image", "umount", ref)
    assert not mount_options(path)
    store("system", "check")


def test_rmi_refuses_a_mounted_image_and_says_where(store, standard_image):
    _, ref = standard_image
    store("pull", "-q", "--tls-verify=false", ref)
    path = store("image", "mount", ref).stdout.strip()
    p = store("rmi", ref, check=False)
    assert p.returncode == 2
    assert "mounted" in p.stderr and path in p.stderr and p.stderr.count("\n") == 1
    assert store("images", "-q").stdout.strip()  # still there
    store("image", "umount", ref)
    out = store("rmi", ref).stdout
    assert "Deleted:" in out
    assert store("images", "-q").stdout.strip() == ""
    # nothing left behind: no layers, no blobs, no mount points
    root = store.root
    assert json.load(open(os.path.join(root, "layers.json"))) == {}
    assert os.listdir(os.path.join(root, "blobs", "sha256")) == []
    assert os.listdir(os.path.join(root, "mounts")) == []


def test_rmi_force_unmounts_first(overlay_store, standard_image):
    _, ref = standard_image
    overlay_store("pull", "-q", "--tls-verify=false", ref)
    path = overlay_store("image", "mount", ref).stdout.strip()
    overlay_store("rmi", "--force", ref)
    assert not mount_options(path)
    overlay_store("system", "check")


def test_mounts_are_counted_across_processes(overlay_store, standard_image):
    _, ref = standard_image
    overlay_store("pull", "-q", "--tls-verify=false", ref)
    p1 = overlay_store("image", "mount", ref).stdout.strip()
    p2 = overlay_store("image", "mount", ref).stdout.strip()
    assert p1 == p2
    listing = overlay_store("image", "mount").stdout
    assert p1 in listing and ref in listing
    overlay_store("image", "umount", ref)
    assert mount_options(p1), "one user still holds it"
    overlay_store("image", "umount", ref)
    assert not mount_options(p1)
    assert overlay_store("image", "mount").stdout == ""


def test_records_are_compact_and_indented_ones_still_open(overlay_store, standard_image):
    """The store's records go through the C encoder (compact, as containers/storage writes
    them); a store written indented by an older pallet opens and mounts unchanged."""
    _, ref = standard_image
    s = overlay_store
    s("pull", "-q", "--tls-verify=false", ref)
    p = s("image", "mount", ref).stdout.strip()
    s("image", "umount", ref)
    from pallet.storage.options import derived_runroot

    files = [os.path.join(s.root, n) for n in ("layers.json", "images.json")]
    files.append(os.path.join(derived_runroot(s.root), "mounts.json"))
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        assert b"\n" not in raw and b": " not in raw, (path, raw[:200])
        with open(path, "w") as f:  # as pallet wrote it before
            json.dump(json.loads(raw), f, indent=1, sort_keys=True)
    assert ref.rsplit(":", 1)[0] in s("images").stdout
    assert s("image", "mount", ref).stdout.strip() == p and mount_options(p)
    s("image", "umount", ref)
    s("tag", ref, "again:v1")  # a change rewrites the table compactly
    with open(files[1], "rb") as f:
        assert b"\n" not in f.read()


def test_pull_again_downloads_nothing(overlay_store, standard_image):
    _, ref = standard_image
    overlay_store("pull", "--tls-verify=false", ref)
    again = overlay_store("pull", "--tls-verify=false", ref).stderr
    blobs = [line for line in again.splitlines() if line.startswith("Copying blob")]
    assert len(blobs) == 3 and all(line.endswith("skipped: already exists") for line in blobs), again


# -- names, tags, lookups, exit codes -------------------------------------------------------

def test_names_follow_podman(overlay_store, standard_image):
    s = overlay_store
    _, ref = standard_image
    iid = s("pull", "-q", "--tls-verify=false", ref).stdout.strip()
    s("tag", ref, "mine", "other:2")
    js = json.loads(s("images", "--format", "json").stdout)
    assert sorted(js[0]["Names"]) == sorted([ref, "localhost/mine:latest", "localhost/other:2"])
    # found by short name, qualified name, ID, ID prefix, and name@digest
    digest = js[0]["Digest"]
    for text in ("mine", "localhost/mine", "other:2", iid, iid[:12], "sha256:" + iid, f"{ref.rsplit(':', 1)[0]}@{digest}"):
        assert json.loads(s("image", "inspect", text).stdout)[0]["Id"] == iid, text
    # removing by ID with several names needs --force; by name only untags
    p = s("rmi", iid[:12], check=False)
    assert p.returncode == 2 and "names" in p.stderr
    assert s("rmi", "mine").stdout.strip() == "Untagged: localhost/mine:latest"
    s("untag", iid, "other:2")
    assert json.loads(s("images", "--format", "json").stdout)[0]["Names"] == [ref]
    # exit codes: unknown image 1 for rmi, 125 for other verbs; usage errors 125
    assert s("rmi", "nothere", check=False).returncode == 1
    p = s("image", "inspect", "nothere", check=False)
    # podman's wording and output: what was found (nothing), then the error
    assert p.returncode == 125 and p.stderr.strip() == "Error: inspecting object: nothere: image not known"
    assert p.stdout == "[]\n"
    assert s("images", "--bogus", check=False).returncode == 125
    assert s("image", "exists", "nothere", check=False).returncode == 1


def test_images_filters_and_formats(overlay_store, registry, tmp_path):
    s = overlay_store
    for i, tag in enumerate(("a", "b")):
        layout = str(tmp_path / f"l{i}")
        images.make_layout(layout, tag, layers=[{f"f{i}": f"{i}"}], config_extra={"created": f"202{i}-01-01T00:00:00Z"})
        ref = push_layout(registry, layout, tag, f"filters/img{i}")
        s("pull", "-q", "--tls-verify=false", ref)
    out = s("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=*img1*").stdout.split()
    assert out == [f"{registry.host}/filters/img1:b"]
    table = s("images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert len(table) == 3
    assert len(s("images", "-q").stdout.split()) == 2


def test_push_keeps_the_digest(overlay_store, standard_image, registry):
    _, ref = standard_image
    overlay_store("pull", "-q", "--tls-verify=false", ref)
    dest = f"{registry.host}/store/pushed:1"
    overlay_store("push", "--tls-verify=false", ref, dest)
    src_digest = subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                                 f"docker://{ref}"], capture_output=True, text=True, check=True).stdout
    dst_digest = subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                                 f"docker://{dest}"], capture_output=True, text=True, check=True).stdout
    assert src_digest == dst_digest


def test_copy_uses_the_store_as_source_and_destination(overlay_store, standard_image, tmp_path):
    layout, _ = standard_image
    s = overlay_store
    s("copy", f"oci:{layout}:v1", "local:copied:1")
    assert "localhost/copied:1" in s("images").stdout.replace("  ", " ").replace(" 1 ", ":1 ").replace(" ", "") or \
        json.loads(s("images", "--format", "json").stdout)[0]["Names"] == ["localhost/copied:1"]
    s("copy", "local:copied:1", f"oci:{tmp_path}/out:x")
    got = subprocess.run([need("skopeo"), "inspect", "--format", "{{.Digest}}", f"oci:{tmp_path}/out:x"],
                         capture_output=True, text=True, check=True).stdout
    want = subprocess.run([need("skopeo"), "inspect", "--format", "{{.Digest}}", f"oci:{layout}:v1"],
                          capture_output=True, text=True, check=True).stdout
    assert got == want


def test_save_and_load(overlay_store, standard_image, tmp_path):
    s = overlay_store
    _, ref = standard_image
    iid = s("pull", "-q", "--tls-verify=false", ref).stdout.strip()
    s("tag", ref, "second")
    archive = str(tmp_path / "img.tar")
    s("save", "-o", archive, ref)
    info = json.loads(subprocess.run([need("skopeo"), "inspect", f"docker-archive:{archive}"],
                                     capture_output=True, text=True, check=True).stdout)
    assert len(info["Layers"]) == 3
    oci = str(tmp_path / "both.tar")
    s("save", "--format", "oci-archive", "-o", oci, ref, "second")
    two = str(tmp_path / "two.tar")
    s("save", "-o", two, ref, "second")
    listed = json.loads(subprocess.run(["tar", "-xOf", two, "manifest.json"], capture_output=True, check=True).stdout)
    assert [i["RepoTags"] for i in listed] == [[ref], ["localhost/second:latest"]]
    for i in (0, 1):
        subprocess.run([need("skopeo"), "inspect", f"docker-archive:{two}:@{i}"], check=True, capture_output=True)
    other = StoreCLI(str(tmp_path / "store2"), "overlay")
    try:
        out = other("load", "-i", archive).stdout
        assert f"Loaded image: {ref}" in out
        assert other("images", "-q", "--no-trunc").stdout.strip() == "sha256:" + iid
        other("rmi", "-a")
        out = other("load", "-i", two).stdout
        assert ref in out and "localhost/second:latest" in out
        other("rmi", "-a")
        out = other("load", "-i", oci).stdout
        assert "localhost/second:latest" in out and ref in out
        other("system", "check")
    finally:
        other.cleanup()


def test_history_inspect_df(overlay_store, standard_image):
    s = overlay_store
    _, ref = standard_image
    s("pull", "-q", "--tls-verify=false", ref)
    hist = s("image", "history", ref).stdout.splitlines()
    assert hist[0].split()[:2] == ["ID", "CREATED"] and len(hist) == 4 and "layer 2" in hist[1]
    doc = json.loads(s("image", "inspect", ref).stdout)[0]
    assert doc["RepoTags"] == [ref] and doc["Architecture"] == "amd64" and len(doc["RootFS"]["Layers"]) == 3
    assert doc["GraphDriver"]["Name"] == "overlay"
    df = s("system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "0"]


# -- damage, crashes, concurrency, bad layers --------------------------------------------------

def test_check_finds_and_repairs_damage(overlay_store, standard_image):
    s = overlay_store
    _, ref = standard_image
    s("pull", "-q", "--tls-verify=false", ref)
    layers = json.load(open(os.path.join(s.root, "layers.json")))
    victim = sorted(layers)[0]
    subprocess.run(["rm", "-rf", os.path.join(s.root, "overlay", victim)], check=True)
    p = s("system", "check", check=False)
    assert p.returncode == 1 and victim[:12] in p.stdout
    s("system", "check", "--repair")
    s("system", "check")
    assert s("images", "-q").stdout.strip() == ""  # the damaged image is gone, not half there
    s("pull", "-q", "--tls-verify=false", ref)
    s("system", "check")


@pytest.fixture
def big_image(registry, tmp_path):
    """A few MB in 4 layers, so a pull takes long enough to be killed in the middle."""
    layout = str(tmp_path / "big")
    layers = []
    for i in range(4):
        layers.append({f"d{i}": {"type": "dir"}, **{f"d{i}/f{j}": os.urandom(1 << 20) for j in range(6)}})
    images.make_layout(layout, "v1", layers=layers)
    return push_layout(registry, layout, "v1", "store/big")


def _layer_dirs(root: str) -> int:
    home = os.path.join(root, "overlay")
    return len([n for n in os.listdir(home) if n not in ("l", "empty")]) if os.path.isdir(home) else 0


def _staging(root: str) -> int:
    home = os.path.join(root, "staging")
    return len([n for n in os.listdir(home) if not n.endswith(".lock")]) if os.path.isdir(home) else 0


def _kill_when(p, what: str, reached) -> None:
    """SIGKILL ``p`` once the store shows ``reached()`` (or when it has already exited): kill
    points named by progress, not by delays a loaded machine would stretch."""
    wait_for(lambda: p.poll() is not None or reached(), 120, what)
    p.send_signal(signal.SIGKILL)


@pytest.mark.parametrize("stage", ["start", "staging", 1, 2, 3])
def test_killed_pull_leaves_a_usable_store(overlay_store, big_image, stage):
    s = overlay_store
    p = subprocess.Popen(s.args("pull", "-q", "--tls-verify=false", big_image),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if stage == "start":
        p.send_signal(signal.SIGKILL)
    elif stage == "staging":
        _kill_when(p, "the pull to stage its first layer", lambda: _staging(s.root) > 0)
    else:
        _kill_when(p, f"the pull to install {stage} layer(s)", lambda: _layer_dirs(s.root) >= stage)
    p.wait()
    s("system", "check")  # passes without repair: no half image, no dangling record
    listed = s("images", "-q").stdout.split()
    assert len(listed) <= 1
    s("pull", "-q", "--tls-verify=false", big_image)
    s("system", "check")
    path = s("image", "mount", big_image).stdout.strip()
    assert sorted(os.listdir(path)) == ["d0", "d1", "d2", "d3"]
    s("image", "umount", big_image)


def test_killed_rmi_leaves_a_usable_store(overlay_store, big_image):
    s = overlay_store
    s("pull", "-q", "--tls-verify=false", big_image)
    for stage in ("start", "staging", "a layer gone"):
        layers = _layer_dirs(s.root)
        p = subprocess.Popen(s.args("rmi", big_image), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stage == "start":
            p.send_signal(signal.SIGKILL)
        elif stage == "staging":
            _kill_when(p, "rmi to take a staging entry", lambda: _staging(s.root) > 0)
        else:
            _kill_when(p, "rmi to remove a layer", lambda: _layer_dirs(s.root) < layers)
        p.wait()
        s("system", "check")
        if not s("images", "-q").stdout.strip():
            s("pull", "-q", "--tls-verify=false", big_image)
    s("system", "check")


def test_concurrent_pulls_mounts_and_removals(overlay_store, registry, tmp_path):
    s = overlay_store
    base = {"base": {"type": "dir"}, **{f"base/f{j}": os.urandom(256 << 10) for j in range(4)}}
    refs = []
    for i in range(4):
        layout = str(tmp_path / f"c{i}")
        images.make_layout(layout, "v1", layers=[base, {f"own{i}": os.urandom(512 << 10)}])
        refs.append(push_layout(registry, layout, "v1", f"store/conc{i}"))
    procs = []
    for round_ in range(2):
        for r in refs:
            procs.append(subprocess.Popen(s.args("pull", "-q", "--tls-verify=false", r),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        procs = []
        # mounts and removals racing with each other and with a pull
        ops = [s.args("image", "mount", refs[0]), s.args("rmi", refs[1]), s.args("pull", "-q", "--tls-verify=false", refs[1]),
               s.args("image", "mount", refs[2]), s.args("rmi", refs[3]), s.args("images")]
        for a in ops:
            procs.append(subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 or (err.startswith("Error: ") and err.count("\n") == 1), err
        procs = []
        s("system", "check")
        for r in (refs[0], refs[2]):
            s("image", "umount", "--force", r, check=False)
    s("system", "check")


def _crafted_image(tmp_path, registry, name: str, layer_tar: bytes, diff_id: str | None = None):
    import hashlib

    layout = str(tmp_path / name)
    images.one_layer_layout(layout, "v1", images.gz(layer_tar),
                            diff_id or "sha256:" + hashlib.sha256(layer_tar).hexdigest(), gzipped=True)
    return push_layout(registry, layout, "v1", f"bad/{name}")


def _tar(entries) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg))
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
                tf.addfile(ti)
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
                tf.addfile(ti)
    return buf.getvalue()


BAD_LAYERS = {
    "dotdot": [("../../../../tmp/pallet-evil", "file", b"x")],
    "absolute-symlink-escape": [("link", "sym", "/tmp"), ("link/pallet-evil", "file", b"x")],
    "relative-symlink-escape": [("link", "sym", "../../../../../../tmp"), ("link/pallet-evil", "file", b"x")],
    "hardlink-escape": [("h", "hard", "../../../../etc/passwd")],
    "whiteout-escape": [("../.wh.pallet-evil", "file", b"")],
}


@pytest.mark.parametrize("case", sorted(BAD_LAYERS))
def test_crafted_layers_are_refused_and_the_store_is_unchanged(store, registry, tmp_path, case):
    ref = _crafted_image(tmp_path, registry, case, _tar(BAD_LAYERS[case]))
    store("image", "prune")  # create the store (read-only verbs such as images do not)
    before = {f: open(os.path.join(store.root, f)).read() for f in os.listdir(store.root) if f.endswith(".json")}
    p = store("pull", "--tls-verify=false", ref, check=False)
    err = p.stderr.removeprefix(f"Trying to pull {ref}...\n")  # podman's first line
    assert p.returncode == 125 and err.startswith("Error: ") and err.count("\n") == 1, p.stderr
    after = {f: open(os.path.join(store.root, f)).read() for f in os.listdir(store.root) if f.endswith(".json")}
    assert before == after
    assert not os.path.exists("/tmp/pallet-evil")
    assert os.listdir(os.path.join(store.root, "staging")) == []
    assert os.listdir(os.path.join(store.root, "blobs", "sha256")) == []
    store("system", "check")


def test_wrong_diffid_is_a_digest_error(overlay_store, registry, tmp_path):
    ref = _crafted_image(tmp_path, registry, "wrongdiff", _tar([("f", "file", b"x")]), diff_id="sha256:" + "0" * 64)
    p = overlay_store("pull", "--tls-verify=false", ref, check=False)
    assert p.returncode == 125 and "digest" in p.stderr
    assert overlay_store("images", "-q").stdout == ""
    overlay_store("system", "check")


def test_truncated_layer_is_refused(overlay_store, registry, tmp_path):
    tar = _tar([("f", "file", os.urandom(100000))])
    ref = _crafted_image(tmp_path, registry, "truncated", tar[:50000])
    p = overlay_store("pull", "--tls-verify=false", ref, check=False)
    assert p.returncode == 125 and p.stderr.removeprefix(f"Trying to pull {ref}...\n").startswith("Error: ")
    overlay_store("system", "check")


def test_store_locations_and_config(tmp_path):
    conf = tmp_path / "storage.conf"
    root = tmp_path / "confroot"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{root}"\nrunroot = "{tmp_path}/run"\n')
    p = run_pallet("images", env={"PALLET_STORAGE_CONF": str(conf)})
    assert p.returncode == 0 and not os.path.exists(root)  # a read-only verb makes no store
    p = run_pallet("image", "prune", env={"PALLET_STORAGE_CONF": str(conf)})
    assert p.returncode == 0
    assert open(root / "driver").read().strip() == "vfs"
    assert os.path.exists(tmp_path / "run" / "storage.lock")
    conf.write_text("[storage\n")
    p = run_pallet("images", env={"PALLET_STORAGE_CONF": str(conf)}, check=False)
    assert p.returncode == 125 and "invalid TOML" in p.stderr


# -- pull variants, prune, streams ----------------------------------------------------------

def test_short_names_resolve_through_registries_conf(overlay_store, standard_image, registry, tmp_path):
    _, ref = standard_image
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    conf = tmp_path / "registries.conf"
    conf.write_text(f'unqualified-search-registries = ["{registry.host}"]\n'
                    f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    env = {"CONTAINERS_REGISTRIES_CONF": str(conf)}
    iid = overlay_store("pull", "-q", f"{repo}:v1", env=env).stdout.strip()
    names = json.loads(overlay_store("images", "--format", "json").stdout)[0]["Names"]
    assert names == [ref] and len(iid) == 64
    # an alias wins over the search list
    conf.write_text(f'unqualified-search-registries = ["example.invalid"]\n'
                    f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n'
                    f'[aliases]\n"myalias" = "{registry.host}/{repo}"\n')
    overlay_store("pull", "-q", "myalias:v1", env=env)
    # no search registries: a clear error
    conf.write_text("")
    p = overlay_store("pull", "nothing-here", check=False, env=env)
    assert p.returncode == 125 and "short-name" in p.stderr


def test_pull_all_tags_and_platform(overlay_store, registry, tmp_path):
    multi = str(tmp_path / "multi")
    images.make_multiarch_layout(multi, "ml")
    base = f"{registry.host}/store/alltags"
    for tag in ("one", "two"):
        subprocess.run([need("skopeo"), "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{multi}:ml",
                        f"docker://{base}:{tag}"], check=True)
    ids = overlay_store("pull", "-q", "--all-tags", "--tls-verify=false", base).stdout.split()
    assert len(ids) == 2 and ids[0] == ids[1]  # the same amd64 image under two tags
    names = json.loads(overlay_store("images", "--format", "json").stdout)[0]["Names"]
    assert sorted(names) == [f"{base}:one", f"{base}:two"]
    arm = overlay_store("pull", "-q", "--platform", "linux/arm/v7", "--tls-verify=false", f"{base}:one").stdout.strip()
    doc = json.loads(overlay_store("image", "inspect", arm).stdout)[0]
    assert (doc["Architecture"], doc["Variant"]) == ("arm", "v7")
    p = overlay_store("pull", "--platform", "linux/s390x", "--tls-verify=false", f"{base}:one", check=False)
    assert p.returncode == 125 and "s390x" in p.stderr


def test_prune_save_to_stdout_and_load_from_stdin(overlay_store, standard_image, tmp_path):
    s = overlay_store
    _, ref = standard_image
    iid = s("pull", "-q", "--tls-verify=false", ref).stdout.strip()
    # save to stdout, load from stdin into another store
    archive = tmp_path / "out.tar"
    with open(archive, "wb") as f:
        subprocess.run(s.args("save", ref), stdout=f, check=True)
    other = StoreCLI(str(tmp_path / "store2"), "overlay")
    try:
        with open(archive, "rb") as f:
            p = subprocess.run(other.args("load"), stdin=f, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert other("images", "-q", "--no-trunc").stdout.strip() == "sha256:" + iid
    finally:
        other.cleanup()
    # prune removes only dangling images, -a every unused one
    s("untag", ref)
    assert s("image", "prune").stdout.strip() == iid
    assert s("images", "-q").stdout == ""
    s("pull", "-q", "--tls-verify=false", ref)
    assert s("image", "prune").stdout == ""
    assert s("image", "prune", "-a").stdout.strip() == iid
    s("system", "check")


def test_a_layer_another_process_is_pulling_is_waited_for_not_downloaded_twice(overlay_store, registry, tmp_path):
    from faultproxy import FaultProxy, Rule

    layout = str(tmp_path / "slow")
    images.make_layout(layout, "v1", layers=[{"f": os.urandom(2 << 20)}])
    ref = push_layout(registry, layout, "v1", "store/slow")
    digest = json.loads(subprocess.run([need("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                                       capture_output=True, text=True, check=True).stdout)["layers"][0]["digest"]
    proxy = FaultProxy(registry.host)
    try:
        proxy.add(Rule("slow", "GET", f"/blobs/{digest}", times=5, after=1500))
        via = f"{proxy.host}/store/slow:v1"
        first = subprocess.Popen(overlay_store.args("pull", "-q", "--tls-verify=false", via),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the second starts once the first is receiving the (slow) layer
        wait_for(lambda: first.poll() is not None or any(e["status"] for e in proxy.entries(f"/blobs/{digest}", "GET")),
                 60, "the first pull to start receiving the layer")
        second = subprocess.Popen(overlay_store.args("pull", "-q", "--tls-verify=false", via),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in (first, second):
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        gets = [e for e in proxy.entries(f"/blobs/{digest}") if e.get("method", "GET") == "GET"]
    finally:
        proxy.stop()
    assert len(gets) == 1, gets
    overlay_store("system", "check")


def test_intermediate_images_are_hidden_unless_all(overlay_store, tmp_path):
    s = overlay_store
    base = {"base.txt": "base"}
    lower, upper = str(tmp_path / "lower"), str(tmp_path / "upper")
    images.make_layout(lower, "v1", layers=[base])
    images.make_layout(upper, "v1", layers=[base, {"top.txt": "top"}])
    s("copy", "-q", f"oci:{lower}:v1", "local:lower")
    s("copy", "-q", f"oci:{upper}:v1", "local:upper")
    s("untag", "lower")  # now an unnamed image another image is built on: an intermediate one
    assert len(s("images", "-q").stdout.split()) == 1
    assert len(s("images", "-q", "--all").stdout.split()) == 2
    assert s("images", "-q", "--filter", "dangling=true").stdout == ""


def test_rmi_refuses_an_image_a_container_uses(overlay_store, standard_image):
    s = overlay_store
    _, ref = standard_image
    s("pull", "-q", "--tls-verify=false", ref)
    ctr = s("builder", "from", "--name", "user-of-image", ref).stdout.strip()
    assert ctr == "user-of-image"
    p = s("rmi", ref, check=False)
    cid = s("builder", "containers", "-q", "--notruncate").stdout.strip()
    assert len(cid) == 64
    # podman's words (containers/storage's and libimage's), naming the container by its ID
    assert p.returncode == 2 and p.stderr == f"Error: image used by {cid}: image is in use by a container: " \
        "consider listing external containers and force-removing image\n", p.stderr
    # --force removes the container first, then the image
    s("rmi", "--force", ref)
    assert s("images", "-q").stdout == "" and s("builder", "containers", "-q").stdout.strip() == ""
    s("system", "check")


STAGER = r'''
import os, sys
from pallet.storage.options import resolve
from pallet.storage.store import Store
store = Store(resolve(sys.argv[1], sys.argv[2], "vfs"))
lost = 0
for _ in range(int(sys.argv[3])):
    with store.staging() as path:
        for _ in range(3):
            if not os.path.isdir(path):
                lost += 1
                break
            open(os.path.join(path, "x"), "w").close()
print(lost)
'''

OPENER = r'''
import sys
from pallet.storage.options import resolve
from pallet.storage.store import Store
for _ in range(int(sys.argv[3])):
    Store(resolve(sys.argv[1], sys.argv[2], "vfs"))  # each open cleans what dead processes left
'''


def test_staging_survives_other_processes_cleaning_leftovers(tmp_path):
    """A process opening the store removes staging entries whose owner is dead; it must never
    take a live one's (the lock is taken before the directory exists, and checked to be ours)."""
    root, run = str(tmp_path / "store"), str(tmp_path / "run")
    subprocess.run([sys.executable, "-c", OPENER, root, run, "1"], check=True)
    stagers = [subprocess.Popen([sys.executable, "-c", STAGER, root, run, "300"], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, root, run, "300"]) for _ in range(2)]
    for p in openers:
        assert p.wait(timeout=300) == 0
    for p in stagers:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "0", out
    assert os.listdir(os.path.join(root, "staging")) == []


@pytest.mark.parametrize("busy", [False, True])
def test_an_owner_left_by_an_exception_takes_its_containers(tmp_path, busy):
    """``Store.owner()`` left by an exception (an interrupt between the store writing a
    container and its maker knowing it) removes the containers it owns on the way out; one
    whose mount is still busy stays until the next open of the store, which then removes it."""
    from pallet.storage.options import resolve
    from pallet.storage.store import Store

    root, run = str(tmp_path / "store"), str(tmp_path / "run")
    store = Store(resolve(root, run, "overlay"))
    other = store.create_container(None, name="unowned")
    holder = None
    with pytest.raises(KeyboardInterrupt):
        with store.owner() as owner:
            c = store.create_container(None, name="owned", owner=owner)
            if busy:  # a process with its cwd in the mount: the unmount fails (EBUSY)
                path = store.mount_container(c["id"])
                holder = subprocess.Popen(["sleep", "300"], cwd=path)
            raise KeyboardInterrupt
    try:
        names = sorted(n for c in Store(resolve(root, run, "overlay")).containers() for n in c["names"])
        assert names == (["owned", "unowned"] if busy else ["unowned"])
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
    names = [n for c in Store(resolve(root, run, "overlay")).containers() for n in c["names"]]
    assert names == ["unowned"] and other["names"] == ["unowned"]
    assert os.listdir(os.path.join(root, "staging")) == []


def test_is_mounted_reads_escaped_mount_points(tmp_path):
    """``is_mounted`` compares the path as the kernel escapes it in mountinfo (space, tab,
    newline, backslash as \\ooo), whole field only: a path that is only a prefix of a mount
    point, or a mount's root inside its filesystem, is not a mount point."""
    from pallet.storage import _mount

    odd = tmp_path / "a b\\c\td"
    inner = odd / "x"
    odd.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(odd)], check=True)
    try:
        inner.mkdir()
        assert _mount.is_mounted(str(odd)) and _mount.is_mounted(str(odd) + "/")
        assert not _mount.is_mounted(str(inner)) and not _mount.is_mounted(str(tmp_path / "a b"))
        bind = tmp_path / "bind"
        bind.mkdir()
        subprocess.run(["mount", "--bind", str(inner), str(bind)], check=True)
        try:  # bind's line has "/x" as its root field: only bind itself is a mount point
            assert _mount.is_mounted(str(bind)) and not _mount.is_mounted("/x")
        finally:
            subprocess.run(["umount", str(bind)], check=True)
    finally:
        subprocess.run(["umount", str(odd)], check=True)
    assert not _mount.is_mounted(str(odd))


def _super_options(path: str) -> set[str]:
    """The filesystem's own options of the mount at ``path`` (after the `` - `` of mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == path:
                return set(right.split()[2].split(","))
    return set()


def test_a_volatile_container_mount_then_a_plain_one(overlay_store, standard_image, tmp_path):
    """``mount_container(volatile=True)`` (a ``run --rm``'s) mounts overlay with ``volatile``
    (no sync of the upper directory, at unmount either) where the kernel has it; the marker
    directory such a mount leaves does not stop the next mount of the same container."""
    _, ref = standard_image
    overlay_store("pull", "-q", "--tls-verify=false", ref)
    from pallet.storage.options import resolve
    from pallet.storage.store import Store

    store = Store(resolve(overlay_store.root, str(tmp_path / "run"), "overlay"))
    cid = store.create_container(ref, "vol")["id"]
    try:
        path = store.mount_container(cid, volatile=True)
        opts = _super_options(path)
        with open(os.path.join(path, "written"), "w") as f:
            f.write("x")
        assert store.umount_container(cid, force=True)
        if "fsync=volatile" not in opts and "volatile" not in opts:
            kernel = tuple(int(x) for x in os.uname().release.split(".")[:2])
            assert kernel < (5, 10), f"no volatile option on kernel {os.uname().release}: {opts}"
        path = store.mount_container(cid)  # the same upper and work directories, not volatile
        assert "fsync=volatile" not in _super_options(path) and "volatile" not in _super_options(path)
        with open(os.path.join(path, "written")) as f:
            assert f.read() == "x"
        assert store.umount_container(cid, force=True)
    finally:
        unmount_under(overlay_store.root)
        store.remove_container(cid)


@pytest.mark.unit
def test_overlay_short_ids_are_base32_of_16_random_bytes(monkeypatch):
    """The link names (``l/SHORT``) are base64.b32encode's first 26 characters, made by hand."""
    import base64

    from pallet.storage import drivers

    for _ in range(500):
        data = os.urandom(16)
        monkeypatch.setattr(drivers.os, "urandom", lambda n, data=data: data)
        assert drivers._short_id() == base64.b32encode(data).decode().rstrip("=")[:26]


def test_mount_with_a_working_directory_by_thread_or_fork(tmp_path, root_required):
    """A mount whose source names are relative to ``cwd`` (overlay's short lowerdirs) is made by a
    thread with a working directory of its own once ``threading`` is loaded (pytest's), and by a
    forked child in a process that never loaded it; the caller's own cwd is never changed."""
    import sys

    from pallet.storage import _mount

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    targets = []
    try:
        for i, prog in enumerate((None, "fork")):
            target = tmp_path / f"t{i}"
            target.mkdir()
            targets.append(str(target))
            if prog is None:
                cwd = os.getcwd()
                assert "threading" in sys.modules
                _mount.mount("src", str(target), None, _mount.MS_BIND, cwd=str(tmp_path))
                assert os.getcwd() == cwd
            else:
                code = ("import os, sys; from pallet.storage import _mount\n"
                        "assert 'threading' not in sys.modules\n"
                        f"_mount.mount('src', {str(target)!r}, None, _mount.MS_BIND, cwd={str(tmp_path)!r})\n"
                        "assert 'threading' not in sys.modules and os.getcwd() == '/'\n")
                subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
            assert _mount.is_mounted(str(target)) and (target / "f").read_text() == "x"
        with pytest.raises(OSError):  # the error comes back from either
            _mount.mount("missing", str(tmp_path / "t0"), None, _mount.MS_BIND, cwd=str(tmp_path))
    finally:
        for t in targets:
            subprocess.run(["umount", t], capture_output=True)


def test_umount_waits_a_moment_for_a_busy_mount(tmp_path, root_required, monkeypatch):
    """EBUSY right after a container's last process exited (the kernel frees its mount
    namespace's copies a moment later) is tried again for up to BUSY_WAIT; a mount still in use
    after that is an error (EBUSY)."""
    import errno
    import sys
    import time

    from pallet.storage import _mount

    target = tmp_path / "m"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(target)], check=True)
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys; os.chdir(sys.argv[1]); print(1, flush=True); "
                               "sys.stdin.read()", str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"1"  # its cwd is in the mount: busy
        monkeypatch.setattr(_mount, "BUSY_WAIT", 0.01)
        with pytest.raises(OSError) as e:
            _mount.umount(str(target))
        assert e.value.errno == errno.EBUSY and _mount.is_mounted(str(target))
        monkeypatch.setattr(_mount, "BUSY_WAIT", 0.25)
        waits = []
        real_sleep = time.sleep

        def sleep(s):  # the holder goes while umount waits
            waits.append(s)
            if holder.poll() is None:
                holder.stdin.close()
                holder.wait()
            real_sleep(s)

        monkeypatch.setattr(time, "sleep", sleep)
        _mount.umount(str(target))
        assert waits and not _mount.is_mounted(str(target))
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
