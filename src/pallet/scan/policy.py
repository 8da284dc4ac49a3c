"""Policy findings, each with a rule id and a severity (docs/scan.md lists them):

- ``secret-private-key``, ``secret-aws-access-key``, ``secret-github-token``, ``secret-slack-token``,
  ``secret-gcp-api-key``, ``secret-azure-storage-key``, ``secret-gitlab-token``, ``secret-npm-token``,
  ``secret-pypi-token``, ``secret-stripe-key`` (these six in text files only)
  (high): in ANY layer, including files a later layer deleted or replaced: every layer's own
  files are read (by fd, no symlink followed), and a secret is attributed to the lowest layer
  that holds it;
- ``secret-env`` (high): a config ``Env`` whose name says password/secret/token/key with a value;
- ``setuid`` / ``setgid`` (low): such regular files in the image's tree;
- ``world-writable`` (medium): a file or directory anyone may write (a directory with the
  sticky bit, as ``/tmp``, is not one; symlinks have no mode of their own);
- ``package-cache`` (low): a package manager's download cache or index left in the image;
- ``ssh-server`` (medium): an SSH server (``sshd``) in the image; ``port-22-exposed`` (medium):
  the config exposes port 22;
- ``no-healthcheck`` (info): the config has no ``HEALTHCHECK``;
- ``runs-as-root`` (low): the image's ``User`` is root or unset.

Files larger than :data:`SECRET_FILE_LIMIT` are not read for secrets (said in the docs).
A policy file (:func:`load`) disables rules, changes their severities and allow-lists paths
(:func:`apply`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat as _stat

from ..errors import ScanError

#: every rule and its default severity ("info" findings never fail ``--fail-on``)
RULES = {
    "secret-private-key": "high", "secret-aws-access-key": "high", "secret-github-token": "high",
    "secret-slack-token": "high", "secret-gcp-api-key": "high", "secret-azure-storage-key": "high",
    "secret-gitlab-token": "high", "secret-npm-token": "high", "secret-pypi-token": "high",
    "secret-stripe-key": "high", "secret-env": "high", "setuid": "low", "setgid": "low",
    "world-writable": "medium", "package-cache": "low", "ssh-server": "medium", "port-22-exposed": "medium",
    "no-healthcheck": "info", "runs-as-root": "low",
}
POLICY_SEVERITIES = ("info", "low", "medium", "high", "critical")

#: files above this size are not searched for secrets
SECRET_FILE_LIMIT = 1 << 20

#: (rule, markers one of which every match holds, pattern): the markers are looked for first
#: (a substring search runs at memory speed; the regex only where one is found); the first
#: four in every file, the token formats after them (credentials kept in configuration) only
#: in text files (no NUL byte in the first 8 KiB, as grep and git tell binary files). Each
#: marker is one pass over the file, so markers are as few as they can be: GitHub's five
#: prefixes are one regex starting with a literal (re's prefix search, one pass), Stripe's two
#: one substring. One pass for all (an alternation of every marker) was measured slower:
#: re tries the alternation at every byte that starts a marker (docs/scan.md, Performance).
_PATTERNS = [
    ("secret-private-key", (b"PRIVATE KEY",),
     re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("secret-aws-access-key", (b"AKIA", b"ASIA"), re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("secret-github-token", (re.compile(rb"gh[pousr]_"),), re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("secret-slack-token", (b"xox",), re.compile(rb"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
]
_TEXT_PATTERNS = [
    # Google Cloud API keys; Azure storage account keys in connection strings (88 base64 characters)
    ("secret-gcp-api-key", (b"AIza",), re.compile(rb"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")),
    ("secret-azure-storage-key", (b"AccountKey=",), re.compile(rb"AccountKey=[A-Za-z0-9+/]{86}==")),
    # registry and service tokens: GitLab personal access, npm, PyPI (a macaroon for pypi.org), Stripe
    ("secret-gitlab-token", (b"glpat-",), re.compile(rb"\bglpat-[0-9A-Za-z_-]{20,}")),
    ("secret-npm-token", (b"npm_",), re.compile(rb"\bnpm_[A-Za-z0-9]{36}\b")),
    ("secret-pypi-token", (b"pypi-AgEIcHlwaS5vcmc",), re.compile(rb"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}")),
    ("secret-stripe-key", (b"k_live_",), re.compile(rb"\b[rs]k_live_[0-9A-Za-z]{24,}\b")),
]
_ALL_PATTERNS = _PATTERNS + _TEXT_PATTERNS
_ENV_SECRET = re.compile(r"(pass(word|wd)?|secret|token|api_?key|private_?key|credentials?|_key)$", re.I)


def runs_as_root(config: dict) -> list[dict]:
    cfg = config.get("config") if isinstance(config, dict) else None
    user = (cfg or {}).get("User") or "" if isinstance(cfg, dict) else ""
    name = user.split(":", 1)[0] if isinstance(user, str) else ""
    if name in ("", "0", "root"):
        return [{"rule": "runs-as-root", "severity": RULES["runs-as-root"], "layer": None, "path": None,
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
            out.append({"rule": "secret-env", "severity": RULES["secret-env"], "layer": None, "path": None,
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


def tree_files(tree) -> list[dict]:
    """setuid/setgid files and world-writable paths of the merged tree, in one walk."""
    out = []

    def f(path, dfd, name, st):
        mode = st.st_mode
        if _stat.S_ISREG(mode) and mode & (_stat.S_ISUID | _stat.S_ISGID):
            for bit, rule in ((_stat.S_ISUID, "setuid"), (_stat.S_ISGID, "setgid")):
                if mode & bit:
                    out.append({"rule": rule, "severity": RULES[rule], "layer": None, "path": path,
                                "message": f"{path} is {rule} (mode {_stat.S_IMODE(mode):o})"})
        if mode & _stat.S_IWOTH and not _stat.S_ISLNK(mode) and not (_stat.S_ISDIR(mode) and mode & _stat.S_ISVTX):
            kind = "directory" if _stat.S_ISDIR(mode) else "file"
            out.append({"rule": "world-writable", "severity": RULES["world-writable"], "layer": None, "path": path,
                        "message": f"{path} is a world-writable {kind} (mode {_stat.S_IMODE(mode):o})"})

    _walk_files(tree, f)
    return out


#: (manager, directory, names in it that are not cache, whether its subdirectories count)
_CACHES = (
    ("apt", "/var/cache/apt/archives", {"lock", "partial"}, False),
    ("apt", "/var/cache/apt", set(), False),  # pkgcache.bin, srcpkgcache.bin
    ("apt", "/var/lib/apt/lists", {"lock", "partial", "auxfiles"}, False),
    ("apk", "/var/cache/apk", set(), True),
    ("dnf", "/var/cache/dnf", set(), True),
    ("yum", "/var/cache/yum", set(), True),
    ("pip", "/root/.cache/pip", set(), True),
    ("npm", "/root/.npm/_cacache", set(), True),
)


def package_caches(tree) -> list[dict]:
    """Package managers' caches left behind: each directory of :data:`_CACHES` holding more than
    its bookkeeping (its size summed by a walk that follows no symlink)."""
    out = []
    for manager, path, keep, deep in _CACHES:
        if not [n for n in tree.listdir(path) if n not in keep]:
            continue
        total = [0, 0]

        def visit(dpath, dfd, entries, total=total, keep=keep, deep=deep):
            for n in entries:
                if n in keep:
                    continue
                try:
                    st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                if _stat.S_ISREG(st.st_mode):
                    total[0] += 1
                    total[1] += st.st_size
            return deep

        tree.walk(visit, path)
        if not total[0]:
            continue
        out.append({"rule": "package-cache", "severity": RULES["package-cache"], "layer": None, "path": path,
                    "message": f"{path}: {manager}'s cache left behind ({total[0]} files, {total[1]} bytes)"})
    return out


def ssh_server(tree, config: dict) -> list[dict]:
    out = []
    for path in ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"):
        if tree.exists(path):
            out.append({"rule": "ssh-server", "severity": RULES["ssh-server"], "layer": None, "path": path,
                        "message": f"{path}: an SSH server in the image"})
            break
    cfg = config.get("config") if isinstance(config, dict) else None
    ports = (cfg or {}).get("ExposedPorts") if isinstance(cfg, dict) else None
    if isinstance(ports, dict) and any(isinstance(k, str) and k.split("/", 1)[0] == "22" and
                                       (k.split("/", 1) + ["tcp"])[1] == "tcp" for k in ports):
        out.append({"rule": "port-22-exposed", "severity": RULES["port-22-exposed"], "layer": None, "path": None,
                    "message": "the config exposes port 22/tcp (SSH)"})
    return out


def no_healthcheck(config: dict) -> list[dict]:
    cfg = config.get("config") if isinstance(config, dict) else None
    hc = (cfg or {}).get("Healthcheck") if isinstance(cfg, dict) else None
    test = hc.get("Test") if isinstance(hc, dict) else None
    if isinstance(test, list) and test and test[0] != "NONE":
        return []
    return [{"rule": "no-healthcheck", "severity": RULES["no-healthcheck"], "layer": None, "path": None,
             "message": "the config has no HEALTHCHECK"}]


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
            patterns = _PATTERNS if buf.find(b"\0", 0, min(n, 8192)) >= 0 else _ALL_PATTERNS
            for rule, markers, rx in patterns:
                if not any(buf.find(mk, 0, n) >= 0 if isinstance(mk, bytes) else mk.search(buf, 0, n)
                           for mk in markers):
                    continue
                m = rx.search(buf, 0, n)
                if m:
                    key = (rule, path, hashlib.sha256(m.group(0)).hexdigest())
                    seen.setdefault(key, diff_id)

        _walk_files(tree, f)
    out = []
    for (rule, path, _), diff_id in sorted(seen.items()):
        deleted = not merged.exists(path)
        out.append({"rule": rule, "severity": RULES[rule], "layer": diff_id, "path": path, "deleted": deleted,
                    "message": f"{path}: {rule.removeprefix('secret-').replace('-', ' ')} in layer {diff_id[:19]}"
                               + (" (deleted by a later layer, still in the image's layers)" if deleted else "")})
    return out


class Policy:
    """A policy file's settings: rules disabled, severities changed, paths allowed."""

    def __init__(self, disabled=(), severities=None, allow=(), rule_allow=None, fail_on=None, path=None):
        self.disabled = set(disabled)
        self.severities = dict(severities or {})
        self.allow = list(allow)
        self.rule_allow = dict(rule_allow or {})
        self.fail_on = fail_on
        self.path = path


#: a policy file's size limit (it is a short list of settings)
POLICY_LIMIT = 1 << 20


def load(path: str) -> Policy:
    """The policy file ``path`` (YAML, of which JSON is a subset; docs/scan.md gives the format);
    a file that cannot be read or says something wrong is a ScanError naming it."""
    import yaml

    def bad(what: str) -> ScanError:
        return ScanError(f"--policy {path}: {what}")

    try:
        with open(path, "rb") as f:
            data = f.read(POLICY_LIMIT + 1)
    except OSError as e:
        raise bad(e.strerror or str(e)) from None
    if len(data) > POLICY_LIMIT:
        raise bad(f"larger than {POLICY_LIMIT} bytes")
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        where = getattr(e, "problem_mark", None)
        raise bad("not valid YAML" + (f" (line {where.line + 1})" if where else "")) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad("the top level must be a mapping (fail-on, allow, rules)")
    unknown = set(doc) - {"fail-on", "allow", "rules"}
    if unknown:
        raise bad(f"unknown key {sorted(map(str, unknown))[0]!r} (fail-on, allow, rules)")

    def globs(v, where: str) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(g, str) and g.startswith("/") for g in v):
            raise bad(f"{where} must be a list of absolute paths (globs)")
        return v

    def severity(v, where: str) -> str:
        if v not in POLICY_SEVERITIES:
            raise bad(f"{where}: {v!r} is not a severity ({', '.join(POLICY_SEVERITIES)})")
        return v

    pol = Policy(path=path)
    if "fail-on" in doc:
        pol.fail_on = severity(doc["fail-on"], "fail-on")
        if pol.fail_on == "info":
            raise bad("fail-on: 'info' findings never fail a scan (low, medium, high, critical)")
    if "allow" in doc:
        pol.allow = globs(doc["allow"], "allow")
    rules = doc.get("rules") or {}
    if not isinstance(rules, dict):
        raise bad("rules must be a mapping of rule ids")
    for rid, v in rules.items():
        if rid not in RULES:
            raise bad(f"rules: no rule {rid!r} (pallet's rules: {', '.join(RULES)})")
        if v is False or v in ("off", "disabled"):
            pol.disabled.add(rid)
        elif isinstance(v, str):
            pol.severities[rid] = severity(v, f"rules.{rid}")
        elif isinstance(v, dict):
            extra = set(v) - {"enabled", "severity", "allow"}
            if extra:
                raise bad(f"rules.{rid}: unknown key {sorted(map(str, extra))[0]!r} (enabled, severity, allow)")
            if "enabled" in v:
                if not isinstance(v["enabled"], bool):
                    raise bad(f"rules.{rid}.enabled must be true or false")
                if not v["enabled"]:
                    pol.disabled.add(rid)
            if "severity" in v:
                pol.severities[rid] = severity(v["severity"], f"rules.{rid}.severity")
            if "allow" in v:
                pol.rule_allow[rid] = globs(v["allow"], f"rules.{rid}.allow")
        elif v is not True and v is not None:
            raise bad(f"rules.{rid}: off, a severity, or a mapping (enabled, severity, allow)")
    return pol


def apply(findings: list[dict], pol: Policy | None) -> list[dict]:
    """``findings`` as ``pol`` has them: disabled rules and allowed paths dropped, severities set."""
    if pol is None:
        return findings
    out = []
    for f in findings:
        rid = f["rule"]
        if rid in pol.disabled:
            continue
        path = f.get("path")
        if path and any(fnmatch.fnmatchcase(path, g) for g in pol.allow + pol.rule_allow.get(rid, [])):
            continue
        if rid in pol.severities:
            f = dict(f, severity=pol.severities[rid])
        out.append(f)
    return out
