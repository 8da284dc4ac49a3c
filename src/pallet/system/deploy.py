"""System containers: install an image as a systemd service, update, roll back, uninstall.

Layout (docs/system.md)::

    SYSTEM_DIR/NAME -> NAME.0        the current deployment (a symlink, switched by rename)
    SYSTEM_DIR/NAME.0/               rootfs/ (hard links into the store), config.json,
                                     NAME.service, tmpfiles.conf, info.json, backup/
    SYSTEM_DIR/NAME.1/               the previous (or next) deployment
    SYSTEM_DIR/.journal-NAME.json    a change in flight
    HOST_ROOT/run/pallet/system.lock every change holds it (in /run: uninstalling the last
                                     container leaves no file behind, the system dir included)

Crash safety: a change writes its journal (``{"op", "from", "to", "created"}``) before it
touches anything another process or systemd can see, and removes it last. Every verb first
*recovers* the names it touches: an install, update or rollback found in flight is rolled back
(the host files of ``from`` put back, the link on ``from``, a deployment it made removed); an
uninstall in flight is finished. So after a SIGKILL anywhere, the next command sees the old
state or the new one, never parts of both.
"""

from __future__ import annotations

import contextlib
import os
import time

from .._std import json
from .. import _fs, _rootfs
from ..errors import NotFound, PalletError, UsageError
from . import hostfiles, systemd, template, unit

#: atomic's: values pallet sets whatever --set says
FORCED = ("DESTDIR", "NAME", "EXEC_START", "EXEC_STOP", "EXEC_STARTPRE", "EXEC_STOPPOST", "HOST_UID", "HOST_GID",
          "IMAGE_ID", "IMAGE_NAME", "DEPENDENCIES")


def _step(name: str) -> None:
    """A point where a change may be cut short: ``PALLET_SYSTEM_KILL_AT=NAME`` makes the process
    SIGKILL itself there (the crash-safety tests' way to stop an install at each step);
    ``NAME:TERM`` sends SIGTERM instead (which the command line turns into an exit that unwinds)."""
    want, _, sig = (os.environ.get("PALLET_SYSTEM_KILL_AT") or "").partition(":")
    if want == name:
        import signal

        os.kill(os.getpid(), signal.SIGTERM if sig == "TERM" else signal.SIGKILL)


class SystemContainerError(PalletError):
    """A system container cannot be installed, changed or removed as asked."""


class Paths:
    """Where a system container's files go. ``host_root`` prefixes the host's unit, tmpfiles
    and hostfs files and its dpkg database (tests use a directory; systemd is only driven
    when it is ``/``). ``system_dir`` holds the deployments; ``runtime_root`` is the OCI
    runtime's state directory named in the units (a path on the running host)."""

    __slots__ = ("host_root", "system_dir", "unit_dir", "tmpfiles_dir", "runtime_root", "dpkg_admindir", "lock")

    def __init__(self, host_root: str = "/", system_dir: str | None = None, *, unit_dir: str = "/etc/systemd/system",
                 tmpfiles_dir: str = "/etc/tmpfiles.d", runtime_root: str = "/run/pallet/system",
                 dpkg_admindir: str = "/var/lib/dpkg"):
        self.host_root = os.path.abspath(host_root)
        self.system_dir = os.path.abspath(system_dir or os.path.join(self.host_root, "var/lib/pallet/system"))
        self.unit_dir = hostfiles.check_host_path(unit_dir, "unit directory")
        self.tmpfiles_dir = hostfiles.check_host_path(tmpfiles_dir, "tmpfiles directory")
        self.runtime_root = runtime_root
        self.dpkg_admindir = dpkg_admindir
        self.lock = os.path.join(self.host_root, "run/pallet/system.lock")

    def on_host(self, path: str) -> str:
        """``path`` as the running host sees it (the system dir below the host root loses the prefix)."""
        if self.host_root != "/" and (path + "/").startswith(self.host_root + "/"):
            return "/" + os.path.relpath(path, self.host_root).lstrip(".")
        return path

    @property
    def systemd(self) -> bool:
        """Drive systemd: the host root is the running system's and systemd is PID 1 there."""
        return self.host_root == "/" and systemd.booted()


class SystemContainers:
    def __init__(self, store, paths: Paths, runtime: str):
        self.store = store
        self.paths = paths
        self.runtime = runtime
        self.host = hostfiles.Host(paths.host_root)

    # -- small things ---------------------------------------------------------------------

    def _dir(self, name: str) -> str:
        return os.path.join(self.paths.system_dir, name)

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        try:
            os.makedirs(os.path.dirname(self.paths.lock), 0o755, exist_ok=True)
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise SystemContainerError(f"system containers' lock {self.paths.lock}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._sweep_staging()
            yield
        finally:
            os.close(fd)

    def _sweep_staging(self) -> None:
        from ..storage.records import rmtree

        if not os.path.isdir(self.paths.system_dir):
            return
        for n in os.listdir(self.paths.system_dir):
            if n.startswith(".staging-"):
                rmtree(os.path.join(self.paths.system_dir, n))

    def current(self, name: str) -> str | None:
        """The current deployment's directory name (``NAME.N``), or None when not installed."""
        try:
            target = os.readlink(self._dir(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == 22:  # EINVAL: not a symlink: not ours
                raise SystemContainerError(f"{self._dir(name)} is not a deployment link") from None
            raise
        if target not in (f"{name}.0", f"{name}.1"):
            raise SystemContainerError(f"{self._dir(name)} points to {target!r}, not a deployment of {name}")
        return target

    def _info(self, deployment: str) -> dict:
        """A deployment's info.json, its host file records checked (they name what is removed)."""
        path = os.path.join(self._dir(deployment), "info.json")
        doc = _fs.read_json_file(path, 16 << 20, "deployment info")
        files = doc.get("host_files") if isinstance(doc, dict) else None
        if not isinstance(files, list) or not all(_record_ok(r, deployment) for r in files):
            raise SystemContainerError(f"{path} is damaged: not what pallet wrote")
        return doc

    def _set_link(self, name: str, deployment: str | None) -> None:
        link = self._dir(name)
        if deployment is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        else:
            tmp = self._dir(f".link-{name}-{os.urandom(4).hex()}")
            os.symlink(deployment, tmp)
            os.rename(tmp, link)
        _fs.fsync_dir(self.paths.system_dir)

    def _journal_path(self, name: str) -> str:
        return self._dir(f".journal-{name}.json")

    def _journal(self, name: str, doc: dict | None) -> None:
        if doc is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal_path(name))
            _fs.fsync_dir(self.paths.system_dir)
        else:
            _fs.write_atomic(self._journal_path(name), json.dumps(doc).encode(), 0o600)

    def _remove_deployment(self, deployment: str) -> None:
        from ..storage.records import rmtree

        d = self._dir(deployment)
        if os.path.lexists(d):
            trash = self._dir(f".staging-rm-{os.urandom(4).hex()}")
            os.rename(d, trash)
            _fs.fsync_dir(self.paths.system_dir)
            rmtree(trash)

    def _reader(self, deployment: str, info: dict):
        base = self._dir(deployment)

        def read(rec: dict) -> bytes | None:
            if rec["kind"] != "file":
                return None
            if rec["role"] == "hostfs":
                root = info.get("rootfs") or os.path.join(base, "rootfs")
                data = _rootfs.read_in_root(root, rec["source"], 1 << 34)
            else:
                with open(os.path.join(base, rec["source"]), "rb") as f:
                    data = f.read()
            if data is None or hostfiles.sha256(data) != rec["sha256"]:
                raise SystemContainerError(f"{deployment}: {rec['source']} changed since it was installed")
            return data

        return read

    # -- recovery -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _undone_on_error(self, name: str):
        """A change that fails (or is interrupted: Ctrl-C, SIGTERM) is undone at once, as the
        next command would undo it after a SIGKILL."""
        try:
            yield
        except BaseException as e:
            try:
                self.recover(name)
            except Exception as again:  # the journal stays: the next command tries again
                raise SystemContainerError(f"{e}; undoing it failed too ({again}): the next pallet command on "
                                           f"{name} undoes it") from None
            if isinstance(e, OSError):
                raise SystemContainerError(f"{name}: {e.strerror or e}"
                                           f"{': ' + str(e.filename) if e.filename else ''} (undone)") from None
            raise

    def recover(self, name: str) -> str | None:
        """Finish or undo a change a killed process left (see the module doc); returns what
        was done (``"rolled back install"``...) or None."""
        try:
            j = _fs.read_json_file(self._journal_path(name), 1 << 20, "journal")
        except FileNotFoundError:
            return None
        except (OSError, PalletError):  # written whole or not at all (temp + rename): not ours
            j = None
        ours = (None, f"{name}.0", f"{name}.1")
        if not isinstance(j, dict) or j.get("from") not in ours or j.get("to") not in ours:
            raise SystemContainerError(f"{self._journal_path(name)} is not a journal pallet wrote: remove it by hand")
        op, frm, to = j.get("op"), j.get("from"), j.get("to")
        if op == "uninstall":
            self._uninstall_steps(name)
        elif op in ("install", "update", "rollback"):
            to_info = self._try_info(to) if to else None
            frm_info = self._try_info(frm) if frm else None
            if self.paths.systemd and op == "install":
                systemd.run("disable", "--now", f"{name}.service", check=False)
                systemd.run("reset-failed", f"{name}.service", check=False)
            old = to_info.get("host_files", []) if to_info else []
            new = frm_info.get("host_files", []) if frm_info else []
            hostfiles_switch(self.host, old, new, self._reader(frm, frm_info) if frm_info else None,
                             old_backup=self._backup_reader(to))
            self._set_link(name, frm)
            if j.get("created") and to:
                self._remove_deployment(to)
            if self.paths.systemd:
                systemd.run("daemon-reload", check=False)
                if frm:
                    systemd.run("try-restart", f"{name}.service", check=False)
        self._journal(name, None)
        if op in ("install", "uninstall"):
            with contextlib.suppress(OSError):  # the last one out: no directory left behind
                os.rmdir(self.paths.system_dir)
        return f"{op} of {name} was interrupted: " + ("finished" if op == "uninstall" else "undone")

    def _try_info(self, deployment: str) -> dict | None:
        """The info of a deployment that may be gone (None); a damaged one is an error."""
        try:
            return self._info(deployment)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _backup_reader(self, deployment: str | None):
        def read(path: str) -> bytes | None:
            if not deployment:
                return None
            try:
                with open(os.path.join(self._dir(deployment), "backup", path.lstrip("/")), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None

        return read

    # -- building a deployment ------------------------------------------------------------

    def _values(self, name: str, image_name: str, image_id: str, destdir: str, manifest: dict, sets: dict,
                deps: list, signal: str = "TERM") -> dict:
        for k in sets:
            if k in FORCED:
                raise UsageError(f"--set {k}: pallet sets ${k} itself")
        values = dict(sets)
        rund = values.setdefault("RUN_DIRECTORY", "/run")
        values.setdefault("STATE_DIRECTORY", "/var/lib")
        values.setdefault("CONF_DIRECTORY", "/etc")
        values.setdefault("PIDFILE", f"{rund}/container-{name}.pid")
        values.setdefault("RUNTIME", self.runtime)
        values.setdefault("UUID", _uuid())
        from ..oci.capabilities import NAMES

        values.setdefault("ALL_PROCESS_CAPABILITIES", ",\n".join(f'"{c}"' for c in NAMES) + "\n")
        defaults = manifest.get("defaultValues") or {}
        if not isinstance(defaults, dict):
            raise SystemContainerError(f"{image_name}: /exports/manifest.json: defaultValues is not an object")
        for k, v in defaults.items():
            if k in FORCED:
                continue
            values.setdefault(str(k), "" if v is None else str(v))
        values.update(unit.runtime_commands(self.runtime, self.paths.runtime_root, name, destdir, signal))
        values.update(DESTDIR=destdir, NAME=name, HOST_UID=os.getuid(), HOST_GID=os.getgid(),
                      IMAGE_NAME=image_name, IMAGE_ID=image_id, DEPENDENCIES=unit.dependency_lines(deps))
        return values

    def _build(self, name: str, number: int, image_text: str, sets: dict, rootfs: str | None, force: bool,
               old_files: list, old_deployment: str | None) -> tuple[str, dict]:
        """The deployment ``NAME.number``, staged under a hidden name (returned with its info):
        rootfs checked out, templates filled, host files planned and checked. Nothing outside
        the staging directory is changed; a failure removes it."""
        from ..storage.checkout import checkout_image

        deployment = f"{name}.{number}"
        staging = self._dir(f".staging-{deployment}-{os.urandom(4).hex()}")
        image = self.store.image(image_text)
        try:
            os.mkdir(staging, 0o755)
            t0 = time.monotonic()
            checkout = None
            if rootfs is None:
                checkout = checkout_image(self.store, image["id"], os.path.join(staging, "rootfs"))
                checkout["seconds"] = round(time.monotonic() - t0, 3)
                root = os.path.join(staging, "rootfs")
            else:
                root = rootfs
            img_cfg = _image_config(self.store, image)
            exports = _Exports(root)
            manifest = exports.manifest()
            if manifest.get("noContainerService"):
                raise SystemContainerError(f"{image_text}: manifest.json noContainerService is not supported yet")
            deps = unit.dependencies(img_cfg.get("Labels"))
            destdir = self.paths.on_host(self._dir(deployment))
            values = self._values(name, image_text, image["id"], destdir, manifest, sets, deps,
                                  unit.stop_signal(img_cfg.get("StopSignal")))

            config = exports.config(values, img_cfg, name, root, rootfs)
            service = exports.text("service.template")
            if service is None:
                service = unit.DEFAULT_SERVICE
            else:
                service = unit.add_dependencies(service, deps)
            service = template.substitute(service, values, "/exports/service.template")
            tmpfiles = exports.text("tmpfiles.template")
            if tmpfiles is not None:
                tmpfiles = template.substitute(tmpfiles, values, "/exports/tmpfiles.template")
            renames = {}
            for k, v in (manifest.get("renameFiles") or {}).items():
                renames[hostfiles.check_host_path(str(k), "renameFiles")] = template.substitute(
                    str(v), values, f"/exports/manifest.json renameFiles[{k}]")

            _fs.write_atomic(os.path.join(staging, "config.json"), json.dumps(config, indent=2).encode() + b"\n")
            files = []
            svc_bytes = service.encode()
            _fs.write_atomic(os.path.join(staging, f"{name}.service"), svc_bytes)
            files.append({"path": f"{self.paths.unit_dir}/{name}.service", "kind": "file", "role": "unit",
                          "sha256": hostfiles.sha256(svc_bytes), "mode": 0o644, "source": f"{name}.service"})
            if tmpfiles is not None:
                tb = tmpfiles.encode()
                _fs.write_atomic(os.path.join(staging, "tmpfiles.conf"), tb)
                files.append({"path": f"{self.paths.tmpfiles_dir}/pallet-{name}.conf", "kind": "file",
                              "role": "tmpfiles", "sha256": hostfiles.sha256(tb), "mode": 0o644,
                              "source": "tmpfiles.conf"})
            files += hostfiles.walk_hostfs(root, renames)
            self._check_conflicts(files, old_files, force, staging, old_deployment)
            info = {"name": name, "deployment": number, "image": image_text, "image_id": image["id"],
                    "image_digest": image.get("digest"), "values": {k: str(v) for k, v in values.items()},
                    "set": sets, "rootfs": rootfs, "host_files": files, "checkout": checkout,
                    "created": _now()}
            _fs.write_atomic(os.path.join(staging, "info.json"), json.dumps(info, indent=1).encode())
            return staging, info
        except BaseException as e:
            from ..storage.records import rmtree

            rmtree(staging)
            if isinstance(e, OSError):
                raise SystemContainerError(f"installing {name}: {e.strerror or e}"
                                           f"{': ' + str(e.filename) if e.filename else ''}") from None
            raise

    def _check_conflicts(self, files: list, old_files: list, force: bool, staging: str,
                         old_deployment: str | None) -> None:
        """Refuse (unless ``force``) a host file that exists and is not this container's, and
        always one a Debian package ships (also with ``force``, which only overwrites after
        saving the original in ``backup/``, put back at removal)."""
        ours = {r["path"]: r for r in old_files}
        mine = self.paths.on_host(self.paths.system_dir)
        for r in files:  # never into pallet's own state
            if (r["path"] + "/").startswith((mine + "/", "/run/pallet/")):
                raise hostfiles.HostFileConflict(f"{r['path']}: the image may not install files into pallet's "
                                                 f"own directories ({mine}, /run/pallet)")
        seen = set()
        new_paths = []
        for r in files:
            if r["path"] in seen:
                raise SystemContainerError(f"{r['path']} is installed twice (check renameFiles)")
            seen.add(r["path"])
            if r["kind"] != "dir" and r["path"] not in ours:
                new_paths.append(r["path"])
        owners = hostfiles.dpkg_owner(self.paths.host_root, self.paths.dpkg_admindir, new_paths)
        for r in files:
            old = ours.get(r["path"])
            if r["kind"] == "dir":  # made by this container (removed with it, when empty) or not
                r["created"] = bool(old.get("created")) if old else self.host.state(r)[0] == "missing"
                continue
            if old is not None:
                if old.get("backup"):  # carry the original forward
                    data = self._backup_reader(old_deployment)(r["path"])
                    if data is not None:
                        self._save_backup(staging, r, data)
                continue
            kind, _ = self.host.state(r)
            owner = owners.get(r["path"])
            if kind == "missing" and owner is None:
                continue
            if kind == "dir":
                raise hostfiles.HostFileConflict(f"{r['path']}: a directory on the host is in the way")
            if not force:
                why = f"the Debian package {owner} owns it" if owner else "it exists and was not installed by pallet"
                raise hostfiles.HostFileConflict(f"{r['path']}: {why} (--force to overwrite it; the original is "
                                                 "put back at uninstall)")
            if kind in ("file", "symlink"):
                if kind == "file":
                    self._save_backup(staging, r, self.host.read(r))
                else:
                    raise hostfiles.HostFileConflict(f"{r['path']}: a symlink on the host is in the way")

    @staticmethod
    def _save_backup(staging: str, rec: dict, data: bytes) -> None:
        path = os.path.join(staging, "backup", rec["path"].lstrip("/"))
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        _fs.write_atomic(path, data, 0o600)
        rec["backup"] = True

    # -- verbs ----------------------------------------------------------------------------

    def install(self, image: str, name: str, sets: dict | None = None, *, rootfs: str | None = None,
                force: bool = False, start: bool = True) -> dict:
        unit.check_name(name)
        if rootfs is not None:
            rootfs = os.path.abspath(rootfs)
            if not os.path.isdir(rootfs):
                raise UsageError(f"--rootfs {rootfs}: not a directory")
        with self._locked():
            recovered = self.recover(name)
            if self.current(name) or any(os.path.lexists(self._dir(f"{name}.{n}")) for n in (0, 1)):
                raise SystemContainerError(f"{name} is already installed (pallet containers update {name}, or "
                                           f"pallet uninstall {name} first)")
            unit_rec = {"path": f"{self.paths.unit_dir}/{name}.service", "kind": "file"}
            if self.host.state(unit_rec)[0] != "missing":
                raise SystemContainerError(f"{unit_rec['path']} exists and was not installed by pallet: choose "
                                           "another --name")
            os.makedirs(self.paths.system_dir, 0o755, exist_ok=True)
            staging, info = self._build(name, 0, image, sets or {}, rootfs, force, [], None)
            deployment = f"{name}.0"
            self._journal(name, {"op": "install", "from": None, "to": deployment, "created": True})
            _step("journal")
            with self._undone_on_error(name):
                os.rename(staging, self._dir(deployment))
                _fs.fsync_dir(self.paths.system_dir)
                _step("deployment")
                self._apply(name, deployment, info, [], None)
                _step("host-files")
                self._set_link(name, deployment)
                _step("link")
                started = self._systemd_install(name, start)
                _step("systemd")
            self._journal(name, None)
        return {"name": name, "deployment": deployment, "image": image, "image_id": info["image_id"],
                "started": started, "checkout": info["checkout"], "recovered": recovered}

    def _apply(self, name: str, deployment: str, info: dict, old_files: list, old_deployment: str | None) -> list:
        kept = hostfiles_switch(self.host, old_files, info["host_files"], self._reader(deployment, info),
                                old_backup=self._backup_reader(old_deployment))
        if self.paths.host_root == "/" and systemd.have("systemd-tmpfiles") and \
                any(r["role"] == "tmpfiles" for r in info["host_files"] if r["kind"] == "file"):
            systemd.tmpfiles("--create", f"{self.paths.tmpfiles_dir}/pallet-{name}.conf")
        return kept

    def _systemd_install(self, name: str, start: bool) -> str:
        """Reload and enable (and start) the unit where systemd runs; which of these happened."""
        if not self.paths.systemd:
            return "not started: systemd is not PID 1 here (the unit and its files are written)"
        systemd.run("daemon-reload")
        svc = f"{name}.service"
        if not start:
            systemd.run("enable", svc)
            return "enabled, not started (--no-start)"
        try:
            systemd.run("enable", "--now", svc)
        except PalletError as e:
            raise SystemContainerError(f"{svc} did not start ({e}); the install was undone") from None
        return "started"

    def update(self, name: str, sets: dict | None = None, rebase: str | None = None, force: bool = False) -> dict:
        with self._locked():
            self.recover(name)
            cur = self.current(name)
            if cur is None:
                raise NotFound(f"{name} is not installed as a system container")
            info = self._info(cur)
            number = 1 - int(cur.rpartition(".")[2])
            values = dict(info.get("set") or {})
            values.update(sets or {})
            image = rebase or info["image"]
            staging, new_info = self._build(name, number, image, values, info.get("rootfs"), force,
                                            info.get("host_files", []), cur)
            new = f"{name}.{number}"
            self._journal(name, {"op": "update", "from": cur, "to": new, "created": True})
            _step("journal")
            with self._undone_on_error(name):
                self._remove_deployment(new)  # the one before the previous: gone with this update
                os.rename(staging, self._dir(new))
                _fs.fsync_dir(self.paths.system_dir)
                _step("deployment")
                kept = self._apply(name, new, new_info, info.get("host_files", []), cur)
                _step("host-files")
                self._set_link(name, new)
                _step("link")
                restarted = self._restart(name)
                _step("systemd")
            self._journal(name, None)
        return {"name": name, "deployment": new, "previous": cur, "image": image, "image_id": new_info["image_id"],
                "kept": kept, "restarted": restarted}

    def rollback(self, name: str) -> dict:
        with self._locked():
            self.recover(name)
            cur = self.current(name)
            if cur is None:
                raise NotFound(f"{name} is not installed as a system container")
            other = f"{name}.{1 - int(cur.rpartition('.')[2])}"
            if not os.path.isdir(self._dir(other)):
                raise SystemContainerError(f"{name} has no previous deployment to roll back to")
            info, other_info = self._info(cur), self._info(other)
            self._journal(name, {"op": "rollback", "from": cur, "to": other, "created": False})
            _step("journal")
            with self._undone_on_error(name):
                kept = self._apply(name, other, other_info, info.get("host_files", []), cur)
                _step("host-files")
                self._set_link(name, other)
                _step("link")
                restarted = self._restart(name)
            self._journal(name, None)
        return {"name": name, "deployment": other, "previous": cur, "image": other_info["image"], "kept": kept,
                "restarted": restarted}

    def _restart(self, name: str) -> bool:
        if not self.paths.systemd:
            return False
        systemd.run("daemon-reload")
        systemd.run("try-restart", f"{name}.service")
        return True

    def uninstall(self, name: str) -> dict:
        unit.check_name(name)
        with self._locked():
            self.recover(name)
            if self.current(name) is None and not any(os.path.lexists(self._dir(f"{name}.{n}")) for n in (0, 1)):
                raise NotFound(f"{name} is not installed as a system container")
            cur = self.current(name)
            if cur:
                self._try_info(cur)  # a damaged record is refused before anything changes
            self._journal(name, {"op": "uninstall", "from": cur, "to": None})
            _step("journal")
            kept = self._uninstall_steps(name)
            self._journal(name, None)
            with contextlib.suppress(OSError):  # the last one out: no directory left behind
                os.rmdir(self.paths.system_dir)
        return {"name": name, "kept": kept}

    def _uninstall_steps(self, name: str) -> list:
        """Stop, disable, remove the host files (keeping those the user changed), the link and
        the deployments. Idempotent: a recovery runs it again from the top."""
        cur = self.current(name)
        if cur is None:
            cur = next((f"{name}.{n}" for n in (0, 1) if os.path.isdir(self._dir(f"{name}.{n}"))), None)
        info = self._try_info(cur) if cur else None
        files = info.get("host_files", []) if info else []
        if self.paths.systemd:
            systemd.run("disable", "--now", f"{name}.service", check=False)
            systemd.run("reset-failed", f"{name}.service", check=False)  # nothing of it left in systemd
        if self.paths.host_root == "/" and systemd.have("systemd-tmpfiles") and \
                any(r.get("role") == "tmpfiles" and self.host.is_ours(r) for r in files):
            systemd.tmpfiles("--remove", f"{self.paths.tmpfiles_dir}/pallet-{name}.conf")
        kept = hostfiles_switch(self.host, files, [], None, old_backup=self._backup_reader(cur))
        _step("host-files")
        self._set_link(name, None)
        for n in (0, 1):
            self._remove_deployment(f"{name}.{n}")
        if self.paths.systemd:
            systemd.run("daemon-reload", check=False)
        return kept

    def list(self, all_deployments: bool = False) -> list[dict]:
        """The installed system containers (changes a killed process left are recovered first)."""
        out = []
        if not os.path.isdir(self.paths.system_dir):
            return out
        with self._locked():
            for n in os.listdir(self.paths.system_dir):
                if n.startswith(".journal-") and n.endswith(".json"):
                    self.recover(n[len(".journal-"):-len(".json")])
            if not os.path.isdir(self.paths.system_dir):  # an install undone was the only one
                return out
            names = sorted(os.listdir(self.paths.system_dir))
        for n in names:
            if n.startswith(".") or not os.path.islink(self._dir(n)):
                continue
            try:
                cur = self.current(n)
            except PalletError:
                continue
            for d in (f"{n}.0", f"{n}.1"):
                if d != cur and not all_deployments:
                    continue
                info = self._try_info(d)
                if info is None:
                    continue
                state = "-"
                if d == cur:
                    state = systemd.state(f"{n}.service") if self.paths.systemd else "not managed (no systemd)"
                out.append({"name": n, "image": info.get("image"), "image_id": info.get("image_id"),
                            "deployment": int(d.rpartition(".")[2]), "current": d == cur,
                            "path": self._dir(d), "created": info.get("created"), "state": state})
        return out


def _record_ok(r, deployment: str) -> bool:
    if not isinstance(r, dict) or r.get("kind") not in ("file", "dir", "symlink"):
        return False
    try:
        if hostfiles.check_host_path(r.get("path"), "record") != r["path"]:
            return False
    except UsageError:
        return False
    if r["kind"] == "dir":
        return True
    if r.get("role") == "hostfs":
        ok = r["kind"] == "symlink" or str(r.get("source", "")).startswith("/exports/hostfs/")
    else:
        ok = r.get("role") in ("unit", "tmpfiles") and r.get("source") in (
            f"{deployment.rpartition('.')[0]}.service", "tmpfiles.conf")
    return ok and (r["kind"] != "file" or isinstance(r.get("sha256"), str)) and \
        (r["kind"] != "symlink" or isinstance(r.get("target"), str))


def hostfiles_switch(host: hostfiles.Host, old: list, new: list, read_new, *, old_backup) -> list[str]:
    """Make the host's files those of ``new`` (records) where they are ``old``'s: write what
    differs, remove what ``old`` had and ``new`` has not (putting back a saved original), keep
    (and return) the paths whose content the user changed. Running it twice is harmless, and
    so is running it on a host where it stopped half-way."""
    kept: list[str] = []
    old_by_path = {r["path"]: r for r in old}
    new_paths = {r["path"] for r in new}
    for r in new:
        if r["kind"] == "dir":
            host.mkdir(r["path"], r.get("mode", 0o755))
    for r in new:
        if r["kind"] == "dir" or host.is_ours(r):
            continue
        o = old_by_path.get(r["path"])
        if o is not None and r.get("role") == "hostfs" and host.state(r)[0] != "missing" and not host.is_ours(o):
            kept.append(r["path"])  # the user changed the old one: theirs stays
            continue
        host.write(r, read_new(r))
        _step("host-file")
    # removals: files first, then directories deepest first (only when empty: rmdir)
    gone = [r for r in old if r["path"] not in new_paths]
    for r in gone:
        if r["kind"] == "dir":
            continue
        if host.state(r)[0] == "missing":
            continue
        if not host.is_ours(r):
            kept.append(r["path"])
            continue
        original = old_backup(r["path"]) if r.get("backup") else None
        if original is not None:
            host.write(dict(r, kind="file"), original)
        else:
            host.remove(r)
    for r in sorted((r for r in gone if r["kind"] == "dir" and r.get("created")),
                    key=lambda r: -r["path"].count("/")):
        host.remove(r)
    return kept


class _Exports:
    """The image's ``/exports`` directory, read by fd inside its root."""

    def __init__(self, root: str):
        self.root = root

    def text(self, name: str) -> str | None:
        data = _rootfs.read_in_root(self.root, f"/exports/{name}", 4 << 20)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SystemContainerError(f"/exports/{name} is not UTF-8 text") from None

    def manifest(self) -> dict:
        text = self.text("manifest.json")
        if text is None:
            return {}
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise SystemContainerError(f"/exports/manifest.json is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise SystemContainerError("/exports/manifest.json is not a JSON object")
        return doc

    def config(self, values: dict, img_cfg: dict, name: str, root: str, rootfs: str | None) -> dict:
        text = self.text("config.json.template")
        if text is None:
            doc = default_config(img_cfg, name, root)
        else:
            filled = template.substitute(text, values, "/exports/config.json.template")
            try:
                doc = json.loads(filled)
            except ValueError as e:
                raise SystemContainerError(f"/exports/config.json.template is not JSON once filled in: {e}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("process"), dict):
                raise SystemContainerError("/exports/config.json.template: not a runtime config (no process)")
        # the rootfs shares its files with the store: it is never writable
        doc["root"] = {"path": rootfs or "rootfs", "readonly": True}
        return doc


def default_config(img_cfg: dict, name: str, root: str) -> dict:
    """A runtime config made from the image config as ``run`` makes one (oci.runtime_spec), for
    a service: the host's network (no network namespace), a read-only root with tmpfs on
    ``/run`` and ``/tmp``, the user resolved in the image's ``/etc/passwd``."""
    from ..oci import runtime_spec as rs
    from ..oci.users import lookup, parse_db

    def resolve(spec: str):
        def db(n):
            data = _rootfs.read_in_root(root, f"/etc/{n}", 4 << 20)
            return parse_db(data.decode("utf-8", "replace")) if data else []

        return lookup(spec, db("passwd"), db("group"), SystemContainerError)

    mounts = (rs.Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("rprivate", "nosuid", "noexec", "nodev", "relatime",
                                                                "ro")),
              rs.Mount.tmpfs("/run", options=("rw", "nosuid", "nodev", "mode=755")),
              rs.Mount.tmpfs("/tmp", options=("rw", "nosuid", "nodev", "mode=1777")))
    o = rs.SpecOptions(rootfs="rootfs", env=("container=pallet",), hostname=name, mounts=mounts,
                       readonly_rootfs=True,
                       namespaces=tuple(rs.Namespace(t) for t in ("pid", "ipc", "uts", "mount")))
    try:
        return rs.generate(o, img_cfg, resolve_user=resolve)
    except UsageError as e:
        raise SystemContainerError(f"the image cannot run as a service: {e}") from None


def _image_config(store, image: dict) -> dict:
    from ..storage.info import run_config

    try:
        return run_config(store, image)
    except PalletError:
        raise SystemContainerError(f"image {str(image.get('id', '?'))[:12]}: its config cannot be read") from None


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
