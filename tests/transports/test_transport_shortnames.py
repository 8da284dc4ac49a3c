"""Short names and ``short-name-mode`` (registries.conf), as containers/image's pkg/shortnames
resolves them for podman: aliases first, then the unqualified-search registries; with several
candidates, a prompt on a terminal (tested on a real pty), a refusal without one in
``enforcing`` mode, every candidate in ``permissive`` and ``disabled`` mode."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import images
from conftest import run_pallet

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture(scope="module")
def two_registries(registry, tmp_path_factory):
    """The session registry (which lacks the image) and a second one that has ``sn/app:v1``."""
    from conftest import Registry

    second = Registry(str(tmp_path_factory.mktemp("registry2")))
    layout = str(tmp_path_factory.mktemp("sn") / "layout")
    images.make_layout(layout, "v1", layers=[{"f": "short names"}])
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{second.host}/sn/app:v1"], check=True, capture_output=True)
    yield registry, second
    second.stop()


def _conf(isolated, regs, mode, aliases=""):
    text = f'unqualified-search-registries = [{", ".join(repr(r.host).replace(chr(39), chr(34)) for r in regs)}]\n'
    text += f'short-name-mode = "{mode}"\n'
    for r in regs:
        text += f'[[registry]]\nlocation = "{r.host}"\ninsecure = true\n'
    if aliases:
        text += f"[aliases]\n{aliases}\n"
    isolated.write_text(text)


def _pull(tmp_path, *args, env=None):
    e = {"PALLET_SHORT_NAME_ALIAS_CACHE": str(tmp_path / "aliases.conf"), **(env or {})}
    return run_pallet("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "pull", *args,
                      check=False, env=e)


def _images(tmp_path):
    p = run_pallet("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"), "images",
                   "--format", "{{.Repository}}:{{.Tag}}", check=False)
    return p.stdout.split()


def test_enforcing_without_a_tty_refuses(tmp_path, isolated, two_registries):
    first, second = two_registries
    _conf(isolated, [first, second], "enforcing")
    p = _pull(tmp_path, "sn/app:v1")
    assert p.returncode != 0
    assert "short-name resolution enforced but cannot prompt without a TTY" in p.stderr
    assert f"{first.host}/sn/app:v1" in p.stderr and f"{second.host}/sn/app:v1" in p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert not any("sn/app" in i for i in _images(tmp_path))


@pytest.mark.parametrize("mode, env", [("permissive", {}), ("disabled", {}),
                                       ("enforcing", {"CONTAINERS_SHORT_NAME_ALIASING": "off"})])
def test_permissive_and_disabled_try_every_candidate(tmp_path, isolated, two_registries, mode, env):
    first, second = two_registries
    _conf(isolated, [first, second], mode)
    p = _pull(tmp_path, "sn/app:v1", env=env)
    assert p.returncode == 0, p.stderr
    assert f"{second.host}/sn/app:v1" in _images(tmp_path)
    assert not os.path.exists(tmp_path / "aliases.conf")  # nothing chosen, nothing recorded


def test_single_candidate_and_alias_need_no_prompt(tmp_path, isolated, two_registries):
    first, second = two_registries
    _conf(isolated, [first, second], "enforcing", f'"sn/app" = "{second.host}/sn/app"')
    p = _pull(tmp_path, "sn/app:v1")
    assert p.returncode == 0, p.stderr
    _conf(isolated, [second], "enforcing")
    p = _pull(tmp_path, "sn/app:v1")
    assert p.returncode == 0, p.stderr


def _pull_on_pty(tmp_path, answer: bytes, args=("sn/app:v1",)):
    import pty

    exe = os.path.join(os.path.dirname(sys.executable), "pallet")
    env = {**os.environ, "PALLET_SHORT_NAME_ALIAS_CACHE": str(tmp_path / "aliases.conf")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the pty
        try:
            os.execve(exe, [exe, "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"),
                            "pull", *args], env)
        finally:
            os._exit(127)
    out = b""
    answered = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        out += chunk
        if not answered and b"Enter a number" in out:
            os.write(fd, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_enforcing_on_a_tty_prompts_and_records(tmp_path, isolated, two_registries):
    first, second = two_registries
    _conf(isolated, [first, second], "enforcing")
    rc, out = _pull_on_pty(tmp_path, b"2\n")
    assert "Please select an image" in out and f"1) {first.host}/sn/app:v1" in out, out
    assert rc == 0, out
    assert f"{second.host}/sn/app:v1" in _images(tmp_path)
    # the choice is recorded as an alias: the next pull needs no terminal
    assert f'"sn/app" = "{second.host}/sn/app"' in (tmp_path / "aliases.conf").read_text()
    p = _pull(tmp_path, "sn/app:v1")
    assert p.returncode == 0, p.stderr


def test_prompt_end_of_input_is_an_error(tmp_path, isolated, two_registries):
    first, second = two_registries
    _conf(isolated, [first, second], "enforcing")
    rc, out = _pull_on_pty(tmp_path, b"\x04")  # Ctrl-D at the prompt
    assert rc != 0 and "no image selected" in out, out
