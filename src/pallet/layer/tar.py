"""The layer codec's tar reader and header writer, public: :class:`TarReader` walks a
(decompressed) tar stream header by header (``next()`` gives a :class:`Header` or None at the
end), with the type flags it reports; :func:`header` writes one entry's header blocks. The
codec itself (``_tar``) stays private to :mod:`pallet.layer`."""

from __future__ import annotations

from ._tar import AREG, BLK, CHR, DIR, FIFO, GNU_VOLHDR, LNK, REG, SYM, Header, TarReader, header

__all__ = ["AREG", "BLK", "CHR", "DIR", "FIFO", "GNU_VOLHDR", "LNK", "REG", "SYM", "Header", "TarReader", "header"]
