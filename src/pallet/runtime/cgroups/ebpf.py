"""The cgroup v2 device filter: device rules -> an eBPF program, loaded and attached with bpf(2).

cgroup v2 has no ``devices.allow``/``devices.deny``: the kernel asks a program of type
``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the cgroup (``BPF_CGROUP_DEVICE``) for every
open/mknod of a device node; it returns 1 (allow) or 0 (deny). What runc does, written
here from the kernel's interface:

1. The rules (``devices.rules``: the spec's, then ``linux.devices``, then the default
   allowlist; later rules win) are first *emulated* the way the v1 devices controller
   reads them: a wildcard rule (type ``a``) sets the default (allow or deny everything)
   and forgets the exceptions; any other rule adds an exception when its verdict differs
   from the default, or takes access bits away from the exception with the same
   type/major/minor when it agrees with it. What is left is a default plus exceptions
   that all have the opposite verdict, so their order no longer matters.
2. The program loads ``struct bpf_cgroup_dev_ctx`` (``access_type`` = access << 16 |
   type, ``major``, ``minor``) into registers, then has one block per exception: the
   type must match, the requested access must be a subset of the exception's, then
   major and minor unless wildcards; a match returns the exception's verdict, a
   mismatch jumps to the next block; the last block returns the default.
3. ``bpf(BPF_PROG_LOAD)`` with the verifier's log (quoted when the kernel refuses),
   ``bpf(BPF_PROG_ATTACH)`` with ``BPF_F_ALLOW_MULTI``; programs this runtime attached
   before to the same cgroup (``update``) are detached after the new one is in, so the
   cgroup is never without a filter.
"""

import os
import struct

from ...errors import OCIRuntimeError

# bpf_cgroup_dev_ctx values (include/uapi/linux/bpf.h)
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE

# bpf(2) commands, types, flags
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# instruction opcodes
_LDX_W = 0x61          # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54        # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74        # BPF_ALU | BPF_RSH | BPF_K
_MOV32_K = 0xB4        # BPF_ALU | BPF_MOV | BPF_K
_MOV32_X = 0xBC        # BPF_ALU | BPF_MOV | BPF_X
_JNE32_K = 0x56        # BPF_JMP32 | BPF_JNE | BPF_K
_JNE32_X = 0x5E        # BPF_JMP32 | BPF_JNE | BPF_X
_EXIT = 0x95           # BPF_JMP | BPF_EXIT
R0, R1, R2, R3, R4, R5 = range(6)


def _insn(code, dst=0, src=0, off=0, imm=0):
    if imm >= 1 << 31:  # u32 constants are encoded as the same 32 bits, signed
        imm -= 1 << 32
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


# ---------------------------------------------------------------- 1. the v1 emulation

def emulate(rule_list):
    """``(default_allow, [(type, major, minor, access bits)])`` for ``(allow, type, major,
    minor, access)`` rules (``-1`` = wildcard). Starts from deny-all, as runc's does."""
    default_allow = False
    exc = {}  # (type, major, minor) -> access bits; verdict = not default_allow
    for allow, typ, major, minor, access in rule_list:
        bits = 0
        for ch in access or "rwm":
            bits |= _ACCESS[ch]
        if typ == "a":
            if major == -1 and minor == -1 and bits == _ALL:
                default_allow = bool(allow)
                exc = {}
                continue
            keys = [("c", major, minor), ("b", major, minor)]
        else:
            keys = [(typ, major, minor)]
        for key in keys:
            if bool(allow) != default_allow:  # an exception to the default
                exc[key] = exc.get(key, 0) | bits
            elif key in exc:  # agrees with the default: narrows the exception
                left = exc[key] & ~bits
                if left:
                    exc[key] = left
                else:
                    del exc[key]
    return default_allow, [(t, ma, mi, a) for (t, ma, mi), a in exc.items()]


# ---------------------------------------------------------------- 2. the program

def program(rule_list):
    """The filter's instructions (bytes, 8 per instruction) for ``rule_list``."""
    default_allow, exceptions = emulate(rule_list)
    verdict = 0 if default_allow else 1
    head = [
        _insn(_LDX_W, R2, R1, 0),       # r2 = ctx->access_type
        _insn(_AND32_K, R2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_W, R3, R1, 0),       # r3 = ctx->access_type
        _insn(_RSH32_K, R3, imm=16),    # r3 = access
        _insn(_LDX_W, R4, R1, 4),       # r4 = major
        _insn(_LDX_W, R5, R1, 8),       # r5 = minor
    ]
    blocks = []
    for typ, major, minor, access in exceptions:
        body = []  # (code, dst, src, imm, jumps to the next block?)
        body.append((_JNE32_K, R2, 0, DEV_CHAR if typ == "c" else DEV_BLOCK, True))
        if access != _ALL:  # the requested access must lie within the exception's
            body.append((_MOV32_X, R1, R3, 0, False))
            body.append((_AND32_K, R1, 0, access, False))
            body.append((_JNE32_X, R1, R3, 0, True))
        if major != -1:
            body.append((_JNE32_K, R4, 0, major, True))
        if minor != -1:
            body.append((_JNE32_K, R5, 0, minor, True))
        body.append((_MOV32_K, R0, 0, verdict, False))
        body.append((_EXIT, 0, 0, 0, False))
        blocks.append(body)
    out = list(head)
    for body in blocks:
        n = len(body)
        for i, (code, dst, src, imm, jump) in enumerate(body):
            out.append(_insn(code, dst, src, (n - i - 1) if jump else 0, imm))
    out.append(_insn(_MOV32_K, R0, imm=1 if default_allow else 0))
    out.append(_insn(_EXIT))
    return b"".join(out)


# ---------------------------------------------------------------- 3. bpf(2)

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, -1)


def _bpf(cmd, attr, what):
    import ctypes

    from ..._std import syscalls as _sys

    buf = ctypes.create_string_buffer(bytes(attr), 144)
    ret = _sys._syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), buf, ctypes.c_uint(144))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def load(insns, license=b"Apache-2.0"):
    """``bpf(BPF_PROG_LOAD)``: the program's fd; the verifier's log in the error when refused."""
    import ctypes

    if _SYS_BPF < 0:
        raise OCIRuntimeError("linux.resources.devices: no bpf(2) syscall number for this architecture")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license)
    log = ctypes.create_string_buffer(65536)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version, prog_flags,
    # prog_name[16], prog_ifindex, expected_attach_type
    attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                       ctypes.addressof(code), ctypes.addressof(lic), 1, len(log), ctypes.addressof(log), 0, 0,
                       b"pallet_devices", 0, BPF_CGROUP_DEVICE)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as e:
        msg = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise OCIRuntimeError(f"linux.resources.devices: the kernel refused the device filter program "
                              f"({e.strerror}){': ' + msg[-400:] if msg else ''}") from None


def attached(cgroup_fd):
    """Ids of the device programs attached directly to the cgroup (``BPF_PROG_QUERY``)."""
    import ctypes

    ids = (ctypes.c_uint32 * 64)()
    # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt (written back)
    buf = ctypes.create_string_buffer(struct.pack("<IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                                                  ctypes.addressof(ids), 64), 144)
    from ..._std import syscalls as _sys

    if _sys._syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(BPF_PROG_QUERY), buf, ctypes.c_uint(144)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf(BPF_PROG_QUERY): {os.strerror(e)}")
    count = struct.unpack_from("<I", buf.raw, 24)[0]
    return [ids[i] for i in range(min(count, 64))]


def attach(cgroup_dir, rule_list):
    """Load the filter for ``rule_list`` and attach it to ``cgroup_dir``, replacing the ones
    attached there before. Raises OCIRuntimeError naming the field, with the kernel's reason."""
    insns = program(rule_list)
    prog = load(insns)
    try:
        try:
            cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise OCIRuntimeError(f"linux.resources.devices: {cgroup_dir}: {e.strerror}") from None
        try:
            try:
                old = attached(cg)
            except OSError:
                old = []
            # target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd
            try:
                _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0),
                     "bpf(BPF_PROG_ATTACH)")
            except OSError as e:
                raise OCIRuntimeError(f"linux.resources.devices: cannot attach the device filter to {cgroup_dir}: "
                                      f"{e.strerror}") from None
            for pid in old:
                _detach(cg, pid)
        finally:
            os.close(cg)
    finally:
        os.close(prog)


def _detach(cg, prog_id):
    try:
        fd = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<I", prog_id), "bpf(BPF_PROG_GET_FD_BY_ID)")
    except OSError:
        return
    try:
        _bpf(BPF_PROG_DETACH, struct.pack("<III", cg, fd, BPF_CGROUP_DEVICE), "bpf(BPF_PROG_DETACH)")
    except OSError:
        pass
    finally:
        os.close(fd)
