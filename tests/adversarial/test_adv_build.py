"""Attacks on pallet build and pallet builder: the trust policy bypassed by FROM (issue
14.4), hostile Dockerfiles for the Go parser (14.5), bad STOPSIGNALs (14.13), and input that
used to end in "internal error" (13.8, 14.11)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from buildtools import base, pallet  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("isolated")]


def _ctx(tmp_path, dockerfile: str | bytes, files: dict | None = None, name: str = "ctx") -> str:
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_bytes(dockerfile if isinstance(dockerfile, bytes) else dockerfile.encode())
    for n, data in (files or {}).items():
        (ctx / n).write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(ctx)


def _one_line_error(p, *needles, code=None):
    err = p.stderr.strip()
    assert p.returncode != 0, p.stdout + p.stderr
    if code is not None:
        assert p.returncode == code, (p.returncode, err)
    assert len(err.splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err and "goroutine" not in err, err
    for n in needles:
        assert n in err, err


# -- 14.4: the trust policy applies to every image that comes in ----------------------------

def _policy(tmp_path, name: str, doc: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def policies(tmp_path):
    key = tmp_path / "key.gpg"
    key.write_bytes(b"not a key anybody signed with")
    signed = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}
    return {
        "reject": _policy(tmp_path, "reject.json", {"default": [{"type": "reject"}]}),
        "signed": _policy(tmp_path, "signed.json", {"default": [signed]}),
    }


def _no_image_but_base(pallet):
    names = [n for rec in pallet.store().images() for n in rec["names"]]
    assert names == ["localhost/busybox:v1"], names


@pytest.mark.parametrize("kind", ["reject", "signed"])
def test_every_ingest_path_checks_the_policy(pallet, tmp_path, base, policies, kind):
    pol = policies[kind]
    words = "rejected by the policy" if kind == "reject" else "requires signatures"
    src = f"oci:{base}:v1"
    archive = str(tmp_path / "a.tar")
    pallet("save", "--format", "docker-archive", "-o", archive, "busybox:v1")
    pallet("rmi", "busybox:v1")
    pallet("copy", src, "local:localhost/busybox:v1")  # no policy file: accepted (the machine's is permissive)
    from_ctx = _ctx(tmp_path, f"FROM {src}\nRUN true\n", name="from")
    copy_ctx = _ctx(tmp_path, f"FROM busybox:v1\nCOPY --from={src} /bin/busybox /bb\n", name="cpfrom")
    for args in (("--policy", pol, "pull", src),
                 ("--policy", pol, "copy", src, "local:localhost/other:v1"),
                 ("--policy", pol, "load", "-i", archive),
                 ("build", "--signature-policy", pol, from_ctx),
                 ("--policy", pol, "build", from_ctx),
                 ("build", "--signature-policy", pol, copy_ctx),
                 ("builder", "from", "--signature-policy", pol, src),
                 ("--policy", pol, "builder", "from", src)):
        p = pallet(*args, check=False)
        _one_line_error(p, words, pol)
        assert pallet("builder", "containers", "-q").stdout.strip() == ""
    _no_image_but_base(pallet)
    # the same verbs pass without the policy: the refusals above came from it
    pallet("build", "-q", from_ctx)
    pallet("builder", "from", src)


def test_registry_from_checks_the_policy_per_scope(pallet, tmp_path, registry, policies):
    ref = f"{registry.host}/adv-build/policy:v1"
    pallet("push", "--tls-verify=false", "busybox:v1", f"docker://{ref}")
    ctx = _ctx(tmp_path, f"FROM {ref}\nRUN true\n")
    scoped = _policy(tmp_path, "scoped.json", {"default": [{"type": "insecureAcceptAnything"}],
                                               "transports": {"docker": {registry.host: [{"type": "reject"}]}}})
    for pol in (policies["reject"], policies["signed"], scoped):
        p = pallet("build", "--tls-verify=false", "--signature-policy", pol, ctx, check=False)
        _one_line_error(p, ref, pol)
        p = pallet("builder", "from", "--tls-verify=false", "--signature-policy", pol, ref, check=False)
        _one_line_error(p, ref, pol)
    _no_image_but_base(pallet)
    pallet("build", "-q", "--tls-verify=false", ctx)


# -- 13.8 and 14.11: a secret not given, bad mount numbers, a bad .dockerignore pattern -----

def test_secret_mount_without_secret_runs_without_it(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox:v1\n"
                         "RUN --mount=type=secret,id=X test ! -e /run/secrets/X && echo absent > /r\n")
    pallet("build", "-q", "-t", "nosecret", ctx)
    assert pallet.tree("nosecret")["/r"][0] == "f"
    req = _ctx(tmp_path, "FROM busybox:v1\nRUN --mount=type=secret,id=X,required=true cat /run/secrets/X\n",
               name="req")
    _one_line_error(pallet("build", req, check=False), "with id X found", "required", "Dockerfile:2")  # buildah's words
    # given, it is there (and the same step without it is not taken from the cache)
    (tmp_path / "s").write_text("sesame")
    ctx2 = _ctx(tmp_path, "FROM busybox:v1\nRUN --mount=type=secret,id=X cat /run/secrets/X > /got\n", name="given")
    pallet("build", "-q", "--secret", f"id=X,src={tmp_path / 's'}", "-t", "given", ctx2)
    assert pallet.tree("given")["/got"][0] == "f"


@pytest.mark.parametrize("mount, needle", [
    ("type=secret,id=X,mode=zz", "mode=zz"),
    ("type=secret,id=X,uid=-5", "uid=-5"),
    ("type=secret,id=X,gid=4294967296", "gid=4294967296"),
    ("type=cache,target=/c,mode=99", "mode=99"),
    ("type=cache,target=/c,uid=-5", "uid=-5"),
    ("type=cache,target=/c,gid=x", "gid=x"),
])
def test_bad_mount_numbers_are_one_line(pallet, tmp_path, mount, needle):
    ctx = _ctx(tmp_path, f"FROM busybox:v1\nRUN --mount={mount} true\n")
    _one_line_error(pallet("build", ctx, check=False), needle, "Dockerfile:2")


def test_bad_dockerignore_pattern_is_one_line(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox:v1\nCOPY . /c/\n", {".dockerignore": "ok\n[z-a]\n", "f": "x"})
    _one_line_error(pallet("build", ctx, check=False), ".dockerignore:2", "[z-a]")


# -- 14.13: STOPSIGNAL names a real signal --------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGBOGUS", "BOGUS", "0", "65", "-1", "RTMIN+31", "RTMAX-31", "SIG", "9x", ""])
def test_bad_stop_signal_is_refused(pallet, tmp_path, sig):
    ctx = _ctx(tmp_path, f"FROM busybox:v1\nARG S={sig}\nSTOPSIGNAL ${{S}}x\n".replace("${S}x", "$S"))
    _one_line_error(pallet("build", ctx, check=False), "invalid stop signal", "Dockerfile:3")
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    _one_line_error(pallet("builder", "config", "--stop-signal", sig, ctr, check=False), "--stop-signal")


def test_good_stop_signals_are_kept_as_written(pallet, tmp_path):
    for sig in ("SIGTERM", "kill", "sigusr1", "9", "64", "RTMIN", "RTMIN+3", "SIGRTMAX-2"):
        ctx = _ctx(tmp_path, f"FROM busybox:v1\nSTOPSIGNAL {sig}\n")
        pallet("build", "-q", "-t", "s", ctx)
        assert pallet.config("s")["config"]["StopSignal"] == sig


# -- 14.5: what crashes the Go parser never reaches it -------------------------------------

@pytest.mark.parametrize("text, needles", [
    (b"FROM busybox:v1\nRUN echo \xff\xfe\n", ("Dockerfile:2", "not valid UTF-8", "0xff")),
    (b"FROM busybox:v1\nLABEL a=b\nRUN echo a\x00b\n", ("Dockerfile:3", "NUL")),
    (b"FROM busybox:v1\nRUN <<EOF\n" + b"x\n" * 100_001, ("Dockerfile", "lines")),
])
def test_dockerfile_the_go_parser_cannot_take_is_one_line(pallet, tmp_path, text, needles):
    ctx = _ctx(tmp_path, text)
    p = pallet("build", ctx, check=False)
    _one_line_error(p, *needles)
    assert p.returncode not in (2, 134) and p.returncode > 0


def _with_onbuild(layout: str, tag: str, trigger_json: str) -> None:
    """Give the image ``tag`` of an OCI layout an ``OnBuild`` list written as raw JSON text
    (so it can hold escapes such as a lone surrogate that no tool would write)."""
    import hashlib

    def blob(d):
        return os.path.join(layout, "blobs", *d.split(":"))

    def put(data: bytes) -> str:
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(blob(d), "wb") as f:
            f.write(data)
        return d

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    with open(blob(desc["digest"])) as f:
        manifest = json.load(f)
    with open(blob(manifest["config"]["digest"]), "rb") as f:
        config = f.read()
    config = config.replace(b'"config": {', b'"config": {"OnBuild": ' + trigger_json.encode() + b", ", 1)
    assert b"OnBuild" in config
    manifest["config"]["digest"], manifest["config"]["size"] = put(config), len(config)
    raw = json.dumps(manifest).encode()
    desc["digest"], desc["size"] = put(raw), len(raw)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def test_onbuild_trigger_with_invalid_utf8_is_one_line(pallet, tmp_path, base):
    import shutil

    layout = str(tmp_path / "trig")
    shutil.copytree(base, layout)
    _with_onbuild(layout, "v1", '["RUN echo \\ud800 \\udcff"]')
    pallet("copy", f"oci:{layout}:v1", "local:localhost/trigger:v1")
    ctx = _ctx(tmp_path, "FROM trigger:v1\nRUN true\n")
    p = pallet("build", ctx, check=False)
    _one_line_error(p, "ONBUILD", "not valid UTF-8", "U+D800")
    assert p.returncode not in (2, 134)


def test_config_values_that_are_not_utf8_are_written_as_go_writes_them(pallet):
    """A byte that is not UTF-8 in argv (``builder config --onbuild``/``--label``) used to end
    the commit in "internal error: UnicodeEncodeError"; Go's json.Marshal writes U+FFFD."""
    ctr = pallet("builder", "from", "busybox:v1").stdout.strip()
    bad = b"RUN echo \xff".decode("utf-8", "surrogateescape")
    r = subprocess.run(pallet.args("builder", "config", "--onbuild", bad, "--label", "l=" + bad, ctr),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pallet("builder", "commit", "--format", "docker", "--rm", ctr, "trigger")
    cfg = pallet.config("trigger")["config"]
    assert cfg["OnBuild"] == ["RUN echo \ufffd"] and cfg["Labels"]["l"] == "RUN echo \ufffd"


FUZZ_CHILD = r"""
import random, sys
from pallet.builder import dockerfile
from pallet.errors import PalletError

seed = ("FROM busybox:v1 AS a\nARG X=1\nRUN --mount=type=cache,target=/c echo $X \\\n  && true\n"
        "COPY --from=a <<EOF /f\nhello\nEOF\nENV A=\"b c\" D=e\nONBUILD RUN x\nHEALTHCHECK CMD [\"true\"]\n"
        "# escape=`\nSHELL [\"/bin/sh\", \"-c\"]\nCMD [\"a\", \"b\"]\n").encode()
rnd = random.Random(1405)
pieces = [b"\\", b"\n", b"`", b"<<", b"EOF", b"\"", b"[", b"]", b"\xff", b"\xc3", b"\x00", b"\r", b"\xed\xa0\x80",
          b"\xef\xbb\xbf", b"--", b"=", b"$", b"{", b"}"]
for i in range(int(sys.argv[1])):
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 6)):
        pos = rnd.randint(0, len(data))
        r = rnd.random()
        if r < 0.5:
            data[pos:pos] = rnd.choice(pieces)
        elif r < 0.8:
            del data[pos:pos + rnd.randint(1, 4)]
        else:
            data[pos:pos] = bytes([rnd.randint(0, 255)])
    text = bytes(data).decode("utf-8", "surrogateescape")
    try:
        dockerfile.parse(text)
    except PalletError:
        pass
print("survived")
"""


def test_fuzz_the_parser_boundary():
    """Mutated Dockerfiles (fixed seed, bounded count) give a PalletError or parse; the Go
    runtime never crashes the process (which a child process shows: exit 2 or SIGSEGV)."""
    import sys

    r = subprocess.run([sys.executable, "-c", FUZZ_CHILD, "1500"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "survived", r.stderr[-2000:]


# -- 14.11: a build racing `image prune -a` ---------------------------------------------------

def test_image_whose_layers_were_pruned_is_a_store_error(pallet):
    """The point the race reached: the layers of the previous step's image gone when the next
    step's image is stored (it used to be ``KeyError``, an internal error)."""
    from pallet.builder import image as _image
    from pallet.errors import StoreError

    store = pallet.store()
    rec = store.image("busybox:v1")
    doc = _image.load_config(store, rec)
    with pytest.raises(StoreError, match="vanished while the image was being stored"):
        _image.write_image(store, doc, list(rec["layers"]) + ["ab" * 32])


def test_build_racing_image_prune_gives_clear_errors(pallet, tmp_path, base):
    """Builds while another process runs `image prune -a` in a loop: every build succeeds or
    fails with one line naming what vanished; never an internal error or a traceback."""
    import threading

    ctx = _ctx(tmp_path, "FROM busybox:v1\nRUN echo a > /a\nCOPY f /f\nRUN echo b > /b\n", {"f": "0"})
    stop = threading.Event()
    prune_errors = []

    def prune():
        while not stop.is_set():
            p = pallet("image", "prune", "-a", check=False)
            if p.returncode != 0:
                prune_errors.append(p.stderr)

    t = threading.Thread(target=prune, daemon=True)
    t.start()
    try:
        for i in range(8):
            pallet("copy", "-q", f"oci:{base}:v1", "local:localhost/busybox:v1")
            (tmp_path / "ctx" / "f").write_text(str(i))
            p = pallet("build", "-q", "--pull=never", ctx, check=False)
            if p.returncode != 0:
                _one_line_error(p)
    finally:
        stop.set()
        t.join(60)
    for err in prune_errors:
        assert "internal error" not in err and "Traceback" not in err, err


# -- ADD's archive extraction is bounded like a layer (storage.conf limits) ------------------

def _gzip_tar_bomb(path: str, size: int) -> None:
    """A gzip tar holding one file of ``size`` zero bytes, written streaming (a few KB/MiB)."""
    import tarfile
    import zlib

    ti = tarfile.TarInfo("payload")
    ti.size = size
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    with open(path, "wb") as out:
        out.write(comp.compress(ti.tobuf(tarfile.PAX_FORMAT)))
        left = size
        while left:
            n = min(left, len(zero))
            out.write(comp.compress(zero[:n]))
            left -= n
        out.write(comp.compress(bytes(-size % 512) + bytes(1024)))
        out.write(comp.flush())


@pytest.mark.parametrize("how", ["build", "builder-add"])
def test_add_of_a_gzip_bomb_stops_at_the_layer_size_limit(pallet, tmp_path, how):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nADD bomb.tar.gz /x/\n")
    _gzip_tar_bomb(os.path.join(ctx, "bomb.tar.gz"), 128 << 20)
    assert os.path.getsize(os.path.join(ctx, "bomb.tar.gz")) < 1 << 20
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage.options.pallet]\nlayer_size_limit = "4MiB"\n')
    env = {"PALLET_STORAGE_CONF": str(conf)}
    if how == "build":
        p = pallet("build", "-q", "-t", "bomb", ctx, check=False, env=env)
    else:
        ctr = pallet("builder", "from", "localhost/busybox:v1", env=env).stdout.strip()
        p = pallet("builder", "add", ctr, os.path.join(ctx, "bomb.tar.gz"), "/x/", check=False, env=env)
    _one_line_error(p, "ADD bomb.tar.gz", "layer_size_limit of 4 MiB")
    # without the limit the same archive is extracted
    if how == "builder-add":
        pallet("builder", "add", ctr, os.path.join(ctx, "bomb.tar.gz"), "/x/")
        mnt = pallet("builder", "mount", ctr).stdout.strip()
        assert os.path.getsize(os.path.join(mnt, "x", "payload")) == 128 << 20


# -- 15: COPY/ADD destinations, WORKDIR, --chown's passwd and VOLUMEs resolve inside the root --

def test_symlinks_in_the_image_never_reach_the_host(pallet, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    ctx = _ctx(tmp_path, f"""FROM localhost/busybox:v1
RUN ln -s {host} /out && ln -s ../../../../../../..{host} /up && ln -s {host}/new /wd \\
 && mkdir -p /etc && cp /etc/passwd /etc/passwd.orig 2>/dev/null; ln -sf {host}/passwd /etc/passwd
COPY f /out/
COPY f /up/g
ADD f /up/sub/h
WORKDIR /wd/deeper
RUN test -d {host}/new/deeper && test -f {host}/f && test -f {host}/g && test -f {host}/sub/h
""", {"f": "data"})
    pallet("build", "-q", "-t", "in-root", ctx)
    assert sorted(os.listdir(host)) == ["passwd"], "the build wrote on the host"
    # the image's /etc/passwd points at a host file with "evil": inside the root it is missing
    ctx2 = _ctx(tmp_path, "FROM in-root\nCOPY --chown=evil f /x\n", {"f": "data"}, name="ctx2")
    _one_line_error(pallet("build", "-q", ctx2, check=False), "evil")


def test_builder_copy_and_run_resolve_inside_the_root(pallet, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    ctr = pallet("builder", "from", "localhost/busybox:v1").stdout.strip()
    pallet("builder", "run", ctr, "--", "sh", "-c", f"ln -s {host} /out")
    (tmp_path / "f").write_text("x")
    pallet("builder", "copy", ctr, str(tmp_path / "f"), "/out/sub/")
    pallet("builder", "config", "--workingdir", "/out/wd", ctr)
    pallet("builder", "run", ctr, "--", "sh", "-c", f"test -f {host}/sub/f && test -d {host}/wd")
    assert os.listdir(host) == []


@pytest.mark.parametrize("mount", ["type=tmpfs,target=/a/b/c", "type=secret,id=s,target=/a/b/c"])
def test_run_mount_points_are_tidied_by_fd_never_through_a_planted_symlink(pallet, tmp_path, mount):
    # the runtime makes the mount point /a/b/c (and for a secret /a, /a/b too); the step moves
    # /a away and plants symlinks to a host directory there: tidying up afterwards must not
    # remove the host's empty c and b through them
    victim = tmp_path / "victim"
    (victim / "b" / "c").mkdir(parents=True)
    (victim / "c").mkdir()
    (tmp_path / "s").write_text("secret")
    ctx = _ctx(tmp_path, f"FROM localhost/busybox:v1\n"
                         f"RUN --mount={mount} mv /a /a2 && mkdir /a && ln -s {victim} /a/b && ln -s {victim} /x\n")
    pallet("build", "-q", "--secret", f"id=s,src={tmp_path / 's'}", "-t", "tidied", ctx)
    assert (victim / "b" / "c").is_dir() and (victim / "c").is_dir(), "tidying followed a planted symlink"


def test_add_url_and_context_url_follow_no_redirect_out_of_http(pallet, tmp_path):  # noqa: F811
    """ADD URL and a build context URL are fetched as buildah's Go client fetches them: a
    redirect to ftp://HOST:PORT/ is refused before anything connects there (urllib's handler
    followed it)."""
    from test_adv_images import _Listener, routes_server

    ftp = _Listener()
    try:
        with routes_server() as (routes, base_url):
            routes["/f"] = (302, {"Location": f"ftp://127.0.0.1:{ftp.port}/f"}, b"")
            for args in (("build", _ctx(tmp_path, f"FROM localhost/busybox:v1\nADD {base_url}/f /f\n")),
                         ("build", f"{base_url}/f")):
                p = pallet(*args, check=False)
                _one_line_error(p, f"{base_url}/f", "redirect")
        assert ftp.accepted == 0
    finally:
        ftp.stop()


def test_add_url_body_stops_at_the_layer_size_limit(pallet, tmp_path):  # noqa: F811
    """ADD URL's body is held to layer_size_limit as an archive ADD extracts is (it was written
    whole, however large), and nothing half-written stays in a working container."""
    from test_adv_images import routes_server

    conf = tmp_path / "storage.conf"
    conf.write_text('[storage.options.pallet]\nlayer_size_limit = "1MiB"\n')
    env = {"PALLET_STORAGE_CONF": str(conf)}
    with routes_server() as (routes, base_url):
        routes["/big"] = (200, {}, b"\0" * (3 << 20))
        p = pallet("build", "-q", _ctx(tmp_path, f"FROM localhost/busybox:v1\nADD {base_url}/big /big\n"),
                   check=False, env=env)
        _one_line_error(p, f"ADD {base_url}/big", "layer_size_limit of 1 MiB")
        ctr = pallet("builder", "from", "localhost/busybox:v1", env=env).stdout.strip()
        p = pallet("builder", "add", ctr, f"{base_url}/big", "/big", check=False, env=env)
        _one_line_error(p, "layer_size_limit of 1 MiB")
        mnt = pallet("builder", "mount", ctr).stdout.strip()
        assert not os.path.lexists(os.path.join(mnt, "big"))
