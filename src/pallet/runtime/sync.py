"""The sync pipe between the runtime and the container's init (runc's libcontainer/sync):
newline-framed messages, the error init reports over it, and init's side of the cgroup
hand-over ("dirs", "cg").
"""

import os


class SetupError(Exception):
    """A step failed; the message names the config field when there is one."""


class Channel:
    """Newline-framed messages over two pipes (child side or parent side)."""

    __slots__ = ("rfd", "wfd", "buf")

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""

    def send(self, msg):
        os.write(self.wfd, msg.replace("\n", " ").encode() + b"\n")

    def recv(self):
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def recv_from_init(self, died):
        """The runtime's side: the next message of init (or of the intermediate child); its
        ``error ...`` or a pipe closed without a word (``died``: what to say then) raised as
        OCIRuntimeError."""
        msg = self.recv()
        if msg is None or msg.startswith("error "):
            from ..errors import OCIRuntimeError

            raise OCIRuntimeError(died if msg is None else msg[6:])
        return msg

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass




def wait_for_cgroups(ctx, upto="cg"):
    """Wait until the runtime has made the container's cgroup directories ("dirs") or also
    set their limits ("cg"); on "cg" move ourselves in (``cgroups.fork_in``: no global lock,
    so no RCU grace period to wait for). The runtime does its part while we build the root
    filesystem; we wait only where it matters, at the latest before the root changes (the
    host's cgroupfs is out of sight after that)."""
    pending = ctx.get("cg_wait")
    while pending and upto in pending:
        msg = ctx["chan"].recv()
        if msg != pending.pop(0):
            os._exit(1)
        if msg == "cg":
            try:
                ctx["cgroups"].join_self(ctx.get("cg_placed", False))
            except Exception as e:  # OCIRuntimeError, naming the controller
                raise SetupError(str(e)) from None
