"""The registry client as a stack of small layers, each with one ``send(request) -> response``.

::

    Client.send = RedirectLayer -> AuthLayer -> RetryLayer -> Transport      (registry requests)
    token fetch =                               RetryLayer -> Transport      (the realm's server)
    ping        =                                             Transport      (its own per-scheme retry)

Each layer is built on the next one's ``send`` and knows one thing: the :class:`Transport`
the network (connection pools, TLS, proxies: :mod:`._http`); :class:`RetryLayer` when
another try is worth it (:class:`._retry.RetryPolicy`); :class:`AuthLayer` the
Authorization header and the answer to a 401 (:class:`._auth.Authenticator`);
:class:`RedirectLayer` where a redirect leads. Only the Transport touches a socket, so the
logic above it is tested against a scripted stand-in (``tests/transports/test_docker_layers.py``); the
interop tests run the whole stack against a real registry.

A response is anything with ``status``, ``reason``, ``headers`` (:class:`._http.Headers`),
``read(n)``, ``close()``: :class:`._http.Response` on the network. Failures to connect or
to read are ``OSError`` (the client turns them into one-line ``NetworkError``); a layer's
own verdicts (too many redirects) are :class:`~pallet.errors.PalletError`.
"""

from __future__ import annotations

import _thread  # locks only: threading costs an import on every registry command

from ..._std import http as _http

#: statuses whose Location is followed (for GET and HEAD only)
REDIRECTS = (301, 302, 303, 307, 308)
#: redirects followed for one request (Go's http.Client stops after 10)
MAX_REDIRECTS = 10


class Request:
    """One HTTP request and what the layers need to know about it.

    ``scopes``: the token scopes it needs (AuthLayer); ``what``: the operation, for error
    messages; ``follow_redirects``: whether RedirectLayer follows a redirect answer (blob
    downloads do; uploads must not). A body that is a :class:`._http.StreamBody` can be
    sent once only: it is never retried, re-authenticated or redirected.
    """

    __slots__ = ("method", "url", "headers", "body", "scopes", "what", "follow_redirects")

    def __init__(self, method: str, url: _http.URL, headers: dict[str, str] | None = None, body=None, *,
                 scopes: tuple[str, ...] = (), what: str = "", follow_redirects: bool = False):
        self.method = method
        self.url = url
        self.headers = headers if headers is not None else {}
        self.body = body
        self.scopes = scopes
        self.what = what or f"{method} {url.netloc}"
        self.follow_redirects = follow_redirects

    @property
    def replayable(self) -> bool:
        return not isinstance(self.body, _http.StreamBody)

    def replace(self, **changes) -> "Request":
        r = Request(self.method, self.url, dict(self.headers), self.body, scopes=self.scopes, what=self.what,
                    follow_redirects=self.follow_redirects)
        for k, v in changes.items():
            setattr(r, k, v)
        return r

    def __repr__(self) -> str:  # never the headers: they may hold a secret
        return f"Request({self.method} {self.url.scheme}://{self.url.netloc}{self.url.target.split('?', 1)[0]})"


def _show(url: _http.URL) -> str:
    """A URL for logs and messages, without its query (upload states, token parameters)."""
    return f"{url.scheme}://{url.netloc}{url.target.split('?', 1)[0]}"


class Transport:
    """The network: one :class:`._http.Pool` per origin (keep-alive, TLS, proxy); thread-safe.

    ``tls()`` gives the :class:`._http.TLSConfig` for https origins; it is asked for lazily,
    on the first https connection (reading certificate directories costs time)."""

    def __init__(self, tls, log=None):
        self._tls = tls
        self._log = log
        self._pools: dict[tuple, _http.Pool] = {}
        self._lock = _thread.allocate_lock()

    def pool(self, url: _http.URL) -> _http.Pool:
        key = url.origin
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = _http.Pool(url.scheme, url.host, url.port, self._tls() if url.scheme == "https" else None)
                self._pools[key] = pool
            return pool

    def send(self, req: Request):
        resp = self.pool(req.url).request(req.method, req.url, req.headers, req.body)
        if self._log is not None:
            self._log(f"{req.method} {_show(req.url)} -> {resp.status}")
        return resp

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for p in pools:
            p.close()


class RetryLayer:
    """Sends a request again while ``policy`` says the failure is transient (see
    :mod:`._retry`: connection cut, timeout, 429, 5xx; never a TLS or DNS failure). A
    streamed body cannot be sent twice: such a request gets one try."""

    def __init__(self, send, policy, log=None):
        self.next = send
        self.policy = policy
        self._log = log

    def send(self, req: Request):
        if not req.replayable or self.policy.times == 0:
            return self.next(req)
        on_retry = None
        if self._log is not None:
            def on_retry(attempt, wait, reason):
                self._log(f"{req.method} {_show(req.url)}: {reason}, retry {attempt}/{self.policy.times} "
                          f"in {wait:.1f}s")
        return self.policy.run(lambda: self.next(req), on_retry)


class AuthLayer:
    """Adds the registry's Authorization header to requests for its origin (and to no
    other: a redirect to a storage host gets none), and answers a 401 that carries a
    challenge once: the token may have expired or the registry wants other scopes, so the
    cached token is dropped and the request sent again with a fresh one. A fixed token
    (``--registry-token``) is never renewed."""

    def __init__(self, send, auth, origin: tuple | None = None):
        self.next = send
        self.auth = auth
        #: the registry's (scheme, host, port), known once it is pinged
        self.origin = origin

    def _authorized(self, req: Request) -> Request:
        value = self.auth.header(req.scopes)
        if not value:
            return req
        return req.replace(headers={**req.headers, "Authorization": value})

    def send(self, req: Request):
        if self.origin is None or req.url.origin != self.origin:
            return self.next(req)
        resp = self.next(self._authorized(req))
        if resp.status != 401 or not req.replayable or self.auth.bearer:
            return resp
        from ._auth import parse_challenges

        challenges = parse_challenges(resp.headers.get_all("www-authenticate"))
        if not challenges:
            return resp
        resp.close()
        self.auth.invalidate(req.scopes)
        self.auth.set_challenges(challenges)
        return self.next(self._authorized(req))


class RedirectLayer:
    """Follows redirects of requests that ask for it (GET and HEAD only), up to ``limit``
    hops; each hop goes through the layers below again (a hop to another host gets no
    Authorization, a flaky hop is retried)."""

    def __init__(self, send, limit: int = MAX_REDIRECTS):
        self.next = send
        self.limit = limit

    def send(self, req: Request):
        if not req.follow_redirects or req.method not in ("GET", "HEAD"):
            return self.next(req)
        hops = 0
        while True:
            resp = self.next(req)
            if resp.status not in REDIRECTS:
                return resp
            loc = resp.headers.get("location")
            if not loc:
                return resp
            resp.close()
            if hops >= self.limit:
                from ...errors import RegistryError

                raise RegistryError(f"{req.what}: too many redirects ({hops}) at {_show(req.url)}", resp.status)
            hops += 1
            try:
                url = req.url.join(loc)
            except ValueError:
                from ...errors import RegistryError

                raise RegistryError(f"{req.what}: {req.url.netloc} redirected to an unsupported URL "
                                    f"{loc[:200]!r}", resp.status) from None
            req = req.replace(url=url)
