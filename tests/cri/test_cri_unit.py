"""Pure parts of the CRI server: its configuration, CNI configuration loading and results, the
runtime-spec fields it adds, and the protocol's wire facts (names and field numbers the kubelet
and crictl rely on)."""

from __future__ import annotations

import json

import pytest

from pallet.errors import ConfigError, CRIError

pytestmark = pytest.mark.unit


def test_config_defaults_and_values():
    from pallet.cri.config import CRIConfig, parse

    c = parse("")
    assert (c.listen, c.socket_path, c.cni_config_dir) == ("unix:///run/pallet/cri.sock", "/run/pallet/cri.sock",
                                                           "/etc/cni/net.d")
    assert c.pause_command == ["/usr/bin/catatonit", "-P"] and c.cgroup_manager == "cgroupfs"
    c = parse('listen = "unix:///tmp/x.sock"\nruntime = "runc"\ncni_plugin_dirs = ["/a"]\nlog_size_max = 1024\n')
    assert (c.socket_path, c.runtime, c.cni_plugin_dirs, c.log_size_max) == ("/tmp/x.sock", "runc", ["/a"], 1024)
    assert isinstance(c, CRIConfig)


@pytest.mark.parametrize("text,words", [("x = ", "not valid TOML"), ("bogus = 1", "unknown key 'bogus'"),
                                        ("runtime = 1", "runtime must be a string"),
                                        ("log_size_max = true", "log_size_max must be an integer"),
                                        ("cni_plugin_dirs = [1]", "list of strings"),
                                        ("listen = 'relative.sock'", "want unix:///"),
                                        ("cgroup_manager = 'systemd'", "only \"cgroupfs\""),
                                        ("pause_image = 'k8s.gcr.io/pause'", "not supported yet"),
                                        ("pause_command = []", "must not be empty"),
                                        ("stream_port = 70000", "not a port number"),
                                        ("runtimes = 'runc'", "runtimes must be a table"),
                                        ("[runtimes]\n'a b' = 'runc'", "runtimes.a b")])
def test_config_errors_name_the_file_and_key(text, words):
    from pallet.cri.config import parse

    with pytest.raises(ConfigError) as e:
        parse(text, "/etc/pallet/cri.conf")
    assert str(e.value).startswith("/etc/pallet/cri.conf: ") and words in str(e.value) and "\n" not in str(e.value)


def test_cni_load_picks_the_first_file_and_reads_conf_and_conflist(tmp_path):
    from pallet.cri import cni

    (tmp_path / "20-b.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "b",
                                                        "plugins": [{"type": "bridge"}, {"type": "portmap"}]}))
    (tmp_path / "10-a.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "a", "type": "bridge",
                                                    "bridge": "x0"}))
    (tmp_path / "README").write_text("not a config")
    net = cni.load(str(tmp_path))
    assert (net.name, net.version, net.plugins) == ("a", "0.4.0", [{"type": "bridge", "bridge": "x0"}])
    (tmp_path / "10-a.conf").unlink()
    assert [p["type"] for p in cni.load(str(tmp_path)).plugins] == ["bridge", "portmap"]


@pytest.mark.parametrize("doc", ["[]", "{}", '{"name": "x", "plugins": []}', '{"name": "x", "plugins": [{"type": "../evil"}]}',
                                 "not json"])
def test_cni_bad_configurations_are_refused(tmp_path, doc):
    from pallet.cri import cni

    (tmp_path / "a.conflist").write_text(doc)
    with pytest.raises(CRIError) as e:
        cni.load(str(tmp_path))
    assert e.value.code == "FAILED_PRECONDITION" and "a.conflist" in str(e.value)


def test_cni_empty_dir_and_result_addresses(tmp_path):
    from pallet.cri import cni

    with pytest.raises(CRIError, match="no CNI network configuration"):
        cni.load(str(tmp_path))
    assert cni.ips({"ips": [{"address": "10.1.2.3/24"}, {"address": "fd00::3/64"}]}) == ["10.1.2.3", "fd00::3"]
    assert cni.ips({"ip4": {"ip": "10.9.9.9/16"}}) == ["10.9.9.9"]
    assert cni.k8s_args("p", "ns", "u", "id").split(";")[0] == "IgnoreUnknown=1"


def test_runtime_spec_carries_oom_score_adj_and_cpusets():
    from pallet.oci import runtime_spec as rs

    doc = rs.generate(rs.SpecOptions(command=("true",), oom_score_adj=500,
                                     resources=rs.Resources(cpu_shares=512, cpuset_cpus="0", cpuset_mems="0")))
    assert doc["process"]["oomScoreAdj"] == 500
    assert doc["linux"]["resources"]["cpu"] == {"shares": 512, "cpus": "0", "mems": "0"}
    assert "oomScoreAdj" not in rs.generate(rs.SpecOptions(command=("true",)))["process"]


def test_protocol_wire_facts():
    """The names and numbers peers put on the wire (the CRI API's runtime.v1)."""
    from pallet.cri.api import runtime_v1_pb2 as pb

    def number(msg, field):
        return msg.DESCRIPTOR.fields_by_name[field].number

    assert pb.DESCRIPTOR.package == "runtime.v1"
    svc = pb.DESCRIPTOR.services_by_name
    assert {"RunPodSandbox", "CreateContainer", "ExecSync", "PortForward", "RuntimeConfig"} <= \
        set(svc["RuntimeService"].methods_by_name)
    assert set(svc["ImageService"].methods_by_name) == {"ListImages", "ImageStatus", "PullImage", "RemoveImage",
                                                        "ImageFsInfo"}
    assert number(pb.ContainerConfig, "log_path") == 11 and number(pb.ContainerConfig, "linux") == 15
    assert number(pb.LinuxContainerSecurityContext, "run_as_group") == 12
    assert number(pb.LinuxContainerSecurityContext, "seccomp") == 15
    assert number(pb.ImageSpec, "user_specified_image") == 18 and number(pb.PodSandboxConfig, "linux") == 8
    assert number(pb.LinuxSandboxSecurityContext, "run_as_group") == 8
    assert (pb.NODE, pb.CONTAINER_EXITED, pb.SANDBOX_NOTREADY, pb.CGROUPFS) == (2, 2, 1, 1)


def test_image_description_of_a_record():
    from pallet.cri import imagesvc

    class NoBlobs:
        def open_blob(self, d):
            raise OSError("none")

    rec = {"id": "a" * 64, "names": ["localhost:5000/x/y:1", "localhost:5000/x/y:2"], "digest": "sha256:" + "b" * 64,
           "size": 42, "config": "sha256:" + "a" * 64}
    d = imagesvc.describe(NoBlobs(), rec)
    assert d["id"] == "sha256:" + "a" * 64 and d["repo_tags"] == rec["names"] and d["size"] == 42
    assert d["repo_digests"] == ["localhost:5000/x/y@sha256:" + "b" * 64] and d["uid"] is None


def test_default_seccomp_is_a_deny_list_the_runtime_accepts():
    from pallet.oci import runtime_spec as rs
    from pallet.runtime import seccomp

    prof = rs.default_seccomp()
    assert prof["defaultAction"] == "SCMP_ACT_ALLOW" and "kexec_load" in prof["syscalls"][0]["names"]
    seccomp.check(prof)


# -- SPDY/3.1 (cri/spdy.py) ------------------------------------------------------------------------

def test_spdy_dictionary_and_frames():
    import hashlib
    import struct

    from pallet.cri import spdy

    # the draft's dictionary, byte for byte (1423 bytes; the checksum of the draft's text)
    assert len(spdy.DICTIONARY) == 1423 and spdy.DICTIONARY.startswith(b"\0\0\0\x07options\0\0\0\x04head")
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == spdy.DICTIONARY_SHA256
    block = spdy.encode_headers({"streamType": "stdout", "X": ["a", "b"]})
    assert block == (b"\0\0\0\x02" b"\0\0\0\x0astreamtype" b"\0\0\0\x06stdout" b"\0\0\0\x01x" b"\0\0\0\x03a\0b")
    assert spdy.decode_headers(block) == {"streamtype": "stdout", "x": "a\0b"}
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_headers(block[:-2])
    with pytest.raises(spdy.ProtocolError):
        spdy.decode_headers(b"\0\0")
    assert spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\0\0\0\x07"
    assert spdy.data_frame(5, spdy.FLAG_FIN, b"hi") == b"\0\0\0\x05\x01\0\0\x02hi"


def test_spdy_session_both_sides_over_a_socketpair():
    """Streams the client opens reach the server's handler with their headers; data both ways,
    FIN as EOF, large writes in frames, a ping answered, a hostile header block ends the session."""
    import queue
    import socket
    import struct
    import zlib

    from pallet.cri import spdy

    a, b = socket.socketpair()
    got: queue.Queue = queue.Queue()
    server = spdy.Session(b, server=True, on_stream=got.put).start()
    client = spdy.Session(a, server=False).start()
    try:
        st = client.open({"streamType": "stdin", "requestID": "1"})
        peer = got.get(timeout=10)
        assert st.id == 1 and peer.id == 1 and peer.headers == {"streamtype": "stdin", "requestid": "1"}
        big = bytes(range(256)) * 1000  # 256000 bytes: several frames
        st.write(big)
        st.close()
        assert peer.read_all(10) == big
        peer.write(b"back")
        peer.close()
        assert st.read_all(10) == b"back"
        st2 = client.open({"streamType": "error"})
        assert got.get(timeout=10).headers["streamtype"] == "error" and st2.id == 3
        client.ping(1)
    finally:
        # each side shuts its end and waits (bounded) for the other's: closed together
        import threading

        t = threading.Thread(target=server.close)
        t.start()
        client.close()
        t.join()
    # a header block that inflates past the limit: the session ends, its streams read EOF
    a, b = socket.socketpair()
    server = spdy.Session(b, server=True, on_stream=lambda s: None).start()
    try:
        z = zlib.compressobj(zdict=spdy.DICTIONARY)
        bomb = z.compress(b"\0" * (spdy.MAX_HEADERS * 4)) + z.flush(zlib.Z_SYNC_FLUSH)
        a.sendall(spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIH", 1, 0, 0) + bomb))
        assert server.done.wait(10)
        assert 1 not in server.streams
    finally:
        a.close()
        server.close()


def test_spdy_stream_holds_back_a_peer_that_sends_faster_than_it_is_read():
    """No flow control in SPDY as spdystream speaks it: a stream buffers at most MAX_BUFFERED
    unread bytes, then the session stops reading until the reader catches up; nothing is lost."""
    import queue
    import socket
    import threading

    from pallet.cri import spdy

    a, b = socket.socketpair()
    got: queue.Queue = queue.Queue()
    server = spdy.Session(b, server=True, on_stream=got.put).start()
    client = spdy.Session(a, server=False).start()
    try:
        st = client.open({"streamType": "stdin"})
        peer = got.get(timeout=10)
        data = bytes(range(256)) * (3 * spdy.MAX_BUFFERED // 256)
        sender = threading.Thread(target=lambda: (st.write(data), st.close()), daemon=True)
        sender.start()
        assert not wait_joined(sender, 1)  # held back: the server stopped reading
        assert peer._buffered <= spdy.MAX_BUFFERED + spdy.CHUNK
        assert peer.read_all(30) == data
        sender.join(10)
    finally:
        t = threading.Thread(target=server.close)
        t.start()
        client.close()
        t.join()


def wait_joined(thread, seconds: float) -> bool:
    thread.join(seconds)
    return not thread.is_alive()


# -- WebSocket (cri/websocket.py) -----------------------------------------------------------------

def test_websocket_accept_key_and_frames():
    from pallet.cri import websocket

    # RFC 6455 section 1.3's example
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert websocket.frame(websocket.OP_BINARY, b"\1hi") == b"\x82\x03\x01hi"
    # section 5.7's examples: a masked "Hello", and the length forms
    assert websocket.frame(websocket.OP_TEXT, b"Hello", b"\x37\xfa\x21\x3d") == bytes.fromhex("818537fa213d7f9f4d5158")
    assert websocket.frame(websocket.OP_BINARY, b"x" * 256)[:4] == b"\x82\x7e\x01\x00"
    assert websocket.frame(websocket.OP_BINARY, b"x" * 65536)[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_websocket_session_both_sides_and_hostile_frames():
    """Channels both ways over a socketpair, v5's CLOSE signal as end of file, a channel's
    backpressure, base64 framing; a hostile frame closes with the RFC's code and EOF everywhere."""
    import socket
    import struct

    from pallet.cri import websocket

    chans = {0: {"streamtype": "stdin"}, 1: {"streamtype": "stdout"}}
    a, b = socket.socketpair()
    server = websocket.Session(b, server=True, channels=chans, close_signal=True).start()
    client = websocket.Session(a, server=False, channels=chans, close_signal=True).start()
    try:
        big = bytes(range(256)) * 1000  # several messages
        client.streams[0].write(big)
        client.streams[0].close()  # [255, 0]
        assert server.streams[0].read_all(10) == big
        server.streams[1].write(b"back")
        assert client.streams[1].read(10) == b"back"
        client.streams[1].write(b"x" * 100)  # on the server's output channel: dropped, not kept
        client.ping(b"p")
    finally:
        client.close()
        server.close()
    assert server.done.wait(10) and server.error is None
    assert server.streams[1].read_all(10) == b""
    a, b = socket.socketpair()
    server = websocket.Session(b, server=True, channels=chans, base64=True).start()
    client = websocket.Session(a, server=False, channels=chans, base64=True).start()
    try:
        client.streams[0].write(b"\0\xffdata")
        assert server.streams[0].read(10) == b"\0\xffdata"
    finally:
        client.close()
        server.close()
    mask = b"abcd"
    for raw, code in ((websocket.frame(websocket.OP_BINARY, b"\0x"), 1002),  # unmasked
                      (b"\xc2\x80" + mask, 1002),  # RSV1
                      (websocket.frame(3, b"", mask), 1002),
                      (websocket.frame(websocket.OP_PING, b"x" * 126, mask), 1002),
                      (b"\x82\xff" + struct.pack(">Q", websocket.MAX_MESSAGE + 1) + mask, 1009),
                      (websocket.frame(websocket.OP_BINARY, b"\0" + b"x" * 1000, mask, fin=False)
                       + websocket.frame(websocket.OP_CONT, b"x" * websocket.MAX_MESSAGE, mask), 1009),
                      (websocket.frame(websocket.OP_CONT, b"x", mask), 1002),
                      (websocket.frame(websocket.OP_TEXT, b"0aGk=", mask), 1003)):
        a, b = socket.socketpair()
        server = websocket.Session(b, server=True, channels=chans).start()
        a.sendall(raw)
        assert server.done.wait(10) and server.error, raw[:8]
        reply = a.recv(200)
        assert reply[0] == 0x88 and struct.unpack(">H", reply[2:4])[0] == code, (raw[:8], reply)
        assert server.streams[0].read(10) == b""
        server.close()
        a.close()


def test_nano_cores_never_more_than_every_processor():
    """A first sample just after the start divides what ran before it (create, init) by a few
    milliseconds: the figure is held to every processor's time, as no container can use more."""
    import os
    import time

    from pallet.cri import stats

    key = f"test-{os.getpid()}"
    try:
        most = (os.cpu_count() or 1) * 1_000_000_000
        assert stats.nano_cores(key, 50_000_000, time.time_ns() - 1_000_000) == most  # 50 ms in 1 ms
        assert stats.nano_cores(key, 50_000_000 + 10**12) == most  # 1000 s of CPU since the last
    finally:
        stats.forget(key)


def test_streaming_handshake_is_bounded_in_time_and_number(monkeypatch):
    """A peer that drips its request head a byte at a time is cut off at the head's deadline
    (before: each read had its own 10 s, so 16 KiB of drip held a thread for hours), and only
    MAX_HANDSHAKES connections may be sending their heads at once (more are closed at once);
    real sockets on 127.0.0.1, the server in this process."""
    import select
    import socket
    import time

    from pallet.cri import streaming

    monkeypatch.setattr(streaming, "HEAD_DEADLINE", 1.0, raising=False)
    monkeypatch.setattr(streaming, "MAX_HANDSHAKES", 3, raising=False)
    srv = streaming.StreamServer(None).start()
    conns = []
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        conns.append(s)
        s.sendall(b"GET /exec/x HTTP/1.1\r\n")
        start, answer = time.monotonic(), b""
        try:  # the server answers 400 and closes; bytes it did not read may make that a reset
            while time.monotonic() - start < 8:
                if select.select([s], [], [], 0.2)[0]:  # the server answered (or closed)
                    answer = s.recv(100)
                    break
                s.sendall(b"X")  # one more byte of a header that never ends
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert time.monotonic() - start < 6, "the dripping head was not cut off"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
        s.close()
        # three heads pending: a fourth connection is closed at once, without an answer
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(3)]
        conns += idle
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        conns.append(extra)
        assert select.select([extra], [], [], 10)[0] and extra.recv(100) == b""
        for c in idle:  # they give up: a new connection is served again
            c.close()
        def served() -> bool:
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            conns.append(c)
            try:  # refused while the idle ones' threads still count: closed, maybe with a reset
                c.sendall(b"GET /exec/nosuch HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n")
                return c.recv(100).startswith(b"HTTP/1.1 404")
            except (ConnectionResetError, BrokenPipeError):
                return False
        from conftest import wait_for

        wait_for(served, 30, "a connection to be served once the idle ones closed")
    finally:
        for c in conns:
            c.close()
        srv.close()
