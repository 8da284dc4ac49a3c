"""Linux capabilities: numbers of the names (kept in ``oci.capabilities``, runtime-spec data), the
kernel's highest one."""

from ..oci.capabilities import NAMES

NUMBERS = {name: i for i, name in enumerate(NAMES)}

#: the five sets of process.capabilities
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


_last = None


def last_cap() -> int:
    """The highest capability this kernel knows (``/proc/sys/kernel/cap_last_cap``, read once)."""
    global _last
    if _last is None:
        import os

        try:
            fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _last = int(os.read(fd, 32))
            finally:
                os.close(fd)
        except (OSError, ValueError):
            _last = len(NAMES) - 1
    return _last
