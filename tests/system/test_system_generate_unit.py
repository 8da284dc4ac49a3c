"""``generate systemd --new`` as podman 4.3 writes it (pure: system/generate.py), compared with
the unit podman 4.3.1 printed for the same create command."""

from __future__ import annotations

import pytest

from pallet.errors import UsageError
from pallet.system import generate

pytestmark = pytest.mark.unit

#: podman 4.3.1's `generate systemd --new --name web` for
#: podman --root R --runroot RR create --network none --name web -e BAR=1 --restart on-failure:3 IMAGE sh -c 'echo "a b"; sleep 1000'
PODMAN = """[Service]
Environment=PODMAN_SYSTEMD_UNIT=%n
Restart=on-failure
StartLimitBurst=3
TimeoutStopSec=70
ExecStartPre=/bin/rm \\
\t-f %t/%n.ctr-id
ExecStart=/usr/bin/podman \\
\t--root R \\
\t--runroot RR run \\
\t--cidfile=%t/%n.ctr-id \\
\t--cgroups=no-conmon \\
\t--rm \\
\t--sdnotify=conmon \\
\t-d \\
\t--replace \\
\t--network none \\
\t--name web \\
\t-e BAR=1 IMAGE sh \\
\t-c "echo \\"a b\\"; sleep 1000"
ExecStop=/usr/bin/podman stop \\
\t--ignore -t 10 \\
\t--cidfile=%t/%n.ctr-id
ExecStopPost=/usr/bin/podman rm \\
\t-f \\
\t--ignore -t 10 \\
\t--cidfile=%t/%n.ctr-id
Type=notify
NotifyAccess=all

[Install]
WantedBy=default.target
"""


def _unit(cc, image="IMAGE", command=None, **kw):
    kw.setdefault("env", [])
    return generate.new_container_unit(create_command=cc, image=image, command=command, exe="/usr/bin/podman",
                                       cid="c" * 64, name="web", date="DATE", **kw)


def test_new_unit_is_podmans():
    cc = ["podman", "--root", "R", "--runroot", "RR", "create", "--network", "none", "--name", "web", "-e", "BAR=1",
          "--restart", "on-failure:3", "IMAGE", "sh", "-c", 'echo "a b"; sleep 1000']
    name, text = _unit(cc, command=["sh", "-c", 'echo "a b"; sleep 1000'], use_name=True)
    assert name == "container-web.service"
    service = text[text.index("[Service]"):]
    # pallet repeats the global flags in ExecStop/ExecStopPost (podman 4.3 does not: its unit then
    # stops a container of another store)
    assert service.replace("/usr/bin/podman --root R --runroot RR ", "/usr/bin/podman ") == PODMAN
    assert text.startswith("# container-web.service\n") and "RequiresMountsFor=%t/containers\n" in text


def test_new_unit_flags_kept_dropped_and_added():
    cc = ["pallet", "run", "--rm", "-d", "--cgroups=enabled", "--cidfile", "/x", "--replace", "--name", "n",
          "--sdnotify=ignore", "--restart=unless-stopped", "-e", "HOME", "IMAGE", "echo", "--rm", "100%", "$x"]
    _, text = _unit(cc, command=["echo", "--rm", "100%", "$x"], env=["HOME=/my home", "X=1"])
    start = text[text.index("ExecStart="):text.index("ExecStop=")]
    args = start.replace(" \\\n\t", " ").split()
    # the container's own --rm, --cgroups, --cidfile, --restart go; -d and --replace stay once;
    # the command after the image is untouched but escaped ($ and % doubled)
    assert args[1:] == ["run", "--cidfile=%t/%n.ctr-id", "--cgroups=no-conmon", "--rm", "--sdnotify=conmon", "-d",
                        "--replace", "--name", "n", "-e", "HOME", "IMAGE", "echo", "--rm", "100%%", "$$x"]
    assert "Restart=always\n" in text  # unless-stopped is systemd's always
    assert 'Environment="HOME=/my home"\n' in text  # a bare -e NAME takes the value the container has


def test_new_unit_bad_input():
    with pytest.raises(UsageError, match="too short or invalid"):
        _unit(["pallet", "IMAGE"])
    with pytest.raises(UsageError, match="does not end with its image"):
        _unit(["pallet", "run", "OTHER", "true"], command=["true"])
    with pytest.raises(UsageError, match="sometimes"):
        _unit(["pallet", "run", "IMAGE"], restart_policy="sometimes")


@pytest.mark.parametrize("arg, out", [("plain", "plain"), ("a b", '"a b"'), ('q"', '"q\\""'), ("5%", "5%%"),
                                      ("$HOME", "$$HOME"), ("back\\slash", "back\\\\slash"),
                                      ("tab\there", '"tab\\there"')])
def test_escape_arg_as_podman(arg, out):
    assert generate.escape_arg(arg) == out
