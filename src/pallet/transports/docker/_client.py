"""One registry host: ping (scheme choice), the layer stack, error mapping.

A :class:`Client` is what source, destination, ``list_tags`` and ``login`` share. It
composes the layers of :mod:`._layers` (redirects, then authentication, then retries,
then the network :class:`~._layers.Transport`) and sends every request through them,
then turns every failure into a one-line :class:`~pallet.errors.PalletError`. Pass a
``transport`` (anything with ``send(request)`` and ``close()``) to run the client's logic
without a network.
"""

from __future__ import annotations

import os
import sys
import _thread  # locks only: threading costs an import on every registry command

from ...errors import (AccessDenied, AuthenticationRequired, BlobNotFound, NetworkError, NotFound,
                       PalletError, RegistryError, Unsupported)
from ..._std import http as _http
from ._auth import Authenticator, parse_challenges
from ._layers import AuthLayer, RedirectLayer, Request, RetryLayer, Transport
from ._retry import RetryPolicy, is_transient

#: what a registry error body may be at most (it is JSON; more is not an error body)
_MAX_ERROR_BODY = 1 << 16
#: manifests larger than this are refused (containers/image's limit)
MAX_MANIFEST_SIZE = 4 << 20
_NOT_FOUND_CODES = ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN", "NOT_FOUND")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


def cert_dirs(host: str, ctx) -> list[str]:
    """Directories of certificates for ``host``: ``ctx.cert_dir``, else the containers/docker defaults."""
    if getattr(ctx, "cert_dir", None):
        return [ctx.cert_dir]
    return [os.path.join("/etc/containers/certs.d", host), os.path.join("/etc/docker/certs.d", host)]


def tls_config(host: str, ctx, verify: bool) -> _http.TLSConfig:
    """CA files (``*.crt``) and client pairs (``*.cert`` + ``*.key``) from the certificate directories."""
    from ...errors import ConfigError

    cas, pairs = [], []
    for d in cert_dirs(host, ctx):
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"cannot read certificate directory {d}: {e.strerror}") from None
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".crt"):
                cas.append(p)
            elif n.endswith(".cert"):
                key = p[: -len(".cert")] + ".key"
                if not os.path.exists(key):
                    raise ConfigError(f"client certificate {p} has no matching key {key}")
                pairs.append((p, key))
            elif n.endswith(".key"):
                if not os.path.exists(p[: -len(".key")] + ".cert"):
                    raise ConfigError(f"client key {p} has no matching certificate {p[:-4]}.cert")
        if cas or pairs:
            break
    return _http.TLSConfig(verify, tuple(cas), tuple(pairs))


def describe_os_error(e: BaseException) -> str:
    """A short phrase for a connection failure (no tracebacks, no secrets)."""
    import errno

    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(e, TimeoutError) or type(e).__name__ == "timeout":
        return "timed out"
    if type(e).__name__ == "gaierror":
        import socket

        # Go's words for a name that does not exist (scripts written for the peers grep them)
        # (Go says it too when no name server answers: EAI_AGAIN, whose own words follow)
        nx = getattr(e, "errno", None) in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
                                           socket.EAI_AGAIN)
        return f"cannot resolve host name{': no such host' if nx else ''} ({getattr(e, 'strerror', None) or e})"
    if type(e).__name__.startswith("SSL") or "ssl" in type(e).__module__.lower():
        if getattr(e, "verify_message", None):  # say why: "unable to get local issuer certificate"...
            return f"TLS error: certificate verify failed: {e.verify_message}"
        reason = getattr(e, "reason", None) or str(e)
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return f"TLS error: the server does not speak TLS ({reason}; is it a plain-HTTP registry?)"
        return f"TLS error: {reason}"
    if isinstance(e, _http.ProtocolError):
        return str(e)
    if getattr(e, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return os.strerror(e.errno).lower()
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def error_details(body: bytes) -> tuple[str | None, str]:
    """(first error code, "code: message; ...") from a distribution error body, or (None, "")."""
    from ..._std import json

    if body.lstrip()[:1] != b"{":  # not JSON (an HTML page, a plain-HTTP-to-HTTPS 400): spare
        return None, ""            # the parser's error path, which loads the json module
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, ""
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errs, list) or not errs:
        if isinstance(doc, dict) and isinstance(doc.get("details") or doc.get("message"), str):
            return None, (doc.get("details") or doc.get("message"))
        return None, ""
    parts, code = [], None
    for e in errs[:5]:
        if not isinstance(e, dict):
            continue
        c = e.get("code")
        m = e.get("message") or ""
        if code is None and isinstance(c, str):
            code = c
        # as containers/image (distribution's errcode) shows it: "manifest unknown: manifest
        # unknown", "unauthorized: authentication required"; scripts grep for these texts
        name = str(c).lower().replace("_", " ") if isinstance(c, str) and c else ""
        text = f"{name}: {m}" if name and m else str(m or name)
        if text and text not in parts:
            parts.append(text)
    return code, "; ".join(parts)


class Client:
    """Requests to one registry host as one set of credentials; safe for many threads."""

    def __init__(self, host: str, ctx, *, insecure: bool = False, repo_path: str = "", transport=None):
        from .. import credentials

        self.host = host
        self.ctx = ctx
        api_host = DOCKER_HUB_API if host == DOCKER_HUB else host
        self._api_host, self._api_port = _http.split_host_port(api_host, 0)
        if self._api_port > 65535 or (self._api_port == 0 and api_host.endswith(":0")):
            from ...errors import InvalidReference

            raise InvalidReference(f"{host}: invalid port {self._api_port} (a port is 1 to 65535)")
        tls_verify = getattr(ctx, "tls_verify", None)
        if tls_verify is None:
            tls_verify = not insecure
        self.tls_verify = tls_verify
        self.debug = bool(getattr(ctx, "debug", False))
        self.user_agent = getattr(ctx, "user_agent", None) or "pallet"
        self.retry = RetryPolicy.from_context(ctx)
        creds = bearer = None
        if not getattr(ctx, "no_creds", False):
            if getattr(ctx, "creds", None):
                creds = credentials.parse_creds(ctx.creds)
            elif getattr(ctx, "registry_token", None):
                bearer = ctx.registry_token
            else:
                creds = credentials.lookup(host, repo_path, ctx)
        self.auth = Authenticator(host, creds, bearer, fetch_token=self._fetch_token)
        self._tls: _http.TLSConfig | None = None
        self.scheme: str | None = None
        self._ping_lock = _thread.allocate_lock()
        log = self.log if self.debug else None
        #: the network (or a stand-in): ``send(Request) -> response``, ``close()``
        self.transport = transport if transport is not None else Transport(self.tls, log)
        #: retries only: what token requests go through
        self._retrying = RetryLayer(self.transport.send, self.retry, log)
        self._authing = AuthLayer(self._retrying.send, self.auth)
        #: the whole stack: redirects -> auth -> retries -> transport
        self.send = RedirectLayer(self._authing.send).send

    # -- plumbing --------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        if self.debug:
            from ... import _log

            if _log.enabled:
                _log.debug(msg)
            else:
                print(f"DEBUG {msg}", file=sys.stderr)

    def tls(self) -> _http.TLSConfig:
        if self._tls is None:
            self._tls = tls_config(self.host, self.ctx, self.tls_verify)
        return self._tls

    def base_url(self, scheme: str | None = None) -> _http.URL:
        scheme = scheme or self.scheme or "https"
        port = self._api_port or (443 if scheme == "https" else 80)
        return _http.URL(scheme, self._api_host, port, "/")

    def url(self, path: str) -> _http.URL:
        """``/v2/...`` on this registry, or an absolute URL (upload locations, Link headers)."""
        self.ping()
        return self.base_url().join(path)

    def close(self) -> None:
        self.transport.close()

    def _network_error(self, e: BaseException, what: str, scheme: str | None = None) -> NetworkError:
        hint = ""
        if (scheme or self.scheme) != "http" and "TLS error" in describe_os_error(e) and self.tls_verify:
            hint = " (for a registry without valid TLS use --tls-verify=false)"
        return NetworkError(f"{what}: {self.host}: {describe_os_error(e)}{hint}")

    # -- ping ------------------------------------------------------------------------------

    def ping(self) -> None:
        """Find the scheme and the authentication challenges (``GET /v2/``), once.

        HTTPS is required unless TLS verification is off (``--tls-verify=false`` or an
        ``insecure`` registry); then HTTPS without verification and plain HTTP are both
        accepted, and HTTPS is probed first, as containers/image does (a TLS handshake
        that fails is not retried: plain HTTP is tried at once). Only a registry answer
        (200/401) is accepted from plain HTTP.
        """
        if self.scheme is not None:
            return
        with self._ping_lock:
            if self.scheme is not None:
                return
            self._ping_locked()

    def _ping_locked(self) -> None:
        from ._retry import parse_retry_after

        schemes = ("https", "http") if not self.tls_verify else ("https",)
        what = f"pinging container registry {self.host}"
        attempt = 0
        while True:
            # one try per scheme per round; the retry policy spaces the rounds
            errs: dict[str, PalletError] = {}
            retryable, retry_after = False, None
            for scheme in schemes:
                url = self.base_url(scheme).join("/v2/")
                try:
                    resp = self.transport.send(Request("GET", url, {"User-Agent": self.user_agent}, what=what))
                except OSError as e:
                    errs[scheme] = self._network_error(e, what, scheme)
                    self.log(str(errs[scheme]))
                    retryable = retryable or is_transient(e, first_contact=True)
                    continue
                body = read_limited(resp)
                if resp.status in (200, 401):
                    self.auth.set_challenges(parse_challenges(resp.headers.get_all("www-authenticate")))
                    self._authing.origin = url.origin
                    self.scheme = scheme
                    return
                code, detail = error_details(body)
                errs[scheme] = RegistryError(f"{what}: {url} answered HTTP {resp.status}"
                                             f"{': ' + detail if detail else ''} (is it a registry?)",
                                             resp.status, code)
                if self.retry.should_retry_status(resp.status):
                    retryable = True
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
            err = errs.get("https") or errs.get("http")
            if len(errs) == 2:  # both schemes failed: say both when they differ, each is a clue
                a, b = (str(errs[k]).split(": ", 1)[-1] for k in ("https", "http"))
                if a != b:
                    err = type(err)(f"{what}: https: {a}; http: {b}")
            if not retryable or attempt >= self.retry.times:
                raise err
            attempt += 1
            wait = self.retry.wait_for(attempt, retry_after)
            self.log(f"{what}: {err}; retry {attempt}/{self.retry.times} in {wait:.1f}s")
            self.retry.sleep(wait)

    def _fetch_token(self, url_text: str, headers: dict) -> tuple[int, bytes]:
        url = _http.URL.parse(url_text)
        realm = f"{url.scheme}://{url.netloc}{url.target.split('?', 1)[0]}"
        what = f"getting a token from {realm}"
        try:
            resp = self._retrying.send(Request("GET", url, {"User-Agent": self.user_agent, **headers}, what=what))
        except OSError as e:
            raise self._network_error(e, what) from None
        body = read_limited(resp, 1 << 20, what) if resp.status == 200 else read_limited(resp, 1 << 20)
        return resp.status, body

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, scopes: tuple[str, ...], what: str,
                headers: dict | None = None, body=None, follow_redirects: bool = False) -> _http.Response:
        """Send a request through the layers and return the response, whatever its status
        (see :meth:`check`).

        Retries (connection errors, 5xx, 429) apply when the body can be sent again.
        A 401 is answered once by fetching a fresh token (it may have expired, or the registry
        asks for another scope). Redirects are followed for GET/HEAD when asked, without the
        registry's Authorization when they lead to another host.
        """
        url = self.url(path)
        h = {"User-Agent": self.user_agent}
        if headers:
            h.update(headers)
        req = Request(method, url, h, body, scopes=scopes, what=what, follow_redirects=follow_redirects)
        try:
            return self.send(req)
        except OSError as e:
            raise self._network_error(e, what) from None

    def check(self, resp: _http.Response, ok: tuple[int, ...], what: str, *, blob: bool = False) -> _http.Response:
        """Return ``resp`` if its status is in ``ok``; else read its error body and raise."""
        if resp.status in ok:
            return resp
        body = read_limited(resp)
        code, detail = error_details(body)
        status = resp.status
        if status == 401:
            # the registry's own words first (skopeo passes them through and scripts grep for
            # them), then what pallet knows: whose credentials failed, or how to give some
            detail = detail or "unauthorized: authentication required"
            if self.auth.creds is not None or self.auth.bearer:
                src = "the registry token" if self.auth.bearer else (
                    f"user {self.auth.creds.username!r} (from {self.auth.creds.source or 'the command line'})")
                raise AuthenticationRequired(f"{what}: {detail}; authentication failed at {self.host} for {src}")
            raise AuthenticationRequired(f"{what}: {detail}; {self.host} requires authentication: log in with "
                                         f"'pallet login {self.host}' or pass --creds USER:PASSWORD")
        if status == 403:
            raise AccessDenied(f"{what}: access denied by {self.host}{': ' + detail if detail else ''}")
        if status == 404 or code in _NOT_FOUND_CODES:
            cls = BlobNotFound if blob or code == "BLOB_UNKNOWN" else NotFound
            raise cls(f"{what}: {detail or 'not found'}")
        if status == 405 or code == "UNSUPPORTED":
            raise Unsupported(f"{what}: {self.host} does not support this operation (HTTP {status}"
                              f"{': ' + detail if detail else ''})")
        if status == 429:
            raise RegistryError(f"{what}: {self.host} keeps answering 429 too many requests"
                                f"{': ' + detail if detail else ''}; try again later", status, code)
        raise RegistryError(f"{what}: {self.host} answered HTTP {status}{' ' + resp.reason if resp.reason else ''}"
                            f"{': ' + detail if detail else ''}", status, code)


def read_limited(resp: _http.Response, limit: int = _MAX_ERROR_BODY, what: str | None = None,
                  host: str = "") -> bytes:
    """Up to ``limit`` bytes of a (small) body; a longer body is cut and its connection dropped.

    With ``what`` (a document we will use: a manifest, a token, a tag list) a body cut short
    is a NetworkError saying so; without it (an error body, only shown) what arrived is kept."""
    parts, got = [], 0
    try:
        while got <= limit:
            b = resp.read(min(65536, limit + 1 - got))
            if not b:
                break
            parts.append(b)
            got += len(b)
    except OSError as e:
        if what is not None:
            raise NetworkError(f"{what}: {host + ': ' if host else ''}{describe_os_error(e)}") from None
    if got > limit:
        resp._abort()
    else:
        resp.close()
    return b"".join(parts)[:limit]
