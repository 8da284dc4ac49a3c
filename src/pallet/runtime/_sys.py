from .._std.syscalls import *  # noqa: F401,F403  moved: shim until the branches in flight merge
from .._std.syscalls import _syscall  # noqa: F401  (cgroups/ebpf.py calls bpf(2) through it)
