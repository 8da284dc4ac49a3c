"""``exec``: one more process in a running container, through its OCI runtime's ``exec``.

The process is the container's own (``config.json``'s, written at start: rlimits, seccomp,
capabilities, environment) with the command, ``-e``, ``-u`` (a name resolved in the container's
rootfs by fd), ``-w``, ``-t`` and ``--privileged`` applied, written to ``process.json`` and run
as ``RUNTIME --root OCIROOT --log LOG --log-format=json exec --process FILE --pid-file PIDFILE ID``.

- Without ``-t`` the command's stdin (``-i``) and stdout are pallet's; its stderr (which is also
  where the runtime writes its own errors) goes through a pipe held back until the runtime wrote
  the pid file, so a runtime that fails before the command ran prints nothing there: its error
  (from ``--log``) becomes one line, classified as podman does (127 not found, 126 cannot invoke).
- ``-t``: pallet-runtime is given ``--console-socket``; pallet receives the pseudo-terminal's
  master and relays it (our tty in raw mode while it runs), as podman relays conmon's console.
  runc and crun take a console socket only when they detach: they get ``--tty`` and relay the
  terminal to pallet's own stdio themselves.
- ``-d``: ``exec -d``, every stream ``/dev/null``; returns once the command started.

The exit code is the command's own (the runtime's, which waits for it).
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import ContainerError

#: podman 4.3's exit code for an exec that failed before the runtime ran (a stopped container,
#: an unknown user): 255, not run's 125
EXEC_SETUP_FAILED = 255


class ExecSetupError(ContainerError):
    """The exec session could not be set up (podman exits 255)."""

    exit_code = EXEC_SETUP_FAILED


class ExecOptions:
    def __init__(self, command, *, interactive=False, tty=False, env=(), user=None, workdir=None, detach=False,
                 privileged=False):
        self.command = list(command)
        self.interactive, self.tty, self.detach, self.privileged = interactive, tty, detach, privileged
        self.env, self.user, self.workdir = list(env), user, workdir


def _merge_env(base: list, extra: list) -> list:
    out = {}
    for e in list(base) + list(extra):
        k, _, _ = e.partition("=")
        out.pop(k, None)
        out[k] = e
    return list(out.values())


def process(ctrs, cid: str, meta: dict, o: ExecOptions) -> dict:
    """The runtime-spec process for ``o`` in the running container ``cid``."""
    import copy

    from ..oci import runtime_spec as rs

    try:
        with open(os.path.join(ctrs.data, cid, "userdata", "config.json"), "rb") as f:
            doc = json.loads(f.read())
        base = doc["process"]
        rootfs = doc["root"]["path"]
        if not isinstance(base, dict) or not isinstance(rootfs, str):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise ExecSetupError(f"container {cid[:12]}: its runtime config is missing or damaged") from None
    for e in o.env:
        if "=" not in e or e.startswith("=") or "\0" in e:
            raise ExecSetupError(f"invalid --env {e!r}: want KEY=VALUE")
    if not o.command:
        raise ExecSetupError("exec requires at least one command argument")
    p = copy.deepcopy(base)
    p.pop("consoleSize", None)
    p["args"] = list(o.command)
    p["terminal"] = bool(o.tty)
    p["env"] = _merge_env(p.get("env") or [], o.env)
    if o.workdir:
        if not o.workdir.startswith("/") or "\0" in o.workdir:
            raise ExecSetupError(f"invalid --workdir {o.workdir!r}: the path must be absolute")
        p["cwd"] = o.workdir
    uid = (p.get("user") or {}).get("uid", 0)
    if o.user:
        try:
            uid, gid, extra = ctrs.resolve_user(rootfs, o.user)
        except ContainerError as e:
            raise ExecSetupError(str(e)) from None
        p["user"] = {"uid": uid, "gid": gid}
        if extra:
            p["user"]["additionalGids"] = extra
        p["capabilities"] = rs.capabilities(rs.DEFAULT_CAPS, meta.get("cap_add") or [], meta.get("cap_drop") or [],
                                            privileged=meta.get("privileged", False), uid=uid)
    if o.privileged or meta.get("privileged"):
        from .container import bounding_set

        have = sorted(bounding_set())
        p["capabilities"] = {k: list(have) for k in ("bounding", "effective", "permitted")}
        if uid != 0:
            p["capabilities"].update(inheritable=list(have), ambient=list(have))
    return p


class _Session:
    """A prepared exec: its process.json, runtime log and pid file in a private directory (short:
    a console socket's path must fit sun_path)."""

    def __init__(self, ctrs, text: str, o: ExecOptions):
        import secrets
        import tempfile

        from .container import META, RUNNING

        c = ctrs.get(text)
        self.ctrs, self.cid, meta = ctrs, c["id"], c["metadata"][META]
        st = ctrs.state(self.cid)
        if st.get("state") != RUNNING or st.get("paused"):
            raise ExecSetupError("can only create exec sessions on running containers: container state improper")
        proc = process(ctrs, self.cid, meta, o)
        self.id = secrets.token_hex(32)
        self.runtime = meta["runtime"]
        self.work = tempfile.mkdtemp(prefix="pallet-exec-")
        spec_path = os.path.join(self.work, "process.json")
        with open(spec_path, "w") as f:
            json.dump(proc, f)
        self.log, self.pid_file = os.path.join(self.work, "log"), os.path.join(self.work, "pid")
        self.argv = [self.runtime, "--root", ctrs.oci_root, "--log", self.log, "--log-format=json", "exec",
                     "--process", spec_path, "--pid-file", self.pid_file]

    def check(self, rc: int) -> None:
        """A runtime that failed before the command ran: its error, classified as podman does."""
        from . import conmon
        from .container import RUNNING

        if rc != 0 and not os.path.exists(self.pid_file):
            msg = conmon.oci_log_message(self.log)
            if msg:
                if self.ctrs.state(self.cid).get("state") != RUNNING:
                    raise ExecSetupError("can only create exec sessions on running containers: "
                                         "container state improper")
                raise conmon.runtime_error(self.runtime, msg)

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.work, ignore_errors=True)


def capture(ctrs, text: str, o: ExecOptions, timeout: float | None,
            raw: bool = False) -> tuple[int, str | bytes, bool]:
    """Run ``o`` with its output captured (both streams): (exit code, output, timed out). A
    command past ``timeout`` gets SIGTERM through the runtime, then SIGKILL. ``raw``: the
    output as bytes (the Python API's ``exec_run``), not text."""
    import subprocess

    s = _Session(ctrs, text, o)
    try:
        p = subprocess.Popen(s.argv + [s.cid], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        timed_out = False
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            p.terminate()  # the runtime forwards it to the command
            try:
                out, _ = p.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
        if not timed_out:
            s.check(p.returncode)
        return p.returncode, out if raw else out.decode("utf-8", "replace"), timed_out
    finally:
        s.close()


def run(ctrs, text: str, o: ExecOptions) -> tuple[int, str]:
    """Run ``o`` in the container named ``text``: (the command's exit code, the session ID)."""
    import subprocess

    s = _Session(ctrs, text, o)
    try:
        argv, work, pid_file = list(s.argv), s.work, s.pid_file
        if o.detach:
            argv.append("--detach")
        listener = None
        if o.tty:
            import socket

            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(os.path.join(work, "console"))
            listener.listen(1)
            argv += ["--console-socket", os.path.join(work, "console")]
            if not _console_socket(s.runtime):
                # runc and crun take a console socket only when they detach: the command becomes
                # our child (we are its subreaper), so its exit code is still ours to wait for
                argv.append("--detach")
        argv.append(s.cid)
        try:
            if o.detach:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                rc = p.returncode
            elif o.tty:
                rc = _run_tty(argv, listener, o.interactive, None if _console_socket(s.runtime) else pid_file)
            else:
                rc = _run_plain(argv, pid_file, o.interactive)
        finally:
            if listener is not None:
                listener.close()
        s.check(rc)
        return rc, s.id
    finally:
        s.close()


def _console_socket(runtime: str) -> bool:
    """Whether a non-detached ``exec -t`` gives the terminal through ``--console-socket``
    (pallet-runtime, which does not relay one) or relays it itself (runc, crun)."""
    return os.path.basename(runtime).startswith("pallet-runtime")


def _run_plain(argv: list, pid_file: str, interactive: bool) -> int:
    """stdin/stdout ours; stderr relayed, held back until the command started."""
    import select
    import subprocess

    r, w = os.pipe()
    try:
        p = subprocess.Popen(argv, stdin=None if interactive else subprocess.DEVNULL, stdout=None, stderr=w)
    finally:
        os.close(w)
    held, started = [], False
    while True:
        ready, _, _ = select.select([r], [], [], None if started else 0.02)
        if not started and os.path.exists(pid_file):
            started = True
            for chunk in held:
                _write_all(2, chunk)
            held = []
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        if started:
            _write_all(2, chunk)
        else:
            held.append(chunk)
    os.close(r)
    rc = p.wait()
    if held and os.path.exists(pid_file):
        for chunk in held:
            _write_all(2, chunk)
    return rc


def _run_tty(argv: list, listener, interactive: bool, detached_pid_file: str | None = None) -> int:
    """The runtime sends the console's master over the socket: relay it until the command ends.
    With ``detached_pid_file`` the runtime detaches and the command, reparented to pallet (a child
    subreaper), is waited for by its pid."""
    import select
    import socket
    import subprocess

    if detached_pid_file:
        from .._std import syscalls

        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    master = None
    try:
        while master is None:
            ready, _, _ = select.select([listener], [], [], 0.1)
            if ready:
                conn, _ = listener.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                if fds:
                    master = fds[0]
            elif p.poll() is not None:
                return p.returncode
        if detached_pid_file:
            rc = p.wait()
            if rc != 0:
                return rc
            try:
                with open(detached_pid_file) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                raise ContainerError("exec: the runtime wrote no pid file") from None
            _relay_console(master, interactive, None)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        return _relay_console(master, interactive, p)
    finally:
        if master is not None:
            os.close(master)
        if p.poll() is None:
            p.wait()


def _relay_console(master: int, interactive: bool, proc) -> int:
    import select

    from .attach import raw_tty

    with raw_tty(0, interactive):
        if interactive and os.isatty(0):
            _copy_winsize(0, master)
        watch = [master] + ([0] if interactive else [])
        while True:
            ready, _, _ = select.select(watch, [], [])
            if master in ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every slave closed
                    chunk = b""
                if not chunk:
                    break
                _write_all(1, chunk)
            if 0 in ready:
                chunk = os.read(0, 65536)
                if not chunk:
                    watch.remove(0)
                    continue
                _write_all(master, chunk)
    return proc.wait() if proc is not None else 0


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        ws = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[n:]

