"""``pallet._std.proc`` against ``subprocess``, the module it stands in for (``subprocess``
imports ``locale``, ``re``, ``threading``, ``selectors``): the same exit codes, output, input,
fds in the child, session, signals and errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pallet._std import proc

pytestmark = pytest.mark.unit

PY = sys.executable


@pytest.fixture(autouse=True, params=["posix_spawn", "ctypes"])
def spawn_path(request, monkeypatch):
    """Every test twice: CPython's ``os.posix_spawn`` (a single-threaded process: the CLI) and
    the ctypes call a threaded process uses (the CRI server: it lets other threads run)."""
    monkeypatch.setattr(proc, "_threaded", lambda: request.param == "ctypes")
    return request.param


@pytest.mark.parametrize("code", [
    "import sys; sys.stdout.write('out'); sys.stderr.write('err'); sys.exit(3)",
    "import os; os.kill(os.getpid(), 9)",
    "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])",
    "import sys; sys.stdout.write('x' * 300000); sys.stderr.write('y' * 300000)",  # more than a pipe holds
    "import signal; print(signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL)",
])
def test_run_gives_what_subprocess_gives(code):
    data = os.urandom(200000)
    mine = proc.run([PY, "-c", code], input=data, capture_output=True, timeout=60)
    theirs = subprocess.run([PY, "-c", code], input=data, capture_output=True, timeout=60)
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_devnull_fds_and_session_as_subprocess(tmp_path):
    """Only 0-2 and pass_fds reach the child (an inheritable fd this process holds does not);
    start_new_session makes it a session leader; DEVNULL and a file object as stdout."""
    code = ("import os, sys; print(sorted(int(f) for f in os.listdir('/proc/self/fd')), os.getsid(0) == os.getpid(),"
            " sys.stdin.read() == '')")
    leak = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leak, True)
    passed = os.open(os.devnull, os.O_RDONLY)
    outs = []
    try:
        for mod in (proc, subprocess):
            path = tmp_path / mod.__name__
            with open(path, "wb") as f:
                kw = {} if mod is proc else {"close_fds": True}
                p = mod.Popen([PY, "-c", code], stdin=mod.DEVNULL, stdout=f,
                              stderr=mod.DEVNULL, pass_fds=(passed,), start_new_session=True, **kw)
                assert p.wait(timeout=60) == 0
            outs.append(path.read_text())
    finally:
        os.close(leak)
        os.close(passed)
    assert outs[0] == outs[1], outs
    fds = [int(x) for x in outs[0].split("]")[0].strip("[").split(",")]
    assert passed in fds and leak not in fds and outs[0].split("]")[1].split() == ["True", "True"]


def test_errors_and_timeouts_as_subprocess(tmp_path):
    for mod in (proc, subprocess):
        with pytest.raises(FileNotFoundError):
            mod.run([str(tmp_path / "missing")])
        with pytest.raises(FileNotFoundError):
            mod.run(["no-such-command-anywhere"])
    marker = tmp_path / "pid"
    with pytest.raises(proc.TimeoutExpired) as e:
        proc.run([PY, "-c", f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"],
                 capture_output=True, timeout=1)
    assert e.value.timeout == 1
    pid = int(marker.read_text())
    with pytest.raises(ChildProcessError):  # killed and reaped: not our child any more
        os.waitpid(pid, os.WNOHANG)
    p = proc.Popen([PY, "-c", "import time; time.sleep(60)"])
    assert p.poll() is None
    with pytest.raises(proc.TimeoutExpired):
        p.wait(timeout=0.1)
    p.kill()
    assert p.wait() == -9


def test_a_null_byte_is_refused_as_subprocess_refuses_it():
    for mod in (proc, subprocess):
        with pytest.raises(ValueError):
            mod.run([PY, "-c", "pass", "a\0b"])
        with pytest.raises(ValueError):
            mod.run([PY, "-c", "pass"], env={"A": "x\0y"})


def test_a_threaded_spawn_loads_no_ctypes():
    """The spawn a threaded process uses goes through ``_ctypes`` (via ``_std.syscalls``), not
    ``ctypes``, whose import costs milliseconds (a build's network thread runs netavark)."""
    import subprocess
    import sys

    code = ("import sys, threading\n"
            "from pallet._std import proc\n"
            "t = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True); t.start()\n"
            "assert proc._threaded()\n"
            "r = proc.run(['/bin/sh', '-c', 'echo $0 $X', 'hi'], env={'X': 'y'}, capture_output=True)\n"
            "assert r.returncode == 0 and r.stdout == b'hi y\\n', r\n"
            "r = proc.run(['/bin/pwd'], cwd='/', capture_output=True)\n"
            "assert r.stdout == b'/\\n', r\n"
            "assert 'ctypes' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_communicate_goes_on_after_a_timeout_as_subprocess():
    """A timed-out ``communicate`` leaves the child running with what it read so far; a later
    call goes on from there (the CRI's ExecSync kills the exec'd command, then collects the
    runtime's output); ``take_pipe`` hands a pipe's end to the caller; ``send_signal``."""
    code = "import sys, time; sys.stdout.write('a'); sys.stdout.flush(); time.sleep(60)"
    for mod in (proc, subprocess):
        p = mod.Popen([PY, "-c", code], stdout=mod.PIPE, stderr=mod.PIPE)
        with pytest.raises(mod.TimeoutExpired) as e:
            p.communicate(timeout=0.2)
        assert e.value.output in (None, b"a")  # (None: the child had not written yet)
        p.send_signal(15)
        out, err = p.communicate(timeout=60)
        assert (out, err, p.returncode) == (b"a", b"", -15)
        if mod is subprocess:
            p.stdout.close()
            p.stderr.close()
    p = proc.Popen([PY, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"], stdin=proc.PIPE,
                   stdout=proc.PIPE)
    w, r = p.take_pipe(0), p.take_pipe(1)
    assert p.take_pipe(2) is None
    with open(w, "wb") as fw, open(r, "rb") as fr:
        fw.write(b"abc")
        fw.close()
        assert fr.read() == b"ABC"
    assert p.communicate(timeout=60) == (None, None) and p.returncode == 0
    p.close()


def test_cwd_as_subprocess(tmp_path):
    """``cwd``: the child's working directory (conmon writes its ``oom`` file there), ours unchanged."""
    here = os.getcwd()
    outs = [mod.run(["/bin/pwd"], capture_output=True, cwd=str(tmp_path)).stdout for mod in (proc, subprocess)]
    assert outs[0] == outs[1] == str(tmp_path).encode() + b"\n" and os.getcwd() == here
    with pytest.raises(FileNotFoundError):
        proc.run(["/bin/pwd"], cwd=str(tmp_path / "missing"))
    assert os.getcwd() == here
