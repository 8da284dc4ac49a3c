"""Device rules: ``linux.resources.devices``, then ``linux.devices``, then runc's allowlist.

A rule is ``(allow, type, major, minor, access)`` with ``-1`` for a wildcard. The order
matters (later rules win), as with runc.
"""

#: what every container may use (runc's AllowedDevices), after the spec's own rules
DEFAULT_ALLOW = (
    (True, "c", -1, -1, "m"), (True, "b", -1, -1, "m"),      # mknod of anything (use is what's guarded)
    (True, "c", 1, 3, "rwm"), (True, "c", 1, 8, "rwm"), (True, "c", 1, 7, "rwm"),  # null random full
    (True, "c", 5, 0, "rwm"), (True, "c", 1, 5, "rwm"), (True, "c", 1, 9, "rwm"),  # tty zero urandom
    (True, "c", 136, -1, "rwm"), (True, "c", 5, 2, "rwm"),  # /dev/pts/*, /dev/ptmx
    (True, "c", 10, 200, "rwm"),                              # tun
)


def rules(linux):
    out = []
    for d in (linux.get("resources") or {}).get("devices") or ():
        major = d.get("major")
        minor = d.get("minor")
        out.append((bool(d.get("allow")), d.get("type") or "a", -1 if major is None else major,
                    -1 if minor is None else minor, d.get("access") or "rwm"))
    for d in linux.get("devices") or ():
        if d["type"] != "p":
            out.append((True, "c" if d["type"] == "u" else d["type"], d["major"], d["minor"], "rwm"))
    out.extend(DEFAULT_ALLOW)
    return out


def v1_lines(rule_list):
    """``[(file, line)]`` for devices.allow / devices.deny, in order."""
    out = []
    for allow, typ, major, minor, access in rule_list:
        f = "devices.allow" if allow else "devices.deny"
        if typ == "a":
            if major == -1 and minor == -1 and set(access) >= set("rwm"):
                out.append((f, "a"))  # everything: switch the default
                continue
            for t in ("c", "b"):
                out.append((f, _line(t, major, minor, access)))
            continue
        out.append((f, _line(typ, major, minor, access)))
    return out


def _line(typ, major, minor, access):
    return f"{typ} {'*' if major == -1 else major}:{'*' if minor == -1 else minor} {access}"
