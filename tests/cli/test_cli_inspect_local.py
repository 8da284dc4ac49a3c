"""``pallet inspect NAME...``: names without a transport are the store's own objects, shown as
``podman inspect`` shows them (a container, an image, a volume, then a network; ``--type``),
each in its own verb's JSON; a transport reference stays skopeo's inspect."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import run_pallet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect-local")
    layout = d / "layout"
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "make-demo-image.py"), str(layout), "v1"],
                   check=True, capture_output=True)
    g = ["--root", str(d / "root"), "--runroot", str(d / "run")]  # networks: defined below the root
    run_pallet(*g, "pull", "-q", f"oci:{layout}:v1")
    run_pallet(*g, "tag", "localhost/v1", "localhost/twin:1")
    run_pallet(*g, "create", "--name", "box", "localhost/v1", "true")
    run_pallet(*g, "volume", "create", "vol1")
    run_pallet(*g, "network", "create", "--subnet", "10.213.77.0/24", "net1")
    yield g
    run_pallet(*g, "rm", "-a", "-f", check=False)
    run_pallet(*g, "network", "rm", "-f", "net1", check=False)


def inspect(g, *args, check=True):
    return run_pallet(*g, "inspect", *args, check=check)


def test_each_kind_is_shown_as_its_own_verb_shows_it(store):
    both = json.loads(inspect(store, "box", "localhost/twin:1", "vol1", "net1").stdout)
    assert both[0] == json.loads(run_pallet(*store, "container", "inspect", "box").stdout)[0]
    assert both[1] == json.loads(run_pallet(*store, "image", "inspect", "localhost/twin:1").stdout)[0]
    assert both[2] == json.loads(run_pallet(*store, "volume", "inspect", "vol1").stdout)[0]
    assert both[3] == json.loads(run_pallet(*store, "network", "inspect", "net1").stdout)[0]


def test_format_uses_each_objects_template_data(store):
    out = inspect(store, "--format", "{{.Name}}", "box", "vol1", "net1").stdout
    assert out.splitlines() == ["box", "vol1", "net1"]
    img = json.loads(run_pallet(*store, "image", "inspect", "localhost/v1").stdout)[0]
    assert inspect(store, "-f", "{{.Id}}", "localhost/v1").stdout == img["Id"] + "\n"


def test_type_narrows_the_lookup_and_a_missing_object_is_podmans_error(store):
    p = inspect(store, "--type", "volume", "box", check=False)
    assert (p.returncode, p.stdout) == (125, "[]\n")
    assert p.stderr.strip() == 'Error: inspecting object: no such volume: "box"'
    p = inspect(store, "box", "nosuch", check=False)
    assert p.returncode == 125 and p.stderr.strip() == 'Error: inspecting object: no such object: "nosuch"'
    assert [d["Name"] for d in json.loads(p.stdout)] == ["box"]  # what was found is printed first


def test_transport_references_stay_skopeos_inspect(store):
    p = inspect(store, "docker://127.0.0.1:9/a:1", "oci:/nonexistent:x", check=False)
    assert p.returncode != 0 and "exactly one argument expected" in p.stderr
    p = inspect(store, "--raw", "box", check=False)
    assert p.returncode != 0 and "--raw" in p.stderr and "Traceback" not in p.stderr
