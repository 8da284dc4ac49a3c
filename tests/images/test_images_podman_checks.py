"""podman's image verbs as its own system tests (test/system 010, 020, 070, 110, 120 at
v4.3.1) check them, side by side with podman on the same image: names history, rmi of one
name among several, untag's words, rmi of the dangling parents a build leaves, save by ID,
load's words and load from a URL, save --uncompressed, image sign."""

from __future__ import annotations

import functools
import json
import http.server
import os
import subprocess
import tarfile
import threading

import pytest

import images
from conftest import need
from test_storage import push_layout
from test_store_images import podman, s  # noqa: F401  (fixtures: pallet's store, podman's)

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def ref(registry, tmp_path, request):
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1", layers=[{"a.txt": "a"}, {"b.txt": "b"}])
    return push_layout(registry, layout, "v1", "imgchecks/" + request.node.name.lower().replace("_", "-")[:60])


def both(s, podman, *args, check=True):
    """(pallet's, podman's) CompletedProcess of the same command line."""
    return s(*args, check=check), podman(*args, check=check)


def test_names_history_untag_rmi_of_one_name_and_sort_as_podman(s, podman, ref):
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
        tool("tag", ref, "a.b/c:d", "zz/yy:1")
    hist = ("images", "--format", "{{.History}}")
    a, b = both(s, podman, *hist)  # a line per name
    assert a.stdout == b.stdout and a.stdout.splitlines()[0] == f"localhost/zz/yy:1, a.b/c:d, {ref}"
    # rmi --force of one name among several removes that name alone (the image stays)
    a, b = both(s, podman, "rmi", "--force", "a.b/c:d")
    assert a.stdout == b.stdout == "Untagged: a.b/c:d\n"
    a, b = both(s, podman, *hist)
    assert a.stdout == b.stdout and a.stdout.splitlines()[0] == f"localhost/zz/yy:1, {ref}, a.b/c:d"
    s("tag", ref, "a.b/c:d")
    podman("tag", ref, "a.b/c:d")
    # --sort repository sorts the rows, one per name; a template's tab is printed as it is
    a, b = both(s, podman, "images", "--sort", "repository", "--format", "{{.Repository}}\\t{{.Tag}}")
    assert a.stdout == b.stdout
    lines = a.stdout.splitlines()
    assert lines == sorted(lines) and "a.b/c\td" in lines and len(lines) == 3
    a, b = both(s, podman, "images", "--sort", "repository", "--format", "table {{.Repository}} {{.Tag}}")
    assert a.stdout == b.stdout
    a, b = both(s, podman, "images", "--no-trunc", "--format", "{{.ID}}")
    assert a.stdout == b.stdout and a.stdout.startswith("sha256:")
    assert s("images", "--no-trunc").stdout.splitlines()[1].split()[2] == a.stdout.split()[0]
    # untag of a name the image lacks: podman's words and status
    a, b = both(s, podman, "untag", ref, "registry.com/foo:bar", check=False)
    assert a.returncode == b.returncode == 125
    assert a.stderr == b.stderr == "Error: registry.com/foo:bar: tag not known\n"
    # rm --force of an unknown image: nothing said, success (without --force: 1)
    a, b = both(s, podman, "image", "rm", "--force", "bogus", check=False)
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr) == (0, "", "")
    a, b = both(s, podman, "image", "rm", "bogus", check=False)
    assert a.returncode == b.returncode == 1 and a.stderr == b.stderr
    # the history through inspect too, and untag of every name
    s("untag", ref)
    assert s("image", "inspect", "--format", "{{.NamesHistory}}", "a.b/c:d", check=False).returncode != 0
    iid = s("images", "-q", "--no-trunc").stdout.split()[0]
    assert s("image", "inspect", "--format", "{{.RepoTags}}", iid).stdout == "[]\n"


def test_history_template_keeps_its_tab(s, ref):
    s("pull", "-q", "--tls-verify=false", ref)
    out = s("history", "--format", "{{.ID}}\\t{{.ID}}", ref).stdout
    assert out and all("\t" in line for line in out.splitlines())


def test_rmi_removes_the_dangling_parents_a_build_left_as_podman(s, podman, ref, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("f")
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nCOPY f /f\nENV A=1\nCOPY f /g\n")
    counts = {}
    for name, tool in (("pallet", s), ("podman", podman)):
        tool("pull", "-q", "--tls-verify=false", ref)
        tool("build", "-q", "--layers", "-t", "built", str(ctx))
        before = tool("images", "-a", "-q").stdout.split()
        tool("tag", "built", "other")
        out = tool("rmi", "built").stdout  # another name left: only untagged
        assert out == "Untagged: localhost/built:latest\n"
        out = tool("rmi", "other").stdout.splitlines()
        counts[name] = (len(before), [ln.split(":")[0] for ln in out], tool("images", "-a", "-q").stdout.split())
    for name, (n, said, left) in counts.items():  # (pallet keeps no step image for ENV alone: 3, podman 4)
        assert n >= 3 and said == ["Untagged"] + ["Deleted"] * (n - 1), (name, counts)
        assert len(left) == 1, (name, counts)  # the base alone is left
    s("system", "check")


def test_build_prints_podmans_short_id(s, ref, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nENV A=1\n")
    s("pull", "-q", "--tls-verify=false", ref)
    lines = s("build", "-t", "x", str(ctx)).stdout.splitlines()
    short = next(ln for ln in lines if ln.startswith("--> "))
    assert len(short) == 4 + 11 and lines[-1].startswith(short[4:])  # buildah's 11 characters


def test_load_words_save_by_id_uncompressed_and_load_from_a_url(s, podman, ref, tmp_path):
    bad = tmp_path / "invalid"
    bad.write_text("I am an invalid file and should cause a podman-load error\n")
    a, b = both(s, podman, "load", "-i", str(bad), check=False)
    assert a.returncode == b.returncode == 125
    want = "payload does not match any of the supported image formats:"
    assert want in a.stderr and want in b.stderr and len(a.stderr.splitlines()) == 1
    p = s("load", input="not a tar archive, too short", check=False)
    assert p.returncode == 125 and want in p.stderr
    # save by ID: the archive names nothing, the image loads back as <none>
    s("pull", "-q", "--tls-verify=false", ref)
    iid = s("images", "-q").stdout.strip()
    archive = str(tmp_path / "byid.tar")
    s("save", iid, "-o", archive)
    s("rmi", iid)
    assert s("load", "-q", "-i", archive).stdout == f"Loaded image: {s('images', '-q', '--no-trunc').stdout}"
    assert s("images", "-a", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout == f"{iid} <none>:<none>\n"
    s("tag", iid, ref)
    # --uncompressed: an image stored with a Docker manifest is saved with plain tar layers (podman's;
    # one stored as OCI keeps its layers as they are: tests/storage/test_store_images.py)
    v2s2 = ref.rsplit(":", 1)[0] + ":v2s2"
    subprocess.run([need("skopeo"), "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "--format",
                    "v2s2", f"docker://{ref}", f"docker://{v2s2}"], check=True, capture_output=True)
    s("pull", "-q", "--tls-verify=false", v2s2)
    oci = str(tmp_path / "plain.tar")
    s("save", "-o", oci, "--format", "oci-archive", "--uncompressed", v2s2)
    with tarfile.open(oci) as tf:
        blobs = [m for m in tf.getmembers() if m.name.startswith("blobs/") and m.isfile()]
        heads = [tf.extractfile(m).read(262) for m in blobs]
    assert any(h[257:262] == b"ustar" for h in heads)  # the layers
    assert not any(h[:2] == b"\x1f\x8b" for h in heads)  # nothing gzip-compressed
    # load -i URL: downloaded, then loaded
    (tmp_path / "srv").mkdir()
    s("save", "-o", str(tmp_path / "srv" / "image.tar"), ref)
    s("rmi", ref)
    handler = functools.partial(_Quiet, directory=str(tmp_path / "srv"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        assert s("load", "-q", "-i", f"{url}/image.tar").stdout == f"Loaded image: {ref}\n"
        p = s("load", "-i", f"{url}/nothing.tar", check=False)
        assert p.returncode == 125 and "404" in p.stderr and len(p.stderr.splitlines()) == 1
    finally:
        srv.shutdown()
        srv.server_close()
    assert s("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.splitlines()[0] == ref
    s("system", "check")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _gpg_key(home: str) -> str:
    os.makedirs(home, mode=0o700)
    subprocess.run([need("gpg"), "--homedir", home, "--batch", "--no-tty", "--passphrase", "", "--pinentry-mode",
                    "loopback", "--quick-gen-key", "Foo <foo@bar.com>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    return "foo@bar.com"


def test_image_sign_writes_podmans_layout(s, podman, ref, tmp_path, monkeypatch, isolated):
    isolated.write_text(f'[[registry]]\nlocation = "{ref.split("/")[0]}"\ninsecure = true\n')  # no --tls-verify
    home = str(tmp_path / "gnupg")
    key = _gpg_key(home)
    monkeypatch.setenv("GNUPGHOME", home)
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    for tool, d in ((s, mine), (podman, theirs)):
        for _ in range(2):
            tool("image", "sign", "--sign-by", key, "--directory", str(d), f"docker://{ref}")

    def files(d):
        return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)

    assert files(mine) == files(theirs) and len(files(mine)) == 2
    assert files(mine)[0].endswith("/signature-1") and "@sha256=" in files(mine)[0]
    sig = os.path.join(mine, files(mine)[0])
    out = subprocess.run([need("gpg"), "--homedir", home, "--batch", "--verify", sig], capture_output=True, text=True)
    assert out.returncode == 0 and "Good signature" in out.stderr
    a, b = both(s, podman, "image", "sign", "--sign-by", key, "--directory", str(tmp_path / "missing"),
                f"docker://{ref}", check=False)
    assert a.returncode == b.returncode == 125 and "no such file or directory" in a.stderr
    p = s("image", "sign", "--directory", str(mine), f"docker://{ref}", check=False)
    assert p.returncode == 125 and "--sign-by" in p.stderr
    p = s("image", "sign", "--sign-by", key, "--all", "--directory", str(mine),
          f"docker://{ref}", check=False)
    assert p.returncode == 125 and "not a multi-architecture image" in p.stderr


def test_an_image_pulled_through_a_manifest_list_has_the_lists_digest_as_podman(s, podman, registry, tmp_path):
    layout = str(tmp_path / "multi")
    images.make_multiarch_layout(layout, "v1", platforms=(("amd64", ""), ("arm64", "v8"), ("386", "")))
    ref = f"{registry.host}/imgchecks/listdigest:v1"
    subprocess.run([need("skopeo"), "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{ref}"], check=True, capture_output=True)
    listed = subprocess.run([need("skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                             f"docker://{ref}"], check=True, capture_output=True, text=True).stdout.strip()
    fmt = ("image", "inspect", "--format", "{{.Digest}} {{len .RepoDigests}}", ref)
    for tool in (s, podman):
        tool("pull", "-q", "--tls-verify=false", ref)
    a, b = both(s, podman, *fmt)
    assert a.stdout == b.stdout == f"{listed} 2\n"  # the list's digest; RepoDigests: the instance's and the list's
    repo = ref.rsplit(":", 1)[0]
    assert s("image", "exists", f"{repo}@{listed}").returncode == 0  # found by the list's digest too
    # and a pull of one image (no list) is shown by its own digest again
    inst = f"{repo}@" + json.loads(s("image", "inspect", ref).stdout)[0]["RepoDigests"][0].split("@")[1]
    s("pull", "-q", "--tls-verify=false", inst)
    assert s(*fmt).stdout.split()[0] == inst.split("@")[1]


def test_rmi_all_of_images_in_use_and_rmi_all_force_as_podman(s, podman, tmp_path):
    """podman 010 "rmi -af removes all containers and pods": ``rmi -a`` with containers on the
    images lists every refusal in podman's words (one "N errors occurred" list, exit 2);
    ``rmi -af`` removes the containers, then prints every Untagged line, then every Deleted
    line, the images in the order they came into the store."""
    import re
    import tempfile

    runroot = tempfile.mkdtemp(prefix="prr-")  # create needs a run root: this test's own
    tars = []
    for n in ("b", "a"):  # imported b first: its ID need not sort first
        t = tmp_path / f"{n}.tar"
        with tarfile.open(t, "w") as tf:
            info = tarfile.TarInfo(f"{n}.txt")
            tf.addfile(info)
        tars.append((str(t), f"localhost/rmiall-{n}:latest"))
    outs = []
    try:
        for tool, extra in ((s, ["--runroot", runroot]), (podman, [])):
            ids = [tool("import", "-q", t, name).stdout.strip().removeprefix("sha256:") for t, name in tars]
            ctrs = [tool(*extra, "create", "--network", "none", name, "/x").stdout.strip() for _, name in tars]
            refused = tool(*extra, "rmi", "-a", check=False)
            forced = tool(*extra, "rmi", "-a", "-f", check=False)
            left = tool(*extra, "ps", "-a", "-q").stdout + tool("images", "-q").stdout
            swap = dict(zip(ids + ctrs, ["IMG-B", "IMG-A", "CTR-B", "CTR-A"]))
            anon = lambda text: re.sub(r"[0-9a-f]{64}", lambda m: swap.get(m.group(0), "?"), text)  # noqa: E731
            outs.append((refused.returncode, refused.stdout, anon(refused.stderr), forced.returncode,
                         anon(forced.stdout), forced.stderr, left))
    finally:
        s("--runroot", runroot, "rm", "-a", "-f", check=False)
        import shutil

        shutil.rmtree(runroot, ignore_errors=True)
    assert outs[0] == outs[1]
    used = "image is in use by a container: consider listing external containers and force-removing image"
    assert outs[0] == (2, "", f"Error: 2 errors occurred:\n\t* image used by CTR-B: {used}\n\t* image used by CTR-A: "
                       f"{used}\n", 0, "Untagged: localhost/rmiall-b:latest\nUntagged: localhost/rmiall-a:latest\n"
                       "Deleted: IMG-B\nDeleted: IMG-A\n", "", "")
