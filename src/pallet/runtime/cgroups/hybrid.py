"""Hybrid mode: the v1 hierarchies carry the controllers, and the container also joins the
v2 unified hierarchy (as runc does), where the controllers that live only there are set
(on this kind of machine: ``hugetlb``) along with ``linux.resources.unified``."""

from ...errors import OCIRuntimeError

#: parts of linux.resources that go to the unified hierarchy when v1 lacks their controller
_V2_KEYS = {"hugepageLimits": "hugetlb", "rdma": "rdma"}


class HybridManager:
    kind = "hybrid"

    def __init__(self, v1, v2):
        self.v1, self.v2 = v1, v2

    @property
    def paths(self):
        return dict(self.v1.paths, **{"": self.v2.path})

    def _split(self, res):
        res = res or {}
        r1, r2 = {}, {}
        for k, v in res.items():
            if k == "unified" or (k in _V2_KEYS and _V2_KEYS[k] not in self.v1.paths):
                r2[k] = v
            else:
                r1[k] = v
        return r1, r2

    def check(self, res, linux=None):
        r1, r2 = self._split(res)
        self.v1.check(r1)
        self.v2.check(r2)

    def apply(self, res, linux=None, made=None):
        r1, r2 = self._split(res)
        self.v1.apply(r1, linux, made)  # the v1 directories are the ones init bind-mounts
        self.v2.apply(r2)

    @property
    def v2_path(self):
        return self.v2.path

    def prepare(self):
        self.v2.prepare()

    def join_self(self, placed=False):
        self.v1.join_self()
        self.v2.join_self(placed)

    def add_task(self, pid):
        self.v1.add_task(pid)
        self.v2.add_task(pid)

    def pids(self):
        return self.v1.pids() or self.v2.pids()

    def remove(self):
        err = None
        for m in (self.v1, self.v2):
            try:
                m.remove()
            except OCIRuntimeError as e:
                err = err or e
        if err:
            raise err

    def freeze(self):
        self.v1.freeze()

    def thaw(self):
        self.v1.thaw()

    def frozen(self):
        return self.v1.frozen()

    def update(self, res):
        r1, r2 = self._split(res)
        self.v1.check(r1)
        self.v2.check(r2)
        self.v1.set(r1)
        if r2:
            self.v2.update(r2)

    def stats(self):
        out = self.v1.stats()
        out.update(self.v2.stats())
        return out

    def to_state(self):
        return {"kind": self.kind, "paths": self.v1.paths, "created": self.v1.created,
                "path": self.v2.path, "created2": self.v2.created}
