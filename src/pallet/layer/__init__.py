"""Tar layer codec: compression streams, digests while streaming, and (later) applying
layers onto directories.  ``stream`` is the part the transports need; ``tar`` the public tar
reader (``TarReader``) for modules outside the codec."""
