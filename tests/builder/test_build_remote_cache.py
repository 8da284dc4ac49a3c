"""``build --layers --cache-to REPO`` / ``--cache-from REPO`` (buildah 1.28's remote layer
cache) against the real test registry: each step's image pushed as REPO:KEY, a fresh store
pulls the steps instead of running them, a store that has them uses its own."""

from __future__ import annotations

import json
import subprocess

from buildtools import PalletStore, base, pallet  # noqa: F401  (fixtures)
from conftest import need


def _ctx(tmp_path) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n"
                                    "COPY f.txt /f.txt\nENV E=1\n")
    (ctx / "f.txt").write_text("f\n")
    return str(ctx)


def test_cache_to_pushes_steps_and_cache_from_pulls_them(pallet, tmp_path, registry, base):  # noqa: F811
    repo = f"{registry.host}/remote-cache/steps"
    ctx = _ctx(tmp_path)
    out = pallet("build", "--layers", "--tls-verify=false", "--cache-to", repo, "-t", "first", ctx).stdout
    pushed = [ln.split()[-1] for ln in out.splitlines() if ln.startswith("--> Pushing cache ")]
    assert len(pushed) >= 2 and all(p.startswith(repo + ":") for p in pushed), out
    tags = json.loads(subprocess.run([need("skopeo"), "list-tags", "--tls-verify=false", f"docker://{repo}"],
                                     capture_output=True, text=True, check=True).stdout)["Tags"]
    assert {p.rsplit(":", 1)[1] for p in pushed} <= set(tags)
    first = pallet.store().image("first")

    # a store without those steps: pulled, not run (the RUN's random stamp is the first build's)
    other = PalletStore(str(tmp_path / "other"))
    try:
        other("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
        out = other("build", "--layers", "--tls-verify=false", "--cache-from", repo, "-t", "second", ctx).stdout
        assert out.count("--> Cache pulled from remote ") >= 2, out
        assert "Pushing cache" not in out
        assert other.store().image("second")["layers"] == first["layers"]  # the same layers, not rebuilt
        # again: its own cache now, nothing pulled; with --cache-to too, what it has is pushed
        out = other("build", "--layers", "--tls-verify=false", "--cache-from", repo, "-t", "third", ctx).stdout
        assert "Using cache" in out and "Cache pulled" not in out
        # a repository with nothing there: a miss, the steps run
        out = other("build", "--layers", "--no-cache", "--tls-verify=false", "--cache-from", f"{registry.host}/none/x",
                    ctx).stdout
        assert "Cache pulled" not in out
    finally:
        other.unmount_all()
    # without --layers the flags change nothing (buildah's); a tag or digest is refused in buildah's words
    out = pallet("bud", "--tls-verify=false", "--cache-to", repo, ctx).stdout
    assert "Pushing cache" not in out
    for flag in ("--cache-to", "--cache-from"):
        p = pallet("build", flag, f"{repo}:v1", ctx, check=False)
        assert p.returncode == 125 and "repository must contain neither a tag nor digest" in p.stderr
        assert p.stderr.startswith(f"Error: unable to parse value provided `{repo}:v1` to {flag}")


def test_a_hostile_cache_serves_only_builds_that_name_it(pallet, tmp_path, registry, base):  # noqa: F811
    """A registry that answers every cache key with an image of its own choosing: a build that
    names it with --cache-from takes what it is given (the cache is trusted by the one who names
    it, as buildah's), but a later build in the same store without --cache-from runs its steps
    itself: the pulled steps are not its cache."""
    repo = f"{registry.host}/remote-cache/hostile"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN echo honest > /made\n")
    out = pallet("build", "--layers", "--tls-verify=false", "--cache-to", repo, "-t", "probe", str(ctx)).stdout
    keys = [ln.split()[-1] for ln in out.splitlines() if ln.startswith("--> Pushing cache ")]
    assert keys, out
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "Dockerfile").write_text("FROM localhost/busybox:v1\nRUN echo planted > /made\n")
    pallet("build", "-q", "-t", "evil", str(evil))
    for ref in keys:  # the registry now answers each key with the planted image
        pallet("push", "-q", "--tls-verify=false", "evil", f"docker://{ref}")
    other = PalletStore(str(tmp_path / "other"))
    try:
        other("copy", f"oci:{base}:v1", "local:localhost/busybox:v1")
        out = other("build", "--layers", "--tls-verify=false", "--cache-from", repo, "-t", "trusting", str(ctx)).stdout
        assert "Cache pulled from remote" in out, out
        cat = lambda img: other("run", "--rm", img, "cat", "/made").stdout
        assert cat("trusting") == "planted\n"  # the one who named the cache gets what it holds
        out = other("build", "--layers", "-t", "own", str(ctx)).stdout
        assert "Using cache" not in out and "Cache pulled" not in out, out
        assert cat("own") == "honest\n"
    finally:
        other.unmount_all()
