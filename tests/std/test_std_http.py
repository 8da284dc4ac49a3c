"""Differential test of the HTTP/1.1 response codec of ``pallet._std.http`` against
``http.client``, which it stands in for: the same raw bytes go to both over a socketpair;
both must agree on status, headers and body, or both refuse the response.

Where the two differ on purpose, the case is listed in STRICTER with the reason: there
pallet refuses, as Go's net/http (what skopeo and podman use) does, a response that
http.client reads by guessing (a body framing it cannot trust).
"""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from pallet._std.http import Connection, Pool, ProtocolError, Response, URL

pytestmark = pytest.mark.unit


def _feed(raw: bytes) -> socket.socket:
    a, b = socket.socketpair()

    def write():
        try:
            b.sendall(raw)
        except OSError:
            pass
        finally:
            b.close()  # the server closes: a close-delimited body ends here

    threading.Thread(target=write, daemon=True).start()
    return a


def _norm(v: str) -> str:
    return " ".join(v.split())  # a folded (obs-fold) value is one value with single spaces


def ours(raw: bytes, method: str = "GET"):
    sock = _feed(raw)
    conn = Connection(Pool("http", "peer.example", 80), sock)
    try:
        status, reason, headers = conn.read_head()
        resp = Response(conn, status, reason, headers, method, URL("http", "peer.example", 80, "/"))
        body = resp.read()
    except (ProtocolError, OSError) as e:
        return ("refused", type(e).__name__)
    finally:
        conn.close()
    return status, [(k, _norm(v)) for k, v in headers.items()], body


def theirs(raw: bytes, method: str = "GET"):
    sock = _feed(raw)
    resp = http.client.HTTPResponse(sock, method=method)
    try:
        resp.begin()
        body = resp.read()
    except (http.client.HTTPException, OSError, ValueError) as e:
        return ("refused", type(e).__name__)
    finally:
        resp.close()
        sock.close()
    return resp.status, [(k.lower(), _norm(v)) for k, v in resp.getheaders()], body


CASES = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    "content-length zero": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "chunked with extensions and trailers":
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
    "chunked wins over content-length":
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "chunked upper-case hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\": 1}\n",
    "close-delimited http/1.0": b"HTTP/1.0 200 OK\r\n\r\nold body",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "no reason phrase": b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
    "reason with spaces": b"HTTP/1.1 401 Unauthorized Really Now\r\nContent-Length: 0\r\n\r\n",
    "several spaces after the version": b"HTTP/1.1   200 OK\r\nContent-Length: 1\r\n\r\nx",
    "repeated headers": b"HTTP/1.1 401 U\r\nWWW-Authenticate: Basic realm=\"a\"\r\n"
                        b"WWW-Authenticate: Bearer realm=\"b\"\r\nContent-Length: 0\r\n\r\n",
    "folded header": b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n\tthird\r\nContent-Length: 0\r\n\r\n",
    "odd header spacing and case": b"HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh:3\r\nX-Empty:\r\nX-Pad:   v  \r\n\r\nabc",
    "100 continue first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    "HEAD with a length": (b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD"),
    "204 no body": b"HTTP/1.1 204 No Content\r\n\r\n",
    "304 no body": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    "body shorter than content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    "chunked cut inside a chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    "chunked cut before the last chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    "invalid chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "empty answer": b"",
    "negative chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
    "lower-case protocol": b"http/1.1 200 OK\r\n\r\n",
    "HTTP/2 status line": b"HTTP/2 200 OK\r\n\r\n",
    "status not a number": b"HTTP/1.1 OK 200\r\n\r\n",
    "status of four digits": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "status under 100": b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    "status line alone": b"HTTP/1.1\r\n\r\n",
}

#: cases where pallet refuses (as Go's net/http does) and http.client guesses a framing,
#: takes a truncated head as complete, or reads a signed number
STRICTER = {
    "content-length not a number": b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
    "negative content-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    "content-length with a sign": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "conflicting content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    "status with a sign": b"HTTP/1.1 +200 OK\r\nContent-Length: 0\r\n\r\n",
    "headers cut by the connection closing": b"HTTP/1.1 200 OK\r\nContent-Le",
    "chunk size with 0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
}


def _args(case):
    return case if isinstance(case, tuple) else (case, "GET")


@pytest.mark.parametrize("name", sorted(CASES))
def test_codec_agrees_with_http_client(name):
    raw, method = _args(CASES[name])
    mine, ref = ours(raw, method), theirs(raw, method)
    if ref[0] == "refused":
        assert mine[0] == "refused", f"http.client refuses ({ref[1]}), pallet read {mine!r}"
    else:
        assert mine == ref


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_codec_refuses_an_untrustworthy_framing(name):
    raw, method = _args(STRICTER[name])
    assert theirs(raw, method)[0] != "refused"  # still a difference worth listing
    assert ours(raw, method)[0] == "refused"


def test_identical_repeated_content_length_is_accepted():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    assert ours(raw)[2] == b"hello"
