"""The local image store (the containers/storage idea): layers, images and containers on
disk, shared by many processes through file locks, with no daemon.

``options`` finds where the store lives; ``lock`` is the file lock; ``store`` holds the
metadata and the operations; ``drivers`` puts layers on disk (overlay or vfs);
``transport`` makes the store the ``local:`` transport. See docs/storage.md for the
on-disk format and the lock order.
"""
