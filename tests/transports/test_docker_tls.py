"""docker:// over HTTPS: verification by default, --cert-dir CAs and client certificates, insecure mode.

The registry itself speaks HTTP; a small TLS terminator in front of it (Python's ssl, on
127.0.0.1) presents a certificate from a test CA and can require client certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import images
from pallet import errors
from pallet.oci import manifest as _manifest
from pallet.transports import parse_reference
from pallet.transports.base import SystemContext
from conftest import run_pallet
from tcpserver import TCPServer, relay


pytestmark = pytest.mark.usefixtures("isolated")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class PKI:
    def __init__(self, d):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.dir = d
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(_name("pallet test CA")).issuer_name(_name("pallet test CA"))
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)

        def leaf(cn, server):
            key = ec.generate_private_key(ec.SECP256R1())
            b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                 .public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                critical=False))
            if server:
                b = b.add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
                     x509.DNSName("registry.pallet.test")]), critical=False)  # the proxy tests' name
            cert = b.sign(ca_key, hashes.SHA256())
            return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

        self.server_cert, self.server_key = leaf("127.0.0.1", True)
        self.client_cert, self.client_key = leaf("pallet client", False)
        for name, data in (("ca.pem", self.ca_pem), ("server.pem", self.server_cert), ("server.key", self.server_key)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)

    def cert_dir(self, name, client=False):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ca.crt"), "wb") as f:
            f.write(self.ca_pem)
        if client:
            with open(os.path.join(d, "client.cert"), "wb") as f:
                f.write(self.client_cert)
            with open(os.path.join(d, "client.key"), "wb") as f:
                f.write(self.client_key)
        return d


class TLSTerminator(TCPServer):
    """HTTPS on 127.0.0.1 relayed as plain bytes to an HTTP upstream."""

    def __init__(self, pki: PKI, upstream: str, require_client_cert=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(pki.dir, "server.pem"), os.path.join(pki.dir, "server.key"))
        if require_client_cert:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(os.path.join(pki.dir, "ca.pem"))
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.handshakes = 0
        self.failures = 0
        super().__init__()

    def serve(self, c):
        try:
            c.settimeout(10)
            tls = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            self.failures += 1
            c.close()
            return
        self.handshakes += 1
        up = socket.create_connection(self.upstream)
        try:
            relay(tls, up)
        except (OSError, ssl.SSLError):
            return
        finally:
            up.close()
            tls.close()


@pytest.fixture
def pki(tmp_path):
    return PKI(str(tmp_path))


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    layout = str(tmp_path_factory.mktemp("tls") / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "tls"}])
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{registry.host}/tls/img:v1"], check=True, capture_output=True)
    return "tls/img:v1"


def get(host, pushed, **kw):
    kw.setdefault("retry_delay", 0.01)
    with parse_reference(f"docker://{host}/{pushed}").new_source(SystemContext(**kw)) as src:
        m = _manifest.parse(*src.get_manifest())
        with src.get_blob(m.layers[0]) as b:
            assert len(b.read()) == m.layers[0].size
        return src.client.scheme


def test_https_verified_with_cert_dir(registry, pushed, pki):
    term = TLSTerminator(pki, registry.host)
    try:
        assert get(term.host, pushed, cert_dir=pki.cert_dir("certs")) == "https"
        with pytest.raises(errors.NetworkError) as ei:
            get(term.host, pushed, retry_times=0)
        msg = str(ei.value)
        assert msg.startswith(f"pinging container registry {term.host}: {term.host}: TLS error: ")
        assert "CERTIFICATE_VERIFY_FAILED" in msg.upper().replace(" ", "_") and "--tls-verify=false" in msg
    finally:
        term.stop()


def test_https_without_verification_is_quick(registry, pushed, pki, isolated):
    term = TLSTerminator(pki, registry.host)
    try:
        assert get(term.host, pushed, tls_verify=False, retry_delay=None) == "https"
        # https is probed first (as containers/image does), so a TLS registry answers at once:
        # no plain-HTTP attempt, no retry round; the one unfinished handshake is the probe that
        # tells a plain-HTTP server apart without loading _ssl (hung up on after the server's hello)
        assert term.failures == 1 and term.handshakes >= 1
        isolated.write_text(f'[[registry]]\nlocation = "{term.host}"\ninsecure = true\n')
        assert get(term.host, pushed) == "https"
        # an explicit --tls-verify=true overrides registries.conf
        with pytest.raises(errors.NetworkError, match="TLS error"):
            get(term.host, pushed, tls_verify=True, retry_times=0)
    finally:
        term.stop()


def test_client_certificates(registry, pushed, pki):
    term = TLSTerminator(pki, registry.host, require_client_cert=True)
    try:
        assert get(term.host, pushed, cert_dir=pki.cert_dir("with-client", client=True)) == "https"
        with pytest.raises(errors.NetworkError, match=f"pinging container registry {term.host}"):
            get(term.host, pushed, cert_dir=pki.cert_dir("ca-only"), retry_times=0)
    finally:
        term.stop()


def test_cert_dir_errors(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    (d / "lonely.cert").write_text("x")
    with parse_reference("docker://127.0.0.1:9/x:1").new_source(SystemContext(cert_dir=str(d))) as src:
        with pytest.raises(errors.ConfigError, match="has no matching key"):
            src.get_manifest()


def inspect_loads(*args) -> str:
    """Run ``pallet inspect ARGS`` in a fresh interpreter: which of the modules worth keeping out
    of a registry command's start-up it loaded (names, space-separated)."""
    import sys

    code = ("import contextlib, io, sys\n"
            "sys.argv = ['pallet'] + sys.argv[1:]\n"
            "from pallet.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    rc = main()\n"
            "assert rc == 0 and '\"Digest\"' in out.getvalue(), (rc, out.getvalue())\n"
            "print(' '.join(m for m in ('ssl', '_ssl', 'socket', 'enum', 're') if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code, "inspect", "--no-tags", *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_https_without_importing_ssl(registry, pushed, pki):
    """https goes through _ssl directly: a verified inspect imports neither ssl nor socket."""
    term = TLSTerminator(pki, registry.host)
    try:
        assert inspect_loads("--cert-dir", pki.cert_dir("certs"), f"docker://{term.host}/{pushed}") == "_ssl"
    finally:
        term.stop()


def test_plain_http_registry_without_verification_loads_no_tls(registry, pushed):
    """--tls-verify=false against a plain-HTTP registry: https is probed first, and told apart
    by the server's plain-HTTP answer to a TLS hello, so the TLS library is never loaded."""
    assert inspect_loads("--tls-verify=false", f"docker://{registry.host}/{pushed}") == ""
    assert get(registry.host, pushed, tls_verify=False) == "http"


def test_system_trust_store(registry, pushed, pki, tmp_path):
    """Without --cert-dir the system's CAs are trusted: a hashed directory (SSL_CERT_DIR, read
    as chains need it) or a bundle file (SSL_CERT_FILE, when it is not the system bundle)."""
    term = TLSTerminator(pki, registry.host)
    try:
        hashed = tmp_path / "hashed"
        hashed.mkdir()
        (hashed / "pallet-test-ca.pem").write_bytes(pki.ca_pem)
        subprocess.run(["openssl", "rehash", str(hashed)], check=True, capture_output=True)
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(pki.ca_pem)
        empty = tmp_path / "empty"
        empty.mkdir()
        base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        ref = f"docker://{term.host}/{pushed}"
        for extra, ok in (({"SSL_CERT_DIR": str(hashed)}, True),
                          ({"SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(empty)}, True),
                          ({"SSL_CERT_DIR": str(empty)}, False)):
            p = run_pallet("inspect", "--no-tags", "--retry-times", "0", ref, env=extra, check=False,
                           base_env=base)
            assert (p.returncode == 0) is ok, (extra, p.stderr)
            if not ok:
                assert "certificate verify failed: unable to get local issuer certificate" in p.stderr
                assert len(p.stderr.splitlines()) == 1
    finally:
        term.stop()


def test_ca_appended_to_the_system_bundle(registry, pushed, pki, tmp_path, root_required):
    """A CA appended to the system bundle (ca-certificates.crt) without a rehash of the hashed
    directory is trusted, as OpenSSL's defaults (curl, skopeo, podman) trust it. The bundle is
    swapped in a private mount namespace: the machine's own trust store is not touched."""
    import sys

    term = TLSTerminator(pki, registry.host)
    try:
        system = os.path.realpath(ssl.get_default_verify_paths().openssl_cafile)
        bundle = tmp_path / "ca-certificates.crt"
        with open(system, "rb") as f:
            bundle.write_bytes(f.read() + b"\n" + pki.ca_pem)
        exe = os.path.join(os.path.dirname(sys.executable), "pallet")
        base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
        ref = f"docker://{term.host}/{pushed}"
        for extra, ok in (({}, True), ({"SSL_CERT_FILE": system}, True), ({"SSL_CERT_FILE": str(tmp_path / "none.pem")}, False)):
            p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(bundle), system,
                                exe, "inspect", "--no-tags", "--retry-times", "0", ref],
                               capture_output=True, text=True, env={**base, **extra}, timeout=60)
            assert (p.returncode == 0) is ok, (extra, p.stderr)
            if not ok:
                assert "certificate verify failed" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    finally:
        term.stop()
