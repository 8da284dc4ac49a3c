"""``pallet build --scan[=POLICY]`` and ``pallet builder commit --scan``: the image is scanned
before it is named, and refused (the report, a non-zero exit, nothing tagged) when the policy
fails: here a private key written in one layer and deleted by the next."""

from __future__ import annotations

from buildtools import PalletStore, make_busybox_layout
from test_scan import KEY


def _names(store) -> set:
    return {n for rec in store.store().images() for n in rec.get("names") or []}


def test_build_and_commit_refused_when_the_policy_fails(tmp_path):
    base = str(tmp_path / "busybox")
    make_busybox_layout(base, "v1")
    s = PalletStore(str(tmp_path / "store"))
    try:
        s("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "id_ed25519").write_text(KEY)
        (ctx / "hello").write_text("hello\n")
        (ctx / "Clean").write_text("FROM localhost/busybox:v1\nCOPY hello /hello\n")
        (ctx / "Leaky").write_text("FROM localhost/busybox:v1\nCOPY id_ed25519 /root/.ssh/id_ed25519\n"
                                   "RUN rm /root/.ssh/id_ed25519\n")

        p = s("build", "--scan", "-t", "localhost/clean:1", "--iidfile", str(tmp_path / "iid"), "-f",
              str(ctx / "Clean"), str(ctx))
        assert "localhost/clean:1" in _names(s) and "Successfully tagged localhost/clean:1" in p.stdout
        assert (tmp_path / "iid").read_text() == "sha256:" + p.stdout.split()[-1]

        p = s("build", "--scan", "-t", "localhost/leaky:1", "--iidfile", str(tmp_path / "iid2"), "-f",
              str(ctx / "Leaky"), str(ctx), check=False)
        assert p.returncode != 0
        assert "secret-private-key" in p.stderr and "/root/.ssh/id_ed25519" in p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith("Error: the scan refused image")
        assert "localhost/leaky:1" not in _names(s) and not (tmp_path / "iid2").exists()
        # the refused image is removed (the build cache's intermediate images stay, as after any build)
        refused = p.stderr.split("refused image ", 1)[1][:12]
        assert not [rec for rec in s.store().images() if rec["id"].startswith(refused)]

        # a policy that allows the key: built and tagged
        pol = tmp_path / "policy.yaml"
        pol.write_text("rules:\n  secret-private-key: {allow: [/root/.ssh/*]}\n")
        s("build", f"--scan={pol}", "-t", "localhost/leaky:1", "-f", str(ctx / "Leaky"), str(ctx))
        assert "localhost/leaky:1" in _names(s)
        # a bad policy: said before anything is built
        pol.write_text("rules:\n  nope: off\n")
        p = s("build", f"--scan={pol}", "-t", "localhost/other:1", "-f", str(ctx / "Clean"), str(ctx), check=False)
        assert p.returncode == 125 and "no rule 'nope'" in p.stderr and "STEP" not in p.stdout
        p = s("build", f"--scan={tmp_path}/missing.yaml", "-f", str(ctx / "Clean"), str(ctx), check=False)
        assert p.returncode == 125 and "missing.yaml: no such policy file" in p.stderr

        # builder commit --scan
        ctr = s("builder", "from", "localhost/busybox:v1").stdout.strip()
        s("builder", "copy", ctr, str(ctx / "id_ed25519"), "/root/key")
        p = s("builder", "commit", "--scan", ctr, "localhost/committed:1", check=False)
        assert p.returncode != 0 and "secret-private-key" in p.stderr and "localhost/committed:1" not in _names(s)
        s("builder", "run", ctr, "rm", "/root/key")
        # the container's changes are one layer: the key written and removed in it is in no layer
        s("builder", "commit", "--scan", ctr, "localhost/committed:1")
        assert "localhost/committed:1" in _names(s)
        s("builder", "rm", ctr)
    finally:
        s.unmount_all()
