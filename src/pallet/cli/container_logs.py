"""``logs [-f] [--tail N] [-t] [--since T] [--until T] [-n/--names] CONTAINER...``: conmon's
k8s-file logs, stdout to stdout and stderr to stderr. With several containers every line starts
with its container's short ID (its name with ``--names``), as podman 4.3's; their lines are
merged by their log times, and ``-f`` follows them all until every one has exited.

Logs are read in bounded pieces, never whole: ``--tail N`` reads back from the end of the file
to where its last N lines start; the rest streams (memory stays bounded however large the log).
As podman's, ``--tail`` counts the last lines first, then ``--since``/``--until`` filter them.
"""

from __future__ import annotations

import os
import sys

#: how much of a log one read takes
CHUNK = 1 << 16
#: the most a line without its end may hold (conmon writes lines of at most 8 KiB; anything longer
#: is cut, so a log without newlines cannot fill the memory)
MAX_LINE = 1 << 20


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

    def seek_tail(self, n: int) -> None:
        """Start reading where the last ``n`` messages (lines whose last part is ``F``) begin:
        blocks read back from the end, one at a time."""
        self.open()
        if self.fd is None or n < 0:
            return
        end = os.lseek(self.fd, 0, os.SEEK_END)
        if n == 0:
            return  # from the end: nothing of what is there
        pos, rest, full = end, b"", 0
        tail_end = None  # bytes after the last newline are a line still being written: not counted
        while pos > 0:
            step = min(CHUNK, pos)
            pos -= step
            block = os.pread(self.fd, step, pos) + rest
            lines = block.split(b"\n")
            offset = pos + len(lines[0]) + 1  # where lines[1] starts
            starts = []
            for line in lines[1:]:
                starts.append((offset, line))
                offset += len(line) + 1
            if pos == 0:  # the file's first line is whole
                starts.insert(0, (0, lines[0]))
            rest = lines[0]  # else it may continue in the block before
            if tail_end is None and len(lines) > 1:
                tail_end = starts[-1][0]
            for start, line in reversed(starts):
                if tail_end is None or start >= tail_end:
                    continue
                if _is_full(line):
                    full += 1
                    if full > n:  # the message before the last n ends here
                        os.lseek(self.fd, start + len(line) + 1, os.SEEK_SET)
                        return
            if len(rest) > MAX_LINE:  # conmon never writes such lines: no message starts in it
                rest = b""
        os.lseek(self.fd, 0, os.SEEK_SET)

    def read(self, limit: int = CHUNK) -> bytes:
        """Complete lines written since the last read, about ``limit`` bytes at most."""
        self.open()
        if self.fd is None:
            return b""
        try:
            chunk = os.read(self.fd, limit)
        except BlockingIOError:
            chunk = b""
        data = self.buf + chunk
        done, nl, self.buf = data.rpartition(b"\n")
        if not nl and len(self.buf) > MAX_LINE:  # no line end in sight: take it as one
            done, self.buf = self.buf, b""
            return done + b"\n"
        return done + b"\n" if nl else b""

    def lines(self):
        """Every line from here to the end of the file, parsed, read a block at a time."""
        while True:
            data = self.read()
            if not data:
                if self.fd is None or not self.more():
                    return
                continue
            yield from parse_log(data)

    def poll(self, final: bool = False) -> list:
        """Parsed lines written since the last read (a bounded piece)."""
        return parse_log(self.read())

    def more(self) -> bool:
        """Is there more to read than the unfinished line already kept?"""
        try:
            return os.lseek(self.fd, 0, os.SEEK_CUR) < os.fstat(self.fd).st_size
        except OSError:
            return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _JournalSource:
    """One ``--log-driver journald`` container's entries (conmon's: ``CONTAINER_ID_FULL``,
    ``PRIORITY`` 6 stdout / 3 stderr, ``CONTAINER_PARTIAL_MESSAGE``), read as podman reads them
    but through ``journalctl -o json`` (the system's journal files), one entry at a time; a
    cursor keeps where following got to."""

    path = ""

    def __init__(self, cid: str, prefix: bytes):
        self.cid, self.prefix = cid, prefix
        self.new = True
        self.tail = -1
        self.cursor = None

    def seek_tail(self, n: int) -> None:
        self.tail = n

    def _entries(self, first: bool):
        import shutil
        import subprocess

        from ..errors import ContainerError

        exe = shutil.which("journalctl")
        if exe is None:
            raise ContainerError("the container logs to the journal and journalctl is not installed")
        argv = [exe, "-q", "--no-pager", "-o", "json"]
        if self.cursor:
            argv += ["--after-cursor", self.cursor]
        elif first and self.tail >= 0:
            argv += ["-n", str(max(self.tail, 1))]  # -n 1 for --tail 0: only where following starts
        argv.append(f"CONTAINER_ID_FULL={self.cid}")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            for raw in p.stdout:
                line = journal_line(raw)
                if line is not None:
                    self.cursor = line[4] or self.cursor
                    if not (first and self.tail == 0):
                        yield line[:4]
        finally:
            p.stdout.close()
            p.kill()
            p.wait()

    def lines(self):
        _journal_sync()
        return self._entries(first=True)

    def poll(self, final: bool = False) -> list:
        if final:  # conmon's last lines may still be in journald's socket: have them written first
            _journal_sync()
        return list(self._entries(first=False))

    def more(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _journal_sync() -> None:
    """``journalctl --sync``: journald has written every entry sent before the call (conmon's
    sends are datagrams it may not have read yet). Without the right to ask, nothing is done."""
    import shutil
    import subprocess

    exe = shutil.which("journalctl")
    if exe:
        try:
            subprocess.run([exe, "--sync"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass


def journal_line(raw: bytes):
    """One ``journalctl -o json`` entry as ``(time, stream, text, full, cursor)``, None when it is
    not a container's output line (podman's formatter: PRIORITY 6 stdout, 3 stderr)."""
    import datetime
    import json

    try:
        doc = json.loads(raw)
        usec = int(doc["__REALTIME_TIMESTAMP"])
        msg = doc.get("MESSAGE")
    except (ValueError, KeyError, TypeError):
        return None
    fd = {"6": 1, "3": 2}.get(doc.get("PRIORITY"))
    if fd is None or not isinstance(doc, dict):
        return None
    if isinstance(msg, list) and all(isinstance(b, int) and 0 <= b < 256 for b in msg):
        text = bytes(msg)  # journalctl's form for a message that is not UTF-8
    elif isinstance(msg, str):
        text = msg.encode("utf-8", "surrogateescape")
    else:
        return None
    if text.endswith(b"\n"):
        text = text[:-1]
    ts = datetime.datetime.fromtimestamp(usec / 1e6, datetime.timezone.utc).astimezone()
    cursor = doc.get("__CURSOR") if isinstance(doc.get("__CURSOR"), str) else None
    return ts.isoformat(timespec="microseconds"), fd, text, "CONTAINER_PARTIAL_MESSAGE" not in doc, cursor


def _is_full(line: bytes) -> bool:
    parts = line.split(b" ", 3)
    return len(parts) >= 3 and parts[2] == b"F"


def cmd_logs(args) -> int:
    import heapq
    import itertools
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
        if ((meta.get("extra") or {}).get("log") or {}).get("driver") == "journald":
            sources.append(_JournalSource(c["id"], prefix))
        else:
            sources.append(_Source(c["id"], ctrs.log_path(c["id"], meta), prefix))
    keep = log_window(args.since, args.until)
    try:
        def stream(i: int, src: _Source):
            if args.tail >= 0:
                src.seek_tail(args.tail)
            for ln in src.lines():
                if keep(ln[0]):
                    yield ln[0], i, src, ln

        streams = [stream(i, src) for i, src in enumerate(sources)]
        # one container's lines as they are; several containers' merged by their times (a file's
        # lines are in time order: the merge holds one line of each)
        merged = heapq.merge(*streams, key=lambda t: (t[0], t[1])) if multi else itertools.chain(*streams)
        emit(((src, ln) for _, _, src, ln in merged), args.timestamps)
        if not args.follow:
            return 0
        live = list(sources)
        delay = 0.01
        while live:
            progressed = False
            for src in list(live):
                # the state first, then the last lines: nothing written before the exit is lost
                ended = ctrs.state(src.cid).get("state") != "running" and \
                    not (src.path and os.path.exists(src.path + ".partial"))
                while True:
                    got = [(src, ln) for ln in src.poll(final=ended) if keep(ln[0])]
                    if got:
                        emit(got, args.timestamps)
                        progressed = True
                    if not ended or not src.more():
                        break
                if ended:
                    live.remove(src)
            if progressed:
                delay = 0.01
            elif live:
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        return 0
    finally:
        for src in sources:
            src.close()


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


def emit(lines, timestamps: bool) -> None:
    """``(source, (time, stream, text, full))`` pairs to stdout/stderr: the source's prefix and
    (``-t``) the time before each line's first part."""
    sys.stdout.flush()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    last = None
    for src, (ts, fd, text, full) in lines:
        stream = out if fd == 1 else err
        if last is not None and stream is not last:
            last.flush()  # the two streams' order kept where they share a terminal
        if src.new:
            stream.write(src.prefix + (ts.encode() + b" " if timestamps else b""))
        stream.write(text + (b"\n" if full else b""))
        src.new = full
        last = stream
    out.flush()
    err.flush()
