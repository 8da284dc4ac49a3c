"""TEMPORARY re-export shim: podman's verbs moved to ``pallet.images`` (``pull``, ``push``,
``archive``, ``refs``). Kept only so branches written against ``storage.ops`` still merge;
remove it once nothing imports it (tests/test_layering.py lists it as debt)."""

from ..images.archive import load, save  # noqa: F401
from ..images.pull import pull  # noqa: F401
from ..images.pull import pull_one as _pull_one  # noqa: F401
from ..images.push import push  # noqa: F401
from ..images.refs import has_transport as _has_transport  # noqa: F401
from ..images.refs import local_name_for as _local_name_for  # noqa: F401
