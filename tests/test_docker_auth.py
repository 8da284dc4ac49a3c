"""Authentication against real registries: htpasswd Basic, token (JWT) Bearer; login/logout."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import time

import pytest

import images
from conftest import run_pallet
from tokenserver import TokenServer
from pallet import errors
from pallet.layer.stream import Verifying
from pallet.oci import manifest as _manifest
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext


pytestmark = pytest.mark.usefixtures("isolated")


def ctx(**kw):
    kw.setdefault("tls_verify", False)
    kw.setdefault("retry_delay", 0.01)
    return SystemContext(**kw)


@pytest.fixture
def basic_registry(make_registry, tmp_path):
    htpasswd = tmp_path / "htpasswd"
    out = subprocess.run(["htpasswd", "-Bbn", "bob", "builder"], check=True, capture_output=True, text=True)
    htpasswd.write_text(out.stdout)
    reg = make_registry({"htpasswd": {"realm": "pallet-test", "path": str(htpasswd)}})
    layout = str(tmp_path / "layout")
    images.make_layout(layout, "v1")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "bob:builder",
                    f"oci:{layout}:v1", f"docker://{reg.host}/auth/img:v1"], check=True, capture_output=True)
    return reg


def layout_image(tmp_path, name="layout"):
    layout = str(tmp_path / name)
    images.make_layout(layout, "v1", layers=[{"a": os.urandom(5000)}, {"b": os.urandom(7000)}])
    index = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]

    def blob(dg):
        with open(os.path.join(layout, "blobs", "sha256", dg.split(":")[1]), "rb") as f:
            return f.read()

    raw = blob(index["digest"])
    return _manifest.parse(raw, index["mediaType"]), blob


def push(ref_text, c, m, blob):
    with parse_reference(ref_text).new_destination(c) as dst:
        for d in [m.config] + m.layers:
            if dst.try_reusing_blob(d) is None:
                dst.put_blob(io.BytesIO(blob(d.digest)), d)
        dst.put_manifest(m.raw, m.media_type)


def pull(ref_text, c):
    with parse_reference(ref_text).new_source(c) as src:
        m = _manifest.parse(*src.get_manifest())
        for d in [m.config] + m.layers:
            with Verifying(src.get_blob(d), d.digest, d.size) as s:
                s.read()
        return m


# -- Basic (htpasswd) --------------------------------------------------------------------


def test_basic_auth(basic_registry):
    host = basic_registry.host
    ref = f"docker://{host}/auth/img:v1"
    with pytest.raises(errors.AuthenticationRequired) as ei:
        pull(ref, ctx())
    assert str(ei.value) == (f"reading manifest v1 in {host}/auth/img: authentication required by {host}; "
                             f"log in with 'pallet login {host}' or pass --creds USER:PASSWORD")
    assert pull(ref, ctx(creds="bob:builder")).media_type
    with pytest.raises(errors.AuthenticationRequired) as ei:
        pull(ref, ctx(creds="bob:wrong"))
    assert str(ei.value) == (f"reading manifest v1 in {host}/auth/img: authentication failed at {host} for "
                             "user 'bob' (from --creds)")
    assert "wrong" not in str(ei.value)


def test_auth_file_credentials(basic_registry, tmp_path):
    host = basic_registry.host
    authfile = tmp_path / "auth.json"
    import base64

    authfile.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(b"bob:builder").decode()}}}))
    ref = f"docker://{host}/auth/img:v1"
    assert pull(ref, ctx(authfile=str(authfile))).media_type
    with pytest.raises(errors.AuthenticationRequired):
        pull(ref, ctx(authfile=str(authfile), no_creds=True))


def test_login_logout_cli(basic_registry, tmp_path, skopeo):
    host = basic_registry.host
    authfile = str(tmp_path / "dir" / "auth.json")
    p = run_pallet("login", "--tls-verify=false", "--authfile", authfile, "-u", "bob", "-p", "builder", host)
    assert p.stdout == "Login Succeeded!\n"
    assert stat.S_IMODE(os.stat(authfile).st_mode) == 0o600
    assert "builder" not in p.stdout + p.stderr
    # skopeo uses what we stored
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", authfile,
                          f"docker://{host}/auth/img:v1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    p = run_pallet("login", "--authfile", authfile, "--get-login", host)
    assert p.stdout == "bob\n"
    # the CLI's list-tags uses it too
    p = run_pallet("list-tags", "--tls-verify=false", "--authfile", authfile, f"docker://{host}/auth/img")
    assert json.loads(p.stdout)["Tags"] == ["v1"]
    # wrong password: one line, file unchanged
    before = open(authfile).read()
    p = run_pallet("login", "--tls-verify=false", "--authfile", authfile, "-u", "bob", "--password-stdin", host,
                   input="nope\n", check=False)
    assert p.returncode == 1
    assert p.stderr == f"Error: logging in to {host}: invalid username/password\n"
    assert open(authfile).read() == before
    # password from stdin
    p = run_pallet("login", "--tls-verify=false", "--authfile", authfile, "-u", "bob", "--password-stdin", host,
                   input="builder\n")
    assert p.returncode == 0
    p = run_pallet("logout", "--authfile", authfile, host)
    assert p.stdout == f"Removed login credentials for {host}\n"
    p = run_pallet("logout", "--authfile", authfile, host, check=False)
    assert p.returncode == 1 and p.stderr == f"Error: not logged into {host}\n"
    p = run_pallet("login", "--authfile", authfile, "--get-login", host, check=False)
    assert p.returncode == 1 and "not logged into" in p.stderr
    # REGISTRY_AUTH_FILE, and logout --all
    env = {"REGISTRY_AUTH_FILE": authfile}
    run_pallet("login", "--tls-verify=false", "-u", "bob", "-p", "builder", host, env=env)
    assert host in json.load(open(authfile))["auths"]
    assert stat.S_IMODE(os.stat(authfile).st_mode) == 0o600
    run_pallet("logout", "--all", env=env)
    assert not os.path.exists(authfile)


def test_login_library_api(basic_registry, tmp_path):
    from pallet.transports import credentials
    from pallet.transports.docker import login, logout

    authfile = str(tmp_path / "auth.json")
    c = ctx(authfile=authfile)
    assert login(basic_registry.host, "bob", "builder", c) == authfile
    assert credentials.lookup(basic_registry.host, "auth/img", c).username == "bob"
    with pytest.raises(errors.AuthenticationRequired, match="invalid username/password"):
        login(basic_registry.host, "bob", "x", c)
    assert logout(basic_registry.host, c) == authfile
    with pytest.raises(errors.PalletError, match="not logged into"):
        logout(basic_registry.host, c)


# -- Bearer tokens -----------------------------------------------------------------------


@pytest.fixture(params=["RS256", "ES256"])
def token_registry(request, make_registry, tmp_path):
    ts = TokenServer(str(tmp_path), request.param, users={"alice": "wonder"})
    reg = make_registry(ts.registry_auth())
    yield reg, ts
    ts.stop()


def test_bearer_push_pull_and_scopes(token_registry, tmp_path):
    reg, ts = token_registry
    m, blob = layout_image(tmp_path)
    ref = f"docker://{reg.host}/tok/img:v1"
    # anonymous may pull but not push
    with pytest.raises(errors.AuthenticationRequired) as ei:
        push(ref, ctx(), m, blob)
    assert "authentication required by" in str(ei.value) and f"pallet login {reg.host}" in str(ei.value)
    n0 = ts.count()
    push(ref, ctx(creds="alice:wonder"), m, blob)
    asked = ts.requests[n0:]
    assert asked and all(r["scopes"] == ["repository:tok/img:pull,push"] and r["user"] == "alice" for r in asked)
    assert len(asked) == 1  # one token for the whole push: reused until it expires
    n1 = ts.count()
    assert pull(ref, ctx()).digest == m.digest
    assert [r["scopes"] for r in ts.requests[n1:]] == [["repository:tok/img:pull"]]
    with pytest.raises(errors.AuthenticationRequired) as ei:
        pull(ref, ctx(creds="alice:nope"))
    assert "the token server rejected the credentials for user 'alice'" in str(ei.value)


def test_bearer_cross_repo_mount_scopes(token_registry, tmp_path):
    reg, ts = token_registry
    m, blob = layout_image(tmp_path)
    c = ctx(creds="alice:wonder")
    push(f"docker://{reg.host}/tok/src:v1", c, m, blob)
    n0 = ts.count()
    src_ref = parse_reference(f"docker://{reg.host}/tok/src:v1")
    with parse_reference(f"docker://{reg.host}/tok/dst:v1").new_destination(c) as dst:
        for d in [m.config] + m.layers:
            assert dst.try_reusing_blob(d, src_ref) is not None
        dst.put_manifest(m.raw, m.media_type)
    scopes = [sorted(r["scopes"]) for r in ts.requests[n0:]]
    assert ["repository:tok/dst:pull,push", "repository:tok/src:pull"] in scopes
    assert pull(f"docker://{reg.host}/tok/dst:v1", c).digest == m.digest


def test_token_expiry_and_registry_token(make_registry, tmp_path):
    ts = TokenServer(str(tmp_path), "RS256", users={"alice": "wonder"}, expires_in=2)
    try:
        reg = make_registry(ts.registry_auth())
        m, blob = layout_image(tmp_path)
        c = ctx(creds="alice:wonder")
        push(f"docker://{reg.host}/exp/img:v1", c, m, blob)
        with parse_reference(f"docker://{reg.host}/exp/img:v1").new_source(c) as src:
            src.get_manifest()
            n = ts.count()
            src.get_manifest()
            assert ts.count() == n  # still valid: reused
            time.sleep(1.2)
            src.get_manifest()
            assert ts.count() == n + 1  # expired: a new one
        # --registry-token: sent as is, no token server round trip
        token = ts.issue("alice", [{"type": "repository", "name": "exp/img", "actions": ["pull"]}])
        n = ts.count()
        assert pull(f"docker://{reg.host}/exp/img:v1", ctx(registry_token=token)).digest == m.digest
        assert ts.count() == n
    finally:
        ts.stop()


def test_login_against_token_registry(token_registry, tmp_path):
    reg, ts = token_registry
    authfile = str(tmp_path / "auth.json")
    p = run_pallet("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p", "wonder", reg.host)
    assert p.returncode == 0 and ts.requests[-1]["user"] == "alice"
    p = run_pallet("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p", "bad", reg.host,
                   check=False)
    assert p.returncode == 1 and "rejected the credentials for user 'alice'" in p.stderr
    assert p.stderr.count("\n") == 1
    # skopeo pushes with what we stored
    layout = str(tmp_path / "l2")
    images.make_layout(layout, "v1", layers=[{"z": "z"}])
    out = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--authfile", authfile,
                          f"oci:{layout}:v1", f"docker://{reg.host}/tok/bysk:v1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
