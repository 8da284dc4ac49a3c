"""``pallet._std.syscalls`` (the syscalls ``os`` lacks, over ``_ctypes``) against what the kernel
shows and what the ``os``/``resource`` modules do where Python has an equivalent: openat2's
RESOLVE_IN_ROOT against a walk by file descriptor, mount/umount/mount_setattr/pivot_root
against /proc/self/mountinfo and statvfs, unshare/setns against /proc/self/ns, the UTS names
against os.uname, prctl/capset against /proc/self/status, setrlimit against resource,
fork_into_cgroup (clone3) against os.fork and /proc/self/cgroup.

Everything that changes the process runs in a child interpreter (its own namespaces), so the
test process and the machine are left as they were. Needs root."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from pallet._std import syscalls

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_required")]

CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
MOUNT_ATTR_RDONLY = 0x1


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (``sc`` is pallet._std.syscalls, ``out`` a dict
    printed as JSON at the end); its result."""
    prog = ("import json, os, sys\nfrom pallet._std import syscalls as sc\nout = {}\n"
            + textwrap.dedent(code) + "\nprint(json.dumps(out))\n")
    p = subprocess.run([sys.executable, "-c", prog, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def mountinfo_line(text: str, mount_point: str):
    for line in text.splitlines():
        f = line.split()
        if f[4] == mount_point:
            sep = f.index("-")
            return {"opts": f[5].split(","), "fstype": f[sep + 1], "source": f[sep + 2], "super": f[sep + 3].split(",")}
    return None


# -- openat2(RESOLVE_IN_ROOT) against a walk by file descriptor ------------------------------------

def walk_in_root(rootfd: int, path: str, flags: int) -> int:
    """RESOLVE_IN_ROOT by hand: each component looked up from the directory already reached
    (never through a symlink: lstat), ``..`` at the root stays there, an absolute symlink
    starts again at the root, 40 links at most (the kernel's MAXSYMLINKS)."""
    queue = path.split("/")
    resolved: list[str] = []
    links = 0
    while queue:
        c = queue.pop(0)
        if c in ("", "."):
            continue
        if c == "..":
            if resolved:
                resolved.pop()
            continue
        cand = "/".join(resolved + [c])
        st = os.lstat(cand, dir_fd=rootfd)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
            target = os.readlink(cand, dir_fd=rootfd)
            if target.startswith("/"):
                resolved = []
            queue = target.split("/") + queue
            continue
        if queue and not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        resolved.append(c)
    return os.open("/".join(resolved) or ".", flags, dir_fd=rootfd)


def _outcome(fn):
    try:
        fd = fn()
    except OSError as e:
        return ("error", e.errno)
    try:
        st = os.fstat(fd)
        return ("ok", st.st_dev, st.st_ino)
    finally:
        os.close(fd)


@pytest.fixture
def tree(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root inside\n")
    (r / "dir" / "sub").mkdir(parents=True)
    (r / "dir" / "sub" / "file").write_text("f")
    os.symlink("/etc/passwd", r / "abs")            # absolute: inside the root
    os.symlink("../../../../etc", r / "up")          # climbs past the root: clamped at it
    os.symlink("../etc", r / "dir" / "link")
    os.symlink("/dir/sub/../../abs", r / "chain")    # a link to a link
    os.symlink("loop", r / "loop")
    os.symlink("/proc/self/root/etc/passwd", r / "magic")
    return r


@pytest.mark.parametrize("path", [
    "etc/passwd", "/etc/passwd", "abs", "up/passwd", "dir/link/passwd", "chain", "../../etc/passwd",
    "dir/sub/../../etc/passwd", "dir/sub/file", "missing", "etc/missing/x", "loop", "etc/passwd/x",
    "up/../../../abs", ".", "/", "dir/sub/../sub/./file"])
def test_openat2_in_root_is_a_walk_by_fd(tree, path):
    rootfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = _outcome(lambda: syscalls.openat2(rootfd, path, os.O_RDONLY | os.O_CLOEXEC, syscalls.RESOLVE_IN_ROOT))
        want = _outcome(lambda: walk_in_root(rootfd, path, os.O_RDONLY | os.O_CLOEXEC))
    finally:
        os.close(rootfd)
    assert got == want
    if got[0] == "ok" and "passwd" in path:  # never the host's /etc/passwd
        assert (got[1], got[2]) == (os.stat(tree / "etc" / "passwd").st_dev, os.stat(tree / "etc" / "passwd").st_ino)


def test_openat2_refuses_magic_links_and_plain_paths_are_os_opens(tree):
    rootfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as e:
            syscalls.openat2(rootfd, "magic", os.O_RDONLY, syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS)
        assert e.value.errno in (errno.ELOOP, errno.ENOENT, errno.EXDEV) and e.value.filename == "magic"
        # without symlinks on the way, openat2 opens what os.open opens, and fails as it fails
        for rel in ("etc/passwd", "dir/sub/file", "nope"):
            assert _outcome(lambda: syscalls.openat2(rootfd, rel, os.O_RDONLY, 0)) == \
                _outcome(lambda: os.open(rel, os.O_RDONLY, dir_fd=rootfd))
    finally:
        os.close(rootfd)


# -- mounts and namespaces -----------------------------------------------------------------------

def test_mount_umount_setattr_and_unshare_as_the_kernel_shows_them(tmp_path):
    d = tmp_path / "mnt"
    d.mkdir()
    out = child(f"""
        before = os.readlink("/proc/self/ns/mnt")
        sc.unshare({CLONE_NEWNS})
        out["ns_changed"] = os.readlink("/proc/self/ns/mnt") != before
        sc.mount(None, "/", None, {MS_REC | MS_PRIVATE})
        sc.mount("pallet-tmp", {str(d)!r}, "tmpfs", {MS_NOSUID | MS_NODEV}, "size=1m,mode=0700")
        out["mounted"] = open("/proc/self/mountinfo").read()
        out["dev_differs"] = os.stat({str(d)!r}).st_dev != os.stat({str(tmp_path)!r}).st_dev
        out["mode"] = os.stat({str(d)!r}).st_mode & 0o7777
        sc.mount_setattr({str(d)!r}, {MOUNT_ATTR_RDONLY}, 0)
        out["ro_flag"] = bool(os.statvfs({str(d)!r}).f_flag & os.ST_RDONLY)
        out["ro"] = open("/proc/self/mountinfo").read()
        try:
            open({str(d / "x")!r}, "w")
        except OSError as e:
            out["write_errno"] = e.errno
        sc.umount2({str(d)!r}, sc.MNT_DETACH)
        out["after"] = open("/proc/self/mountinfo").read()
        try:
            sc.mount("none", {str(d / "missing")!r}, "tmpfs")
        except OSError as e:
            out["missing"] = [e.errno, e.filename]
    """)
    assert out["ns_changed"] and out["dev_differs"] and out["mode"] == 0o700
    m = mountinfo_line(out["mounted"], str(d))
    assert m and m["fstype"] == "tmpfs" and m["source"] == "pallet-tmp"
    assert {"nosuid", "nodev", "rw"} <= set(m["opts"]) and "size=1024k" in m["super"] and "mode=700" in m["super"]
    assert out["ro_flag"] and "ro" in mountinfo_line(out["ro"], str(d))["opts"] and out["write_errno"] == errno.EROFS
    assert mountinfo_line(out["after"], str(d)) is None
    assert out["missing"] == [errno.ENOENT, str(d / "missing")]  # as os reports: errno and the path
    # the test process's own mount namespace never saw any of it
    assert mountinfo_line(open("/proc/self/mountinfo").read(), str(d)) is None


def test_pivot_root_changes_what_slash_is(tmp_path):
    d = tmp_path / "newroot"
    d.mkdir()
    out = child(f"""
        sc.unshare({CLONE_NEWNS})
        sc.mount(None, "/", None, {MS_REC | MS_PRIVATE})
        sc.mount("tmpfs", {str(d)!r}, "tmpfs")
        os.mkdir({str(d / "old")!r})
        open({str(d / "marker")!r}, "w").write("new root")
        sc.pivot_root({str(d)!r}, {str(d / "old")!r})
        os.chdir("/")
        out["listing"] = sorted(os.listdir("/"))
        out["marker"] = open("/marker").read()
        out["old_has_proc"] = os.path.isdir("/old/proc")
        sc.umount2("/old", sc.MNT_DETACH)
        out["old_after"] = os.listdir("/old")
    """)
    assert out == {"listing": ["marker", "old"], "marker": "new root", "old_has_proc": True, "old_after": []}


def test_uts_names_and_setns_as_os_uname_sees_them():
    out = child(f"""
        import socket
        mine = os.open("/proc/self/ns/uts", os.O_RDONLY)
        out["host_before"] = os.uname().nodename
        sc.unshare({CLONE_NEWUTS})
        sc.sethostname("pallet-std-test")
        sc.setdomainname("pallet.test")
        out["uname"] = os.uname().nodename
        out["gethostname"] = socket.gethostname()
        out["domain"] = open("/proc/sys/kernel/domainname").read().strip()
        sc.setns(mine, {CLONE_NEWUTS})
        out["back"] = os.uname().nodename
    """)
    assert out["uname"] == out["gethostname"] == "pallet-std-test" and out["domain"] == "pallet.test"
    assert out["back"] == out["host_before"] == os.uname().nodename


# -- process attributes --------------------------------------------------------------------------

def _status(text: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key + ":"))


def test_prctl_and_capset_as_proc_status_shows_them():
    caps = (1 << 0) | (1 << 5) | (1 << 21)  # CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN
    out = child(f"""
        out["dumpable0"] = sc.prctl(sc.PR_GET_DUMPABLE)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        out["dumpable1"] = sc.prctl(sc.PR_GET_DUMPABLE)
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        sc.capset({caps}, {caps | (1 << 1)}, {1 << 5})
        out["status"] = open("/proc/self/status").read()
        try:
            sc.prctl(-1)
        except OSError as e:
            out["bad"] = e.errno
    """)
    assert (out["dumpable0"], out["dumpable1"], out["bad"]) == (1, 0, errno.EINVAL)
    st = out["status"]
    assert _status(st, "NoNewPrivs") == "1"
    assert int(_status(st, "CapEff"), 16) == caps
    assert int(_status(st, "CapPrm"), 16) == caps | (1 << 1)
    assert int(_status(st, "CapInh"), 16) == 1 << 5


def test_setrlimit_is_resource_setrlimit():
    out = child("""
        import resource
        r = resource.RLIMIT_NOFILE
        sc.setrlimit(r, 100, 200)
        out["set"] = list(resource.getrlimit(r))
        sc.setrlimit(resource.RLIMIT_CORE, -1, -1)
        out["inf"] = list(resource.getrlimit(resource.RLIMIT_CORE)) == [resource.RLIM_INFINITY] * 2
        errs = []
        for fn in (lambda: sc.setrlimit(r, 300, 200), lambda: resource.setrlimit(r, (300, 200))):
            try:
                fn()
            except ValueError as e:
                errs.append(str(e))
        out["errs"] = errs
    """)
    assert out["set"] == [100, 200] and out["inf"]
    assert len(out["errs"]) == 2 and out["errs"][0] == out["errs"][1]


# -- clone3 into a cgroup ------------------------------------------------------------------------

CGROUP2 = "/sys/fs/cgroup/unified" if os.path.ismount("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"


def test_fork_into_cgroup_is_os_fork_born_in_the_cgroup():
    cg = os.path.join(CGROUP2, f"pallet-std-test-{os.getpid()}")
    os.mkdir(cg)
    try:
        out = child(f"""
            fd = os.open({cg!r}, os.O_RDONLY | os.O_DIRECTORY)
            r, w = os.pipe()
            pid = sc.fork_into_cgroup(fd)
            if pid == 0:
                os.write(w, open("/proc/self/cgroup").read().encode())
                os._exit(7)
            os.close(w)
            out["child_cgroup"] = os.read(r, 65536).decode()
            wpid, status = os.waitpid(pid, 0)
            out["waited"] = [wpid == pid, os.waitstatus_to_exitcode(status)]
            # os.fork's child, for comparison: the same wait and exit code, in our cgroup
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            wpid, status = os.waitpid(pid, 0)
            out["os_fork"] = [wpid == pid, os.waitstatus_to_exitcode(status)]
            # a descriptor that is not a cgroup: an OSError, and no child was made
            nf = os.open("/dev/null", os.O_RDONLY)
            try:
                sc.fork_into_cgroup(nf)
            except OSError as e:
                out["bad_fd"] = e.errno
            try:
                os.waitpid(-1, os.WNOHANG)
                out["no_child"] = False
            except ChildProcessError:
                out["no_child"] = True
        """)
    finally:
        os.rmdir(cg)
    assert out["waited"] == out["os_fork"] == [True, 7]
    unified = next(line for line in out["child_cgroup"].splitlines() if line.startswith("0::"))
    assert unified == "0::/" + os.path.relpath(cg, CGROUP2)
    assert out["bad_fd"] in (errno.EBADF, errno.ENOTDIR, errno.EINVAL) and out["no_child"]


def test_inotify_reports_a_directory_s_changes_as_the_kernel_makes_them(tmp_path):
    """inotify_init1/inotify_add_watch: an event per change of the watched kind, none for
    others; a missing directory is FileNotFoundError, as open(2)'s would be."""
    import select

    fd = syscalls.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        assert not os.get_inheritable(fd)
        syscalls.inotify_add_watch(fd, str(tmp_path), syscalls.IN_CLOSE_WRITE | syscalls.IN_MOVED_TO | syscalls.IN_DELETE)
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(0) == []
        os.mkdir(tmp_path / "dir")  # IN_CREATE is not asked for
        assert p.poll(0) == []
        (tmp_path / "exit").write_text("0")
        assert p.poll(1000)
        data = os.read(fd, 4096)
        assert b"exit" in data and b"dir" not in data
        (tmp_path / "exit").unlink()
        assert p.poll(1000) and b"exit" in os.read(fd, 4096)
        with pytest.raises(FileNotFoundError):
            syscalls.inotify_add_watch(fd, str(tmp_path / "missing"), syscalls.IN_CLOSE_WRITE)
    finally:
        os.close(fd)
