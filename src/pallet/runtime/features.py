"""``pallet-runtime features``: what this runtime supports, in the runtime-spec's format."""

from .caps import NAMES, last_cap
from .seccomp import ACTIONS, ARCHES, FLAGS, OPS
from .spec import EXTENSIONS, HOOKS, MOUNT_FLAGS, NAMESPACES, OCI_VERSION, PROPAGATION, REC_ATTRS


def features():
    import os

    ns = [n for n in sorted(NAMESPACES) if n != "time" or os.path.exists("/proc/self/ns/time")]
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(REC_ATTRS) | set(EXTENSIONS)),
        "linux": {
            "namespaces": ns,
            "capabilities": list(NAMES[: last_cap() + 1]),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {"enabled": True, "actions": [a for a in ACTIONS if a != "SCMP_ACT_NOTIFY"],
                        "operators": sorted(OPS), "archs": sorted(ARCHES),
                        "knownFlags": sorted(FLAGS), "supportedFlags": sorted(f for f, a in FLAGS.items() if a)},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {"org.opencontainers.runc.version": "pallet-runtime"},
    }
