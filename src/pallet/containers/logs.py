"""Reading a container's logs: conmon's k8s-file log and ``--log-driver journald`` entries, as
``pallet logs`` and the Python API's ``ManagedContainer.logs`` read them.

A log is read as *lines*: ``(time, stream, text, full)`` tuples -- ``time`` the RFC 3339 text
conmon wrote, ``stream`` 1 (stdout) or 2 (stderr), ``text`` the bytes without their newline,
``full`` False for a piece of a long line continued by the next (k8s-file's ``P``, the journal's
``CONTAINER_PARTIAL_MESSAGE``).

A source (:func:`open_log`) is read in bounded pieces, never whole: :meth:`FileLog.seek_tail`
reads back from the end of the file to where its last N lines start, the rest streams, so memory
stays bounded however large the log. :func:`history` gives what is logged now (several
containers' lines merged by their times), :func:`follow` what comes after, until the containers
exited. As podman's, ``tail`` counts the last lines first, then the :func:`window` filters them.

Nothing here prints; the callers write the lines where they go.
"""

from __future__ import annotations

import os

#: how much of a log one read takes
CHUNK = 1 << 16
#: the most a line without its end may hold (conmon writes lines of at most 8 KiB; anything longer
#: is cut, so a log without newlines cannot fill the memory)
MAX_LINE = 1 << 20


def log_driver(meta: dict) -> str:
    """The container's log driver (its record's ``metadata.pallet``): ``k8s-file`` unless
    ``--log-driver`` chose ``journald`` or ``none``."""
    return ((meta.get("extra") or {}).get("log") or {}).get("driver") or "k8s-file"


def check_readable(rec: dict) -> str:
    """The log driver of a container record whose logs can be read;
    :class:`pallet.errors.ContainerError` (podman's words) for a ``--log-driver none`` one."""
    from ..errors import ContainerError

    driver = log_driver(rec["metadata"]["pallet"])
    if driver == "none":
        raise ContainerError("this container is using the 'none' log driver, cannot read logs: this container "
                             "is not logging output", reference=rec["id"])
    return driver


def open_log(ctrs, rec: dict, prefix: bytes = b""):
    """The log of one container record of ``ctrs`` (a ``containers.container.Containers``):
    a :class:`JournalLog` for ``--log-driver journald``, else a :class:`FileLog`, opened now
    (close it after). ``prefix`` is for the caller (``logs`` with several containers puts it
    before each line). :class:`pallet.errors.ContainerError` for a ``--log-driver none`` one."""
    meta = rec["metadata"]["pallet"]
    if check_readable(rec) == "journald":
        return JournalLog(rec["id"], prefix)
    return FileLog(rec["id"], ctrs.log_path(rec["id"], meta), prefix)


class FileLog:
    """One container's k8s-file log: the file held open (a ``--rm`` container's log can be
    removed while it is followed), where reading got to, a line not finished yet. ``new``: the
    next text starts a line (for the caller's prefix and time)."""

    def __init__(self, cid: str, path: str, prefix: bytes = b""):
        self.cid, self.path, self.prefix = cid, path, prefix
        self.fd = None
        self.buf = b""
        self.new = True
        self.open()

    def open(self) -> None:
        """Open the file if that is not done yet (a log not written yet is read as empty)."""
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                self.fd = None

    def seek_tail(self, n: int) -> None:
        """Start reading where the last ``n`` messages (lines whose last part is ``F``) begin:
        blocks read back from the end, one at a time. ``n`` < 0: from the start."""
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
        if self.fd is None:
            return False
        try:
            return os.lseek(self.fd, 0, os.SEEK_CUR) < os.fstat(self.fd).st_size
        except OSError:
            return False

    def ended(self, ctrs) -> bool:
        """Has the container exited, conmon done writing the log? (asked before the last read:
        nothing written before the exit is lost)"""
        return ctrs.state(self.cid).get("state") != "running" and not os.path.exists(self.path + ".partial")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class JournalLog:
    """One ``--log-driver journald`` container's entries (conmon's: ``CONTAINER_ID_FULL``,
    ``PRIORITY`` 6 stdout / 3 stderr, ``CONTAINER_PARTIAL_MESSAGE``), read as podman reads them
    but through ``journalctl -o json`` (the system's journal files), one entry at a time; a
    cursor keeps where following got to."""

    path = ""

    def __init__(self, cid: str, prefix: bytes = b""):
        self.cid, self.prefix = cid, prefix
        self.new = True
        self.tail = -1
        self.cursor = None

    def seek_tail(self, n: int) -> None:
        """Start with the last ``n`` entries (``n`` < 0: all of them)."""
        self.tail = n

    def _entries(self, first: bool):
        import shutil
        import subprocess

        from ..errors import ContainerError

        exe = shutil.which("journalctl")
        if exe is None:
            raise ContainerError("the container logs to the journal and journalctl is not installed",
                                 reference=self.cid)
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
        """Every entry logged so far (the last ``tail`` ones after :meth:`seek_tail`)."""
        journal_sync()
        return self._entries(first=True)

    def poll(self, final: bool = False) -> list:
        """The entries after the last one read (``final``: the container exited, have journald
        write what conmon sent first)."""
        if final:  # conmon's last lines may still be in journald's socket: have them written first
            journal_sync()
        return list(self._entries(first=False))

    def more(self) -> bool:
        return False

    def ended(self, ctrs) -> bool:
        return ctrs.state(self.cid).get("state") != "running"

    def close(self) -> None:
        pass


def journal_sync() -> None:
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


def parse_log(data: bytes) -> list:
    """k8s-file lines: ``TIMESTAMP STREAM P|F TEXT`` (P: a partial line, continued by the next),
    as ``(time, stream, text, full)``; other lines are skipped."""
    out = []
    for line in data.split(b"\n"):
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        ts, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) > 3 else b""
        out.append((ts.decode("ascii", "replace"), 2 if stream == b"stderr" else 1, text, tag == b"F"))
    return out


def window(lo: float | None, hi: float | None):
    """``--since``/``--until`` (seconds since the epoch, None: open): a test of a line's time.
    A line without a readable time is kept, as written."""
    if lo is None and hi is None:
        return lambda ts: True
    from ..oci.times import parse_rfc3339

    def keep(ts: str) -> bool:
        try:
            t = parse_rfc3339(ts)
        except ValueError:
            return True
        return (lo is None or t >= lo) and (hi is None or t <= hi)

    return keep


def history(sources: list, tail: int = -1, keep=None):
    """What the ``sources`` logged so far, as ``(source, line)`` pairs, read as they are
    iterated: the last ``tail`` lines of each (``tail`` < 0: all), those ``keep(time)`` passes.
    One source's lines come in its order; several sources' are merged by their times (each
    source is in time order: the merge holds one line of each)."""
    import heapq
    import itertools

    def stream(i: int, src):
        if tail >= 0:
            src.seek_tail(tail)
        for ln in src.lines():
            if keep is None or keep(ln[0]):
                yield ln[0], i, src, ln

    streams = [stream(i, src) for i, src in enumerate(sources)]
    merged = heapq.merge(*streams, key=lambda t: (t[0], t[1])) if len(streams) > 1 else itertools.chain(*streams)
    return ((src, ln) for _, _, src, ln in merged)


def follow(ctrs, sources: list, keep=None):
    """After :func:`history`: what the ``sources`` log next, as lists of ``(source, line)``
    pairs (each list one source's bounded piece: the caller can flush after each), until every
    source's container exited (its last lines read). Waits between empty polls, backing off
    from 10 ms to 250 ms."""
    import time

    live = list(sources)
    delay = 0.01
    while live:
        progressed = False
        for src in list(live):
            # the state first, then the last lines: nothing written before the exit is lost
            ended = src.ended(ctrs)
            while True:
                got = [(src, ln) for ln in src.poll(final=ended) if keep is None or keep(ln[0])]
                if got:
                    yield got
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
