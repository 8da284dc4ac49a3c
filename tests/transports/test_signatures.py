"""Simple signing: policy signedBy, signatures in dir:, in a registry's lookaside store and in
the local store, --sign-by; skopeo signs what pallet verifies and verifies what pallet signs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

import images
from conftest import run_pallet
from pallet.transports import signature

pytestmark = pytest.mark.usefixtures("isolated")


def _gpg(home, *args, input=None):
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", *args], input=input,
                          capture_output=True, check=True)


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """A GnuPG home with three keys: 'trusted', 'other' (neither has a passphrase) and
    'locked' (passphrase in a file); each key's public half exported to a file."""
    home = str(tmp_path / "gnupg")
    os.makedirs(home, mode=0o700)
    out = {"home": home}
    try:
        for name, pw in (("trusted", ""), ("other", ""), ("locked", "sesame")):
            _gpg(home, "--passphrase", pw, "--pinentry-mode", "loopback", "--quick-gen-key",
                 f"{name} <{name}@example.com>", "ed25519", "sign", "never")
            lines = _gpg(home, "--with-colons", "--list-keys", f"{name}@example.com").stdout.decode().splitlines()
            fpr = next(ln.split(":")[9] for ln in lines if ln.startswith("fpr:"))
            pub = tmp_path / f"{name}.asc"
            pub.write_bytes(_gpg(home, "--armor", "--export", fpr).stdout)
            out[name] = (fpr, str(pub))
        pw = tmp_path / "passphrase"
        pw.write_text("sesame\n")
        out["passphrase_file"] = str(pw)
        monkeypatch.setenv("GNUPGHOME", home)
        yield out
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)


def policy(tmp_path, transports, default="reject"):
    p = tmp_path / "policy.json"
    p.write_text(json.dumps({"default": [{"type": default}], "transports": transports}))
    return str(p)


def signed_by(key, identity=None, **kw):
    req = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": key, **kw}
    if identity:
        req["signedIdentity"] = identity
    return [req]


def registries_d(tmp_path, lookaside):
    d = tmp_path / "registries.d"
    d.mkdir(exist_ok=True)
    (d / "default.yaml").write_text(f"default-docker:\n  lookaside: file://{lookaside}\n"
                                    f"  lookaside-staging: file://{lookaside}\n")
    return str(d)


@pytest.fixture
def layout(tmp_path):
    root = str(tmp_path / "layout")
    images.make_layout(root, "v1")
    return root


def test_skopeo_signs_pallet_verifies_and_carries(tmp_path, keys, layout, skopeo):
    fpr, pub = keys["trusted"]
    ident = "registry.example.com/team/app:v1"
    src = str(tmp_path / "signed")
    subprocess.run(["skopeo", "copy", "-q", "--sign-by", fpr, "--sign-identity", ident, f"oci:{layout}:v1",
                    f"dir:{src}"], check=True, capture_output=True)
    exact = {"type": "exactReference", "dockerReference": ident}
    pol = policy(tmp_path, {"dir": {"": signed_by(pub, exact)}, "oci": {"": [{"type": "insecureAcceptAnything"}]}})
    run_pallet("--policy", pol, "copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'copy'}")
    assert open(tmp_path / "copy" / "signature-1", "rb").read() == open(os.path.join(src, "signature-1"), "rb").read()
    # the copy verifies again (pallet wrote the signature where skopeo looks for it)
    out = subprocess.run(["skopeo", "standalone-verify", str(tmp_path / "copy" / "manifest.json"), ident, fpr,
                          str(tmp_path / "copy" / "signature-1")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # keyData instead of a key file, and keyPaths
    data = base64.b64encode(open(pub, "rb").read()).decode()
    for req in ([{"type": "signedBy", "keyType": "GPGKeys", "keyData": data, "signedIdentity": exact}],
                [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": [keys["other"][1], pub],
                  "signedIdentity": exact}]):
        pol2 = policy(tmp_path, {"dir": {"": req}})
        run_pallet("--policy", pol2, "copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'copy2'}")
    # an oci: layout cannot keep signatures: refused, nothing written; --remove-signatures copies
    p = run_pallet("--policy", pol, "copy", "-q", f"dir:{src}", f"oci:{tmp_path / 'o'}:x", check=False)
    assert p.returncode == 1 and "cannot copy signatures" in p.stderr and "--remove-signatures" in p.stderr
    assert not os.path.exists(tmp_path / "o" / "index.json")
    run_pallet("--policy", pol, "copy", "-q", "--remove-signatures", f"dir:{src}", f"oci:{tmp_path / 'o'}:x")
    # a conversion would change the manifest digest and so invalidate the signature
    p = run_pallet("copy", "-q", "--format", "v2s2", f"dir:{src}", f"dir:{tmp_path / 'conv'}", check=False)
    assert p.returncode == 1 and "invalidate" in p.stderr
    assert not os.path.exists(tmp_path / "conv" / "manifest.json")


def test_policy_rejects_what_it_should(tmp_path, keys, layout):
    tfpr, tpub = keys["trusted"]
    ofpr, _ = keys["other"]
    ident = "registry.example.com/team/app:v1"
    exact = {"type": "exactReference", "dockerReference": ident}
    pol = policy(tmp_path, {"dir": {"": signed_by(tpub, exact)}})

    def signed_dir(name, fpr, identity=ident):
        d = str(tmp_path / name)
        run_pallet("copy", "-q", "--sign-by", fpr, "--sign-identity", identity, f"oci:{layout}:v1", f"dir:{d}")
        return d

    def refused(d, words):
        p = run_pallet("--policy", pol, "copy", "-q", f"dir:{d}", f"dir:{tmp_path / 'out'}", check=False)
        assert p.returncode == 1 and words in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
        assert not os.path.exists(tmp_path / "out" / "manifest.json")

    good = signed_dir("good", tfpr)
    run_pallet("--policy", pol, "copy", "-q", f"dir:{good}", f"dir:{tmp_path / 'ok'}")
    refused(signed_dir("other", ofpr), "Source image rejected: Invalid GPG signature: it is not signed by any of the "
                                      "trusted keys")
    refused(signed_dir("ident", tfpr, "registry.example.com/team/app:v2"),
            "Signature for identity registry.example.com/team/app:v2 is not accepted")
    unsigned = str(tmp_path / "unsigned")
    run_pallet("copy", "-q", f"oci:{layout}:v1", f"dir:{unsigned}")
    refused(unsigned, "Source image rejected: A signature was required, but no signature exists")
    tampered = str(tmp_path / "tampered")
    shutil.copytree(good, tampered)
    sig = bytearray(open(os.path.join(tampered, "signature-1"), "rb").read())
    sig[-3] ^= 0xFF
    open(os.path.join(tampered, "signature-1"), "wb").write(bytes(sig))
    refused(tampered, "rejected")
    # a good signature for another manifest
    images.make_layout(str(tmp_path / "layout2"), "v1", layers=[{"x": b"another"}])
    moved = str(tmp_path / "moved")
    run_pallet("copy", "-q", f"oci:{tmp_path / 'layout2'}:v1", f"dir:{moved}")
    shutil.copy(os.path.join(good, "signature-1"), os.path.join(moved, "signature-1"))
    refused(moved, "does not match (the manifest is sha256:")
    # a second, good signature is enough (at least one must be accepted)
    shutil.copy(os.path.join(good, "signature-1"), os.path.join(tmp_path / "other", "signature-2"))
    run_pallet("--policy", pol, "copy", "-q", f"dir:{tmp_path / 'other'}", f"dir:{tmp_path / 'ok2'}")
    assert os.path.exists(tmp_path / "ok2" / "signature-2")
    # a policy that cannot be read is one line, naming the file
    bad = policy(tmp_path, {"dir": {"": [{"type": "signedBy", "keyType": "GPGKeys"}]}})
    p = run_pallet("--policy", bad, "copy", "-q", f"dir:{good}", f"dir:{tmp_path / 'x'}", check=False)
    assert p.returncode == 1 and "exactly one of keyPath, keyPaths and keyData" in p.stderr
    bad = policy(tmp_path, {"dir": {"": [{"type": "sigstoreSigned", "keyPath": tpub}]}})
    p = run_pallet("--policy", bad, "copy", "-q", f"dir:{good}", f"dir:{tmp_path / 'x'}", check=False)
    assert p.returncode == 1 and "sigstore" in p.stderr and "--insecure-policy" in p.stderr


def signed_in_lookaside(tmp_path, keys, layout, reg):
    """``layout``'s image pushed to ``reg`` as team/app:v1, signed by the trusted key into a
    file:// lookaside: (lookaside dir, registries.d dir, docker reference)."""
    look = tmp_path / "lookaside"
    rd = registries_d(tmp_path, look)
    ref = f"docker://{reg.host}/team/app:v1"
    run_pallet("--registries.d", rd, "copy", "-q", "--dest-tls-verify=false", "--sign-by", keys["trusted"][0],
               f"oci:{layout}:v1", ref)
    return look, rd, ref


def test_pallet_signs_into_a_lookaside_and_skopeo_verifies(tmp_path, keys, layout, make_registry, skopeo):
    fpr, pub = keys["trusted"]
    reg = make_registry()
    look, rd, ref = signed_in_lookaside(tmp_path, keys, layout, reg)
    sigs = [os.path.join(dp, f) for dp, _, fs in os.walk(look) for f in fs]
    assert len(sigs) == 1 and "/team/app@sha256=" in sigs[0] and sigs[0].endswith("/signature-1")
    pol = policy(tmp_path, {"docker": {"": signed_by(pub)}, "dir": {"": [{"type": "insecureAcceptAnything"}]}})
    out = subprocess.run(["skopeo", "--policy", pol, "--registries.d", rd, "copy", "-q", "--src-tls-verify=false",
                          ref, f"dir:{tmp_path / 's'}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # pallet verifies it the same way, by default identity (matchRepoDigestOrExact) ...
    run_pallet("--registries.d", rd, "--policy", pol, "copy", "-q", "--src-tls-verify=false", ref,
               f"dir:{tmp_path / 'p'}")
    # ... which refuses the same manifest under another tag, and matchRepository accepts it
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", ref,
                    f"docker://{reg.host}/team/app:other"], check=True, capture_output=True)
    other = f"docker://{reg.host}/team/app:other"
    p = run_pallet("--registries.d", rd, "--policy", pol, "copy", "-q", "--src-tls-verify=false", other,
                   f"dir:{tmp_path / 'q'}", check=False)
    assert p.returncode == 1 and "does not accept" in p.stderr
    pol_repo = policy(tmp_path, {"docker": {"": signed_by(pub, {"type": "matchRepository"})}})
    run_pallet("--registries.d", rd, "--policy", pol_repo, "copy", "-q", "--src-tls-verify=false", other,
               f"dir:{tmp_path / 'q'}")
    # remapIdentity: mirror.example/app is accepted as the registry's team/app
    from pallet.transports import policy as _policy
    from pallet.oci import reference

    ident = {"type": "remapIdentity", "prefix": "mirror.example", "signedPrefix": f"{reg.host}/team"}
    signed = reference.parse(f"{reg.host}/team/app:v1")
    assert _policy._identity_matches(ident, reference.parse("mirror.example/app:v1"), signed)
    assert not _policy._identity_matches(ident, reference.parse("mirror.example/app:v2"), signed)
    assert not _policy._identity_matches(ident, reference.parse("mirror.examplex/app:v1"), signed)
    # a destination without a lookaside store refuses signing before copying anything
    p = run_pallet("copy", "-q", "--dest-tls-verify=false", "--sign-by", fpr, f"oci:{layout}:v1",
                   f"docker://{reg.host}/team/nolook:v1", check=False)
    assert p.returncode == 1 and "cannot copy signatures" in p.stderr
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{reg.host}/team/nolook:v1"],
                         capture_output=True, text=True)
    assert out.returncode != 0, "nothing was pushed"


def test_passphrase_and_identity_and_errors(tmp_path, keys, layout):
    fpr, pub = keys["locked"]
    d = tmp_path / "locked"
    run_pallet("copy", "-q", "--sign-by", fpr, "--sign-passphrase-file", keys["passphrase_file"],
               "--sign-identity", "example.com/a/b:c", f"oci:{layout}:v1", f"dir:{d}")
    content, got = signature.verify(open(d / "signature-1", "rb").read(), [open(pub, "rb").read()])
    claim = signature.parse_payload(content)
    assert got == fpr and claim.docker_reference == "example.com/a/b:c"
    assert claim.manifest_digest.startswith("sha256:") and claim.creator.startswith("pallet ")
    p = run_pallet("copy", "-q", "--sign-by", fpr, f"oci:{layout}:v1", f"dir:{tmp_path / 'noid'}", check=False)
    assert p.returncode == 1 and "--sign-identity" in p.stderr and not os.path.exists(tmp_path / "noid")
    p = run_pallet("copy", "-q", "--sign-by", "0" * 40, "--sign-identity", "a.b/c:d", f"oci:{layout}:v1",
                   f"dir:{tmp_path / 'nokey'}", check=False)
    assert p.returncode == 1 and "signing with key" in p.stderr
    assert not os.path.exists(tmp_path / "nokey" / "manifest.json")


def test_payload_is_checked_strictly(keys):
    fpr, pub = keys["trusted"]
    key = open(pub, "rb").read()
    assert signature.dearmor(key) == subprocess.run(["gpg", "--dearmor"], input=key, capture_output=True).stdout
    good = json.loads(signature.payload("a.b/c:d", "sha256:" + "0" * 64))
    assert good["critical"]["type"] == "atomic container signature"
    for change in (lambda d: d["critical"].update(extra=1), lambda d: d["critical"].pop("image"),
                   lambda d: d["critical"].update(type="cosign"),
                   lambda d: d["critical"]["identity"].update({"docker-reference": 5})):
        doc = json.loads(signature.payload("a.b/c:d", "sha256:" + "0" * 64))
        change(doc)
        sig = signature.sign(json.dumps(doc).encode(), fpr)
        content, _ = signature.verify(sig, [key])
        with pytest.raises(signature.SignatureError):
            signature.parse_payload(content)


def test_local_store_keeps_signatures(tmp_path, keys, layout, make_registry):
    fpr, pub = keys["trusted"]
    reg = make_registry()
    rd = registries_d(tmp_path, tmp_path / "lookaside")
    ref = f"{reg.host}/team/app:v1"
    run_pallet("--registries.d", rd, "copy", "-q", "--dest-tls-verify=false", "--sign-by", fpr,
               f"oci:{layout}:v1", f"docker://{ref}")
    pol = policy(tmp_path, {"docker": {"": signed_by(pub)}}, default="insecureAcceptAnything")
    store = ["--root", str(tmp_path / "store"), "--runroot", str(tmp_path / "run")]
    run_pallet(*store, "--registries.d", rd, "--policy", pol, "pull", "-q", "--tls-verify=false", ref)
    run_pallet(*store, "push", "-q", ref, f"dir:{tmp_path / 'pushed'}")
    content, _ = signature.verify(open(tmp_path / "pushed" / "signature-1", "rb").read(), [open(pub, "rb").read()])
    assert signature.parse_payload(content).docker_reference == ref
    run_pallet(*store, "save", "-o", str(tmp_path / "a.tar"), ref)  # an archive holds none: dropped
    run_pallet(*store, "rmi", ref)
    assert os.listdir(tmp_path / "store" / "blobs" / "sha256") == []
    assert run_pallet(*store, "system", "check").returncode == 0


def test_registries_d_errors_are_one_line(tmp_path, layout, make_registry):
    """Reading an image's signatures reads registries.d: a broken file is one line naming it."""
    reg = make_registry()
    run_pallet("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{reg.host}/x/y:1")
    d = tmp_path / "rd"
    d.mkdir()

    def copy():
        return run_pallet("--registries.d", str(d), "copy", "-q", "--src-tls-verify=false",
                          f"docker://{reg.host}/x/y:1", f"dir:{tmp_path / 'out'}", check=False)

    (d / "a.yaml").write_text("default-docker:\n  lookaside: ftp://x/\n")
    p = copy()
    assert p.returncode == 1 and "is not a file://, http:// or https:// URL" in p.stderr
    (d / "a.yaml").write_text("default-docker:\n  lookaside: file:///tmp/x\n")
    (d / "b.yaml").write_text("default-docker:\n  lookaside: file:///tmp/y\n")
    p = copy()
    assert p.returncode == 1 and "default-docker is already set" in p.stderr and len(p.stderr.splitlines()) == 1
    (d / "b.yaml").write_text("docker: [1, 2\n")
    p = copy()
    assert p.returncode == 1 and "b.yaml: not valid YAML" in p.stderr and len(p.stderr.splitlines()) == 1
    os.unlink(d / "b.yaml")
    assert copy().returncode == 0  # a lookaside without signatures for the image: none, and fine


def test_standalone_sign_and_verify(tmp_path, keys, layout, skopeo):
    """skopeo's standalone-sign/-verify verbs: pallet signs, skopeo verifies, and back."""
    fpr, pub = keys["trusted"]
    ofpr, _ = keys["other"]
    d = tmp_path / "img"
    run_pallet("copy", "-q", f"oci:{layout}:v1", f"dir:{d}")
    manifest = str(d / "manifest.json")
    ours = str(tmp_path / "ours.sig")
    run_pallet("standalone-sign", manifest, "example.com/a/b:c", fpr, "-o", ours)
    out = subprocess.run(["skopeo", "standalone-verify", manifest, "example.com/a/b:c", fpr, ours],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    theirs = str(tmp_path / "theirs.sig")
    subprocess.run(["skopeo", "standalone-sign", manifest, "example.com/a/b:c", fpr, "-o", theirs],
                   check=True, capture_output=True)
    p = run_pallet("standalone-verify", manifest, "example.com/a/b:c", f"{ofpr},{fpr}", theirs)
    # skopeo 1.9.3's line (its suite takes the 4th field as the digest manifest-digest prints)
    assert p.stdout == f"Signature verified, digest {run_pallet('manifest-digest', manifest).stdout}"
    assert p.stdout == out.stdout  # what skopeo printed verifying ours
    run_pallet("standalone-verify", "--public-key-file", pub, manifest, "example.com/a/b:c", "", theirs)
    for args, words in (([manifest, "example.com/a/b:x", fpr, theirs], "not example.com/a/b:x"),
                        ([manifest, "example.com/a/b:c", ofpr, theirs], "not signed by any of the trusted keys"),
                        ([str(tmp_path / "missing.json"), "example.com/a/b:c", fpr, theirs], "missing.json")):
        p = run_pallet("standalone-verify", *args, check=False)
        assert p.returncode == 1 and words in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr


def test_index_signatures(tmp_path, keys, multi_layout, skopeo):
    """--all keeps the index's and each instance's signatures (HEX.signature-N in dir:);
    copying the one image for this system keeps that instance's, verified by skopeo."""
    fpr, pub = keys["trusted"]
    src = tmp_path / "src"
    run_pallet("copy", "-q", "--all", f"oci:{multi_layout}:m", f"dir:{src}")
    index = json.load(open(src / "manifest.json"))
    for i, m in enumerate(index["manifests"]):
        hexd = m["digest"].split(":")[1]
        subprocess.run(["skopeo", "standalone-sign", str(src / f"{hexd}.manifest.json"), f"example.com/a/b:{i}", fpr,
                        "-o", str(src / f"{hexd}.signature-1")], check=True, capture_output=True)
    subprocess.run(["skopeo", "standalone-sign", str(src / "manifest.json"), "example.com/a/b:all", fpr,
                    "-o", str(src / "signature-1")], check=True, capture_output=True)
    run_pallet("copy", "-q", "--all", f"dir:{src}", f"dir:{tmp_path / 'all'}")
    names = sorted(n for n in os.listdir(tmp_path / "all") if "signature" in n)
    assert names == sorted(["signature-1"] + [m["digest"].split(":")[1] + ".signature-1"
                                              for m in index["manifests"]])
    run_pallet("copy", "-q", f"dir:{src}", f"dir:{tmp_path / 'one'}")  # this system's instance (amd64)
    amd64 = next(m for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    i = index["manifests"].index(amd64)
    out = subprocess.run(["skopeo", "standalone-verify", str(tmp_path / "one" / "manifest.json"),
                          f"example.com/a/b:{i}", fpr, str(tmp_path / "one" / "signature-1")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(tmp_path / "one" / "signature-2")
    # converting the instances would invalidate their signatures
    p = run_pallet("copy", "-q", "--all", "--format", "v2s2", f"dir:{src}", f"dir:{tmp_path / 'conv'}", check=False)
    assert p.returncode == 1 and "invalidate" in p.stderr


def test_lookaside_read_over_http(tmp_path, keys, layout, make_registry):
    """A lookaside store served over HTTP (as sigstore web servers are) is read until its 404."""
    import http.server
    import threading
    from functools import partial

    _, pub = keys["trusted"]
    reg = make_registry()
    look, _, ref = signed_in_lookaside(tmp_path, keys, layout, reg)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(look))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        served = tmp_path / "served.d"
        served.mkdir()
        (served / "x.yaml").write_text(f"docker:\n  {reg.host}/team:\n    lookaside: "
                                       f"http://127.0.0.1:{server.server_address[1]}/\n")
        pol = policy(tmp_path, {"docker": {"": signed_by(pub)}}, default="insecureAcceptAnything")
        run_pallet("--registries.d", str(served), "--policy", pol, "copy", "-q", "--src-tls-verify=false", ref,
                   f"dir:{tmp_path / 'out'}")
        assert (tmp_path / "out" / "signature-1").exists() and not (tmp_path / "out" / "signature-2").exists()
        # another repository falls outside the scope: no lookaside, no signature, refused
        run_pallet("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", ref,
                   f"docker://{reg.host}/other/app:v1")
        p = run_pallet("--registries.d", str(served), "--policy", pol, "copy", "-q", "--src-tls-verify=false",
                       f"docker://{reg.host}/other/app:v1", f"dir:{tmp_path / 'out2'}", check=False)
        assert p.returncode == 1 and "no signature exists" in p.stderr
    finally:
        server.shutdown()
        server.server_close()
