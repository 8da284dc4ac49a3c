"""A small Bearer token server for docker-registry's ``auth: token`` mode (tests only).

Issues JWTs the way distribution 2.8's ``registry/auth/token`` verifies them: signed with
RS256 (key found through an ``x5c`` certificate chain that the registry's
``rootcertbundle`` trusts) or ES256 (key found by ``kid``, the libtrust fingerprint of a
public key in that bundle). Grants what a known user asks for (anonymous: pull only, or
nothing), and records what it was asked so tests can check scopes and token reuse.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

ISSUER = "pallet-test-issuer"
SERVICE = "pallet-test-registry"


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """libtrust's KeyID: base32 of the first 30 bytes of sha256(SPKI DER), in groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class TokenServer:
    def __init__(self, workdir: str, alg: str = "RS256", users: dict | None = None,
                 anonymous_actions: tuple = ("pull",), expires_in: int = 300):
        self.alg = alg
        self.users = dict(users or {})
        self.anonymous_actions = anonymous_actions
        self.expires_in = expires_in
        self.requests: list[dict] = []  # {"scopes": [...], "account": ..., "user": ..., "ok": bool}
        self._lock = threading.Lock()
        if alg == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(alg)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pallet test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = os.path.join(workdir, "token-root.pem")
        with open(self.bundle, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def registry_auth(self) -> dict:
        """The ``auth:`` section of a docker-registry config that trusts this server."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": self.bundle}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        u = urlsplit(h.path)
        if u.path != "/token":
            h.send_response(404)
            h.end_headers()
            return
        q = parse_qs(u.query)
        scopes = q.get("scope", [])
        user = None
        auth = h.headers.get("Authorization", "")
        ok = True
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                user, pw = "", None
            if self.users.get(user) != pw:
                ok = False
        with self._lock:
            self.requests.append({"scopes": scopes, "account": q.get("account", [None])[0], "user": user,
                                  "service": q.get("service", [None])[0], "ok": ok})
        if not ok:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]})
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body.encode())
            return
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            granted = actions if user else [a for a in actions if a in self.anonymous_actions]
            access.append({"type": typ, "name": name, "actions": granted})
        token = self.issue(user or "", access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.expires_in,
                           "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body.encode())

    def issue(self, subject: str, access: list) -> str:
        header = {"typ": "JWT", "alg": self.alg}
        if self.alg == "RS256":
            header["x5c"] = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        else:
            header["kid"] = libtrust_key_id(self.key.public_key())
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + self.expires_in,
                  "nbf": now - 10, "iat": now, "jti": _b64url(os.urandom(12)), "access": access}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
        if self.alg == "RS256":
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input.decode() + "." + _b64url(sig)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)
