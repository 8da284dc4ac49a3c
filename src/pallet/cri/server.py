"""``pallet cri serve``: the gRPC server on a unix socket until SIGTERM or SIGINT.

The socket's directory is made (0700 when new); a stale socket file (nothing listening) is
replaced, a live one (another server) refused. Nothing else is kept in memory: every answer is
read from the store and the pod records, so a restarted server sees what the last one made,
and conmon keeps the containers running meanwhile.
"""

from __future__ import annotations

import os
import socket

from ..errors import ConfigError


def _claim_socket(path: str) -> None:
    d = os.path.dirname(path)
    os.makedirs(d, 0o700, exist_ok=True)
    if os.path.lexists(path):
        import stat

        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"listen socket {path}: exists and is not a socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            os.unlink(path)  # stale: the last server died without removing it
        else:
            raise ConfigError(f"listen socket {path}: another server is listening there")
        finally:
            s.close()


def serve(store, config, global_args: list[str], ready=None, workers: int = 64) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(path)`` is called once the socket listens.

    ``workers``: the RPCs served at once (threads; most of an RPC is waiting for conmon, the runtime
    or a CNI plugin, so 30 pods started together all run at once, as containerd's goroutines do)."""
    import signal
    import threading
    from concurrent import futures

    import grpc

    from .pods import Context
    from .service import add_to

    path = config.socket_path
    ctx = Context(store, config, global_args)
    _claim_socket(path)
    from .pods import Pods

    Pods(ctx).recover()
    from .streaming import StreamServer

    try:
        ctx.streaming = StreamServer(ctx, config.stream_address, config.stream_port).start()
    except OSError as e:
        raise ConfigError(f"stream server {config.stream_address}:{config.stream_port}: {e.strerror}") from None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", 16 << 20),
                                  ("grpc.max_send_message_length", 16 << 20)])
    add_to(server, ctx)
    if server.add_insecure_port("unix://" + path) == 0:
        raise ConfigError(f"listen socket {path}: cannot listen there")
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    server.start()
    os.chmod(path, 0o660)
    try:
        if ready is not None:
            ready(path)
        while not stop.wait(3600):
            pass
    finally:
        server.stop(grace=5).wait()
        ctx.streaming.close()
        for s, h in old.items():
            signal.signal(s, h)
        try:
            os.unlink(path)
        except OSError:
            pass
