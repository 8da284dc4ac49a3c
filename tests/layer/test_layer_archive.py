"""The layer codec as a plain archive codec (``pallet cp``): ``tar_entry`` writes one entry
(renamed, or a directory's content) from an open directory, ``apply_layer(whiteouts="none")``
extracts ``.wh.`` names as files, ``owner`` owns every entry, ``replace_kind=False`` refuses
to swap a directory and a non-directory."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from pallet.errors import LayerError
from pallet.layer.apply import apply_layer
from pallet.layer.create import tar_entry

pytestmark = pytest.mark.unit


def _names(stream) -> list:
    data = b""
    with stream:
        while True:
            b = stream.read(1 << 20)
            if not b:
                break
            data += b
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf.getmembers()]


def _tree(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "f").write_text("f\n")
    (tmp_path / "d" / "sub" / "g").write_text("g\n")
    os.symlink("/etc/passwd", tmp_path / "d" / "abs")
    return os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)


def test_tar_entry_renames_or_takes_the_content(tmp_path):
    fd = _tree(tmp_path)
    try:
        assert sorted(_names(tar_entry(fd, b"d", b"new"))) == ["new", "new/abs", "new/f", "new/sub", "new/sub/g"]
        assert sorted(_names(tar_entry(fd, b"d", b""))) == ["abs", "f", "sub", "sub/g"]
        sfd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert _names(tar_entry(sfd, b"abs", b"abs")) == ["abs"]  # a symlink itself, never followed
        finally:
            os.close(sfd)
    finally:
        os.close(fd)


def _tar(*members) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.uid = ti.gid = 4321
            if data is not None:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw.seek(0)
    return raw


def test_plain_archive_whiteout_names_are_files(tmp_path):
    (tmp_path / "keep").write_text("k\n")
    apply_layer(_tar((".wh.keep", tarfile.REGTYPE, b"w\n")), str(tmp_path), whiteouts="none",
                owner=(os.getuid(), os.getgid()))
    assert (tmp_path / "keep").read_text() == "k\n" and (tmp_path / ".wh.keep").read_text() == "w\n"
    assert ((tmp_path / ".wh.keep").stat().st_uid, (tmp_path / ".wh.keep").stat().st_gid) == (os.getuid(), os.getgid())


@pytest.mark.parametrize("existing,entry", [("dir", tarfile.REGTYPE), ("file", tarfile.DIRTYPE)])
def test_replace_kind_refused(tmp_path, existing, entry):
    if existing == "dir":
        (tmp_path / "x").mkdir()
        (tmp_path / "x" / "inside").write_text("i\n")
    else:
        (tmp_path / "x").write_text("x\n")
    with pytest.raises(LayerError, match="cannot overwrite"):
        apply_layer(_tar(("x", entry, b"" if entry == tarfile.REGTYPE else None)), str(tmp_path), whiteouts="none",
                    replace_kind=False)
    assert (tmp_path / "x" / "inside").exists() if existing == "dir" else (tmp_path / "x").read_text() == "x\n"
