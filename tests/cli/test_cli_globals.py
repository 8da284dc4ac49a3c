"""podman's global flags that scripts pass: ``--noout`` and ``--log-level``."""

from __future__ import annotations

from conftest import run_pallet


def test_noout_discards_stdout_but_not_errors(tmp_path):
    g = ("--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run"))
    assert run_pallet(*g, "images").stdout.startswith("REPOSITORY")
    p = run_pallet(*g, "--noout", "images")
    assert (p.returncode, p.stdout) == (0, "")
    p = run_pallet(*g, "--noout", "rmi", "nosuch", check=False)
    assert p.returncode == 1 and p.stdout == "" and "nosuch" in p.stderr


def test_log_level_debug_is_debug(tmp_path):
    ref = ("inspect", "--retry-times", "0", "docker://127.0.0.1:9/x:1")  # nothing listens on port 9
    p = run_pallet("--log-level", "debug", *ref, check=False)
    q = run_pallet("--debug", *ref, check=False)
    assert p.returncode == q.returncode != 0 and p.stderr == q.stderr and "DEBUG " in p.stderr
    p = run_pallet("--log-level", "warn", *ref, check=False)
    assert "DEBUG" not in p.stderr and p.stderr.startswith("Error: ")
    p = run_pallet("--log-level", "loud", "images", check=False)
    assert p.returncode != 0 and "--log-level" in p.stderr and "Traceback" not in p.stderr


def test_version_has_podmans_layout_and_fields():
    """``version``: podman's lines and template fields (.Client.X, .Server.X, .X), pallet's values;
    ``{{.Server.Version}}-{{.Server.Built}}`` is what scripts name podman's pause image with."""
    import json
    import subprocess

    from conftest import need
    from pallet import __version__

    lines = run_pallet("version").stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Client", "Version", "API Version", "Go Version", "Built",
                                                      "OS/Arch"]
    assert lines[1].split() == ["Version:", __version__]
    mine = json.loads(run_pallet("version", "--format", "json").stdout)
    theirs = json.loads(subprocess.run([need("podman"), "version", "--format", "json"], capture_output=True,
                                       text=True, check=True).stdout)
    assert list(mine) == list(theirs) == ["Client"] and list(mine["Client"]) == list(theirs["Client"])
    assert run_pallet("version", "--format", "{{.Server.Version}}-{{.Server.Built}} {{.Version}} "
                                 "{{.Client.OsArch}}").stdout == f"{__version__}-0 {__version__} " \
                                                                 f"{mine['Client']['OsArch']}\n"
