"""Running the config's hooks: each gets the container state as JSON on its stdin."""

import os

from ..errors import OCIRuntimeError


def run_hooks(config, kind, state_bytes):
    """Run every hook of ``kind`` in order; OCIRuntimeError on the first failure."""
    for i, hook in enumerate((config.get("hooks") or {}).get(kind) or ()):
        run_hook(hook, state_bytes, f"{kind}[{i}]")


def run_hook(hook, state_bytes, name):
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = {}
    for e in hook.get("env") or ():
        k, _, v = e.partition("=")
        env[k] = v
    timeout = hook.get("timeout")
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(path, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)])
    except OSError as e:
        os.close(r)
        os.close(w)
        raise OCIRuntimeError(f"hook {name} ({path}): {e.strerror}") from None
    os.close(r)
    try:
        os.write(w, state_bytes)
    except BrokenPipeError:  # the hook need not read its stdin
        pass
    finally:
        os.close(w)
    status = _wait(pid, timeout)
    if status is None:
        raise OCIRuntimeError(f"hook {name} ({path}) did not finish within {timeout}s: killed")
    if os.WIFSIGNALED(status):
        raise OCIRuntimeError(f"hook {name} ({path}) was killed by signal {os.WTERMSIG(status)}")
    code = os.WEXITSTATUS(status)
    if code:
        raise OCIRuntimeError(f"hook {name} ({path}) failed with exit status {code}")


def _wait(pid, timeout):
    if not timeout:
        return os.waitpid(pid, 0)[1]
    import select

    pfd = os.pidfd_open(pid)
    try:
        p = select.poll()
        p.register(pfd, select.POLLIN)
        if not p.poll(timeout * 1000):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
    finally:
        os.close(pfd)
    return os.waitpid(pid, 0)[1]
