"""pallet: a daemonless OCI container toolchain.

The library is the product; the ``pallet`` command is a thin front end over it.
Sub-packages are imported lazily by their users, so ``import pallet`` is cheap.
"""

__version__ = "0.1.0"
