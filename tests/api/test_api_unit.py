"""The Python API's pure parts: docker-py's option forms turned into run's flags (the inputs
left unchanged, bad ones refused naming them), the scan report's exit-code rule on made-up
findings, results that unpack and freeze. No root, no registry."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import typing

import pytest

pytestmark = pytest.mark.unit


def test_docker_py_option_forms_become_run_flags():
    from pallet.api import containers as c

    vols = {"/srv/data": {"bind": "/data", "mode": "ro"}, "cache": "/cache"}
    ports = {"80/tcp": 8080, 53: ("127.0.0.1", 5353), "9000": None}
    env = {"A": "1", "B": "x=y"}
    before = copy.deepcopy((vols, ports, env))
    assert c._volumes(vols) == ["/srv/data:/data:ro", "cache:/cache"]
    assert c._ports(ports) == ["8080:80/tcp", "127.0.0.1:5353:53", "9000"]
    assert c._env(env) == ["A=1", "B=x=y"]
    assert (vols, ports, env) == before
    assert c._volumes(["/a:/b"]) == ["/a:/b"] and c._ports(["1:2"]) == ["1:2"] and c._env(["K=V"]) == ["K=V"]
    assert c._command("sh -c 'echo a b'") == ["sh", "-c", "echo a b"] and c._command(("ls", "/")) == ["ls", "/"]
    assert c._command(None) is None and c._volumes(None) == [] and c._ports(None) == [] and c._env(None) == []
    now = 2_000_000_000.0
    assert c._when(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), "since", now) == 1704067200.0
    assert c._when("2024-01-01T00:00:00Z", "since", now) == 1704067200.0 and c._when(5, "since", now) == 5.0
    # text as ``pallet logs --since/--until`` reads it (podman's): a duration is before now for
    # since, after it for until
    assert c._when("10m", "since", now) == now - 600 and c._when("10m", "until", now) == now + 600
    assert c._when("2024-01-01", "until", now) == 1704067200.0 and c._when("1e9", "since", now) == 1e9


@pytest.mark.parametrize("call,word", [
    (lambda c: c._volumes({"/a": {"mode": "ro"}}), "volumes"),
    (lambda c: c._ports({80: 3.5}), "ports"),
    (lambda c: c._ports({80: True}), "ports"),
    (lambda c: c._env([1]), "env"),
    (lambda c: c._command("sh -c 'unclosed"), "unclosed"),
    (lambda c: c.strings_arg(7, "cap_add"), "cap_add"),
    (lambda c: c._when("yesterday", "since", 0.0), "since"),
    (lambda c: c._when("2024-01-01T10", "since", 0.0), "since"),
    (lambda c: c._when(True, "until", 0.0), "until"),
])
def test_bad_option_forms_are_refused_naming_them(call, word):
    import pallet
    from pallet.api import containers as c

    with pytest.raises(pallet.UsageError) as e:
        call(c)
    assert word in str(e.value) and "\n" not in str(e.value)


def _report(**kw):
    from pallet.api.results import ScanReport

    doc = {"target": "t", "image": {"id": "ab" * 32, "names": ["t"]}, "os": {}, "packages": [],
           "vulnerabilities": kw.pop("vulns", None), "policy": kw.pop("policy", []), "warnings": []}
    return ScanReport(target="t", image_id="ab" * 32, image_names=("t",), os={}, packages=(), vulnerabilities=None,
                      policy=(), warnings=(), _doc=doc, **kw)


def test_the_exit_code_rule_is_the_commands():
    import pallet

    assert _report().worst() is None and not _report().fails(at="low")
    info = {"rule": "no-healthcheck", "severity": "info", "path": None, "layer": None, "message": ""}
    assert _report(policy=[info]).worst() is None  # info never fails
    unrated = {"id": "X-1", "severity": "unknown", "package": "p", "installed": "1", "fixed": None}
    assert _report(vulns=[unrated]).worst() == "low" and _report(vulns=[unrated]).fails(at="low")
    high = dict(info, rule="secret-env", severity="high")
    r = _report(policy=[high])
    assert r.fails() and r.fails(at="high") and not r.fails(at="critical")
    assert _report(policy=[dict(high, severity="medium")], fail_on="medium").fails()  # the policy file's fail-on
    with pytest.raises(pallet.UsageError):
        r.fails(at="unknown")  # type: ignore[arg-type]


def test_results_unpack_freeze_and_hint():
    import pallet
    from pallet.api.results import exec_result

    r = exec_result(3, b"out\xff")
    code, out = r
    assert (code, out) == (3, b"out\xff") and r.as_dict() == {"ExitCode": 3, "Output": "out\ufffd"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.exit_code = 0  # type: ignore[misc]
    hints = typing.get_type_hints(pallet.ManagedContainer.logs)
    assert hints["return"] == typing.Iterator[bytes]
    assert typing.get_type_hints(pallet.ScanReport)["vulnerabilities"] == \
        typing.Optional[tuple[pallet.Vulnerability, ...]]
    assert typing.get_type_hints(pallet.Store.install_system)["return"] is pallet.SystemContainerInfo
    assert issubclass(pallet.ContainerFailed, pallet.ContainerError)
    assert issubclass(pallet.ContainerWaitTimeout, TimeoutError)
    assert pallet.ManagedContainer is not pallet.Container


def test_no_api_name_is_hidden_by_a_module_of_pallet():
    """``pallet.NAME`` of the API must not be a subpackage's name too: importing that package
    would replace the attribute (``pallet.scan`` is the scanner; the call is ``scan_image``)."""
    import importlib.util

    import pallet

    clashes = [n for n in pallet._API if importlib.util.find_spec(f"pallet.{n}") is not None]
    assert clashes == []
    import pallet.api

    assert set(pallet._API) == set(pallet.api.__all__)  # every name of the API is pallet's too
