"""Whether this machine can run another architecture's programs (a RUN step of a build for
another platform): natively (386 on amd64, arm on arm64) or through a binfmt_misc handler,
qemu-user-static's, registered and enabled. Without one a RUN step for that platform is
refused with what to install, before its command starts."""

from __future__ import annotations

from ..errors import BuildError

BINFMT = "/proc/sys/fs/binfmt_misc"

#: architectures a host runs without emulation
NATIVE = {"amd64": ("amd64", "386"), "arm64": ("arm64", "arm"), "ppc64le": ("ppc64le",), "s390x": ("s390x",),
          "riscv64": ("riscv64",), "386": ("386",), "arm": ("arm",)}
#: the OCI architecture -> the name qemu (and its binfmt_misc entries) give it
QEMU = {"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
        "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64", "mipsle": "mipsel", "mips": "mips",
        "loong64": "loongarch64", "ppc64": "ppc64"}


def _enabled(path: str) -> bool:
    try:
        with open(path) as f:
            return f.read(64).startswith("enabled")
    except OSError:
        return False


def handler(arch: str, binfmt: str = BINFMT) -> str | None:
    """The enabled binfmt_misc entry that runs ``arch``'s programs, or None."""
    q = QEMU.get(arch)
    if q is None or not _enabled(f"{binfmt}/status"):
        return None
    for name in (f"qemu-{q}", f"qemu-{q}-static"):
        if _enabled(f"{binfmt}/{name}"):
            return f"{binfmt}/{name}"
    return None


def can_run(arch: str, host_arch: str | None = None, binfmt: str = BINFMT) -> bool:
    if host_arch is None:
        from ..oci.platform import host

        host_arch = host().architecture
    if not arch or arch in NATIVE.get(host_arch, (host_arch,)):
        return True
    return handler(arch, binfmt) is not None


def check(arch: str, os_name: str = "linux") -> None:
    """BuildError unless this machine can run ``arch``'s programs."""
    if can_run(arch):
        return
    from ..oci.platform import host

    q = QEMU.get(arch, arch)
    # the kernel's words first (scripts match "exec format error"), then why and what to install
    raise BuildError(f"RUN for {os_name}/{arch} on this {host().architecture} machine: exec format error: it needs "
                     f"emulation, and there is no enabled binfmt_misc handler for {q} in {BINFMT} (install "
                     "qemu-user-static; a build for that platform without RUN steps works without it)")
