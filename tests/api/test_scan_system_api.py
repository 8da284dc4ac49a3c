"""The Python API's scans (``pallet.scan``, ``ScanReport``) and system containers
(``store.install_system``...): typed results equal to what the commands print, the exit-code
rule, errors with attributes, options left alone. A store and a host root of the module's own
(systemd is never driven there)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil

import pytest

from api_fixtures import busybox  # noqa: F401  (a fixture)
from conftest import run_pallet

pytestmark = pytest.mark.usefixtures("isolated")

HERE = os.path.dirname(os.path.abspath(__file__))
OSV = os.path.join(HERE, "..", "scan", "osv")


@pytest.fixture(scope="module")
def api_store(busybox, tmp_path_factory):
    import pallet

    root = str(tmp_path_factory.mktemp("api-scan") / "root")
    with pallet.open_store(root, tls_verify=False) as s:
        s.pull(busybox.removeprefix("docker://"))
        yield s
    run_pallet("--root", root, "image", "umount", "--all", check=False)


def test_scan_report_is_typed_and_renders_as_the_command(api_store, busybox, monkeypatch):
    import pallet

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the SBOMs' timestamp: same bytes both ways
    image = busybox.removeprefix("docker://")
    r = pallet.scan_image(image, store=api_store)
    assert isinstance(r, pallet.ScanReport) and dataclasses.is_dataclass(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.target = "x"  # type: ignore[misc]
    assert r.target == image and r.image_id == api_store.image(image).id and r.image_names == (image,)
    assert r.vulnerabilities is None  # no database imported into this store
    assert all(isinstance(f, pallet.PolicyFinding) for f in r.policy)
    assert "runs-as-root" in {f.rule for f in r.policy}
    cli = json.loads(run_pallet("--root", api_store.root, "scan", "--format", "json", image).stdout)
    assert r.as_dict() == cli["results"][0]
    assert r.render("json") == run_pallet("--root", api_store.root, "scan", "--format", "json", image).stdout
    for fmt in ("table", "cyclonedx", "spdx", "sarif"):
        assert r.render(fmt) == run_pallet("--root", api_store.root, "scan", "--format", fmt, image).stdout, fmt
    assert r.to_cyclonedx()["bomFormat"] == "CycloneDX" and r.to_spdx()["spdxVersion"] == "SPDX-2.3"
    assert r.as_dict() == cli["results"][0]  # rendering changed nothing

    # the exit-code rule: --fail-on AT exits 3 exactly when fails(at=AT)
    for at in ("low", "high"):
        p = run_pallet("--root", api_store.root, "scan", "--fail-on", at, image, check=False)
        assert (p.returncode == 3) == r.fails(at=at), at
    assert r.worst() == "low" and r.fails("low") and not r.fails()  # default: high
    with pytest.raises(pallet.UsageError, match="'severe'"):
        r.fails(at="severe")  # type: ignore[arg-type]
    with pytest.raises(pallet.UsageError, match="'pdf'"):
        r.render("pdf")  # type: ignore[arg-type]


def test_scan_with_a_database_and_a_policy(api_store, busybox, tmp_path):
    import pallet

    image = busybox.removeprefix("docker://")
    n = api_store.import_vulnerabilities(os.path.join(OSV, "DLA-3008-1.json"))
    assert n > 0
    policy = tmp_path / "policy.yaml"
    policy.write_text("fail-on: low\nrules:\n  runs-as-root: high\n")
    r = api_store.scan(image, policy=str(policy))
    assert r.vulnerabilities == ()  # checked: busybox's image has no dpkg packages
    assert r.fail_on == "low" and r.fails() and r.worst() == "high"
    assert [f.severity for f in r.policy if f.rule == "runs-as-root"] == ["high"]


def test_scan_errors_name_the_target(api_store, tmp_path):
    import pallet

    with pytest.raises(pallet.NotFound) as e:
        api_store.scan("localhost/no-such:1")
    assert e.value.reference == "localhost/no-such:1"
    with pytest.raises(pallet.ScanError) as e:
        api_store.scan(api_store.images()[0].id, policy=str(tmp_path / "missing.yaml"))
    assert "missing.yaml" in str(e.value) and e.value.exit_code == 125
    with pytest.raises(pallet.UsageError, match="kind"):
        api_store.scan("x", kind="volume")  # type: ignore[arg-type]


def _files(root: str) -> set:
    out = set()
    for d, _dirs, files in os.walk(root):
        out.update(os.path.relpath(os.path.join(d, n), root) for n in files)
    return out


def test_system_containers_install_update_rollback_uninstall(api_store, busybox, tmp_path):
    import pallet

    host = str(tmp_path / "host")
    os.makedirs(host)
    before = _files(host)
    paths = pallet.SystemPaths(host_root=host)
    flags = ["--host-root", host]
    values = {"GREETING": "hi"}
    image = busybox.removeprefix("docker://")
    try:
        info = api_store.install_system(image, "apisys", values=values, paths=paths)
        assert values == {"GREETING": "hi"} and paths == pallet.SystemPaths(host_root=host)
        assert isinstance(info, pallet.SystemContainerInfo)
        assert (info.name, info.image, info.deployment, info.current) == ("apisys", image, 0, True)
        assert os.path.isfile(os.path.join(host, "etc/systemd/system/apisys.service"))
        cli = json.loads(run_pallet("--root", api_store.root, "containers", "list", "--format", "json", *flags).stdout)
        assert [i.as_dict() for i in api_store.system_containers(paths=paths)] == cli
        with pytest.raises(pallet.PalletError, match="already installed") as e:
            api_store.install_system(image, "apisys", paths=paths)
        assert e.value.reference == "apisys"

        up = api_store.update_system("apisys", values={"GREETING": "hello"}, paths=paths)
        assert (up.deployment, up.current) == (1, True)
        assert [(i.deployment, i.current) for i in api_store.system_containers(all=True, paths=paths)] == \
            [(0, False), (1, True)]
        back = api_store.rollback_system("apisys", paths=paths)
        assert back.deployment == 0
        assert api_store.uninstall_system("apisys", paths=paths) == []
        assert api_store.system_containers(paths=paths) == []
        assert _files(host) - before <= {"run/pallet/system.lock"}  # no unit, deployment or host file left
    finally:
        run_pallet("--root", api_store.root, "uninstall", "apisys", *flags, check=False)
        shutil.rmtree(host, ignore_errors=True)
    with pytest.raises(pallet.UsageError, match="--set"):
        api_store.install_system(image, "apisys2", values={"bad key": "x"}, paths=paths)
    with pytest.raises(pallet.UsageError):
        api_store.install_system(image, "../x", paths=paths)
    with pytest.raises(pallet.UsageError, match="SystemPaths"):
        api_store.system_containers(paths=host)  # type: ignore[arg-type]
    assert copy.deepcopy(values) == {"GREETING": "hi"}
