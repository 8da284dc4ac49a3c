"""Several platforms in one build (buildah 1.28's ``--platform a,b --manifest LIST``), each
platform's output in a file of its own (``--logfile F --logsplit``: ``F_OS_ARCH``), and RUN
steps for another CPU: emulation probed (binfmt_misc), refused with what to install when
there is none, while a build without RUN steps works anyway."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import images
from buildtools import PalletStore
from conftest import need

from pallet.builder import emulation


@pytest.fixture
def multi_ref(registry, tmp_path):
    """A manifest list for linux/amd64 and linux/arm64/v8 in the test registry."""
    layout = str(tmp_path / "multi")
    images.make_multiarch_layout(layout, "v1", platforms=(("amd64", ""), ("arm64", "v8")))
    ref = f"{registry.host}/platforms/base-{os.path.basename(str(tmp_path))[-20:].lower()}:v1"
    subprocess.run([need("skopeo"), "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{ref}"], check=True, capture_output=True)
    return ref


@pytest.fixture
def s(tmp_path):
    st = PalletStore(str(tmp_path / "store"))
    yield st
    st.unmount_all()


def _ctx(tmp_path, text: str) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(text)
    (ctx / "f.txt").write_text("f\n")
    return str(ctx)


def test_copy_only_build_for_two_platforms_into_a_manifest_list(s, multi_ref, tmp_path):
    ctx = _ctx(tmp_path, f"FROM {multi_ref}\nCOPY f.txt /f.txt\n")
    p = s("build", "--tls-verify=false", "--platform", "linux/arm64,linux/amd64", "--manifest", "ml", "-t", "multi",
          ctx)
    lines = p.stdout.splitlines()
    assert any(ln.startswith("[linux/arm64] STEP 1/2: FROM ") for ln in lines)
    assert any(ln.startswith("[linux/amd64] STEP 2/2: COPY ") for ln in lines)
    doc = json.loads(s("manifest", "inspect", "ml").stdout)
    plats = [(m["platform"]["os"], m["platform"]["architecture"]) for m in doc["manifests"]]
    assert plats == [("linux", "arm64"), ("linux", "amd64")]
    assert doc["manifests"][0]["digest"] != doc["manifests"][1]["digest"]
    listed = [ln.split() for ln in s("images", "--no-trunc").stdout.splitlines() if ln.startswith("localhost/ml ")]
    assert listed and listed[0][2] == "sha256:" + lines[-1]  # buildah prints the list's ID
    # the files are each base's: the arm64 instance holds the arm64 base's arch.txt
    for want in ("arm64", "amd64"):
        iid = s("build", "-q", "--tls-verify=false", "--platform", f"linux/{want}", ctx).stdout.strip()
        arch = json.loads(s("image", "inspect", iid).stdout)[0]["Architecture"]
        assert arch == want
    # one file per platform with --logsplit; --logsplit alone is refused (buildah's words)
    log = tmp_path / "log"
    s("build", "--tls-verify=false", "--logfile", str(log), "--logsplit", "--platform", "linux/arm64,linux/amd64", ctx)
    for arch in ("arm64", "amd64"):
        text = (tmp_path / f"log_linux_{arch}").read_text()
        assert f"[linux/{arch}] STEP 1/2: FROM" in text, text
    assert not log.exists()
    p = s("build", "--logsplit", ctx, check=False)
    assert p.returncode == 125 and p.stderr == "Error: cannot use --logsplit without --logfile\n"
    p = s("build", "--platform", "linux/arm64,linux/amd64", "--iidfile", str(tmp_path / "iid"), ctx, check=False)
    assert p.returncode == 125 and "can only be used to store one image ID" in p.stderr
    assert not (tmp_path / "iid").exists()


def test_run_for_another_cpu_needs_emulation(s, multi_ref, tmp_path):
    ctx = _ctx(tmp_path, f"FROM {multi_ref}\nRUN echo ran > /ran\n")
    from pallet.oci.platform import host

    native = host().architecture
    foreign = "arm64" if native != "arm64" else "amd64"
    args = ("build", "--tls-verify=false", "--platform", f"linux/{foreign},linux/{native}", "--manifest", "runlist", ctx)
    if emulation.handler(foreign) is None:
        p = s(*args, check=False)
        assert p.returncode == 125, p.stderr
        err = p.stderr.strip().splitlines()[-1]
        assert err.startswith('Error: building at STEP "RUN echo ran > /ran": RUN for linux/') and \
            "exec format error: it needs emulation" in err and "qemu-user-static" in err, err
        # nothing half-made: no list
        assert s("manifest", "exists", "runlist", check=False).returncode == 1
    else:  # an emulator is registered: the step runs (the base has no shell: it fails for want of
        p = s(*args, check=False)  # /bin/sh, never on the refusal)
        assert "needs emulation" not in p.stderr


@pytest.mark.unit
def test_emulation_probe_reads_binfmt_misc(tmp_path):
    d = tmp_path / "binfmt"
    d.mkdir()
    assert emulation.can_run("amd64", "amd64", str(d)) and emulation.can_run("386", "amd64", str(d))
    assert not emulation.can_run("arm64", "amd64", str(d))
    (d / "status").write_text("enabled\n")
    (d / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert not emulation.can_run("arm64", "amd64", str(d))
    (d / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert emulation.can_run("arm64", "amd64", str(d)) and emulation.handler("arm64", str(d)).endswith("qemu-aarch64")
    (d / "status").write_text("disabled\n")
    assert not emulation.can_run("arm64", "amd64", str(d))
    assert not emulation.can_run("sparc", "amd64", str(d))
