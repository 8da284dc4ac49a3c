"""The ``sif:`` transport (read-only): SIF files made here (squashfs by tar2sqfs, the SIF
container by :func:`make_sif`), read by pallet and by skopeo side by side, pushed to the real
registry; hostile headers, descriptor tables and squashfs; the definition file's runscript."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import tarfile
import uuid

import pytest

from conftest import need, run_pallet
from pallet import errors
from pallet.transports import parse_reference
from pallet.transports import sif as _sif

MTIME = 1627931376
UUID = uuid.UUID("4f307b4c-58a8-4753-9c0f-21dceefed4a6")
DEFFILE = b"""BootStrap: docker
From: busybox

%environment
    # a comment, dropped
    export GREETING=hello

%post
    echo not in the image's command

%runscript
    echo "$GREETING from the runscript"
    exec /bin/sh "$@"
"""


# -- making SIF files ----------------------------------------------------------------------

def rootfs_tar() -> bytes:
    """A small root file system: owners other than root, a setuid file, a symlink, a hard link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, typ=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = typ, mode, uid, gid, MTIME, link
            ti.size = len(data) if typ == tarfile.REGTYPE else 0
            tf.addfile(ti, io.BytesIO(data) if data else None)
        add("./", tarfile.DIRTYPE, mode=0o755)
        add("./bin", tarfile.DIRTYPE, mode=0o755)
        add("./bin/tool", data=b"#!/bin/sh\necho tool\n", mode=0o4755)
        add("./bin/alias", tarfile.SYMTYPE, mode=0o777, link="tool")
        add("./home", tarfile.DIRTYPE, mode=0o755)
        add("./home/user", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000)
        add("./home/user/notes", data=b"mine\n", mode=0o600, uid=1000, gid=1000)
        add("./etc", tarfile.DIRTYPE, mode=0o755)
        add("./etc/hostname", data=b"sif\n")
    return buf.getvalue()


def make_squashfs(path: str, tar: bytes | None = None) -> bytes:
    subprocess.run([need("tar2sqfs"), "-q", "-f", path], input=rootfs_tar() if tar is None else tar,
                   check=True, capture_output=True)
    with open(path, "rb") as f:
        return f.read()


def descriptor(data_type: int, ident: int, offset: int, size: int, extra: bytes = b"", name: bytes = b"",
               used: bool = True) -> bytes:
    return struct.pack("<i?IIIqqqqqqq128s384s", data_type, used, ident, 0xF0000001, 0, offset, size, size,
                       MTIME, MTIME, 0, 0, name, extra)


def partition_extra(fstype: int = 1, parttype: int = 2, arch: bytes = b"02\x00") -> bytes:
    return struct.pack("<ii3s", fstype, parttype, arch)


def make_sif(path: str, objects: list[tuple[int, bytes, bytes]], *, arch: bytes = b"02\x00",
             total: int = 8, magic: bytes = b"SIF_MAGIC\x00", version: bytes = b"01\x00") -> None:
    """A SIF file as sylabs/sif lays one out: header, ``total`` descriptors at 4096, then the
    objects (``(data type, extra, data)``), each at a 4096-byte boundary."""
    table_off = 4096
    data_off = table_off + ((total * _sif.DESCRIPTOR_SIZE + 4095) // 4096) * 4096
    descs, blobs, at = [], [], data_off
    for i, (dt, extra, data) in enumerate(objects):
        descs.append(descriptor(dt, i + 1, at, len(data), extra, name=f"obj{i}".encode()))
        pad = -len(data) % 4096
        blobs.append(data + b"\0" * pad)
        at += len(data) + pad
    descs += [b"\0" * _sif.DESCRIPTOR_SIZE] * (total - len(objects))
    header = struct.pack("<32s10s3s3s16s8q", b"#!/usr/bin/env run-singularity\n", magic, version, arch,
                         UUID.bytes, MTIME, MTIME, total - len(objects), total, table_off,
                         total * _sif.DESCRIPTOR_SIZE, data_off, at - data_off)
    with open(path, "wb") as f:
        f.write(header.ljust(table_off, b"\0") + b"".join(descs).ljust(data_off - table_off, b"\0") + b"".join(blobs))


def standard_sif(tmp_path, deffile: bytes | None = DEFFILE, arch: bytes = b"02\x00") -> str:
    squash = make_squashfs(str(tmp_path / "rootfs.sqfs"))
    objects = [(_sif.DATA_PARTITION, partition_extra(arch=arch), squash)]
    if deffile is not None:
        objects.insert(0, (_sif.DATA_DEFFILE, b"", deffile))
    path = str(tmp_path / "image.sif")
    make_sif(path, objects, arch=arch)
    return path


# -- reading what a copy wrote -------------------------------------------------------------

def dir_image(path: str) -> tuple[dict, dict, bytes]:
    """(manifest, config, layer bytes) of a single-layer ``dir:`` image."""
    def blob(d):
        with open(os.path.join(path, d.split(":", 1)[1]), "rb") as f:
            return f.read()
    with open(os.path.join(path, "manifest.json"), "rb") as f:
        manifest = json.load(f)
    return manifest, json.loads(blob(manifest["config"]["digest"])), blob(manifest["layers"][0]["digest"])


def members(layer: bytes) -> dict[str, tuple]:
    """name -> (kind, mode, uid, gid, size or link target); a hard link counts as a file of its
    target's size (which of two linked names carries the data is the archiver's choice)."""
    out, sizes = {}, {}
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        for m in tf.getmembers():
            name = m.name if m.name.startswith(".") else "./" + m.name
            if m.isreg():
                sizes[name] = m.size
            kind = "file" if m.isreg() or m.islnk() else "dir" if m.isdir() else "symlink" if m.issym() else m.type
            what = sizes.get("./" + m.linkname.removeprefix("./")) if m.islnk() else (
                m.linkname if m.issym() else m.size if m.isreg() else 0)
            out[name.rstrip("/") or "."] = (kind, m.mode, m.uid, m.gid, what)
    return out


def layer_file(layer: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        return tf.extractfile(tf.getmember(name)).read()


# -- interop -------------------------------------------------------------------------------

def test_sif_read_as_skopeo_reads_it(tmp_path, skopeo):
    """The same SIF copied to dir: by pallet and by skopeo: the same config (but the layer's
    digest, a tar's bytes), the same files with the same owners and modes, the same runscript."""
    need("fakeroot")
    need("unsquashfs")  # skopeo's converter
    sif = standard_sif(tmp_path)
    run_pallet("copy", f"sif:{sif}", f"dir:{tmp_path}/p")
    subprocess.run([skopeo, "copy", "-q", f"sif:{sif}", f"dir:{tmp_path}/s"], check=True, capture_output=True)
    pm, pc, pl = dir_image(str(tmp_path / "p"))
    sm, sc, sl = dir_image(str(tmp_path / "s"))
    assert pm["layers"][0]["mediaType"] == sm["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    for c in (pc, sc):
        digest = c["rootfs"].pop("diff_ids")[0]
        assert c["history"][0].pop("created_by") == f"/bin/sh -c #(nop) ADD file:{digest[7:]} in /"
    assert pc == sc
    assert pc["architecture"] == "amd64" and pc["config"]["Cmd"] == ["/podman/runscript"]
    assert pc["created"] == "2021-08-02T19:09:36Z"
    assert pc["history"][0]["comment"] == f"imported from SIF, uuid: {UUID}"
    assert members(pl) == members(sl)
    assert members(pl)["./home/user/notes"] == ("file", 0o600, 1000, 1000, 5)
    assert members(pl)["./bin/tool"][1] == 0o4755
    script = layer_file(pl, "./podman/runscript")
    assert script == layer_file(sl, "./podman/runscript")
    assert script == (b'#!/bin/bash\nexport GREETING=hello\necho "$GREETING from the runscript"\n'
                      b'exec /bin/sh "$@"\n')


def test_sif_to_registry_and_back(tmp_path, registry, skopeo):
    """sif: -> the registry; skopeo pulls it, and its layer is pallet's, byte for byte."""
    sif = standard_sif(tmp_path, deffile=None, arch=b"04\x00")
    ref = f"docker://{registry.host}/sif-{os.getpid()}/busy:1"
    run_pallet("copy", "--dest-tls-verify=false", f"sif:{sif}", ref)
    out = subprocess.run([skopeo, "inspect", "--tls-verify=false", "--config", ref], check=True,
                         capture_output=True, text=True).stdout
    config = json.loads(out)
    assert config["architecture"] == "arm64" and config["config"]["Cmd"] == ["bash"]
    subprocess.run([skopeo, "copy", "-q", "--src-tls-verify=false", ref, f"dir:{tmp_path}/back"], check=True,
                   capture_output=True)
    _, _, layer = dir_image(str(tmp_path / "back"))
    assert "./podman/runscript" not in members(layer)  # no definition file: nothing injected
    assert members(layer)["./etc/hostname"] == ("file", 0o644, 0, 0, 4)
    p = run_pallet("inspect", f"sif:{sif}", "--format", "{{.Architecture}} {{.Os}}")
    assert p.stdout.strip() == "arm64 linux"


def test_sif_keeps_the_images_own_podman_dir(tmp_path):
    """An image with a /podman directory of its own keeps its metadata; the runscript goes in it."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        ti = tarfile.TarInfo("podman")
        ti.type, ti.mode, ti.uid = tarfile.DIRTYPE, 0o750, 7
        tf.addfile(ti)
    squash = make_squashfs(str(tmp_path / "r.sqfs"), tar.getvalue())
    sif = str(tmp_path / "x.sif")
    make_sif(sif, [(_sif.DATA_DEFFILE, b"", b"%runscript\necho hi\n"),
                   (_sif.DATA_PARTITION, partition_extra(), squash)])
    run_pallet("copy", f"sif:{sif}", f"dir:{tmp_path}/d")
    _, config, layer = dir_image(str(tmp_path / "d"))
    m = members(layer)
    assert m["./podman"][:3] == ("dir", 0o750, 7)
    assert m["./podman/runscript"][:4] == ("file", 0o755, 0, 0)
    assert list(m).count("./podman") == 1
    assert layer_file(layer, "./podman/runscript") == b"#!/bin/bash\n\necho hi\n"
    assert config["config"]["Cmd"] == ["/podman/runscript"]


# -- bad input -----------------------------------------------------------------------------

def test_sif_is_read_only(tmp_path):
    with pytest.raises(errors.Unsupported, match="can only be read from, not written to"):
        parse_reference(f"sif:{tmp_path}/x.sif").new_destination(None)
    p = run_pallet("copy", f"oci:{tmp_path}/nothing", f"sif:{tmp_path}/x.sif", check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "x.sif")


def _hostile(tmp_path, name: str) -> str:
    squash = b"hsqs" + b"\0" * 4092
    path = str(tmp_path / f"{name}.sif")
    if name == "magic":
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)], magic=b"NOT_MAGIC\x00")
    elif name == "version":
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)], version=b"02\x00")
    elif name == "short":
        with open(path, "wb") as f:
            f.write(b"#!/usr/bin/env run-singularity\n\0SIF_MAGIC\0")
    elif name == "table":  # the descriptor table runs past the end of the file
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)])
        with open(path, "r+b") as f:
            f.seek(96)  # DescriptorsOffset
            f.write(struct.pack("<q", 1 << 40))
    elif name == "count":
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)])
        with open(path, "r+b") as f:
            f.seek(88)  # DescriptorsTotal
            f.write(struct.pack("<q", -1))
    elif name == "object":  # an object's data past the end of the file
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)])
        with open(path, "r+b") as f:
            f.seek(4096 + 17)
            f.write(struct.pack("<qq", 8192, 1 << 50))
    elif name == "nopart":
        make_sif(path, [(_sif.DATA_DEFFILE, b"", b"%runscript\nx\n")])
    elif name == "empty":
        make_sif(path, [])
    elif name == "twoparts":
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), squash)] * 2)
    elif name == "ext3":
        make_sif(path, [(_sif.DATA_PARTITION, partition_extra(fstype=2), squash)])
    return path


HOSTILE = {
    "magic": (errors.InvalidDocument, "invalid SIF magic"),
    "version": (errors.InvalidDocument, "incompatible SIF version"),
    "short": (errors.InvalidDocument, "invalid SIF magic"),
    "table": (errors.InvalidDocument, "descriptor table"),
    "count": (errors.InvalidDocument, "not a valid count"),
    "object": (errors.InvalidDocument, "not within the file"),
    "nopart": (errors.InvalidDocument, "looking up rootfs from SIF file: object not found"),
    "empty": (errors.InvalidDocument, "no objects in image"),
    "twoparts": (errors.InvalidDocument, "multiple objects found"),
    "ext3": (errors.Unsupported, "Ext3: only squashfs is supported"),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_sif_hostile_headers_are_refused(tmp_path, monkeypatch, name):
    """Refused while reading the header and descriptors: nothing spooled, one line naming the file."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    path = _hostile(tmp_path, name)
    cls, words = HOSTILE[name]
    with pytest.raises(cls, match=words) as e:
        parse_reference(f"sif:{path}").new_source(None)
    assert path in str(e.value) and "\n" not in str(e.value)
    assert not any(n.startswith("pallet-spool") for n in os.listdir(tmp_path))


def test_sif_bad_squashfs_and_missing_file_fail_in_one_line(tmp_path):
    """A partition that is not a squashfs: sqfs2tar's words, exit 1, no spool left; a missing
    file: exit 2 as any missing image."""
    path = str(tmp_path / "bad.sif")
    make_sif(path, [(_sif.DATA_PARTITION, partition_extra(), b"hsqs" + os.urandom(8000))])
    env = {"TMPDIR": str(tmp_path)}
    p = run_pallet("copy", f"sif:{path}", f"dir:{tmp_path}/out", check=False, env=env)
    assert p.returncode == 1, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "converting rootfs from SquashFS to Tarball" in p.stderr
    assert not os.path.exists(tmp_path / "out")
    assert not any(n.startswith("pallet-spool") for n in os.listdir(tmp_path))
    p = run_pallet("inspect", f"sif:{tmp_path}/none.sif", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.unit
def test_deffile_sections_as_containers_image_reads_them():
    env, run = _sif.parse_deffile(b"%environment\n  A=1\n\n# c\n%files\nx y\n%runscript\n echo a\n\n echo b\r\n"
                                  b"%environment\nB=2\n")
    assert env == [b"A=1", b"B=2"] and run == [b"echo a", b"", b"echo b"]
    assert _sif.command_and_script(None) == ("bash", None)
    assert _sif.command_and_script(b"Bootstrap: docker\n%post\necho\n") == ("bash", None)
    assert _sif.command_and_script(b"%environment\nX=1") == ("/podman/runscript", b"#!/bin/bash\nX=1\n\n")
