"""Pod networks through CNI plugins, as the kubelet expects of a CRI runtime (the CNI spec's
plugin protocol: ``CNI_COMMAND`` ADD/DEL/..., the network configuration on stdin, the result on
stdout). The network is the first configuration in the directory by file name (``*.conflist``,
``*.conf``, ``*.json``), as CRI-O and containerd choose it; a ``.conf`` file is one plugin.

ADD runs the plugins in order, each getting the previous one's result as ``prevResult``; when
one fails, DEL runs for the ones before it in reverse (their addresses are released, their
veths deleted) and the error is raised. DEL runs every plugin in reverse and goes on past
errors, reporting the first.
"""

from __future__ import annotations

import os

from .._std import json
from ..errors import CRIError

IFNAME = "eth0"


class Network:
    """A loaded network configuration list: ``name``, ``version``, ``plugins`` (dicts)."""

    def __init__(self, path: str, name: str, version: str, plugins: list[dict]):
        self.path, self.name, self.version, self.plugins = path, name, version, plugins


def load(conf_dir: str) -> Network:
    """The first network configuration in ``conf_dir``."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conflist", ".conf", ".json")))
    except OSError as e:
        raise CRIError(f"CNI configuration directory {conf_dir}: {e.strerror}", "FAILED_PRECONDITION") from None
    if not names:
        raise CRIError(f"no CNI network configuration in {conf_dir}", "FAILED_PRECONDITION")
    path = os.path.join(conf_dir, names[0])
    from .jsonfile import read

    doc = read(path, "CNI configuration", "FAILED_PRECONDITION")
    if not isinstance(doc, dict):
        raise CRIError(f"CNI configuration {path}: not a JSON object", "FAILED_PRECONDITION")
    if "plugins" in doc:
        plugins = doc["plugins"]
    elif "type" in doc:
        plugins = [{k: v for k, v in doc.items() if k not in ("name", "cniVersion")}]
    else:
        plugins = None
    name, version = doc.get("name"), doc.get("cniVersion", "0.4.0")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not isinstance(plugins, list) \
            or not plugins or not all(isinstance(p, dict) and isinstance(p.get("type"), str) and p["type"]
                                      and "/" not in p["type"] for p in plugins):
        raise CRIError(f"CNI configuration {path}: want a name, a cniVersion and plugins with a type",
                       "FAILED_PRECONDITION")
    return Network(path, name, version, plugins)


def find_plugin(kind: str, plugin_dirs: list[str]) -> str | None:
    for d in plugin_dirs:
        p = os.path.join(d, kind)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def check(net: Network, plugin_dirs: list[str]) -> None:
    """Every plugin of ``net`` is installed (Status's NetworkReady)."""
    for p in net.plugins:
        if find_plugin(p["type"], plugin_dirs) is None:
            raise CRIError(f"CNI plugin {p['type']!r} of network {net.name!r} not found in "
                           f"{':'.join(plugin_dirs)}", "FAILED_PRECONDITION")


def _call(net: Network, plugin: dict, command: str, container_id: str, netns: str, args: str,
          plugin_dirs: list[str], prev: dict | None, runtime_config: dict, timeout: float = 60) -> dict:
    exe = find_plugin(plugin["type"], plugin_dirs)
    if exe is None:
        raise CRIError(f"CNI plugin {plugin['type']!r} not found in {':'.join(plugin_dirs)}", "FAILED_PRECONDITION")
    conf = dict(plugin, name=net.name, cniVersion=net.version)
    if prev is not None:
        conf["prevResult"] = prev
    caps = plugin.get("capabilities") if isinstance(plugin.get("capabilities"), dict) else {}
    rc = {k: v for k, v in runtime_config.items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": IFNAME,
           "CNI_PATH": ":".join(plugin_dirs), "CNI_ARGS": args}
    from .._std import proc  # its spawn lets the server's other threads run (subprocess's holds the GIL)

    try:
        p = proc.run([exe], input=json.dumps(conf).encode(), capture_output=True, env=env, timeout=timeout)
    except proc.TimeoutExpired:
        raise CRIError(f"CNI plugin {plugin['type']} {command} timed out", "DEADLINE_EXCEEDED") from None
    if p.returncode != 0:
        msg = p.stdout.decode("utf-8", "replace").strip() or p.stderr.decode("utf-8", "replace").strip()
        try:
            doc = json.loads(msg)
            msg = f"{doc.get('msg', '')} {doc.get('details', '')}".strip() or msg
        except ValueError:
            pass
        raise CRIError(f"CNI plugin {plugin['type']} {command} failed: {' '.join(msg.split()) or p.returncode}")
    if command != "ADD":
        return {}
    try:
        out = json.loads(p.stdout) if p.stdout.strip() else {}
    except ValueError:
        raise CRIError(f"CNI plugin {plugin['type']} {command}: its result is not JSON") from None
    return out if isinstance(out, dict) else {}


def k8s_args(pod_name: str, namespace: str, pod_uid: str, sandbox_id: str) -> str:
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod_name};"
            f"K8S_POD_INFRA_CONTAINER_ID={sandbox_id};K8S_POD_UID={pod_uid}")


def add(net: Network, container_id: str, netns: str, args: str, plugin_dirs: list[str],
        runtime_config: dict | None = None) -> dict:
    """Attach the namespace; the last plugin's result. Nothing is left attached on failure."""
    prev = None
    done = []
    try:
        for plugin in net.plugins:
            prev = _call(net, plugin, "ADD", container_id, netns, args, plugin_dirs, prev, runtime_config or {})
            done.append(plugin)
    except BaseException:
        for plugin in reversed(done + [plugin]):
            try:
                _call(net, plugin, "DEL", container_id, netns, args, plugin_dirs, prev, runtime_config or {})
            except CRIError:
                pass
        raise
    return prev or {}


def delete(net: Network, container_id: str, netns: str, args: str, plugin_dirs: list[str],
           prev: dict | None = None, runtime_config: dict | None = None) -> None:
    """Detach (every plugin in reverse, going on past failures; the first is raised)."""
    first = None
    for plugin in reversed(net.plugins):
        try:
            _call(net, plugin, "DEL", container_id, netns, args, plugin_dirs, prev, runtime_config or {})
        except CRIError as e:
            first = first or e
    if first is not None:
        raise first


def ips(result: dict) -> list[str]:
    """The addresses of a result (CNI 0.3+: ``ips[].address``, ``0.2``: ``ip4.ip``), no prefix."""
    out = []
    for entry in result.get("ips") or []:
        if isinstance(entry, dict) and isinstance(entry.get("address"), str):
            out.append(entry["address"].split("/")[0])
    for key in ("ip4", "ip6"):
        v = result.get(key)
        if isinstance(v, dict) and isinstance(v.get("ip"), str):
            out.append(v["ip"].split("/")[0])
    return out
