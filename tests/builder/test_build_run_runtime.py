"""The RUN step's runtime calls: ``delete --force`` only when the runtime left state behind,
an interrupted RUN stopped through the runtime (``kill ID KILL``, the runtime left to reap it),
and the default runtime's probe (``pallet-runtime features``) asked again only when the
installation changed."""

from __future__ import annotations

import os
import sys

import pytest

from buildtools import PalletStore, base, pallet  # noqa: F401  (fixtures)

RUNTIME = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")


def _wrapper(path, log: str, keep: bool) -> str:
    """A runtime that is pallet-runtime, logging each call's verb; ``keep``: its ``run`` keeps
    the container's state when the command exits (as a runtime killed half-way leaves it)."""
    path.write_text("#!/bin/sh\n"
                    f"for a; do case $a in run|delete|features|kill) echo $a >> {log};; esac; done\n"
                    + ('for a; do shift; set -- "$@" "$a"; [ "$a" = run ] && set -- "$@" --keep; done\n'
                       if keep else "")
                    + f'exec {RUNTIME} "$@"\n')
    path.chmod(0o755)
    return str(path)


def _build_with_wrapper(tmp_path, keep: bool, steps: str):
    """(call log, wrapper runtime, context, runroot) for a build of busybox + ``steps``."""
    if not os.path.exists(RUNTIME):
        pytest.skip("pallet-runtime is not installed beside this interpreter: runs once ./scripts/install.sh (which .ci/run calls) has installed pallet into this venv")
    log = tmp_path / "calls"
    runtime = _wrapper(tmp_path / "rt", str(log), keep)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\n" + steps)
    return log, runtime, str(ctx), str(tmp_path / "run")


@pytest.mark.parametrize("keep", [False, True])
def test_delete_runs_only_for_state_the_runtime_left(pallet, tmp_path, keep):
    log, runtime, ctx, runroot = _build_with_wrapper(tmp_path, keep, "RUN echo a > /a\nRUN echo b > /b\n")
    pallet("--runroot", runroot, "build", "--runtime", runtime, "-t", "x", ctx)
    # a run that cleaned up after itself needs no delete; state left behind is deleted
    assert log.read_text().split() == (["run", "delete"] * 2 if keep else ["run", "run"])
    assert os.listdir(os.path.join(runroot, "build-runtime")) == []


def test_an_interrupted_run_is_killed_through_the_runtime(pallet, tmp_path):
    """SIGINT during a RUN step: the container is killed with ``RUNTIME kill ID KILL`` and the
    runtime, not killed itself, reaps it and deletes its state (no ``delete`` needed). Killing
    the runtime (what ``subprocess.run`` does on an interrupt) orphans the container's init to
    the host's pid 1, and until that reaps it the container's copy of the working container's
    mount can keep the unmount busy (EBUSY): the working container would stay."""
    import signal
    import subprocess

    from conftest import wait_for

    log, runtime, ctx, runroot = _build_with_wrapper(tmp_path, False, "RUN echo sta\"\"rted > /dev/stderr; sleep 300\n")
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen(pallet.args("--runroot", runroot, "build", "--runtime", runtime, "--layers=false",
                                            ctx), stdout=f, stderr=subprocess.STDOUT, env=pallet.env())
    try:
        wait_for(lambda: "started" in out.read_text(), 120, "the RUN step to start")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().split() == ["run", "kill"], out.read_text()
    assert "stays" not in out.read_text()
    assert pallet.containers() == []
    assert os.listdir(os.path.join(runroot, "build-runtime")) == []


@pytest.mark.unit
def test_stop_runtime_run_kills_a_runtime_that_does_not_exit(tmp_path, monkeypatch):
    """A runtime whose ``kill`` does nothing (the container not started yet, a broken runtime) is
    killed itself after two tries; one that already exited is not asked at all."""
    import subprocess

    from pallet.builder import run as run_mod

    monkeypatch.setattr(run_mod, "STOP_WAIT", 0.2)
    log = tmp_path / "calls"
    rt = tmp_path / "rt"
    rt.write_text(f"#!/bin/sh\necho $1 >> {log}\n[ $1 = run ] && exec /bin/sleep 300\nexit 1\n")
    rt.chmod(0o755)
    p = subprocess.Popen([str(rt), "run"])
    from conftest import wait_for

    wait_for(lambda: log.exists(), 30, "the runtime to start")
    run_mod.stop_runtime_run([str(rt)], "c1", p)
    assert p.returncode == -9
    assert log.read_text().split() == ["run", "kill", "kill"]
    run_mod.stop_runtime_run([str(rt)], "c1", p)
    assert log.read_text().split() == ["run", "kill", "kill"]


@pytest.mark.unit
def test_left_behind_looks_for_the_state_directory(tmp_path):
    from pallet.builder.run import left_behind

    assert left_behind(None, "c1")  # the runtime's own root: its layout unknown, always delete
    assert not left_behind(str(tmp_path), "c1")
    (tmp_path / "c1").mkdir()
    assert left_behind(str(tmp_path), "c1")
    (tmp_path / "c2").symlink_to("nowhere")  # anything at all there: the runtime decides
    assert left_behind(str(tmp_path), "c2")


@pytest.mark.unit
def test_runtime_probe_is_kept_until_the_installation_changes(tmp_path, monkeypatch):
    from pallet.builder import run as run_mod
    from pallet.containers import conf as conf_mod

    host = tmp_path / "host"
    monkeypatch.setattr(conf_mod, "HOST_CACHE_DIR", str(host))
    log = tmp_path / "calls"
    exe = tmp_path / "pallet-runtime"
    exe.write_text(f"#!/bin/sh\necho $1 >> {log}\necho '{{\"ociVersionMin\": \"1.0.0\"}}'\n")
    exe.chmod(0o755)

    def calls():
        return log.read_text().split() if log.exists() else []

    assert run_mod._answers(str(exe))
    assert run_mod._answers(str(exe))
    if os.geteuid() != 0:  # no host cache for others: asked each time
        assert calls() == ["features", "features"]
        return
    assert calls() == ["features"] and os.stat(host).st_mode & 0o777 == 0o700
    st = exe.stat()
    os.utime(exe, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a reinstalled script: asked again
    assert run_mod._answers(str(exe))
    assert calls() == ["features", "features"]
    exe.write_text("#!/bin/sh\nexit 1\n")  # broken: no, and nothing kept
    assert not run_mod._answers(str(exe))
    assert not run_mod._answers(str(exe))
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho not json\n")
    other.chmod(0o755)
    assert not run_mod._answers(str(other))
    os.chmod(host, 0o777)  # a directory others may write: not trusted, the probe runs again
    exe.write_text(f"#!/bin/sh\necho $1 >> {log}\necho '{{}}'\n")
    assert run_mod._answers(str(exe)) and run_mod._answers(str(exe))
    assert calls() == ["features"] * 4
