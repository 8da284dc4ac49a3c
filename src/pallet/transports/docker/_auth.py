"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and Bearer tokens.

The registry says how it wants to be authenticated in the 401 answer to ``GET /v2/``:
``Basic realm=...`` or ``Bearer realm=...,service=...``. For Bearer we ask the realm for a
token with the scopes an operation needs (``repository:NAME:pull`` or ``pull,push``; a
cross-repository mount also needs ``pull`` on the source repository) and reuse it until
``expires_in`` runs out. Secrets never reach a log line or an error message.
"""

from __future__ import annotations

import _thread  # locks only: threading costs an import on every registry command
import time

from ...errors import AuthenticationRequired

#: seconds a token is assumed valid when the server does not say (distribution's default)
DEFAULT_TOKEN_LIFETIME = 60
#: stop using a token this long before it expires
EXPIRY_MARGIN = 5


class Challenge:
    __slots__ = ("scheme", "params")

    def __init__(self, scheme: str, params: dict[str, str]):
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self) -> str:
        return f"Challenge({self.scheme!r}, {self.params!r})"


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (several challenges may share one header)."""
    out: list[Challenge] = []
    for value in values:
        i, n = 0, len(value)
        cur: Challenge | None = None
        while i < n:
            while i < n and value[i] in " \t,":
                i += 1
            if i >= n:
                break
            j = i
            while j < n and value[j] not in " \t,=":
                j += 1
            token = value[i:j]
            k = j
            while k < n and value[k] in " \t":
                k += 1
            if cur is not None and k < n and value[k] == "=":
                # a parameter of the current challenge
                k += 1
                while k < n and value[k] in " \t":
                    k += 1
                if k < n and value[k] == '"':
                    k += 1
                    buf = []
                    while k < n and value[k] != '"':
                        if value[k] == "\\" and k + 1 < n:
                            k += 1
                        buf.append(value[k])
                        k += 1
                    k += 1  # closing quote
                    val = "".join(buf)
                else:
                    m = k
                    while m < n and value[m] not in ",":
                        m += 1
                    val = value[k:m].strip()
                    k = m
                cur.params[token.lower()] = val
                i = k
            else:
                cur = Challenge(token, {})
                out.append(cur)
                i = j
    return out


class Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: float):
        self.value = value
        self.expires = expires

    def __repr__(self) -> str:
        return "Token(<hidden>)"


class Authenticator:
    """Authorization headers for one registry host; thread-safe, caches tokens per scope set.

    ``creds`` is a :class:`~pallet.transports.credentials.Credentials` or None (anonymous);
    ``bearer`` a fixed token (``--registry-token``). ``fetch_token(url, headers)`` is
    supplied by the client (it owns connections and retries) and returns (status, body bytes).
    """

    def __init__(self, host: str, creds=None, bearer: str | None = None, fetch_token=None):
        self.host = host
        self.creds = creds
        self.bearer = bearer
        self.fetch_token = fetch_token
        self.challenges: list[Challenge] | None = None  # None: not pinged yet
        self._tokens: dict[tuple, Token] = {}
        self._lock = _thread.allocate_lock()

    def set_challenges(self, challenges: list[Challenge]) -> None:
        self.challenges = challenges

    def _pick(self) -> Challenge | None:
        if not self.challenges:
            return None
        for scheme in ("bearer", "basic"):
            for c in self.challenges:
                if c.scheme == scheme:
                    return c
        names = ", ".join(sorted({c.scheme for c in self.challenges}))
        raise AuthenticationRequired(f"registry {self.host} asks for an unsupported authentication scheme "
                                     f"({names}); pallet supports Basic and Bearer")

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value for a request needing ``scopes`` (None: send none)."""
        if self.bearer:
            return f"Bearer {self.bearer}"
        ch = self._pick()
        if ch is None:
            return None
        if ch.scheme == "basic":
            if self.creds is None:
                return None
            return "Basic " + basic_credentials(self.creds.username, self.creds.password)
        return f"Bearer {self.token(ch, scopes).value}"

    def invalidate(self, scopes: tuple[str, ...]) -> None:
        with self._lock:
            self._tokens.pop(tuple(sorted(scopes)), None)

    def token(self, ch: Challenge, scopes: tuple[str, ...]) -> Token:
        key = tuple(sorted(scopes))
        with self._lock:
            tok = self._tokens.get(key)
            if tok is not None and tok.expires > time.monotonic():
                return tok
        tok = self._request_token(ch, key)
        with self._lock:
            self._tokens[key] = tok
        return tok

    def _request_token(self, ch: Challenge, scopes: tuple[str, ...]) -> Token:
        from ..._std import json
        from urllib.parse import quote

        realm = ch.params.get("realm")
        if not realm:
            raise AuthenticationRequired(f"registry {self.host} sent a Bearer challenge without a realm")
        query = []
        if ch.params.get("service"):
            query.append("service=" + quote(ch.params["service"], safe=""))
        for s in scopes:
            query.append("scope=" + quote(s, safe=":,/"))
        headers = {}
        if self.creds is not None:
            if self.creds.username:
                query.append("account=" + quote(self.creds.username, safe=""))
            headers["Authorization"] = "Basic " + basic_credentials(self.creds.username, self.creds.password)
        sep = "&" if "?" in realm else "?"
        url = realm + (sep + "&".join(query) if query else "")
        status, body = self.fetch_token(url, headers)
        if status in (401, 403):
            if self.creds is not None:
                raise AuthenticationRequired(f"authentication to {self.host} failed: the token server rejected "
                                             f"the credentials for user {self.creds.username!r} "
                                             f"(from {self.creds.source or 'the command line'})")
            raise AuthenticationRequired(f"authentication required by {self.host}: the token server refused "
                                         f"anonymous access; log in with 'pallet login {self.host}' or pass --creds")
        if status != 200:
            raise AuthenticationRequired(f"token server for {self.host} answered HTTP {status}")
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            value = None
            doc = {}
        if not isinstance(value, str) or not value:
            raise AuthenticationRequired(f"token server for {self.host} answered without a token")
        life = doc.get("expires_in")
        if not isinstance(life, (int, float)) or isinstance(life, bool) or life <= 0:
            life = DEFAULT_TOKEN_LIFETIME
        life = max(1.0, float(life) - EXPIRY_MARGIN) if life > 2 * EXPIRY_MARGIN else float(life) / 2
        return Token(value, time.monotonic() + life)


def basic_credentials(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


def pull_scope(repo_path: str) -> str:
    return f"repository:{repo_path}:pull"


def push_scope(repo_path: str) -> str:
    return f"repository:{repo_path}:pull,push"
