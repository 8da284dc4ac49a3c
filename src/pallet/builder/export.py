"""``--output``: a built image's files to a directory or a tar, or the image to a transport."""

from __future__ import annotations


from ..errors import BuildError, PalletError


def parse_output(output: str) -> dict | None:
    """``--output`` checked before anything is built, in buildah's words: ``{"type": "local" or
    "tar", "dest": ...}``, or None for a transport reference."""
    if output == "-":
        return {"type": "tar", "dest": "-"}
    if not (output.startswith("type=") or ("," in output and "=" in output.split(",", 1)[0])):
        if "=" not in output and ":" not in output:
            return {"type": "local", "dest": output}
        return None
    opts: dict = {}
    for part in output.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise BuildError(f"invalid build output options \"{output}\", expected format key=value")
        if k not in ("type", "dest"):
            raise BuildError(f"unrecognized key \"{k}\" in build output option: \"{output}\"")
        if k in opts:
            raise BuildError(f"duplicate \"{k}\" not supported")
        if k == "type" and v not in ("local", "tar"):
            raise BuildError(f"invalid type \"{v}\" selected for build output options \"{output}\"")
        opts[k] = v
    if "type" not in opts or "dest" not in opts or not opts["dest"]:
        raise BuildError(f"invalid build output option \"{output}\", accepted keys are type and dest must be present")
    if opts["dest"] == "-" and opts["type"] == "local":
        raise BuildError(f"invalid build output option \"{output}\", type=local and dest=- is not supported")
    return opts


def export(store, rec: dict, output: str, ctx=None, owner: str | None = None) -> None:
    """``--output``: ``type=local,dest=DIR``, ``type=tar,dest=FILE`` (``-``: stdout), or a
    transport reference (``oci:DIR:TAG``, ``docker-archive:FILE``, ...)."""
    opts = parse_output(output)
    if opts:
        typ, dest = opts["type"], opts["dest"]
        path = store.mount_image(rec["id"], owner=owner)
        try:
            if typ == "local":
                export_local(path, dest)
            else:
                export_tar(path, dest)
        finally:
            store.umount_image(rec["id"], owner=owner)
        return
    from ..images.refs import parse_reference
    from ..storage.transport import LocalReference
    from ..transports.base import SystemContext
    from ..transports.copy import CopyOptions, copy_image

    ctx = ctx or SystemContext()
    try:
        dest_ref = parse_reference(output, store)
    except PalletError as e:
        raise BuildError(f"--output {output}: {e}") from None
    copy_image(LocalReference(store, None, rec["id"]), dest_ref, ctx, ctx, CopyOptions(trust_local_source=True))


def export_local(src: str, dest: str) -> None:
    from .copy import copy_tree

    copy_tree(src, dest)


def export_tar(src: str, dest: str) -> None:
    import shutil
    import sys

    from ..layer.create import tar_directory

    with tar_directory(src) as stream:
        if dest == "-":
            shutil.copyfileobj(stream, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        else:
            from .. import _fs

            with _fs.output_file(dest, 0o644) as f:
                shutil.copyfileobj(stream, f, 1 << 20)
