"""podman's image verbs as a library: pull (with short-name resolution), push, save, load.

This is where the store meets the transports, so that neither knows the other: ``storage``
holds images and offers ``local:`` references on a store it is given
(``storage.transport.LocalReference(store, ...)``); ``transports`` moves images between
references. ``refs`` parses any reference text, ``local:`` with the store the caller holds;
``pull``, ``push`` and ``archive`` (save, load) are the verbs.
"""
