"""User namespaces for ``run``/``create`` as podman 4.3 gives them to root: ``--uidmap``,
``--gidmap``, ``--userns=host|auto[:size=N]|ns:PATH|container:ID`` and containers.conf's ``userns``.

:func:`parse` checks the flags into a plain value kept in the container's record
(``meta["extra"]["userns"]``): ``None`` (the host's user namespace), ``{"mode": "private",
"uid": MAP, "gid": MAP}``, ``{"mode": "auto", "size": N|None}`` (its ranges chosen by
:func:`allocate` once the image is known), ``{"mode": "ns", "path": PATH}`` or ``{"mode":
"container", "target": ID}`` (its maps copied at create, its namespace joined at start); a ``MAP`` is
``[[container_id, host_id, size], ...]``. The store mounts the image's layers id-mapped to the
container's map (``storage/idmapped.py``), so files owned by root in the image are root's
inside and the mapped host uid's outside.

Not supported, as podman refuses them for root: ``keep-id`` and ``nomap`` (rootless only).
Not supported yet: ``auto``'s ``uidmapping=``/``gidmapping=``.
"""

from __future__ import annotations

import os

from ..errors import ContainerError, UsageError

MAX_ID = 1 << 32
#: containers/storage's AutoUserNsMinSize: the least ``auto`` gives when it estimates
AUTO_MIN_SIZE = 1024
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


def parse_map(text: str, flag: str) -> list[list[int]]:
    """``CONTAINER:HOST:SIZE[,...]`` -> ``[[container, host, size], ...]``."""
    out = []
    for part in text.split(","):
        nums = part.split(":")
        if len(nums) != 3 or not all(n.isascii() and n.isdigit() for n in nums):
            raise UsageError(f"invalid {flag} {text!r}: want CONTAINER_ID:HOST_ID:SIZE")
        c, h, n = (int(x, 10) for x in nums)
        if n == 0:
            raise UsageError(f"invalid {flag} {text!r}: the size must not be 0")
        if c + n > MAX_ID or h + n > MAX_ID:
            raise UsageError(f"invalid {flag} {text!r}: ids out of range (0..4294967295)")
        out.append([c, h, n])
    return out


def check_map(mapping: list[list[int]], flag: str) -> None:
    """The kernel's rules for a map, as one line naming the flag: no two ranges may overlap on
    either side, at most 340 lines."""
    if len(mapping) > 340:
        raise UsageError(f"invalid {flag}: {len(mapping)} ranges, the kernel takes at most 340")
    for side, name in ((0, "container"), (1, "host")):
        spans = sorted((m[side], m[side] + m[2] - 1, m) for m in mapping)
        for (a0, a1, _), (b0, b1, m) in zip(spans, spans[1:]):
            if b0 <= a1:  # podman's words, then which ids
                raise UsageError(f"invalid {flag}: the specified mapping {':'.join(map(str, m))} conflicts with "
                                 f"other mappings ({name} ids {a0}-{a1} and {b0}-{b1} overlap)")


def parse(userns: str | None, uidmaps, gidmaps, conf) -> dict | None:
    """The checked user namespace of ``--userns``/``--uidmap``/``--gidmap`` (containers.conf's
    ``userns`` when no flag is given)."""
    from_conf = userns is None and not (uidmaps or gidmaps)
    if userns is not None and (uidmaps or gidmaps):  # podman: any --userns, even host or ""
        raise UsageError("--userns and --uidmap/--gidmap/--subuidname/--subgidname are mutually exclusive")
    if userns is None:
        userns = "" if (uidmaps or gidmaps) else conf.get("userns", "") or ""
    try:
        return _parse(userns, list(uidmaps), list(gidmaps))
    except UsageError as e:
        if from_conf:
            raise conf.bad("userns", f"{userns!r}: {e}") from None
        raise


def _parse(userns: str, uidmaps: list, gidmaps: list) -> dict | None:
    if uidmaps or gidmaps:
        uid = [m for t in uidmaps for m in parse_map(t, "--uidmap")]
        gid = [m for t in gidmaps for m in parse_map(t, "--gidmap")]
        uid, gid = uid or gid, gid or uid  # podman: one given, the other is the same
        check_map(uid, "--uidmap")
        check_map(gid, "--gidmap")
        return {"mode": "private", "uid": uid, "gid": gid}
    mode, _, opts = userns.partition(":")
    if mode in ("", "host") and not opts:
        return None
    if mode == "auto":
        size = None
        for o in filter(None, opts.split(",")):
            k, eq, v = o.partition("=")
            if k == "size" and eq and v.isascii() and v.isdigit() and 0 < int(v) < MAX_ID:
                size = int(v)
            elif k in ("uidmapping", "gidmapping"):
                raise UsageError(f"--userns auto: {k} is not supported by pallet yet")
            else:
                raise UsageError(f"invalid --userns {userns!r}: want auto[:size=N]")
        return {"mode": "auto", "size": size}
    if mode == "keep-id" and not opts:
        from .._userns import rootless_uid

        if rootless_uid() is not None:  # its maps are set at create (containers/rootless.py)
            return {"mode": "keep-id"}
    if mode in ("keep-id", "nomap"):  # podman 4.3's words for root
        raise UsageError(f"{mode} is only supported in rootless mode")
    if mode == "ns" and opts.startswith("/"):
        if not os.path.exists(opts):
            raise UsageError(f"cannot find specified user namespace path: {opts} does not exist")
        return {"mode": "ns", "path": opts}
    if mode == "container" and opts:  # its maps and namespace are found at create and start
        return {"mode": "container", "target": opts}
    raise UsageError(f"unrecognized namespace mode {userns} passed: want host, auto[:size=N], ns:PATH or "
                     "container:ID (keep-id and nomap are rootless only)")


def read_ns_maps(path: str) -> tuple[list, list]:
    """The maps of the user namespace at ``path`` (``/proc/PID/ns/user`` or a bind mount of
    one): read by a child that joins it (a map is shown relative to its reader)."""
    from .._std import syscalls as _sys

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"--userns ns:{path}: {e.strerror}") from None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only joins and reads
        code = 1
        try:
            os.close(r)
            _sys.setns(fd, 0x10000000)
            with open("/proc/self/uid_map") as u, open("/proc/self/gid_map") as g:
                os.write(w, (u.read() + "--\n" + g.read()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(fd)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0 or b"--\n" not in data:
        raise UsageError(f"--userns ns:{path}: not a user namespace pallet can join")
    u, _, g = data.decode().partition("--\n")
    maps = ([[int(x) for x in line.split()] for line in u.splitlines() if line.strip()],
            [[int(x) for x in line.split()] for line in g.splitlines() if line.strip()])
    if maps[0] == [[0, 0, MAX_ID - 1]]:
        raise UsageError(f"--userns ns:{path}: that is the host's user namespace (use --userns host)")
    return maps


def read_sub_ranges(path: str, user: str = "containers") -> list[tuple[int, int]]:
    """``user``'s ``(start, size)`` ranges in a subuid/subgid file (subuid(5))."""
    from .._userns import parse_sub_ranges

    out = []
    try:
        with open(path) as f:
            out = parse_sub_ranges(f, (user,))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--userns auto: reading {path}: {getattr(e, 'strerror', None) or e}") from None
    if not out:
        raise UsageError(f"--userns auto: could not find enough available IDs: no ranges for user \"{user}\" in "
                         f"{path} (podman's rule for root: add a line such as {user}:2147483647:2147483648)")
    return out


def pick(ranges: list[tuple[int, int]], used: list[tuple[int, int]], size: int, what: str) -> int:
    """The lowest start of ``size`` free ids in ``ranges`` clear of every ``used`` (start, size)."""
    spans = sorted(used)
    for start, n in sorted(ranges):
        at, end = start, start + n
        for u0, un in spans:
            if u0 + un <= at or u0 >= at + size:
                if u0 >= at + size:
                    break
                continue
            at = u0 + un
        if at + size <= end:
            return at
    raise UsageError(f"--userns auto: could not find enough available IDs: no {size} free {what}s left in the "
                     "\"containers\" ranges (other containers hold them)")


def auto_size(max_uid: int, max_gid: int) -> int:
    """containers/storage's estimate: the image's highest id plus one, at least 1024."""
    return max(AUTO_MIN_SIZE, max_uid + 1, max_gid + 1)


def allocate(size: int, in_use: list[dict], subuid: str = SUBUID, subgid: str = SUBGID) -> dict:
    """``auto``: ``size`` ids from the ``containers`` ranges of /etc/subuid and /etc/subgid,
    overlapping no other container's (``in_use``: their idmaps) on the host."""
    used_u = [(h, n) for m in in_use for _c, h, n in m.get("uid") or ()]
    used_g = [(h, n) for m in in_use for _c, h, n in m.get("gid") or ()]
    u = pick(read_sub_ranges(subuid), used_u, size, "uid")
    g = pick(read_sub_ranges(subgid), used_g, size, "gid")
    return {"uid": [[0, u, size]], "gid": [[0, g, size]]}


def covers(mapping: list, cid: int) -> bool:
    return any(c <= cid < c + n for c, _h, n in mapping)


def check_user(idmap: dict, uid: int, gid: int, user_spec: str) -> None:
    """The container's user must be in the namespace (else the runtime's setresuid fails late)."""
    for kind, v in (("uid", uid), ("gid", gid)):
        if not covers(idmap[kind], v):
            who = f"the user {user_spec!r}" if user_spec else "the container's root (no --user given)"
            raise UsageError(f"container ID {v} cannot be mapped to a host ID: {kind} {v} of {who} is not in "
                             f"the {kind} mapping {' '.join(format_map(idmap[kind]))}: map it or choose --user")


def mapped_root(userns: dict) -> tuple[int, int] | None:
    """The host uid and gid of the container's root (None: root is not in the maps)."""
    from ..layer.idmap import to_host

    if not (covers(userns["uid"], 0) and covers(userns["gid"], 0)):
        return None
    return to_host(userns["uid"], 0), to_host(userns["gid"], 0, "gid")


def host_ids(meta: dict, uid: int, gid: int) -> tuple[int, int]:
    """A container's ``uid``/``gid`` as the host sees them (mapped in a user namespace)."""
    from ..layer.idmap import Tolerant, to_host

    uns = (meta.get("extra") or {}).get("userns")
    if not uns or not uns.get("uid"):
        return uid, gid
    return to_host(Tolerant(uns["uid"]), uid), to_host(Tolerant(uns["gid"]), gid, "gid")


def container_root(meta: dict) -> tuple[int, int] | None:
    """:func:`mapped_root` of a container's record (None: no user namespace of its own maps)."""
    uns = (meta.get("extra") or {}).get("userns")
    return mapped_root(uns) if uns and uns.get("uid") else None


def chown_to_root(userns: dict, paths: list[str]) -> None:
    """Give ``paths`` (files pallet writes for the container) to the container's root."""
    root = mapped_root(userns)
    if root is None:
        return  # root is not mapped: nobody inside owns them
    uid, gid = root
    for p in paths:
        try:
            os.chown(p, uid, gid, follow_symlinks=False)
        except FileNotFoundError:
            pass


def create_ns(runroot: str, name: str, userns: dict) -> str:
    """The container's user namespace with its maps, kept at ``RUNROOT/userns/NAME`` by a bind
    mount (as a network namespace is): the runtime joins it, and the network namespace made
    for the container belongs to it, so its root may set its sysctls (podman's runtime makes
    both inside; the effect is the same)."""
    from .._std import syscalls as _sys
    from .._userns import userns_fd
    from .network.netns import make_entry

    d = os.path.join(runroot, "userns")
    path = os.path.join(d, name)
    if os.path.lexists(path):  # left by a pallet killed while it started this container: ours
        remove_ns(path)
    try:
        make_entry(d, name)
    except OSError as e:
        raise ContainerError(f"cannot make the user namespace file {path}: {e.strerror}") from None
    try:
        fd = userns_fd(userns["uid"], userns["gid"], ContainerError)
        try:
            _sys.mount(f"/proc/self/fd/{fd}", path, None, 0x1000)  # MS_BIND
        finally:
            os.close(fd)
    except BaseException:
        remove_ns(path)
        raise
    return path


def remove_ns(path: str) -> None:
    """Unmount and delete what ``create_ns`` made (missing: nothing to do); the last one gone,
    the directory's own mount goes too (``netns.drop_entry``)."""
    from .._std import syscalls as _sys
    from .network.netns import drop_entry

    try:
        _sys.umount2(path, _sys.MNT_DETACH)
    except OSError:
        pass
    try:
        drop_entry(path)
    except OSError as e:
        raise ContainerError(f"cannot remove the user namespace file {path}: {e.strerror}") from None


def format_map(mapping: list) -> list[str]:
    """podman's inspect form: ``CONTAINER:HOST:SIZE`` strings."""
    return [f"{c}:{h}:{n}" for c, h, n in mapping]


def inspect(userns: dict | None) -> dict:
    """podman's HostConfig keys: ``UsernsMode`` and, with a mapping, ``IDMappings``."""
    if not userns:
        return {"UsernsMode": ""}
    mode = {"private": "private", "auto": "auto", "keep-id": "keep-id", "ns": "ns:" + str(userns.get("path")),
            "container": "container:" + str(userns.get("target"))}[userns["mode"]]
    out: dict = {"UsernsMode": mode}
    if userns.get("uid"):
        out["IDMappings"] = {"UidMap": format_map(userns["uid"]), "GidMap": format_map(userns["gid"])}
    return out
