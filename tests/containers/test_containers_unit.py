"""The container model's pure parts: flag parsing, podman's classification of runtime errors,
the CLI's REMAINDER positional (everything after the image is the command's)."""

from __future__ import annotations

import pytest

from pallet.cli import containers as cli
from pallet.cli.main import build_parser
from pallet.containers import conmon
from pallet.containers import container as ctr
from pallet.errors import CommandNotFound, CommandNotRunnable, ContainerError, UsageError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,value", [("64m", 64 << 20), ("1g", 1 << 30), ("1GB", 1 << 30), ("10485760", 10485760),
                                        ("7.5m", int(7.5 * (1 << 20))), ("0", 0)])
def test_memory_sizes(text, value):
    assert ctr._parse_memory(text) == value


@pytest.mark.parametrize("text", ["lots", "-1m", "1x", "5m", "nan", "1e30g", ""])
def test_bad_memory_sizes_are_usage_errors(text):
    with pytest.raises(UsageError, match="--memory"):
        ctr._parse_memory(text)


def test_volumes_and_tmpfs(tmp_path):
    assert ctr._volume(f"{tmp_path}:/data:ro") == {"source": str(tmp_path), "destination": "/data", "readonly": True}
    assert ctr._volume(f"{tmp_path}:/data")["readonly"] is False
    assert ctr._volume("/anon/") == {"volume": None, "destination": "/anon", "readonly": False}
    assert ctr._volume("name:/data:ro") == {"volume": "name", "destination": "/data", "readonly": True}
    for bad, words in (("rel", "absolute"), (f"{tmp_path}:rel", "absolute"), ("bad/name:/data", "neither"),
                       (f"{tmp_path}:/d:xx", "'xx'"), ("/no/such/dir:/d", "no such file"), (f"{tmp_path}:/a:b:c", "want")):
        with pytest.raises(UsageError, match=words):
            ctr._volume(bad)
    assert ctr._tmpfs("/run") == {"destination": "/run", "options": ["rw", "noexec", "nosuid", "nodev"]}
    assert ctr._tmpfs("/run:size=1m,mode=700")["options"] == ["size=1m", "mode=700"]
    with pytest.raises(UsageError, match="--tmpfs"):
        ctr._tmpfs("run")


def test_entrypoint_string_or_json():
    assert ctr._entrypoint("/bin/sh -c") == ["/bin/sh -c"]  # podman: one string is the command, not split
    assert ctr._entrypoint('["sh", "-c"]') == ["sh", "-c"]
    assert ctr._entrypoint("") == []
    for bad in ('["sh", 1]', "[not json"):
        with pytest.raises(UsageError, match="--entrypoint"):
            ctr._entrypoint(bad)


@pytest.mark.parametrize("name", ["a", "web-1", "x.y_z", "A1"])
def test_good_names(name):
    ctr.check_name(name)


@pytest.mark.parametrize("name", ["", "-a", ".a", "a b", "a/b", "é", "a" * 254, "a\0"])
def test_bad_names(name):
    with pytest.raises(UsageError, match="container name"):
        ctr.check_name(name)


@pytest.mark.parametrize("msg,cls,code", [
    ('exec: "nosuch": executable file not found in $PATH', CommandNotFound, 127),
    ('exec: "/x": stat /x: no such file or directory', CommandNotFound, 127),
    ('exec: "/etc/passwd": permission denied', CommandNotRunnable, 126),
    ("operation not permitted", CommandNotRunnable, 126),
    ("cgroup: something else", ContainerError, 125)])
def test_runtime_errors_classified_as_podman_does(msg, cls, code):
    e = conmon.runtime_error("/usr/sbin/runc", msg + "\n")
    assert type(e) is cls and e.exit_code == code
    assert str(e).startswith("runc: ") and "\n" not in str(e)


def test_everything_after_the_image_is_the_command():
    p = build_parser("run")
    args, extra = p.parse_known_args(["run", "--rm", "-e", "A=1", "img", "sh", "-c", "echo --rm -e x", "--name", "n"])
    assert not extra
    assert (args.rm, args.env, args.image, args.name) == (True, ["A=1"], "img", None)
    assert args.command == ["sh", "-c", "echo --rm -e x", "--name", "n"]
    args, _ = p.parse_known_args(["run", "img"])
    assert args.command == []
    args, _ = p.parse_known_args(["run", "--name", "n", "img", "--", "x"])
    assert (args.name, args.command) == ("n", ["x"])  # "--" ends the options, as cobra has it


def test_rm_with_restart_and_a_bad_restart_policy_are_refused_first(tmp_path):
    class NoStore:  # never reached: the flags are checked before the store is touched
        runroot = graphroot = str(tmp_path)

        def __getattr__(self, name):
            raise AssertionError(f"store.{name} used")

    c = ctr.Containers(NoStore())
    with pytest.raises(UsageError, match="--rm option conflicts with --restart"):
        c.create(ctr.Options("img", rm=True, restart="always"), pull_fn=None)
    with pytest.raises(UsageError, match="invalid restart policy"):
        c.create(ctr.Options("img", restart="on-failure:x"), pull_fn=None)


def test_user_lookup_from_passwd_and_group_lines():
    from pallet.oci.users import lookup, parse_db

    passwd = parse_db("root:x:0:0::/root:/bin/sh\n# c\napp:x:1000:1001::/home/app:/bin/sh\nbad:x:12a:1\n")
    groups = parse_db("app:x:1001:\nextra:x:2000:app,other\nhuge:x:99999999999:app\n")
    assert lookup("app", passwd, groups) == (1000, 1001, [2000])
    assert lookup("1000", passwd, groups) == (1000, 1001, [2000])
    assert lookup("app:extra", passwd, groups) == (1000, 2000, [])
    assert lookup("4242", passwd, groups) == (4242, 0, [])
    assert lookup("", passwd, groups) == (0, 0, [])
    for spec, words in (("nosuch", "unable to find user nosuch"), ("app:nogroup", "unable to find group nogroup"),
                        ("bad", "passwd entry of bad"), ("99999999999", "not a valid id"), ("app:huge", "group entry")):
        with pytest.raises(ContainerError, match=words):
            lookup(spec, passwd, groups, ContainerError)


def test_image_volumes_relative_ones_go_below_root():
    """podman's: the image's relative VOLUMEs are below / (buildah's VOLUME ['/a', '/b'] makes the
    words [/a, and /b]); never / itself; a -v at the same place wins."""
    from pallet.containers import mounts

    meta = {"binds": [{"source": "/srv", "destination": "/etc/bar]", "readonly": False}], "tmpfs": []}
    mounts.add_image_volumes(meta, {"Volumes": {"[/etc/foo,": {}, "/etc/bar]": {}, "//x//y/": {}, ".": {},
                                                "": {}, "/": {}, "a\0b": {}}})
    assert [b["destination"] for b in meta["binds"]] == ["/etc/bar]", "/x/y", "/[/etc/foo,"]
    assert all(b.get("anonymous") for b in meta["binds"][1:])


@pytest.mark.parametrize("text,want", [("c1", ("c1", None)), ("c1:ro", ("c1", True)), ("c1:rw", ("c1", False)),
                                       ("c1:z", ("c1", None)), ("c1:z,ro", ("c1", True))])
def test_volumes_from_options(text, want):
    from pallet.containers.mounts import parse_volumes_from

    assert parse_volumes_from(text) == want


@pytest.mark.parametrize("text,words", [("c1:ro,rw", "cannot set ro or rw options more than once"),
                                        ("c1:z,z", "cannot set :z more than once"),
                                        ("c1:Z", 'invalid option "Z" specified'), ("c1:", 'invalid option ""'),
                                        (":ro", "want CONTAINER"), ("", "want CONTAINER")])
def test_bad_volumes_from_is_a_usage_error(text, words):
    from pallet.containers.mounts import parse_volumes_from

    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        parse_volumes_from(text)
