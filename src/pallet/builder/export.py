"""``--output``: a built image's files to a directory or a tar, or the image to a transport."""

from __future__ import annotations


from ..errors import BuildError, PalletError


def export(store, rec: dict, output: str, ctx=None, owner: str | None = None) -> None:
    """``--output``: ``type=local,dest=DIR``, ``type=tar,dest=FILE`` (``-``: stdout), or a
    transport reference (``oci:DIR:TAG``, ``docker-archive:FILE``, ...)."""
    opts = {}
    if output.startswith("type=") or ("," in output and "=" in output.split(",", 1)[0]):
        for part in output.split(","):
            k, _, v = part.partition("=")
            opts[k.strip()] = v.strip()
    elif "=" not in output and ":" not in output:
        opts = {"type": "local", "dest": output}
    if opts:
        typ = opts.get("type", "local")
        dest = opts.get("dest")
        if not dest:
            raise BuildError(f"--output {output}: missing dest=")
        path = store.mount_image(rec["id"], owner=owner)
        try:
            if typ == "local":
                export_local(path, dest)
            elif typ == "tar":
                export_tar(path, dest)
            else:
                raise BuildError(f"--output: unknown type {typ!r}: want local or tar, or a transport reference")
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
    copy_image(LocalReference(store, None, rec["id"]), dest_ref, ctx, ctx, CopyOptions())


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
