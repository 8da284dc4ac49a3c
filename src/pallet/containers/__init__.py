"""podman's layer on the store, the runtime and the transports: containers as podman runs them.

Only networking exists yet (``containers.network``); the container model (``run``, ``ps``,
``exec``...) comes next (docs/containers.md).
"""
