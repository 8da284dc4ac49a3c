"""``pallet sync``: copy many images (all tags of repositories, a tree of dir: images, or a
YAML list) to a registry namespace or a local directory, as skopeo sync does."""

from __future__ import annotations

import os
import posixpath
import re

from ..errors import ConfigError, InvalidReference, PalletError, UsageError
from ..oci import reference as _reference
from . import parse_reference
from .copy import CopyOptions, copy_image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .base import SystemContext


class _Job:
    __slots__ = ("src", "suffix", "ctx")

    def __init__(self, src, suffix: str, ctx):
        self.src = src
        self.suffix = suffix  # path under the destination, before --scoped trimming
        self.ctx = ctx


def _docker_jobs(text: str, ctx) -> list[_Job]:
    from . import docker

    named = _reference.parse(text)
    if named.digest:
        refs = [named]
    elif named.tag:
        refs = [named]
    else:
        refs = [named.with_tag(t) for t in docker.list_tags(docker.parse("//" + named.name), ctx)]
    return [_Job(parse_reference(f"docker://{r}"), str(r), ctx) for r in refs]


def _dir_jobs(base: str, ctx) -> list[_Job]:
    if not os.path.isdir(base):
        from ..errors import NotFound

        raise NotFound(f"sync source {base}: no such directory")
    base = os.path.abspath(base)
    jobs = []
    for root, dirs, files in os.walk(base):
        dirs.sort()
        if "manifest.json" in files:
            suffix = os.path.relpath(root, base)
            jobs.append(_Job(parse_reference(f"dir:{root}"), posixpath.basename(base) if suffix == "." else suffix, ctx))
            dirs[:] = []
    if not jobs:
        from ..errors import NotFound

        raise NotFound(f"sync source {base}: no dir: images found")
    return jobs


def _yaml_jobs(path: str, base_ctx: "SystemContext") -> list[_Job]:
    import copy as _copy

    import yaml

    from . import docker

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"reading {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of registries")
    jobs = []
    for registry, spec in doc.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: {registry}: expected a mapping")
        ctx = _copy.copy(base_ctx)
        if "tls-verify" in spec:
            ctx.tls_verify = bool(spec["tls-verify"])
        if spec.get("cert-dir"):
            ctx.cert_dir = spec["cert-dir"]
        creds = spec.get("credentials")
        if creds:
            if not isinstance(creds, dict):
                raise ConfigError(f"{path}: {registry}.credentials: expected username and password")
            ctx.creds = f"{creds.get('username', '')}:{creds.get('password', '')}"
        images = spec.get("images") or {}
        by_regex = spec.get("images-by-tag-regex") or {}
        if not isinstance(images, dict) or not isinstance(by_regex, dict):
            raise ConfigError(f"{path}: {registry}: images and images-by-tag-regex must be mappings")
        for repo, tags in images.items():
            base = f"{registry}/{repo}"
            if tags:
                if not isinstance(tags, list):
                    raise ConfigError(f"{path}: {registry}.images.{repo}: expected a list of tags")
                for tag in tags:
                    sep = "@" if str(tag).startswith("sha256:") else ":"
                    jobs.extend(_docker_jobs(f"{base}{sep}{tag}", ctx))
            else:
                jobs.extend(_docker_jobs(base, ctx))
        for repo, pattern in by_regex.items():
            try:
                rx = re.compile(str(pattern))
            except re.error as e:
                raise ConfigError(f"{path}: {registry}.images-by-tag-regex.{repo}: {e}") from None
            named = _reference.parse(f"{registry}/{repo}")
            for tag in docker.list_tags(docker.parse("//" + named.name), ctx):
                if rx.search(tag):
                    jobs.append(_Job(parse_reference(f"docker://{named.with_tag(tag)}"), str(named.with_tag(tag)), ctx))
    return jobs


def _destination(kind: str, dest: str, suffix: str):
    if kind == "docker":
        return parse_reference("docker://" + posixpath.join(dest, suffix))
    if kind == "dir":
        return parse_reference("dir:" + os.path.join(dest, suffix))
    # oci: one layout per repository, the tag as the ref name
    name, _, tag = suffix.rpartition(":") if ":" in suffix.rsplit("/", 1)[-1] else (suffix, "", "latest")
    return parse_reference(f"oci:{os.path.join(dest, name)}:{tag}")


def sync(src_kind: str, source: str, dest_kind: str, destination: str, src_ctx: "SystemContext",
         dest_ctx: "SystemContext", options: CopyOptions, *, scoped: bool = False, keep_going: bool = False,
         dry_run: bool = False, log=None) -> int:
    """Copy every image the source names; returns how many failed (with keep_going)."""
    if src_kind == "dir" and dest_kind != "docker":
        raise UsageError("sync from dir is only supported to docker")
    if src_kind == "docker":
        jobs = _docker_jobs(source, src_ctx)
    elif src_kind == "dir":
        jobs = _dir_jobs(source, src_ctx)
    elif src_kind == "yaml":
        jobs = _yaml_jobs(source, src_ctx)
    else:
        raise UsageError(f"unknown sync source type {src_kind!r}")
    if dest_kind in ("dir", "oci") and not dry_run:
        os.makedirs(destination, exist_ok=True)
    failures = 0
    for i, job in enumerate(jobs, 1):
        suffix = job.suffix if scoped else posixpath.basename(job.suffix)
        try:
            dest = _destination(dest_kind, destination, suffix)
        except InvalidReference as e:
            raise UsageError(f"destination for {job.src}: {e}") from None
        if log:
            # skopeo's lines, its from="..." to="..." fields as logrus writes them (scripts parse them)
            log(f"{'Would have copied' if dry_run else 'Copying'} image ref {i}/{len(jobs)} "
                f"from={_quoted(str(job.src))} to={_quoted(str(dest))}")
        if dry_run:
            continue
        try:
            if dest_kind == "dir":
                os.makedirs(os.path.dirname(str(dest)[4:]) or ".", exist_ok=True)
            copy_image(job.src, dest, job.ctx, dest_ctx, options)
        except PalletError as e:
            if not keep_going:
                raise
            failures += 1
            if log:
                log(f"Error copying {job.src}: {e}")
    if log:
        log(f"{'Would have synced' if dry_run else 'Synced'} {len(jobs) - failures} images from "
            f"{len({_repository(job.suffix) for job in jobs})} sources")
    return failures


def _quoted(text: str) -> str:
    """A value as logrus quotes it (Go's %q, for the characters paths and references hold)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _repository(suffix: str) -> str:
    """``host/path`` of a ``host/path:tag`` or ``host/path@digest`` (skopeo counts sources so)."""
    name = suffix.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
