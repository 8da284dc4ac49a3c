"""No cgroups: a rootless runtime on cgroup v1, as runc's ``--rootless`` (auto) there.

An unprivileged user cannot make directories in the host's v1 hierarchies, and nothing
delegates a subtree to it (systemd delegates cgroup v2 only). runc and crun then run the
container in the caller's cgroups and refuse only what needs one: a limit (runc: "cannot set
limits on the cgroup, as the container has not joined it"), freezing, figures. podman drops
the limits before they reach the runtime ("Resource limits are not supported and ignored on
cgroups V1 rootless systems"); pallet does the same (containers/).
"""

from ...errors import OCIRuntimeError

#: what a rootless container on cgroup v1 cannot have
_WHY = "a rootless container has no cgroup on cgroup v1 (the host's hierarchies are root's)"


class NoCgroups:
    kind = "none"
    v2_path = None
    paths = {}

    def check(self, res, linux=None):
        for key, val in (res or {}).items():
            if key != "devices" and val not in (None, [], {}):  # device rules: the user namespace's own
                raise OCIRuntimeError(f"linux.resources.{key}: cannot set limits: {_WHY}")

    def apply(self, res, linux=None, made=None):
        if made is not None:
            made()

    def prepare(self):
        """Nothing: the container stays in its caller's cgroups."""

    def join_self(self, placed=False):
        """Nothing to join."""

    def add_task(self, pid):
        """Nothing to add to."""

    def pids(self):
        return []  # the caller then finds the container's processes by its pid namespace

    def remove(self):
        """Nothing was made."""

    def to_state(self):
        return {"kind": self.kind}

    def freeze(self):
        raise OCIRuntimeError(f"cannot freeze: {_WHY}")

    thaw = freeze

    def frozen(self):
        return False

    def update(self, res):
        self.check(res)

    def stats(self):
        raise OCIRuntimeError(f"no figures: {_WHY}")
