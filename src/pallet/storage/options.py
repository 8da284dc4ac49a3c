"""Where the store lives and which driver it uses.

Precedence: command-line flags, then ``PALLET_STORAGE_CONF`` or ``/etc/pallet/storage.conf``
(containers/storage's keys: ``[storage] driver, graphroot, runroot``), then defaults:
``/var/lib/pallet`` and ``/run/pallet`` for root, ``$XDG_DATA_HOME/pallet`` and
``$XDG_RUNTIME_DIR/pallet`` otherwise. A ``--root`` without ``--runroot`` gets a run root of
its own derived from the root's path, so two stores never share locks or mount counts.
"""

from __future__ import annotations

import os

from ..errors import ConfigError

DEFAULT_CONF = "/etc/pallet/storage.conf"
DRIVERS = ("overlay", "vfs")


class StoreOptions:
    __slots__ = ("graphroot", "runroot", "driver")

    def __init__(self, graphroot: str, runroot: str, driver: str = "auto"):
        self.graphroot = graphroot
        self.runroot = runroot
        self.driver = driver

    def __repr__(self) -> str:
        return f"StoreOptions({self.graphroot!r}, {self.runroot!r}, {self.driver!r})"


def _defaults() -> tuple[str, str]:
    if os.geteuid() == 0:
        return "/var/lib/pallet", "/run/pallet"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    run = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/pallet-run-{os.geteuid()}"
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
    return st


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
    return StoreOptions(os.path.abspath(graphroot), os.path.abspath(run), drv)
