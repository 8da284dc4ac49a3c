"""The one path-in-root resolver (pallet._rootfs): openat2(RESOLVE_IN_ROOT) and the fd walk
give the same answers, and neither ever leaves the root, whatever symlinks the tree holds."""

from __future__ import annotations

import errno
import os

import pytest

from pallet import _rootfs

pytestmark = pytest.mark.unit

METHODS = ["walk", "openat2"]


def _open(method, rfd, path, flags=os.O_PATH, follow_last=True):
    if method == "openat2":
        assert _rootfs.have_openat2(), "this kernel has openat2 (5.6+): the test runs both ways"
        return _rootfs.open_in_root_openat2(rfd, path, flags, follow_last=follow_last)
    return _rootfs.open_in_root_walk(rfd, path, flags, follow_last=follow_last)


@pytest.fixture
def tree(tmp_path):
    """A root full of links out of it, and a host file they would reach."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "secret").write_text("host")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "host").mkdir()
    (root / "host" / "secret").write_text("inside")
    (root / "abs").symlink_to("/host")                      # absolute: the root's /host
    (root / "up").symlink_to("../../../../../../host")       # climbing: stops at the root
    (root / "etc" / "rel").symlink_to("../host/secret")
    (root / "loop").symlink_to("loop")
    (root / "file").write_text("f")
    (root / "dangling").symlink_to("/made/by/mkdir")
    rfd = _rootfs.open_root(str(root))
    yield root, rfd
    os.close(rfd)


def _read(fd):
    with os.fdopen(fd, "rb") as f:
        return f.read().decode()


@pytest.mark.parametrize("method", METHODS)
def test_links_out_of_the_root_land_inside_it(tree, method):
    root, rfd = tree
    for path in ("/abs/secret", "up/secret", "/etc/rel", "../../../host/secret", "/etc/../../host/secret"):
        assert _read(_open(method, rfd, path, os.O_RDONLY)) == "inside", path


@pytest.mark.parametrize("method", METHODS)
def test_errors_are_the_kernels(tree, method):
    root, rfd = tree
    for path, err in (("/loop", errno.ELOOP), ("/missing", errno.ENOENT), ("/file/x", errno.ENOTDIR)):
        with pytest.raises(OSError) as e:
            _open(method, rfd, path)
        assert e.value.errno == err, path


@pytest.mark.parametrize("method", METHODS)
def test_last_symlink_opened_itself_when_asked(tree, method):
    root, rfd = tree
    fd = _open(method, rfd, "/abs", follow_last=False)
    try:
        assert os.readlink(_rootfs.fd_path(fd)).endswith("/root/abs")
    finally:
        os.close(fd)


def test_mkdir_all_follows_a_dangling_link_inside_the_root(tree):
    root, rfd = tree
    fd = _rootfs.mkdir_all_in_root(rfd, "/dangling/sub", 0o750, owner=(os.getuid(), os.getgid()))
    os.close(fd)
    assert (root / "made" / "by" / "mkdir" / "sub").is_dir()
    assert (root / "made" / "by").stat().st_mode & 0o7777 == 0o750
    assert not os.path.exists("/made")
    with pytest.raises(NotADirectoryError):
        _rootfs.mkdir_all_in_root(rfd, "/file/sub")


def test_read_in_root_and_resolve_in_root(tree):
    root, rfd = tree
    assert _rootfs.read_in_root(str(root), "/abs/../etc/passwd").startswith(b"root:")
    assert _rootfs.read_in_root(str(root), "/missing") is None
    assert _rootfs.read_in_root(str(root), "/etc") is None
    assert _rootfs.resolve_in_root(str(root), "/up/secret") == str(root / "host" / "secret")
    assert _rootfs.resolve_in_root(str(root), "/abs/new/x") == str(root / "host" / "new" / "x")
    assert _rootfs.resolve_in_root(str(root), "/abs", follow_last=False) == str(root / "abs")
    assert _rootfs.resolve_in_root(str(root), "/") == str(root)


@pytest.mark.parametrize("method", METHODS)
def test_open_beneath_follows_no_symlink(tree, method):
    root, rfd = tree
    opener = _rootfs.open_beneath if method == "openat2" else _rootfs.open_beneath_walk
    assert _read(opener(rfd, b"etc/passwd", os.O_RDONLY)).startswith("root:")
    for path in ("abs/secret", "etc/rel", "../root/etc/passwd", "abs"):
        with pytest.raises(OSError):
            os.close(opener(rfd, path, os.O_RDONLY))


def test_mkfile_and_o_path_mkdir_for_mount_points(tree):
    # the runtime's mount points: O_PATH fds, made inside the root whatever the links say
    root, rfd = tree
    fd = _rootfs.mkfile_in_root(rfd, "/abs/new/point")
    try:
        assert os.readlink(_rootfs.fd_path(fd)) == str(root / "host" / "new" / "point")
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
    fd = _rootfs.mkdir_all_in_root(rfd, "/up/d", flags=os.O_PATH)
    try:
        with pytest.raises(OSError):  # an O_PATH fd: no I/O through it
            os.listdir(fd)
        assert (root / "host" / "d").is_dir()
    finally:
        os.close(fd)
    fd = _rootfs.mkfile_in_root(rfd, "/etc/passwd")  # there already: opened, left as it was
    os.close(fd)
    assert (root / "etc" / "passwd").read_text().startswith("root:")
    assert not os.path.exists(tree[0].parent / "host" / "new")


def test_walk_in_root_hooks(tree):
    # the layer applier's rules through the walker's hooks: absolute links and .. out refused
    root, rfd = tree
    seen = []

    def absolute(here, target):
        seen.append((b"/".join(here), target))
        raise PermissionError("absolute")

    fd, real = _rootfs.walk_in_root(rfd, (b"etc",), flags=os.O_RDONLY | os.O_DIRECTORY)
    os.close(fd)
    assert real == (b"etc",)
    with pytest.raises(PermissionError):
        _rootfs.walk_in_root(rfd, (b"abs", b"x"), absolute=absolute)
    assert seen == [(b"abs", b"/host")]
    with pytest.raises(PermissionError):
        _rootfs.walk_in_root(rfd, (b"up",), escape=lambda here: (_ for _ in ()).throw(PermissionError("..")))
    made = []

    def missing(cur, name, real):
        made.append(b"/".join(real + [name]))
        os.mkdir(name, 0o755, dir_fd=cur)
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)

    fd, real = _rootfs.walk_in_root(rfd, (b"etc", b"rel2", b"a"), missing=missing)
    os.close(fd)
    assert made == [b"etc/rel2", b"etc/rel2/a"] and (root / "etc" / "rel2" / "a").is_dir()
    with pytest.raises(OSError) as e:  # a file on the way, no not_dir hook: ENOTDIR
        _rootfs.walk_in_root(rfd, (b"file", b"x"))
    assert e.value.errno == errno.ENOTDIR
    fd, real = _rootfs.walk_in_root(rfd, (b"file", b"x"), missing=missing,
                                    not_dir=lambda cur, name, real, st: os.open(".", os.O_RDONLY, dir_fd=cur))
    os.close(fd)
    with pytest.raises(OSError) as e:
        _rootfs.walk_in_root(rfd, (b"loop", b"x"))
    assert e.value.errno == errno.ELOOP


def test_openat2_comes_from_the_syscall_stand_in_not_ctypes():
    # pallet-runtime resolves its mount points here: ctypes would cost its start-up
    import subprocess
    import sys

    code = ("import sys\nfrom pallet import _rootfs\nassert _rootfs.have_openat2()\n"
            "print(sorted(m for m in ('ctypes', 'argparse', 'json', 're') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
