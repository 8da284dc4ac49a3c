"""Shared bench helpers: a registry on 127.0.0.1, timing A/B interleaved, medians and ratios."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PALLET = os.path.join(VENV_BIN, "pallet")

#: the environment the timed commands run in: bytecode caching on, as on a user's machine
#: (this workplace sets PYTHONDONTWRITEBYTECODE, which would make every run recompile pallet)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def precompile() -> None:
    """Write pallet's .pyc files once, as a regular (non-editable) pip install does."""
    subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "compileall", "-q", os.path.join(REPO, "src")],
                   check=True, env=ENV, stdout=subprocess.DEVNULL)


class Registry:
    def __init__(self, root: str, tls: bool = False):
        """Debian's docker-registry on 127.0.0.1; with ``tls``, over https with a fresh
        self-signed certificate whose CA file is in ``self.cert_dir`` (for --cert-dir)."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.host = f"127.0.0.1:{self.port}"
        os.makedirs(root, exist_ok=True)
        cfg = os.path.join(root, "registry.yml")
        tls_cfg = ""
        self.cert_dir = None
        if tls:
            cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            self.cert_dir = os.path.join(root, "certs.d")
            os.makedirs(self.cert_dir, exist_ok=True)
            with open(cert, "rb") as src, open(os.path.join(self.cert_dir, "ca.crt"), "wb") as dst:
                dst.write(src.read())
            tls_cfg = f", tls: {{certificate: {cert}, key: {key}}}"
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
                    f"storage: {{filesystem: {{rootdirectory: {root}/data}}, delete: {{enabled: true}}}}\n"
                    f"http: {{addr: {self.host}{tls_cfg}}}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                if tls:  # any TLS answer will do: the port is open once it comes
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def make_layout(root: str, layer_sizes_mb: list[int], tag: str = "big") -> None:
    """An OCI layout with gzip layers of roughly the given compressed sizes (mostly random data,
    some text, so decompression does real work)."""
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(data_path_or_bytes):
        if isinstance(data_path_or_bytes, bytes):
            d = hashlib.sha256(data_path_or_bytes).hexdigest()
            with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
                f.write(data_path_or_bytes)
            return "sha256:" + d, len(data_path_or_bytes)
        h = hashlib.sha256()
        with open(data_path_or_bytes, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
        d = h.hexdigest()
        os.rename(data_path_or_bytes, os.path.join(root, "blobs", "sha256", d))
        return "sha256:" + d, os.path.getsize(os.path.join(root, "blobs", "sha256", d))

    layers, diff_ids = [], []
    for i, mb in enumerate(layer_sizes_mb):
        tmp_tar = os.path.join(root, f"layer{i}.tar")
        with tarfile.open(tmp_tar, "w") as tf:
            for j in range(mb):
                data = os.urandom(768 << 10) + (f"line {j} of layer {i}\n" * 20000).encode()[: 256 << 10]
                ti = tarfile.TarInfo(f"data/{i}/file{j:04d}.bin")
                ti.size = len(data)
                ti.mtime = 1700000000
                import io

                tf.addfile(ti, io.BytesIO(data))
        h = hashlib.sha256()
        gz_path = tmp_tar + ".gz"
        with open(tmp_tar, "rb") as src, open(gz_path, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as dst:
            while b := src.read(1 << 20):
                h.update(b)
                dst.write(b)
        os.unlink(tmp_tar)
        diff_ids.append("sha256:" + h.hexdigest())
        d, n = put(gz_path)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}).encode()
    cd, cn = put(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                      "size": cn}, "layers": layers}).encode()
    md, mn = put(manifest)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)


def timed(cmd: list[str], setup=None) -> float:
    if setup:
        setup()
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
    return took


def max_rss_mb(cmd: list[str], setup=None) -> float:
    if setup:
        setup()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=True, env=ENV)
    return int(p.stderr.strip().splitlines()[-1]) / 1024


def ab(name: str, a: tuple[str, list[str]], b: tuple[str, list[str]], runs: int, setup=None) -> dict:
    """Run A and B interleaved ``runs`` times; print and return medians and the ratio A/B."""
    ta, tb = [], []
    for _ in range(runs):
        ta.append(timed(a[1], setup))
        tb.append(timed(b[1], setup))
    ma, mb = statistics.median(ta), statistics.median(tb)
    row = {"work": name, a[0]: round(ma * 1000, 1), b[0]: round(mb * 1000, 1), "ratio": round(ma / mb, 2)}
    print(f"{name}: {a[0]} {ma * 1000:.1f} ms, {b[0]} {mb * 1000:.1f} ms, ratio {ma / mb:.2f}", flush=True)
    return row


def interleaved_medians(tools: dict[str, list[str]], runs: int, warm: int, env: dict | None = None) -> dict[str, float]:
    """Run each tool's command in turn (A, B, C, A, B, C, ...) ``warm`` + ``runs`` rounds, the
    first ``warm`` not counted; the median seconds of each (the upper one of an even count).
    Exits naming the tool and its stderr when a run fails."""
    times = {name: [] for name in tools}
    for i in range(runs + warm):
        for name, cmd in tools.items():
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, env=ENV if env is None else env)
            d = time.perf_counter() - t
            if r.returncode:
                sys.exit(f"{name} failed: {r.stderr.decode().strip()}")
            if i >= warm:
                times[name].append(d)
    return {name: sorted(v)[len(v) // 2] for name, v in times.items()}


def tmpfs_dir(prefix: str) -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def out(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_small_layout(root: str, i: int, tag: str = "small") -> None:
    """A tiny one-layer image, different for each ``i``."""
    import io

    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(data: bytes) -> tuple[str, int]:
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
            f.write(data)
        return "sha256:" + d, len(data)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = f"image {i}\n".encode()
        ti = tarfile.TarInfo(f"file{i}")
        ti.size, ti.mtime = len(data), 1700000000
        tf.addfile(ti, io.BytesIO(data))
    tar = buf.getvalue()
    ld, ln = put(gzip.compress(tar, mtime=0))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}).encode()
    cd, cn = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld,
                                  "size": ln}]}).encode()
    md, mn = put(man)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
