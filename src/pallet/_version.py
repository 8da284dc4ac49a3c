"""pallet's version, in a base module every layer may read (the root package re-exports it)."""

__version__ = "0.1.0"

#: the peers (Debian 12's) whose command lines, output and behaviour pallet follows; named in
#: ``pallet --version`` so that scripts checking "skopeo version N" find what they expect
PEERS = "skopeo version 1.9.3, buildah version 1.28.2, podman version 4.3.1"
