"""The pure parts of the life verbs: restart policies, detach keys, health check options."""

from __future__ import annotations

import pytest

from pallet.containers import attach, health, policies, restart
from pallet.errors import UsageError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,want", [(None, ("no", 0)), ("", ("no", 0)), ("no", ("no", 0)),
                                       ("always", ("always", 0)), ("on-failure", ("on-failure", 0)),
                                       ("on-failure:3", ("on-failure", 3)), ("unless-stopped", ("unless-stopped", 0))])
def test_parse_restart(text, want):
    assert policies.parse_restart(text) == want


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1", "on-failure:"])
def test_parse_restart_refuses(text):
    with pytest.raises(UsageError, match="restart policy"):
        policies.parse_restart(text)


@pytest.mark.parametrize("policy,retries,code,count,want", [
    ("no", 0, 1, 0, False), ("always", 0, 0, 5, True), ("unless-stopped", 0, 0, 0, True),
    ("on-failure", 0, 0, 0, False), ("on-failure", 0, 1, 99, True), ("on-failure", 3, 1, 2, True),
    ("on-failure", 3, 1, 3, False), ("on-failure", 3, 137, 0, True)])
def test_should_restart(policy, retries, code, count, want):
    assert restart.should_restart(policy, retries, code, count) is want


def test_rm_conflicts_with_a_restart_policy():
    with pytest.raises(UsageError, match="--rm option conflicts with --restart"):
        policies.meta(policies.LifeOptions(restart="on-failure:2"), {}, rm=True)
    assert policies.meta(policies.LifeOptions(restart="no"), {}, rm=True)["restart_policy"] == "no"


@pytest.mark.parametrize("text,want", [(None, b"\x10\x11"), ("ctrl-a", b"\x01"), ("ctrl-p,q", b"\x10q"),
                                       ("ctrl-[,ctrl-_,ctrl-@", b"\x1b\x1f\x00"), ("", b"")])
def test_detach_keys(text, want):
    assert attach.parse_detach_keys(text) == want


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "shift-a", "ab", "ctrl-p,,ctrl-q"])
def test_detach_keys_refused(text):
    with pytest.raises(UsageError, match="detach keys"):
        attach.parse_detach_keys(text)


def test_key_watch_holds_a_prefix_and_finds_the_sequence_across_chunks():
    w = attach._KeyWatch(b"\x10\x11")
    assert w.feed(b"ab\x10") == (b"ab", False)  # the prefix is held back
    assert w.feed(b"c") == (b"\x10c", False)  # ... and sent once it is not the sequence
    assert w.feed(b"\x10\x10") == (b"\x10", False)
    assert w.feed(b"\x11rest") == (b"", True)
    assert attach._KeyWatch(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_healthcheck_from_flags_and_image():
    o = policies.LifeOptions(health_cmd="curl -f localhost", health_interval="1m", health_retries=5,
                             health_start_period="2s", health_timeout="3s")
    assert policies.healthcheck(o, {}) == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 60 * 10**9,
                                           "Timeout": 3 * 10**9, "StartPeriod": 2 * 10**9, "Retries": 5}
    img = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5 * 10**9}}
    assert policies.healthcheck(policies.LifeOptions(), img) == {"Test": ["CMD", "true"], "Interval": 5 * 10**9,
                                                                 "Timeout": 30 * 10**9, "Retries": 3}
    assert policies.healthcheck(policies.LifeOptions(no_healthcheck=True), img) is None
    assert policies.healthcheck(policies.LifeOptions(health_cmd="none"), img) is None
    assert policies.healthcheck(policies.LifeOptions(health_cmd='["true", "x"]'), {})["Test"] == ["CMD", "true", "x"]
    assert policies.healthcheck(policies.LifeOptions(), {"Healthcheck": {"Test": ["NONE"]}}) is None
    assert health.command(["CMD-SHELL", "exit 1"]) == ["/bin/sh", "-c", "exit 1"]
    assert health.command(["CMD", "true", "x"]) == ["true", "x"]


@pytest.mark.parametrize("kw,words", [({"health_interval": "soon", "health_cmd": "true"}, "--health-interval"),
                                      ({"health_retries": 0, "health_cmd": "true"}, "retries"),
                                      ({"health_timeout": "10ms", "health_cmd": "true"}, "timeout"),
                                      ({"health_cmd": "[1]"}, "JSON"),
                                      ({"health_retries": 2}, "--health-cmd"),
                                      ({"no_healthcheck": True, "health_cmd": "true"}, "conflict")])
def test_healthcheck_refuses(kw, words):
    with pytest.raises(UsageError, match=words):
        policies.healthcheck(policies.LifeOptions(**kw), {})


def test_health_status_before_and_after_results():
    meta = {"healthcheck": {"Test": ["CMD", "true"]}}
    assert health.status({}, meta)["Status"] == "starting"
    assert health.status({}, {})["Status"] == ""
    st = {"health": {"Status": "unhealthy", "FailingStreak": 3, "Log": [{"ExitCode": 1}]}}
    assert health.status(st, meta) == {"Status": "unhealthy", "FailingStreak": 3, "Log": [{"ExitCode": 1}]}


def test_init_spec():
    doc = {"process": {"args": ["sh", "-c", "x"]}, "mounts": []}
    policies.apply_to_spec(doc, {"init": "/usr/bin/catatonit"})
    assert doc["process"]["args"] == ["/run/podman-init", "--", "sh", "-c", "x"]
    assert doc["mounts"] == [{"destination": "/run/podman-init", "type": "bind", "source": "/usr/bin/catatonit",
                              "options": ["bind", "private", "ro"]}]
    with pytest.raises(UsageError, match="--init"):
        policies.init_binary("/no/such/init")
