"""``pallet inspect NAME...`` for the store's own objects, as ``podman inspect`` shows them:
each name is looked up as a container, an image, a volume, then a network (``--type`` picks
one kind), and every object found is printed in its verb's own JSON (``container inspect``,
``image inspect``, ``volume inspect``, ``network inspect``) in one array. A name found
nowhere: ``no such object`` after the others are printed, exit 125, as podman."""

from __future__ import annotations

import sys

KINDS = ("container", "image", "volume", "network")


def _finders():
    from . import containers, network, store, volume

    return {"container": containers.inspect_one, "image": store.inspect_one,
            "volume": volume.inspect_one, "network": network.inspect_one}


def inspect_local(args, names: list[str], kind: str = "all") -> int:
    from ..errors import ContainerNotFound, InvalidReference, NetworkNotFound, VolumeNotFound
    from ..storage.records import ImageUnknown

    absent = (ContainerNotFound, ImageUnknown, InvalidReference, VolumeNotFound, NetworkNotFound)

    tmpl = None
    if args.format and args.format != "json":
        from ._template import Template, unescape

        tmpl = Template(unescape(args.format), "inspect")  # a bad template: refused before any lookup
    finders = _finders()
    kinds = KINDS if kind == "all" else (kind,)
    found, missing = [], []
    for name in names:
        for k in kinds:
            try:
                found.append(finders[k](args, name))
                break
            except absent:  # not this kind (an image name that cannot be one is no image either)
                continue
        else:
            missing.append(name)
    if tmpl is not None:
        texts = [tmpl.execute(data) for _, data in found]
        sys.stdout.write("".join(t if t.endswith("\n") else t + "\n" for t in texts))
    else:  # podman prints the array even when it is empty, then the error
        from .common import print_json

        print_json([doc for doc, _ in found])
    if missing:
        from ..errors import ObjectNotFound

        what = "object" if kind == "all" else kind
        msg = "inspecting object: " + "; ".join(f'no such {what}: "{n}"' for n in missing)
        if kind == "all" and len(names) == 1:  # perhaps meant as skopeo's: say why it is not a reference
            from ..errors import PalletError
            from ..transports import parse_reference

            try:
                parse_reference(names[0])
            except PalletError as e:
                msg += f" (nor an image reference: {str(e).split(': ', 1)[-1]})"
        raise ObjectNotFound(msg, reference=missing[0])
    return 0
