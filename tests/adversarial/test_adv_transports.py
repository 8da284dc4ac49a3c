"""Attacks on the transports and the registry client, kept as regressions: hostile JSON in
the configuration files and image documents, registries that lie or stall."""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_pallet
from tcpserver import TCPServer

pytestmark = pytest.mark.usefixtures("isolated")

DEEP = "[" * 50000 + "]" * 50000


def _one_line_error(p, *words):
    assert p.returncode != 0, p.stdout
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _empty_layout(root, index_text='{"schemaVersion":2,"manifests":[]}'):
    os.makedirs(os.path.join(root, "blobs", "sha256"))
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(root, "index.json"), "w") as f:
        f.write(index_text)


# --- JSON nested 50k deep, wrong JSON types (issue 14.11) --------------------------------------

def test_deep_index_json_names_the_file(tmp_path):
    lay = str(tmp_path / "l")
    _empty_layout(lay, '{"schemaVersion":2,"manifests":' + DEEP + "}")
    p = run_pallet("inspect", f"oci:{lay}", check=False)
    _one_line_error(p, "index.json", "nested too deeply")


def test_deep_policy_json_names_the_file(tmp_path):
    lay = str(tmp_path / "l")
    _empty_layout(lay)
    pol = tmp_path / "policy.json"
    pol.write_text(DEEP)
    p = run_pallet("--policy", str(pol), "copy", f"oci:{lay}", f"dir:{tmp_path / 'd'}", check=False)
    _one_line_error(p, str(pol), "nested too deeply")


@pytest.mark.parametrize("doc, field", [
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": 5}, "transports"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": []}}, "transports.oci"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"": 7}}}, "transports.oci"),
    ({"default": [5]}, "default[0]"),
    ({"default": [{"type": 5}]}, "default[0].type"),
    ({"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"": [
        {"type": "signedBy", "keyType": "GPGKeys", "keyData": "AA==",
         "signedIdentity": {"type": "exactReference", "dockerReference": [1]}}]}}},
     "signedIdentity.dockerReference"),
    ({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": {"a": 1}}]}, "default[0].keyPath"),
])
def test_policy_wrong_types_name_the_field(tmp_path, doc, field):
    lay = str(tmp_path / "l")
    _empty_layout(lay)
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps(doc))
    p = run_pallet("--policy", str(pol), "copy", f"oci:{lay}", f"dir:{tmp_path / 'd'}", check=False)
    _one_line_error(p, str(pol), field)


@pytest.mark.parametrize("doc, words", [
    ({"auths": []}, ["auths"]),
    ({"auths": {"127.0.0.1:1": {"auth": 5}}}, ["auths['127.0.0.1:1'].auth"]),
    ({"auths": {"127.0.0.1:1": {"auth": "", "identitytoken": ["x"]}}}, ["identitytoken"]),
    ({"auths": {"127.0.0.1:1": "x"}}, ["auths['127.0.0.1:1']"]),
    ({"credHelpers": 5}, ["credHelpers"]),
    ({"credsStore": 5}, ["credsStore"]),
])
def test_auth_json_wrong_types_name_the_field(tmp_path, doc, words):
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(doc))
    p = run_pallet("inspect", "--authfile", str(auth), "docker://127.0.0.1:1/x", check=False)
    _one_line_error(p, str(auth), *words)


def test_deep_auth_json_names_the_file(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths":' + DEEP + "}")
    p = run_pallet("inspect", "--authfile", str(auth), "docker://127.0.0.1:1/x", check=False)
    _one_line_error(p, str(auth), "nested too deeply")


def test_deep_manifest_in_layout(tmp_path):
    import hashlib

    lay = str(tmp_path / "l")
    raw = ('{"schemaVersion":2,"config":' + DEEP + "}").encode()
    dg = hashlib.sha256(raw).hexdigest()
    _empty_layout(lay, json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{dg}",
        "size": len(raw), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    with open(os.path.join(lay, "blobs", "sha256", dg), "wb") as f:
        f.write(raw)
    p = run_pallet("inspect", f"oci:{lay}:t", check=False)
    _one_line_error(p, "nested too deeply")


# --- deterministic failures are not retried (issue 14.12) ----------------------------------------

class _CountingServer(TCPServer):
    """A TCP server on 127.0.0.1 that counts connections and answers each with ``reply``."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.accepted = 0
        super().__init__()

    def on_connection(self, c):  # on the accepting thread: one connection at a time, counted
        self.accepted += 1
        try:
            c.settimeout(5)
            c.recv(65536)
            c.sendall(self.reply)
        except OSError:
            pass
        c.close()


def test_tls_against_plain_http_fails_at_once(tmp_path):
    srv = _CountingServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    try:
        import time

        t0 = time.monotonic()
        p = run_pallet("inspect", "--tls-verify=true", f"docker://{srv.host}/x", check=False)
        took = time.monotonic() - t0
        line = _one_line_error(p, srv.host, "does not speak TLS")
        assert srv.accepted == 1, (srv.accepted, line)
        assert took < 2, took
    finally:
        srv.close()


def test_invalid_port_fails_at_once():
    p = run_pallet("inspect", "docker://127.0.0.1:99999999/x", check=False)
    _one_line_error(p, "invalid port 99999999")


def test_unresolvable_and_refused_fail_at_once():
    import time

    for ref in ("docker://no-such-host.invalid/x", "docker://127.0.0.1:1/x"):
        t0 = time.monotonic()
        p = run_pallet("inspect", ref, check=False)
        _one_line_error(p)
        assert time.monotonic() - t0 < 2, ref


def test_not_http_is_not_retried():
    srv = _CountingServer(b"SSH-2.0-OpenSSH_9.2\r\n")
    try:
        p = run_pallet("inspect", "--tls-verify=false", f"docker://{srv.host}/x", check=False)
        _one_line_error(p, "https: ", "does not speak TLS", "http: ", "not an HTTP response")
        # the probe (a ClientHello answered with something that is not HTTP, so the real handshake
        # decides), one https attempt (the handshake fails) and one plain-HTTP attempt: no retry rounds
        assert srv.accepted == 3, srv.accepted
    finally:
        srv.close()


# --- Ctrl-C or one failed layer stops every blob in flight (issue 13.6) ----------------------------

@pytest.fixture(scope="module")
def three_layers(registry, tmp_path_factory):
    """An image with three 1 MiB uncompressed layers in the registry: (reference path, layer digests)."""
    import subprocess

    import images

    layout = str(tmp_path_factory.mktemp("three") / "layout")
    images.make_layout(layout, "v1", layers=[{f"f{i}.bin": os.urandom(1 << 20)} for i in range(3)],
                       compression="none")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{registry.host}/adv/three:v1"], check=True, capture_output=True)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/adv/three:v1"], check=True, capture_output=True).stdout
    layers = [d["digest"] for d in json.loads(raw)["layers"]]  # as pushed (skopeo compresses them)
    assert len(set(layers)) == 3
    return "adv/three:v1", layers


@pytest.fixture
def proxy(registry):
    from faultproxy import FaultProxy

    p = FaultProxy(registry.host)
    yield p
    p.stop()


def _start(*args):
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    return subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, what, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _leftovers(root):
    out = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            if n.startswith(".pallet-") or n.endswith(".tmp") or "staging" in n:
                out.append(os.path.join(d, n))
    return out


def test_sigint_mid_copy_exits_130_at_once(tmp_path, proxy, three_layers):
    import signal
    import subprocess
    import time

    from faultproxy import Rule

    ref, layers = three_layers
    for dg in layers:  # each layer dribbles over 60 s: waiting for them would show
        proxy.add(Rule("slow", "GET", f"/blobs/{dg}", after=60000))
    dest = tmp_path / "out"
    p = _start("copy", "--src-tls-verify=false", f"docker://{proxy.host}/{ref}", f"oci:{dest}:t")
    try:
        _wait_for(lambda: all(proxy.entries(f"/blobs/{dg}") and proxy.entries(f"/blobs/{dg}")[0]["status"] == 200
                              for dg in layers), "the three layer downloads to start")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(5)  # under load; the transfers themselves would take a minute
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert took < 5
    assert _leftovers(str(dest)) == [], _leftovers(str(dest))


def test_one_failed_layer_stops_the_others(tmp_path, proxy, three_layers):
    import time

    from faultproxy import Rule

    ref, layers = three_layers
    for dg in layers[1:]:
        proxy.add(Rule("slow", "GET", f"/blobs/{dg}", after=60000))
    proxy.add(Rule("status", "GET", f"/blobs/{layers[0]}", code=404, times=10,
                   body=b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}'))
    dest = tmp_path / "out"
    t0 = time.monotonic()
    p = _start("copy", "--src-tls-verify=false", f"docker://{proxy.host}/{ref}", f"oci:{dest}:t")
    try:
        rc = p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    took = time.monotonic() - t0
    err = p.stderr.read()
    assert rc != 0 and rc != 130, err
    assert layers[0] in err and "blob unknown" in err, err
    assert took < 10, took  # not the minute the two slow layers take
    assert _leftovers(str(dest)) == [], _leftovers(str(dest))


def test_sigint_mid_pull_leaves_no_staging(tmp_path, proxy, three_layers):
    import signal

    from faultproxy import Rule

    ref, layers = three_layers
    for dg in layers:
        proxy.add(Rule("slow", "GET", f"/blobs/{dg}", after=60000))
    root, runroot = tmp_path / "root", tmp_path / "run"
    p = _start("--root", str(root), "--runroot", str(runroot), "pull", "--tls-verify=false",
               f"docker://{proxy.host}/{ref}")
    try:
        _wait_for(lambda: all(proxy.entries(f"/blobs/{dg}") and proxy.entries(f"/blobs/{dg}")[0]["status"] == 200
                              for dg in layers), "the three layer downloads to start")
        p.send_signal(signal.SIGINT)
        rc = p.wait(5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read()
    assert rc == 130, err
    staged = [os.path.join(d, n) for d, ds, fs in os.walk(root / "staging") for n in ds + fs]
    assert staged == [], staged
    assert _leftovers(str(root / "overlay")) == []


# --- messages that say what happened (issue 14.14) ------------------------------------------------

class _Scripted(TCPServer):
    """A fake registry over plain HTTP on 127.0.0.1: ``/v2/`` answers 200; every other path
    is answered by ``handler(path) -> raw bytes to send`` (then the connection is closed)."""

    def __init__(self, handler):
        self.handler = handler
        super().__init__()

    def serve(self, c):
        try:
            f = c.makefile("rb")
            if f.peek(1)[:1] == b"\x16":  # a TLS ClientHello: answer as Go's net/http server does
                c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                return
            while True:
                first = f.readline(65536)
                if not first:
                    return
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                path = first.split(b" ")[1].decode()
                if path == "/v2/":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                    continue
                c.sendall(self.handler(path, self))
                return
        except OSError:
            pass
        finally:
            c.close()


def test_short_body_says_how_many_bytes():
    body = b'{"schemaVersion":2}'

    def handler(path, srv):
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(body) + 1000)) + body

    srv = _Scripted(handler)
    try:
        p = run_pallet("inspect", "--raw", "--retry-times", "0", "--tls-verify=false",
                       f"docker://{srv.host}/x:1", check=False)
        _one_line_error(p, "closed the connection after", f"{len(body)} of {len(body) + 1000} bytes")
    finally:
        srv.close()


def test_redirect_loop_says_so():
    def handler(path, srv):
        return (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://%s%s\r\nContent-Length: 0\r\n\r\n"
                % (srv.host.encode(), path.encode()))

    srv = _Scripted(handler)
    try:
        p = run_pallet("inspect", "--raw", "--retry-times", "0", "--tls-verify=false",
                       f"docker://{srv.host}/x:1", check=False)
        line = _one_line_error(p, "too many redirects (10)", srv.host)
        assert "answered HTTP 307" not in line
    finally:
        srv.close()


def test_nested_index_says_so(tmp_path):
    import hashlib

    lay = str(tmp_path / "l")
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": []}).encode()
    di = "sha256:" + hashlib.sha256(inner).hexdigest()
    outer = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": di,
                                       "size": len(inner),
                                       "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    do = "sha256:" + hashlib.sha256(outer).hexdigest()
    _empty_layout(lay, json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": do, "size": len(outer),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    for raw, dg in ((inner, di), (outer, do)):
        with open(os.path.join(lay, "blobs", "sha256", dg.split(":")[1]), "wb") as f:
            f.write(raw)
    p = run_pallet("--override-arch", "amd64", "--override-os", "linux", "copy", f"oci:{lay}:t",
                   f"oci:{tmp_path / 'o'}:t", check=False)
    line = _one_line_error(p, f"index {do} nests another index ({di}", "not supported")
    assert "available" not in line


@pytest.mark.parametrize("helper", ["\u0000", "a" * 300, "with space"])
def test_hostile_credential_helper_names(tmp_path, helper):
    """Found by the fuzzer: a helper name with a NUL or too long for a file name crashed."""
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {}, "credsStore": helper}))
    p = run_pallet("inspect", "--authfile", str(auth), "docker://127.0.0.1:1/x", check=False)
    _one_line_error(p, str(auth))


# --- unbounded spooling (issue 14.7) -----------------------------------------------------------

def _tar_head_then_zeros(n_zero_bytes: int) -> bytes:
    """A valid first tar header (a 1 MiB member), then zeros: a 'tar' that never ends."""
    import io
    import tarfile

    ti = tarfile.TarInfo("big")
    ti.size = 1 << 20
    head = ti.tobuf(tarfile.USTAR_FORMAT)
    assert len(head) == 512
    return head + b"\0" * n_zero_bytes


def _spool_entries(tmpdir):
    base = os.path.join(tmpdir, f"pallet-spool-{os.geteuid()}")
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


def test_dev_zero_is_not_a_tar(tmp_path):
    import time

    env = {"TMPDIR": str(tmp_path)}
    t0 = time.monotonic()
    p = run_pallet("inspect", "docker-archive:/dev/zero", check=False, env=env)
    _one_line_error(p, "docker-archive:/dev/zero", "not a tar archive")
    p = run_pallet("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "load", "-i", "/dev/zero",
                   check=False, env=env)
    _one_line_error(p, "/dev/zero", "not a tar archive")
    assert time.monotonic() - t0 < 10
    assert _spool_entries(str(tmp_path)) == []
    assert os.listdir(tmp_path / "root" / "staging") == []


def test_spool_stops_at_the_limit_flag_and_config(tmp_path):
    data = _tar_head_then_zeros(12 << 20)
    env = {"TMPDIR": str(tmp_path)}
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    p = subprocess.run([exe, "--spool-limit", "4M", "inspect", "docker-archive:/dev/stdin"], input=data,
                       capture_output=True, env={**os.environ, **env})
    p.stderr = p.stderr.decode()
    _one_line_error(p, "docker-archive:/dev/stdin", "spool limit of 4194304 bytes", "--spool-limit")
    conf = tmp_path / "storage.conf"
    conf.write_text('[spool]\nlimit = "2M"\n')
    root = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]
    p = subprocess.run([exe, *root, "load"], input=data, capture_output=True,
                       env={**os.environ, **env, "PALLET_STORAGE_CONF": str(conf)})
    p.stderr = p.stderr.decode()
    _one_line_error(p, "standard input", "spool limit of 2097152 bytes")
    assert _spool_entries(str(tmp_path)) == []
    assert os.listdir(tmp_path / "root" / "staging") == []
    # the flag wins over the config
    p = subprocess.run([exe, *root, "--spool-limit", "1M", "load"], input=data, capture_output=True,
                       env={**os.environ, **env, "PALLET_STORAGE_CONF": str(conf)})
    assert b"spool limit of 1048576 bytes" in p.stderr, p.stderr


def test_sigkilled_spool_is_removed_by_the_next_run(tmp_path):
    import signal
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.Popen([exe, "inspect", "docker-archive:/dev/stdin"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        p.stdin.write(_tar_head_then_zeros(2 << 20))
        p.stdin.flush()
        base = tmp_path / f"pallet-spool-{os.geteuid()}"
        _wait_for(lambda: any(os.path.getsize(os.path.join(d, f)) > 0 for d, _, fs in os.walk(base) for f in fs
                              if f == "archive.tar"), "the spool to grow")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len(_spool_entries(str(tmp_path))) == 2  # the dead process's directory and lock file
    q = run_pallet("inspect", "docker-archive:/dev/zero", check=False, env={"TMPDIR": str(tmp_path)})
    assert q.returncode != 0
    assert _spool_entries(str(tmp_path)) == []


def test_oci_archive_from_a_pipe_stops_at_the_limit(tmp_path, src_layout):
    import subprocess
    import sys

    arch = tmp_path / "a.tar"
    run_pallet("copy", f"oci:{src_layout}:latest", f"oci-archive:{arch}:latest", env={"TMPDIR": str(tmp_path)})
    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.run([exe, "--spool-limit", "1K", "inspect", "oci-archive:/dev/stdin"], input=arch.read_bytes(),
                       capture_output=True, env=env)
    p.stderr = p.stderr.decode()
    _one_line_error(p, "oci-archive:/dev/stdin", "spool limit of 1024 bytes")
    assert _spool_entries(str(tmp_path)) == []
    p = subprocess.run([exe, "inspect", "oci-archive:/dev/stdin"], input=arch.read_bytes(), capture_output=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert _spool_entries(str(tmp_path)) == []


def test_a_fifo_planted_in_a_layout_fails_at_once(tmp_path, src_layout):
    """oci: and dir: read their blobs and documents as regular files only: a FIFO there (a
    blob, index.json, manifest.json) is one line at once (it blocked the open forever: no
    writer ever comes), and a symlink to a device is not opened."""
    import shutil
    import subprocess
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    dirref = str(tmp_path / "d")
    run_pallet("copy", "-q", f"oci:{src_layout}:latest", f"dir:{dirref}")
    cases = []
    for n, what in enumerate(("index.json", "blob", "devblob")):
        layout = str(tmp_path / f"oci{n}")
        shutil.copytree(src_layout, layout)
        blobs = os.path.join(layout, "blobs", "sha256")
        victim = os.path.join(layout, what) if what == "index.json" else \
            os.path.join(blobs, max(os.listdir(blobs), key=lambda b: os.path.getsize(os.path.join(blobs, b))))
        os.unlink(victim)
        if what == "devblob":
            os.symlink("/dev/zero", victim)
        else:
            os.mkfifo(victim)
        cases.append((f"oci:{layout}:latest", victim))
    for name in ("manifest.json", "blob"):
        d = str(tmp_path / f"dir-{name}")
        shutil.copytree(dirref, d)
        victim = os.path.join(d, name) if name == "manifest.json" else \
            os.path.join(d, max((b for b in os.listdir(d) if len(b) == 64), key=lambda b: os.path.getsize(os.path.join(d, b))))
        os.unlink(victim)
        os.mkfifo(victim)
        cases.append((f"dir:{d}", victim))
    for n, (ref, victim) in enumerate(cases):
        try:
            p = subprocess.run([exe, "copy", "-q", ref, f"dir:{tmp_path}/out{n}"], capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"copy of {ref} with {victim} a FIFO or device hung")
        line = _one_line_error(p, "not a regular file")
        assert victim in line or os.path.basename(victim) in line, line
