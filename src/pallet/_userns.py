"""A user namespace with given id maps, as an fd: what an id-mapped mount needs
(``mount_setattr(MOUNT_ATTR_IDMAP)``), for the store's layers and the runtime's mounts alike."""

from __future__ import annotations

import os

from .errors import PalletError

CLONE_NEWUSER = 0x10000000


def userns_fd(uid_map, gid_map, error=PalletError) -> int:
    """An fd of a new user namespace with these maps (``[[container, host, size], ...]``); the
    process that made it is gone when this returns. Failures raise ``error`` (the caller's
    class of the hierarchy: the store's, the runtime's)."""
    from ._std import syscalls as _sys

    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only makes the namespace and waits
        try:
            os.close(r)
            os.close(w2)
            _sys.unshare(CLONE_NEWUSER)
            os.write(w, b"1")
            os.read(r2, 1)
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        if os.read(r, 1) != b"1":
            raise error("cannot make a user namespace for an id-mapped mount")
        for kind, mapping in (("uid", uid_map), ("gid", gid_map)):
            lines = "".join(f"{c} {h} {n}\n" for c, h, n in mapping)
            try:
                with open(f"/proc/{pid}/{kind}_map", "w") as f:
                    f.write(lines)
            except OSError as e:
                raise error(f"the kernel refused the {kind} mapping {lines.strip()!r}: {e.strerror}") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w2)
        os.close(r)
        os.waitpid(pid, 0)


# --- rootless: pallet as an unprivileged user, inside a user namespace of its own (podman's model) ---

#: set in the environment once pallet runs in its rootless user namespace: the user's own uid
#: (what podman's ``_CONTAINERS_ROOTLESS_UID`` is); children (conmon's exit command) inherit it
ROOTLESS_ENV = "_PALLET_ROOTLESS_UID"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
NEWUIDMAP, NEWGIDMAP = "/usr/bin/newuidmap", "/usr/bin/newgidmap"
CLONE_NEWNS = 0x00020000
_INITIAL_MAP = "0 0 4294967295"


def in_initial_userns() -> bool:
    """Is this process in the host's user namespace (its uid map the identity of every id)?"""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == _INITIAL_MAP.split()
    except OSError:
        return True


def rootless_uid() -> int | None:
    """The user's uid when pallet runs rootless (in its user namespace, or about to enter it);
    None when it runs as the host's root."""
    euid = os.geteuid()
    if euid != 0:
        return euid
    v = os.environ.get(ROOTLESS_ENV, "")
    if v.isascii() and v.isdigit() and not in_initial_userns():
        return int(v)
    return None


def host_euid() -> int:
    """The euid pallet runs as on the host: the user's inside its rootless namespace."""
    uid = rootless_uid()
    return os.geteuid() if uid is None else uid


#: ids are 32-bit and (uid_t)-1 is no id: a range ends at or below this
ID_LIMIT = (1 << 32) - 1
#: the kernel's limits of a uid_map/gid_map: 340 lines, written in one write of less than a page
MAX_EXTENTS, MAX_MAP_BYTES = 340, 4095


def parse_sub_ranges(lines, names: tuple) -> list[tuple[int, int]]:
    """``(start, size)`` of the subuid(5)/subgid(5) ``lines`` whose first field is one of
    ``names``. As newuidmap reads the file, a malformed line is skipped: a field that is not
    ASCII digits ("²" is a digit to ``str.isdigit`` and no number to ``int``), a size of 0, a
    range past the last id, or one overlapping a range taken already (the kernel refuses a map
    whose ranges overlap: one hostile line would fail every start)."""
    out: list[tuple[int, int]] = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in names:
            continue
        start, size = parts[1], parts[2]
        if not (start.isascii() and start.isdigit() and size.isascii() and size.isdigit()) \
                or len(start) > 10 or len(size) > 10:
            continue
        start, size = int(start), int(size)
        if size == 0 or start + size > ID_LIMIT:
            continue
        if any(start < s + n and s < start + size for s, n in out):
            continue
        out.append((start, size))
    return out


def sub_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """``(start, size)`` ranges of a subuid/subgid file (subuid(5)) for ``user`` by name or by
    number (see :func:`parse_sub_ranges`)."""
    try:
        with open(path) as f:
            return parse_sub_ranges(f, (user, str(uid)))
    except (OSError, UnicodeDecodeError):
        return []


def rootless_maps(user: str, uid: int, gid: int, subuid: str = SUBUID, subgid: str = SUBGID) -> tuple[list, list]:
    """podman's rootless maps: the user's own id as 0, then its subordinate ranges from 1 on."""
    maps = []
    for own, path in ((uid, subuid), (gid, subgid)):
        m, at = [[0, own, 1]], 1
        text = len(f"0 {own} 1\n")
        for start, size in sub_ranges(path, user, uid):
            if start <= own < start + size:  # the user's own id is mapped as 0 already
                continue
            size = min(size, ID_LIMIT - at)  # inside, the ids end where they end outside
            text += len(f"{at} {start} {size}\n")  # newuidmap's line
            if size <= 0 or len(m) == MAX_EXTENTS or text > MAX_MAP_BYTES:
                break
            m.append([at, start, size])
            at += size
        maps.append(m)
    return maps[0], maps[1]


def host_name(path: str, num: int) -> str | None:
    """The name of id ``num`` in the host's ``/etc/passwd`` or ``/etc/group`` (None: not there)."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2] == str(num):
                    return parts[0]
    except OSError:
        pass
    return None


def _user_name(uid: int) -> str:
    return host_name("/etc/passwd", uid) or os.environ.get("USER") or str(uid)


CATATONIT = "/usr/bin/catatonit"


def rootless_state_dir(uid: int) -> str:
    """Where the pause process's pid is kept: ``$XDG_RUNTIME_DIR/pallet-userns`` (podman's
    ``libpod/tmp/pause.pid``), else ``/tmp/pallet-run-UID/pallet-userns``."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/pallet-run-{uid}"
    return os.path.join(base, "pallet-userns")


def _private_dir(path: str, uid: int, error) -> None:
    import stat

    try:
        os.makedirs(path, 0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        raise error(f"cannot make {path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise error(f"{path} is not a private directory of this user (a symlink, another owner, or open to "
                    "others): remove it")


def _pause_pid(path: str, uid: int) -> int | None:
    """The live pause process recorded at ``path``: the user's own ``catatonit``, in a user
    namespace other than ours (a recycled pid is not taken for it)."""
    try:
        with open(path) as f:
            text = f.read(32).strip()
        pid = int(text) if text.isascii() and text.isdigit() else 0
        if pid <= 1 or os.stat(f"/proc/{pid}").st_uid != uid:
            return None
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "catatonit":
                return None
        if os.stat(f"/proc/{pid}/ns/user").st_ino == os.stat("/proc/self/ns/user").st_ino:
            return None
        return pid
    except (OSError, ValueError):
        return None


def enter_rootless(error=PalletError) -> None:
    """Move this (single-threaded) process into the user's rootless user namespace (its root
    the calling user, its subordinate ids from /etc/subuid and /etc/subgid mapped from 1 on by
    newuidmap/newgidmap) and the mount namespace that goes with it, as podman does before
    touching its store. The first pallet makes both and leaves a pause process
    (``catatonit -P``) holding them, its pid in :func:`rootless_state_dir`; later ones join
    them, so mounts, network namespaces and running containers are every pallet's to see.
    A user without subordinate ids gets only its own id mapped (podman's fallback); an image
    with files of other owners is then refused where it is stored. A process already inside (pallet started by conmon's exit command) is left as it is."""
    import fcntl

    from ._std import syscalls as _sys

    uid = os.geteuid()
    if uid == 0:
        return None
    state = rootless_state_dir(uid)
    _private_dir(os.path.dirname(state), uid, error)
    _private_dir(state, uid, error)
    pidfile = os.path.join(state, "pause.pid")
    lock = os.open(os.path.join(state, "pause.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one pallet makes the namespaces, the others wait and join
        pid = _pause_pid(pidfile, uid)
        if pid is not None:
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # setns(mnt) moves us to its /
            fds = []
            try:
                for ns in ("user", "mnt"):
                    fds.append(os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC))
                _sys.setns(fds[0], CLONE_NEWUSER)
                _sys.setns(fds[1], CLONE_NEWNS)
                os.fchdir(cwd)
            except OSError as e:
                raise error(f"cannot join the rootless user namespace of pallet's pause process {pid}: "
                            f"{e.strerror}") from None
            finally:
                for fd in fds + [cwd]:
                    os.close(fd)
        else:
            _new_namespaces(uid, os.getegid(), error)
            _start_pause(pidfile, error)
    finally:
        os.close(lock)
    os.environ[ROOTLESS_ENV] = str(uid)


def _start_pause(pidfile: str, error) -> None:
    """A ``catatonit -P`` in our namespaces, in a session of its own, its pid recorded."""
    from ._fs import write_atomic

    if not os.access(CATATONIT, os.X_OK):
        raise error(f"rootless mode needs {CATATONIT} (Debian's catatonit) to keep its user namespace")
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(CATATONIT, ["catatonit", "-P"], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, i) for i in (0, 1, 2)], setsid=True)
    except OSError as e:
        raise error(f"cannot start {CATATONIT} -P: {e.strerror}") from None
    finally:
        os.close(null)
    write_atomic(pidfile, f"{pid}\n".encode(), 0o600)


def _new_namespaces(uid: int, gid: int, error) -> None:
    """A new user namespace mapped as :func:`rootless_maps` says, and a mount namespace in it."""
    from ._std import syscalls as _sys

    user = _user_name(uid)
    uid_map, gid_map = rootless_maps(user, uid, gid)
    helper = len(uid_map) > 1 or len(gid_map) > 1
    if not helper:
        # said where it matters, not up front: an image with files of other owners is refused in
        # one line ("potentially insufficient UIDs or GIDs"); a bad input's error stays one line
        import logging

        logging.getLogger("pallet").debug("no subuid ranges found for user %r in %s: only the user's own id "
                                          "is mapped", user, SUBUID)
    elif not (os.access(NEWUIDMAP, os.X_OK) and os.access(NEWGIDMAP, os.X_OK)):
        raise error(f"rootless mode needs {NEWUIDMAP} and {NEWGIDMAP} (Debian's uidmap package) to map "
                    f"the subordinate ids of {user!r}")
    ppid = os.getpid()
    r, w = os.pipe()
    if helper:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper runs newuidmap/newgidmap on its parent
            code = 1
            try:
                os.close(w)
                if os.read(r, 1) == b"1":
                    code = 0
                    for prog, m in ((NEWUIDMAP, uid_map), (NEWGIDMAP, gid_map)):
                        argv = [prog, str(ppid)] + [str(x) for line in m for x in line]
                        child = os.posix_spawn(prog, argv, os.environ)
                        _, status = os.waitpid(child, 0)
                        if status != 0:
                            code = 2
                            break
            finally:
                os._exit(code)
    os.close(r)
    try:
        _sys.unshare(CLONE_NEWUSER)
    except OSError as e:
        os.close(w)
        if helper:
            os.waitpid(pid, 0)
        raise error(f"cannot make a user namespace as {user!r}: {e.strerror} (user.max_user_namespaces, "
                    "kernel.unprivileged_userns_clone)") from None
    if helper:
        os.write(w, b"1")
        os.close(w)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise error(f"newuidmap/newgidmap refused the ranges of {user!r} from {SUBUID}/{SUBGID} "
                        f"(uid map {' '.join(f'{c}:{h}:{n}' for c, h, n in uid_map)})")
    else:
        os.close(w)
        try:
            for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        except OSError as e:
            raise error(f"cannot map the user's own id in its user namespace: {e.strerror}") from None
    try:
        _sys.unshare(CLONE_NEWNS)
        _sys.mount("none", "/", None, 0x4000 | 0x80000)  # MS_REC | MS_SLAVE: our mounts stay ours
    except OSError as e:
        raise error(f"cannot make a mount namespace in the user namespace: {e.strerror}") from None
