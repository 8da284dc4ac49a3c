"""Policy findings, each with a rule id and a severity (docs/scan.md lists them):

- ``secret-private-key``, ``secret-aws-access-key``, ``secret-github-token``, ``secret-slack-token``
  (high): in ANY layer, including files a later layer deleted or replaced: every layer's own
  files are read (by fd, no symlink followed), and a secret is attributed to the lowest layer
  that holds it;
- ``secret-env`` (high): a config ``Env`` whose name says password/secret/token/key with a value;
- ``setuid`` / ``setgid`` (low): such regular files in the image's tree;
- ``runs-as-root`` (low): the image's ``User`` is root or unset.

Files larger than :data:`SECRET_FILE_LIMIT` are not read for secrets (said in the docs).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as _stat

#: files above this size are not searched for secrets
SECRET_FILE_LIMIT = 1 << 20

#: (rule, literal markers one of which every match holds, pattern): the markers are looked for
#: first (a substring search runs at memory speed; the regex only where one is found)
_PATTERNS = [
    ("secret-private-key", (b"PRIVATE KEY",),
     re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("secret-aws-access-key", (b"AKIA", b"ASIA"), re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("secret-github-token", (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"), re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("secret-slack-token", (b"xox",), re.compile(rb"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
]
_ENV_SECRET = re.compile(r"(pass(word|wd)?|secret|token|api_?key|private_?key|credentials?|_key)$", re.I)


def runs_as_root(config: dict) -> list[dict]:
    cfg = config.get("config") if isinstance(config, dict) else None
    user = (cfg or {}).get("User") or "" if isinstance(cfg, dict) else ""
    name = user.split(":", 1)[0] if isinstance(user, str) else ""
    if name in ("", "0", "root"):
        return [{"rule": "runs-as-root", "severity": "low", "layer": None, "path": None,
                 "message": "the image's user is root" + (f" ({user})" if user else " (no User set)")}]
    return []


def env_secrets(config: dict) -> list[dict]:
    cfg = config.get("config") if isinstance(config, dict) else None
    env = (cfg or {}).get("Env") if isinstance(cfg, dict) else None
    out = []
    for e in env if isinstance(env, list) else []:
        if not isinstance(e, str) or "=" not in e:
            continue
        k, v = e.split("=", 1)
        if v and _ENV_SECRET.search(k):
            out.append({"rule": "secret-env", "severity": "high", "layer": None, "path": None,
                        "message": f"the config's environment sets {k} (a secret-looking name) to a value"})
    return out


def _walk_files(tree, visit_file) -> None:
    """``visit_file(path, dir_fd, name, stat)`` for each entry of ``tree`` (no symlink followed)."""
    def visit(dpath, dfd, names):
        for n in names:
            try:
                st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            visit_file(f"{dpath.rstrip('/')}/{n}", dfd, n, st)
        return True

    tree.walk(visit)


def setuid_files(tree) -> list[dict]:
    out = []

    def f(path, dfd, name, st):
        if _stat.S_ISREG(st.st_mode) and st.st_mode & (_stat.S_ISUID | _stat.S_ISGID):
            for bit, rule in ((_stat.S_ISUID, "setuid"), (_stat.S_ISGID, "setgid")):
                if st.st_mode & bit:
                    out.append({"rule": rule, "severity": "low", "layer": None, "path": path,
                                "message": f"{path} is {rule} (mode {_stat.S_IMODE(st.st_mode):o})"})

    _walk_files(tree, f)
    return out


def _read_into(tree, dfd: int, name: str, shown: str, view: memoryview) -> int:
    """Up to ``len(view)`` bytes of the regular file ``name`` (no symlink followed) into ``view``."""
    fd = tree.open_at(dfd, name, shown)
    if fd is None:
        return 0
    try:
        if not _stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        n = 0
        while n < len(view):
            got = os.readv(fd, [view[n:]])
            if not got:
                break
            n += got
        return n
    except OSError as e:
        tree.warn(shown, f"cannot be read: {e.strerror or e}")
        return 0
    finally:
        os.close(fd)


def layer_secrets(layer_trees: list[tuple[str, object]], merged) -> list[dict]:
    """Secrets in every layer's own files (``layer_trees``: (diff_id, Tree), bottom first)."""
    seen: dict = {}
    buf = bytearray(SECRET_FILE_LIMIT)  # one buffer for every file: the scan's memory stays flat
    view = memoryview(buf)
    for diff_id, tree in layer_trees:
        def f(path, dfd, name, st, diff_id=diff_id, tree=tree):
            if not _stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size > SECRET_FILE_LIMIT:
                return
            n = _read_into(tree, dfd, name, path, view)
            if not n:
                return
            for rule, markers, rx in _PATTERNS:
                if not any(buf.find(mk, 0, n) >= 0 for mk in markers):
                    continue
                m = rx.search(buf, 0, n)
                if m:
                    key = (rule, path, hashlib.sha256(m.group(0)).hexdigest())
                    seen.setdefault(key, diff_id)

        _walk_files(tree, f)
    out = []
    for (rule, path, _), diff_id in sorted(seen.items()):
        deleted = not merged.exists(path)
        out.append({"rule": rule, "severity": "high", "layer": diff_id, "path": path, "deleted": deleted,
                    "message": f"{path}: {rule.removeprefix('secret-').replace('-', ' ')} in layer {diff_id[:19]}"
                               + (" (deleted by a later layer, still in the image's layers)" if deleted else "")})
    return out
