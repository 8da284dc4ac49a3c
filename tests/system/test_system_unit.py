"""System containers' pure parts: the template language, names, unit text."""

from __future__ import annotations

import pytest

from pallet.errors import UsageError
from pallet.system import template, unit

pytestmark = pytest.mark.unit


def test_substitute_fills_both_forms_and_keeps_a_doubled_dollar():
    out = template.substitute("a=$A b=${B}x c=$$C", {"A": 1, "B": "two"}, "t")
    assert out == "a=1 b=twox c=$C"


def test_an_unknown_variable_is_named_and_every_one_at_once():
    with pytest.raises(template.TemplateError) as e:
        template.substitute("$NAME $PORTT ${OTHER}", {"NAME": "x"}, "/exports/service.template")
    msg = str(e.value)
    assert "/exports/service.template" in msg and "$PORTT" in msg and "$OTHER" in msg and "$NAME" not in msg


def test_a_stray_dollar_is_an_error_that_says_where():
    with pytest.raises(template.TemplateError, match="line 2"):
        template.substitute("ok\n cost $5", {}, "t")


def test_variables_in_order():
    assert template.variables("$B ${A} $B $$C") == ["B", "A"]


@pytest.mark.parametrize("item", ["NOEQ", "=v", "1A=v", "A-B=v", "Ä=v", "A=x\nExecStartPre=/bin/evil", "A=\0"])
def test_bad_sets_are_refused(item):
    with pytest.raises(UsageError, match="--set"):
        template.parse_sets([item])


def test_sets_keep_everything_after_the_first_equals():
    assert template.parse_sets(["A=b=c", "_X="]) == {"A": "b=c", "_X": ""}


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "x.0", "web.12", "../x", "a@b", "é"])
def test_bad_names(name):
    with pytest.raises(UsageError):
        unit.check_name(name)


@pytest.mark.parametrize("name", ["etcd", "my-svc_1", "a.b", "x:y", "v1.2a"])
def test_good_names(name):
    unit.check_name(name)


def test_dependencies_from_labels():
    deps = unit.dependencies({"After": "network-online.target etcd.service", "wants": "network-online.target",
                              "Other": "x"})
    assert deps == [("After", "network-online.target"), ("After", "etcd.service"),
                    ("Wants", "network-online.target")]
    with pytest.raises(UsageError, match="Requires"):
        unit.dependencies({"Requires": "not a unit"})
    with pytest.raises(UsageError, match="not a valid systemd unit name"):
        unit.dependencies({"After": "foo.bar"})


def test_dependencies_go_at_the_end_of_the_unit_section():
    text = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n"
    out = unit.add_dependencies(text, [("After", "a.service")])
    assert out == "[Unit]\nDescription=x\nAfter=a.service\n\n[Service]\nExecStart=/bin/true\n"
    assert unit.add_dependencies("[Service]\nX=1\n", [("Wants", "b.target")]).startswith("[Unit]\nWants=b.target\n")


def test_exec_lines_are_quoted_as_systemd_splits_them():
    assert unit.command_line(["/bin/x", "a b", "50%", "$HOME", 'q"'] ) == '/bin/x "a b" 50%% $$HOME "q\\""'
    cmds = unit.runtime_commands("/usr/bin/pallet-runtime", "/run/pallet/system", "web", "/var/lib/p/web.0")
    assert cmds["EXEC_START"] == "/usr/bin/pallet-runtime --root /run/pallet/system run --bundle /var/lib/p/web.0 web"
    assert cmds["EXEC_STOPPOST"].startswith("-/usr/bin/pallet-runtime")


def test_stop_signal_is_the_images_or_term():
    assert unit.stop_signal(None) == "TERM" and unit.stop_signal("SIGRTMIN+3") == "SIGRTMIN+3"
    assert unit.runtime_commands("/r", "/s", "n", "/b", "SIGKILL")["EXEC_STOP"] == "/r --root /s kill n SIGKILL"
    with pytest.raises(UsageError, match="StopSignal"):
        unit.stop_signal("KILL; rm -rf /")
