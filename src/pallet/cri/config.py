"""``/etc/pallet/cri.conf``: the CRI server's configuration (TOML, as crio.conf).

Every key is optional::

    listen = "unix:///run/pallet/cri.sock"
    root = "/var/lib/containers/storage"      # the store (default: pallet's)
    runroot = "/run/containers/storage"
    runtime = "pallet-runtime"                # an OCI runtime name on PATH or a path
    cgroup_manager = "cgroupfs"               # the only one so far
    cni_config_dir = "/etc/cni/net.d"
    cni_plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
    pause_command = ["/usr/bin/catatonit", "-P"]
    pause_image = ""                          # not supported yet: the pause process is the host's catatonit
    log_size_max = -1                         # bytes per container log (-1: unlimited)
    stream_address = "127.0.0.1"              # the streaming server (Exec, Attach, PortForward URLs)
    stream_port = 0
    registries_conf = ""                      # containers-registries.conf for pulls

    [runtimes]                                # runtime handlers (RuntimeClass): name = OCI runtime
    runc = "runc"
    crun = "/usr/local/bin/crun"

Pure: :func:`parse` takes the text; :func:`load` reads the file.
"""

from __future__ import annotations

from ..errors import ConfigError

DEFAULT_PATH = "/etc/pallet/cri.conf"
DEFAULT_LISTEN = "unix:///run/pallet/cri.sock"


class CRIConfig:
    """The server's settings (defaults as documented above)."""

    _KEYS = {
        "listen": str, "root": str, "runroot": str, "runtime": str, "cgroup_manager": str,
        "cni_config_dir": str, "cni_plugin_dirs": list, "pause_command": list, "pause_image": str,
        "log_size_max": int, "stream_address": str, "stream_port": int, "registries_conf": str,
        "runtimes": dict,
    }

    def __init__(self, **kw):
        self.listen = DEFAULT_LISTEN
        self.root = ""
        self.runroot = ""
        self.runtime = "pallet-runtime"
        self.cgroup_manager = "cgroupfs"
        self.cni_config_dir = "/etc/cni/net.d"
        self.cni_plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
        self.pause_command = ["/usr/bin/catatonit", "-P"]
        self.pause_image = ""
        self.log_size_max = -1
        self.stream_address = "127.0.0.1"
        self.stream_port = 0
        self.registries_conf = ""
        #: runtime handler name -> OCI runtime (a name on PATH or a path); "" is ``runtime``
        self.runtimes: dict = {}
        for k, v in kw.items():
            setattr(self, k, v)

    @property
    def socket_path(self) -> str:
        return socket_path(self.listen)


def socket_path(listen: str) -> str:
    """The file of a ``unix://PATH`` (or a bare absolute path) listen address."""
    if listen.startswith("unix://"):
        path = listen[len("unix://"):]
    else:
        path = listen
    if not path.startswith("/") or "\0" in path:
        raise ConfigError(f"listen address {listen!r}: want unix:///ABSOLUTE/PATH")
    return path


def parse(text: str, where: str = DEFAULT_PATH) -> CRIConfig:
    """A config from TOML ``text``; a ConfigError naming ``where`` and the key for anything wrong
    (a syntax error, an unknown key, a value of the wrong type)."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    # crio.conf-style tables ([crio.runtime] ...) are not ours: only top-level keys
    values = {}
    for k, v in doc.items():
        want = CRIConfig._KEYS.get(k)
        if want is None:
            raise ConfigError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(CRIConfig._KEYS))})")
        if not isinstance(v, want) or isinstance(v, bool) and want is int:
            kind = {list: "a list", int: "an integer", dict: "a table"}.get(want, "a string")
            raise ConfigError(f"{where}: {k} must be {kind}")
        if want is list and not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{where}: {k} must be a list of strings")
        if want is dict:
            for name, runtime in v.items():
                if not name or not all(c.isalnum() or c in "-_." for c in name) or not isinstance(runtime, str) \
                        or not runtime:
                    raise ConfigError(f"{where}: runtimes.{name}: want handler-name = \"RUNTIME\" (a name or a path)")
        values[k] = v
    cfg = CRIConfig(**values)
    try:
        socket_path(cfg.listen)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    if cfg.cgroup_manager != "cgroupfs":
        raise ConfigError(f"{where}: cgroup_manager {cfg.cgroup_manager!r}: only \"cgroupfs\" is supported so far")
    if cfg.pause_image:
        raise ConfigError(f"{where}: pause_image: not supported yet (the pause process is pause_command, "
                          "Debian's catatonit -P by default)")
    if not cfg.pause_command:
        raise ConfigError(f"{where}: pause_command must not be empty")
    if not 0 <= cfg.stream_port < 65536:
        raise ConfigError(f"{where}: stream_port {cfg.stream_port} is not a port number")
    return cfg


def load(path: str | None = None) -> CRIConfig:
    """The file at ``path`` (an error when it is missing); without ``path``, DEFAULT_PATH when it
    exists, else the defaults."""
    import os

    if path is None:
        if not os.path.exists(DEFAULT_PATH):
            return CRIConfig()
        path = DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse(text, path)
