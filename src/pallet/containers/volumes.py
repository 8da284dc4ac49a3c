"""Named volumes (podman's ``volume`` verbs) in pallet's own store: ``GRAPHROOT/volumes/NAME/_data``
(podman's layout, under pallet's root so the two tools never share a volume).

The records of every volume are one file, ``GRAPHROOT/volumes/.volumes.json`` (names never start
with a dot, so no volume collides with it), replaced atomically under ``GRAPHROOT/volumes/.lock``.
A record holds what ``inspect`` shows plus ``users`` (the containers using the volume: ``rm``
refuses a volume with users) and the mount count of this boot.

Removing: the record is checked (users, mount), the volume's directory renamed to
``.removing-NAME`` (the data out of sight, the record still there), then the record dropped, then
the directory deleted without crossing a mount point. A removal interrupted at any step is
finished by the next change (it sees ``.removing-NAME``); a step that fails leaves the volume
whole (record and data), never a record without its data or data deleted under a live record.

The ``local`` driver's ``-o type=TYPE,device=DEVICE,o=OPTIONS`` are mount(8)'s: the volume is
mounted on ``_data`` when its first user mounts it (:meth:`Volumes.mount`) and unmounted when the
last one lets go (:meth:`Volumes.unmount`).
"""

from __future__ import annotations

import os

from .._fs import read_json_file
from .._std import json as _json
from ..errors import ConfigError, UsageError, VolumeError, VolumeInUse, VolumeNotFound

DRIVER = "local"
#: the local driver's options (podman's ``-o``)
OPTIONS = ("type", "device", "o", "copy", "nocopy")
RECORDS = ".volumes.json"
MAX_RECORDS = 64 << 20
_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NAME_REST = _NAME_FIRST + "_.-"
_REMOVING = ".removing-"


def check_name(name) -> None:
    """podman's volume name rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (at most 255 bytes: a directory name)."""
    if (not isinstance(name, str) or not name or len(name) > 255 or name[0] not in _NAME_FIRST
            or any(c not in _NAME_REST for c in name)):
        raise UsageError(f"invalid volume name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_options(options: dict) -> dict:
    """The local driver's ``-o`` options, checked before anything is written: ``type``,
    ``device``, ``o`` (mount(8)'s; ``uid=``/``gid=`` in it also own ``_data``, recorded as
    podman's ``UID``/``GID``), ``copy``/``nocopy`` (kept for the container model)."""
    out = {}
    for k, v in options.items():
        if k not in OPTIONS:
            raise UsageError(f"invalid mount option {k!r} for driver 'local': want type, device, o, copy or nocopy")
        if not isinstance(v, str) or "\0" in v or "\n" in v:
            raise UsageError(f"invalid -o {k}={v!r}: a value without NUL or newline")
        if k == "type" and (not v or "," in v or " " in v):
            raise UsageError(f"invalid -o type={v!r}: a file system type (tmpfs, none, ext4...)")
        out[k] = v
    o = out.get("o", "").split(",") if "o" in out else []
    if any(x.strip() == "" for x in o):
        raise UsageError(f"invalid -o o={out['o']!r}: empty mount option")
    owner = {}
    for x in o:
        key, sep, val = x.partition("=")
        if key in ("uid", "gid"):
            if not (sep and val.isdigit() and val.isascii() and int(val) < 1 << 32):
                raise UsageError(f"invalid -o o={out['o']!r}: {key} wants a number")
            owner[key.upper()] = str(int(val))
    bind = out.get("type") in ("none", "bind") or "bind" in o or "rbind" in o
    if bind and not out.get("device", "").startswith("/"):
        raise UsageError("a bind volume (-o type=none,o=bind) needs -o device=/ABSOLUTE/PATH")
    if bind and not os.path.exists(out["device"]):  # podman's check, at create rather than at first mount
        raise UsageError(f"invalid volume option device for driver 'local': stat {out['device']}: no such file or "
                         "directory")
    if "device" in out and "type" not in out and not bind:
        raise UsageError(f"-o device={out['device']!r} needs -o type=TYPE (or o=bind)")
    if "type" not in out and not bind and any(x.partition("=")[0] not in ("uid", "gid") for x in o):
        raise UsageError(f"-o o={out['o']!r} needs -o type=TYPE and -o device=DEVICE (only uid= and gid= "
                         "apply without a mount)")
    out.update(owner)
    return out


def _needs_mount(options: dict) -> bool:
    return "type" in options or "device" in options


def _owner(options: dict) -> tuple[int, int] | None:
    if "UID" not in options and "GID" not in options:
        return None
    return int(options.get("UID", "-1")), int(options.get("GID", "-1"))


def _show(name) -> str:
    """A name for a one-line message: as typed when printable, else quoted with escapes."""
    return name if isinstance(name, str) and name.isprintable() else repr(name)


def _not_found(name) -> VolumeNotFound:
    return VolumeNotFound(f'no volume with name "{_show(name)}" found: no such volume', reference=_show(name))


def _now() -> str:
    """Go's RFC 3339 with nanoseconds (trailing zeros trimmed), as podman's CreatedAt."""
    import time

    ns = time.time_ns()
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    frac = f"{ns % 10**9:09d}".rstrip("0")
    return s + (f".{frac}" if frac else "") + "Z"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _is_mountpoint(path: str) -> bool:
    """Something is mounted on ``path`` itself (a symlink there is never one: what it points to
    is not the volume's)."""
    import stat

    try:
        st, parent = os.lstat(path), os.stat(os.path.dirname(path))
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return False
    if st.st_dev != parent.st_dev:
        return True
    # a bind mount of a directory on the same file system: ask the kernel's table
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    want = os.fsencode(real).replace(b"\\", b"\\134").replace(b" ", b"\\040").replace(b"\t", b"\\011") \
        .replace(b"\n", b"\\012")
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            return any(line.split(b" ")[4] == want for line in f)
    except (OSError, IndexError):
        return False


def _validate(doc, where: str) -> dict:
    def bad(field, why):
        return ConfigError(f"{where}: {field}: {why}")

    if not isinstance(doc, dict) or not isinstance(doc.get("volumes"), dict):
        raise bad("volumes", "want a JSON object of volumes")
    for name, rec in doc["volumes"].items():
        f = f"volumes.{name}"
        try:
            check_name(name)
        except UsageError as e:
            raise bad(f, str(e)) from None
        if not isinstance(rec, dict):
            raise bad(f, "want an object")
        if rec.get("name") != name:
            raise bad(f"{f}.name", "does not match its key")
        for key in ("driver", "created", "boot_id"):
            if not isinstance(rec.get(key), str):
                raise bad(f"{f}.{key}", "missing or not a string")
        for key in ("labels", "options"):
            v = rec.get(key)
            if not isinstance(v, dict) or not all(isinstance(x, str) for kv in v.items() for x in kv):
                raise bad(f"{f}.{key}", "want an object of strings")
        for key in ("UID", "GID"):
            v = rec["options"].get(key)
            if v is not None and not (v.isascii() and v.isdigit() and int(v) < 1 << 32):
                raise bad(f"{f}.options.{key}", "want a number")
        users = rec.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise bad(f"{f}.users", "want a list of container IDs")
        mc = rec.get("mount_count")
        if not isinstance(mc, int) or isinstance(mc, bool) or mc < 0:
            raise bad(f"{f}.mount_count", "want a number >= 0")
        for key in ("needs_copy_up", "needs_chown"):
            if not isinstance(rec.get(key), bool):
                raise bad(f"{f}.{key}", "want true or false")
    return doc


class Volumes:
    """The named volumes of one store (``graphroot``)."""

    def __init__(self, graphroot: str):
        self.dir = os.path.join(graphroot, "volumes")

    # -- records ---------------------------------------------------------------------------

    def mountpoint(self, name: str) -> str:
        return os.path.join(self.dir, name, "_data")

    def _records_path(self) -> str:
        return os.path.join(self.dir, RECORDS)

    def _load(self) -> dict:
        path = self._records_path()
        try:
            doc = read_json_file(path, MAX_RECORDS, "pallet's volume records")
        except FileNotFoundError:
            return {"volumes": {}}
        doc = _validate(doc, path)
        boot = _boot_id()
        for rec in doc["volumes"].values():
            if rec["boot_id"] != boot:  # mounts do not outlive a reboot
                rec["mount_count"], rec["boot_id"] = 0, boot
        return doc

    def _save(self, doc: dict) -> None:
        from .._fs import write_atomic

        write_atomic(self._records_path(), (_json.dumps(doc, indent=1) + "\n").encode(), 0o600)

    def _lock(self):
        from ..storage.lock import FileLock

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        return FileLock(os.path.join(self.dir, ".lock")).exclusive()

    def _locked(self):
        """The lock held, with every interrupted removal finished first; yields the records."""
        return _Held(self)

    def list(self) -> list[dict]:
        """Every volume's record, sorted by name."""
        doc = self._load()
        return [doc["volumes"][n] for n in sorted(doc["volumes"])
                if not os.path.lexists(os.path.join(self.dir, _REMOVING + n))]

    def get(self, name: str) -> dict:
        if not isinstance(name, str) or not name:
            raise _not_found(name)
        rec = self._load()["volumes"].get(name)
        if rec is None or os.path.lexists(os.path.join(self.dir, _REMOVING + name)):
            raise _not_found(name)
        return rec

    def inspect(self, rec: dict) -> dict:
        """podman's ``volume inspect`` object for a record."""
        out = {"Name": rec["name"], "Driver": rec["driver"], "Mountpoint": self.mountpoint(rec["name"]),
               "CreatedAt": rec["created"], "Labels": dict(sorted(rec["labels"].items())), "Scope": "local",
               "Options": dict(sorted(rec["options"].items()))}
        for key in ("UID", "GID"):  # podman: set by -o o=uid=,gid=
            if key in rec["options"]:
                out[key] = int(rec["options"][key])
        out["MountCount"] = rec["mount_count"]
        if rec["needs_copy_up"]:  # podman omits them when false
            out["NeedsCopyUp"] = True
        if rec["needs_chown"]:
            out["NeedsChown"] = True
        return out

    # -- changes ---------------------------------------------------------------------------

    def create(self, name: str | None = None, *, driver: str = DRIVER, labels: dict | None = None,
               options: dict | None = None, ignore: bool = False) -> dict:
        """A new volume (podman's ``volume create``): everything checked before anything is written."""
        if driver != DRIVER:
            raise UsageError(f"unsupported volume driver {driver!r}: pallet has the local driver only")
        if name is not None:
            check_name(name)
        for k, v in (labels or {}).items():
            if not isinstance(k, str) or not k or not isinstance(v, str) or "\0" in k + v:
                raise UsageError(f"invalid --label {k!r}={v!r}")
        options = check_options(dict(options or {}))
        with self._locked() as doc:
            if name is None:
                name = os.urandom(32).hex()
            if name in doc["volumes"]:
                if ignore:
                    return doc["volumes"][name]
                raise VolumeError(f"volume with name {name} already exists: volume already exists")
            vdir = os.path.join(self.dir, name)
            self._make_dirs(vdir)
            if _owner(options):
                try:
                    os.chown(os.path.join(vdir, "_data"), *_owner(options), follow_symlinks=False)
                except OSError as e:
                    raise VolumeError(f"volume {name}: -o o=uid=,gid=: {e.strerror}") from None
            rec = {"name": name, "driver": DRIVER, "created": _now(), "labels": dict(labels or {}),
                   "options": options, "users": [], "mount_count": 0, "boot_id": _boot_id(),
                   "needs_copy_up": True, "needs_chown": _owner(options) is None}
            doc["volumes"][name] = rec
            self._save(doc)
            return rec

    def _make_dirs(self, vdir: str) -> None:
        data = os.path.join(vdir, "_data")
        try:
            os.mkdir(vdir, 0o700)
        except FileExistsError:
            # no record: a create a crash interrupted (an empty _data) is taken over; anything
            # else is data pallet does not know, never reused nor deleted
            try:
                left = sorted(os.listdir(vdir))
                empty = left in ([], ["_data"]) and (not left or (os.path.isdir(data) and not os.path.islink(data)
                                                                  and not os.listdir(data)))
            except OSError:
                empty = False
            if not empty or os.path.islink(vdir):
                raise VolumeError(f"{vdir} exists and holds data without a volume record: move it away "
                                  "or choose another name") from None
        try:
            os.mkdir(data, 0o755)
        except FileExistsError:
            pass

    def add_user(self, name: str, container_id: str) -> None:
        """Record that a container uses the volume (``rm`` then refuses it)."""
        with self._locked() as doc:
            rec = self._rec(doc, name)
            if container_id not in rec["users"]:
                rec["users"].append(container_id)
                self._save(doc)

    def remove_user(self, name: str, container_id: str) -> None:
        with self._locked() as doc:
            rec = self._rec(doc, name)
            if container_id in rec["users"]:
                rec["users"].remove(container_id)
                self._save(doc)

    def copied_up(self, name: str) -> bool:
        """Claim a volume's copy-up (podman's NeedsCopyUp): True for the one caller that gets it
        (then the flag is off; the caller fills ``_data`` from the image), False when done already."""
        with self._locked() as doc:
            rec = self._rec(doc, name)
            if not rec["needs_copy_up"]:
                return False
            rec["needs_copy_up"] = False
            self._save(doc)
            return True

    def chowned(self, name: str) -> bool:
        """Claim a volume's first-use chown (podman's NeedsChown): True for the one caller that
        gets it (then the flag is off), False when done already or not wanted (``-o uid=/gid=``)."""
        with self._locked() as doc:
            rec = self._rec(doc, name)
            if not rec["needs_chown"]:
                return False
            rec["needs_chown"] = False
            self._save(doc)
            return True

    def users(self, name: str) -> list[str]:
        return list(self.get(name)["users"])

    def _rec(self, doc: dict, name: str) -> dict:
        rec = doc["volumes"].get(name) if isinstance(name, str) else None
        if rec is None:
            raise _not_found(name)
        return rec

    def mount(self, name: str) -> str:
        """A user starts using the volume: mounted (``-o type/device/o``) on the first use; the path."""
        with self._locked() as doc:
            rec = self._rec(doc, name)
            path = self.mountpoint(name)
            _check_dirs(self.dir, name)
            if _needs_mount(rec["options"]) and rec["mount_count"] == 0 and not _is_mountpoint(path):
                _run_mount(rec["options"], path, name)
                if _owner(rec["options"]):
                    os.chown(path, *_owner(rec["options"]), follow_symlinks=False)
            rec["mount_count"] += 1
            self._save(doc)
            return path

    def unmount(self, name: str) -> None:
        """A user stops using the volume: unmounted when the last one does."""
        with self._locked() as doc:
            rec = self._rec(doc, name)
            if rec["mount_count"] == 0:
                return
            if rec["mount_count"] == 1 and _needs_mount(rec["options"]) and _is_mountpoint(self.mountpoint(name)):
                _run_umount(self.mountpoint(name), name)
            rec["mount_count"] -= 1
            self._save(doc)

    def export(self, name: str, out) -> None:
        """podman's ``volume export``: the volume's content (not its directory) as a tar written
        to the binary ``out``; mounted for the while if it has mount options."""
        from ..layer.create import tar_entry
        from .files import pump

        self.mount(name)
        try:
            vfd = os.open(os.path.join(self.dir, name), os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                pump(tar_entry(vfd, b"_data", b""), out)
            finally:
                os.close(vfd)
        finally:
            self.unmount(name)

    def import_tar(self, name: str, stream) -> None:
        """podman's ``volume import``: a tar (the binary ``stream``) extracted into the volume
        over what it has, safely (pallet's layer applier: no entry lands outside it)."""
        from ..errors import LayerError
        from ..layer.apply import apply_layer

        path = self.mount(name)
        try:
            apply_layer(stream, path, whiteouts="none", devices="create")
        except LayerError as e:
            raise VolumeError(f"importing into volume {name}: {e}") from None
        finally:
            self.unmount(name)

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data (podman's ``volume rm``). A volume with users is refused
        (also with ``force``: ``volume rm --force`` removes its containers first, through the
        container model, then calls this)."""
        with self._locked() as doc:
            self._remove_locked(doc, self._rec(doc, name), force)

    def _remove_locked(self, doc: dict, rec: dict, force: bool) -> None:
        name = rec["name"]
        if rec["users"]:
            raise VolumeInUse(f"volume {name} is being used by the following container(s): "
                              f"{', '.join(rec['users'])}: volume is being used")
        path = self.mountpoint(name)
        if _is_mountpoint(path):
            _run_umount(path, name)  # fails: nothing changed
            rec["mount_count"] = 0
        vdir = os.path.join(self.dir, name)
        trash = os.path.join(self.dir, _REMOVING + name)
        try:
            os.rename(vdir, trash)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise VolumeError(f"removing volume {name}: {e.strerror}: the volume is unchanged") from None
        del doc["volumes"][name]
        self._save(doc)
        self._delete_trash(trash, name)

    def _finish_removals(self, doc: dict) -> None:
        """Removals a crash or a failure interrupted: the record dropped, the directory deleted."""
        try:
            names = [n for n in os.listdir(self.dir) if n.startswith(_REMOVING)]
        except FileNotFoundError:
            return
        changed = False
        for n in names:
            name = n[len(_REMOVING):]
            if doc["volumes"].pop(name, None) is not None:
                changed = True
        if changed:
            self._save(doc)
        for n in names:
            try:
                self._delete_trash(os.path.join(self.dir, n), n[len(_REMOVING):])
            except VolumeError:
                pass  # said when that volume's removal ran; tried again next time

    def _delete_trash(self, trash: str, name: str) -> None:
        if os.path.islink(trash):  # not pallet's directory (a tampered store): the link goes, never its target
            os.unlink(trash)
            return
        data = os.path.join(trash, "_data")
        if _is_mountpoint(data):
            _run_umount(data, name)
        try:
            _rmtree_one_fs(trash)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise VolumeError(f"volume {name} is removed but deleting its data failed: {e}; "
                              f"the next volume command retries ({trash})") from None

    def prune(self, keep=lambda rec: True) -> list[str]:
        """Remove every volume without users for which ``keep(record)`` is true; their names."""
        out = []
        with self._locked() as doc:
            for name in sorted(doc["volumes"]):
                rec = doc["volumes"][name]
                if rec["users"] or not keep(rec):
                    continue
                self._remove_locked(doc, rec, False)
                out.append(name)
        return out


def _check_dirs(root: str, name: str) -> None:
    """``NAME`` and ``NAME/_data`` are real directories (mount(8) follows a symlink: a volume
    replaced by one would be mounted over its target)."""
    import stat

    for path in (os.path.join(root, name), os.path.join(root, name, "_data")):
        try:
            st = os.lstat(path)
        except OSError as e:
            raise VolumeError(f"volume {name}: {path}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise VolumeError(f"volume {name}: {path} is not a directory (a symlink?): refusing to mount on it")


class _Held:
    def __init__(self, volumes: Volumes):
        self.volumes, self.lock = volumes, None

    def __enter__(self) -> dict:
        self.lock = self.volumes._lock()
        self.lock.__enter__()
        try:
            doc = self.volumes._load()
            self.volumes._finish_removals(doc)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return doc

    def __exit__(self, *exc):
        try:
            self.lock.__exit__(*exc)
        finally:
            self.lock.lock.close()


def _run_mount(options: dict, path: str, name: str) -> None:
    import subprocess

    argv = ["mount"]
    kind = options.get("type")
    if kind and kind not in ("none", "bind"):
        argv += ["-t", kind]
    o = [x for x in options.get("o", "").split(",") if x]
    if kind in ("none", "bind") and "bind" not in o and "rbind" not in o:
        o.append("bind")
    if o:
        argv += ["-o", ",".join(o)]
    argv += ["--", options.get("device") or kind or "none", path]
    p = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        raise VolumeError(f"mounting volume {name} ({' '.join(argv[1:-1])}): {why}")


def _run_umount(path: str, name: str) -> None:
    import subprocess

    p = subprocess.run(["umount", "--", path], capture_output=True, text=True, errors="replace")
    if p.returncode != 0 and _is_mountpoint(path):
        why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        raise VolumeError(f"unmounting volume {name}: {why}: the volume is unchanged")


def _rmtree_one_fs(path: str) -> None:
    """Delete ``path`` and what is below it, by file descriptor, following no symlink and never
    entering another file system (a mount left below is an error, its contents untouched)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    parent = os.open(os.path.dirname(path), flags)
    try:
        base = os.path.basename(path)
        top = os.open(base, flags, dir_fd=parent)
        dev = os.fstat(top).st_dev
        stack = [(parent, base, top)]
        try:
            while stack:
                pfd, dname, fd = stack[-1]
                sub = None
                with os.scandir(fd) as it:
                    entries = list(it)
                for e in entries:
                    if e.is_dir(follow_symlinks=False):
                        sub = e.name
                    else:
                        os.unlink(e.name, dir_fd=fd)
                if sub is not None:
                    sfd = os.open(sub, flags, dir_fd=fd)
                    if os.fstat(sfd).st_dev != dev:
                        os.close(sfd)
                        raise OSError(16, f"{sub} is a mount point", sub)
                    stack.append((fd, sub, sfd))
                    continue
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=pfd)
        finally:
            for _, _, fd in stack:
                os.close(fd)
    finally:
        os.close(parent)
