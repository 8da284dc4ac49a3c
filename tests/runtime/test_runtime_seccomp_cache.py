"""The compiled seccomp filter's cache (``runtime.seccomp.prepare``): libseccomp's program for a
profile, exported once, installed from the cache with the same effect; a cache that is not
the user's alone is not used."""

import os

import pytest

from pallet.runtime import seccomp

pytestmark = pytest.mark.root

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}


def _in_child(filt, profile):
    """Load ``filt`` in a forked child and try mkdir there: the errno it got (0: it worked)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            seccomp.load(filt, profile, True)
            try:
                os.mkdir("/nonexistent-dir-for-seccomp-test/x")
                code = 0
            except OSError as e:
                code = e.errno
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "CACHE_DIR", str(d))
    return d


def test_the_program_is_cached_once_and_installs_as_libseccomps_filter(cache):
    first = seccomp.prepare(PROFILE)
    assert not isinstance(first, bytes)  # built by libseccomp, and its program exported
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".bpf") and oct(os.stat(cache).st_mode & 0o777) == "0o700"
    second = seccomp.prepare(PROFILE)
    assert isinstance(second, bytes) and second == (cache / files[0]).read_bytes()
    assert _in_child(first, PROFILE) == _in_child(second, PROFILE) == 42
    other = dict(PROFILE, syscalls=[dict(PROFILE["syscalls"][0], errnoRet=43)])
    assert not isinstance(seccomp.prepare(other), bytes) and len(os.listdir(cache)) == 2
    assert _in_child(seccomp.prepare(other), other) == 43


def test_a_cache_others_may_write_or_a_misshapen_program_is_not_used(cache):
    seccomp.prepare(PROFILE)
    (name,) = os.listdir(cache)
    os.chmod(cache, 0o777)
    assert not isinstance(seccomp.prepare(PROFILE), bytes)
    os.chmod(cache, 0o700)
    (cache / name).write_bytes(b"\0" * 7)
    assert not isinstance(seccomp.prepare(PROFILE), bytes)
    os.unlink(cache / name)
    os.symlink("/etc/hostname", cache / name)
    assert not isinstance(seccomp.prepare(PROFILE), bytes)
