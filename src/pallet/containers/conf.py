"""containers.conf as podman 4.3 reads it: the defaults of ``run``/``create`` a user or the
distribution set.

The files, later ones overriding earlier ones key by key: ``$CONTAINERS_CONF`` alone when it is
set (podman's rule: it replaces every other file); otherwise
``/usr/share/containers/containers.conf``, ``/etc/containers/containers.conf`` and the
``*.conf`` files of ``/etc/containers/containers.conf.d`` in name order. A missing file is
skipped (but a missing ``$CONTAINERS_CONF`` is an error, as in podman).

Only the keys pallet acts on are read (others are ignored, as podman ignores keys it does not
know); a key of the wrong type or with a bad value is one line naming the file and the key
(:class:`~pallet.errors.UsageError`: exit 125).
"""

from __future__ import annotations

import os

from ..errors import UsageError

SYSTEM_FILES = ("/usr/share/containers/containers.conf", "/etc/containers/containers.conf")
DROP_IN_DIR = "/etc/containers/containers.conf.d"
DEFAULT_SECCOMP_PROFILE = "/usr/share/containers/seccomp.json"

#: (table, key) -> kind: "strs" (a list of strings), "str", "int", "bool"
_KEYS = {
    ("containers", "default_capabilities"): "strs",
    ("containers", "default_ulimits"): "strs",
    ("containers", "default_sysctls"): "strs",
    ("containers", "dns_servers"): "strs",
    ("containers", "dns_searches"): "strs",
    ("containers", "dns_options"): "strs",
    ("containers", "env"): "strs",
    ("containers", "pids_limit"): "int",
    ("containers", "log_driver"): "str",
    ("containers", "log_size_max"): "int",
    ("containers", "seccomp_profile"): "str",
    ("containers", "init_path"): "str",
    ("containers", "cgroupns"): "str",
    ("containers", "ipcns"): "str",
    ("containers", "pidns"): "str",
    ("containers", "utsns"): "str",
    ("containers", "userns"): "str",
    ("containers", "userns_size"): "int",
    ("containers", "netns"): "str",
    ("containers", "no_hosts"): "bool",
    ("engine", "runtime"): "str",
    ("engine", "infra_image"): "str",
    ("engine", "infra_command"): "str",
}


class Conf:
    """The merged settings: ``get(key)`` of the ``[containers]`` table, ``runtime`` and
    ``runtimes`` of ``[engine]``; ``origin[key]`` is the file that set it (for messages)."""

    def __init__(self, values: dict | None = None, origin: dict | None = None, runtimes: dict | None = None):
        self.values = dict(values or {})
        self.origin = dict(origin or {})
        self.runtimes = dict(runtimes or {})

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def where(self, key: str) -> str:
        """``containers.conf FILE: [table] key`` for a message about a value read from a file."""
        table = "engine" if key in ("runtime", "infra_image", "infra_command") else "containers"
        return f"containers.conf {self.origin.get(key, '(built in)')}: [{table}] {key}"

    def bad(self, key: str, why: str) -> UsageError:
        return UsageError(f"{self.where(key)}: {why}")

    @property
    def runtime(self) -> str | None:
        return self.values.get("runtime")


def files(env=None) -> list[str]:
    """The files podman reads, in order (those that exist)."""
    env = os.environ if env is None else env
    explicit = env.get("CONTAINERS_CONF")
    if explicit:
        if not os.path.isfile(explicit):
            raise UsageError(f"CONTAINERS_CONF {explicit}: no such file")
        return [explicit]
    out = [p for p in SYSTEM_FILES if os.path.isfile(p)]
    try:
        names = sorted(n for n in os.listdir(DROP_IN_DIR) if n.endswith(".conf"))
    except OSError:
        names = []
    out += [os.path.join(DROP_IN_DIR, n) for n in names if os.path.isfile(os.path.join(DROP_IN_DIR, n))]
    return out


def parse(text: str, path: str, into: Conf) -> Conf:
    """Merge one file's settings into ``into`` (checked: a bad one raises naming file and key)."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"containers.conf {path}: not valid TOML: {e}") from None
    for (table, key), kind in _KEYS.items():
        t = doc.get(table)
        if not isinstance(t, dict) or key not in t:
            continue
        v = t[key]
        where = f"containers.conf {path}: [{table}] {key}"
        if kind == "strs":
            if not isinstance(v, list) or not all(isinstance(x, str) and "\0" not in x for x in v):
                raise UsageError(f"{where}: want a list of strings, not {v!r}")
        elif kind == "str":
            if not isinstance(v, str) or "\0" in v:
                raise UsageError(f"{where}: want a string, not {v!r}")
        elif kind == "int":
            if not isinstance(v, int) or isinstance(v, bool):
                raise UsageError(f"{where}: want an integer, not {v!r}")
        elif kind == "bool" and not isinstance(v, bool):
            raise UsageError(f"{where}: want true or false, not {v!r}")
        into.values[key] = v
        into.origin[key] = path
    runtimes = (doc.get("engine") or {}).get("runtimes") if isinstance(doc.get("engine"), dict) else None
    if runtimes is not None:
        if not isinstance(runtimes, dict):
            raise UsageError(f"containers.conf {path}: [engine.runtimes]: want a table of lists of paths")
        for name, paths in runtimes.items():
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise UsageError(f"containers.conf {path}: [engine.runtimes] {name}: want a list of paths")
            into.runtimes[name] = list(paths)
    _check(into, path)
    return into


def _check(conf: Conf, path: str) -> None:
    """The values (not only the types) of what this file set."""
    from .options import parse_ulimit

    mine = [k for k, p in conf.origin.items() if p == path]
    for key in mine:
        v = conf.values[key]
        if key == "default_ulimits":
            for u in v:
                try:
                    parse_ulimit(u)
                except UsageError as e:
                    raise conf.bad(key, str(e)) from None
        elif key == "default_capabilities":
            from ..oci.runtime_spec import cap_name

            for c in v:
                try:
                    cap_name(c, "capability")
                except UsageError:
                    raise conf.bad(key, f"unknown capability {c!r}") from None
        elif key in ("env", "default_sysctls"):
            for e in v:
                if "=" not in e or e.startswith("="):
                    raise conf.bad(key, f"{e!r} is not KEY=VALUE")
        elif key == "log_driver" and v not in ("k8s-file", "none", "journald", "passthrough"):
            raise conf.bad(key, f"unknown log driver {v!r}: want k8s-file or none")
        elif key in ("cgroupns", "ipcns", "pidns", "utsns") and v not in ("host", "private", ""):
            raise conf.bad(key, f"{v!r}: want host or private")
        elif key == "pids_limit" and v < -1:
            raise conf.bad(key, f"{v}: want -1, 0 or a positive number")


#: where :func:`load` keeps the merged result when its caller names no directory (a build's
#: RUN steps, a fresh store): root's only, a directory of root's that others cannot write;
#: also the build's runtime probe (``builder.run.default_runtime``)
HOST_CACHE_DIR = "/run/pallet-containers-conf"


def host_cache_dir() -> str | None:
    """:data:`HOST_CACHE_DIR`, made 0700 if missing, for root only; None when this is not root or
    the directory is not root's alone (then nothing is cached)."""
    if os.geteuid() != 0:
        return None
    try:
        os.mkdir(HOST_CACHE_DIR, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(HOST_CACHE_DIR)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o040000 or st.st_uid != 0 or st.st_mode & 0o022:
        return None
    return HOST_CACHE_DIR


def load(env=None, cache_dir: str | None = None) -> Conf:
    """The merged containers.conf of this process.

    ``cache_dir`` (a run root's directory; none given: :data:`HOST_CACHE_DIR` for root, so
    that a build's RUN steps do not import ``tomllib`` either): the merged result is kept there in
    ``containers-conf.json`` (in the host directory: ``containers-conf-HASH.json``, one per list
    of files, the :data:`_HOST_ENTRIES` newest kept), keyed by each file's path, device, inode,
    size, mtime and ctime
    (and which files there are), so a later ``run`` reads one small JSON file instead of
    parsing TOML (``tomllib`` imports ``typing``, ``datetime``, ``re``: several ms of every
    start). A file that changes, appears or goes changes the key: the next load parses again.
    A file changed less than :data:`_RACY` seconds ago is not cached (a change within the
    filesystem's timestamp granularity could keep size and times: git's racy-file rule)."""
    paths = files(env)
    name = _CACHE
    if cache_dir is None:
        cache_dir = host_cache_dir()
        name = _host_cache_name(paths)
    key = files_identity(paths) if cache_dir else None
    if key is not None:
        cached = _cached(cache_dir, key, name)
        if cached is not None:
            return cached
    conf = Conf()
    for path in paths:
        try:
            with open(path, "rb") as f:
                raw = f.read(4 << 20)
        except OSError as e:
            raise UsageError(f"containers.conf {path}: {e.strerror}") from None
        parse(raw.decode("utf-8", "replace"), path, conf)
    if key is not None and files_identity(paths) == key and not _racy(key):  # unchanged while it was read
        _store(cache_dir, key, conf, name)
    return conf


#: seconds: a file whose ctime is this recent is not cached (see :func:`load`)
_RACY = 2.0
_CACHE = "containers-conf.json"
#: how many results :data:`HOST_CACHE_DIR` keeps (one per list of files: builds with different
#: ``CONTAINERS_CONF`` files do not take turns overwriting one); the oldest go first
_HOST_ENTRIES = 32


def _host_cache_name(paths: list[str]) -> str:
    return "containers-conf-" + short_hash("\0".join(paths).encode(errors="surrogateescape")) + ".json"


def short_hash(data: bytes) -> str:
    """16 hex digits of ``data``'s SHA-256: a file name in :data:`HOST_CACHE_DIR` (the C sha256
    of ``oci.digest``: no ``hashlib``, whose OpenSSL costs a start ~3 ms)."""
    from ..oci.digest import of_bytes, short

    return short(of_bytes(data), 16)


def files_identity(paths: list[str]) -> list | None:
    """Each file's path, device, inode, size, mtime and ctime (None when one is missing): a
    cache key that any change to the files changes (also the build's runtime probe's)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        out.append([p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return out


def _racy(key: list) -> bool:
    import time

    now = time.time_ns()
    return any(now - e[5] < _RACY * 1e9 for e in key)


def _cached(cache_dir: str, key: list, name: str = _CACHE) -> Conf | None:
    from .._std import json

    try:
        with open(os.path.join(cache_dir, name), "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    values, origin, runtimes = doc.get("values"), doc.get("origin"), doc.get("runtimes")
    if not (isinstance(values, dict) and isinstance(origin, dict) and isinstance(runtimes, dict)):
        return None
    return Conf(values, origin, runtimes)


def _store(cache_dir: str, key: list, conf: Conf, name: str = _CACHE) -> None:
    from .. import _fs
    from .._std import json

    doc = {"key": key, "values": conf.values, "origin": conf.origin, "runtimes": conf.runtimes}
    try:  # volatile (the run root): no fsync; a failure only means no cache
        _fs.write_atomic(os.path.join(cache_dir, name), json.dumps(doc).encode(), 0o600, durable=False)
        if name != _CACHE:
            _prune(cache_dir)
    except OSError:
        pass


def _prune(cache_dir: str) -> None:
    """Keep the :data:`_HOST_ENTRIES` newest results of the host directory."""
    entries = []
    for n in os.listdir(cache_dir):
        if n.startswith("containers-conf-") and n.endswith(".json"):
            try:
                entries.append((os.stat(os.path.join(cache_dir, n)).st_mtime_ns, n))
            except OSError:
                pass
    for _mtime, n in sorted(entries)[:-_HOST_ENTRIES]:
        try:
            os.unlink(os.path.join(cache_dir, n))
        except OSError:
            pass
