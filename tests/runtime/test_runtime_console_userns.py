"""pallet-runtime: the console socket (pty master over SCM_RIGHTS), user namespaces with id
mappings, and namespaces joined by path — on the real kernel."""

from __future__ import annotations

import os
import socket
import threading


from test_runtime_helpers import load_config, make_bundle, save_config


class ConsoleReceiver:
    """What conmon does: listen, take the pty master sent with SCM_RIGHTS, read the terminal."""

    def __init__(self, path, send=b""):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.name = None
        self.output = b""
        self.send = send
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.sock.accept()
        msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        conn.close()
        self.name = msg
        master = fds[0]
        if self.send:
            os.write(master, self.send)
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last slave fd closed
                break
            if not data:
                break
            self.output += data
        os.close(master)

    def wait(self):
        self.thread.join(15)
        self.sock.close()
        return self.output


def terminal(bundle, script, **process):
    cfg = load_config(bundle)
    cfg["process"].update(terminal=True, args=["sh", "-c", script], **process)
    save_config(bundle, cfg)
    return cfg


def test_console_socket_gets_the_pty_master(rt, bundle, tmp_path):
    terminal(bundle, "tty; test -t 0 && test -t 1 && echo is-a-tty; ls -l /dev/console | cut -c1; "
                     "stty size; echo done", consoleSize={"height": 33, "width": 101})
    rx = ConsoleReceiver(str(tmp_path / "console.sock"))
    r = rt("run", "--console-socket", rx.path, "-b", bundle, "tty")
    assert r.returncode == 0, r.stderr
    out = rx.wait().decode()
    assert rx.name == b"/dev/pts/0"
    assert out.split("\r\n")[:5] == ["/dev/pts/0", "is-a-tty", "c", "33 101", "done"]


def test_console_input_reaches_the_program(rt, bundle, tmp_path):
    terminal(bundle, "read line; echo got-$line; exit 4")
    rx = ConsoleReceiver(str(tmp_path / "console.sock"), send=b"typed\n")
    r = rt("run", "--console-socket", rx.path, "-b", bundle, "tin")
    assert r.returncode == 4, r.stderr
    assert "got-typed" in rx.wait().decode()


def test_console_socket_rules(rt, bundle, tmp_path):
    terminal(bundle, "true")
    r = rt("run", "-b", bundle, "nosock")
    assert r.returncode == 1 and "--console-socket" in r.stderr
    r = rt("run", "--console-socket", str(tmp_path / "nobody.sock"), "-b", bundle, "badsock")
    assert r.returncode == 1 and "nobody.sock" in r.stderr and "Traceback" not in r.stderr
    cfg = load_config(bundle)
    cfg["process"]["terminal"] = False
    save_config(bundle, cfg)
    rx = ConsoleReceiver(str(tmp_path / "c.sock"))
    r = rt("run", "--console-socket", rx.path, "-b", bundle, "notty")
    assert r.returncode == 1 and "terminal" in r.stderr
    assert not os.path.exists(rt.root) or not os.listdir(rt.root)


def test_exec_tty_through_the_console_socket(rt, bundle, tmp_path):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sleep", "30"]
    save_config(bundle, cfg)
    assert rt.create("ext", bundle).returncode == 0
    assert rt("start", "ext").returncode == 0
    rx = ConsoleReceiver(str(tmp_path / "exec.sock"))
    r = rt("exec", "--tty", "--console-socket", rx.path, "ext", "sh", "-c", "tty; echo exec-tty")
    assert r.returncode == 0, r.stderr
    out = rx.wait().decode()
    assert out.split("\r\n")[1] == "exec-tty" and out.startswith("/dev/pts/")


# ---------------------------------------------------------------- user namespaces

def userns_bundle(bundle, script, host=100000, size=65536):
    # the root filesystem belongs to the mapped root, as podman makes it for a user namespace
    for d, dirs, files in os.walk(os.path.join(bundle, "rootfs")):
        os.lchown(d, host, host)
        for n in dirs + files:
            os.lchown(os.path.join(d, n), host, host)
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sh", "-c", script]
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    save_config(bundle, cfg)
    return cfg


def test_user_namespace_mappings(rt, open_dir):
    from pathlib import Path

    bundle = make_bundle(open_dir + "/bundle")
    shared = Path(open_dir) / "shared"
    shared.mkdir()
    os.chown(shared, 100000, 100000)
    cfg = userns_bundle(bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                                "touch /shared/by-root; "
                                "grep CapEff /proc/self/status")
    cfg["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind"]})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "uns")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:6] == ["0", "100000", "65536", "0", "100000", "65536"]
    assert out[6:8] == ["0", "0"]
    st = os.stat(shared / "by-root")
    assert (st.st_uid, st.st_gid) == (100000, 100000)  # the container's root is host uid 100000
    assert out[8:] == ["CapEff:", "0000000020000420"]


def test_user_namespace_root_is_not_host_root(rt, open_dir):
    from pathlib import Path

    bundle = make_bundle(open_dir + "/bundle")
    secret = Path(open_dir) / "secret"
    secret.write_text("host only\n")
    secret.chmod(0o600)
    cfg = userns_bundle(bundle, "cat /secret 2>/dev/null || echo denied; "
                                "echo x > /proc/sysrq-trigger 2>/dev/null || echo sysrq-denied")
    cfg["mounts"].append({"destination": "/secret", "type": "bind", "source": str(secret), "options": ["bind"]})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "uns2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["denied", "sysrq-denied"]


def test_user_namespace_needs_mappings(rt, bundle):
    cfg = load_config(bundle)
    cfg["linux"]["namespaces"].append({"type": "user"})
    save_config(bundle, cfg)
    r = rt("run", "-b", bundle, "nomap")
    assert r.returncode == 1 and "uidMappings" in r.stderr


# ---------------------------------------------------------------- joining namespaces by path

def test_join_namespaces_by_path(rt, bundle, tmp_path):
    cfg = load_config(bundle)
    cfg["process"]["args"] = ["sleep", "30"]
    cfg["hostname"] = "first"
    save_config(bundle, cfg)
    assert rt.create("first", bundle).returncode == 0
    pid = rt.state("first")["pid"]
    second = make_bundle(str(tmp_path / "second"))
    cfg = load_config(second)
    cfg["process"]["args"] = ["sh", "-c", "hostname; for n in net ipc uts; do readlink /proc/self/ns/$n; done"]
    cfg.pop("hostname")
    ns = {"network": "net", "ipc": "ipc", "uts": "uts"}
    cfg["linux"]["namespaces"] = [{"type": t, "path": f"/proc/{pid}/ns/{ns[t]}"} if t in ns else {"type": t}
                                  for t in ("pid", "network", "ipc", "uts", "mount")]
    save_config(second, cfg)
    r = rt("run", "-b", second, "second")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["first"] + [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("net", "ipc", "uts")]
    cfg["linux"]["namespaces"][1]["path"] = "/proc/999999999/ns/net"
    save_config(second, cfg)
    r = rt("run", "-b", second, "third")
    assert r.returncode == 1 and "linux.namespaces (network)" in r.stderr
