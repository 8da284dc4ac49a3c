#!/usr/bin/env python3
"""Two revisions of pallet, each side by side with its peer, in one run (issue 15's figures).

    python3 bench/before_after.py OLD_REV [NEW_REV]      (as root; NEW_REV defaults to HEAD)

Each revision is checked out with ``git worktree add --detach`` into a temporary directory,
installed into its own venv (``pip install -e``, by the project venv's pip) and precompiled
with compileall, as a regular install would be (PYTHONDONTWRITEBYTECODE is removed from the timed commands'
environment, see _common.ENV). Then, on tmpfs, with docker-registry on 127.0.0.1:

- ``inspect`` of a remote image                         vs ``skopeo inspect``
- ``images`` on a store of 20 images                     vs ``podman images`` on the same images
- ``pull`` of a 4-layer image into an empty store        vs ``podman pull``
- a small build (RUN + COPY + ENV) on a fresh store      vs ``buildah bud`` (the default network,
  then ``--network host``, then ``--network host`` with the RUN step's seccomp filter off for NEW
  and buildah: OLD's RUN had none, so that row is the same work for all three); OLD and NEW each
  run RUN with their own pallet-runtime (``--runtime``), buildah with runc
- ``pallet-runtime run`` of /bin/true in a busybox bundle vs ``runc run``

``--only PART`` (repeatable: inspect, images, pull, build, runtime) measures only those.

Each round runs OLD, the peer and NEW one after the other (the order reversed every other
round, one uncounted warm-up round first), so the three see the same moment of a machine
whose speed drifts. Two figures are taken of every run: wall time and CPU time (user + sys
of the command and of the children it waited for, from the kernel's rusage). On a machine
loaded by other work, CPU time is the steadier figure: wall time also counts the time the
command waited for a processor. The output is a Markdown table of medians and the ratios
pallet/peer for each revision and NEW/OLD.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402
from build import CONTAINERS_CONF, _fresh, _umount_under  # noqa: E402


def run_timed(cmd: list[str], env: dict, cwd: str | None = None) -> tuple[float, float]:
    """Wall and CPU (user + sys, the command and the children it reaped) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def rounds(name: str, cmds: dict, runs: int, setup=None, env=None, cwd=None) -> dict:
    """``cmds``: label -> argv. One warm-up round, then ``runs`` rounds, the order reversed every
    other round; ``setup(label)`` (untimed) runs before each command. Returns label -> [(wall, cpu)]."""
    c.out(f"{name}: {runs} rounds")
    LOADS.append(loadavg().split()[0])
    labels = list(cmds)
    samples = {label: [] for label in labels}
    for i in range(runs + 1):
        for label in (labels if i % 2 == 0 else labels[::-1]):
            if setup:
                setup(label)
            took = run_timed(cmds[label], (env or {}).get(label, c.ENV), cwd)
            if i:
                samples[label].append(took)
    return samples


def sh(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


class Revision:
    def __init__(self, label: str, rev: str, work: str):
        self.label = label
        self.sha = subprocess.run(["git", "-C", c.REPO, "rev-parse", "--verify", rev + "^{commit}"],
                                  check=True, capture_output=True, text=True).stdout.strip()
        self.rev = rev
        self.tree = os.path.join(work, f"tree-{label}")
        venv = os.path.join(self.tree, ".venv")
        c.out(f"{label} = {rev} ({self.sha[:12]}): worktree, venv, pip install -e, compileall...")
        sh(["git", "-C", c.REPO, "worktree", "add", "--detach", self.tree, self.sha], stderr=subprocess.DEVNULL)
        # the venv without the pip and setuptools of the system's ensurepip: installed by the
        # project venv's current pip (--python), as a user's recent pip would install pallet
        # (pip 23's console scripts import re before pallet runs; current pip's do not)
        sh([sys.executable, "-m", "venv", "--without-pip", venv])
        sh([os.path.join(c.VENV_BIN, "python"), "-m", "pip", "--python", os.path.join(venv, "bin", "python"),
            "install", "-q", "--disable-pip-version-check", "-e", self.tree], stderr=subprocess.DEVNULL)
        sh([os.path.join(venv, "bin", "python"), "-m", "compileall", "-q", os.path.join(self.tree, "src")],
           env=c.ENV)
        self.pallet = os.path.join(venv, "bin", "pallet")
        self.runtime = os.path.join(venv, "bin", "pallet-runtime")

    def remove(self) -> None:
        subprocess.run(["git", "-C", c.REPO, "worktree", "remove", "--force", self.tree], capture_output=True)
        shutil.rmtree(self.tree, ignore_errors=True)
        subprocess.run(["git", "-C", c.REPO, "worktree", "prune"], capture_output=True)


LOADS: list[str] = []  # the 1-minute load average as each measurement starts


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def table(results: list[tuple[str, str, dict]]) -> str:
    med = statistics.median
    lines = ["| work | peer | figure | OLD | NEW | peer | OLD/peer | NEW/peer | NEW/OLD |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, peer, s in results:
        for k, fig in ((1, "CPU ms"), (0, "wall ms")):
            o, n, p = (med([x[k] for x in s[lab]]) for lab in ("OLD", "NEW", peer))
            lines.append(f"| {name if k else ''} | {peer if k else ''} | {fig} | {o * 1000:.0f} | {n * 1000:.0f} | "
                         f"{p * 1000:.0f} | {o / p:.2f} | {n / p:.2f} | **{n / o:.2f}** |")
    return "\n".join(lines)


PARTS = ("inspect", "images", "pull", "build", "runtime")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new", nargs="?", default="HEAD")
    ap.add_argument("--runs", type=int, default=21, help="counted rounds of the quick commands (inspect, "
                    "images, runtime run); pull and build run a third of them, at least 5")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--size-mb", type=int, default=120, help="the pulled image, about this many MB in 4 layers")
    ap.add_argument("--copy-mb", type=int, default=5, help="the size of the build's COPY")
    ap.add_argument("--only", action="append", choices=PARTS, help="measure only this part (repeatable)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (podman, buildah and the runtimes need it)")
    slow_runs = max(5, args.runs // 3)
    want = set(args.only or PARTS)
    work = c.tmpfs_dir("pallet-before-after-")
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write(CONTAINERS_CONF)
    c.ENV["CONTAINERS_CONF"] = conf
    revs: list[Revision] = []
    reg = None
    results: list[tuple[str, str, dict]] = []
    loads = [loadavg()]
    LOADS.clear()
    prun = [f"/run/pba-{os.getpid()}", f"/run/pbp-{os.getpid()}"]  # podman refuses long run roots
    try:
        revs = [Revision("OLD", args.old, work), Revision("NEW", args.new, work)]
        old, new = revs
        reg = c.Registry(os.path.join(work, "reg"))

        def skopeo_push(layout: str, tag: str, ref: str) -> None:
            sh(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{ref}"])

        c.out(f"making and pushing the images ({args.size_mb} MB in 4 layers, {args.images} small ones, busybox)...")
        layout = os.path.join(work, "layout")
        per = max(11, args.size_mb // 4)
        c.make_layout(layout, [per + 10, per, per - 10, per])
        big = f"{reg.host}/bench/big:1"
        skopeo_push(layout, "big", big)
        shutil.rmtree(layout)
        small = []
        for i in range(args.images):
            lay = os.path.join(work, f"small{i}")
            c.make_small_layout(lay, i)
            small.append(f"{reg.host}/bench/small{i}:1")
            skopeo_push(lay, "small", small[-1])
            shutil.rmtree(lay)
        lay = os.path.join(work, "busybox")
        sh([sys.executable, os.path.join(c.REPO, "scripts", "make-demo-image.py"), lay, "v1"])
        base = f"{reg.host}/bench/busybox:v1"
        skopeo_push(lay, "v1", base)

        def pallet(r: Revision, root: str, *a: str) -> list[str]:
            return [r.pallet, "--root", root, "--runroot", root + "-run", "--storage-driver", "overlay", *a]

        def podman(root: str, runroot: str, *a: str) -> list[str]:
            return ["podman", "--root", root, "--runroot", runroot, "--storage-driver", "overlay", *a]

        if "inspect" in want:
            # 1. remote inspect
            ref = f"docker://{small[0]}"
            results.append(("inspect of a remote image", "skopeo", rounds("inspect", {
                "OLD": [old.pallet, "inspect", "--tls-verify=false", "--no-tags", ref],
                "skopeo": ["skopeo", "inspect", "--tls-verify=false", "--no-tags", ref],
                "NEW": [new.pallet, "inspect", "--tls-verify=false", "--no-tags", ref]}, args.runs)))

        if "images" in want:
            # 2. images on a store of N images, each store filled by its own tool
            c.out(f"filling three stores with {args.images} images...")
            iroot = {r.label: os.path.join(work, f"images-{r.label}") for r in revs}
            iroot["podman"] = os.path.join(work, "images-podman")
            for r in small:
                for rv in revs:
                    sh(pallet(rv, iroot[rv.label], "pull", "-q", "--tls-verify=false", r), env=c.ENV)
                sh(podman(iroot["podman"], prun[0], "pull", "-q", "--tls-verify=false", r), env=c.ENV)
            results.append((f"images, store of {args.images} images", "podman", rounds("images", {
                "OLD": pallet(old, iroot["OLD"], "images"),
                "podman": podman(iroot["podman"], prun[0], "images"),
                "NEW": pallet(new, iroot["NEW"], "images")}, args.runs)))

        if "pull" in want:
            # 3. pull into an empty store
            proot = {label: os.path.join(work, f"pull-{label}") for label in ("OLD", "NEW", "podman")}

            def empty_store(label: str) -> None:
                if label == "podman":
                    subprocess.run(podman(proot[label], prun[1], "system", "reset", "-f"), capture_output=True,
                                   env=c.ENV)
                    _fresh(proot[label], prun[1])
                else:
                    _fresh(proot[label], proot[label] + "-run")

            results.append((f"pull, {args.size_mb} MB in 4 layers, empty store", "podman", rounds("pull", {
                "OLD": pallet(old, proot["OLD"], "pull", "-q", "--tls-verify=false", big),
                "podman": podman(proot["podman"], prun[1], "pull", "-q", "--tls-verify=false", big),
                "NEW": pallet(new, proot["NEW"], "pull", "-q", "--tls-verify=false", big)}, slow_runs, empty_store)))
            for label in proot:
                empty_store(label)

        if "build" in want:
            # 4. a small build on a fresh store
            ctx = os.path.join(work, "ctx")
            os.makedirs(ctx)
            with open(os.path.join(ctx, "data.bin"), "wb") as f:
                f.write(os.urandom(args.copy_mb << 20))
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write(f"FROM {base}\nRUN echo built > /built.txt\nCOPY data.bin /data/data.bin\nENV BENCH=1\n")
            broot = {label: os.path.join(work, f"build-{label}") for label in ("OLD", "NEW", "buildah")}

            def fresh_build(label: str) -> None:
                _fresh(broot[label], broot[label] + "-run")

            # by default NEW (as buildah) runs RUN in a private namespace on the default network
            # (netavark); OLD ran it on the host's. With --network host all three do the same work
            # the third row: the RUN step's seccomp filter (containers-common's profile, which the
            # trust work gave builds) off for NEW and buildah, as OLD had none: the same work for all
            # the RUN step's runtime named for OLD and NEW: each its own pallet-runtime. The bench's
            # containers.conf says `runtime = "runc"` (for podman and buildah); NEW reads it for
            # builds as buildah does, OLD did not, so without --runtime NEW's RUN ran runc (its
            # libseccomp compile of the profile alone ~20 ms of CPU) and OLD's pallet-runtime
            unconfined = ("--security-opt", "seccomp=unconfined")
            for label, net, new_only in (("", (), ()), (", --network host", ("--network", "host"), ()),
                                         (", --network host, no seccomp filter in RUN", ("--network", "host"),
                                          unconfined)):
                results.append((f"build RUN + COPY {args.copy_mb} MB + ENV, fresh store{label}", "buildah",
                                rounds("build" + label, {
                    "OLD": pallet(old, broot["OLD"], "build", "--tls-verify=false", "--runtime", old.runtime, *net,
                                  "-t", "bench", ctx),
                    "buildah": ["buildah", "--root", broot["buildah"], "--runroot", broot["buildah"] + "-run",
                                "--storage-driver", "overlay", "bud", "--tls-verify=false", *net, *new_only, "-t", "bench",
                                ctx],
                    "NEW": pallet(new, broot["NEW"], "build", "--tls-verify=false", "--runtime", new.runtime, *net,
                                  *new_only, "-t", "bench", ctx)},
                    slow_runs, fresh_build, env={"buildah": dict(c.ENV, BUILDAH_ISOLATION="oci")})))
            for label in broot:
                fresh_build(label)

        if "runtime" in want:
            # 5. pallet-runtime run /bin/true (one bundle, made by NEW's `spec`, for all three)
            rt = os.path.join(work, "rt")
            os.makedirs(rt)
            sh(["sh", "-c", '. "$0/bench/_runtime_bundle.sh"', c.REPO], env=dict(c.ENV, W=rt, PR=new.runtime))
            results.append(("pallet-runtime run /bin/true", "runc", rounds("runtime run", {
                "OLD": [old.runtime, "--root", os.path.join(rt, "p-old"), "run", "b"],
                "runc": ["runc", "--root", os.path.join(rt, "r"), "run", "b"],
                "NEW": [new.runtime, "--root", os.path.join(rt, "p-new"), "run", "b"]},
                args.runs, cwd=os.path.join(rt, "bundle"))))
        loads.append(loadavg())
    finally:
        for root, runroot in ((os.path.join(work, "images-podman"), prun[0]),
                              (os.path.join(work, "pull-podman"), prun[1])):
            if os.path.exists(root):
                subprocess.run(["podman", "--root", root, "--runroot", runroot, "--storage-driver", "overlay",
                                "system", "reset", "-f"], capture_output=True, env=c.ENV)
            _fresh(runroot)
        if reg:
            reg.stop()
        for r in revs:
            r.remove()
        _umount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    print(f"OLD = {args.old} ({old.sha[:12]}), NEW = {args.new} ({new.sha[:12]})")
    print(f"machine: {os.cpu_count()} CPUs ({model}), {os.uname().release}; "
          f"load average (1/5/15 min) at the start {loads[0]}, at the end {loads[-1]}; "
          f"1-minute load as each measurement started: {', '.join(LOADS)}")
    print(f"medians of {args.runs} rounds (pull and build: {slow_runs}), interleaved OLD/peer/NEW; "
          "CPU = user + sys of the command and its reaped children.")
    print("CPU time is the steadier figure on a loaded machine (wall time also counts waiting for a "
          "processor); ratios > 1 mean pallet (or NEW) is slower.\n")
    print(table(results))


if __name__ == "__main__":
    main()
