"""podman's ``-p/--publish`` grammar and ``-P``, to netavark's port mappings.

``[[IP:][HOSTPORT]:]CTRPORT[/PROTO]``: ports may be ranges (``8000-8009``), the IP an IPv6
address in brackets (``[::1]:8080:80``), PROTO ``tcp`` (default), ``udp``, ``sctp`` or several
joined by commas (``tcp,udp``). An empty host port means a free one chosen now, as podman does.
A mapping is netavark's JSON object: ``host_ip``, ``container_port``, ``host_port``, ``range``,
``protocol``.
"""

from __future__ import annotations

from ...errors import UsageError

PROTOCOLS = ("tcp", "udp", "sctp")


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"invalid port spec {spec!r}: {why} (want [[IP:][HOSTPORT]:]CTRPORT[/PROTO])")


def _port_range(text: str, spec: str, what: str) -> tuple[int, int]:
    """``N`` or ``N-M`` -> (first, count)."""
    lo, sep, hi = text.partition("-")
    vals = []
    for part in (lo, hi) if sep else (lo,):
        if not part.isdigit() or not part.isascii() or len(part) > 5:
            raise _bad(spec, f"{what} {text!r} is not a port number or range")
        n = int(part)
        if not 1 <= n <= 65535:
            raise _bad(spec, f"{what} {n} is out of range 1-65535")
        vals.append(n)
    if sep and vals[1] < vals[0]:
        raise _bad(spec, f"{what} range {text!r} ends before it starts")
    return vals[0], (vals[1] - vals[0] + 1 if sep else 1)


def parse(spec: str) -> list[dict]:
    """One ``-p`` value -> its mappings (one per protocol); nothing is bound."""
    if not isinstance(spec, str) or not spec or spec != spec.strip():
        raise _bad(str(spec), "empty or surrounded by spaces")
    body, slash, protos = spec.partition("/")
    if slash:
        plist = protos.split(",")
        for p in plist:
            if p not in PROTOCOLS:
                raise _bad(spec, f"unknown protocol {p!r} (want tcp, udp or sctp)")
        if len(set(plist)) != len(plist):
            raise _bad(spec, "a protocol is given twice")
    else:
        plist = ["tcp"]
    host_ip = ""
    if body.startswith("["):  # [IPv6]:...
        end = body.find("]")
        if end < 0 or body[end + 1:end + 2] != ":":
            raise _bad(spec, "an IPv6 address in brackets must be followed by ':'")
        host_ip, rest = body[1:end], body[end + 2:]
        parts = rest.split(":")
        if len(parts) != 2:
            raise _bad(spec, "want [IPV6]:HOSTPORT:CTRPORT")
        host, ctr = parts
        _check_ip(host_ip, spec, 6)
    else:
        parts = body.split(":")
        if len(parts) == 1:
            host, ctr = "", parts[0]
        elif len(parts) == 2:
            host, ctr = parts
        elif len(parts) == 3:
            host_ip, host, ctr = parts
            _check_ip(host_ip, spec, 4)
        else:
            raise _bad(spec, "too many ':' (an IPv6 address goes in brackets)")
    cport, count = _port_range(ctr, spec, "container port")
    if host:
        hport, hcount = _port_range(host, spec, "host port")
        if hcount not in (1, count):
            raise _bad(spec, f"the host port range ({hcount} ports) and the container's ({count}) differ in length")
        if hport + count - 1 > 65535:
            raise _bad(spec, f"host ports {hport}-{hport + count - 1} go past 65535")
    else:
        hport = 0
    return [{"host_ip": host_ip, "container_port": cport, "host_port": hport, "range": count, "protocol": p}
            for p in plist]


def _check_ip(text: str, spec: str, family: int) -> None:
    import ipaddress

    if text == "":
        return
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise _bad(spec, f"{text!r} is not an IP address") from None
    if ip.version != family:
        raise _bad(spec, "an IPv6 address goes in brackets: [::1]:8080:80" if ip.version == 6
                   else f"{text!r} is not an IPv6 address")


def parse_all(specs: list[str], expose: list[str] | None = None, publish_all: bool = False) -> list[dict]:
    """Every ``-p`` (and with ``-P`` every exposed port, ``80/tcp``, on a free host port); free
    host ports are chosen now; the same host port and protocol twice is refused."""
    maps = [m for s in specs for m in parse(s)]
    if publish_all:
        published = {(m["container_port"], m["protocol"]) for m in maps}
        for e in expose or []:
            for m in parse(e):
                if (m["container_port"], m["protocol"]) not in published:
                    maps.append(m)
    seen: dict = {}
    for m in maps:
        if not m["host_port"]:
            m["host_port"] = free_port(m["host_ip"], m["protocol"], m["range"])
        for p in range(m["host_port"], m["host_port"] + m["range"]):
            key = (m["host_ip"] or "", p, m["protocol"])
            if key in seen or ("", p, m["protocol"]) in seen or (m["host_ip"] == "" and any(
                    k[1:] == key[1:] for k in seen)):
                raise UsageError(f"host port {p}/{m['protocol']} is published twice")
            seen[key] = True
    return maps


def free_port(host_ip: str, protocol: str, count: int = 1) -> int:
    """A host port (the first of ``count`` in a row) nobody is bound to now."""
    import socket

    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    for _ in range(32):
        s = socket.socket(family, kind)
        try:
            s.bind((host_ip, 0))
            first = s.getsockname()[1]
        finally:
            s.close()
        if first + count - 1 > 65535:
            continue
        if all(_free(host_ip, family, kind, p) for p in range(first + 1, first + count)):
            return first
    raise UsageError(f"no {count} free host port(s) in a row for {protocol}")


def _free(host_ip, family, kind, port) -> bool:
    import socket

    s = socket.socket(family, kind)
    try:
        s.bind((host_ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def reserve(mappings: list[dict]) -> list:
    """podman 4.3's port reservation (root, bridge networks): a socket bound (and listening,
    for TCP) on each published host port, handed to conmon, which keeps it for the container's
    life, so a second container publishing the port fails to start instead of silently
    sharing it. SCTP ports are not reserved (podman only warns). Raises CommandNotRunnable (exit
    126, as podman's run) with podman's words, closing what it bound."""
    if not mappings:
        return []
    import errno
    import socket

    from ...errors import CommandNotRunnable

    socks = []
    try:
        for m in mappings:
            host_ip = m.get("host_ip") or ""
            v6 = ":" in host_ip
            for proto in str(m.get("protocol") or "tcp").split(","):
                if proto not in ("tcp", "udp"):
                    continue
                for port in range(m["host_port"], m["host_port"] + (m.get("range") or 1)):
                    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                                      socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind((host_ip, port))
                        if proto == "tcp":
                            s.listen(128)
                    except OSError as e:
                        addr = f"[{host_ip}]:{port}" if v6 else f"{host_ip}:{port}"
                        why = {errno.EADDRINUSE: "address already in use"}.get(e.errno, (e.strerror or str(e)).lower())
                        raise CommandNotRunnable(f"cannot listen on the {proto.upper()} port: listen "
                                                 f"{proto}{6 if v6 else 4} {addr}: bind: {why}") from None
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
