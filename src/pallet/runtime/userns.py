"""``create`` with a user namespace (only imported then): an intermediate child makes the user
namespace (so it owns the container's other namespaces), the runtime writes its id maps, the
child forks init and exits; before the namespace exists the rootfs and the bind mounts' sources
are cloned (``open_tree``) while the host's root can still reach them, id-mapped where asked."""

import os

from ..errors import OCIRuntimeError
from .container import set_time_offsets


def fork_via_userns(config, nss, join, ctx, chan):
    """An intermediate child makes the user namespace; we map ids; it forks init."""
    from .._std import syscalls as _sys
    from .cgroups import fork_in
    from .spec import CLONE_FLAGS

    lx = config.get("linux") or {}
    ctx["wait_go"] = True
    mid, placed = fork_in(ctx["cgroups"])
    if mid == 0:
        try:
            try:  # cgroups first: inside the user namespace the host's cgroupfs is not ours to write
                ctx["cgroups"].join_self(placed)
            except Exception as e:
                ctx["chan"].send(f"error {e}")
                os._exit(1)
            fds = dict(join)
            # namespaces given by path are joined before the user namespace exists, as runc
            # does: once inside it, joining one the host's user namespace owns is refused
            for t, fd in ctx["join"]:
                _sys.setns(fd, CLONE_FLAGS[t])
            ctx["join"] = []
            if "mount" in nss and nss["mount"] is None:  # a new one: made inside the user namespace
                ctx["trees"] = clone_sources(config, ctx["rootfs"], ctx["bundle"])
            if "user" in fds:
                _sys.setns(fds["user"], CLONE_FLAGS["user"])
            else:
                _sys.unshare(CLONE_FLAGS["user"])
                ctx["chan"].send("maps")
                if ctx["chan"].recv() != "ok":
                    os._exit(1)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            for t in ("pid", "time"):
                if t in nss:
                    if t in fds:
                        _sys.setns(fds[t], CLONE_FLAGS[t])
                    else:
                        _sys.unshare(CLONE_FLAGS[t])
                        if t == "time" and lx.get("timeOffsets"):
                            # setresuid made us non-dumpable: /proc/self is the host root's until
                            dumpable = _sys.prctl(_sys.PR_GET_DUMPABLE)
                            _sys.prctl(_sys.PR_SET_DUMPABLE, 1)
                            set_time_offsets(lx["timeOffsets"])
                            _sys.prctl(_sys.PR_SET_DUMPABLE, dumpable)
            pid = os.fork()
            if pid == 0:
                from .init import main  # loaded by _create before the fork

                main(ctx)
            ctx["chan"].send(f"pid {pid}")
            os._exit(0)
        except BaseException as e:
            try:
                ctx["chan"].send(f"error user namespace: {getattr(e, 'strerror', None) or e}")
            finally:
                os._exit(1)
    try:
        while True:
            msg = chan.recv_from_init("container init died while its user namespace was set up")
            if msg == "maps":
                for kind in ("uid", "gid"):
                    lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                                    for m in lx.get(f"{kind}Mappings") or ())
                    try:
                        with open(f"/proc/{mid}/{kind}_map", "w") as f:
                            f.write(lines)
                    except OSError as e:
                        raise OCIRuntimeError(f"linux.{kind}Mappings: cannot write {kind}_map: {e.strerror}") \
                            from None
                chan.send("ok")
            elif msg.startswith("pid "):
                pid = int(msg[4:])
                # init arms PDEATHSIG when it reads "go": its parent, the intermediate child,
                # must be gone by then, or its exit would kill init
                os.waitpid(mid, 0)
                mid = None
                chan.send("go")
                return pid
    finally:
        if mid is not None:
            os.waitpid(mid, 0)


def clone_sources(config, rootfs, bundle):
    """Before a new user namespace: detached clones of the rootfs and of each bind mount's
    source (``{"rootfs": fd, index: fd}``), and the rootfs as our cwd (init's after it makes
    its mount namespace: where the rootfs' clone goes). The mapped root may not be able to
    walk their paths (a store or a userdata directory of mode 0700); runc passes such mounts'
    sources as fds opened before the user namespace too. A source that cannot be cloned is
    left to init, whose error names the mount."""
    from .._std import syscalls as _sys
    from .spec import MS_BIND, MS_REC, parse_mount_options

    os.chdir(rootfs)
    trees = {"rootfs": _sys.open_tree(rootfs)}
    for i, m in enumerate(config.get("mounts") or ()):
        flags = parse_mount_options(m.get("options") or ())[0]
        if m.get("type") == "bind" or flags & MS_BIND:
            src = m.get("source") or ""
            if not src.startswith("/"):
                src = bundle + "/" + src
            try:
                trees[i] = _sys.open_tree(src, recursive=bool(flags & MS_REC))
            except OSError as e:
                if m.get("uidMappings"):  # never bound unmapped instead
                    raise OCIRuntimeError(f"mounts[{i}]: {src}: {e.strerror}") from None
                continue
            if m.get("uidMappings"):
                idmap(trees[i], m, i, bool(flags & MS_REC))
    return trees


def idmap(tree, mount, i, recursive):
    """``mounts[i].uidMappings``/``gidMappings``: the clone's ids mapped through a user
    namespace holding them (a file its owner's id k shows as the host id k maps to)."""
    from .._std import syscalls as _sys
    from .._userns import userns_fd

    fd = userns_fd([(m["containerID"], m["hostID"], m["size"]) for m in mount["uidMappings"]],
                   [(m["containerID"], m["hostID"], m["size"]) for m in mount["gidMappings"]], OCIRuntimeError)
    try:
        _sys.mount_setattr("", _sys.MOUNT_ATTR_IDMAP, 0, recursive=recursive, dirfd=tree, userns_fd=fd)
    except OSError as e:
        raise OCIRuntimeError(f"mounts[{i}].uidMappings: the kernel cannot id-map {mount.get('source')}: "
                              f"{e.strerror}") from None
    finally:
        os.close(fd)
