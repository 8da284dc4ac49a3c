"""An OCI runtime (the runc idea): a bundle and its ``config.json`` in, a container out.

Modules: ``spec`` (the default ``config.json``, loading and validation, pure),
``_json`` (JSON without importing ``re``: start-up time is a product feature),
``caps`` (capability names), ``_sys`` (the syscalls, through ctypes), ``state``
(the state directory: one directory per container, ``state.json`` written atomically,
a lock per container), ``container`` (create/start/kill/delete/list/ps, run in the
runtime's own process), ``init`` (what runs inside the new namespaces until the
user program is exec'd), ``exec`` (one more process in a running container), ``hooks``,
``seccomp`` (libseccomp through pyseccomp) and ``cgroups`` (v1, v2 and hybrid managers
behind one interface). docs/runtime.md describes the process model.

Imports here stay lazy and few: ``pallet-runtime run`` must start as fast as runc.
"""
