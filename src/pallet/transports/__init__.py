"""Image transports (the containers/image idea) and the copy engine.

``base`` defines the interfaces every transport implements; ``parse_reference`` turns
``transport:details`` into an :class:`~pallet.transports.base.ImageReference` by loading only
the module of that transport; ``copy`` moves any source to any destination.

The store's ``local:`` transport is not among them: a ``local:`` reference carries the store it
names an image in, so it is parsed by whoever holds a store (``pallet.images.refs``), and this
package never names the store.
"""

from __future__ import annotations

from ..errors import InvalidReference

#: transport name -> module that defines ``parse(details) -> ImageReference``
TRANSPORTS = {
    "docker": "pallet.transports.docker",
    "oci": "pallet.transports.oci_layout",
    "oci-archive": "pallet.transports.oci_archive",
    "docker-archive": "pallet.transports.docker_archive",
    "dir": "pallet.transports.directory",
    "sif": "pallet.transports.sif",  # read-only
}

#: transports parsed elsewhere, with the store they name (see the module docstring)
PARSED_WITH_A_STORE = ("local",)


def has_transport(text: str) -> bool:
    """Whether ``text`` names a transport (``oci:DIR``, ``docker://HOST/NAME``) rather than
    being an image name (``docker`` needs its ``//``: ``docker.io/x`` and ``docker:5000/x``
    are names)."""
    head, sep, _ = text.partition(":")
    return bool(sep) and head in TRANSPORTS and not (head == "docker" and not text.startswith("docker://"))


def parse_reference(text: str):
    """Parse ``transport:details`` (``docker://`` keeps its ``//``) as skopeo does."""
    import importlib

    name, sep, details = text.partition(":")
    if not sep:
        raise InvalidReference(f"invalid image name {text!r}: expected transport:details "
                               f"(one of {', '.join(tuple(TRANSPORTS) + PARSED_WITH_A_STORE)})")
    module = TRANSPORTS.get(name)
    if name in PARSED_WITH_A_STORE:
        raise InvalidReference(f"invalid image name {text!r}: a {name}: reference names an image in a store: "
                               "parse it with the store (pallet.images.refs.parse_reference(text, store))")
    if module is None:
        raise InvalidReference(f"invalid image name {text!r}: unknown transport {name!r} "
                               f"(known: {', '.join(tuple(TRANSPORTS) + PARSED_WITH_A_STORE)})")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise InvalidReference(f"transport {name!r} is not available in this build of pallet") from None
    return mod.parse(details)
