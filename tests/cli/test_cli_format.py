"""The --format template engine (cli/_template.py): Go text/template's forms, as podman runs
them, over plain data. Pure: no store, no peer (the verbs' outputs, compared with podman and
buildah, are in test_cli_filters.py)."""

from __future__ import annotations

import pytest

from pallet.cli._template import Struct, Template, render, render_rows, tabwrite
from pallet.errors import PalletError, UsageError

pytestmark = pytest.mark.unit

DATA = Struct("images.imageReporter", {
    "ID": "77abeacf34c8", "Repository": "localhost/foo", "Tag": "bar", "Size": "176 kB", "VirtualSize": 176248,
    "Labels": {"org.example.test": "yes", "a": "1"}, "Names": ["localhost/foo:bar", "localhost/x:1"],
    "Containers": 0, "ReadOnly": False, "Dangling": False, "History": "", "Empty": [],
    "Nested": Struct("inner", {"A": 1, "Map": {"k": "v"}}),
})


@pytest.mark.parametrize("tmpl, want", [
    ("{{.ID}}", "77abeacf34c8"),
    ("{{ .Repository }}:{{ .Tag }}", "localhost/foo:bar"),
    ("{{.Nested.A}} {{.Nested.Map.k}}", "1 v"),
    ("{{.Labels}}", "map[a:1 org.example.test:yes]"),
    ("{{.Names}}", "[localhost/foo:bar localhost/x:1]"),
    ("{{.ReadOnly}} {{.Containers}} {{.VirtualSize}}", "false 0 176248"),
    ("{{json .Labels}}", '{"a":"1","org.example.test":"yes"}'),
    ("{{json .Names}}", '["localhost/foo:bar","localhost/x:1"]'),
    ('{{index .Labels "org.example.test"}}', "yes"),
    ("{{index .Names 1}}", "localhost/x:1"),
    ("{{.Labels.missing}}", "<no value>"),
    ('{{index .Labels "missing"}}|{{index .Nested.Map "k"}}', "|v"),  # index: the zero value, as Go
    ("{{len .Names}} {{len .Labels}} {{len .ID}}", "2 2 12"),
    ("{{range .Names}}<{{.}}>{{end}}", "<localhost/foo:bar><localhost/x:1>"),
    ("{{range $i, $n := .Names}}{{$i}}={{$n}};{{end}}", "0=localhost/foo:bar;1=localhost/x:1;"),
    ("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", "a=1,org.example.test=yes,"),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{range .Names}}{{if eq . \"localhost/foo:bar\"}}{{continue}}{{end}}{{.}}{{end}}", "localhost/x:1"),
    ("{{range .Names}}{{.}}{{break}}{{end}}", "localhost/foo:bar"),
    ("{{range .Names}}{{$.Tag}}{{end}}", "barbar"),
    ("{{if .Dangling}}d{{else if .Containers}}c{{else}}plain{{end}}", "plain"),
    ("{{if .Empty}}e{{else if .Names}}n{{end}}", "n"),
    ("{{with .Labels.a}}a={{.}}{{end}}{{with .Labels.zz}}no{{else}}-{{end}}", "a=1-"),
    ("{{with $x := .Tag}}{{$x}}{{end}}", "bar"),
    ("{{$t := .Tag}}{{$t}}{{$t = \"z\"}}{{$t}}", "barz"),
    ('{{printf "%-6s|%5d|%x|%q|%v|%.2f" .Tag .VirtualSize 255 .Tag .Names 1.5}}',
     'bar   |176248|ff|"bar"|[localhost/foo:bar localhost/x:1]|1.50'),
    ("{{upper .Tag}} {{lower \"ABC\"}} {{.Tag | upper}} {{title \"a b\"}}", "BAR abc BAR A B"),
    ('{{join .Names ", "}}', "localhost/foo:bar, localhost/x:1"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ('[{{pad .Tag 2 1}}]{{truncate .Repository 5}}', "[  bar ]local"),
    ("{{if and .ID (not .Dangling)}}y{{end}}{{or .Empty .Tag}}{{and .Tag .Empty}}", "ybar[]"),
    ("{{if ne .Tag \"x\"}}ne{{end}}{{if lt .VirtualSize 200000}}lt{{end}}{{if gt 2 1}}gt{{end}}", "neltgt"),
    ('{{if eq .Tag "a" "b" "bar"}}any{{end}}', "any"),
    ("{{(index .Names 0) | printf \"%s!\"}}", "localhost/foo:bar!"),
    # %q quotes a map's and a slice's elements, as Go's fmt (buildah's suite prints labels so)
    ('{{printf "%q" .Labels}} {{printf "%q" .Names}} {{printf "%q" .Empty}}',
     'map["a":"1" "org.example.test":"yes"] ["localhost/foo:bar" "localhost/x:1"] []'),
    ("a  {{- .Tag -}}  b\n", "abarb\n"),
    ("{{/* a comment */}}x{{- /* trimmed */ -}}  y", "xy"),
    ("{{.}}", "{77abeacf34c8 localhost/foo bar 176 kB 176248 map[a:1 org.example.test:yes] "
              "[localhost/foo:bar localhost/x:1] 0 false false  [] {1 map[k:v]}}"),
    ("{{`raw {{`}} {{\"q\\t\\u00e9\"}} {{1.5}} {{-3}} {{0x1F}} {{'a'}} {{true}}", "raw {{ q\t\u00e9 1.5 -3 31 97 true"),
    ("{{.Tag}}\\t{{.ID}}\\n", "bar\t77abeacf34c8\n"),
    ("{{1e400}} {{-1e400}} {{2.5e-7}} {{1e21}} {{3.0}}", "+Inf -Inf 2.5e-07 1e+21 3"),  # a typed backslash-t / backslash-n, as podman
    ('{{printf "%s\\n" .Tag}}{{"a\\tb"}}\\n', "bar\na\tb\n"),  # and Go's escapes in string literals
    ("{{`}}`}}", "}}"),
])
def test_template_forms(tmpl, want):
    assert render(tmpl, DATA) == want


def test_json_of_a_reporter_is_its_json_object():
    row = Struct("system.dfSummary", {"Type": "Images", "Size": "1kB"}, json_view={"Type": "Images", "Size": 1000})
    assert render("{{json .}} {{.Size}}", row) == '{"Type":"Images","Size":1000} 1kB'
    assert render("{{json .}}", Struct("x", {"a": [1, None, True]})) == '{"a":[1,null,true]}'


@pytest.mark.parametrize("tmpl, message", [
    ("{{.CreatedAtt}}", 'template: format:1:2: executing "format" at <.CreatedAtt>: '
                        "can't evaluate field CreatedAtt in type images.imageReporter"),
    ("{{.Nested.B}}", "can't evaluate field B in type inner"),
    ("{{.Tag.X}}", "can't evaluate field X in type string"),
    ("{{range .Names}}{{.Foo}}{{end}}", "can't evaluate field Foo in type string"),
    ("{{nosuch .Tag}}", 'function "nosuch" not defined'),
    ("{{if .Tag}}x", "unexpected EOF"),
    ("x{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{.Tag", "unclosed action"),
    ("{{$nope}}", "undefined variable: $nope"),
    ("{{len .Containers}}", "len of type int"),
    ("{{index .Names 9}}", "index out of range: 9"),
    ('{{"a" .Tag}}', "can't give argument to non-function"),
    ("{{lt .Tag 1}}", "incompatible types for comparison"),
    ("{{break}}", "{{break}} outside {{range}}"),
    ('{{"unterminated}}', "unterminated quoted string"),
    ("{{template \"x\"}}", "not supported"),
    ("{{printf}}", "wrong number of args for printf"),
    ("{{}}", "missing value for command"),
    ("{{" + "(" * 500 + ".Tag" + ")" * 500 + "}}", "nested more than 100 deep"),
    ("{{pad .Tag 99999999999 0}}", "padding out of range"),
    ("{{range 100000000000}}x{{end}}", "range can't iterate over 100000000000"),
    ("{{if .Tag}}" * 300 + "{{end}}" * 300, "nested more than 100 deep"),
])
def test_template_errors_name_the_problem(tmpl, message):
    with pytest.raises(UsageError) as e:
        render(tmpl, DATA)
    assert message in str(e.value) and str(e.value).startswith("template: ")
    assert "\n" not in str(e.value)


def test_printf_never_raises():
    """Go's fmt marks a bad verb or argument in the output rather than failing."""
    assert render('{{printf "%d" .Tag}}', DATA) == "%!d(string=bar)"
    assert render('{{printf "%s %s" .Tag}}', DATA) == "bar %!s(MISSING)"
    assert render('{{printf "%s" .Tag 1}}', DATA) == "bar%!(EXTRA int=1)"
    assert "BADWIDTH" in render('{{printf "%99999999999s" .Tag}}', DATA)
    assert render('{{printf "100%%"}}', DATA) == "100%"


def test_table_headers_and_alignment():
    rows = [Struct("r", {"ID": "abc", "Size": "1 kB"}), Struct("r", {"ID": "abcdefabcdefab", "Size": "2 kB"})]
    out = render_rows("table {{.ID}} {{.Size}}", rows, {"ID": "IMAGE ID", "Size": "SIZE"})
    assert out.splitlines() == ["IMAGE ID        SIZE", "abc             1 kB", "abcdefabcdefab  2 kB"]
    assert render_rows("table {{.ID}}\\t{{.Size}}", rows, {"ID": "IMAGE ID", "Size": "SIZE"}) == out
    # without "table": no header, and tabs as they are (podman 4.3's images, history, ps, volume ls,
    # network ls and system df all print "{{.ID}}\t{{.Size}}" with a tab)
    assert render_rows("{{.ID}}\t{{.Size}}", rows[:1], {}) == "abc\t1 kB"
    assert render_rows("{{.ID}}", [], {"ID": "IMAGE ID"}) == ""
    with pytest.raises(UsageError, match="can't evaluate field Nope"):  # even with nothing to list
        render_rows("{{.Nope}}", [], {"ID": "IMAGE ID"})
    assert render_rows("table {{.ID}}", [], {"ID": "IMAGE ID"}) == "IMAGE ID"
    assert render_rows("table {{.ID}}", rows, {"ID": "IMAGE ID"}, noheading=True) == "abc\nabcdefabcdefab"
    # a header is text: a template comparing numbers still lists its rows
    nums = [Struct("r", {"Total": 3})]
    assert render_rows("table {{.Total}} {{if gt .Total 1}}many{{end}}", nums, {"Total": "TOTAL"}) == "3           many"
    with pytest.raises(UsageError, match="can't evaluate field Nope"):
        render_rows("table {{.Nope}}", rows, {"ID": "IMAGE ID"})
    assert tabwrite("a\tb\nccc\td") == "a           b\nccc         d"
    # a table's spaces split columns only outside actions: a string literal keeps its own
    out = render_rows('table {{printf "%s %s" .ID "}}"}} {{.Size}}', rows[:1], {"ID": "IMAGE ID", "Size": "SIZE"})
    assert out.splitlines() == ["IMAGE ID }}  SIZE", "abc }}       1 kB"]


def test_parsed_once_runs_on_every_row():
    t = Template("{{.A}}-{{len .B}}")
    assert [t.execute(Struct("s", {"A": i, "B": [0] * i})) for i in range(3)] == ["0-0", "1-1", "2-2"]


@pytest.mark.parametrize("tmpl", [
    "{{", "}}{{", "{{.A.}}", "{{..}}", "{{$}}", "{{|}}", "{{.A|}}", "{{(}}", "{{)}}", "{{range}}{{end}}",
    "{{if}}{{end}}", "{{with}}{{end}}", "{{else if}}", "{{$x :=}}", "{{$x = 1}}", "{{'ab'}}", "{{1x}}", "{{\"\\q\"}}",
    "{{/* never closed", "{{index}}", "{{index .A \"k\" 2}}", "{{range $a, $b, $c := .A}}{{end}}", "{{-}}",
    "{{- -}}", "{{.A -}", "\x00{{.A}}\xff", "{{printf \"%\" 1}}", "{{json}}", "{{join .A}}", "{{eq}}", "{{not 1 2}}",
])
def test_hostile_templates_are_one_line_errors_or_text(tmpl):
    data = Struct("s", {"A": {"k": [1]}})
    try:
        out = render(tmpl, data)
    except PalletError as e:
        assert "\n" not in str(e) and str(e).startswith("template: ")
    else:
        assert isinstance(out, str)
