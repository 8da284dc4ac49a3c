"""containers-common's seccomp profile (``/usr/share/containers/seccomp.json``, Docker's
format) as podman applies it: to a runtime-spec ``linux.seccomp`` for this machine.

As ``containers/common/pkg/seccomp`` does: the architectures are the ``archMap`` entry of the
native one and its sub-architectures; a syscall rule is kept only when its ``includes``
(architectures, capabilities -- every one in the container's bounding set --, minimum kernel)
hold and its ``excludes`` do not; ``names``/``name`` become one rule with the action, the
arguments and ``errnoRet``. A profile that is already a runtime-spec one (no ``archMap``, no
``includes``) passes through the same filter unchanged.
"""

from __future__ import annotations

import os


from .._std import json
from ..errors import UsageError

DEFAULT_PATH = "/usr/share/containers/seccomp.json"
#: Go's GOARCH and libseccomp's name of this machine
_ARCHES = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
           "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
           "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"), "i686": ("386", "SCMP_ARCH_X86"),
           "armv7l": ("arm", "SCMP_ARCH_ARM")}


def _kernel() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def _at_least(version: str) -> bool:
    try:
        want = tuple(int(x) for x in version.split(".")[:2])
    except ValueError:
        return False
    return _kernel() >= want


def convert(profile: dict, bounding, machine: str | None = None) -> dict:
    """``linux.seccomp`` of a containers-common profile for a container whose bounding set is
    ``bounding`` (capability names)."""
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise UsageError("seccomp profile: want an object with defaultAction")
    go_arch, scmp_arch = _ARCHES.get(machine or os.uname().machine, ("", ""))
    caps = set(bounding)
    out: dict = {"defaultAction": profile["defaultAction"]}
    if isinstance(profile.get("defaultErrnoRet"), int):
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if isinstance(entry, dict) and entry.get("architecture") == scmp_arch:
            arches += [scmp_arch] + list(entry.get("subArchitectures") or [])
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    rules = []
    for call in profile.get("syscalls") or []:
        if not isinstance(call, dict):
            raise UsageError("seccomp profile: syscalls: want objects")
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if go_arch in (exc.get("arches") or ()):
            continue
        if any(c in caps for c in exc.get("caps") or ()):
            continue
        if exc.get("minKernel") and _at_least(exc["minKernel"]):
            continue
        if inc.get("arches") and go_arch not in inc["arches"]:
            continue
        if any(c not in caps for c in inc.get("caps") or ()):
            continue
        if inc.get("minKernel") and not _at_least(inc["minKernel"]):
            continue
        for group in ([call["name"]] if call.get("name") else [], list(call.get("names") or [])):
            if not group:
                continue
            rule = {"names": group, "action": call.get("action")}
            if call.get("args"):
                rule["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                                for a in call["args"]]
            if isinstance(call.get("errnoRet"), int):
                rule["errnoRet"] = call["errnoRet"]
            rules.append(rule)
    out["syscalls"] = rules
    return out


_loaded: dict = {}


def load(path: str | None, bounding) -> dict | None:
    """The ``linux.seccomp`` of the profile at ``path`` (None: containers-common's default; when
    that file is missing, no filter, as a podman without containers-common installed has only
    its built-in one). Read and converted once per process for a path and bounding set (``create``
    generates the config twice) while the file stays the same one (a long-lived CRI server sees a
    change); the caller must not change the result (the spec copies it)."""
    try:
        st = os.stat(path or DEFAULT_PATH)
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        ident = None
    key = (path, ident, frozenset(bounding))
    if key not in _loaded:
        _loaded[key] = _load(path, bounding)
    return _loaded[key]


def _load(path: str | None, bounding) -> dict | None:
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read(8 << 20)
    except OSError as e:
        if not explicit and e.errno == 2:
            return None
        raise UsageError(f"opening seccomp profile failed: open {path}: {(e.strerror or '').lower()}") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise UsageError(f"seccomp profile {path}: not valid JSON") from None
    try:
        out = convert(doc, bounding)
    except (AttributeError, TypeError, KeyError):
        raise UsageError(f"seccomp profile {path}: not a seccomp profile") from None
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None
    from ..runtime.seccomp import check
    from ..errors import InvalidDocument

    try:
        check(out)
    except InvalidDocument as e:
        raise UsageError(f"seccomp profile {path}: {e}") from None
    return out
