"""Attacks on the image verbs' newer inputs (``load -i URL``), kept as regressions: a server
that redirects elsewhere, or serves something that is not an image."""

from __future__ import annotations

import contextlib
import http.server
import os

import pytest

from conftest import http_serving, run_pallet
from tcpserver import TCPServer

pytestmark = pytest.mark.usefixtures("isolated")


class _Listener(TCPServer):
    """Counts the connections made to it (greets as an FTP server would, then hangs up)."""

    def __init__(self):
        self.accepted = 0
        super().__init__()

    def serve(self, c):
        self.accepted += 1
        try:
            c.sendall(b"220 ready\r\n")
        finally:
            c.close()


@contextlib.contextmanager
def routes_server():
    """An HTTP server on 127.0.0.1 answering by a table of path -> (status, headers, body):
    yields (the table, its base URL)."""
    routes: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers, body = routes.get(self.path, (404, {}, b"no"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with http_serving(Handler) as srv:
        yield routes, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture
def web():
    with routes_server() as served:
        yield served


def _load(tmp_path, url):
    return run_pallet("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "load", "-i", url,
                      check=False, env={"TMPDIR": str(tmp_path)})


def _one_line(p, *words):
    assert p.returncode == 125, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert os.listdir(os.path.join(p.args[2], "staging")) == []  # the spool is gone


def test_load_url_follows_no_redirect_out_of_http(tmp_path, web):
    """A redirect to ftp://HOST:PORT/ is refused before anything connects there (urllib's own
    redirect handler followed it: a request in another protocol to wherever the server said);
    file:// too."""
    routes, base = web
    ftp = _Listener()
    try:
        routes["/ftp"] = (302, {"Location": f"ftp://127.0.0.1:{ftp.port}/image.tar"}, b"")
        routes["/file"] = (301, {"Location": "file:///etc/passwd"}, b"")
        p = _load(tmp_path, f"{base}/ftp")
        _one_line(p, f"{base}/ftp", "redirect")
        assert ftp.accepted == 0
        _one_line(_load(tmp_path, f"{base}/file"), f"{base}/file")
    finally:
        ftp.stop()


def test_load_url_that_lies_about_its_content(tmp_path, web):
    """A page served as application/x-tar that is HTML, and a gzip stream of zeros (a bomb of
    no tar): each one line, no image, no spool left."""
    import gzip

    routes, base = web
    routes["/page.tar"] = (200, {"Content-Type": "application/x-tar"}, b"<html>" + b"x" * 4096)
    routes["/zeros.tar.gz"] = (200, {"Content-Type": "application/gzip"}, gzip.compress(b"\0" * (8 << 20)))
    _one_line(_load(tmp_path, f"{base}/page.tar"), "payload does not match")
    p = _load(tmp_path, f"{base}/zeros.tar.gz")
    _one_line(p, f"{base}/zeros.tar.gz")


def _archive(path, members: dict) -> str:
    import io
    import tarfile

    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            t = tarfile.TarInfo(name)
            t.size = len(data)
            tf.addfile(t, io.BytesIO(data))
    return str(path)


LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@pytest.mark.parametrize("members,words", [
    ({"oci-layout": LAYOUT, "index.json": b"[1,2]"}, "index.json is not an image index"),
    ({"oci-layout": LAYOUT, "index.json": b'{"manifests":[5, {"annotations": [1]}]}'}, "index"),
    ({"manifest.json": b'[{"Config":"c.json","RepoTags":[1],"Layers":[]}]'}, "RepoTags must be a list of strings"),
    ({"manifest.json": b'[{"Config":'}, "manifest.json is not valid JSON"),
    ({"manifest.json": b"[" * 100000 + b"]" * 100000}, "manifest.json is not valid JSON"),
])
def test_load_of_hostile_archive_documents_is_one_line(tmp_path, members, words):
    """load reads manifest.json's RepoTags and index.json's ref names itself: wrong types,
    broken or deeply nested JSON were "internal error" lines (AttributeError, JSONDecodeError)."""
    p = _load(tmp_path, _archive(tmp_path / "a.tar", members))
    _one_line(p, words)
    assert "internal error" not in p.stderr


def test_load_takes_member_names_with_a_dot_slash(tmp_path, src_layout):
    """An archive made with ``tar -C DIR -cf x.tar .`` names its members ./index.json...: pull
    read it, load said it was no archive (podman loads it)."""
    import subprocess

    d = tmp_path / "d"
    d.mkdir()
    run_pallet("copy", "-q", f"oci:{src_layout}:latest", f"docker-archive:{tmp_path}/d.tar:x/y:1")
    subprocess.run(["tar", "xf", str(tmp_path / "d.tar"), "-C", str(d)], check=True)
    for name, src in (("oci.tar", src_layout), ("docker.tar", str(d))):
        subprocess.run(["tar", "cf", str(tmp_path / name), "-C", src, "."], check=True)
        p = _load(tmp_path, str(tmp_path / name))
        assert p.returncode == 0 and "Loaded image" in p.stdout, p.stderr
