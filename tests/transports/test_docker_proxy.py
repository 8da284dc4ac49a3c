"""docker:// through an HTTP proxy from the environment (HTTP_PROXY, HTTPS_PROXY with CONNECT,
NO_PROXY), with Go's httpproxy rules: a small forward proxy on 127.0.0.1 written here, in front
of the real registry. The registry is named ``registry.pallet.test``, a name that does not
resolve: only the proxy (which sends every name to the registry) can reach it."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

import images
from conftest import run_pallet
from tcpserver import TCPServer, relay
from test_docker_tls import PKI, TLSTerminator

pytestmark = pytest.mark.usefixtures("isolated")

NAME = "registry.pallet.test"


class ForwardProxy(TCPServer):
    """HTTP forward proxy: absolute-form requests and CONNECT tunnels, every target host
    sent to ``upstream`` (host:port); it records each request line it is asked for."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.requests: list[str] = []
        self.auth: list[str | None] = []
        self._lock = threading.Lock()
        super().__init__()
        self.url = f"http://{self.host}"

    def serve(self, c):
        up = None
        try:
            head = b""  # byte by byte: nothing after the head may be buffered here
            while not head.endswith(b"\r\n\r\n"):
                b = c.recv(1)
                if not b:
                    return
                head += b
            lines = head.decode("latin-1").split("\r\n")
            first, headers = lines[0], [h for h in lines[1:] if h]
            with self._lock:
                self.requests.append(first)
                self.auth.append(next((h.split(":", 1)[1].strip() for h in headers
                                       if h.lower().startswith("proxy-authorization:")), None))
            up = socket.create_connection(self.upstream)
            if first.startswith("CONNECT "):
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # the registry (Go) takes the absolute form as it is
                up.sendall(("\r\n".join([first] + headers) + "\r\n\r\n").encode("latin-1"))
            self._relay(c, up)
        except OSError:
            pass
        finally:
            c.close()
            if up is not None:
                up.close()

    def _relay(self, c, up):
        def seen(data):
            if b" http://" in data:  # keep-alive: later absolute-form request lines
                with self._lock:
                    for line in data.split(b"\r\n"):
                        if b" http://" in line and line.endswith(b"HTTP/1.1"):
                            self.requests.append(line.decode("latin-1"))

        relay(c, up, seen)


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    layout = str(tmp_path_factory.mktemp("proxy") / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "proxy"}])
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{registry.host}/proxy/img:v1"], check=True, capture_output=True)
    return "proxy/img:v1"


@pytest.fixture
def proxy(registry):
    p = ForwardProxy(registry.host)
    yield p
    p.stop()


def _env(**kw):
    base = {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    return base, kw


def inspect(ref, *flags, **env):
    base, extra = _env(**env)
    return run_pallet("inspect", "--no-tags", "--retry-times", "0", *flags, ref, check=False,
                      base_env=base, env=extra)


def test_http_proxy(registry, pushed, proxy):
    port = registry.port
    ref = f"docker://{NAME}:{port}/{pushed}"
    p = inspect(ref, "--tls-verify=false", HTTP_PROXY=proxy.url)
    assert p.returncode == 0, p.stderr
    assert f"GET http://{NAME}:{port}/v2/ HTTP/1.1" in proxy.requests
    assert any(r.startswith(f"GET http://{NAME}:{port}/v2/{pushed.split(':')[0]}/manifests/") for r in proxy.requests)
    # the lower-case variable, and proxy credentials sent as Proxy-Authorization
    before = len(proxy.requests)
    p = inspect(ref, "--tls-verify=false", http_proxy=proxy.url.replace("http://", "http://u%3A1:s3cret@"))
    assert p.returncode == 0, p.stderr
    assert len(proxy.requests) > before
    import base64

    assert proxy.auth[-1] == "Basic " + base64.b64encode(b"u:1:s3cret").decode()
    assert "s3cret" not in p.stderr + p.stdout


@pytest.mark.parametrize("no_proxy, proxied", [
    (NAME, False), ("pallet.test", False), (".pallet.test", False), ("*.pallet.test", False), ("*", False),
    (f"{NAME}:1", True), ("other.test, .test.pallet", True), (f"x,{NAME}:{{port}}", False),
    ("registry.pallet.tes", True), ("127.0.0.0/8", True),
])
def test_no_proxy(registry, pushed, proxy, no_proxy, proxied):
    ref = f"docker://{NAME}:{registry.port}/{pushed}"
    p = inspect(ref, "--tls-verify=false", HTTP_PROXY=proxy.url, NO_PROXY=no_proxy.replace("{port}", str(registry.port)))
    if proxied:
        assert p.returncode == 0, p.stderr
        assert proxy.requests
    else:  # straight to a name that does not resolve
        assert p.returncode != 0 and "cannot resolve host name" in p.stderr, p.stderr
        assert proxy.requests == []


def test_loopback_is_never_proxied(registry, pushed, proxy):
    for host in (registry.host, f"localhost:{registry.port}"):
        p = inspect(f"docker://{host}/{pushed}", "--tls-verify=false", HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url)
        assert p.returncode == 0, p.stderr
    assert proxy.requests == []


def test_https_proxy_connect(registry, pushed, tmp_path):
    pki = PKI(str(tmp_path))
    term = TLSTerminator(pki, registry.host)
    proxy = ForwardProxy(term.host)
    try:
        ref = f"docker://{NAME}:{term.host.rsplit(':', 1)[1]}/{pushed}"
        certs = pki.cert_dir("certs")
        p = inspect(ref, "--cert-dir", certs, HTTPS_PROXY=proxy.url)
        assert p.returncode == 0, p.stderr  # verified TLS to the registry, through the tunnel
        assert proxy.requests and all(r == f"CONNECT {ref.split('/')[2]} HTTP/1.1" for r in proxy.requests)
        assert term.handshakes >= 1
        n = len(proxy.requests)
        p = inspect(ref, "--cert-dir", certs, https_proxy=proxy.url.replace("http://", ""))  # no scheme: http
        assert p.returncode == 0, p.stderr
        assert len(proxy.requests) > n
        # HTTP_PROXY is for http only
        p = inspect(ref, "--cert-dir", certs, HTTP_PROXY=proxy.url)
        assert p.returncode != 0 and "cannot resolve host name" in p.stderr
    finally:
        proxy.stop()
        term.stop()


def test_proxy_errors_are_one_line(registry, pushed):
    ref = f"docker://{NAME}:{registry.port}/{pushed}"
    p = inspect(ref, HTTPS_PROXY="socks5://127.0.0.1:1080")
    assert p.returncode != 0 and "HTTPS_PROXY" in p.stderr and "socks5" in p.stderr, p.stderr
    p = inspect(ref, HTTPS_PROXY="http://127.0.0.1:1")
    assert p.returncode != 0 and "proxy http://127.0.0.1:1: " in p.stderr and "refused" in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1
