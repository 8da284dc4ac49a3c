"""The local image store (the containers/storage idea): layers, images and containers on
disk, shared by many processes through file locks, with no daemon.

``options`` finds where the store lives; ``lock`` is the file lock; ``store`` opens the
store and composes its parts (``layerstore``, ``imagestore``, ``mountstore``,
``containerstore``, sharing ``records``); ``drivers`` puts layers on disk (overlay or vfs);
``transport`` makes the store the ``local:`` transport (a reference carries its store).
podman's verbs that move images in and out (pull, push, save, load) are ``pallet.images``.
See docs/storage.md for the on-disk format and the lock order.
"""
