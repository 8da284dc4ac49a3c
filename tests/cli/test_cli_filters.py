"""``--filter`` and ``--format`` on the listing verbs, on a real store, compared with podman and
buildah holding the same images (pulled from the same registry).

Three images: ``old`` (created 2023, labels tier=base and org.example.test=yes), ``new``
(created three hours ago, tier=app, two names) and ``gone`` (created 2021, untagged: dangling).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import images
from conftest import need, run_pallet
from test_storage import push_layout

pytestmark = pytest.mark.interop

# "new" was made three hours ago: well inside until=24h, and its "3 hours ago" is stable for a while
NOW_ISO = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 3600))


class World:
    def __init__(self, root, podman_root, podman_runroot):
        self.root = root
        self.podman_base = [need("podman"), "--root", podman_root, "--runroot", podman_runroot,
                            "--storage-driver", "vfs"]
        self.ids: dict[str, str] = {}
        self.refs: dict[str, str] = {}

    def pallet(self, *args, check=True):
        return run_pallet("--root", self.root, "--storage-driver", "vfs", *args, check=check)

    def podman(self, *args, check=True):
        p = subprocess.run(self.podman_base + list(args), capture_output=True, text=True, timeout=120)
        if check and p.returncode:
            raise AssertionError(f"podman {' '.join(args)}: {p.stderr}")
        return p

    def names(self, ids: str) -> set[str]:
        """The images (old/new/gone) whose IDs a -q listing printed."""
        back = {v[:12]: k for k, v in self.ids.items()}
        return {back[i[:12]] for i in ids.split()}


@pytest.fixture(scope="module")
def world(registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("filters")
    runroot = tempfile.mkdtemp(prefix="pfr-")  # podman wants a short run root
    w = World(str(work / "store"), str(work / "podman"), runroot)
    specs = {
        "old": ("1", {"config": {"Labels": {"org.example.test": "yes", "tier": "base"}}}),
        "new": ("2", {"created": NOW_ISO, "config": {"Labels": {"tier": "app"}}}),
        "gone": ("3", {"created": "2021-01-01T00:00:00Z", "config": {}}),
    }
    for key, (tag, extra) in specs.items():
        layout = str(work / f"layout-{key}")
        images.make_layout(layout, tag, layers=[{f"{key}.txt": key}], config_extra=extra)
        ref = push_layout(registry, layout, tag, f"filters/{key}")
        w.refs[key] = ref
        w.ids[key] = w.pallet("pull", "-q", "--tls-verify=false", ref).stdout.split()[-1]
        pid = w.podman("pull", "-q", "--tls-verify=false", ref).stdout.split()[-1]
        assert pid == w.ids[key]
    w.pallet("tag", w.refs["new"], "localhost/extra:latest")
    w.podman("tag", w.refs["new"], "localhost/extra:latest")
    w.pallet("untag", w.refs["gone"])
    w.podman("untag", w.refs["gone"])
    try:
        yield w
    finally:
        w.podman("rmi", "-a", "-f", check=False)
        subprocess.run(["umount", "-R", "-l", runroot], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


# -- images --filter ---------------------------------------------------------------------------

def test_until_24h_on_freshly_made_images_lists_nothing(world):
    """The dangerous one: ``rmi $(images -q --filter until=24h)`` must not see an image created a
    moment ago (podman compares the image's creation time, as here)."""
    assert world.pallet("images", "-q", "--filter", "until=24h", world.refs["new"]).stdout == ""
    args = ["images", "-q", "--filter", "until=24h"]
    assert world.names(world.pallet(*args).stdout) == {"old", "gone"} == world.names(world.podman(*args).stdout)
    args = ["images", "-q", "--filter", "until=1h"]
    assert world.names(world.pallet(*args).stdout) == {"old", "gone", "new"} == world.names(world.podman(*args).stdout)


FILTERS = [
    ["until=24h"], ["until=2022-01-01"], ["until=2022-01-01T00:00:00Z"], [f"until={int(time.time()) + 3600}"],
    ["until=17520h"], ["since=filters/old:1"], ["after=filters/old:1"], ["before=localhost/extra"],
    ["dangling=true"], ["dangling=false"], ["dangling=1"], ["intermediate=false"], ["intermediate=true"],
    ["readonly=false"], ["readonly=true"], ["manifest=false"], ["manifest=true"], ["containers=false"],
    ["containers=true"], ["label=tier"], ["label=tier=base"], ["label!=tier=base"], ["label=org.example.test"],
    ["label=tier=app", "label=org.example.test"], ["label=nope"],
    ["reference=filters/old"], ["reference=old"], ["reference=*/new*"], ["reference=127.0.0.1:*/filters/*"],
    ["reference=*"], ["reference=extra"], ["reference=filters/*"], ["reference=*:2"], ["reference!=*old*"],
    ["reference=filters"], ["reference=[o]ld"], ["reference=[unclosed"], ["dangling=false", "label=tier"],
    ["reference=new", "reference=old"],
]


@pytest.mark.parametrize("flags", FILTERS, ids=lambda f: " ".join(f))
def test_images_filter_lists_what_podman_lists(world, flags):
    args = ["images", "-q", "-a"] + [x for f in flags for x in ("--filter", f)]
    ours = world.pallet(*args).stdout
    theirs = world.podman(*args).stdout
    assert world.names(ours) == world.names(theirs), (ours, theirs)


def test_images_filter_ids_and_digests(world):
    old = world.ids["old"]
    for value in (old, "sha256:" + old, old[:6], "0" * 12):
        ours = world.pallet("images", "-q", "-a", "--filter", f"id={value}").stdout
        assert world.names(ours) == ({"old"} if value != "0" * 12 else set())
    # podman 4.3 wants the whole ID (later versions, like pallet, take a prefix)
    assert world.names(world.podman("images", "-q", "-a", "--filter", f"id={old}").stdout) == {"old"}
    digest = json.loads(world.pallet("image", "inspect", world.refs["old"]).stdout)[0]["Digest"]
    out = world.pallet("images", "-q", "-a", "--filter", f"digest={digest[:15]}").stdout
    assert world.names(out) == {"old"}
    # the positional IMAGE is a reference filter
    assert world.names(world.pallet("images", "-q", "filters/new").stdout) == {"new"}


@pytest.mark.parametrize("flag, message", [
    ("bogus=1", "unsupported filter 'bogus' for images"),
    ("label", "invalid filter 'label'"),
    ("dangling=maybe", "invalid filter dangling='maybe': want true or false"),
    ("readonly=yes", "invalid filter readonly='yes'"),
    ("until=tomorrow", "invalid filter until='tomorrow'"),
    ("until=2024-13-01", "invalid filter until='2024-13-01'"),
    ("before=no/such:image", "invalid filter before='no/such:image'"),
    ("since=", "invalid filter since=''"),
    ("digest=abc", "invalid filter digest='abc'"),
    ("id=", "invalid filter id=''"),
    ("digest=sha256:", "invalid filter digest='sha256:'"),
    ("id=sha256:", "invalid filter id='sha256:'"),
    ("containers=maybe", "invalid filter containers='maybe'"),
    ("label=", "invalid filter 'label='"),
])
def test_bad_filters_are_one_line_errors(world, flag, message):
    p = world.pallet("images", "-q", "--filter", flag, check=False)
    assert p.returncode == 125 and p.stdout == ""
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_conflicting_boolean_filters_are_refused(world):
    p = world.pallet("images", "-q", "--filter", "dangling=true", "--filter", "dangling=false", check=False)
    assert p.returncode == 125 and p.stdout == "" and "dangling" in p.stderr


# -- --format on every listing verb ------------------------------------------------------------

IMAGE_TEMPLATE = ("{{.ID}}|{{.Repository}}|{{.Tag}}|{{.Digest}}|{{.CreatedAt}}|{{.Created}}|{{.CreatedSince}}|"
                  "{{.Labels}}|{{.Containers}}|{{.ReadOnly}}|{{.Dangling}}|{{.SharedSize}}|{{.ParentId}}|"
                  "{{if .Dangling}}dangling{{else}}{{len .Names}} names{{end}}|{{index .Labels \"tier\"}}|"
                  "{{range .RepoDigests}}{{.}},{{end}}")


def test_images_format_matches_podman(world):
    ours = sorted(world.pallet("images", "-a", "--format", IMAGE_TEMPLATE).stdout.splitlines())
    theirs = sorted(world.podman("images", "-a", "--format", IMAGE_TEMPLATE).stdout.splitlines())
    assert ours == theirs and len(ours) == 4


def test_images_format_table_has_headers(world):
    out = world.pallet("images", "--format", "table {{.ID}} {{.Repository}} {{.Tag}}", world.refs["old"]).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "ID", "REPOSITORY", "TAG"] and len(lines) == 2
    assert lines[1].split() == [world.ids["old"][:12], world.refs["old"].rsplit(":", 1)[0], "1"]
    theirs = world.podman("images", "--format", "table {{.ID}} {{.Repository}} {{.Tag}}", world.refs["old"]).stdout
    assert out == theirs
    args = ["images", "--noheading", "--format", "table {{.ID}} {{.Repository}}", world.refs["old"]]
    assert world.pallet(*args).stdout == world.podman(*args).stdout and len(world.pallet(*args).stdout.splitlines()) == 1


def test_unknown_fields_are_errors_not_the_default_table(world):
    for args in (["images"], ["image", "history", world.refs["old"]], ["system", "df"],
                 ["image", "inspect", world.refs["old"]], ["builder", "containers"], ["image", "mount"]):
        p = world.pallet(*args, "--format", "{{.NoSuchField}}", check=False)
        assert p.returncode == 125 and p.stdout == "", (args, p.stdout)
        assert "can't evaluate field NoSuchField" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_image_json_fields_are_template_fields(world):
    """Every key of images --format json can be asked for by a template."""
    doc = json.loads(world.pallet("images", "--format", "json", world.refs["old"]).stdout)[0]
    tmpl = "|".join("{{json ." + k + "}}" for k in doc)
    out = world.pallet("images", "--format", tmpl, world.refs["old"]).stdout.strip().split("|")
    assert len(out) == len(doc)
    assert json.loads(out[list(doc).index("Labels")]) == {"org.example.test": "yes", "tier": "base"}
    assert json.loads(out[list(doc).index("VirtualSize")]) == doc["VirtualSize"] > 0
    assert world.pallet("images", "--format", "{{json .}}", world.refs["old"]).stdout.strip() == json.dumps(
        doc, separators=(",", ":"))


def test_history_format_matches_podman(world):
    tmpl = "{{.ID}}|{{.CreatedBy}}|{{.Comment}}|{{.CreatedAt}}|{{.Created}}|{{.CreatedSince}}|{{.Size}}"
    ours = world.pallet("image", "history", "--format", tmpl, world.refs["old"]).stdout
    assert ours == world.podman("image", "history", "--format", tmpl, world.refs["old"]).stdout
    assert ours.startswith(world.ids["old"][:12] + "|layer 0||2023-11-14 22:13:20 +0000 UTC|")
    table = world.pallet("image", "history", "--format", "table {{.ID}} {{.CreatedBy}}", world.refs["old"]).stdout
    assert table.splitlines()[0].split() == ["ID", "CREATED", "BY"]


def test_df_format(world):
    tmpl = "{{.Type}}|{{.Total}}|{{.Active}}"
    out = world.pallet("system", "df", "--format", tmpl).stdout.splitlines()
    assert out == ["Images|3|0", "Containers|0|0", "Local Volumes|0|0"]
    rows = [json.loads(line) for line in world.pallet("system", "df", "--format", "{{json .}}").stdout.splitlines()]
    assert [list(r) for r in rows] == [["Type", "Total", "Active", "Size", "Reclaimable"]] * 3
    assert rows[0]["Size"] > 0 and isinstance(rows[0]["Reclaimable"], int)
    table = world.pallet("system", "df", "--format", "table {{.Type}}\\t{{.Reclaimable}}").stdout.splitlines()
    assert table[0].split() == ["TYPE", "RECLAIMABLE"] and table[1].startswith("Images ")


def test_inspect_formats(world, registry):
    ref = world.refs["old"]
    out = world.pallet("image", "inspect", "--format", '{{.Id}} {{index .Labels "tier"}} {{.Config.Labels.tier}}',
                       ref).stdout
    assert out == f"{world.ids['old']} base base\n"
    assert out == world.podman("image", "inspect", "--format",
                               '{{.Id}} {{index .Labels "tier"}} {{.Config.Labels.tier}}', ref).stdout
    tmpl = ('{{.Name}} {{.Architecture}} {{len .Layers}} {{range .Layers}}{{.}}{{end}} '
            '{{if .Labels.tier}}{{printf "%q" .Labels.tier}}{{end}} {{.Labels}}')
    ours = run_pallet("inspect", "--tls-verify=false", "--format", tmpl, f"docker://{ref}").stdout
    p = subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--format", tmpl, f"docker://{ref}"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    theirs = p.stdout
    assert ours == theirs and ours.endswith(" \"base\" map[org.example.test:yes tier:base]\n")
    p = run_pallet("inspect", "--tls-verify=false", "--format", "{{.Nope}}", f"docker://{ref}", check=False)
    assert p.returncode == 1 and "can't evaluate field Nope" in p.stderr and p.stdout == ""


# -- image prune --filter ------------------------------------------------------------------------

def test_prune_filters(registry, tmp_path):
    store = str(tmp_path / "store")
    runroot = tempfile.mkdtemp(prefix="pfp-")
    base = [need("podman"), "--root", str(tmp_path / "podman"), "--runroot", runroot, "--storage-driver", "vfs"]

    def pallet(*args, check=True):
        return run_pallet("--root", store, "--storage-driver", "vfs", *args, check=check)

    def podman(*args):
        p = subprocess.run(base + list(args), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout
    try:
        _prune_filters(pallet, podman, registry, tmp_path)
    finally:
        subprocess.run(base + ["rmi", "-a", "-f"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", runroot], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def _prune_filters(pallet, podman, registry, tmp_path):
    ids = {}
    for key, extra in (("p-old", {"config": {"Labels": {"keep": "no"}}}),
                       ("p-new", {"created": NOW_ISO, "config": {"Labels": {"keep": "no"}}}),
                       ("p-kept", {"config": {"Labels": {"keep": "yes"}}})):
        layout = str(tmp_path / key)
        images.make_layout(layout, "1", layers=[{f"{key}.txt": key}], config_extra=extra)
        ref = push_layout(registry, layout, "1", f"prune/{key}")
        ids[key] = pallet("pull", "-q", "--tls-verify=false", ref).stdout.split()[-1]
        podman("pull", "-q", "--tls-verify=false", ref)
    before = set(pallet("images", "-q", "--no-trunc").stdout.split())
    for bad in ("reference=*", "dangling=true", "until=soon", "label", "bogus=1"):
        p = pallet("image", "prune", "-a", "--filter", bad, check=False)
        assert p.returncode == 125 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (bad, p.stderr)
    assert set(pallet("images", "-q", "--no-trunc").stdout.split()) == before  # nothing went
    # until=24h: the image created a moment ago stays
    for args, want in ((["--filter", "until=24h", "--filter", "label=keep=no"], [ids["p-old"]]),
                       (["--filter", "label!=keep=yes"], [ids["p-new"]])):
        assert pallet("image", "prune", "-a", *args).stdout.split() == want
        assert podman("image", "prune", "-a", "-f", *args).split() == want
    assert pallet("images", "-q", "--no-trunc").stdout.split() == ["sha256:" + ids["p-kept"]]


# -- builder containers --------------------------------------------------------------------------

def test_builder_containers_filter_and_format(world, tmp_path):
    made = []
    broot = tempfile.mkdtemp(prefix="pfb-")
    buildah = [need("buildah"), "--root", str(tmp_path / "buildah"), "--runroot", broot, "--storage-driver", "vfs"]

    def theirs(*args):
        p = subprocess.run(buildah + list(args), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout
    try:
        for key, name in (("old", "alpha-one"), ("new", "beta-two")):
            made.append(world.pallet("builder", "from", "--name", name, world.refs[key]).stdout.strip())
            theirs("from", "-q", "--tls-verify=false", "--name", name, world.refs[key])
        by_id = dict(line.split() for line in world.pallet(
            "builder", "containers", "--format", "{{.ContainerID}} {{.ContainerName}}").stdout.splitlines())
        assert sorted(by_id.values()) == ["alpha-one", "beta-two"]

        def names(*flags):
            out = world.pallet("builder", "containers", "--format", "{{.ContainerName}}", *flags).stdout
            # the same filter on buildah's containers (IDs differ; and buildah 1.28 splits a name at
            # its first colon, so it never finds ancestor=REPO when the registry has a port)
            if not any(f.startswith("id=") or "ancestor=filters" in f for f in flags):
                # (sorted: the store keeps containers by ID, buildah in the order they were made)
                assert sorted(out.split()) == sorted(theirs("containers", "--format", "{{.ContainerName}}",
                                                            *flags).split()), flags
            return sorted(out.split())
        assert names() == ["alpha-one", "beta-two"]
        assert names("--filter", "name=pha") == ["alpha-one"]
        for cid, name in by_id.items():
            assert names("--filter", f"id={cid[:5]}") == [name]
        assert names("--filter", "ancestor=filters/old") == ["alpha-one"]
        assert names("--filter", "ancestor=filters/new:2") == ["beta-two"]
        assert names("--filter", "ancestor=filters/new:9") == []
        assert names("--filter", f"ancestor={world.ids['old'][:10]}") == ["alpha-one"]
        assert names("--filter", "name=a,ancestor=filters/new") == ["beta-two"]
        row = world.pallet("builder", "containers", "--format",
                           "{{.ImageName}}|{{.ImageID}}|{{.Builder}}", "--filter", "name=alpha").stdout
        assert row == f"{world.refs['old']}|{world.ids['old']}|   *\n"  # buildah: whole IDs with --format
        assert row == theirs("containers", "--format", "{{.ImageName}}|{{.ImageID}}|{{.Builder}}", "--filter",
                             "name=alpha")
        table = world.pallet("builder", "containers", "--format", "table {{.ContainerName}} {{.ImageID}}").stdout
        assert table.splitlines()[0].split() == ["CONTAINER", "NAME", "IMAGE", "ID"]
        p = world.pallet("builder", "containers", "--filter", "status=running", check=False)
        assert p.returncode == 125 and "unsupported filter 'status'" in p.stderr and p.stdout == ""
        p = world.pallet("builder", "inspect", "--format", "{{.Container}} {{.FromImageID}}", "alpha-one")
        assert p.stdout == f"alpha-one {world.ids['old']}"  # buildah adds no newline
        # containers=true now matches the images in use
        assert world.names(world.pallet("images", "-q", "--filter", "containers=true").stdout) == {"old", "new"}
    finally:
        for c in made:
            world.pallet("builder", "rm", c, check=False)
        subprocess.run(buildah + ["rm", "-a"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", broot], capture_output=True)
        shutil.rmtree(broot, ignore_errors=True)


def test_image_mount_listing_format(world):
    path = world.pallet("image", "mount", world.refs["old"]).stdout.strip()
    try:
        out = world.pallet("image", "mount", "--format", "{{.id}} {{.mountpoint}} {{join .Repositories \",\"}}").stdout
        assert out == f"{world.ids['old']} {path} {world.refs['old']}\n"
        p = world.pallet("image", "mount", "--format", "{{.MountPoint}}", check=False)
        assert p.returncode == 125 and p.stdout == "" and "can't evaluate field MountPoint" in p.stderr
    finally:
        world.pallet("image", "umount", world.refs["old"])


def test_image_inspect_template_is_all_or_nothing(world):
    """A template that fails on the second image prints nothing, not half the answer."""
    args = ["image", "inspect", "--format", "{{index .RepoTags 0}}", world.refs["old"], world.ids["gone"]]
    p = world.pallet(*args, check=False)
    assert p.returncode == 125 and p.stdout == "" and "index out of range: 0" in p.stderr
    assert world.pallet(*args[:-1]).stdout == world.refs["old"] + "\n"
