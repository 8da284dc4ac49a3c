"""Where the store lives and which driver it uses.

Precedence: command-line flags, then ``PALLET_STORAGE_CONF`` or ``/etc/pallet/storage.conf``
(containers/storage's keys: ``[storage] driver, graphroot, runroot``), then defaults:
``/var/lib/pallet`` and ``/run/pallet`` for root, ``$XDG_DATA_HOME/pallet`` and
``$XDG_RUNTIME_DIR/pallet`` otherwise. A ``--root`` without ``--runroot`` gets a run root of
its own derived from the root's path, so two stores never share locks or mount counts.
Limits on what a layer may take (``[storage.options.pallet] layer_size_limit``,
``free_space_reserve``) come from the same file.
"""

from __future__ import annotations

import os

from ..errors import ConfigError

DEFAULT_CONF = "/etc/pallet/storage.conf"
DRIVERS = ("overlay", "vfs")


#: free space a layer being written must leave on the store's filesystem, unless configured
DEFAULT_FREE_SPACE_RESERVE = 32 << 20


class StoreOptions:
    __slots__ = ("graphroot", "runroot", "driver", "layer_size_limit", "free_space_reserve")

    def __init__(self, graphroot: str, runroot: str, driver: str = "auto", layer_size_limit: int = 0,
                 free_space_reserve: int = DEFAULT_FREE_SPACE_RESERVE):
        self.graphroot = graphroot
        self.runroot = runroot
        self.driver = driver
        #: the most bytes one layer may expand to (its uncompressed tar); 0: no limit
        self.layer_size_limit = layer_size_limit
        #: writing a layer stops when less than this is free on the store's filesystem
        self.free_space_reserve = free_space_reserve

    def __repr__(self) -> str:
        return f"StoreOptions({self.graphroot!r}, {self.runroot!r}, {self.driver!r})"


def _defaults() -> tuple[str, str]:
    from .._userns import rootless_uid

    uid = rootless_uid()  # in the rootless user namespace too: the user's own store
    if uid is None:
        return "/var/lib/pallet", "/run/pallet"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    run = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/pallet-run-{uid}"
    return os.path.join(data, "pallet"), os.path.join(run, "pallet")


def derived_runroot(graphroot: str) -> str:
    """The run root of a store given only its root: unique per root path."""
    from ..oci.digest import of_bytes

    base = _defaults()[1]
    h = of_bytes(os.path.abspath(graphroot).encode()).split(":", 1)[1][:16]
    return os.path.join(os.path.dirname(base), "pallet-stores", h)


def _read_conf(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"reading {path}: {e.strerror}") from None
    import tomllib  # only when there is a file: it imports typing, costly at start-up

    try:
        doc = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    st = doc.get("storage", {})
    if not isinstance(st, dict):
        raise ConfigError(f"{path}: [storage] must be a table")
    for key in ("driver", "graphroot", "runroot"):
        if key in st and not isinstance(st[key], str):
            raise ConfigError(f"{path}: storage.{key} must be a string")
    opts = st.get("options", {})
    mine = opts.get("pallet", {}) if isinstance(opts, dict) else None
    if not isinstance(opts, dict) or not isinstance(mine, dict):
        raise ConfigError(f"{path}: [storage.options] and [storage.options.pallet] must be tables")
    st = {k: v for k, v in st.items() if k in ("driver", "graphroot", "runroot")}
    for key in ("layer_size_limit", "free_space_reserve"):
        if key in mine:
            st[key] = parse_size(mine[key], f"{path}: storage.options.pallet.{key}")
    return st


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value, what: str) -> int:
    """A byte count: a non-negative integer, or a string "512", "64M", "64MiB", "10GB", "1t"
    (units are powers of 1024, as containers/storage's sizes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        v = value.strip().lower()
        num = v.rstrip("kmgtib ")
        unit = v[len(num):].strip()
        if unit.endswith("ib"):
            unit = unit[:-2]
        elif unit.endswith("b") and len(unit) == 2:
            unit = unit[:-1]
        if not num.isdigit() or not num.isascii() or unit not in _UNITS:
            raise ConfigError(f"{what}: {value!r} is not a size (e.g. 1048576, \"512M\", \"10GiB\")")
        n = int(num) * _UNITS[unit]
    else:
        raise ConfigError(f"{what}: {value!r} is not a size (e.g. 1048576, \"512M\", \"10GiB\")")
    if n < 0:
        raise ConfigError(f"{what}: {value!r} is negative")
    return n


def resolve(root: str | None = None, runroot: str | None = None, driver: str | None = None) -> StoreOptions:
    """The store options from flags, configuration file and defaults."""
    conf_path = os.environ.get("PALLET_STORAGE_CONF") or DEFAULT_CONF
    conf = _read_conf(conf_path)
    default_root, default_run = _defaults()
    graphroot = root or conf.get("graphroot") or default_root
    if runroot:
        run = runroot
    elif root:
        run = derived_runroot(root) if os.path.abspath(root) != default_root else default_run
    else:
        run = conf.get("runroot") or default_run
    drv = driver or conf.get("driver") or "auto"
    if drv not in DRIVERS + ("auto",):
        raise ConfigError(f"unknown storage driver {drv!r}: want overlay, vfs or auto")
    return StoreOptions(os.path.abspath(graphroot), os.path.abspath(run), drv,
                        conf.get("layer_size_limit", 0), conf.get("free_space_reserve", DEFAULT_FREE_SPACE_RESERVE))
