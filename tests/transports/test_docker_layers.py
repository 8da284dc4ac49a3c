"""The registry client's layers (redirects, auth, retries) against a scripted transport.

The stand-in below replaces the network only here, for the pure logic of each layer: it
records the requests it is handed and answers from a script. The interop tests
(test_docker_registry.py, test_docker_auth.py, ...) run the same stack on a real registry.
"""

from __future__ import annotations

import base64
import errno
import json

import pytest

from pallet import errors
from pallet.transports.base import SystemContext
from pallet.transports.credentials import Credentials
from pallet.transports.docker._auth import Authenticator
from pallet.transports.docker._client import Client
from pallet._std.http import Headers, MalformedResponse, ProtocolError, StreamBody, URL
from pallet.transports.docker._layers import AuthLayer, RedirectLayer, Request, RetryLayer
from pallet.transports.docker._retry import RetryPolicy

pytestmark = pytest.mark.unit

REG = URL.parse("https://reg.example:5000/")


class FakeResponse:
    def __init__(self, status: int, headers: dict | list | None = None, body: bytes = b"", reason: str = ""):
        self.status = status
        self.reason = reason
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        self.headers = Headers([(k.lower(), v) for k, v in items])
        self._body = body
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = len(self._body)
        out, self._body = self._body[:n], self._body[n:]
        return out

    def close(self) -> None:
        self.closed = True

    _abort = close


class FakeTransport:
    """Answers each request with the next scripted item: a FakeResponse, an exception to
    raise, or a function of the request returning either."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[Request] = []
        self.closed = False

    def send(self, req: Request):
        self.requests.append(req)
        if not self.script:
            raise AssertionError(f"unexpected request {req!r}")
        item = self.script.pop(0)
        if callable(item) and not isinstance(item, FakeResponse):
            item = item(req)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.closed = True

    @property
    def seen(self) -> list[str]:
        return [f"{r.method} {r.url}" for r in self.requests]


def req(path="/v2/x/manifests/1", method="GET", **kw) -> Request:
    return Request(method, REG.join(path), {"User-Agent": "t"}, **kw)


def policy(times=3, slept=None):
    return RetryPolicy(times, None, sleep=(slept.append if slept is not None else lambda s: None))


# -- RetryLayer ---------------------------------------------------------------------------


def test_retry_5xx_then_success_backs_off():
    slept = []
    t = FakeTransport(FakeResponse(503), FakeResponse(502), FakeResponse(200, body=b"ok"))
    r503, r502 = t.script[0], t.script[1]
    resp = RetryLayer(t.send, policy(slept=slept)).send(req())
    assert resp.status == 200 and len(t.requests) == 3
    assert slept == [1.0, 2.0]  # exponential backoff from 1 s
    assert r503.closed and r502.closed  # the retried answers released their connections


def test_retry_honours_retry_after_and_gives_up_with_the_last_answer():
    slept = []
    t = FakeTransport(*[FakeResponse(429, {"Retry-After": "7"}) for _ in range(3)])
    resp = RetryLayer(t.send, policy(times=2, slept=slept)).send(req())
    assert resp.status == 429 and len(t.requests) == 3 and slept == [7.0, 7.0]
    assert not resp.closed  # the caller reads its error body


@pytest.mark.parametrize("exc,tries", [
    (ConnectionResetError(errno.ECONNRESET, "reset"), 4),  # transient: 1 + 3 retries
    (ProtocolError("the registry closed the connection after 3 of 9 bytes"), 4),
    (TimeoutError("timed out"), 4),
    (MalformedResponse("not an HTTP response"), 1),  # deterministic: at once
    (OSError(errno.EINVAL, "invalid argument"), 1),
])
def test_retry_classifies_errors(exc, tries):
    t = FakeTransport(*[exc] * tries)
    with pytest.raises(type(exc)):
        RetryLayer(t.send, policy()).send(req())
    assert len(t.requests) == tries


def test_retry_never_resends_a_streamed_body():
    import io

    t = FakeTransport(FakeResponse(503))
    body = StreamBody(io.BytesIO(b"layer"), 5)
    resp = RetryLayer(t.send, policy()).send(req("/v2/x/blobs/uploads/u", "PUT", body=body))
    assert resp.status == 503 and len(t.requests) == 1


def test_retry_404_is_an_answer_not_a_failure():
    t = FakeTransport(FakeResponse(404))
    assert RetryLayer(t.send, policy()).send(req()).status == 404
    assert len(t.requests) == 1


# -- AuthLayer ----------------------------------------------------------------------------


def token_server(tokens: list[str], seen: list[str]):
    """A fetch_token stand-in (the client's realm request): hands out ``tokens`` in turn."""
    def fetch(url, headers):
        seen.append((url, headers.get("Authorization")))
        return 200, json.dumps({"token": tokens.pop(0), "expires_in": 300}).encode()
    return fetch


def bearer_auth(tokens, seen, creds=None) -> Authenticator:
    from pallet.transports.docker._auth import parse_challenges

    a = Authenticator("reg.example:5000", creds, fetch_token=token_server(tokens, seen))
    a.set_challenges(parse_challenges(['Bearer realm="https://auth.example/token",service="reg"']))
    return a


def test_auth_bearer_token_for_the_scopes_cached_across_requests():
    seen = []
    t = FakeTransport(FakeResponse(200), FakeResponse(200))
    layer = AuthLayer(t.send, bearer_auth(["T1"], seen), REG.origin)
    layer.send(req(scopes=("repository:x:pull",)))
    layer.send(req(scopes=("repository:x:pull",)))
    assert [r.headers.get("Authorization") for r in t.requests] == ["Bearer T1", "Bearer T1"]
    assert len(seen) == 1
    url, basic = seen[0]
    assert url == "https://auth.example/token?service=reg&scope=repository:x:pull" and basic is None


def test_auth_401_renews_the_token_once_with_the_new_challenge():
    seen = []
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg",'
                                     'scope="repository:x:pull"'}
    t = FakeTransport(FakeResponse(401, challenge), FakeResponse(200))
    first = t.script[0]
    resp = AuthLayer(t.send, bearer_auth(["OLD", "NEW"], seen), REG.origin).send(req(scopes=("repository:x:pull",)))
    assert resp.status == 200 and first.closed
    assert [r.headers.get("Authorization") for r in t.requests] == ["Bearer OLD", "Bearer NEW"]


def test_auth_a_second_401_is_returned_not_looped():
    seen = []
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}
    t = FakeTransport(FakeResponse(401, challenge), FakeResponse(401, challenge))
    resp = AuthLayer(t.send, bearer_auth(["A", "B"], seen), REG.origin).send(req(scopes=("s",)))
    assert resp.status == 401 and len(t.requests) == 2 and len(seen) == 2


def test_auth_basic_with_credentials_and_other_origins_get_nothing():
    from pallet.transports.docker._auth import parse_challenges

    a = Authenticator("reg.example:5000", Credentials("alice", "s3cret"))
    a.set_challenges(parse_challenges(['Basic realm="r"']))
    t = FakeTransport(FakeResponse(200), FakeResponse(200))
    layer = AuthLayer(t.send, a, REG.origin)
    layer.send(req())
    layer.send(Request("GET", URL.parse("https://storage.example/blob"), {}))
    assert t.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert "Authorization" not in t.requests[1].headers


def test_auth_fixed_token_is_not_renewed_and_streamed_bodies_not_resent():
    import io

    a = Authenticator("reg.example:5000", None, bearer="FIXED")
    challenge = {"WWW-Authenticate": 'Bearer realm="https://auth.example/token"'}
    t = FakeTransport(FakeResponse(401, challenge))
    assert AuthLayer(t.send, a, REG.origin).send(req()).status == 401
    assert t.requests[0].headers["Authorization"] == "Bearer FIXED" and len(t.requests) == 1
    seen = []
    t = FakeTransport(FakeResponse(401, challenge))
    body = StreamBody(io.BytesIO(b"x"), 1)
    assert AuthLayer(t.send, bearer_auth(["A"], seen), REG.origin).send(req(method="PUT", body=body)).status == 401
    assert len(t.requests) == 1


# -- RedirectLayer ------------------------------------------------------------------------


def test_redirects_followed_relative_and_absolute():
    t = FakeTransport(FakeResponse(307, {"Location": "/v2/y/blobs/b"}),
                      FakeResponse(302, {"Location": "https://cdn.example/b?sig=1"}),
                      FakeResponse(200, body=b"blob"))
    resp = RedirectLayer(t.send).send(req("/v2/x/blobs/b", follow_redirects=True))
    assert resp.status == 200
    assert t.seen == ["GET https://reg.example:5000/v2/x/blobs/b", "GET https://reg.example:5000/v2/y/blobs/b",
                      "GET https://cdn.example/b?sig=1"]


def test_redirect_not_followed_unless_asked_nor_for_uploads():
    t = FakeTransport(FakeResponse(307, {"Location": "/elsewhere"}), FakeResponse(307, {"Location": "/elsewhere"}))
    assert RedirectLayer(t.send).send(req()).status == 307
    assert RedirectLayer(t.send).send(req(method="PUT", follow_redirects=True)).status == 307
    assert len(t.requests) == 2


def test_redirect_loop_says_so():
    t = FakeTransport(*[lambda r: FakeResponse(307, {"Location": r.url.target})] * 11)
    with pytest.raises(errors.RegistryError) as ei:
        RedirectLayer(t.send).send(req("/v2/x/blobs/b", what="reading blob b", follow_redirects=True))
    assert str(ei.value) == "reading blob b: too many redirects (10) at https://reg.example:5000/v2/x/blobs/b"
    assert len(t.requests) == 11


def test_redirect_to_an_unsupported_scheme():
    t = FakeTransport(FakeResponse(302, {"Location": "ftp://files.example/b"}))
    with pytest.raises(errors.RegistryError) as ei:
        RedirectLayer(t.send).send(req(what="reading blob b", follow_redirects=True))
    assert "redirected to an unsupported URL 'ftp://files.example/b'" in str(ei.value)


# -- the composed client ------------------------------------------------------------------


def client(*script, insecure=False, **ctx) -> tuple[Client, FakeTransport]:
    t = FakeTransport(*script)
    ctx.setdefault("no_creds", True)
    ctx.setdefault("retry_delay", 0)
    return Client("reg.example:5000", SystemContext(**ctx), insecure=insecure, transport=t), t


def test_client_redirect_to_storage_drops_the_registry_token():
    c, t = client(FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="https://reg.example:5000/token"'}),
                  FakeResponse(200, body=json.dumps({"token": "T"}).encode()),  # the token request
                  FakeResponse(307, {"Location": "https://storage.example/b"}),
                  FakeResponse(200, body=b"blob"))
    resp = c.request("GET", "/v2/x/blobs/b", scopes=("repository:x:pull",), what="w", follow_redirects=True)
    assert resp.status == 200
    assert t.seen == ["GET https://reg.example:5000/v2/", "GET https://reg.example:5000/token?scope=repository:x:pull",
                      "GET https://reg.example:5000/v2/x/blobs/b", "GET https://storage.example/b"]
    assert t.requests[2].headers["Authorization"] == "Bearer T"
    assert "Authorization" not in t.requests[3].headers


def test_client_ping_tls_failure_then_plain_http_for_an_insecure_registry():
    import ssl

    c, t = client(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), FakeResponse(200),
                  FakeResponse(200, body=b"{}"), insecure=True)
    c.request("GET", "/v2/x/manifests/1", scopes=(), what="w")
    assert t.seen == ["GET https://reg.example:5000/v2/", "GET http://reg.example:5000/v2/",
                      "GET http://reg.example:5000/v2/x/manifests/1"]
    assert c.scheme == "http"


def test_client_ping_refused_on_first_contact_is_final():
    c, t = client(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    with pytest.raises(errors.NetworkError) as ei:
        c.ping()
    assert str(ei.value) == "pinging container registry reg.example:5000: reg.example:5000: connection refused"
    assert len(t.requests) == 1


def test_client_ping_5xx_retried_then_reported():
    c, t = client(*[lambda r: FakeResponse(503, body=b'{"errors":[{"code":"UNAVAILABLE","message":"down"}]}')] * 3,
                  retry_times=2)
    with pytest.raises(errors.RegistryError) as ei:
        c.ping()
    assert len(t.requests) == 3 and "answered HTTP 503: unavailable: down" in str(ei.value)


def test_client_network_errors_become_one_line_errors_and_close_reaches_the_transport():
    c, t = client(FakeResponse(200), MalformedResponse("not an HTTP response: b'SSH-2.0'"))
    with pytest.raises(errors.NetworkError) as ei:
        c.request("GET", "/v2/x/manifests/1", scopes=(), what="reading manifest 1")
    assert str(ei.value) == "reading manifest 1: reg.example:5000: not an HTTP response: b'SSH-2.0'"
    c.close()
    assert t.closed


def test_describe_os_error_says_no_such_host_as_go():
    import socket

    from pallet.transports.docker._client import describe_os_error

    nx = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_os_error(nx).startswith("cannot resolve host name: no such host")
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert describe_os_error(again) == "cannot resolve host name: no such host (Temporary failure in name resolution)"
    other = socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution")
    assert "no such host" not in describe_os_error(other) and "cannot resolve host name" in describe_os_error(other)
