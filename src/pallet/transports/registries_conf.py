"""``registries.conf`` (v2 TOML, and the old v1 tables), read as containers/image does.

Where: ``ctx.registries_conf`` (``--registries-conf``), else ``$CONTAINERS_REGISTRIES_CONF``,
else ``~/.config/containers/registries.conf`` when it exists, else
``/etc/containers/registries.conf``. Drop-ins: ``registries.conf.d/*.conf`` beside the
chosen file (and ``~/.config/containers/registries.conf.d``), applied in name order, each
overriding what it sets (a ``[[registry]]`` with the same prefix replaces the earlier one).

What it answers:

- :meth:`Config.find`: the ``[[registry]]`` entry for a reference (longest ``prefix``
  match; ``*.example.com`` matches sub-domains);
- :meth:`Config.pull_sources`: where to pull from, mirrors first, prefix rewritten to
  ``location``; a blocked registry raises;
- :meth:`Config.push_endpoint`: where to push (never a mirror);
- :meth:`Config.resolve_short_name`: candidate references for ``busybox`` (aliases, then
  ``unqualified-search-registries``), with the ``short-name-mode``.
"""

from __future__ import annotations

import os

from ..errors import AccessDenied, ConfigError, InvalidReference

SYSTEM_PATH = "/etc/containers/registries.conf"


class Mirror:
    __slots__ = ("location", "insecure", "pull_from_mirror")

    def __init__(self, location: str, insecure: bool = False, pull_from_mirror: str = "all"):
        self.location = location
        self.insecure = insecure
        self.pull_from_mirror = pull_from_mirror

    def __repr__(self) -> str:
        return f"Mirror({self.location!r}, insecure={self.insecure}, pull_from_mirror={self.pull_from_mirror!r})"


class Registry:
    """One ``[[registry]]`` table."""

    __slots__ = ("prefix", "location", "insecure", "blocked", "mirrors", "mirror_by_digest_only", "source")

    def __init__(self, prefix: str, location: str, insecure: bool = False, blocked: bool = False,
                 mirrors: list[Mirror] | None = None, mirror_by_digest_only: bool = False, source: str = ""):
        self.prefix = prefix
        self.location = location
        self.insecure = insecure
        self.blocked = blocked
        self.mirrors = list(mirrors or [])
        self.mirror_by_digest_only = mirror_by_digest_only
        self.source = source

    @property
    def wildcard(self) -> bool:
        return self.prefix.startswith("*.")

    def __repr__(self) -> str:
        return (f"Registry(prefix={self.prefix!r}, location={self.location!r}, insecure={self.insecure}, "
                f"blocked={self.blocked}, mirrors={self.mirrors!r})")


class Endpoint:
    """One place to talk to: the reference rewritten for it, and whether TLS may be skipped."""

    __slots__ = ("named", "insecure", "mirror")

    def __init__(self, named, insecure: bool = False, mirror: bool = False):
        self.named = named  # oci.reference.Named on this endpoint's host
        self.insecure = insecure
        self.mirror = mirror

    @property
    def host(self) -> str:
        return self.named.domain

    def __repr__(self) -> str:
        return f"Endpoint({str(self.named)!r}, insecure={self.insecure}, mirror={self.mirror})"


class ShortNameResolution:
    """What a short name may mean: ``candidates`` in order; ``alias`` True when an alias decided."""

    __slots__ = ("name", "candidates", "alias", "mode")

    def __init__(self, name: str, candidates: list, alias: bool, mode: str):
        self.name = name
        self.candidates = candidates
        self.alias = alias
        self.mode = mode


_MODES = ("enforcing", "permissive", "disabled")
_PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


def _match_length(ref: str, prefix: str) -> int:
    """How much of ``ref`` (``host/path[:tag][@digest]``) ``prefix`` matches; -1 for no match."""
    if prefix.startswith("*."):
        host = ref.split("/", 1)[0]
        hostname = host.split(":", 1)[0] if not host.startswith("[") else host
        suffix = prefix[1:]
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return len(hostname)
        return -1
    if not ref.startswith(prefix):
        return -1
    if len(ref) == len(prefix):
        return len(prefix)
    return len(prefix) if ref[len(prefix)] in "/:@" else -1


class Config:
    def __init__(self):
        self._usr: list[str] = []
        self._mode: str = "enforcing"
        self.registries: list[Registry] = []
        self._aliases: dict[str, str] = {}
        self.paths: list[str] = []  # files read, in order (for messages)
        #: (path, TOML bytes) of every file, when some were not parsed yet (see :func:`load`)
        self._deferred: list[tuple[str, bytes]] | None = None

    def _complete(self) -> None:
        """Parse the files skipped because they had no registry tables (aliases, search list)."""
        files, self._deferred = self._deferred, None
        if files is None:
            return
        self.registries, self._usr, self._mode, self._aliases, self.paths = [], [], "enforcing", {}, []
        for path, data in files:
            self._apply(_parse_toml(data, path), path)
            self.paths.append(path)

    @property
    def unqualified_search_registries(self) -> list[str]:
        self._complete()
        return self._usr

    @property
    def short_name_mode(self) -> str:
        self._complete()
        return self._mode

    @property
    def aliases(self) -> dict[str, str]:
        self._complete()
        return self._aliases

    # -- lookups ---------------------------------------------------------------------------

    def find(self, named) -> Registry | None:
        """The entry whose prefix matches ``named`` (a Named or ``host/path`` string) the longest."""
        ref = str(named)
        best, best_len = None, -1
        for reg in self.registries:
            n = _match_length(ref, reg.prefix)
            if n > best_len:
                best, best_len = reg, n
        return best

    def _rewrite(self, named, reg: Registry, location: str):
        from ..oci import reference

        if reg.wildcard or not location:
            return named
        ref = named.name
        rest = ref[len(reg.prefix):] if ref.startswith(reg.prefix) else ""
        try:
            base = reference.parse(location + rest, normalize=False)
        except InvalidReference as e:
            raise ConfigError(f"registries.conf: rewriting {named} with location {location!r}: {e}") from None
        return reference.Named(base.domain, base.path, named.tag, named.digest)

    def _check_blocked(self, named, reg: Registry | None) -> None:
        if reg is not None and reg.blocked:
            raise AccessDenied(f"registry {reg.prefix} is blocked in {reg.source or 'registries.conf'}: "
                               f"refusing to use {named}")

    def pull_sources(self, named) -> list[Endpoint]:
        """Where to pull ``named`` from: mirrors first (as ``pull-from-mirror`` allows), then the registry."""
        reg = self.find(named)
        if reg is None:
            return [Endpoint(named, False, False)]
        self._check_blocked(named, reg)
        out = []
        by_digest = bool(named.digest)
        for m in reg.mirrors:
            mode = "digest-only" if reg.mirror_by_digest_only else m.pull_from_mirror
            if mode == "digest-only" and not by_digest:
                continue
            if mode == "tag-only" and by_digest:
                continue
            out.append(Endpoint(self._rewrite(named, reg, m.location), m.insecure, True))
        out.append(Endpoint(self._rewrite(named, reg, reg.location), reg.insecure, False))
        return out

    def push_endpoint(self, named) -> Endpoint:
        """Where to push ``named``: the registry's location (mirrors are for pulls only)."""
        reg = self.find(named)
        if reg is None:
            return Endpoint(named, False, False)
        self._check_blocked(named, reg)
        return Endpoint(self._rewrite(named, reg, reg.location), reg.insecure, False)

    def is_insecure(self, host: str) -> bool:
        """True when registries.conf marks ``host`` (a registry or one of its mirrors) insecure."""
        for reg in self.registries:
            if _match_length(host, reg.prefix) >= 0 or (reg.location and reg.location.split("/", 1)[0] == host):
                if reg.insecure:
                    return True
            for m in reg.mirrors:
                if m.location.split("/", 1)[0] == host and m.insecure:
                    return True
        return False

    def resolve_short_name(self, name: str) -> ShortNameResolution:
        """Candidate references for a short name such as ``busybox`` or ``library/busybox:1.36``.

        A fully qualified name resolves to itself. An alias wins over the search list. The caller
        (``pallet pull``) applies ``mode``: in "enforcing" mode several candidates without a
        terminal to ask on is an error.
        """
        from ..oci import reference

        if not reference.is_short_name(name):
            return ShortNameResolution(name, [reference.parse(name)], False, self.short_name_mode)
        digest = None
        rest = name
        if "@" in rest:
            rest, digest = rest.split("@", 1)
        tag = None
        if ":" in rest.rsplit("/", 1)[-1]:
            rest, tag = rest.rsplit(":", 1)
        if rest != rest.lower():
            raise InvalidReference(f"invalid reference {name!r}: repository name must be lowercase")

        def finish(full: str):
            text = full + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            return reference.parse(text, normalize=False).tagged_or_latest()

        alias = self.aliases.get(rest) or alias_cache().get(rest)
        mode = effective_short_name_mode(self)
        if alias:
            return ShortNameResolution(name, [finish(alias)], True, mode)
        if not self.unqualified_search_registries:
            from ..errors import NotFound

            import json

            # podman's words: the main file named (drop-ins are read too, as there)
            raise NotFound(f"short-name {json.dumps(name)} did not resolve to an alias and no unqualified-search "
                           f"registries are defined in {json.dumps(self.paths[0] if self.paths else 'registries.conf')}")
        cands = []
        for host in self.unqualified_search_registries:
            path = rest
            if host in (reference.DEFAULT_DOMAIN, reference.LEGACY_DEFAULT_DOMAIN) and "/" not in path:
                path = reference.OFFICIAL_REPO_PREFIX + path
            cands.append(finish(f"{host}/{path}"))
        return ShortNameResolution(name, cands, False, mode)

    # -- loading ---------------------------------------------------------------------------

    def _apply(self, doc: dict, path: str) -> None:
        if "registries" in doc and isinstance(doc["registries"], dict):
            self._apply_v1(doc, path)
            return
        allowed = {"unqualified-search-registries", "short-name-mode", "registry", "aliases",
                   "credential-helpers", "additional-layer-store-auth-helper"}
        for k in doc:
            if k not in allowed:
                raise ConfigError(f"{path}: unknown key {k!r}")
        if "unqualified-search-registries" in doc:
            usr = doc["unqualified-search-registries"]
            if not isinstance(usr, list) or not all(isinstance(x, str) for x in usr):
                raise ConfigError(f"{path}: unqualified-search-registries must be a list of strings")
            for x in usr:
                _validate_host(x, path, "unqualified-search-registries")
            self._usr = list(usr)
        if "short-name-mode" in doc:
            mode = doc["short-name-mode"]
            if mode not in _MODES:
                raise ConfigError(f"{path}: short-name-mode {mode!r} is not one of {', '.join(_MODES)}")
            self._mode = mode
        regs = doc.get("registry", [])
        if not isinstance(regs, list):
            raise ConfigError(f"{path}: [[registry]] must be an array of tables")
        for i, r in enumerate(regs):
            reg = _parse_registry(r, f"{path}: registry[{i}]")
            reg.source = path
            self.registries = [x for x in self.registries if x.prefix != reg.prefix] + [reg]
        aliases = doc.get("aliases", {})
        if not isinstance(aliases, dict):
            raise ConfigError(f"{path}: [aliases] must be a table")
        for k, v in aliases.items():
            if not isinstance(v, str):
                raise ConfigError(f"{path}: aliases.{k} must be a string")
            if v == "":
                self._aliases.pop(k, None)  # an empty value removes an alias set earlier
                continue
            from ..oci import reference

            if not reference.is_short_name(k) or "@" in k or ":" in k:
                raise ConfigError(f"{path}: alias {k!r} must be a short name without tag or digest")
            try:
                n = reference.parse(v, normalize=False)
            except InvalidReference as e:
                raise ConfigError(f"{path}: alias {k!r}: {e}") from None
            if n.digest or n.tag:
                raise ConfigError(f"{path}: alias {k!r} = {v!r} must not have a tag or digest")
            self._aliases[k] = v

    def _apply_v1(self, doc: dict, path: str) -> None:
        """The old format: [registries.search] / [registries.insecure] / [registries.block] registries = [...]."""
        r = doc["registries"]

        def lst(name):
            t = r.get(name, {})
            v = t.get("registries", []) if isinstance(t, dict) else None
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"{path}: registries.{name}.registries must be a list of strings")
            return v

        self._usr = list(lst("search"))
        for host in lst("insecure"):
            self._v1_entry(host, path).insecure = True
        for host in lst("block"):
            self._v1_entry(host, path).blocked = True

    def _v1_entry(self, host: str, path: str) -> Registry:
        for reg in self.registries:
            if reg.prefix == host:
                return reg
        reg = Registry(host, host, source=path)
        self.registries.append(reg)
        return reg


def _validate_host(value: str, path: str, what: str) -> None:
    if not value or "/" in value and what == "unqualified-search-registries" or any(c.isspace() for c in value):
        raise ConfigError(f"{path}: {what}: {value!r} is not a registry host")


def _bool(d: dict, key: str, where: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise ConfigError(f"{where}.{key} must be true or false")
    return v


def _parse_registry(r: object, where: str) -> Registry:
    if not isinstance(r, dict):
        raise ConfigError(f"{where}: must be a table")
    for k in r:
        if k not in ("prefix", "location", "insecure", "blocked", "mirror", "mirror-by-digest-only"):
            raise ConfigError(f"{where}: unknown key {k!r}")
    prefix = r.get("prefix", "")
    location = r.get("location", "")
    if not isinstance(prefix, str) or not isinstance(location, str):
        raise ConfigError(f"{where}: prefix and location must be strings")
    prefix = prefix.rstrip("/")
    location = location.rstrip("/")
    if location.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.location: {location!r} must not include a scheme (use insecure = true for HTTP)")
    if not prefix:
        if not location:
            raise ConfigError(f"{where}: needs a prefix or a location")
        prefix = location
    if prefix.startswith("*."):
        if location:
            raise ConfigError(f"{where}: a wildcarded prefix ({prefix!r}) cannot have a location")
        if "/" in prefix or "*" in prefix[1:]:
            raise ConfigError(f"{where}.prefix: {prefix!r}: a wildcard prefix must be *.domain only")
    elif "*" in prefix:
        raise ConfigError(f"{where}.prefix: {prefix!r}: '*' is only allowed as the first label (*.example.com)")
    mirrors = []
    ms = r.get("mirror", [])
    if not isinstance(ms, list):
        raise ConfigError(f"{where}: [[registry.mirror]] must be an array of tables")
    for j, m in enumerate(ms):
        mw = f"{where}.mirror[{j}]"
        if not isinstance(m, dict):
            raise ConfigError(f"{mw}: must be a table")
        for k in m:
            if k not in ("location", "insecure", "pull-from-mirror"):
                raise ConfigError(f"{mw}: unknown key {k!r}")
        loc = m.get("location", "")
        if not isinstance(loc, str) or not loc:
            raise ConfigError(f"{mw}.location: missing")
        pfm = m.get("pull-from-mirror", "") or "all"
        if pfm not in _PULL_FROM_MIRROR:
            raise ConfigError(f"{mw}.pull-from-mirror: {pfm!r} is not one of {', '.join(_PULL_FROM_MIRROR)}")
        mirrors.append(Mirror(loc.rstrip("/"), _bool(m, "insecure", mw), pfm))
    return Registry(prefix, location, _bool(r, "insecure", where), _bool(r, "blocked", where), mirrors,
                    _bool(r, "mirror-by-digest-only", where))


def config_paths(ctx=None) -> tuple[str | None, list[str]]:
    """(main file, drop-in directories) to read, per the search order in the module docstring."""
    explicit = (getattr(ctx, "registries_conf", None) if ctx is not None else None) \
        or os.environ.get("CONTAINERS_REGISTRIES_CONF")
    conf_dir = getattr(ctx, "registries_conf_dir", None) if ctx is not None else None
    home = os.path.expanduser("~")
    user = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
                        "containers", "registries.conf")
    if explicit:
        main = explicit
    elif os.path.exists(user):
        # the user's file: the system's drop-ins are not read (containers/image)
        return user, [conf_dir or user + ".d"]
    else:
        main = SYSTEM_PATH
    return main, [conf_dir] if conf_dir else [SYSTEM_PATH + ".d", user + ".d"]


def _parse_toml(data: bytes, path: str) -> dict:
    import tomllib

    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def _read(path: str, required: bool) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"registries.conf {path}: no such file") from None
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _has_registry_tables(data: bytes) -> bool:
    """Could this file change where images are pulled or pushed ([[registry]], v1 [registries.*])?"""
    # a line starting (after blanks) with "[[registry" then "]" or ".", "registry =", or
    # "[registries" then "]" or "." (by hand: "re" costs an import on every command)
    for line in data.splitlines():
        s = line.lstrip(b" \t")
        if s.startswith(b"[["):
            t = s[2:].lstrip(b" \t")
            if t.startswith(b"registry") and t[8:].lstrip(b" \t")[:1] in (b"]", b"."):
                return True
        elif s.startswith(b"["):
            t = s[1:].lstrip(b" \t")
            if t.startswith(b"registries") and t[10:].lstrip(b" \t")[:1] in (b"]", b"."):
                return True
        elif s.startswith(b"registry") and s[8:].lstrip(b" \t")[:1] == b"=":
            return True
    return False


_cache: dict = {}


def load(ctx=None) -> Config:
    """The effective configuration (cached per set of files and their modification times).

    Start-up matters (``tomllib`` costs ~10 ms to import): files without registry tables
    (typically only ``[aliases]``, like the distribution's ``shortnames.conf``) are parsed
    only when short-name data is asked for. A syntax error in such a file therefore shows
    when a short name is resolved, not on every pull by full name.
    """
    main, dirs = config_paths(ctx)
    explicit = bool((getattr(ctx, "registries_conf", None) if ctx is not None else None))
    files = []
    for d in dirs:
        try:
            names = sorted(n for n in os.listdir(d) if n.endswith(".conf"))
        except OSError:
            continue
        files.extend(os.path.join(d, n) for n in names)
    key = []
    for p in [main, *files]:
        try:
            key.append((p, os.stat(p).st_mtime_ns))
        except OSError:
            key.append((p, None))
    key = tuple(key)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    cfg = Config()
    contents = []
    data = _read(main, explicit)
    if data is not None:
        contents.append((main, data))
    for p in files:
        data = _read(p, False)
        if data is not None:
            contents.append((p, data))
    deferred = False
    for path, data in contents:
        if _has_registry_tables(data):
            cfg._apply(_parse_toml(data, path), path)
        else:
            deferred = True
        cfg.paths.append(path)
    if deferred:
        cfg._deferred = contents
    _cache.clear()
    _cache[key] = cfg
    return cfg


def effective_short_name_mode(conf: Config) -> str:
    """registries.conf's ``short-name-mode``; ``CONTAINERS_SHORT_NAME_ALIASING=off`` turns it
    to ``disabled`` (as podman reads that variable), ``on`` keeps the configured mode."""
    env = os.environ.get("CONTAINERS_SHORT_NAME_ALIASING", "").strip().lower()
    if env == "off":
        return "disabled"
    return conf.short_name_mode


def alias_cache_path() -> str:
    """Where choices made at the short-name prompt are recorded, as containers/image does:
    ``/var/cache/containers/short-name-aliases.conf`` for root, else under
    ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    from .._userns import rootless_uid

    if rootless_uid() is None:
        return "/var/cache/containers/short-name-aliases.conf"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "containers", "short-name-aliases.conf")


def alias_cache() -> dict[str, str]:
    """The recorded aliases (below registries.conf's own ``[aliases]``); {} without a cache.
    ``PALLET_SHORT_NAME_ALIAS_CACHE`` names another file (pallet's own variable: what
    containers/image's ``SystemContext.UserShortNameAliasConfPath`` does)."""
    path = os.environ.get("PALLET_SHORT_NAME_ALIAS_CACHE") or alias_cache_path()
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return {}
    doc = _parse_toml(data, path)
    aliases = doc.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError(f"{path}: [aliases] must be a table")
    return {k: v for k, v in aliases.items() if isinstance(v, str) and v}


def record_alias(short: str, full: str) -> None:
    """Add ``short = full`` to the alias cache (after a pull of the prompted choice worked)."""
    from .. import _fs

    path = os.environ.get("PALLET_SHORT_NAME_ALIAS_CACHE") or alias_cache_path()
    cur = dict(alias_cache())
    cur[short] = full
    lines = ["[aliases]"] + [f'  "{k}" = "{v}"' for k, v in sorted(cur.items())]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _fs.write_atomic(path, ("\n".join(lines) + "\n").encode(), 0o600)
    except OSError as e:
        raise ConfigError(f"recording the short-name alias {short!r} in {path}: {e.strerror}") from None


def choose_candidates(res: ShortNameResolution, stdin=None, stdout=None) -> tuple[list, bool]:
    """The candidates to try for a resolved short name, after ``short-name-mode``, as
    containers/image's ``shortnames.Resolve``: an alias or a single candidate as it is;
    ``disabled``: every candidate in order; otherwise with several candidates, on a
    terminal (stdin and stdout) the user picks one (which is then recorded as an alias:
    the bool says so); without one, ``permissive`` tries them all and ``enforcing`` refuses.
    """
    import sys

    cands = res.candidates
    if res.alias or len(cands) <= 1 or res.mode == "disabled":
        return cands, False
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        tty = stdin.isatty() and stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        if res.mode == "permissive":
            return cands, False
        from ..errors import UsageError

        raise UsageError(f"short-name resolution enforced but cannot prompt without a TTY: {res.name!r} could be "
                         f"{', '.join(str(c) for c in cands)}; use a fully qualified name or an alias in "
                         "registries.conf")
    stdout.write("? Please select an image:\n")
    for i, c in enumerate(cands, 1):
        stdout.write(f"  {i}) {c}\n")
    while True:
        stdout.write(f"Enter a number (1-{len(cands)}): ")
        stdout.flush()
        line = stdin.readline()
        if not line:
            from ..errors import UsageError

            raise UsageError(f"short-name {res.name!r}: no image selected (end of input at the prompt)")
        line = line.strip()
        if line.isdigit() and 1 <= int(line) <= len(cands):
            return [cands[int(line) - 1]], True
        for c in cands:
            if line == str(c):
                return [c], True
        stdout.write(f"{line!r} is not one of the choices\n")


def parse_text(text: str, path: str = "<string>") -> Config:
    """A configuration from TOML text (for tests and tools)."""
    cfg = Config()
    cfg._apply(_parse_toml(text.encode(), path), path)
    cfg.paths.append(path)
    return cfg
