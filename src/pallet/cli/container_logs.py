"""``logs [-f] [--tail N] [-t] [--since T] [--until T] [-n/--names] CONTAINER...``: conmon's
k8s-file logs (or ``--log-driver journald`` entries), stdout to stdout and stderr to stderr. With
several containers every line starts with its container's short ID (its name with ``--names``),
as podman 4.3's; their lines are merged by their log times, and ``-f`` follows them all until
every one has exited.

The reading (bounded pieces, ``--tail`` from the end, the time window, following) is
``containers/logs.py``'s, shared with the Python API; this prints what it reads.
"""

from __future__ import annotations

import sys


def cmd_logs(args) -> int:
    from ..containers import logs
    from .container_common import open_containers

    ctrs = open_containers(args)
    recs = [ctrs.get(t) for t in args.containers]  # every one known before a line is shown
    multi = len(recs) > 1
    sources = []
    try:
        for c in recs:
            meta = c["metadata"]["pallet"]
            prefix = ((meta.get("name") if args.names else c["id"][:12]) + " ").encode() if multi else b""
            sources.append(logs.open_log(ctrs, c, prefix))
        keep = log_window(args.since, args.until)
        emit(logs.history(sources, args.tail, keep), args.timestamps)
        if args.follow:
            for got in logs.follow(ctrs, sources, keep):
                emit(got, args.timestamps)
        return 0
    finally:
        for src in sources:
            src.close()


def log_window(since: str | None, until: str | None):
    """``logs --since/--until``: a test of a line's log time (podman's time forms, read by
    ``oci.times.parse_log_time``: RFC 3339, a date, Unix seconds, or a duration: before now for
    ``--since``, after it for ``--until``)."""
    import time

    from ..containers.logs import window
    from ..errors import UsageError
    from ..oci.times import parse_log_time

    now = time.time()
    bounds = []
    for flag, value in (("--since", since), ("--until", until)):
        if value is None:
            bounds.append(None)
            continue
        try:
            bounds.append(parse_log_time(value, now, flag == "--since"))
        except ValueError:
            raise UsageError(f"invalid {flag} {value!r}: want a time (2006-01-02T15:04:05Z, Unix seconds) or "
                             "a duration (10m, 1h)") from None
    return window(*bounds)


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
