"""``logs [-f] [--tail N] [-t] [--since T] [--until T] [-n/--names] CONTAINER...``: conmon's
k8s-file logs, stdout to stdout and stderr to stderr. With several containers every line starts
with its container's short ID (its name with ``--names``), as podman 4.3's; their lines are
merged by their log times, and ``-f`` follows them all until every one has exited.
"""

from __future__ import annotations

import os
import sys


class _Source:
    """One container's log: the file held open (a ``--rm`` container's log can be removed while
    it is followed), where reading got to, a line not finished yet."""

    def __init__(self, cid: str, path: str, prefix: bytes):
        self.cid, self.path, self.prefix = cid, path, prefix
        self.fd = None
        self.buf = b""
        self.new = True  # the next text starts a line (prefix and time go before it)
        self.open()

    def open(self) -> None:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                self.fd = None

    def read(self) -> bytes:
        """The complete lines written since the last read."""
        self.open()
        if self.fd is None:
            return b""
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = self.buf + b"".join(chunks)
        done, _, self.buf = data.rpartition(b"\n")
        return done + b"\n" if done else b""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def cmd_logs(args) -> int:
    import time

    from ..errors import ContainerError
    from .container_common import open_containers

    ctrs = open_containers(args)
    recs = [ctrs.get(t) for t in args.containers]  # every one known before a line is shown
    multi = len(recs) > 1
    sources = []
    for c in recs:
        meta = c["metadata"]["pallet"]
        if ((meta.get("extra") or {}).get("log") or {}).get("driver") == "none":
            raise ContainerError("this container is using the 'none' log driver, cannot read logs: this container "
                                 "is not logging output")
        prefix = ((meta.get("name") if args.names else c["id"][:12]) + " ").encode() if multi else b""
        sources.append(_Source(c["id"], ctrs.log_path(c["id"], meta), prefix))
    keep = log_window(args.since, args.until)
    try:
        lines = []
        for src in sources:
            mine = [ln for ln in parse_log(src.read()) if keep(ln[0])]
            if args.tail >= 0:
                mine = tail_messages(mine, args.tail)
            lines += [(src, ln) for ln in mine]
        emit(_merged(lines, multi), args.timestamps)
        if not args.follow:
            return 0
        live = list(sources)
        delay = 0.01
        while live:
            got = []
            for src in list(live):
                # the state first, then the last lines: nothing written before the exit is lost
                ended = ctrs.state(src.cid).get("state") != "running" and not os.path.exists(src.path + ".partial")
                got += [(src, ln) for ln in parse_log(src.read()) if keep(ln[0])]
                if ended:
                    live.remove(src)
            if got:
                emit(_merged(got, multi), args.timestamps)
                delay = 0.01
            elif live:
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        return 0
    finally:
        for src in sources:
            src.close()


def _merged(lines: list, multi: bool) -> list:
    """One container's lines as they are; several containers' lines in the order of their times
    (a partial line stays before its end)."""
    if multi:
        lines = sorted(lines, key=lambda sl: sl[1][0])
    return lines


def log_window(since: str | None, until: str | None):
    """``logs --since/--until``: a test of a line's k8s-file timestamp (podman's time forms:
    RFC 3339, a date, Unix seconds, or a duration before now)."""
    import time

    from ..errors import UsageError
    from ..oci.times import parse_rfc3339
    from ._filters import parse_until

    now = time.time()
    bounds = []
    for flag, value in (("--since", since), ("--until", until)):
        if value is None:
            bounds.append(None)
            continue
        try:
            bounds.append(parse_until(value, now, flag))
        except UsageError:
            raise UsageError(f"invalid {flag} {value!r}: want a time (2006-01-02T15:04:05Z, Unix seconds) or "
                             "a duration before now (10m, 1h)") from None
    lo, hi = bounds
    if lo is None and hi is None:
        return lambda ts: True

    def keep(ts: str) -> bool:
        try:
            t = parse_rfc3339(ts)
        except ValueError:
            return True  # a line without a readable time is shown, as written
        return (lo is None or t >= lo) and (hi is None or t <= hi)

    return keep


def parse_log(data: bytes) -> list:
    """k8s-file lines: ``TIMESTAMP STREAM P|F TEXT`` (P: a partial line, continued by the next)."""
    out = []
    for line in data.split(b"\n"):
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        ts, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) > 3 else b""
        out.append((ts.decode("ascii", "replace"), 2 if stream == b"stderr" else 1, text, tag == b"F"))
    return out


def tail_messages(lines: list, n: int) -> list:
    ends = [i for i, line in enumerate(lines) if line[3]]
    if n == 0:
        return []
    if len(ends) <= n:
        return lines
    start = ends[-n - 1] + 1
    return lines[start:]


def emit(lines: list, timestamps: bool) -> None:
    """``(source, (time, stream, text, full))`` pairs to stdout/stderr: the source's prefix and
    (``-t``) the time before each line's first part."""
    sys.stdout.flush()
    for src, (ts, fd, text, full) in lines:
        stream = sys.stdout.buffer if fd == 1 else sys.stderr.buffer
        if src.new:
            stream.write(src.prefix + (ts.encode() + b" " if timestamps else b""))
        stream.write(text + (b"\n" if full else b""))
        src.new = full
        stream.flush()
