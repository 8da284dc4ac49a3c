"""Progress bars on a terminal (stderr only): one line per blob, redrawn in place."""

from __future__ import annotations

import time

from ..transports.copy import Progress


class _Counting:
    def __init__(self, stream, bar):
        self._s = stream
        self._bar = bar

    def read(self, n=-1):
        b = self._s.read(n)
        self._bar.advance(len(b))
        return b

    def close(self):
        self._s.close()


class TerminalProgress(Progress):
    def __init__(self, out):
        super().__init__(lambda line: out.write(line + "\n"))
        self.out = out
        self._bars: list = []
        self._drawn = 0
        self._last = 0.0

    def emit(self, line: str) -> None:
        with self._lock:
            self._clear()
            self.out.write(line + "\n")
            self._draw()

    def blob(self, kind, desc, state):
        with self._lock:
            self._bars = [b for b in self._bars if b.digest != desc.digest]
            self._clear()
            self.out.write(f"Copying {kind} {(desc.digest or '').split(':')[-1][:12]} {state}\n")
            self._draw()

    def wrap(self, stream, kind, desc):
        bar = _Bar(self, kind, desc)
        with self._lock:
            self._bars.append(bar)
        return _Counting(stream, bar)

    def _clear(self):
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0

    def _draw(self):
        for b in self._bars:
            self.out.write(b.line() + "\n")
        self._drawn = len(self._bars)
        self.out.flush()

    def tick(self):
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        with self._lock:
            self._last = now
            self._clear()
            self._draw()


class _Bar:
    def __init__(self, owner, kind, desc):
        self.owner = owner
        self.kind = kind
        self.digest = desc.digest
        self.total = desc.size
        self.done = 0

    def advance(self, n):
        self.done += n
        self.owner.tick()

    def line(self) -> str:
        name = f"Copying {self.kind} {(self.digest or '').split(':')[-1][:12]}"
        if self.total and self.total > 0:
            frac = min(1.0, self.done / self.total)
            fill = int(frac * 30)
            return f"{name} [{'=' * fill}{' ' * (30 - fill)}] {_size(self.done)} / {_size(self.total)}"
        return f"{name} {_size(self.done)}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{n}B"
        n /= 1024
    return str(n)


