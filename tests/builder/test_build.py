"""pallet build and pallet builder on the real kernel, the real runtimes and skopeo: the
host-tools workflow, the cache, reproducibility, secrets, exports, what buildah 1.28 cannot
do (heredocs, COPY --link, ONBUILD in a child) checked against Docker's documented
behaviour, and bad input (one-line errors, nothing left behind)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

import pytest

from buildtools import PalletStore, base, http_dir, pallet  # noqa: F401  (fixtures)
from conftest import need, release_all, unmount_under


def _ctx(tmp_path, dockerfile: str, files: dict | None = None) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(ctx)


def _clean(pallet) -> None:
    """No working containers, no mounts, no unnamed images but cache entries."""
    assert pallet.containers() == []
    assert pallet.mounts() == []


def test_builder_host_tools_workflow(pallet, tmp_path):
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    assert ctr == "busybox-working-container"
    mnt = pallet("builder", "mount", ctr).stdout.strip()
    with open(os.path.join(mnt, "from-host.txt"), "w") as f:  # a host tool fills the image
        f.write("written on the host\n")
    os.makedirs(os.path.join(mnt, "opt/tool"))
    pallet("builder", "run", ctr, "--", "sh", "-c", "echo in-container > /opt/tool/ran; rm /bin/vi")
    (tmp_path / "cp.txt").write_text("copied\n")
    pallet("builder", "copy", "--chown", "7:8", "--chmod", "640", ctr, str(tmp_path / "cp.txt"), "/opt/")
    pallet("builder", "config", "--env", "A=1", "--entrypoint", '["/bin/cat"]', "--cmd", "/from-host.txt",
           "--label", "l=v", "--workingdir", "/opt", "--user", "0:0", "--port", "8080", "--volume", "/v",
           "--stop-signal", "SIGKILL", "--healthcheck", "CMD true", "--author", "me", "--created-by", "host tools",
           ctr)
    assert ctr in pallet("builder", "containers").stdout
    iid = pallet("builder", "commit", "--format", "docker", "--rm", ctr, "hosttools").stdout.strip()
    assert pallet("builder", "containers", "-q").stdout.strip() == ""
    _clean(pallet)
    cfg = pallet.config("hosttools")
    assert iid == pallet.store().image("hosttools")["id"]
    c = cfg["config"]
    assert "A=1" in c["Env"] and c["Entrypoint"] == ["/bin/cat"] and c["Cmd"] == ["/from-host.txt"]
    assert c["Labels"]["l"] == "v" and c["WorkingDir"] == "/opt" and c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["Volumes"] == {"/v": {}} and c["StopSignal"] == "SIGKILL" and c["Healthcheck"]["Test"] == ["CMD", "true"]
    assert cfg["author"] == "me" and cfg["history"][-1]["created_by"] == "host tools"
    assert len(cfg["rootfs"]["diff_ids"]) == 2
    tree = pallet.tree("hosttools")
    assert tree["/from-host.txt"][0] == "f" and tree["/opt/tool/ran"][0] == "f"
    assert tree["/opt/cp.txt"][1:4] == ("0o640", 7, 8)
    assert "/bin/vi" not in tree and "/etc/hosts" not in tree and "/etc/resolv.conf" not in tree
    m, _ = pallet.manifest("hosttools")
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_builder_run_exit_code_and_scratch(pallet, tmp_path):
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    p = pallet("builder", "run", ctr, "--", "sh", "-c", "exit 7", check=False)
    assert p.returncode == 7
    pallet("builder", "rm", ctr)
    s = pallet("builder", "from", "scratch").stdout.strip()
    assert s == "working-container"
    (tmp_path / "f").write_text("x")
    pallet("builder", "copy", s, str(tmp_path / "f"), "/f")
    pallet("builder", "commit", "--rm", s, "fromscratch")
    assert set(pallet.tree("fromscratch")) == {"/f"}
    _clean(pallet)


def test_built_image_runs_and_exports_to_oci_for_skopeo(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo built > /b.txt\nCMD [\"cat\", \"/b.txt\"]\n")
    out = tmp_path / "layout"
    pallet("build", "-t", "runme", "--output", f"oci:{out}:v1", ctx)
    # skopeo reads the export
    dest = tmp_path / "skopeo-copy"
    subprocess.run([need("skopeo"), "copy", f"oci:{out}:v1", f"oci:{dest}:v1"], check=True, capture_output=True)
    idx = json.loads((dest / "index.json").read_text())
    assert len(idx["manifests"]) == 1
    # it runs, under the default runtime and under runc
    for runtime in (None, "runc"):
        ctr = pallet("builder", "from", "runme").stdout.strip()
        args = ["builder", "run"] + (["--runtime", runtime] if runtime else []) + [ctr, "--", "cat", "/b.txt"]
        assert pallet(*args).stdout == "built\n"
        pallet("builder", "rm", ctr)
    # type=local and type=tar
    pallet("build", "-t", "runme", "--output", f"type=local,dest={tmp_path / 'rootfs'}", ctx)
    assert (tmp_path / "rootfs" / "b.txt").read_text() == "built\n"
    pallet("build", "-t", "runme", "--output", f"type=tar,dest={tmp_path / 'rootfs.tar'}", ctx)
    import tarfile

    with tarfile.open(tmp_path / "rootfs.tar") as tf:
        assert "b.txt" in tf.getnames()
    _clean(pallet)


def test_built_image_runs_under_podman(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo podman-ok > /p.txt\nCMD [\"cat\", \"/p.txt\"]\n")
    arch = tmp_path / "img.tar"
    pallet("build", "-q", "-t", "forpodman", "--output", f"docker-archive:{arch}:localhost/forpodman:latest", ctx)
    import tempfile

    root = tmp_path / "proot"
    runroot = tempfile.mkdtemp(prefix="prun-")  # podman wants a run root under 50 characters
    conf = tmp_path / "containers.conf"
    from buildtools import CONTAINERS_CONF

    conf.write_text(CONTAINERS_CONF)
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    podman = [need("podman"), "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]
    try:
        p = subprocess.run(podman + ["load", "-i", str(arch)], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        p = subprocess.run(podman + ["run", "--rm", "--network", "none", "localhost/forpodman:latest"],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "podman-ok\n"
    finally:
        import shutil

        release_all(lambda: subprocess.run(podman + ["rm", "-a", "-f", "-t", "0"], capture_output=True, env=env),
                    lambda: subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True, env=env),
                    lambda: unmount_under(str(root), str(runroot)), lambda: shutil.rmtree(runroot, ignore_errors=True))


def test_cache_reuses_only_unchanged_steps(pallet, tmp_path):
    df = ("FROM localhost/busybox:v1\nARG V=1\nRUN echo $V $(date +%s%N) > /stamp\nCOPY f.txt /f.txt\n"
          "RUN cat /f.txt /stamp > /both\nENV E=1\n")
    ctx = _ctx(tmp_path, df, {"f.txt": "one"})
    pallet("build", "-t", "c1", ctx)
    first = pallet.tree("c1")
    out = pallet("build", "-t", "c2", ctx).stdout
    assert out.count("Using cache") == 3
    assert pallet.tree("c2") == first
    # the copied file's content changed: the COPY and what follows run again, the first RUN does not
    (tmp_path / "ctx" / "f.txt").write_text("two")
    out = pallet("build", "-t", "c3", ctx).stdout
    assert out.count("Using cache") == 1
    t3 = pallet.tree("c3")
    assert t3["/stamp"] == first["/stamp"] and t3["/both"] != first["/both"]
    # a build argument changes the RUN that sees it
    out = pallet("build", "--build-arg", "V=2", "-t", "c4", ctx).stdout
    assert "Using cache" not in out
    # --no-cache runs everything
    out = pallet("build", "--no-cache", "-t", "c5", ctx).stdout
    assert "Using cache" not in out
    _clean(pallet)


def test_same_inputs_same_digest_with_timestamp(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo hi > /x && mkdir /d\nCOPY f /d/\nENV A=b\n",
               {"f": "data"})
    digests = []
    for i in range(2):
        pallet("build", "--no-cache", "--timestamp", "1700000000", "-t", f"r{i}", ctx)
        digests.append(pallet.manifest(f"r{i}")[1])
    assert digests[0] == digests[1]
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    pallet("build", "--no-cache", "-t", "r2", ctx, env=env)
    assert pallet.config("r2")["created"] == "2023-11-14T22:13:20Z"
    _clean(pallet)


def test_secret_never_lands_in_the_image(pallet, tmp_path):
    secret = b"s3cr3t-" + os.urandom(8).hex().encode()
    (tmp_path / "secret").write_bytes(secret)
    df = ("FROM localhost/busybox:v1\n"
          "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && wc -c < /run/secrets/tok > /len\n"
          "RUN --mount=type=secret,id=tok,target=/etc/tok cp /etc/tok /tmp/copy && rm /tmp/copy\n")
    ctx = _ctx(tmp_path, df)
    pallet("build", "--secret", f"id=tok,src={tmp_path / 'secret'}", "--format", "docker", "-t", "sec", ctx)
    tree = pallet.tree("sec")
    assert tree["/len"][0] == "f"
    assert "/run/secrets/tok" not in tree and "/etc/tok" not in tree
    blobs = pallet.layer_blobs("sec")
    for b in blobs:
        with open(b, "rb") as f:
            assert secret not in gzip.decompress(f.read())
    s = pallet.store()
    rec = s.image("sec")
    with s.open_blob(rec["config"]) as f:
        assert secret not in f.read()
    with s.open_blob(rec["digest"]) as f:
        assert secret not in f.read()
    # a required secret that is missing is a clear error
    p = pallet("build", "-t", "nosec", _ctx(tmp_path, "FROM localhost/busybox:v1\n"
                                                      "RUN --mount=type=secret,id=x,required=true true\n"), check=False)
    assert p.returncode == 125 and "secret required but no secret with id x found" in p.stderr
    _clean(pallet)


def test_heredocs_link_onbuild_as_docker_documents(pallet, tmp_path):
    parent = ("FROM localhost/busybox:v1\n"
              "ONBUILD RUN echo fired > /onbuild.txt\n"
              "ONBUILD COPY trigger.txt /trigger.txt\n")
    pallet("build", "--format", "docker", "-t", "parent", _ctx(tmp_path, parent, {"trigger.txt": "t"}))
    assert pallet.config("parent")["config"]["OnBuild"] == ["RUN echo fired > /onbuild.txt",
                                                            "COPY trigger.txt /trigger.txt"]
    child = ("FROM localhost/parent\n"
             "ARG WHO=docs\n"
             "RUN <<EOF\n"
             "echo one > /h1\n"
             "echo two >> /h1\n"
             "EOF\n"
             "RUN cat <<EOT > /h2\n"
             "hello $WHO\n"
             "EOT\n"
             "COPY <<EOF /etc/greeting\n"
             "hi $WHO\n"
             "EOF\n"
             "COPY <<'EOF' /literal\n"
             "$WHO stays\n"
             "EOF\n"
             "COPY --link --chmod=700 trigger.txt /linked/\n")
    pallet("build", "--format", "docker", "-t", "child", _ctx(tmp_path, child))
    cfg = pallet.config("child")
    assert not cfg["config"].get("OnBuild")  # triggers fire once, not in grandchildren
    path = pallet("image", "mount", "child").stdout.strip()
    try:
        def read(p):
            with open(path + p) as f:
                return f.read()

        assert read("/onbuild.txt") == "fired\n" and read("/trigger.txt") == "t"
        assert read("/h1") == "one\ntwo\n" and read("/h2") == "hello docs\n"
        assert read("/etc/greeting") == "hi docs\n" and read("/literal") == "$WHO stays\n"
        assert oct(os.stat(path + "/linked/trigger.txt").st_mode & 0o777) == "0o700"
    finally:
        pallet("image", "umount", "child")
    _clean(pallet)


def test_heredoc_forms_real_dockerfiles_use(pallet, tmp_path):
    """The heredoc forms of Docker's documentation that real Dockerfiles use (buildah 1.28 has
    none): a script of several lines, ``<<-`` stripping leading tabs, a heredoc as a program's
    stdin, two in one RUN, a quoted delimiter (no expansion), two files in one COPY."""
    df = ("FROM localhost/busybox:v1\n"
          "ARG WHO=docs\n"
          "RUN <<EOF\n"
          "set -e\n"
          "mkdir -p /etc/app\n"
          "echo \"$WHO script\" > /etc/app/script.txt\n"
          "EOF\n"
          "RUN <<-EOT sh\n"
          "\techo tabs stripped > /etc/app/tabs.txt\n"
          "\tEOT\n"
          "RUN cat <<A > /etc/app/a.txt && cat <<B > /etc/app/b.txt\n"
          "first $WHO\n"
          "A\n"
          "second\n"
          "B\n"
          "RUN <<'EOF'\n"
          "echo '$WHO' > /etc/app/literal.txt\n"
          "EOF\n"
          "COPY <<-one <<two /etc/app/files/\n"
          "\tfirst file\n"
          "\tone\n"
          "second file $WHO\n"
          "two\n")
    pallet("bud", "-t", "heredocs", _ctx(tmp_path, df))
    path = pallet("image", "mount", "heredocs").stdout.strip()
    try:
        got = {}
        for d, _, files in os.walk(path + "/etc/app"):
            for n in files:
                with open(os.path.join(d, n)) as f:
                    got[os.path.relpath(os.path.join(d, n), path + "/etc/app")] = f.read()
    finally:
        pallet("image", "umount", "heredocs")
    assert got == {"script.txt": "docs script\n", "tabs.txt": "tabs stripped\n", "a.txt": "first docs\n",
                   "b.txt": "second\n", "literal.txt": "$WHO\n", "files/one": "first file\n",
                   "files/two": "second file docs\n"}
    _clean(pallet)


def test_run_network_none_and_build_volume(pallet, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in").write_text("from host")
    df = ("FROM localhost/busybox:v1\n"
          "RUN --network=none ip link | grep -c ': ' > /links || cat /proc/net/dev | wc -l > /links\n"
          "RUN cp /hostvol/in /copied\n")
    pallet("build", "-v", f"{vol}:/hostvol:ro", "-t", "netvol", _ctx(tmp_path, df))
    tree = pallet.tree("netvol")
    assert "/copied" in tree and "/hostvol/in" not in tree
    _clean(pallet)


def test_squash_and_squash_all(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo a > /a\nRUN echo b > /b\nENV X=1\n")
    pallet("build", "--squash", "-t", "sq", ctx)
    assert len(pallet.config("sq")["rootfs"]["diff_ids"]) == 2  # the base's layer + one new
    pallet("build", "--squash-all", "-t", "sqa", ctx)
    assert len(pallet.config("sqa")["rootfs"]["diff_ids"]) == 1
    assert {"/a", "/b", "/bin/sh"} <= set(pallet.tree("sqa"))
    pallet("build", "--layers=false", "-t", "nolayers", ctx)
    assert len(pallet.config("nolayers")["rootfs"]["diff_ids"]) == 2
    # one layer for the stage: every instruction keeps its history entry, in order, and the
    # last one owns the layer (buildah's layout)
    assert [(h["created_by"], h.get("empty_layer", False)) for h in pallet.config("nolayers")["history"][1:]] == [
        ("/bin/sh -c echo a > /a", True), ("/bin/sh -c echo b > /b", True), ("/bin/sh -c #(nop) ENV X=1", False)]
    # buildah's --squash (bud's) is podman's --squash-all: the base's layers too
    pallet("bud", "--squash", "-t", "budsq", ctx)
    cfg = pallet.config("budsq")
    assert len(cfg["rootfs"]["diff_ids"]) == 1 and [h.get("empty_layer", False) for h in cfg["history"]] == [
        True, True, False]
    _clean(pallet)


def _images(pallet) -> set:
    return {r["id"] for r in pallet.store().images()}


@pytest.mark.parametrize("dockerfile,files,needle,code", [
    ("FROM localhost/busybox:v1\nRUN true\nFOO bar\n", {}, "Dockerfile:3: unknown instruction: FOO", 125),
    ("FROM localhost/busybox:v1\nRUN <<EOF\nnever closed\n", {}, "Dockerfile:", 125),
    ("FROM localhost/busybox:v1\nCOPY missing.txt /\n", {}, "'missing.txt': no such file or directory in the build "
     "context (Dockerfile:2)", 125),
    ("FROM localhost/busybox:v1\nCOPY secret.key /\n", {"secret.key": "k", ".dockerignore": "*.key\n"},
     "filtered out using", 125),
    ("FROM localhost/busybox:v1\nRUN echo ok > /ok\nRUN exit 3\n", {},
     "building at STEP \"RUN exit 3\": exit status 3 (Dockerfile:3)", 3),
    ("FROM localhost/busybox:v1\nCOPY --from=nosuchstage /x /y\n", {}, "--from=nosuchstage", 125),
    ("FROM localhost/busybox:v1\nRUN echo $LATER > /x\nARG LATER=1\n", {}, "$LATER is used before its ARG", 125),
    ("FROM localhost/busybox:v1\nCOPY a b /notadir\n", {"a": "", "b": ""}, "must be a directory", 125),
    ("RUN true\n", {}, "Dockerfile:1: RUN before the first FROM", 125),
    ("FROM localhost/busybox:v1\nADD --checksum=sha256:00 http://127.0.0.1:1/x /x\n", {},
     "Dockerfile:2: ADD --checksum is not supported by pallet yet", 125),
    ("FROM localhost/busybox:v1\nRUN --mount=type=cache,target=/c,sharing=private true\n", {},
     "sharing=private", 125),
    # hostile Dockerfiles and contexts seen in the wild (issue 16)
    ("FROM localhost/busybox:v1\nRUN echo " + "x" * (10 << 20) + "\n", {}, "Dockerfile:2: dockerfile line greater "
     "than max allowed size", 125),
    ("FROM localhost/busybox:v1\nCOPY ../outside /x\n", {}, "possible escaping context directory error", 125),
    ("FROM localhost/busybox:v1\nADD http://127.0.0.1:1/app.tar.gz /opt/\n", {},
     'building at STEP "ADD http://127.0.0.1:1/app.tar.gz /opt/": reading "http://127.0.0.1:1/app.tar.gz": '
     "connection refused (Dockerfile:2)", 125),
])
def test_bad_input_is_one_clear_line_and_leaves_nothing(pallet, tmp_path, dockerfile, files, needle, code):
    before = _images(pallet)
    p = pallet("build", "--layers=false", "-t", "bad", _ctx(tmp_path, dockerfile, files), check=False)
    assert p.returncode == code, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(err) == 1 and needle in err[0], p.stderr
    assert "Traceback" not in p.stderr
    _clean(pallet)
    assert _images(pallet) == before


def test_context_symlinks_leading_out_of_it_are_missing(pallet, tmp_path):
    """A symlink in the context is followed inside the context, never out of it (buildah's
    copier): ``COPY link`` of ``link -> /etc/shadow`` or through ``dir -> /etc``, and a RUN
    bind mount of them, are missing sources, each one line naming it; a link inside the
    context is followed, and a directory copy keeps links as links."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "real").write_text("in the context")
    os.symlink(str(host / "secret"), ctx / "abs")
    os.symlink("../host/secret", ctx / "rel")
    os.symlink(str(host), ctx / "dir")
    os.symlink("real", ctx / "good")
    before = _images(pallet)
    for step, needle in [("COPY abs /x", "abs is a symbolic link to"), ("COPY rel /x", "rel is a symbolic link to"),
                         ("COPY a* /x/", "abs is a symbolic link to"), ("COPY dir/secret /x", "dir is a symbolic "
                                                                        "link to"),
                         ("RUN --mount=type=bind,source=abs,target=/s cat /s", "--mount=type=bind: abs: no such file"),
                         ("RUN --mount=type=bind,source=dir,target=/d cat /d/secret", "dir: no such file")]:
        (ctx / "Dockerfile").write_text(f"FROM localhost/busybox:v1\n{step}\n")
        p = pallet("build", "--layers=false", "-t", "out", str(ctx), check=False)
        assert p.returncode == 125, p.stderr
        err = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
        assert len(err) == 1 and needle in err[0] and "no such file or directory" in err[0], p.stderr
        assert "host secret" not in p.stdout + p.stderr
    assert _images(pallet) == before
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nCOPY good /followed\n"
                                    "RUN --mount=type=bind,source=good,target=/g cp /g /bound\nCOPY . /all/\n")
    pallet("build", "--layers=false", "-t", "links", str(ctx))
    tree = pallet.tree("links")
    assert tree["/followed"][0] == "f" and tree["/bound"][0] == "f"
    assert tree["/all/abs"] == ("l", "0o777", 0, 0, str(host / "secret")) and tree["/all/good"][4] == "real"
    _clean(pallet)


def test_special_files_in_the_context_never_block_the_build(pallet, tmp_path):
    """A FIFO named .dockerignore is one line (its rules cannot be read without waiting for
    a writer: buildah blocks there forever); a FIFO among the context's files is copied as
    a FIFO, never read."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.mkfifo(ctx / ".dockerignore")
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nCOPY . /c/\n")
    before = _images(pallet)
    p = subprocess.run(pallet.args("build", "-t", "fifo", str(ctx)), capture_output=True, text=True, timeout=120,
                       env=pallet.env())
    assert p.returncode == 125 and p.stderr.strip() == f"Error: {ctx}/.dockerignore: not a regular file: ignore " \
        "rules are read from a text file", p.stderr
    assert _images(pallet) == before
    os.unlink(ctx / ".dockerignore")
    os.mkfifo(ctx / "pipe")
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nCOPY . /c/\nADD pipe /added\n")
    subprocess.run(pallet.args("build", "-q", "-t", "fifo", str(ctx)), check=True, capture_output=True, timeout=120,
                   env=pallet.env())
    tree = pallet.tree("fifo")
    assert tree["/c/pipe"][0] == "o" and tree["/added"][0] == "o"
    _clean(pallet)


def test_each_dockerfile_of_several_has_its_own_directives(pallet, tmp_path):
    """Several -f files are one Dockerfile, but each one's parser directives are checked as
    buildah parses each file first: a bad escape in the second names that file."""
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\n", {"Dockerfile2": "# escape=|\\nFROM localhost/busybox:v1\n"})
    p = pallet("build", "-f", f"{ctx}/Dockerfile", "-f", f"{ctx}/Dockerfile2", ctx, check=False)
    assert p.returncode == 125 and p.stderr.startswith(f"Error: parsing additional Dockerfile {ctx}/Dockerfile2: "
                                                       "invalid ESCAPE"), p.stderr
    assert len(p.stderr.splitlines()) == 1
    _clean(pallet)


def test_sigint_stops_a_build_started_with_it_ignored(pallet, tmp_path):
    """A build a script started in the background (`pallet build ... &`: the shell makes it
    ignore SIGINT) still stops on kill -INT, as buildah does (buildah's "build interruption"):
    the RUN step ends, the next never starts, nothing is left behind."""
    import signal

    from conftest import wait_for

    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo sta\"\"rted > /dev/stderr; sleep 300\n"
                         "RUN echo not fully killed\n")
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(pallet.args("build", "--layers=false", ctx), stdout=out, stderr=subprocess.STDOUT,
                                env=pallet.env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        wait_for(lambda: "started" in log.read_text(), 120, "the RUN step to start")  # its output, never the STEP line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "not fully killed" not in text and "Error: interrupted" in text, text
    _clean(pallet)


def test_unknown_target_and_failed_cached_build_cleanup(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1 AS a\nRUN echo 1 > /one\nRUN exit 9\n")
    p = pallet("build", "--target", "nope", "-t", "x", ctx, check=False)
    assert p.returncode == 125 and "target stage 'nope' could not be found" in p.stderr
    p = pallet("build", "-t", "x", ctx, check=False)  # layers on: the first RUN stays as a cache entry
    assert p.returncode == 9
    _clean(pallet)
    assert not any("localhost/x:latest" in r["names"] for r in pallet.store().images())


def test_build_and_commit_on_the_vfs_driver(tmp_path, base):
    s = PalletStore(str(tmp_path / "vstore"), "vfs")
    try:
        s("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
        ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN rm /bin/vi && echo v > /v\nCOPY f /f\n", {"f": "x"})
        s("build", "-t", "onvfs", ctx)
        tree = s.tree("onvfs")
        assert "/bin/vi" not in tree and tree["/v"][0] == "f" and tree["/f"][0] == "f"
        ctr = s("builder", "from", "onvfs").stdout.strip()
        s("builder", "run", ctr, "--", "rm", "/v")
        s("builder", "commit", "--rm", ctr, "onvfs2")
        assert "/v" not in s.tree("onvfs2")
        assert s.containers() == [] and s.mounts() == []
    finally:
        s.unmount_all()


def test_add_from_a_url(pallet, tmp_path, http_dir):
    served, url = http_dir
    (served / "tool.txt").write_text("downloaded\n")
    ctx = _ctx(tmp_path, f"FROM localhost/busybox:v1\nADD {url}/tool.txt /opt/\nADD --chmod=644 {url}/tool.txt /t2\n")
    pallet("build", "-t", "fromurl", ctx)
    tree = pallet.tree("fromurl")
    assert tree["/opt/tool.txt"][1] == oct(0o600)  # Docker's mode for a downloaded file
    assert tree["/t2"][1] == oct(0o644)
    p = pallet("build", "-t", "x", _ctx(tmp_path, f"FROM localhost/busybox:v1\nADD {url}/missing /m\n"), check=False)
    assert p.returncode == 125 and "ADD" in p.stderr and p.stderr.count("\n") == 1
    _clean(pallet)


def test_builder_commit_to_a_transport(pallet, tmp_path, registry):
    """buildah commit CTR docker://... / oci:DIR:TAG: the image goes there (skopeo reads
    it), and the store keeps no extra image."""
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    pallet("builder", "run", ctr, "--", "sh", "-c", "echo committed > /c")
    before = {r["id"] for r in pallet.store().images()}
    skopeo = need("skopeo")
    ref = f"{registry.host}/build/commit-to:t1"
    layout = str(tmp_path / "oci")
    for dest, inspect in ((f"docker://{ref}", [f"docker://{ref}", "--tls-verify=false"]),
                          (f"oci:{layout}:t2", [f"oci:{layout}:t2"]),
                          (f"dir:{tmp_path / 'd'}", [f"dir:{tmp_path / 'd'}"])):
        iid = pallet("builder", "commit", "--tls-verify=false", "--format", "docker", ctr, dest).stdout.strip()
        cfg = json.loads(subprocess.run([skopeo, "inspect", "--config", *inspect], capture_output=True, text=True,
                                        check=True).stdout)
        raw = json.loads(subprocess.run([skopeo, "inspect", "--raw", *inspect], capture_output=True, text=True,
                                        check=True).stdout)
        assert raw["config"]["digest"] == "sha256:" + iid
        assert len(cfg["rootfs"]["diff_ids"]) == 2 and cfg["history"][-1]["created_by"]
        assert {r["id"] for r in pallet.store().images()} == before
    p = pallet("builder", "commit", ctr, "oci:", check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and "internal error" not in p.stderr
    pallet("builder", "commit", "--rm", ctr, "local:localhost/kept:1")
    assert pallet.store().image("kept:1")


def test_builder_copy_chown_forms(pallet, tmp_path):
    """--chown as buildah reads it (and the corpus case copy_chown_forms checks for COPY/ADD):
    a UID alone is the GID too, even when passwd gives that UID another primary group."""
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    pallet("builder", "run", ctr, "--", "sh", "-c", "echo app:x:1500:1600::/:/bin/sh >> /etc/passwd && "
           "echo grp:x:1700: >> /etc/group")
    (tmp_path / "f").write_text("f")
    for spec, want in (("1500", (1500, 1500)), ("4242", (4242, 4242)), ("app", (1500, 1600)),
                       ("1500:1700", (1500, 1700)), ("app:grp", (1500, 1700)), ("1500:grp", (1500, 1700)),
                       ("app:1700", (1500, 1700))):
        pallet("builder", "copy", "--chown", spec, ctr, str(tmp_path / "f"), f"/o-{spec.replace(':', '-')}")
        mnt = pallet("builder", "mount", ctr).stdout.strip()
        st = os.lstat(os.path.join(mnt, f"o-{spec.replace(':', '-')}"))
        assert (st.st_uid, st.st_gid) == want, spec
    for spec, needle in (("nosuch", "nosuch"), ("app:nogroup", "nogroup"), ("1500:nogroup", "nogroup"),
                         ("99999999999", "out of range")):
        p = pallet("builder", "copy", "--chown", spec, ctr, str(tmp_path / "f"), "/x", check=False)
        assert p.returncode != 0 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        ctx = _ctx(tmp_path, "FROM busybox:v1\nRUN echo app:x:1500:1600::/:/bin/sh >> /etc/passwd\n"
                             f"COPY --chown={spec} f /x\n", {"f": "f"})
        p = pallet("build", ctx, check=False)
        assert p.returncode != 0 and needle in p.stderr and "Dockerfile:3" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    pallet("builder", "rm", ctr)


def test_format_is_part_of_the_step_cache_key(pallet, tmp_path):
    """A step cached by an OCI build is not reused by a --format docker build (buildah checks
    an intermediate image's manifest type): its intermediate images are docker ones."""
    ctx = _ctx(tmp_path, "FROM busybox:v1\nRUN echo a > /a\nRUN echo b > /b\n")
    pallet("build", "-q", "-t", "fmt-oci", ctx)
    p = pallet("build", "--format", "docker", "-t", "fmt-docker", ctx)
    assert "Using cache" not in p.stdout
    assert pallet.manifest("fmt-oci")[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert pallet.manifest("fmt-docker")[0]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    p = pallet("build", "--format", "docker", "-t", "fmt-docker2", ctx)
    assert "Using cache" in p.stdout  # the same format is still cached


def test_stage_ending_in_workdir(pallet, tmp_path):
    """A WORKDIR that makes a directory owns the layer holding it (no made-up history entry);
    one whose directory exists adds no layer."""
    ctx = _ctx(tmp_path, "FROM busybox:v1\nRUN echo a > /a\nWORKDIR /neu/sub\n")
    pallet("build", "-q", "-t", "wd-new", ctx)
    cfg = pallet.config("wd-new")
    assert len(cfg["rootfs"]["diff_ids"]) == 3
    assert [(h["created_by"], h.get("empty_layer", False)) for h in cfg["history"][1:]] == [
        ("/bin/sh -c echo a > /a", False), ("/bin/sh -c #(nop) WORKDIR /neu/sub", False)]
    assert pallet.tree("wd-new")["/neu/sub"][0] == "d"
    ctx = _ctx(tmp_path, "FROM busybox:v1\nRUN echo b > /b\nWORKDIR /bin\n")
    pallet("build", "-q", "-t", "wd-old", ctx)
    cfg = pallet.config("wd-old")
    assert len(cfg["rootfs"]["diff_ids"]) == 2 and cfg["history"][-1]["empty_layer"] is True
    assert cfg["config"]["WorkingDir"] == "/bin"


def test_builder_config_env_moves_a_reset_variable_last(pallet):
    """buildah config --env K=V moves K to the end (a Dockerfile's ENV too, the first time it
    sets a variable of the stage's base image: see test_env_order_is_buildahs)."""
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    pallet("builder", "config", "--env", "A=1", "--env", "B=2", ctr)
    pallet("builder", "config", "--env", "A=3", ctr)
    pallet("builder", "commit", "--rm", ctr, "envorder")
    assert pallet.config("envorder")["config"]["Env"] == ["PATH=/bin", "B=2", "A=3"]


def test_env_order_is_buildahs(pallet, tmp_path):
    """An ENV setting a variable of the stage's base image moves it to the end (buildah's and
    podman's order; Docker keeps its place), once: a variable the stage set already keeps
    its place, with or without --layers, and a later stage starts over from its base."""
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1 AS one\nENV A=1 B=2\nRUN true\nENV A=3\n"
                         "ENV PATH=/x C=4\nENV PATH=/y\nFROM one\nENV A=5\n")
    for layers in ("--layers=true", "--layers=false"):
        pallet("build", layers, "--target", "one", "-t", "envord1", ctx)
        assert pallet.config("envord1")["config"]["Env"] == ["A=3", "B=2", "PATH=/y", "C=4"]
        pallet("build", layers, "-t", "envord2", ctx)
        assert pallet.config("envord2")["config"]["Env"] == ["B=2", "PATH=/y", "C=4", "A=5"]


def test_dockerfile_and_builder_config_edit_the_config_alike(pallet, tmp_path):
    """One implementation of config edits (builder/config_edit.py): the same edits made by a
    Dockerfile and by `builder config` give the same config, and the same bad values are
    refused by both with the option or line named."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM localhost/busybox:v1\n"
        "ENV A=1 B=2\nLABEL l=v\nEXPOSE 8080 53/udp 7000-7010\nVOLUME /data\nUSER 1:2\nWORKDIR /srv\n"
        'STOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=3 CMD ["true"]\nONBUILD RUN true\n'
        'SHELL ["/bin/ash", "-c"]\nENTRYPOINT ["/bin/cat"]\nCMD ["/etc/hostname"]\n')
    pallet("build", "-q", "--format", "docker", "--layers=false", "-t", "from-dockerfile", str(ctx))
    ctr = pallet("builder", "from", "localhost/busybox:v1").stdout.strip()
    pallet("builder", "config", "--env", "A=1", "--env", "B=2", "--label", "l=v", "--port", "8080",
           "--port", "53/udp", "--port", "7000-7010", "--volume", "/data", "--user", "1:2", "--workingdir", "/srv",
           "--stop-signal", "SIGINT", "--healthcheck", '["CMD", "true"]', "--healthcheck-interval", "5s",
           "--healthcheck-retries", "3", "--onbuild", "RUN true", "--shell", '["/bin/ash", "-c"]',
           "--entrypoint", '["/bin/cat"]', "--cmd", '["/etc/hostname"]', ctr)
    pallet("builder", "commit", "--format", "docker", ctr, "from-builder")
    a, b = pallet.config("from-dockerfile")["config"], pallet.config("from-builder")["config"]
    assert a == b, (a, b)
    assert a["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}, "7000-7010/tcp": {}}
    assert a["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 3}
    for opt, value, needle in (("--port", "99999", "--port: invalid port '99999'"),
                               ("--stop-signal", "SIGBOGUS", "--stop-signal: invalid stop signal"),
                               ("--healthcheck-interval", "5 parsecs", "invalid --healthcheck-interval")):
        p = pallet("builder", "config", opt, value, ctr, check=False)
        assert p.returncode != 0 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nEXPOSE 99999\n")
    p = pallet("build", "-q", str(ctx), check=False)
    assert p.returncode != 0 and "invalid port '99999'" in p.stderr and "Dockerfile:2" in p.stderr, p.stderr


# -- issue 16: buildah inspect's layout, containers -a ------------------------------------

@pytest.fixture
def buildah(tmp_path, base):
    import shutil
    import tempfile

    root, runroot = str(tmp_path / "buildah-root"), tempfile.mkdtemp(prefix="bsr-")

    def run(*a, check=True):
        p = subprocess.run([need("buildah"), "--root", root, "--runroot", runroot, "--storage-driver", "vfs", *a],
                           capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"buildah {' '.join(a)} exited {p.returncode}: {p.stderr}")
        return p

    run("pull", "-q", f"oci:{base}:v1")
    run("tag", run("images", "-q").stdout.split()[0], "localhost/busybox:v1")
    yield run
    run("rm", "--all", check=False)
    run("rmi", "-a", "-f", check=False)
    subprocess.run(["umount", "-R", "-l", runroot], capture_output=True)
    shutil.rmtree(runroot, ignore_errors=True)


_BUILDAH_FIELDS = ("{{.Type}}|{{.FromImageID}}|{{.FromImageDigest}}|{{.Container}}|{{.OCIv1.Architecture}}|"
                   "{{.OCIv1.OS}}|{{.Docker.Architecture}}|{{.OCIv1.Config.Env}}|{{.OCIv1.Config.Cmd}}|"
                   "{{.Docker.Config.Cmd}}|{{.Docker.Config.Healthcheck}}|{{.OCIv1.Config.WorkingDir}}|"
                   "{{.OCIv1.Created}}|{{.OCIv1.RootFS.Type}} {{len .OCIv1.RootFS.DiffIDs}}|{{.Docker.Size}}|"
                   "{{len .History}}|{{range .OCIv1.History}}{{.CreatedBy}};{{end}}|{{.Docker.Config.Labels}}|"
                   "{{if .MountPoint}}mounted{{else}}not mounted{{end}}|{{printf \"%.12s\" .FromImageID}}")


def test_builder_inspect_has_buildahs_layout_for_containers_and_images(pallet, buildah):
    for tool in (pallet, buildah):
        (tool("builder", "from", "--name", "w", "localhost/busybox:v1") if tool is pallet
         else tool("from", "--name", "w", "localhost/busybox:v1"))
        (tool("builder", "config", "--env", "E=1", "--workingdir", "/srv", "w") if tool is pallet
         else tool("config", "--env", "E=1", "--workingdir", "/srv", "w"))
    for args in (["w"], ["--type", "container", "w"], ["--type", "image", "localhost/busybox:v1"],
                 ["localhost/busybox:v1"]):
        mine = pallet("builder", "inspect", "--format", _BUILDAH_FIELDS, *args).stdout
        theirs = buildah("inspect", "--format", _BUILDAH_FIELDS, *args).stdout
        assert mine == theirs, (args, mine, theirs)
    mine, theirs = (json.loads(t.stdout) for t in (pallet("builder", "inspect", "w"), buildah("inspect", "w")))
    assert list(mine) == list(theirs)  # the same keys in buildah's order
    for key in ("Type", "FromImageID", "FromImageDigest", "Container", "MountPoint", "OCIv1", "Docker", "History",
                "Isolation", "NamespaceOptions", "IDMappingOptions", "Capabilities", "Devices"):
        assert mine[key] == theirs[key], (key, json.dumps(mine[key]), json.dumps(theirs[key]))
    assert json.loads(mine["Manifest"]) == json.loads(theirs["Manifest"])
    img = [json.loads(t.stdout) for t in (pallet("builder", "inspect", "--type", "image", "localhost/busybox:v1"),
                                           buildah("inspect", "--type", "image", "localhost/busybox:v1"))]
    for key in ("Container", "ContainerID", "FromImageID", "OCIv1", "Docker", "Capabilities", "Devices"):
        assert img[0][key] == img[1][key], key
    assert json.loads(img[0]["Config"]) == json.loads(img[1]["Config"])
    bad = pallet("builder", "inspect", "--format", "{{.Nope}}", "w", check=False)
    assert bad.returncode == 125 and "can't evaluate field Nope in type buildah.Builder" in bad.stderr
    gone = pallet("builder", "inspect", "--type", "container", "localhost/busybox:v1", check=False)
    assert gone.returncode == 125 and gone.stderr.count("\n") == 1
    pallet("builder", "rm", "w")


def test_builder_containers_all_lists_a_builds_containers_too(pallet, tmp_path):
    from conftest import wait_for

    v = tmp_path / "v"
    v.mkdir()
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN while [ ! -e /v/go ]; do sleep 0.05; done\n")
    pallet("builder", "from", "--name", "mine", "localhost/busybox:v1")
    proc = subprocess.Popen(pallet.args("build", "-v", f"{v}:/v", "-t", "held", ctx), env=pallet.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(pallet.store().containers()) == 2, timeout=60, what="the build's step container")
        assert pallet("builder", "containers", "--format", "{{.ContainerName}}|{{.Builder}}").stdout == "mine|   *\n"
        lines = pallet("builder", "containers", "-a", "--format",
                       "{{.ContainerName}}|{{.Builder}}|{{.ImageName}}").stdout.splitlines()
        assert lines[0] == "mine|   *|localhost/busybox:v1" and len(lines) == 2, lines
        assert lines[1].endswith("|    |localhost/busybox:v1"), lines
        table = pallet("builder", "containers", "-a").stdout.splitlines()
        assert len(table) == 3 and table[0].split()[:2] == ["CONTAINER", "ID"]
        assert len(pallet("builder", "containers", "-a", "-q").stdout.split()) == 2
        assert [c["builder"] for c in json.loads(pallet("builder", "containers", "-a", "--json").stdout)] == [True, False]
    finally:
        (v / "go").touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    pallet("builder", "rm", "mine")
