"""TLS of ``pallet._std.http`` (a client over ``_ssl``) against ``ssl``, the module it stands in
for: against a local TLS server presenting certificates of a test CA (good, expired, for
another host, from an unknown CA), both clients reach the same verdict — the same peer
certificate, or the same verification error (code and message) — with the same trust
(the test CA added to the system's, verification on or off)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pallet._std import http

pytestmark = pytest.mark.unit


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn, now):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca, ca_key, names, not_before, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca, ca_key = _ca("pallet std test CA", now)
    other, other_key = _ca("someone else's CA", now)
    leaves = {
        "good": _leaf(ca, ca_key, ["localhost", "127.0.0.1"], now - day, now + 7 * day),
        "expired": _leaf(ca, ca_key, ["localhost", "127.0.0.1"], now - 30 * day, now - 2 * day),
        "not-yet-valid": _leaf(ca, ca_key, ["localhost", "127.0.0.1"], now + 2 * day, now + 30 * day),
        "wrong-host": _leaf(ca, ca_key, ["registry.elsewhere.test"], now - day, now + 7 * day),
        "unknown-ca": _leaf(other, other_key, ["localhost", "127.0.0.1"], now - day, now + 7 * day),
    }
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files = {"ca": str(d / "ca.pem")}
    for name, (cert, key) in leaves.items():
        chain = cert.public_bytes(serialization.Encoding.PEM)
        (d / f"{name}.pem").write_bytes(chain)
        (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        files[name] = (str(d / f"{name}.pem"), str(d / f"{name}.key"))
    return files


class _Raw:
    """A TCP server on 127.0.0.1 whose every connection is handed to ``handle(conn)``."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    self.handle(conn)
                except (OSError, ssl.SSLError):
                    pass

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone would not)
        self.thread.join(10)
        self.sock.close()


class Server(_Raw):
    """A TLS server on 127.0.0.1 presenting one certificate; it answers each handshake and closes."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        super().__init__(self._hello)

    def _hello(self, conn):
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello")


def _verdict(e: BaseException | None, cert: bytes | None):
    if e is None:
        return ("ok", cert)
    return ("error", type(e).__name__, getattr(e, "verify_code", None), getattr(e, "verify_message", None))


def by_ssl(port, host, ca, verify):
    ctx = ssl.create_default_context(cafile=ca)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return _verdict(None, tls.getpeercert(binary_form=True))
    except ssl.SSLError as e:
        return _verdict(e, None)
    finally:
        raw.close()


def by_std(port, host, ca, verify):
    ctx = http.TLSConfig(verify=verify, ca_files=(ca,)).context()
    raw = http._tcp_connect(b"127.0.0.1", port, 10)
    try:
        tls = http._TLS(raw, ctx, host)
        return _verdict(None, tls._obj.getpeercert(True))
    except OSError as e:
        return _verdict(e, None)
    finally:
        raw.close()


@pytest.mark.parametrize("leaf", ["good", "expired", "not-yet-valid", "wrong-host", "unknown-ca"])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "other.test"])
@pytest.mark.parametrize("verify", [True, False])
def test_tls_verdict_is_ssls(pki, leaf, host, verify):
    server = Server(*pki[leaf])
    try:
        want = by_ssl(server.port, host, pki["ca"], verify)
        got = by_std(server.port, host, pki["ca"], verify)
    finally:
        server.close()
    assert got == want
    # and the verdicts are the ones a registry client must reach
    if not verify or (leaf == "good" and host != "other.test"):
        assert got[0] == "ok" and got[1] == x509.load_pem_x509_certificate(
            open(pki[leaf][0], "rb").read()).public_bytes(serialization.Encoding.DER)
    else:
        assert got[:2] == ("error", "SSLCertVerificationError")


# -- the plain-HTTP probe (an insecure registry: https first, told apart without _ssl) -----------

def _probe(port, timeout=10.0):
    sock = http._tcp_connect(b"127.0.0.1", port, timeout)
    try:
        return http.answers_plain_http(sock, timeout)
    finally:
        sock.close()


def _http_server(conn):  # reads a request line, as an HTTP server does, and answers 400
    buf = b""
    while b"\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return
        buf += chunk
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("handle, plain", [
    (_http_server, True),  # waits for a line end: the probe's random holds one
    (lambda conn: conn.recv(10), False),  # hangs up without a word
    (lambda conn: conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28"), False),  # a TLS alert
    (lambda conn: conn.sendall(b"HTTP"), False),  # not an HTTP status line after all
])
def test_plain_http_probe_answers_only_for_a_plain_http_reply(handle, plain):
    server = _Raw(handle)
    try:
        assert _probe(server.port) is plain
    finally:
        server.close()


def test_plain_http_probe_is_a_hello_a_tls_server_answers(pki):
    """The probe is a well-formed ClientHello: a TLS server answers it with a handshake record
    (its ServerHello), never with an alert or silence, so a TLS registry is never taken for a
    plain-HTTP one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki["good"])
    seen = []

    def tls_server(conn):
        try:
            with ctx.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError) as e:
            seen.append(e)

    server = _Raw(tls_server)
    try:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with raw:
            raw.sendall(http._probe_hello())
            first = raw.recv(1)
        assert first == b"\x16", first  # a handshake record, not an alert (\x15)
        assert _probe(server.port) is False
    finally:
        server.close()
