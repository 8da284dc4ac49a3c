"""RUN: a command in a working container through an OCI runtime's command line.

We write the bundle's ``config.json`` ourselves (the working container's mount is the root,
host network unless ``network="none"``, ``/etc/hosts`` and ``/etc/resolv.conf`` bound read-only
from temp files so they never land in a layer) and call ``RUNTIME run --bundle DIR ID``,
whose exit status is the command's. Mount points the runtime had to create in the root (a
volume's target, ``/etc/hosts`` in an image without one) are removed afterwards, so they do
not end up in the layer either.
"""

from __future__ import annotations

import os
import shutil
import stat as _stat
import subprocess
import sys

from .._std import json
from .. import _rootfs
from ..errors import BuildError

_runtime_cache: dict[str, str] = {}


def default_runtime() -> str:
    """pallet-runtime when its console script is installed and answers, else runc."""
    if "default" in _runtime_cache:
        return _runtime_cache["default"]
    env = os.environ.get("PALLET_BUILD_RUNTIME")
    choice = env or "runc"
    if not env:
        exe = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
        if os.path.exists(exe):
            try:
                p = subprocess.run([exe, "features"], capture_output=True, timeout=10)
                if p.returncode == 0 and p.stdout.strip().startswith(b"{"):
                    choice = exe
            except (OSError, subprocess.TimeoutExpired):
                pass
    _runtime_cache["default"] = choice
    return choice


def runtime_path(name: str | None) -> str:
    name = name or default_runtime()
    if "/" in name:
        if not os.access(name, os.X_OK):
            raise BuildError(f"the runtime {name} is not an executable file")
        return name
    if name == "pallet-runtime":
        exe = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
        if os.path.exists(exe):
            return exe
    found = shutil.which(name)
    if not found:
        raise BuildError(f"the OCI runtime {name!r} is not installed (use --runtime NAME|PATH)")
    return found


class RunOptions:
    __slots__ = ("env", "cwd", "user", "network", "mounts", "hostname", "runtime", "state_root", "stdin",
                 "stdout", "stderr", "runroot", "graphroot", "network_config_dir")

    def __init__(self, *, env: list[str] | None = None, cwd: str = "/", user: tuple = (0, 0, []),
                 network: str = "host", mounts: list[dict] | None = None, hostname: str = "",
                 runtime: str | None = None, state_root: str | None = None, stdin=None, stdout=None, stderr=None,
                 runroot: str | None = None, graphroot: str | None = None, network_config_dir: str | None = None):
        self.env = list(env or [])
        self.cwd = cwd or "/"
        self.user = user
        self.network = network or "host"
        self.mounts = list(mounts or [])
        self.hostname = hostname
        self.runtime = runtime
        self.state_root = state_root
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        #: for a network other than host/none (builder/network.py): the store's run root and
        #: graph root, and the networks' directory (None: the containers' default)
        self.runroot = runroot
        self.graphroot = graphroot
        self.network_config_dir = network_config_dir


def spec(rootfs: str, argv: list[str], o: RunOptions, hosts: str, resolv: str, netns: str | None = None) -> dict:
    """The bundle's config, from the one runtime-spec generator (``oci.runtime_spec``): buildah's
    capabilities (effective only for root), masked and read-only paths, a network namespace
    unless host networking (``netns``: the attached one to join), ``/etc/hosts`` and
    ``/etc/resolv.conf`` bound read-only."""
    from ..oci import runtime_spec as rs

    uid, gid, extra = o.user
    namespaces = [rs.Namespace(t) for t in ("pid", "ipc", "uts", "mount")]
    if o.network != "host":
        namespaces.append(rs.Namespace("network", netns))
    mounts = [rs.Mount.bind(hosts, "/etc/hosts", readonly=True), rs.Mount.bind(resolv, "/etc/resolv.conf", readonly=True)]
    mounts += [rs.Mount(m["destination"], m.get("type"), m.get("source"), m.get("options") or ()) for m in o.mounts]
    options = rs.SpecOptions(rootfs=rootfs, command=argv, env=o.env, user=rs.User(uid, gid, tuple(extra)), workdir=o.cwd,
                             hostname=o.hostname, mounts=mounts, namespaces=namespaces)
    return rs.generate(options)


def _hosts_file(path: str, hostname: str, host_net: bool, ips=()) -> None:
    from .._fs import text_lines

    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if host_net:
        lines = text_lines("/etc/hosts", lines)
    lines += [f"{ip}\t{hostname}" for ip in ips] or [f"127.0.1.1\t{hostname}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _resolv_file(path: str, host_net: bool, attached=None) -> None:
    """The host's resolv.conf with the host's network; on a network, the network's DNS servers
    and the host's nameservers that are not on its loopback (unreachable from the namespace)."""
    text = ""
    if host_net or attached is not None:
        try:
            with open("/etc/resolv.conf") as f:
                text = f.read()
        except OSError:
            text = ""
    if attached is not None:
        lines = [f"nameserver {d}" for d in attached.dns]
        for line in text.splitlines():
            w = line.split()
            if w[:1] == ["nameserver"] and len(w) > 1 and (w[1].startswith("127.") or w[1] == "::1"):
                continue
            lines.append(line)
        text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)


def run(rootfs: str, argv: list[str], o: RunOptions, scratch_dir: str) -> int:
    """Run ``argv`` with ``rootfs`` as its root; returns its exit status."""
    if not argv:
        raise BuildError("nothing to run: no command given")
    runtime = runtime_path(o.runtime)
    bundle = os.path.join(scratch_dir, "bundle-" + os.urandom(4).hex())
    os.makedirs(bundle, 0o700)
    cid = "pallet-build-" + os.urandom(8).hex()
    attached = None
    try:
        if o.network not in ("host", "none"):
            from .network import Attached

            attached = Attached(o.network, o.runroot or scratch_dir, o.network_config_dir, o.graphroot,
                                o.hostname or cid).__enter__()
        hosts = os.path.join(bundle, "hosts")
        resolv = os.path.join(bundle, "resolv.conf")
        _hosts_file(hosts, o.hostname or "pallet", o.network == "host", attached.ips if attached else ())
        _resolv_file(resolv, o.network == "host", attached)
        doc = spec(rootfs, argv, o, hosts, resolv, attached.path if attached else None)
        # stubs for what is not image content go again afterwards; for a RUN --mount's target
        # the parent directories stay (0755), and for a build volume (-v) the mount point
        # itself too (an empty directory or file), as buildah leaves them. All made and
        # removed by fd inside the root (pallet._rootfs), never through a path string
        root_fd = _rootfs.open_root(rootfs)
        created: list = []
        try:
            for m in o.mounts:
                if m.get("keep"):
                    _make_parents(root_fd, m["destination"])
                if m.get("keep") == "target":
                    _make_target(root_fd, m["destination"], os.path.isdir(m["source"]))
            created = _missing_mountpoints(root_fd, doc["mounts"])
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(doc, f)
            cmd = [runtime]
            if o.state_root:
                os.makedirs(o.state_root, 0o700, exist_ok=True)
                cmd += ["--root", o.state_root]
            try:
                p = subprocess.run(cmd + ["run", "--bundle", bundle, cid], cwd=bundle,
                                   stdin=o.stdin if o.stdin is not None else subprocess.DEVNULL,
                                   stdout=o.stdout, stderr=o.stderr)
            except OSError as e:
                raise BuildError(f"starting the runtime {runtime}: {e.strerror}") from None
            finally:
                subprocess.run(cmd + ["delete", "--force", cid], capture_output=True)
                _remove_created(created)
        finally:
            for pfd, _rel in created:
                os.close(pfd)
            os.close(root_fd)
        return p.returncode
    finally:
        try:
            if attached is not None:
                attached.__exit__(None, None, None)
        finally:
            shutil.rmtree(bundle, ignore_errors=True)


def _in_root(what: str, dest: str, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise BuildError(f"{what} {dest}: cannot make it in the container's root filesystem: "
                         f"{e.strerror or e}") from None


def _make_parents(root_fd: int, dest: str) -> None:
    """The directories above the mount target ``dest`` (0755), made by fd inside the root."""
    parent = "/".join(p for p in dest.split("/") if p).rpartition("/")[0]
    if parent:
        os.close(_in_root("the mount target", dest, _rootfs.mkdir_all_in_root, root_fd, parent, 0o755))


def _make_target(root_fd: int, dest: str, is_dir: bool) -> None:
    """The mount target ``dest`` itself: a directory (0755) or an empty file (0644)."""
    try:  # whatever is there already (a file where a directory is bound): the runtime decides
        os.close(_rootfs.open_in_root(root_fd, dest))
        return
    except OSError:
        pass
    make = _rootfs.mkdir_all_in_root if is_dir else _rootfs.mkfile_in_root
    os.close(_in_root("the mount target", dest, make, root_fd, dest))


def _missing_mountpoints(root_fd: int, mounts: list[dict]) -> list[tuple[int, tuple[str, ...]]]:
    """What the runtime will create in the root for these mounts: ``(fd, names)`` pairs, an
    ``O_PATH`` fd of the deepest directory that exists (caller closes) and the chain of
    missing names below it, each missing path once."""
    out: list = []
    seen: set = set()
    for m in mounts:
        parts = [p for p in m["destination"].split("/") if p and p != "."]
        if ".." in parts:
            continue  # the spec generator refuses these; nothing to tidy
        fd, i = None, len(parts)
        while i >= 0:  # the longest prefix that exists, as the runtime will look it up
            try:
                fd = _rootfs.open_in_root(root_fd, "/".join(parts[:i]) or ".")
                break
            except OSError:
                i -= 1
        if fd is None or i == len(parts):
            if fd is not None:
                os.close(fd)
            continue
        key = (os.readlink(_rootfs.fd_path(fd)), tuple(parts[i:]))
        if key in seen or not _stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            continue
        seen.add(key)
        out.append((fd, tuple(parts[i:])))
    return out


def _remove_created(created: list[tuple[int, tuple[str, ...]]]) -> None:
    """Remove the mount points the runtime made (empty directories, empty files), deepest
    first, each looked up below its existing parent's fd following no symlink (a RUN step
    that replaced one with a link to elsewhere has that link left alone, not followed)."""
    todo = sorted(((pfd, names[:k]) for pfd, names in created for k in range(1, len(names) + 1)),
                  key=lambda t: len(t[1]), reverse=True)
    for pfd, names in todo:
        try:
            dfd = _rootfs.open_beneath(pfd, "/".join(names[:-1]), os.O_PATH | os.O_DIRECTORY) \
                if len(names) > 1 else os.dup(pfd)
        except OSError:
            continue
        try:
            st = os.stat(names[-1], dir_fd=dfd, follow_symlinks=False)
            if _stat.S_ISDIR(st.st_mode):
                os.rmdir(names[-1], dir_fd=dfd)
            elif _stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(names[-1], dir_fd=dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
