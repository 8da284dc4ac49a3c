"""oci.runtime_spec: the one generator of runtime configs (pure: no root, no peer tool)."""

from __future__ import annotations


import pytest

from pallet.errors import InvalidDocument, UsageError
from pallet.oci import runtime_spec as rs
from pallet.runtime import caps as runtime_caps
from pallet.runtime import spec as runtime_spec

pytestmark = pytest.mark.unit


def gen(image=None, resolve_user=None, **kw):
    cfg = rs.generate(rs.SpecOptions(**kw), image, resolve_user=resolve_user)
    runtime_spec.validate(cfg)  # every generated config is one the runtime accepts
    return cfg


# ---------------------------------------------------------------- defaults

def test_default_config_is_what_the_runtime_writes_and_accepts():
    cfg = rs.default_config()
    runtime_spec.validate(cfg)
    assert cfg == runtime_spec.default_spec()
    assert cfg["ociVersion"] == runtime_spec.OCI_VERSION == rs.RUNC_SPEC_VERSION
    assert cfg["process"]["capabilities"]["bounding"] == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    # a fresh document each time: callers edit it
    cfg["process"]["args"].append("x")
    cfg["linux"]["maskedPaths"].append("/x")
    again = rs.default_config()
    assert again["process"]["args"] == ["sh"] and "/x" not in again["linux"]["maskedPaths"]


def test_default_config_rootless_maps_the_caller():
    cfg = rs.default_config(rootless=True, uid=1000, gid=1001)
    runtime_spec.validate(cfg)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert "resources" not in cfg["linux"]
    sys_mount = next(m for m in cfg["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {"destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    assert not any(o.startswith("gid=") for m in cfg["mounts"] for o in m.get("options", ()))


def test_capability_names_are_the_runtimes():
    assert runtime_caps.NAMES is rs.CAPABILITIES
    assert rs.CAPABILITIES[0] == "CAP_CHOWN" and rs.CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def test_generate_defaults():
    cfg = gen(command=["sh"])
    p = cfg["process"]
    assert cfg["ociVersion"] == "1.0.2"
    assert p["args"] == ["sh"] and p["cwd"] == "/" and p["user"] == {"uid": 0, "gid": 0}
    assert p["env"] == ["PATH=" + rs.DEFAULT_PATH] and p["terminal"] is False and p["noNewPrivileges"] is False
    assert p["capabilities"] == {s: list(rs.DEFAULT_CAPS) for s in ("bounding", "effective", "permitted")}
    assert cfg["root"] == {"path": "rootfs", "readonly": False}
    assert cfg["hostname"] == "pallet"
    assert [m["destination"] for m in cfg["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert cfg["mounts"][-1]["type"] == "sysfs"  # a new network namespace: its own sysfs
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert cfg["linux"]["maskedPaths"] == list(rs.MASKED_PATHS)
    assert cfg["linux"]["readonlyPaths"] == list(rs.READONLY_PATHS)
    # the device cgroup denies every device (the runtime adds its defaults after), as runtime-tools' generator
    assert cfg["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "annotations" not in cfg and "rlimits" not in p


def test_options_are_frozen_and_copied():
    args = ["echo", "hi"]
    o = rs.SpecOptions(command=args, env=["A=1"])
    args.append("mutated")
    assert o.command == ("echo", "hi")
    with pytest.raises(AttributeError, match="cannot assign to field 'command'"):
        o.command = ("x",)
    # values as dataclasses made them: by position or keyword, equal and hashed by their fields
    assert rs.Mount("/a", "bind", "/b", ["ro"]) == rs.Mount(destination="/a", source="/b", options=("ro",))
    assert hash(rs.Namespace("pid")) == hash(rs.Namespace(type="pid")) and rs.Namespace("pid") != rs.Namespace("ipc")
    assert repr(rs.IDMap(0, 1000, 1)) == "IDMap(container_id=0, host_id=1000, size=1)"
    assert rs.SpecOptions().annotations == {} and rs.SpecOptions().annotations is not rs.SpecOptions().annotations
    with pytest.raises(TypeError, match="missing required argument: 'hard'"):
        rs.Rlimit("nofile", 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        rs.SpecOptions(bogus=1)
    with pytest.raises(UsageError, match="command: must be a list of strings"):
        rs.SpecOptions(command="echo hi")  # a string would become one argument per character


# ---------------------------------------------------------------- image config -> process.args

IMG_EP = {"Entrypoint": ["/ep", "-x"], "Cmd": ["cmd1", "cmd2"]}


@pytest.mark.parametrize("image, kw, want", [
    ({"Cmd": ["/bin/sh", "-c", "echo hi"]}, {}, ["/bin/sh", "-c", "echo hi"]),       # CMD only
    ({"Entrypoint": ["/ep"]}, {}, ["/ep"]),                                           # ENTRYPOINT only
    (IMG_EP, {}, ["/ep", "-x", "cmd1", "cmd2"]),                                      # ENTRYPOINT + CMD
    (IMG_EP, {"command": ["a", "b"]}, ["/ep", "-x", "a", "b"]),                       # run args replace CMD
    ({"Cmd": ["c"]}, {"command": ["/bin/ls"]}, ["/bin/ls"]),
    (IMG_EP, {"entrypoint": ["/other"]}, ["/other"]),                                 # --entrypoint drops CMD
    (IMG_EP, {"entrypoint": ["/other"], "command": ["z"]}, ["/other", "z"]),
    (IMG_EP, {"entrypoint": [], "command": ["/bin/true"]}, ["/bin/true"]),            # --entrypoint ""
    (IMG_EP, {"entrypoint": []}, ["cmd1", "cmd2"]),                                   # clears only Entrypoint
    ({"Entrypoint": None, "Cmd": ["c"]}, {}, ["c"]),                                  # null is absent
])
def test_entrypoint_and_cmd_as_docker_documents_them(image, kw, want):
    assert gen(image, **kw)["process"]["args"] == want


def test_no_command_at_all_is_refused():
    with pytest.raises(UsageError, match="neither Entrypoint nor Cmd"):
        rs.generate(rs.SpecOptions(), {})
    with pytest.raises(UsageError, match="neither Entrypoint nor Cmd"):
        rs.generate(rs.SpecOptions(entrypoint=[]), {"Entrypoint": ["/ep"]})


@pytest.mark.parametrize("image, field", [
    ({"Cmd": "echo hi"}, "Cmd"), ({"Entrypoint": [1]}, "Entrypoint"), ({"Cmd": ["x"], "Env": "A=1"}, "Env"),
    ({"Cmd": ["x"], "User": 0}, "User"), ({"Cmd": ["x"], "WorkingDir": 5}, "WorkingDir"),
])
def test_hostile_image_config_fields_are_named(image, field):
    with pytest.raises(InvalidDocument, match=f"image config: {field}"):
        rs.generate(rs.SpecOptions(), image)


def test_image_config_object_and_workdir():
    from pallet.oci.config import ImageConfig

    doc = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},' \
          b'"config":{"Cmd":["run"],"WorkingDir":"/srv","Env":["A=1"]}}'
    cfg = gen(ImageConfig.from_bytes(doc))
    assert cfg["process"]["args"] == ["run"] and cfg["process"]["cwd"] == "/srv"
    assert gen({"Cmd": ["x"], "WorkingDir": "app"})["process"]["cwd"] == "/app"
    assert gen({"Cmd": ["x"], "WorkingDir": "/srv"}, workdir="/tmp")["process"]["cwd"] == "/tmp"
    with pytest.raises(UsageError, match="workdir"):
        rs.SpecOptions(workdir="rel")


# ---------------------------------------------------------------- env

def test_env_merge():
    image = {"Cmd": ["x"], "Env": ["PATH=/img/bin", "A=1", "B=2"]}
    assert gen(image, env=["B=override", "C=3"])["process"]["env"] == ["PATH=/img/bin", "A=1", "B=override", "C=3"]
    assert gen({"Cmd": ["x"], "Env": ["A=1"]})["process"]["env"] == ["PATH=" + rs.DEFAULT_PATH, "A=1"]
    assert gen(image, env=["PATH=/mine"])["process"]["env"][0] == "PATH=/mine"
    env = gen(image, hostname="box", terminal=True)["process"]["env"]
    assert env[-2:] == ["HOSTNAME=box", "TERM=xterm"]
    assert "HOSTNAME=mine" in gen(image, hostname="box", env=["HOSTNAME=mine"])["process"]["env"]
    for bad in ("NOEQUALS", "=v"):
        with pytest.raises(UsageError, match="is not KEY=VALUE"):
            rs.SpecOptions(env=[bad])


# ---------------------------------------------------------------- users

def test_numeric_users_need_no_resolver():
    assert gen(command=["x"], user="1000")["process"]["user"] == {"uid": 1000, "gid": 0}
    assert gen(command=["x"], user="1000:50")["process"]["user"] == {"uid": 1000, "gid": 50}
    assert gen({"Cmd": ["x"], "User": "7:8"})["process"]["user"] == {"uid": 7, "gid": 8}
    with pytest.raises(UsageError, match="names need the container's /etc/passwd"):
        rs.generate(rs.SpecOptions(command=["x"], user="nobody"))
    with pytest.raises(UsageError, match="4294967295"):
        rs.generate(rs.SpecOptions(command=["x"], user="99999999999"))


def test_user_names_go_through_the_callers_resolver():
    asked = []

    def resolve(text):  # what a caller reading the rootfs' /etc/passwd and /etc/group returns
        asked.append(text)
        return {"0": (0, 0, []), "app": (100, 101, [5, 6]), "app:web": (100, 33, [])}[text]

    assert gen({"Cmd": ["x"], "User": "app"}, resolve)["process"]["user"] == \
        {"uid": 100, "gid": 101, "additionalGids": [5, 6]}
    assert gen({"Cmd": ["x"], "User": "app"}, resolve, user="app:web")["process"]["user"] == {"uid": 100, "gid": 33}
    assert gen({"Cmd": ["x"]}, resolve)["process"]["user"] == {"uid": 0, "gid": 0}
    assert asked == ["app", "app:web", "0"]
    user = rs.User(5, 6, (7,))
    assert gen(command=["x"], user=user)["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}


# ---------------------------------------------------------------- capabilities

def caps(**kw):
    return gen(command=["x"], **kw)["process"]["capabilities"]


def test_cap_add_and_drop():
    c = caps(cap_add=["net_admin", "CAP_SYS_TIME"], cap_drop=["chown", "CAP_KILL"])
    assert "CAP_NET_ADMIN" in c["bounding"] and "CAP_SYS_TIME" in c["effective"]
    assert "CAP_CHOWN" not in c["bounding"] and "CAP_KILL" not in c["permitted"]
    assert c["bounding"] == c["effective"] == c["permitted"]
    with pytest.raises(UsageError, match="cap-add: unknown capability 'fly'"):
        rs.generate(rs.SpecOptions(command=["x"], cap_add=["fly"]))
    with pytest.raises(UsageError, match="cannot be both added and dropped"):
        rs.generate(rs.SpecOptions(command=["x"], cap_add=["NET_RAW"], cap_drop=["net_raw"]))


def test_cap_all():
    assert caps(cap_add=["ALL"])["bounding"] == list(rs.CAPABILITIES)
    assert caps(cap_add=["all"], cap_drop=["SYS_ADMIN"])["bounding"] == \
        [c for c in rs.CAPABILITIES if c != "CAP_SYS_ADMIN"]
    assert caps(cap_drop=["ALL"]) == {"bounding": [], "effective": [], "permitted": []}
    assert caps(cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"])["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert caps(privileged=True)["effective"] == list(rs.CAPABILITIES)


def test_non_root_user_keeps_only_the_added_capabilities_effective():
    c = caps(user="1000", cap_add=["NET_RAW"])
    assert c["bounding"] == list(rs.DEFAULT_CAPS) + ["CAP_NET_RAW"]
    assert c["effective"] == c["permitted"] == ["CAP_NET_RAW"]
    # exec drops a non-root process's capabilities unless they are ambient (podman 4.3's sets)
    assert c["inheritable"] == c["ambient"] == ["CAP_NET_RAW"]
    assert caps(user="1000")["effective"] == []
    assert "ambient" not in caps(user="1000") and "ambient" not in caps(cap_add=["NET_RAW"])


# ---------------------------------------------------------------- mounts, namespaces, the rest

def test_bind_and_tmpfs_options():
    cfg = gen(command=["x"], mounts=[
        rs.Mount.bind("/host/data", "/data", readonly=True),
        rs.Mount.bind("/host/one", "/one", options=["bind", "nosuid"]),
        rs.Mount.tmpfs("/scratch", options=["size=1m", "mode=1777"]),
        rs.Mount.tmpfs("/run"),
    ])
    m = {x["destination"]: x for x in cfg["mounts"]}
    assert m["/data"] == {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["rbind", "ro"]}
    assert m["/one"]["options"] == ["bind", "nosuid"]
    assert m["/scratch"] == {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["size=1m", "mode=1777"]}
    assert m["/run"]["options"] == ["rw", "nosuid", "nodev", "noexec"]
    with pytest.raises(UsageError, match="not an absolute path"):
        rs.Mount.bind("/x", "rel")
    with pytest.raises(UsageError, match="not a path"):
        rs.Mount("/a\0b")


def test_a_users_mount_replaces_the_default_at_its_destination():
    cfg = gen(command=["x"], mounts=[rs.Mount.tmpfs("/dev/shm/", options=["size=1g"])])
    shm = [m for m in cfg["mounts"] if m["destination"].rstrip("/") == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm/", "type": "tmpfs", "source": "tmpfs", "options": ["size=1g"]}]
    assert cfg["mounts"][-1] is not None and cfg["mounts"][-1]["destination"] == "/dev/shm/"
    assert [m["destination"] for m in gen(command=["x"], default_mounts=False)["mounts"]] == []


def test_namespaces_host_and_joined():
    cfg = gen(command=["x"], namespaces=[rs.Namespace("pid"), rs.Namespace("mount"),
                                         rs.Namespace("network", "/proc/1/ns/net"), rs.Namespace("uts", "/proc/1/ns/uts")])
    assert cfg["linux"]["namespaces"][2] == {"type": "network", "path": "/proc/1/ns/net"}
    assert "hostname" not in cfg  # the uts namespace is not the container's own
    # a joined network namespace is the container's own too: a sysfs mounted inside it (podman's)
    assert cfg["mounts"][-1] == {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                 "options": ["nosuid", "noexec", "nodev", "ro"]}
    cfg = gen(command=["x"], namespaces=[rs.Namespace("pid"), rs.Namespace("mount")])  # the host's network
    assert cfg["mounts"][-1] == {"destination": "/sys", "type": "bind", "source": "/sys",
                                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    with pytest.raises(UsageError, match="unknown"):
        rs.Namespace("nett")
    with pytest.raises(UsageError, match="given twice"):
        rs.SpecOptions(namespaces=[rs.Namespace("pid"), rs.Namespace("pid", "/proc/1/ns/pid")])
    cfg = gen(command=["x"], namespaces=[*rs.DEFAULT_NAMESPACES, rs.Namespace("user")],
              uid_mappings=[rs.IDMap(0, 100000, 65536)], gid_mappings=[rs.IDMap(0, 100000, 65536)])
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_readonly_privileged_and_paths():
    assert gen(command=["x"], readonly_rootfs=True, rootfs="/r")["root"] == {"path": "/r", "readonly": True}
    cfg = gen(command=["x"], privileged=True)
    assert cfg["linux"]["maskedPaths"] == [] and cfg["linux"]["readonlyPaths"] == []
    assert "ro" not in cfg["mounts"][-1]["options"]
    cfg = gen(command=["x"], masked_paths=["/proc/kcore"], readonly_paths=[])
    assert cfg["linux"]["maskedPaths"] == ["/proc/kcore"] and cfg["linux"]["readonlyPaths"] == []


def test_rlimits_nnp_seccomp_annotations_cgroups():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    cfg = gen(command=["x"], rlimits=[rs.Rlimit("nofile", 10, 20), rs.Rlimit("RLIMIT_NPROC", 5, 5)],
              no_new_privileges=True, seccomp=profile, annotations={"org.example": "1"},
              cgroups_path="/pallet/c1",
              resources=rs.Resources(memory=1 << 26, memory_swap=1 << 27, cpu_shares=512, cpu_quota=50000,
                                     cpu_period=100000, pids_limit=64))
    p, lx = cfg["process"], cfg["linux"]
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 20, "soft": 10},
                            {"type": "RLIMIT_NPROC", "hard": 5, "soft": 5}]
    assert p["noNewPrivileges"] is True and cfg["annotations"] == {"org.example": "1"}
    assert lx["seccomp"] == profile and lx["seccomp"] is not profile
    lx["seccomp"]["syscalls"][0]["names"].append("rmdir")
    assert profile["syscalls"][0]["names"] == ["mkdir"]  # the caller's profile is not shared
    assert lx["cgroupsPath"] == "/pallet/c1"
    assert lx["resources"] == {"memory": {"limit": 1 << 26, "swap": 1 << 27},
                               "cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": 64},
                               "devices": [{"allow": False, "access": "rwm"}]}
    assert gen(command=["x"], resources=rs.Resources())["linux"]["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}]}
    assert gen(command=["x"], privileged=True)["linux"]["resources"] == {"devices": [{"allow": True, "access": "rwm"}]}


def test_the_builds_run_config():
    """builder/run.py's RUN bundle: what it wrote before the generator, field for field."""
    from pallet.builder import run as build_run

    o = build_run.RunOptions(env=["A=1"], cwd="/w", user=(1000, 100, [5]), network="host", hostname="abc",
                             mounts=[{"destination": "/cache", "type": "bind", "source": "/c",
                                      "options": ["rbind", "rw"], "keep": True}])
    cfg = build_run.spec("/r", ["sh", "-c", "x"], o, "/b/hosts", "/b/resolv.conf")
    runtime_spec.validate(cfg)
    assert cfg["ociVersion"] == "1.0.2" and cfg["hostname"] == "abc"
    assert cfg["process"]["env"] == ["PATH=" + rs.DEFAULT_PATH, "A=1", "HOSTNAME=abc"]
    assert cfg["process"]["user"] == {"uid": 1000, "gid": 100, "additionalGids": [5]}
    assert cfg["process"]["capabilities"] == {"bounding": list(rs.DEFAULT_CAPS), "effective": [], "permitted": []}
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    assert [m["destination"] for m in cfg["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                                                          "/etc/hosts", "/etc/resolv.conf", "/sys/fs/cgroup", "/cache"]
    assert cfg["mounts"][8] == {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    assert cfg["mounts"][5]["type"] == "bind"  # host network: the host's /sys, read-only
    assert cfg["mounts"][6] == {"destination": "/etc/hosts", "type": "bind", "source": "/b/hosts",
                                "options": ["rbind", "ro"]}
    assert "keep" not in cfg["mounts"][9]
    o = build_run.RunOptions(network="none")
    cfg = build_run.spec("/r", ["x"], o, "/h", "/rv")
    assert cfg["linux"]["namespaces"][-1] == {"type": "network"} and cfg["mounts"][5]["type"] == "sysfs"
    assert cfg["hostname"] == "pallet" and not any(e.startswith("HOSTNAME=") for e in cfg["process"]["env"])
    assert cfg["process"]["capabilities"]["effective"] == list(rs.DEFAULT_CAPS)
