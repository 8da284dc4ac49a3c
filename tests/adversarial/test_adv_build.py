"""Attacks on pallet build and pallet builder: the trust policy bypassed by FROM (issue
14.4), hostile Dockerfiles for the Go parser (14.5), bad STOPSIGNALs (14.13), and input that
used to end in "internal error" (13.8, 14.11)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from buildtools import PalletStore, make_busybox_layout

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("isolated")]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    layout = str(tmp_path_factory.mktemp("bb") / "layout")
    make_busybox_layout(layout, "v1")
    return layout


@pytest.fixture
def pallet(tmp_path, base):
    s = PalletStore(str(tmp_path / "store"))
    s("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
    yield s
    s.unmount_all()


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
    _one_line_error(pallet("build", req, check=False), "'X'", "required", "Dockerfile:2")
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
