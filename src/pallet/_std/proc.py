"""``subprocess`` for what the container path uses (conmon, the OCI runtime, netavark), over
``os.posix_spawn``.

``subprocess`` imports ``locale`` (and through it ``re``), ``signal``, ``threading``,
``selectors`` and ``contextlib``: ~4 ms of every ``run``, before the container starts. Here:
``Popen(args, stdin=, stdout=, stderr=, env=, pass_fds=, start_new_session=, cwd=)`` with ``wait``
(and its ``timeout``), ``poll``, ``kill``, ``send_signal``, ``communicate`` and ``take_pipe``
(a pipe's end handed to the caller); ``run(args, input=, capture_output=, stdin=,
stdout=, stderr=, env=, timeout=, cwd=)``; ``DEVNULL``, ``PIPE``, ``TimeoutExpired``. As
``subprocess`` does: every fd but 0-2 and ``pass_fds`` is closed in the child (fds are
close-on-exec by default; inheritable ones this process got are closed explicitly), a command
that cannot be started raises ``OSError`` (``FileNotFoundError``, ``PermissionError``) in the
caller, ``returncode`` is ``-N`` for a child killed by signal N, and ``run`` with a ``timeout``
kills the child and raises ``TimeoutExpired`` when it is over. Not here: shells, text mode,
``preexec_fn``; the ``stdin``/``stdout``/``stderr`` of a ``Popen`` are not streams (its
``communicate`` writes and reads its pipes, as ``run`` does).
"""

import os

PIPE = -1
DEVNULL = -3
_SIGPIPE, _SIGXFSZ = 13, 25  # x86_64's and aarch64's (signal's numbers without importing it)


class TimeoutExpired(Exception):
    """``subprocess.TimeoutExpired``: ``cmd``, ``timeout``, ``output``, ``stderr``."""

    def __init__(self, cmd, timeout, output=None, stderr=None):
        super().__init__(cmd, timeout)
        self.cmd, self.timeout, self.output, self.stderr = cmd, timeout, output, stderr

    def __str__(self):
        return f"Command '{self.cmd}' timed out after {self.timeout} seconds"


class CompletedProcess:
    def __init__(self, args, returncode, stdout=None, stderr=None):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr


def _fd_of(f) -> int:
    return f if isinstance(f, int) else f.fileno()


class Popen:
    def __init__(self, args, *, stdin=None, stdout=None, stderr=None, env=None, pass_fds=(),
                 start_new_session=False, cwd=None):
        self.args = list(args)
        self.returncode = None
        self._pipes = {}  # child fd -> our end
        self._got = None  # communicate()'s output so far, by child fd
        self._todo = None  # communicate()'s input not written yet
        actions = []
        theirs = []
        try:
            for target, spec in ((0, stdin), (1, stdout), (2, stderr)):
                if spec is None:
                    continue
                if spec == DEVNULL:
                    actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0))
                elif spec == PIPE:
                    r, w = os.pipe()
                    mine, child = (w, r) if target == 0 else (r, w)
                    self._pipes[target] = mine
                    theirs.append(child)
                    actions.append((os.POSIX_SPAWN_DUP2, child, target))
                else:
                    actions.append((os.POSIX_SPAWN_DUP2, _fd_of(spec), target))
            keep = set(pass_fds)
            for fd in keep:  # dup2 onto itself clears close-on-exec (glibc >= 2.29)
                actions.append((os.POSIX_SPAWN_DUP2, fd, fd))
            for fd in _inheritable_fds():
                if fd > 2 and fd not in keep:
                    actions.append((os.POSIX_SPAWN_CLOSE, fd))
            # SIGPIPE and SIGXFSZ back to their default actions (Python ignores them), as
            # subprocess's restore_signals does
            if _threaded():
                self.pid = _spawn_without_gil(self.args, env, actions, start_new_session, cwd)
            else:
                spawn = os.posix_spawn if "/" in self.args[0] else os.posix_spawnp
                # os.posix_spawn has no chdir action: with no other thread here, this process
                # changes its own directory around the spawn
                here = None
                if cwd is not None:
                    here = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if cwd is not None:
                        os.chdir(cwd)
                    self.pid = spawn(self.args[0], self.args, os.environ if env is None else env,
                                     file_actions=actions, setsid=start_new_session, setsigdef=(_SIGPIPE, _SIGXFSZ))
                finally:
                    if here is not None:
                        os.fchdir(here)
                        os.close(here)
        except BaseException:
            for fd in list(self._pipes.values()) + theirs:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _reaped(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout=None) -> int:
        if self.returncode is not None:
            return self.returncode
        if timeout is not None and not _exited_within(self.pid, timeout):
            raise TimeoutExpired(self.args, timeout)
        _, status = os.waitpid(self.pid, 0)
        return self._reaped(status)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def take_pipe(self, child: int):
        """Our end of the child's fd ``child`` (0, 1 or 2) made by ``PIPE``, now the caller's to
        read or write and close (``communicate`` and ``close`` leave it alone); None if not a pipe."""
        return self._pipes.pop(child, None)

    def communicate(self, input=None, timeout=None):
        """``subprocess``'s: ``input`` written to a ``stdin=PIPE`` (which is closed after it), the
        ``PIPE`` outputs read to their end, the child waited for; ``(stdout, stderr)`` (None where
        not a pipe). Over the ``timeout``, ``TimeoutExpired`` with what was read so far, the child
        left running: a later call goes on where this one stopped (``input`` is taken once)."""
        import select
        import time

        if self._got is None:
            self._got = {fd: [] for fd in (1, 2) if fd in self._pipes}
            self._todo = memoryview(input or b"")
        got = self._got
        deadline = None if timeout is None else time.monotonic() + timeout

        def expired():
            return TimeoutExpired(self.args, timeout, b"".join(got.get(1, [])) or None,
                                  b"".join(got.get(2, [])) or None)

        poller = select.poll()
        ours = {}
        for child, fd in self._pipes.items():
            ours[fd] = child
            poller.register(fd, select.POLLOUT if child == 0 else select.POLLIN)
        if 0 in self._pipes and not self._todo:
            self._close_pipe(0, poller, ours)
        while ours:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise expired()
            for fd, _ in poller.poll(None if left is None else max(1, int(left * 1000))):
                child = ours[fd]
                if child == 0:
                    try:
                        n = os.write(fd, self._todo[:65536])
                    except BrokenPipeError:
                        n = len(self._todo)
                    self._todo = self._todo[n:]
                    if self._todo:
                        continue
                else:
                    data = os.read(fd, 65536)
                    if data:
                        got[child].append(data)
                        continue
                self._close_pipe(child, poller, ours)
        try:
            self.wait(None if deadline is None else max(0, deadline - time.monotonic()))
        except TimeoutExpired:
            raise expired() from None
        return (b"".join(got[1]) if 1 in got else None, b"".join(got[2]) if 2 in got else None)

    def _close_pipe(self, child: int, poller, ours: dict) -> None:
        fd = self._pipes.pop(child)
        poller.unregister(fd)
        del ours[fd]
        os.close(fd)

    def close(self) -> None:
        """Our ends of the pipes closed; a child still running is killed and reaped."""
        for fd in self._pipes.values():
            os.close(fd)
        self._pipes.clear()
        if self.returncode is None:
            self.kill()
            self.wait()


def _threaded() -> bool:
    """Whether other threads run here (``threading`` is never imported for this question)."""
    import sys

    threading = sys.modules.get("threading")
    return threading is not None and threading.active_count() > 1


#: glibc's <spawn.h> flags
_POSIX_SPAWN_SETSIGDEF, _POSIX_SPAWN_SETSID = 0x04, 0x80
_libc = None


def _spawn_without_gil(args: list, env, actions: list, setsid: bool, cwd=None) -> int:
    """``os.posix_spawn(p)`` through foreign functions that let other threads run meanwhile.
    CPython's own holds the GIL through the whole call, and glibc's posix_spawn returns only once
    the child has exec'd (a vfork): in a threaded server (the CRI's) every other thread then waits
    for each exec of conmon or a runtime, milliseconds each on a loaded machine. The functions
    and buffers are ``_ctypes``' through :mod:`.syscalls` (as ctypes makes them; ``import ctypes``
    costs ~2.5 ms, which a build paid for each netavark run from its network thread)."""
    from . import syscalls as sc

    global _libc
    if _libc is None:
        vp, ci = sc.c_void_p, sc.c_int
        spawn = (vp, sc.c_char_p, vp, vp, vp, vp)
        _libc = {
            "posix_spawn": sc._func("posix_spawn", spawn), "posix_spawnp": sc._func("posix_spawnp", spawn),
            "addopen": sc._func("posix_spawn_file_actions_addopen", (vp, ci, sc.c_char_p, ci, sc.c_uint)),
            "adddup2": sc._func("posix_spawn_file_actions_adddup2", (vp, ci, ci)),
            "addclose": sc._func("posix_spawn_file_actions_addclose", (vp, ci)),
            "addchdir": sc._func("posix_spawn_file_actions_addchdir_np", (vp, sc.c_char_p)),  # glibc 2.29
            "setflags": sc._func("posix_spawnattr_setflags", (vp, sc.c_short)),
            "setsigdefault": sc._func("posix_spawnattr_setsigdefault", (vp, vp)),
            "sigemptyset": sc._func("sigemptyset", (vp,)), "sigaddset": sc._func("sigaddset", (vp, ci)),
            "fa_init": sc._func("posix_spawn_file_actions_init", (vp,)),
            "fa_destroy": sc._func("posix_spawn_file_actions_destroy", (vp,)),
            "attr_init": sc._func("posix_spawnattr_init", (vp,)),
            "attr_destroy": sc._func("posix_spawnattr_destroy", (vp,)),
        }
    lib = _libc
    fa = sc.array(sc.c_char, 256)()  # posix_spawn_file_actions_t: 80 bytes in glibc
    attr = sc.array(sc.c_char, 512)()  # posix_spawnattr_t: 336 bytes
    sigs = sc.array(sc.c_char, 128)()  # sigset_t
    for fn, buf in ((lib["fa_init"], fa), (lib["attr_init"], attr)):
        if fn(buf):
            raise OSError(sc.get_errno(), "posix_spawn: cannot set up")
    try:
        for a in actions:
            if a[0] == os.POSIX_SPAWN_OPEN:
                err = lib["addopen"](fa, a[1], os.fsencode(a[2]), a[3], a[4])
            elif a[0] == os.POSIX_SPAWN_DUP2:
                err = lib["adddup2"](fa, a[1], a[2])
            else:
                err = lib["addclose"](fa, a[1])
            if err:
                raise OSError(err, os.strerror(err))
        if cwd is not None:
            err = lib["addchdir"](fa, os.fsencode(cwd))
            if err:
                raise OSError(err, os.strerror(err))
        lib["sigemptyset"](sigs)
        lib["sigaddset"](sigs, _SIGPIPE)
        lib["sigaddset"](sigs, _SIGXFSZ)
        lib["setsigdefault"](attr, sigs)
        lib["setflags"](attr, _POSIX_SPAWN_SETSIGDEF | (_POSIX_SPAWN_SETSID if setsid else 0))
        argv = [os.fsencode(a) for a in args]
        envb = os.environb if env is None else {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        envp = [k + b"=" + v for k, v in envb.items()]
        if any(b"\0" in x for x in argv + envp):  # C strings would cut them short: refuse, as os.posix_spawn does
            raise ValueError("embedded null byte")
        c_argv = sc.array(sc.c_char_p, len(argv) + 1)(*argv, None)
        c_envp = sc.array(sc.c_char_p, len(envp) + 1)(*envp, None)
        pid = sc.c_int()
        fn = lib["posix_spawn"] if b"/" in argv[0] else lib["posix_spawnp"]
        err = fn(sc.byref(pid), argv[0], fa, attr, c_argv, c_envp)
        if err:
            raise OSError(err, os.strerror(err), args[0])
        return pid.value
    finally:
        lib["fa_destroy"](fa)
        lib["attr_destroy"](attr)


def _inheritable_fds() -> list:
    """This process's fds a child would inherit (those it got at its own exec, mostly)."""
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                out.append(fd)
        except OSError:  # the listing's own fd, closed meanwhile
            pass
    return out


def _exited_within(pid: int, timeout: float) -> bool:
    import select

    fd = os.pidfd_open(pid)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def run(args, *, input=None, capture_output=False, stdin=None, stdout=None, stderr=None, env=None,
        timeout=None, cwd=None) -> CompletedProcess:
    """``subprocess.run`` (bytes, no ``check``): the child's output read as it comes, ``input``
    written as it is taken; over the ``timeout`` the child is killed and ``TimeoutExpired``
    raised with what it wrote."""
    if capture_output:
        stdout = stderr = PIPE
    if input is not None:
        stdin = PIPE
    p = Popen(args, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd)
    try:
        out, err = p.communicate(input, timeout)
    except TimeoutExpired as e:
        p.close()
        raise TimeoutExpired(p.args, timeout, e.output, e.stderr) from None
    finally:
        p.close()
    return CompletedProcess(p.args, p.returncode, out, err)
