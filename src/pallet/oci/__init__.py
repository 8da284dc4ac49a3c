"""OCI image-spec, runtime-spec and Docker image data: pure, no I/O.

Modules: ``digest``, ``mediatype``, ``platform``, ``descriptor``, ``manifest``
(image manifests, indexes, Docker schema 2 and schema 1), ``config`` (image config, its
``ExposedPorts`` keys), ``times`` (RFC 3339 times, Go durations), ``reference``
(Docker-style named references), ``capabilities`` (Linux capability names) and
``runtime_spec`` (the one generator of runtime-spec ``config.json`` documents).
Everything parsed keeps the raw bytes it came from, because a digest is over bytes, not
over a re-serialisation.
"""
