"""``--filter`` for the listing verbs, with podman's and buildah's semantics.

Every key a verb documents either works as the peer's does or is refused: a filter that is
accepted and ignored would make ``rmi $(pallet images -q --filter ...)`` remove what it
should keep. Values are checked when the filter is compiled (a bad boolean, duration or
image is a one-line error naming the filter), before anything is listed.

``images`` (podman 4.3's libimage): ``KEY=VALUE`` or ``KEY!=VALUE`` (negated); filters with
the same key are OR-ed, different keys AND-ed. ``image prune``: ``label``, ``label!`` and
``until``. ``builder containers`` (buildah): one ``id=,name=,ancestor=`` list.
"""

from __future__ import annotations

from ..errors import UsageError

IMAGE_KEYS = ("after", "since", "before", "containers", "dangling", "digest", "id", "intermediate", "label",
              "manifest", "readonly", "reference", "until")
PRUNE_KEYS = ("label", "until")
BUILDER_KEYS = ("id", "name", "ancestor")

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def split(text: str, keys: tuple, verb: str) -> tuple[str, bool, str]:
    """``KEY=VALUE`` / ``KEY!=VALUE`` -> (key, negated, value); an unknown key is refused."""
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"invalid filter {text!r}: want KEY=VALUE or KEY!=VALUE")
    negate = key.endswith("!")
    key = key.removesuffix("!")
    if key not in keys:
        raise UsageError(f"unsupported filter {key!r} for {verb} (in {text!r}): supported are {', '.join(keys)}")
    return key, negate, value


def parse_bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"invalid filter {key}={value!r}: want true or false")


# -- times -----------------------------------------------------------------------------------

def parse_until(value: str, now: float, key: str = "until") -> float:
    """A ``--filter until=`` value (``oci.times.parse_filter_time``: containers/common's
    timetype.GetTimestamp) in seconds since the epoch; a one-line error naming the filter."""
    from ..oci.times import parse_filter_time

    try:
        return parse_filter_time(value, now)
    except ValueError:
        raise UsageError(f"invalid filter {key}={value!r}: want a duration (24h, 90m) or a time "
                         "(2006-01-02, 2006-01-02T15:04:05Z, Unix seconds)") from None


def created(rec: dict) -> float | None:
    """The image's creation time (its config's), or None when it cannot be read: such an image
    matches no time filter (listing it under until= would offer it for removal as "old")."""
    from ._table import parse_time

    value = rec.get("created")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _earlier(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a < b


# -- globs -----------------------------------------------------------------------------------

class _BadPattern(Exception):
    pass


def path_match(pattern: str, name: str) -> bool:
    """Go's path.Match, step for step (``*`` and ``?`` do not cross ``/``, ``[...]`` with ``^``,
    ``\\`` escapes; each chunk after a star is matched leftmost, so the time is linear in the
    pattern times the name, whatever the pattern); a malformed pattern matches nothing, as
    podman ignores the error."""
    try:
        return _go_match(pattern, name)
    except _BadPattern:
        return False


def _go_match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        t = _match_chunk(chunk, name)
        if t is not None and (not t or pattern):
            name = t
            continue
        if star:
            i, matched = 0, False
            while i < len(name) and name[i] != "/":
                t = _match_chunk(chunk, name[i + 1:])
                if t is not None and not (not pattern and t):
                    name, matched = t, True
                    break
                i += 1
            if matched:
                continue
        while pattern:  # the rest must still be a valid pattern
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern[:1] == "*":
        pattern, star = pattern[1:], True
    inrange, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            inrange = True
        elif c == "]":
            inrange = False
        elif c == "*" and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> str | None:
    """The rest of ``s`` after ``chunk`` matched its start, or None; _BadPattern if malformed."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk[:1] == "^"
            if negated:
                chunk = chunk[1:]
            match, nrange = False, 0
            while True:
                if chunk[:1] == "]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi and r:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
        elif c == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPattern()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _BadPattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern()
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise _BadPattern()
    return r, rest


def reference_candidates(name: str) -> list[str]:
    """What podman matches a ``reference=`` pattern against for one name: the full name, then
    without the domain, without domain and path, each with and without tag or digest."""
    if "@" in name:
        trimmed, tail = name.split("@", 1)
        tail = "@" + tail
    else:
        slash = name.rfind("/")
        colon = name.rfind(":")
        trimmed, tail = (name[:colon], name[colon:]) if colon > slash else (name, "")
    first, _, rest = trimmed.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else trimmed
    out = [name, path, name[name.rfind("/") + 1:]]
    if tail:
        out += [trimmed, path + tail, trimmed[trimmed.rfind("/") + 1:]]
    return out


def match_labels(pattern: str, labels: dict) -> bool:
    """containers/common MatchLabelFilters for one value: ``key`` or ``key=value``; ``*`` in the key."""
    key, _, want = pattern.partition("=")
    for k, v in (labels or {}).items():
        if (not want or v == want) and (k == key or ("*" in key and _star(key, k))):
            return True
    return False


def _star(pattern: str, text: str) -> bool:
    parts = pattern.split("*")
    if not text.startswith(parts[0]) or not text.endswith(parts[-1]) or len(text) < len(parts[0]) + len(parts[-1]):
        return False
    pos, end = len(parts[0]), len(text) - len(parts[-1])
    for mid in parts[1:-1]:
        k = text.find(mid, pos, end)
        if k < 0:
            return False
        pos = k + len(mid)
    return True


# -- images ----------------------------------------------------------------------------------

class ImageFilter:
    """A compiled ``images`` (or ``image prune``) filter set: call it with an image record."""

    def __init__(self, store, images: list[dict], texts: list[str], keys: tuple = IMAGE_KEYS,
                 verb: str = "images", now: float | None = None):
        import time

        from ..storage import info

        self.store = store
        self._labels: dict[str, dict] = {}
        now = time.time() if now is None else now
        self.preds: dict[str, list] = {}
        bools: dict[str, str] = {}
        self._intermediate = None
        self._images = images
        self._info = info
        for text in texts:
            key, negate, value = split(text, keys, verb)
            if key in ("dangling", "intermediate", "readonly", "manifest", "containers"):
                if key in bools and bools[key] != value:
                    raise UsageError(f"filter {key!r} given more than once with different values")
                bools[key] = value
            pred = self._compile(key, value, now)
            if negate:
                pred = (lambda p: lambda rec: not p(rec))(pred)
            self.preds.setdefault("since" if key == "after" else key, []).append(pred)

    def __call__(self, rec: dict) -> bool:
        return all(any(p(rec) for p in preds) for preds in self.preds.values())

    def labels(self, rec: dict) -> dict:
        if rec["id"] not in self._labels:
            cfg = self._info._config(self.store, rec)
            self._labels[rec["id"]] = (cfg.get("config") or {}).get("Labels") or {}
        return self._labels[rec["id"]]

    def intermediate(self) -> set:
        if self._intermediate is None:
            self._intermediate = self._info.intermediate_ids(self._images)
        return self._intermediate

    def _compile(self, key: str, value: str, now: float):
        if key in ("after", "since", "before"):
            from ..errors import PalletError

            try:
                other = self.store.image(value)
            except PalletError as e:
                raise UsageError(f"invalid filter {key}={value!r}: {e}") from None
            t = created(other)
            if t is None:
                raise UsageError(f"invalid filter {key}={value!r}: that image's creation time cannot be read")
            if key == "before":
                return lambda rec: _earlier(created(rec), t)
            return lambda rec: _earlier(t, created(rec))
        if key == "until":
            t = parse_until(value, now)
            return lambda rec: _earlier(created(rec), t)
        if key == "id":
            v = value.removeprefix("sha256:")
            if not v:  # a prefix of every ID: "rmi $(images -q --filter id=$UNSET)" would remove them all
                raise UsageError(f"invalid filter id={value!r}: want an image ID or the start of one")
            return lambda rec: rec["id"].startswith(v)
        if key == "digest":
            if not value.startswith("sha256:") or len(value) == 7:  # "sha256:" alone: every image
                raise UsageError(f"invalid filter digest={value!r}: want sha256:HEX (or the start of one)")
            return lambda rec: any(
                d.startswith(value) for d in [rec.get("digest") or "", *(rec.get("digests") or ())])
        if key == "label":
            if not value:
                raise UsageError("invalid filter 'label=': want label=KEY or label=KEY=VALUE")
            return lambda rec: match_labels(value, self.labels(rec))
        if key == "reference":
            from ..errors import PalletError

            try:
                looked_up = self.store.image(value)["id"] if value else None
            except PalletError:  # not a name or ID of a local image: only patterns then
                looked_up = None
            return lambda rec: rec["id"] == looked_up or any(
                path_match(value, c) for n in rec["names"] for c in reference_candidates(n))
        if key == "containers":
            if value not in ("true", "false", "external"):
                raise UsageError(f"invalid filter containers={value!r}: want true, false or external")
            return self._containers(value)
        b = parse_bool(key, value)
        if key == "dangling":
            return lambda rec: (not rec["names"] and rec["id"] not in self.intermediate()) == b
        if key == "intermediate":
            return lambda rec: (rec["id"] in self.intermediate()) == b
        if key == "readonly":  # pallet has no read-only additional stores
            return lambda rec: b is False
        if key == "manifest":  # the store keeps one image per platform, never a list
            from ..oci import mediatype as mt

            return lambda rec: ((rec.get("manifests") or {}).get(rec.get("digest")) in mt.INDEXES) == b
        raise UsageError(f"unsupported filter {key!r}")

    def _containers(self, value: str):
        users: dict[str, list] = {}
        for c in self.store.containers():
            users.setdefault(c.get("image"), []).append(c)
        if value == "external":  # every container using it is a working (buildah) container
            from ..builder.working import KIND

            return lambda rec: bool(users.get(rec["id"])) and all(c.get("kind") == KIND for c in users[rec["id"]])
        want = value == "true"
        return lambda rec: bool(users.get(rec["id"])) == want


# -- buildah's containers --------------------------------------------------------------------

def builder_filter(texts: list[str]):
    """buildah containers --filter: ``id=PREFIX``, ``name=SUBSTRING``, ``ancestor=IMAGE`` (ID prefix,
    or a name whose repository ends with it and, given a tag, has that tag), comma-separated;
    as buildah's flag takes one value, a later --filter replaces an earlier one's keys."""
    params: dict[str, str] = {}
    for text in texts:
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep:
                raise UsageError(f"invalid filter {part!r}: want id=, name= or ancestor=")
            if key not in BUILDER_KEYS:
                raise UsageError(f"unsupported filter {key!r} for builder containers (in {part!r}): "
                                 f"supported are {', '.join(BUILDER_KEYS)}")
            params[key] = value

    def ok(cid: str, name: str, image_id: str, image_name: str) -> bool:
        if params.get("id") and not cid.startswith(params["id"]):
            return False
        if params.get("name") and params["name"] not in name:
            return False
        anc = params.get("ancestor")
        if anc and not (image_id.startswith(anc.removeprefix("sha256:")) or _ancestor_ref(image_name, anc)):
            return False
        return True
    return ok


def _ancestor_ref(name: str, arg: str) -> bool:
    def split_tag(n):
        slash, colon = n.rfind("/"), n.rfind(":")
        return (n[:colon], n[colon + 1:]) if colon > slash else (n, "")
    repo, tag = split_tag(name or "")
    arepo, atag = split_tag(arg)
    if not repo:
        return False
    if atag:
        return repo.endswith(arepo) and tag == atag
    return repo.endswith(arg)
