"""The few calls into systemd a system container needs: is it PID 1, ``systemctl``,
``systemd-tmpfiles``, a unit's state."""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import PalletError


class SystemdError(PalletError):
    """systemctl (or systemd-tmpfiles) failed."""


def booted() -> bool:
    """sd_booted(3): systemd is the init system of this host (``/run/systemd/system`` exists)."""
    return os.path.isdir("/run/systemd/system")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def _call(argv: list[str], check: bool) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        if check:
            raise SystemdError(f"{' '.join(argv)}: {e}") from None
        return subprocess.CompletedProcess(argv, 1, "", str(e))
    if check and p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise SystemdError(f"{' '.join(argv)} failed: {msg[-1] if msg else f'exit {p.returncode}'}")
    return p


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _call(["systemctl", *args], check)


def tmpfiles(*args: str) -> None:
    _call(["systemd-tmpfiles", *args], False)


def state(unit: str) -> str:
    """``systemctl is-active``'s word (active, inactive, failed, activating...)."""
    p = run("is-active", unit, check=False)
    return p.stdout.strip() or "unknown"
