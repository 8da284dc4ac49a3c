"""podman's layer on the store, the runtime and the transports: containers as podman runs them.

``containers.container`` (the model: create, start through conmon, stop, kill, wait, cleanup,
remove), ``containers.conmon`` (conmon's command line, sync pipes and attach socket) and
``containers.network`` (netavark networks and sandboxes); docs/containers.md.
"""
