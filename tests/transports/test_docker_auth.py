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
from conftest import htpasswd_registry, run_pallet, wait_for
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
    return htpasswd_registry(make_registry, tmp_path, "auth/img")


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
    # the registry's words as skopeo passes them through, then who failed or how to log in
    assert str(ei.value) == (f"reading manifest v1 in {host}/auth/img: unauthorized: authentication required; "
                             f"{host} requires authentication: log in with 'pallet login {host}' "
                             "or pass --creds USER:PASSWORD")
    assert pull(ref, ctx(creds="bob:builder")).media_type
    with pytest.raises(errors.AuthenticationRequired) as ei:
        pull(ref, ctx(creds="bob:wrong"))
    assert str(ei.value) == (f"reading manifest v1 in {host}/auth/img: unauthorized: authentication required; "
                             f"authentication failed at {host} for user 'bob' (from --creds)")
    assert "wrong" not in str(ei.value)


def test_copy_short_creds_flags(basic_registry, tmp_path):
    # skopeo's --screds/--dcreds spell --src-creds/--dest-creds (its own suite pushes with --dcreds)
    host = basic_registry.host
    out = tmp_path / "out"
    p = run_pallet("copy", "-q", "--src-tls-verify=false", "--screds", "bob:builder",
                   f"docker://{host}/auth/img:v1", f"dir:{out}")
    assert p.returncode == 0, p.stderr
    p = run_pallet("copy", "-q", "--dest-tls-verify=false", "--dcreds=bob:builder", f"dir:{out}",
                   f"docker://{host}/auth/short:v1")
    assert p.returncode == 0, p.stderr
    assert pull(f"docker://{host}/auth/short:v1", ctx(creds="bob:builder")).media_type
    p = run_pallet("copy", "-q", "--dest-tls-verify=false", f"dir:{out}", f"docker://{host}/auth/short:v2",
                   check=False)
    assert p.returncode != 0 and "authentication required" in p.stderr


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
    assert p.returncode == 125  # podman's and buildah's status (podman's 150-login.bats checks it)
    assert p.stderr == f'Error: logging into "{host}": invalid username/password\n'  # podman's words
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
    assert p.returncode == 125 and "not logged into" in p.stderr
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
    assert f"{reg.host} requires authentication" in str(ei.value) and f"pallet login {reg.host}" in str(ei.value)
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
    # expires_in=10: pallet uses a token for half that when it lives 10 s or less (5 s is room
    # for the two requests below on a loaded machine)
    ts = TokenServer(str(tmp_path), "RS256", users={"alice": "wonder"}, expires_in=10)
    try:
        reg = make_registry(ts.registry_auth())
        m, blob = layout_image(tmp_path)
        c = ctx(creds="alice:wonder")
        push(f"docker://{reg.host}/exp/img:v1", c, m, blob)
        with parse_reference(f"docker://{reg.host}/exp/img:v1").new_source(c) as src:
            src.get_manifest()
            issued_by = time.monotonic()  # the token was received before this
            n = ts.count()
            src.get_manifest()
            assert ts.count() == n  # still valid: reused
            wait_for(lambda: time.monotonic() > issued_by + 5, 60, "the token's 5 s of use to run out")
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
    assert p.returncode == 125 and "rejected the credentials for user 'alice'" in p.stderr
    assert p.stderr.count("\n") == 1
    # skopeo pushes with what we stored
    layout = str(tmp_path / "l2")
    images.make_layout(layout, "v1", layers=[{"z": "z"}])
    out = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--authfile", authfile,
                          f"oci:{layout}:v1", f"docker://{reg.host}/tok/bysk:v1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# -- credential helpers (Docker's protocol: docker-credential-NAME get|store|erase) ----------

HELPER = r'''#!/usr/bin/python3
# A credential helper speaking Docker's protocol, keeping its secrets in $PALLET_TEST_CRED_STORE.
import json, os, sys
path = os.environ["PALLET_TEST_CRED_STORE"]
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {}
action, data = sys.argv[1], sys.stdin.read().strip()
with open(path + ".log", "a") as log:
    log.write(action + " " + (json.loads(data)["ServerURL"] if action == "store" else data) + "\n")
if action == "get":
    if data not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({"ServerURL": data, "Username": db[data][0], "Secret": db[data][1]}))
elif action == "store":
    d = json.loads(data)
    db[d["ServerURL"]] = [d["Username"], d["Secret"]]
    json.dump(db, open(path, "w"))
elif action == "erase":
    if db.pop(data, None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    json.dump(db, open(path, "w"))
else:
    sys.stderr.write("unknown action\n")
    sys.exit(1)
'''


@pytest.fixture
def cred_helper(tmp_path, monkeypatch):
    """docker-credential-pallettest on PATH; returns its store (a JSON file) as a dict-ish helper."""
    bindir = tmp_path / "helperbin"
    bindir.mkdir()
    prog = bindir / "docker-credential-pallettest"
    prog.write_text(HELPER)
    prog.chmod(0o755)
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("PALLET_TEST_CRED_STORE", str(store))

    class Store:
        path = store

        def load(self):
            return json.load(open(store)) if store.exists() else {}

        def put(self, server, user, secret):
            db = self.load()
            db[server] = [user, secret]
            store.write_text(json.dumps(db))

        def log(self):
            p = str(store) + ".log"
            return open(p).read().splitlines() if os.path.exists(p) else []

    return Store()


def test_cred_helpers_get(basic_registry, tmp_path, cred_helper, skopeo):
    """credHelpers in auth.json: the helper is asked for the registry (pallet and skopeo alike);
    credsStore in Docker's config.json serves every registry; <token> is an identity token."""
    host = basic_registry.host
    ref = f"docker://{host}/auth/img:v1"
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"credHelpers": {host: "pallettest"}}))
    cred_helper.put(host, "bob", "builder")
    assert pull(ref, ctx(authfile=str(authfile))).media_type
    assert cred_helper.log() == [f"get {host}"]
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref)
    assert json.loads(p.stdout)["Name"] == f"{host}/auth/img"
    assert "builder" not in p.stdout + p.stderr
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", str(authfile), ref],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # the same helper protocol as containers/image's
    # Docker's config.json: credsStore for every registry (the auths entry is only a marker)
    os.makedirs(tmp_path / ".docker")
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {host: {}}, "credsStore": "pallettest"}))
    p = run_pallet("inspect", "--tls-verify=false", ref)
    assert json.loads(p.stdout)["Name"] == f"{host}/auth/img"
    # the helper has nothing: anonymous, and the registry's refusal is the error
    cred_helper.put("elsewhere", "x", "y")
    db = cred_helper.load()
    del db[host]
    cred_helper.path.write_text(json.dumps(db))
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref, check=False)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
    assert "authentication required" in p.stderr.lower() or "unauthorized" in p.stderr.lower()
    # an identity token
    from pallet.transports import credentials

    cred_helper.put(host, "<token>", "refresh-me")
    c = credentials.lookup(host, "auth/img", ctx(authfile=str(authfile)))
    assert (c.username, c.password, c.identity_token) == ("", "", "refresh-me")
    assert "refresh-me" not in repr(c)


def test_cred_helpers_login_logout(basic_registry, tmp_path, cred_helper):
    """login stores through the helper the login file names for the registry (the file keeps
    no secret), --get-login reads it back, logout erases it."""
    host = basic_registry.host
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"credHelpers": {host: "pallettest"}}))
    run_pallet("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "bob", "-p", "builder", host)
    assert cred_helper.load() == {host: ["bob", "builder"]}
    assert "builder" not in authfile.read_text() and host not in json.load(open(authfile)).get("auths", {})
    assert run_pallet("login", "--authfile", str(authfile), "--get-login", host).stdout == "bob\n"
    p = run_pallet("list-tags", "--tls-verify=false", "--authfile", str(authfile), f"docker://{host}/auth/img")
    assert json.loads(p.stdout)["Tags"] == ["v1"]
    p = run_pallet("logout", "--authfile", str(authfile), host)
    assert p.stdout == f"Removed login credentials for {host}\n"
    assert cred_helper.load() == {}
    p = run_pallet("logout", "--authfile", str(authfile), host, check=False)
    assert p.returncode == 1 and p.stderr == f"Error: not logged into {host}\n"
    # a wrong password reaches neither the registry's nor the helper's store
    p = run_pallet("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "bob", "-p", "nope", host,
                   check=False)
    assert p.returncode == 125 and cred_helper.load() == {}


def test_cred_helper_errors(basic_registry, tmp_path, cred_helper):
    """A helper that is not installed, or fails, is one line naming it; its output is never shown."""
    host = basic_registry.host
    ref = f"docker://{host}/auth/img:v1"
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"credHelpers": {host: "nothere"}}))
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref, check=False)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1
    assert "docker-credential-nothere" in p.stderr and "not installed" in p.stderr
    bad = tmp_path / "helperbin" / "docker-credential-broken"
    bad.write_text("#!/bin/sh\necho 'secret-ish output'\necho 'keychain locked' >&2\nexit 3\n")
    bad.chmod(0o755)
    authfile.write_text(json.dumps({"credHelpers": {host: "broken"}}))
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref, check=False)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1
    assert "docker-credential-broken get: keychain locked" in p.stderr and "secret-ish" not in p.stderr
    authfile.write_text(json.dumps({"credHelpers": {host: "../../bin/sh"}}))
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref, check=False)
    assert p.returncode == 1 and "not a credential helper name" in p.stderr
    authfile.write_text(json.dumps({"credHelpers": [host]}))
    p = run_pallet("inspect", "--tls-verify=false", "--authfile", str(authfile), ref, check=False)
    assert p.returncode == 1 and "credHelpers" in p.stderr and len(p.stderr.splitlines()) == 1
