"""podman 4.3's ``inspect`` object for a container, and its public state names: what ``pallet
container inspect`` prints and the Python API's ``ManagedContainer.inspect()`` returns."""

from __future__ import annotations


def public_state(st: dict) -> str:
    """podman's state names: a container never started (or whose start failed) is "created"."""
    from .container import Containers

    s = st.get("state") or "created"
    if s == "running" and st.get("paused"):
        return "paused"
    if Containers.stopping(st):
        return "stopping"
    return "created" if s == "configured" else s


def inspect_doc(ctrs, c) -> dict:
    """podman 4.3's ``inspect`` object for a container (its keys; values pallet does not have
    are podman's zero values)."""
    import os

    from ..errors import PalletError

    from .health import status as health_status
    from .procs import human_size

    meta = c["metadata"]["pallet"]
    cid = c["id"]
    st = ctrs.state(cid)
    try:
        cfg = ctrs.spec(cid)
    except PalletError:
        cfg = {}
    proc = cfg.get("process") or {}
    caps = proc.get("capabilities") or {}
    state = public_state(st)
    zero = "0001-01-01T00:00:00Z"
    userdata = os.path.join(ctrs.data, cid, "userdata")
    rundir = os.path.join(ctrs.base, cid)
    nets = {}
    first = {}
    for net, r in (st.get("network_results") or {}).items():
        ifs = r.get("interfaces") or []
        v4 = next((s for i in ifs for s in i["subnets"] if ":" not in s["ipnet"]), None)
        v6 = next((s for i in ifs for s in i["subnets"] if ":" in s["ipnet"]), None)
        nets[net] = {"EndpointID": "", "Gateway": (v4 or {}).get("gateway") or "",
                     "IPAddress": v4["ipnet"].split("/")[0] if v4 else "",
                     "IPPrefixLen": int(v4["ipnet"].split("/")[1]) if v4 else 0,
                     "IPv6Gateway": (v6 or {}).get("gateway") or "",
                     "GlobalIPv6Address": v6["ipnet"].split("/")[0] if v6 else "",
                     "GlobalIPv6PrefixLen": int(v6["ipnet"].split("/")[1]) if v6 else 0,
                     "MacAddress": ifs[0]["mac"] if ifs else "", "NetworkID": net, "DriverOpts": None,
                     "IPAMConfig": None, "Links": None, "Aliases": [cid[:12]]}
        first = first or nets[net]
    ports = {}
    for p in meta.get("publish") or []:
        ports.setdefault(f"{p['container_port']}/{p.get('protocol', 'tcp')}", []).append(
            {"HostIp": p.get("host_ip") or "", "HostPort": str(p["host_port"])})
    netset = {"EndpointID": "", "Gateway": first.get("Gateway", ""), "IPAddress": first.get("IPAddress", ""),
              "IPPrefixLen": first.get("IPPrefixLen", 0), "IPv6Gateway": first.get("IPv6Gateway", ""),
              "GlobalIPv6Address": first.get("GlobalIPv6Address", ""),
              "GlobalIPv6PrefixLen": first.get("GlobalIPv6PrefixLen", 0), "MacAddress": first.get("MacAddress", ""),
              "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
              "LinkLocalIPv6PrefixLen": 0, "Ports": ports, "SandboxKey": st.get("netns") or ""}
    if nets:
        netset["Networks"] = nets
    res = (cfg.get("linux") or {}).get("resources") or {}
    cpu = res.get("cpu") or {}
    mode = ",".join(meta.get("networks") or [])
    return {
        "Id": cid, "Created": c["created"], "Path": (proc.get("args") or [""])[0],
        "Args": (proc.get("args") or [])[1:],
        "State": {"OciVersion": cfg.get("ociVersion"), "Status": state, "Running": state == "running",
                  "Paused": state == "paused", "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": st.get("pid") or 0,
                  "ConmonPid": st.get("conmon_pid") or 0, "ExitCode": st.get("exit_code") or 0, "Error": "",
                  "StartedAt": st.get("started_at") or zero, "FinishedAt": st.get("finished_at") or zero,
                  "Health": health_status(st, meta),
                  "CgroupPath": (cfg.get("linux") or {}).get("cgroupsPath") or "",
                  "CheckpointedAt": zero, "RestoredAt": zero},
        "Image": meta.get("image_id"), "ImageDigest": meta.get("image_digest") or "",
        "ImageName": meta.get("image_ref") or meta.get("image_name"), "Rootfs": (meta.get("rootfs") or {}).get("path", ""),
        "Pod": (meta.get("pod") or {}).get("id") or "",
        "ResolvConfPath": os.path.join(userdata, "resolv.conf"), "HostnamePath": os.path.join(userdata, "hostname"),
        "HostsPath": os.path.join(userdata, "hosts"), "StaticDir": userdata,
        "OCIConfigPath": os.path.join(userdata, "config.json"), "OCIRuntime": meta.get("runtime"),
        "ConmonPidFile": meta.get("conmon_pidfile") or os.path.join(rundir, "conmon.pid"),
        "PidFile": meta.get("pidfile") or os.path.join(rundir, "pidfile"),
        "Name": meta["name"], "RestartCount": int(st.get("restart_count") or 0), "Driver": ctrs.store.driver.name, "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "EffectiveCaps": sorted(caps.get("effective") or []),
        "BoundingCaps": sorted(caps.get("bounding") or []), "ExecIDs": [],
        "GraphDriver": {"Name": ctrs.store.driver.name, "Data": None},
        "Mounts": [{"Type": "bind", "Source": b["source"], "Destination": b["destination"], "Driver": "",
                    "Mode": "", "Options": ["rbind"], "RW": not b["readonly"], "Propagation": "rprivate"}
                   for b in meta.get("binds") or []],
        "Dependencies": [], "NetworkSettings": netset, "Namespace": "", "IsInfra": bool((meta.get("pod") or {}).get("infra")), "IsService": False,
        "Config": {"Hostname": cfg.get("hostname") or "", "Domainname": "", "User": meta.get("user") or "",
                   "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
                   "Tty": bool(meta.get("tty")), "OpenStdin": bool(meta.get("interactive")), "StdinOnce": False,
                   "Env": proc.get("env") or [], "Cmd": meta.get("command") or (proc.get("args") or []),
                   "Image": meta.get("image_ref") or meta.get("image_name"), "Volumes": None,
                   "WorkingDir": proc.get("cwd") or "/",
                   "Entrypoint": meta.get("entrypoint") or "", "OnBuild": None, "Labels": meta.get("labels") or None,
                   "Annotations": {"io.container.manager": "pallet",
                                   "io.podman.annotations.autoremove": "TRUE" if meta.get("rm") else "FALSE",
                                   "io.podman.annotations.privileged": "TRUE" if meta.get("privileged") else "FALSE",
                                   "org.opencontainers.image.stopSignal": str(meta.get("stop_signal"))},
                   "StopSignal": meta.get("stop_signal"),
                   "HealthcheckOnFailureAction": meta.get("health_on_failure") or "none",
                   **({"Healthcheck": meta["healthcheck"]} if meta.get("healthcheck") else {}),
                   "CreateCommand": meta.get("create_command") or [], "Umask": "0022",
                   "Timeout": meta.get("timeout") or 0,
                   "StopTimeout": meta.get("stop_timeout", 10), "Passwd": False,
                   "sdNotifyMode": meta.get("sdnotify") or "container"},
        "HostConfig": _with_extra(meta, {"Binds": [f"{b['source']}:{b['destination']}:" + ("ro" if b["readonly"] else "rw") + ",rprivate,rbind"
                                 for b in meta.get("binds") or []],
                       "CgroupManager": "cgroupfs", "CgroupMode": "host", "ContainerIDFile": meta.get("cidfile") or "",
                       "LogConfig": {"Type": ((meta.get("extra") or {}).get("log") or {}).get("driver", "k8s-file"),
                                     "Config": None, "Tag": ((meta.get("extra") or {}).get("log") or {}).get("tag", ""),
                                     "Path": "" if ((meta.get("extra") or {}).get("log") or {}).get("driver")
                                     == "journald" else ctrs.log_path(cid, meta),
                                     "Size": human_size(((meta.get("extra") or {}).get("log") or {}).get("max_size")
                                                        or 0)},
                       "NetworkMode": {"none": "none", "host": "host"}.get(mode, "bridge"), "PortBindings": ports,
                       "RestartPolicy": {"Name": "" if meta.get("restart_policy") in (None, "no")
                                         else meta["restart_policy"],
                                         "MaximumRetryCount": meta.get("restart_retries") or 0},
                       "Init": bool(meta.get("init")),
                       "AutoRemove": bool(meta.get("rm")), "VolumeDriver": "", "VolumesFrom": None,
                       "CapAdd": meta.get("cap_add") or [], "CapDrop": meta.get("cap_drop") or [], "Dns": [],
                       "DnsOptions": [], "DnsSearch": [], "ExtraHosts": [], "GroupAdd": [], "IpcMode": "shareable",
                       "Cgroup": "", "Cgroups": "default", "Links": None, "OomScoreAdj": 0, "PidMode": "private",
                       "Privileged": bool(meta.get("privileged")), "PublishAllPorts": bool(meta.get("publish_all")),
                       "ReadonlyRootfs": bool(meta.get("read_only")), "SecurityOpt": [],
                       "Tmpfs": {t["destination"]: ",".join(t["options"]) for t in meta.get("tmpfs") or []},
                       "UTSMode": "private", "UsernsMode": "", "ShmSize": 65536000, "Runtime": "oci",
                       "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": meta.get("memory") or 0,
                       "NanoCpus": int(round((meta.get("cpus") or 0) * 1e9)),
                       "CgroupParent": meta.get("cgroup_parent") or "", "BlkioWeight": 0,
                       "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
                       "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
                       "CpuPeriod": cpu.get("period") or 0, "CpuQuota": cpu.get("quota") or 0,
                       "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
                       "Devices": [], "DiskQuota": 0, "KernelMemory": 0, "MemoryReservation": 0, "MemorySwap": 0,
                       "MemorySwappiness": 0, "OomKillDisable": False,
                       "PidsLimit": (res.get("pids") or {}).get("limit") or 0, "Ulimits": [], "CpuCount": 0,
                       "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "CgroupConf": None}),
    }


def _with_extra(meta: dict, hc: dict) -> dict:
    """podman's HostConfig keys for run's extra flags (containers/options.py)."""
    x = meta.get("extra")
    if not x:
        return hc
    ns = x.get("namespaces") or {}

    def mode(kind, private):
        v = ns.get(kind)
        return "host" if v == "host" else (f"ns:{v}" if v else private)

    sec = (["no-new-privileges"] if x.get("no_new_privileges") else []) + \
        ([f"seccomp={x['seccomp']}"] if x.get("seccomp_explicit") else [])
    hc.update(Dns=list(x.get("dns") or []), DnsOptions=list(x.get("dns_options") or []),
              DnsSearch=list(x.get("dns_search") or []),
              ExtraHosts=[":".join(reversed(h.split("\t", 1))) for h in x.get("add_hosts") or []],
              SecurityOpt=sec, IpcMode=mode("ipc", "shareable"), PidMode=mode("pid", "private"),
              UTSMode=mode("uts", "private"), CgroupMode=mode("cgroup", "private") if "cgroup" in ns else "host",
              Ulimits=[{"Name": t, "Soft": soft, "Hard": hard} for t, soft, hard in x.get("rlimits") or []],
              Devices=[{"PathOnHost": d.get("source", ""), "PathInContainer": d["path"], "CgroupPermissions": d["access"]}
                       for d in x.get("devices") or []])
    if x.get("userns"):
        from .userns import inspect as userns_inspect

        hc.update(userns_inspect(x["userns"]))
    return hc
