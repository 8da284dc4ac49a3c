"""Pure logic of the docker transport: references, retry policy, challenges, registries.conf, auth.json.

No registry needed here; the HTTP codec is checked against a real socket peer.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading

import pytest

from pallet import errors
from pallet.transports import credentials, parse_reference, registries_conf
from pallet.transports.base import SystemContext
from pallet.transports.docker import _parse_link_next, parse
from pallet.transports.docker._auth import parse_challenges
from pallet.transports.docker._retry import RetryPolicy, parse_retry_after

# -- references --------------------------------------------------------------------------


@pytest.mark.parametrize("text,msg", [
    ("docker://", "invalid reference format"),
    ("docker:///x", "invalid reference format"),
    ("docker://Foo/Bar", "repository name must be lowercase"),
    ("docker://a:b:c", "invalid reference format"),
    ("docker://localhost:5000/x:t@sha256:" + "0" * 64,
     "Docker references with both a tag and digest are currently not supported"),
    ("docker:busybox", "must start with 'docker://'"),
    ("docker://host/x@sha256:abc", "invalid reference format"),
])
def test_bad_references(text, msg):
    with pytest.raises(errors.InvalidReference) as ei:
        parse_reference(text)
    assert msg in str(ei.value)
    assert "\n" not in str(ei.value)


def test_reference_normalisation():
    r = parse("//busybox")
    assert str(r.named) == "docker.io/library/busybox:latest"
    assert str(r) == "docker://busybox:latest"
    assert r.transport == "docker"
    r = parse("//127.0.0.1:5000/a/b@sha256:" + "1" * 64)
    assert r.named.domain == "127.0.0.1:5000" and r.named.path == "a/b" and r.named.tag is None
    assert r.docker_reference() is r.named
    assert parse("//localhost/x:1") == parse("//localhost/x:1")


# -- retry policy ------------------------------------------------------------------------


class _Resp:
    def __init__(self, status, headers=None):
        self.status = status
        self.headers = _H(headers or {})
        self.closed = False

    def close(self):
        self.closed = True


class _H(dict):
    def get(self, k, d=None):
        return super().get(k.lower(), d)


def test_retry_policy_backoff_and_retry_after():
    slept = []
    policy = RetryPolicy(3, None, sleep=slept.append)
    answers = [_Resp(503), _Resp(429, {"retry-after": "7"}), _Resp(502), _Resp(200)]
    it = iter(answers)
    resp = policy.run(lambda: next(it))
    assert resp.status == 200
    assert slept == [1.0, 7.0, 4.0]  # backoff 1, Retry-After 7, backoff 4
    assert all(a.closed for a in answers[:3])


def test_retry_policy_gives_up_and_fixed_delay():
    slept = []
    policy = RetryPolicy(2, 0.25, sleep=slept.append)
    resp = policy.run(lambda: _Resp(503))
    assert resp.status == 503 and slept == [0.25, 0.25]

    calls = []

    def refused():
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ConnectionRefusedError):
        policy.run(refused)
    assert len(calls) == 3
    # not retried: client errors and 501
    assert RetryPolicy(3, sleep=slept.append).run(lambda: _Resp(404)).status == 404
    assert not RetryPolicy().should_retry_status(501)


def test_retry_after_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert RetryPolicy().wait_for(1, 10_000) == 120.0  # capped


# -- auth challenges ---------------------------------------------------------------------


def test_parse_challenges():
    [c] = parse_challenges(['Bearer realm="https://auth.example/token",service="registry.example",'
                            'scope="repository:a/b:pull,push"'])
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:a/b:pull,push"}
    cs = parse_challenges(['Basic realm="Registry Realm"', 'Negotiate'])
    assert [c.scheme for c in cs] == ["basic", "negotiate"]
    cs = parse_challenges(['Basic realm="a\\"b", Bearer realm=x'])
    assert cs[0].params["realm"] == 'a"b' and cs[1].params["realm"] == "x"


def test_unknown_scheme_is_a_clear_error():
    from pallet.transports.docker._auth import Authenticator

    a = Authenticator("reg.example")
    a.set_challenges(parse_challenges(["Negotiate, NTLM"]))
    with pytest.raises(errors.AuthenticationRequired, match="unsupported authentication scheme.*negotiate"):
        a.header(("repository:x:pull",))


def test_link_header():
    assert _parse_link_next('</v2/r/tags/list?last=b&n=2>; rel="next"') == "/v2/r/tags/list?last=b&n=2"
    assert _parse_link_next('<https://x/y>; rel="prev", <https://x/z>; rel=next') == "https://x/z"
    assert _parse_link_next(None) is None


# -- registries.conf ---------------------------------------------------------------------

CONF = """
unqualified-search-registries = ["registry.example", "docker.io"]
short-name-mode = "permissive"

[[registry]]
prefix = "example.com/foo"
location = "internal.example:5000/mirror/foo"
insecure = true

[[registry.mirror]]
location = "mirror-a.example/foo"

[[registry.mirror]]
location = "mirror-b.example/foo"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com"
location = "example.com"

[[registry]]
prefix = "*.blocked.example"
blocked = true

[[registry]]
location = "plain.example:8080"
insecure = true

[aliases]
"tool" = "quay.example/tools/tool"
"""


def _named(text):
    from pallet.oci import reference

    return reference.parse(text)


def test_registries_conf_find_and_rewrite():
    cfg = registries_conf.parse_text(CONF, "test.conf")
    assert cfg.unqualified_search_registries == ["registry.example", "docker.io"]
    assert cfg.short_name_mode == "permissive"
    assert cfg.find(_named("example.com/foo/bar:1")).prefix == "example.com/foo"
    assert cfg.find(_named("example.com/foobar:1")).prefix == "example.com"  # not a path-component match
    assert cfg.find(_named("other.example/x")) is None
    eps = cfg.pull_sources(_named("example.com/foo/bar:1"))
    assert [str(e.named) for e in eps] == ["mirror-a.example/foo/bar:1", "internal.example:5000/mirror/foo/bar:1"]
    assert [e.mirror for e in eps] == [True, False] and eps[-1].insecure
    d = "sha256:" + "a" * 64
    eps = cfg.pull_sources(_named(f"example.com/foo/bar@{d}"))
    assert [e.host for e in eps] == ["mirror-a.example", "mirror-b.example", "internal.example:5000"]
    assert eps[1].insecure and str(eps[1].named) == f"mirror-b.example/foo/bar@{d}"
    push = cfg.push_endpoint(_named("example.com/foo/bar:1"))
    assert str(push.named) == "internal.example:5000/mirror/foo/bar:1" and push.insecure
    assert cfg.push_endpoint(_named("plain.example:8080/x:1")).insecure


def test_registries_conf_blocked_and_wildcard():
    cfg = registries_conf.parse_text(CONF)
    with pytest.raises(errors.AccessDenied, match="blocked"):
        cfg.pull_sources(_named("a.blocked.example/x:1"))
    with pytest.raises(errors.AccessDenied, match="blocked"):
        cfg.push_endpoint(_named("deep.sub.blocked.example:5000/x:1"))
    assert cfg.find(_named("blocked.example/x")) is None  # the bare domain is not a sub-domain


def test_short_names():
    cfg = registries_conf.parse_text(CONF)
    r = cfg.resolve_short_name("tool")
    assert r.alias and [str(c) for c in r.candidates] == ["quay.example/tools/tool:latest"]
    r = cfg.resolve_short_name("busybox:1.36")
    assert not r.alias and r.mode == "permissive"
    assert [str(c) for c in r.candidates] == ["registry.example/busybox:1.36", "docker.io/library/busybox:1.36"]
    r = cfg.resolve_short_name("localhost:5000/x")
    assert [str(c) for c in r.candidates] == ["localhost:5000/x"]
    with pytest.raises(errors.NotFound, match="no unqualified-search registries"):
        registries_conf.parse_text("").resolve_short_name("busybox")


@pytest.mark.parametrize("text,msg", [
    ("[[registry]]\nprefix = '*.x.example'\nlocation = 'y'", "wildcarded prefix"),
    ("short-name-mode = 'sometimes'", "short-name-mode"),
    ("[[registry]]\nlocation = 'https://x'", "must not include a scheme"),
    ("[[registry]]\nprefix = 'x'\ninsecure = 'yes'", "insecure must be true or false"),
    ("bogus = 1", "unknown key 'bogus'"),
    ("[[registry]]\nprefix='x'\n[[registry.mirror]]\nlocation='m'\npull-from-mirror='never'", "pull-from-mirror"),
    ("this is not toml", "invalid TOML"),
])
def test_registries_conf_errors(text, msg):
    with pytest.raises(errors.ConfigError, match=msg):
        registries_conf.parse_text(text)


def test_registries_conf_files_and_dropins(tmp_path, monkeypatch):
    main = tmp_path / "registries.conf"
    main.write_text('unqualified-search-registries = ["a.example"]\n'
                    '[[registry]]\nprefix = "x.example"\nlocation = "x.example"\n')
    d = tmp_path / "registries.conf.d"
    d.mkdir()
    (d / "10-b.conf").write_text('[[registry]]\nprefix = "x.example"\nlocation = "y.example"\ninsecure = true\n')
    (d / "20-c.conf").write_text('unqualified-search-registries = ["c.example"]\n[aliases]\n"z" = "z.example/z"\n')
    (d / "ignored.txt").write_text("not toml")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(main))
    cfg = registries_conf.load(SystemContext(registries_conf_dir=str(d)))
    assert cfg.unqualified_search_registries == ["c.example"]
    assert str(cfg.push_endpoint(_named("x.example/r:1")).named) == "y.example/r:1"
    assert cfg.aliases == {"z": "z.example/z"}
    # ctx wins over the environment; a missing explicit file is an error
    with pytest.raises(errors.ConfigError, match="no such file"):
        registries_conf.load(SystemContext(registries_conf=str(tmp_path / "nope.conf")))


def test_registries_conf_dropin_directories(tmp_path, monkeypatch):
    """containers/image's rule: an explicit file does not move the drop-ins (the system's and the
    user's are read, not a directory beside the file); --registries-conf-dir alone replaces them;
    the user's own registries.conf (found implicitly) reads only the user's drop-ins."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    main = tmp_path / "registries.conf"
    main.write_text("")
    user_d = str(home / ".config/containers/registries.conf.d")
    assert registries_conf.config_paths(SystemContext(registries_conf=str(main))) == (
        str(main), ["/etc/containers/registries.conf.d", user_d])
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(main))
    assert registries_conf.config_paths(None)[1] == ["/etc/containers/registries.conf.d", user_d]
    mine = tmp_path / "mine.d"
    assert registries_conf.config_paths(SystemContext(registries_conf_dir=str(mine))) == (str(main), [str(mine)])
    # a drop-in beside the explicit file is not read
    beside = tmp_path / "registries.conf.d"
    beside.mkdir()
    (beside / "x.conf").write_text('unqualified-search-registries = ["beside.example"]\n')
    mine.mkdir()
    (mine / "y.conf").write_text('unqualified-search-registries = ["mine.example"]\n')
    cfg = registries_conf.load(SystemContext(registries_conf=str(main), registries_conf_dir=str(mine)))
    assert cfg.unqualified_search_registries == ["mine.example"]
    # the user's file, found implicitly: only the user's drop-ins
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF")
    (home / ".config/containers").mkdir(parents=True)
    (home / ".config/containers/registries.conf").write_text("")
    assert registries_conf.config_paths(None) == (str(home / ".config/containers/registries.conf"), [user_d])


def test_registries_conf_v1(tmp_path):
    cfg = registries_conf.parse_text('[registries.search]\nregistries = ["s.example"]\n'
                                     '[registries.insecure]\nregistries = ["i.example:5000"]\n'
                                     '[registries.block]\nregistries = ["b.example"]\n')
    assert cfg.unqualified_search_registries == ["s.example"]
    assert cfg.push_endpoint(_named("i.example:5000/x")).insecure
    with pytest.raises(errors.AccessDenied):
        cfg.pull_sources(_named("b.example/x"))


# -- auth.json ---------------------------------------------------------------------------


def _auth(user, pw):
    return base64.b64encode(f"{user}:{pw}".encode()).decode()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path


def _write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)


def test_auth_lookup_order_and_keys(home):
    run = str(home / "run/containers/auth.json")
    cfg = str(home / "home/.config/containers/auth.json")
    docker = str(home / "home/.docker/config.json")
    legacy = str(home / "home/.dockercfg")
    _write(run, {"auths": {"reg.example/team/app": {"auth": _auth("app", "p1")}}})
    _write(cfg, {"auths": {"reg.example": {"auth": _auth("cfg", "p2")}}})
    _write(docker, {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hub", "p3")},
                              "other.example": {"auth": _auth("dock", "p4")}}})
    _write(legacy, {"old.example": {"auth": _auth("old", "p5")}})
    assert credentials.lookup("reg.example", "team/app/sub").username == "app"  # longest key first
    assert credentials.lookup("reg.example", "team/other").username == "cfg"
    assert credentials.lookup("docker.io", "library/busybox").username == "hub"
    c = credentials.lookup("other.example")
    assert (c.username, c.password, c.source) == ("dock", "p4", docker)
    assert credentials.lookup("old.example").username == "old"
    assert credentials.lookup("none.example") is None
    assert "p4" not in repr(c) and "p4" not in str(c)


def test_auth_explicit_file_is_the_only_one(home, monkeypatch):
    _write(str(home / "home/.docker/config.json"), {"auths": {"reg.example": {"auth": _auth("a", "b")}}})
    f = str(home / "explicit.json")
    _write(f, {"auths": {}})
    assert credentials.lookup("reg.example", ctx=SystemContext(authfile=f)) is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", f)
    assert credentials.lookup("reg.example") is None
    assert credentials.write_path() == f


def test_auth_store_remove(home):
    path = credentials.store("reg.example:5000", "u", "p:w", None)
    assert path == str(home / "run/containers/auth.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.load(open(path))
    assert base64.b64decode(doc["auths"]["reg.example:5000"]["auth"]).decode() == "u:p:w"
    c = credentials.lookup("reg.example:5000", "x/y")
    assert (c.username, c.password) == ("u", "p:w")
    credentials.store("reg.example:5000/ns", "u2", "p2")
    assert credentials.lookup("reg.example:5000", "ns/img").username == "u2"
    assert credentials.remove("reg.example:5000")
    assert not credentials.remove("reg.example:5000")
    assert credentials.lookup("reg.example:5000", "x") is None
    assert not [n for n in os.listdir(os.path.dirname(path)) if ".tmp" in n]
    credentials.remove_all()
    assert not os.path.exists(path)


@pytest.mark.parametrize("content,msg", [
    ("{not json", "not valid JSON"),
    ('{"auths": []}', '"auths" must be an object'),
    ('{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}', "does not decode to user:password"),
])
def test_auth_file_errors(home, content, msg):
    f = home / "bad.json"
    f.write_text(content)
    with pytest.raises(errors.ConfigError, match=msg):
        credentials.lookup("r.example", ctx=SystemContext(authfile=str(f)))


# -- the HTTP codec against a real socket peer -------------------------------------------


def _serve_once(responses):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = []

    def run():
        c, _ = srv.accept()
        f = c.makefile("rb")
        for resp in responses:
            req = b""
            while not req.endswith(b"\r\n\r\n"):
                line = f.readline()
                if not line:
                    return
                req += line
            seen.append(req)
            c.sendall(resp)
        c.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], seen


def test_http_chunked_keepalive_head():
    from pallet._std import http as _http

    port, seen = _serve_once([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])
    pool = _http.Pool("http", "127.0.0.1", port)
    url = _http.URL.parse(f"http://127.0.0.1:{port}/a")
    r = pool.request("GET", url, {})
    assert r.read() == b"hello, world"
    r = pool.request("HEAD", url, {})  # same connection: the first body was read to its end
    assert r.status == 200 and r.content_length == 1000 and r.read() == b""
    r = pool.request("DELETE", url, {})
    assert r.status == 204
    assert len(seen) == 3 and seen[1].startswith(b"HEAD /a HTTP/1.1\r\nHost: 127.0.0.1:")
    pool.close()


def test_url_join():
    from pallet._std.http import URL

    u = URL.parse("http://127.0.0.1:5000/v2/a/blobs/uploads/")
    assert str(u.join("/v2/a/blobs/uploads/x?_state=1")) == "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1"
    assert str(u.join("https://other.example/b?c")) == "https://other.example/b?c"
    assert URL.parse("https://[::1]:8443/v2/").port == 8443
    assert URL.parse("https://h.example/v2/").netloc == "h.example"


def test_alias_only_files_are_parsed_when_needed(tmp_path, monkeypatch):
    main = tmp_path / "registries.conf"
    main.write_text("# nothing but comments\n")
    d = tmp_path / "registries.conf.d"
    d.mkdir()
    (d / "shortnames.conf").write_text('[aliases]\n"registry" = "docker.io/library/registry"\n')
    (d / "z.conf").write_text('[[registry]]\nprefix = "q.example"\nlocation = "r.example"\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(main))
    cfg = registries_conf.load(SystemContext(registries_conf_dir=str(d)))
    assert cfg._deferred is not None  # shortnames.conf not parsed yet
    assert str(cfg.push_endpoint(_named("q.example/x:1")).named) == "r.example/x:1"
    assert cfg.aliases == {"registry": "docker.io/library/registry"}
    assert cfg._deferred is None
    assert str(cfg.push_endpoint(_named("q.example/x:1")).named) == "r.example/x:1"


def test_registry_client_imports_stay_light(registry, tmp_path):
    """Reading a manifest over plain HTTP loads neither ssl, http.client, email nor tomllib."""
    import subprocess
    import sys

    conf = tmp_path / "registries.conf"
    conf.write_text('[aliases]\n"x" = "example.com/x"\n')
    code = f"""
import sys
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext
from pallet import errors
ref = parse_reference("docker://{registry.host}/light/none:v1")
with ref.new_source(SystemContext(tls_verify=False)) as src:
    try:
        src.get_manifest()
    except errors.NotFound:
        pass
heavy = [m for m in ("ssl", "http.client", "email.parser", "tomllib", "urllib.request", "typing", "dataclasses")
         if m in sys.modules]
print(",".join(heavy))
"""
    env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=str(conf), HOME=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def test_has_transport_reads_names_as_podman_does():
    from pallet import transports
    from pallet.images.refs import has_transport

    assert has_transport("docker://quay.io/a/b:1")
    assert has_transport("oci:/tmp/layout:tag") and has_transport("dir:/tmp/x") and has_transport("local:busybox")
    # the transports know nothing of the store: local: is parsed by whoever holds one
    assert transports.has_transport("oci:/tmp/layout:tag") and not transports.has_transport("local:busybox")
    # docker: without its // is a store name with a tag (podman's "docker:latest" is an image name)
    assert not has_transport("docker:latest")
    assert not has_transport("busybox:latest") and not has_transport("busybox")
    assert not has_transport("localhost:5000/busybox")
