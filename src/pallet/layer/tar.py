"""The layer codec's tar reader, public: :class:`TarReader` walks a (decompressed) tar stream
header by header (``next()`` gives a :class:`Header` or None at the end), with the type
flags it reports. The codec itself (``_tar``) stays private to :mod:`pallet.layer`."""

from __future__ import annotations

from ._tar import AREG, BLK, CHR, DIR, FIFO, LNK, REG, SYM, Header, TarReader

__all__ = ["AREG", "BLK", "CHR", "DIR", "FIFO", "LNK", "REG", "SYM", "Header", "TarReader"]
