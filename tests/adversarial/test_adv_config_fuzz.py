"""Fuzzing the JSON and configuration parsers: policy.json, auth.json, registries.conf, an OCI
layout's index.json, manifests, indexes and image configs. Mutations of valid documents
(values swapped for other JSON types at every depth, keys dropped, truncations, byte flips,
deep nesting) with a fixed seed and a time bound; whatever the input, the only exceptions
allowed are PalletError subclasses (a one-line error naming the file), never a crash."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from pallet import errors

pytestmark = pytest.mark.unit

SEED = 1307
BUDGET = 1.5  # seconds per parser: seven parsers, about 10 s in all

ODD_VALUES = [None, True, 0, -1, 1.5, 1e309, "", "x", "sha256:" + "0" * 64, [], [1, "a"], {}, {"a": {}},
              "../../etc/passwd", "\u0000", "A" * 300, 2 ** 70]

POLICY = {"default": [{"type": "insecureAcceptAnything"}],
          "transports": {"docker": {"example.com/app": [{"type": "signedBy", "keyType": "GPGKeys",
                                                         "keyData": "AA==",
                                                         "signedIdentity": {"type": "matchRepository"}}]},
                         "oci": {"": [{"type": "reject"}]}}}
AUTH = {"auths": {"example.com": {"auth": "dXNlcjpwYXNz"}, "https://index.docker.io/v1/": {"auth": "YTpi",
                                                                                           "identitytoken": "t"}},
        "credHelpers": {"other.example": "none"}, "credsStore": ""}
DIGEST = "sha256:" + "a" * 64
MANIFEST = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST, "size": 3,
                        "annotations": {"a": "b"}, "urls": ["http://x"]}],
            "annotations": {"k": "v"}}
INDEX = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 5,
                        "platform": {"os": "linux", "architecture": "arm", "variant": "v7",
                                     "os.features": ["x"]},
                        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
CONFIG = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
          "config": {"Env": ["A=b"], "Cmd": ["sh"], "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}},
          "rootfs": {"type": "layers", "diff_ids": [DIGEST]}, "history": [{"created_by": "x"}]}
REGISTRIES_CONF = """unqualified-search-registries = ["example.com", "docker.io"]
short-name-mode = "permissive"
[[registry]]
prefix = "example.com/foo"
location = "mirror.example.com/bar"
insecure = true
blocked = false
[[registry.mirror]]
location = "m.example.com"
pull-from-mirror = "digest-only"
[aliases]
"app" = "example.com/app"
"""


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _replace(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return doc


def _drop(doc, path):
    doc = json.loads(json.dumps(doc))
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    del cur[path[-1]]
    return doc


def mutations(seed_doc, rnd: random.Random):
    """Endless mutated documents (bytes) of ``seed_doc``: systematic type swaps first, then random."""
    paths = list(_paths(seed_doc))
    for path in paths:  # every place, every odd value
        for v in ODD_VALUES:
            yield json.dumps(_replace(seed_doc, path, v)).encode()
        if path:
            yield json.dumps(_drop(seed_doc, path)).encode()
    text = json.dumps(seed_doc).encode()
    yield b"[" * 100000 + b"]" * 100000
    yield b'{"a":' * 60000 + b"1" + b"}" * 60000
    yield b""
    yield b"\xff\xfe\x00"
    while True:
        kind = rnd.randrange(4)
        if kind == 0:
            yield text[: rnd.randrange(len(text))]
        elif kind == 1:
            b = bytearray(text)
            for _ in range(rnd.randrange(1, 6)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            yield bytes(b)
        elif kind == 2:
            doc = seed_doc
            for _ in range(rnd.randrange(1, 4)):
                ps = list(_paths(doc))
                doc = _replace(doc, rnd.choice(ps), rnd.choice(ODD_VALUES))
            yield json.dumps(doc).encode()
        else:
            depth = rnd.randrange(500, 5000)
            path = rnd.choice(paths)
            yield json.dumps(_replace(seed_doc, path, "@@")).replace('"@@"', "[" * depth + "]" * depth).encode()


def _run(name, seed_doc, check, tmp_path):
    rnd = random.Random(f"{SEED}-{name}")
    deadline = time.monotonic() + BUDGET
    n = 0
    for data in mutations(seed_doc, rnd):
        if n and time.monotonic() > deadline:
            break
        n += 1
        try:
            check(data, tmp_path)
        except errors.PalletError as e:
            assert "\n" not in str(e)
        except BaseException as e:  # noqa: BLE001
            pytest.fail(f"{name}: {type(e).__name__}: {e} for input {data[:300]!r}")
    assert n > 50, n


def _write(tmp_path, name, data):
    p = os.path.join(tmp_path, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def _check_policy(data, tmp_path):
    from pallet.transports import parse_reference, policy

    path = _write(tmp_path, "policy.json", data)
    for ref in ("docker://example.com/app:1", f"oci:{tmp_path}/l:t", "dir:/x"):
        policy.check(parse_reference(ref), path)


def _check_auth(data, tmp_path):
    from pallet.transports import credentials
    from pallet.transports.base import SystemContext

    path = _write(tmp_path, "auth.json", data)
    ctx = SystemContext(authfile=path)
    for host, repo in (("example.com", "a/b"), ("docker.io", "library/x"), ("nothere.example", "")):
        credentials.lookup(host, repo, ctx)


def _check_manifest(data, tmp_path):
    from pallet.oci import manifest

    for mt in (None, "application/vnd.oci.image.manifest.v1+json",
               "application/vnd.docker.distribution.manifest.v2+json"):
        m = manifest.parse(data, mt)
        if not m.is_index:
            m.layers
            m.config


def _check_index(data, tmp_path):
    from pallet.oci import manifest, platform

    for mt in (None, "application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"):
        m = manifest.parse(data, mt)
        if m.is_index:
            m.select(platform.wanted("linux", "arm", "v7"))


def _check_config(data, tmp_path):
    from pallet.oci.config import ImageConfig

    ImageConfig.from_bytes(data)


def _check_layout(data, tmp_path):
    from pallet.transports import parse_reference
    from pallet.transports.base import SystemContext

    root = os.path.join(tmp_path, "layout")
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    _write(root, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _write(root, "index.json", data)
    for ref in (f"oci:{root}:t", f"oci:{root}"):
        with parse_reference(ref).new_source(SystemContext()) as src:
            src.get_manifest()


@pytest.mark.parametrize("name, seed_doc, check", [
    ("policy.json", POLICY, _check_policy),
    ("auth.json", AUTH, _check_auth),
    ("manifest", MANIFEST, _check_manifest),
    ("index", INDEX, _check_index),
    ("config", CONFIG, _check_config),
    ("index.json", INDEX, _check_layout),
])
def test_json_parsers_raise_only_pallet_errors(name, seed_doc, check, tmp_path):
    _run(name, seed_doc, check, str(tmp_path))


def test_registries_conf_raises_only_pallet_errors(tmp_path):
    from pallet.transports import registries_conf
    from pallet.oci import reference

    rnd = random.Random(f"{SEED}-registries.conf")
    seed = REGISTRIES_CONF.encode()
    lines = REGISTRIES_CONF.splitlines()
    values = ['""', "5", "true", "[]", '["a", 1]', "{}", '"::"', '"a/../b"', '"*.x"', '"UPPER/x"', "1.5",
              '"' + "a" * 300 + '"', "[[]]", '{ a = 1 }']
    cases = []
    for i, line in enumerate(lines):  # every value replaced by every odd one
        if "=" in line:
            k = line.split("=", 1)[0]
            for v in values:
                cases.append("\n".join(lines[:i] + [f"{k}= {v}"] + lines[i + 1:]).encode())
        cases.append("\n".join(lines[:i] + lines[i + 1:]).encode())
    deadline = time.monotonic() + BUDGET
    n = 0
    while True:
        if cases:
            data = cases.pop()
        elif time.monotonic() > deadline:
            break
        else:
            b = bytearray(seed)
            for _ in range(rnd.randrange(1, 5)):
                b[rnd.randrange(len(b))] = rnd.choice(b'[]"=.,\n abc*/:1')
            data = bytes(b[: rnd.randrange(len(b) + 1)] if rnd.random() < 0.2 else b)
        n += 1
        try:
            cfg = registries_conf.parse_text(data.decode("utf-8", "replace"), "fuzz.conf")
            for name in ("app", "example.com/foo/x:1", "docker.io/library/busybox"):
                if reference.is_short_name(name):
                    registries_conf.choose_candidates(cfg.resolve_short_name(name))
                else:
                    cfg.pull_sources(reference.parse(name))
                    cfg.push_endpoint(reference.parse(name))
        except errors.PalletError as e:
            assert "\n" not in str(e)
        except BaseException as e:  # noqa: BLE001
            pytest.fail(f"registries.conf: {type(e).__name__}: {e} for input {data[:400]!r}")
    assert n > 50
