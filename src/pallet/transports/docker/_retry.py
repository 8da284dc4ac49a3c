"""When and how long to wait before trying a registry request again.

One policy object decides, so retrying is a visible layer and not ``try`` blocks spread
over the client: transient connection errors (:func:`is_transient`), HTTP 5xx (but not
501/505) and 429 are retried up to ``times`` more times; the wait is ``Retry-After`` when
the server sends one (seconds or an HTTP date), else the fixed ``delay`` when set, else
exponential backoff from 1 s.

Deterministic failures are not retried, as containers/common's ``pkg/retry`` decides
(``IsErrorRetryable``): a TLS handshake that fails (a plain-HTTP peer, a certificate that
does not verify), a host name that does not resolve, an invalid address. They fail at once
with their reason instead of after 7 s of backoff. A refused connection is retried only
once the registry has answered before (a registry restarting mid-copy); on first contact
(the ping) nothing is listening there and another try would not change that.
"""

from __future__ import annotations

import errno as _errno

import time

#: statuses worth another try: the server is overloaded or briefly broken
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: longest wait we accept from a Retry-After header
MAX_RETRY_AFTER = 120.0
MAX_BACKOFF = 30.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime  # only on this rare path

        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


#: errnos of a network that may come back (containers/common's isErrnoRetryable)
_TRANSIENT_ERRNOS = frozenset({
    _errno.ECONNREFUSED, _errno.EINTR, _errno.EAGAIN, _errno.EBUSY, _errno.ENETDOWN, _errno.ENETUNREACH,
    _errno.ENETRESET, _errno.ECONNABORTED, _errno.ECONNRESET, _errno.ETIMEDOUT, _errno.EHOSTDOWN,
    _errno.EHOSTUNREACH, _errno.EPIPE})


def is_transient(e: BaseException, first_contact: bool = False) -> bool:
    """Whether another try of the request that raised ``e`` may succeed.

    Yes: a connection reset, aborted or closed mid-response (``ProtocolError``), a timeout,
    an unreachable network, a temporary DNS failure (EAI_AGAIN). No: TLS failures (the
    handshake with a plain-HTTP server, certificate verification), names that do not
    resolve, invalid addresses, anything unknown. ``first_contact``: a refused connection
    before the registry ever answered is final too.
    """
    if not isinstance(e, OSError):
        return False
    name = type(e).__name__
    if name == "gaierror":
        from ..._std.http import EAI_AGAIN

        return e.errno == EAI_AGAIN
    if name.startswith("SSL") or "ssl" in type(e).__module__.lower():
        # a connection cut inside TLS is a reset; every other TLS error is deterministic
        return name == "SSLEOFError" and not first_contact
    if isinstance(e, TimeoutError) or name == "timeout":
        return True
    if hasattr(e, "transient"):  # _http.ProtocolError: cut short (yes) or not HTTP at all (no)
        return e.transient
    if isinstance(e, ConnectionRefusedError) or e.errno == _errno.ECONNREFUSED:
        return not first_contact
    return e.errno in _TRANSIENT_ERRNOS


class RetryPolicy:
    """``times`` retries after the first attempt; ``delay`` fixed seconds (None: backoff)."""

    def __init__(self, times: int = 3, delay: float | None = None, sleep=time.sleep):
        self.times = max(0, int(times))
        self.delay = delay
        self.sleep = sleep

    @classmethod
    def from_context(cls, ctx) -> "RetryPolicy":
        times = getattr(ctx, "retry_times", 3)
        return cls(3 if times is None else times, getattr(ctx, "retry_delay", None))

    def should_retry_status(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def wait_for(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        if self.delay is not None:
            return self.delay
        return min(MAX_BACKOFF, 2.0 ** (attempt - 1))

    def run(self, attempt_fn, on_retry=None):
        """Call ``attempt_fn()`` until it returns a response that is not retryable or attempts run out.

        ``attempt_fn`` returns an object with ``status`` and ``headers`` (a response) or raises
        ``OSError`` (connection failures, including ``ProtocolError``). A retryable response is
        closed before the next attempt; the last one is returned as is, the last error re-raised.
        ``on_retry(attempt, wait, reason)`` is told about each retry (for --debug logs).
        """
        attempt = 0
        while True:
            try:
                resp = attempt_fn()
            except OSError as e:
                if attempt >= self.times or not is_transient(e):
                    raise
                attempt += 1
                wait = self.wait_for(attempt)
                if on_retry:
                    on_retry(attempt, wait, f"{type(e).__name__}: {e}")
                self.sleep(wait)
                continue
            if not self.should_retry_status(resp.status) or attempt >= self.times:
                return resp
            attempt += 1
            wait = self.wait_for(attempt, parse_retry_after(resp.headers.get("retry-after")))
            if on_retry:
                on_retry(attempt, wait, f"HTTP {resp.status}")
            resp.close()
            self.sleep(wait)
