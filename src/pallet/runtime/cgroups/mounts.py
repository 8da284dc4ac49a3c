"""Where this host's cgroup hierarchies are mounted (``layout``) and this process's own
cgroups; read from /proc once."""

ROOT = "/sys/fs/cgroup"


def _mountinfo():
    """``[(mount point, root in the hierarchy, fstype, super options)]`` of cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            r = right.split()
            if r and r[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], fields[3], r[0], r[2] if len(r) > 2 else ""))
    return out


def own_cgroups():
    """``{controller or "" (v2): path}`` of this process (``/proc/self/cgroup``)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                own[""] = path
            for c in ctrls.split(","):
                own[c] = path
    return own


class Layout:
    """Where this host's hierarchies are mounted: ``v1`` {controller: (mount point, mount root)},
    ``v2`` (mount point, mount root) or None; ``mode`` is ``legacy``, ``hybrid`` or ``unified``."""

    __slots__ = ("v1", "v2", "mode")

    def __init__(self, v1, v2):
        self.v1, self.v2 = v1, v2
        if v2 and not v1:
            self.mode = "unified"
        elif v2:
            self.mode = "hybrid"
        else:
            self.mode = "legacy"


_layout = None


def layout():
    global _layout
    if _layout is None:
        v1 = {}
        v2 = None
        for mp, root, fstype, opts in _mountinfo():
            if not mp.startswith(ROOT):
                continue
            if fstype == "cgroup2":
                if v2 is None or mp == ROOT:
                    v2 = (mp, root)
                continue
            for o in opts.split(","):
                if o.startswith("name="):
                    v1.setdefault(o, (mp, root))
                elif o not in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                               "clone_children", "xattr") and not o.startswith(("release_agent", "cpuset_v2")):
                    v1.setdefault(o, (mp, root))
        _layout = Layout(v1, v2)
    return _layout
