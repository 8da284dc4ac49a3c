"""An OCI runtime (the runc idea): a bundle and its ``config.json`` in, a container out.

One module per lifecycle verb (``create``, ``start``, ``run``, ``kill``, ``delete``, ``query``,
``control``, ``exec``) over what they share (``container``, ``state``: the state directory), the
container's init (``init``, ``rootfs``, ``process``, ``sync``), ``spec`` (loading and
validating config.json), ``seccomp``, ``hooks``, ``userns`` (the user-namespace path of
create) and ``cgroups`` (v1, v2 and hybrid managers behind one interface); JSON is
``pallet._std.json`` (no ``re``), syscalls ``pallet._std.syscalls``. docs/runtime.md ("Modules")
says who owns what, and describes the process model.

Imports here stay lazy and few: ``pallet-runtime run`` must start as fast as runc.
"""
