"""pallet build's buildah flags (issue 16, as buildah's tests/bud.bats uses them): what every
RUN step gets (cgroup limits, rlimits, capabilities, devices, /etc/hosts and resolv.conf,
/dev/shm), additional build contexts, the target platform, the image config's --env/--unsetenv,
--omit-history, --logfile, --ignorefile, Containerfile.in through cpp, and bad values (one
line, exit 125, nothing made)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import need
from buildtools import PalletStore, base, pallet  # noqa: F401  (fixtures)


def _ctx(tmp_path, dockerfile: str, files: dict | None = None, name: str = "Dockerfile") -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / name).write_text(dockerfile)
    for n, data in (files or {}).items():
        p = ctx / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return str(ctx)


def _cgroup_v1(controller: str) -> bool:
    return os.path.isdir(f"/sys/fs/cgroup/{controller}") and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_run_steps_get_the_resource_and_security_flags(pallet, tmp_path):
    # the container's own cgroup files at /sys/fs/cgroup (v1 here; v2 names otherwise)
    script = ("cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "
              "cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpuset.cpus; "
              "echo nofile=$(ulimit -n); df -k /dev/shm | tail -1; grep myhost /etc/hosts; cat /etc/resolv.conf; "
              "ls /test/null; grep CapBnd /proc/self/status")
    ctx = _ctx(tmp_path, f"FROM localhost/busybox:v1\nRUN {script}\n")
    p = pallet("build", "--no-cache", "--cpu-shares", "12345", "--memory", "40m", "--cpuset-cpus", "0",
               "--ulimit", "nofile=1234:1234", "--shm-size", "8m", "--add-host", "myhost:10.1.2.3",
               "--dns", "10.9.9.9", "--dns-search", "example.com", "--dns-option", "use-vc",
               "--device", "/dev/null:/test/null", "--cap-add", "cap_sys_ptrace", "--cap-drop", "CHOWN", ctx)
    out = p.stdout
    if _cgroup_v1("cpu"):
        assert "\n12345\n" in out and "\n41943040\n" in out, out
    else:  # cgroup v2: the weight runc derives from the shares
        assert f"\n{1 + ((12345 - 2) * 9999) // 262142}\n" in out and "\n41943040\n" in out, out
    assert "\n0\n" in out  # cpuset.cpus
    assert "nofile=1234" in out
    assert " 8192 " in out  # /dev/shm's size in KiB
    assert "10.1.2.3\tmyhost" in out
    assert "nameserver 10.9.9.9" in out and "search example.com" in out and "options use-vc" in out
    assert "/test/null" in out
    caps = int(out.split("CapBnd:")[1].split()[0], 16)
    assert caps & (1 << 19) and not caps & 1  # CAP_SYS_PTRACE added, CAP_CHOWN dropped


def test_run_steps_get_containers_commons_seccomp_profile(pallet, tmp_path):
    """As buildah: RUN steps are filtered by containers-common's profile (podman's conversion;
    no file installed: no filter), another one with --security-opt seccomp=PATH, none with
    seccomp=unconfined; a bad profile is one line before anything is built."""
    from pallet.containers.seccomp_profile import DEFAULT_PATH

    import re

    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\n"
                         "RUN echo mode=$(awk '/^Seccomp:/ {print $2}' /proc/self/status); mkdir /made && echo ma''de\n")

    def mode(*flags):
        return re.findall(r"mode=(\d)", pallet("build", "--no-cache", *flags, ctx).stdout)

    assert mode() == ["2" if os.path.exists(DEFAULT_PATH) else "0"]
    assert mode("--security-opt", "seccomp=unconfined") == ["0"]
    deny = tmp_path / "deny-mkdir.json"
    deny.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    p = pallet("build", "--no-cache", "--security-opt", f"seccomp={deny}", ctx, check=False)
    assert p.returncode != 0 and "\nmade" not in p.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    p = pallet("build", "--security-opt", f"seccomp={bad}", ctx, check=False)
    assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1 and str(bad) in p.stderr, p.stderr


def test_no_hosts_and_pid_host_with_chroot_isolation(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN ls /etc/hosts || echo no-hosts; readlink /proc/self/ns/pid\n")
    p = pallet("build", "--no-cache", "--no-hosts", "--isolation", "chroot", ctx)
    assert "no-hosts" in p.stdout  # busybox:v1 has no /etc/hosts, and none was bound
    assert os.readlink("/proc/self/ns/pid") in p.stdout  # chroot isolation: the host's PID namespace


@pytest.mark.parametrize("flags,needle", [
    (["--cpu-shares", "bogus"], 'invalid argument "bogus" for "-c, --cpu-shares" flag'),
    (["--dns", "1.2.3.4", "--network", "none"], "the --dns option cannot be used with --network=none"),
    (["--dns-search", "x.org", "--network", "none"], "the --dns-search option cannot be used with --network=none"),
    (["--dns", "not-an-ip"], "invalid --dns 'not-an-ip'"),
    (["--add-host", "a:1.2.3.4", "--no-hosts"], "--no-hosts and --add-host conflict, can not be used together"),
    (["--isolation", "chroot", "--network", "none"], "cannot set --network other than host with --isolation chroot"),
    (["--ulimit", "nofile=2:1"], "the soft limit is above the hard limit"),
    (["--ulimit", "bogus=1"], "invalid --ulimit 'bogus=1'"),
    (["--memory", "lots"], "invalid --memory 'lots'"),
    (["--memory", "10m", "--memory-swap", "5m"], "--memory-swap must be at least --memory"),
    (["--device", "/nonexistent/dev"], "--device /nonexistent/dev: /nonexistent/dev: no such file"),
    (["--security-opt", "bogus"], "invalid --security-opt 'bogus'"),
    (["--pid", "container:x"], "invalid --pid 'container:x'"),
    (["--all-platforms"], "not supported yet"),
    (["--platform", "linux/amd64,linux/arm64", "--iidfile", "/dev/null"], "can only be used to store one image ID"),
    (["--platform", "linux"], "invalid platform 'linux'"),
    (["--hooks-dir", "/nonexistent/hooks"], "--hooks-dir /nonexistent/hooks"),
    (["--build-context", "x=/nonexistent"], "/nonexistent is not a directory"),
    (["--build-context", "novalue"], "invalid --build-context 'novalue'"),
    (["--ignorefile", "/nonexistent/ignore"], "--ignorefile /nonexistent/ignore"),
])
def test_bad_flag_values_are_one_line_and_make_nothing(pallet, tmp_path, flags, needle):
    before = {r["id"] for r in pallet.store().images()}
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN true\n")
    p = pallet("build", *flags, "-t", "bad", ctx, check=False)
    assert p.returncode == 125, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(err) == 1 and needle in err[0], p.stderr
    assert {r["id"] for r in pallet.store().images()} == before


def test_additional_build_contexts_win_over_stage_names(pallet, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "hello").write_text("from-the-directory\n")
    pallet("build", "-t", "source", _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo from-the-image > /hello\n"))
    df = ("FROM localhost/busybox:v1 AS some-stage\nRUN echo from-the-stage > /hello\n"
          "FROM localhost/busybox:v1\nCOPY --from=dir hello /dir-hello\nCOPY --from=some-stage /hello /img-hello\n"
          "COPY --from=0 /hello /zero-hello\nRUN --mount=type=bind,from=dir,target=/m cat /m/hello\n"
          "RUN cat /dir-hello /img-hello /zero-hello\n")
    os.remove(os.path.join(tmp_path, "ctx", "Dockerfile"))
    p = pallet("build", "--build-context", f"dir={extra}", "--build-context", "some-stage=docker-image://source",
               "-t", "out", _ctx(tmp_path, df))
    # stage 0 is named some-stage: by number it is that context too (buildah's rule)
    assert p.stdout.count("from-the-directory") == 2 and p.stdout.count("from-the-image") == 2, p.stdout
    assert "\nfrom-the-stage\n" not in p.stdout  # the shadowed stage's file was copied nowhere
    # FROM a context that is an image
    p = pallet("build", "--build-context", "base=docker-image://source", "-t", "out2",
               _ctx(tmp_path, "FROM base\nRUN cat /hello\n"))
    assert "from-the-image" in p.stdout


def test_platform_flags_target_args_and_the_image_config(pallet, tmp_path):
    # the base for the build's platform (no index: only the host's is there), as buildah's suite does
    df = ("FROM --platform=$BUILDPLATFORM localhost/busybox:v1\nARG TARGETPLATFORM\nARG TARGETARCH\nARG BUILDARCH\n"
          "RUN echo target=$TARGETPLATFORM arch=$TARGETARCH build=$BUILDARCH\n")
    p = pallet("build", "--no-cache", "--platform", "linux/arm64", "-t", "arm", _ctx(tmp_path, df))
    from pallet.oci.platform import host

    assert f"target=linux/arm64 arch=arm64 build={host().architecture}" in p.stdout
    cfg = pallet.config("arm")
    assert (cfg["os"], cfg["architecture"]) == ("linux", "arm64")  # a host-arch base, tagged for the target
    pallet("build", "--arch", "arm", "--variant", "v7", "-t", "armv7", _ctx(tmp_path, "FROM scratch\n"))
    cfg = pallet.config("armv7")
    assert (cfg["architecture"], cfg["variant"]) == ("arm", "v7")
    pallet("build", "-t", "fbsd", _ctx(tmp_path, "FROM --platform=freebsd/arm64/v8 scratch\nLABEL a=b\n"))
    cfg = pallet.config("fbsd")
    assert (cfg["os"], cfg["architecture"], cfg["variant"]) == ("freebsd", "arm64", "v8")
    pallet("build", "--platform", "windows/", "-t", "win", _ctx(tmp_path, "FROM scratch\n"))
    # a stored base of another platform is not used for the target's: it is pulled (and here fails)
    p = pallet("build", "--platform", "linux/s390x", _ctx(tmp_path, "FROM localhost/busybox:v1\n"), check=False)
    assert p.returncode == 125 and "FROM localhost/busybox:v1" in p.stderr
    assert (pallet.config("win")["os"], pallet.config("win")["architecture"]) == ("windows", host().architecture)


def test_env_unsetenv_omit_history_and_skip_unused_stages(pallet, tmp_path):
    df = ("FROM localhost/busybox:v1 AS unused\nRUN echo unused-stage-ran\n"
          "FROM localhost/busybox:v1\nENV keep=1 drop=2\nRUN echo hello\n")
    p = pallet("build", "--env", "ADDED=x", "--env", "PATH", "--unsetenv", "drop", "--omit-history", "-t", "e",
               _ctx(tmp_path, df), env={"PATH": os.environ["PATH"]})
    assert "unused-stage-ran" not in p.stdout
    cfg = pallet.config("e")
    env = cfg["config"]["Env"]
    assert "keep=1" in env and "ADDED=x" in env and f"PATH={os.environ['PATH']}" in env
    assert not any(e.startswith("drop=") for e in env)
    assert cfg["history"] == []
    p = pallet("build", "--no-cache", "--skip-unused-stages=false", "-t", "e2", _ctx(tmp_path, df))
    assert "unused-stage-ran" in p.stdout


def test_logfile_ignorefile_and_stdin(pallet, tmp_path):
    ign = tmp_path / "myignore"
    ign.write_text("secret*\n")
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY . /c/\nRUN ls /c; read -t 5 x && echo got-$x\n",
               {"secret.txt": "s", "public.txt": "p"})
    log = tmp_path / "build.log"
    p = pallet("build", "--logfile", str(log), "--ignorefile", str(ign), "--stdin", "-t", "l", ctx, input="input\n")
    assert p.stdout == "" and p.stderr == ""
    text = log.read_text()
    assert "STEP 1/3" in text and "public.txt" in text and "secret.txt" not in text and "got-input" in text
    # a failure goes to the log too, with the RUN's own exit status
    bad = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN exit 4\n")
    p = pallet("build", "--logfile", str(log), bad, check=False)
    assert p.returncode == 4 and 'building at STEP "RUN exit 4": exit status 4' in log.read_text()


def test_containerfile_in_goes_through_cpp(pallet, tmp_path):
    need("cpp")  # scripts/install.sh installs it (gcc's)
    df = '#include "common"\n#if DEBUGGING\nRUN echo debug=yes\n#else\nRUN echo debug=no\n#endif\n'
    ctx = _ctx(tmp_path, df, {"common": "FROM localhost/busybox:v1\n"}, name="Containerfile.in")
    p = pallet("build", "--no-cache", "-f", os.path.join(ctx, "Containerfile.in"), ctx)
    assert "debug=no" in p.stdout
    p = pallet("build", "--no-cache", "--cpp-flag", "-DDEBUGGING", "-f", os.path.join(ctx, "Containerfile.in"), ctx)
    assert "debug=yes" in p.stdout
    p = pallet("build", "--no-cache", "-f", os.path.join(ctx, "Containerfile.in"), ctx,
               env={"BUILDAH_CPPFLAGS": "-DDEBUGGING"})
    assert "debug=yes" in p.stdout
    # cpp's error with output still written: a warning, the build goes on (buildah's behaviour)
    (tmp_path / "ctx" / "Containerfile.in").write_text('#include "common"\n#error oops\nRUN echo went-on\n')
    p = pallet("build", "--no-cache", "-f", os.path.join(ctx, "Containerfile.in"), ctx)
    assert "Ignoring" in p.stderr and "#error oops" in p.stderr and "went-on" in p.stdout


def test_from_with_an_undeclared_or_stage_declared_arg(pallet, tmp_path):
    df = ("FROM localhost/busybox:v1 AS build\nARG WHICH\nFROM build AS pick-one\nENV C=one\n"
          "FROM pick-${WHICH}\nRUN echo chose-$C\n")
    p = pallet("build", "--build-arg", "WHICH=one", _ctx(tmp_path, df))
    assert "chose-one" in p.stdout  # an ARG declared in any stage: its --build-arg expands FROM
    p = pallet("build", _ctx(tmp_path, df), check=False)
    assert p.returncode == 125 and "FROM pick-: invalid reference format" in p.stderr
    # a stage name with a "/" (buildah's suite names stages platform-arm/v7)
    df = "FROM localhost/busybox:v1 AS platform-arm/v7\nENV V=7\nFROM platform-arm/v7\nRUN echo v=$V\n"
    assert "v=7" in pallet("build", _ctx(tmp_path, df)).stdout


def test_builder_run_options_after_the_container_are_the_commands(pallet):
    ctr = pallet("builder", "from", "localhost/busybox:v1").stdout.strip()
    p = pallet("builder", "run", ctr, "ls", "-ld", "/etc")
    assert p.stdout.startswith("d")
    p = pallet("builder", "run", ctr, check=False)
    assert p.returncode == 125 and "command must be specified" in p.stderr
    pallet("builder", "rm", ctr)


@pytest.mark.unit
def test_run_extras_in_the_runtime_config():
    from pallet.builder import run as build_run

    x = build_run.run_extras(cpu_shares=5, memory="1g", memory_swap="-1", cpuset_mems="0", ulimits=["cpu=300"],
                             cap_add=["cap_sys_ptrace"], devices=["/dev/null:/d/n:r"], cgroup_parent="/p/q",
                             pid="host", security_opts=["no-new-privileges"], shm_size="1m")
    o = build_run.RunOptions(user=(1000, 1000, []), extras=x)
    cfg = build_run.spec("/r", ["true"], o, None, "/rv", cid="cid1")
    caps = cfg["process"]["capabilities"]
    assert "CAP_SYS_PTRACE" in caps["bounding"] and caps["effective"] == [] and "ambient" not in caps
    assert cfg["linux"]["resources"]["cpu"] == {"shares": 5, "mems": "0"}
    assert cfg["linux"]["resources"]["memory"] == {"limit": 1 << 30, "swap": -1}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in cfg["linux"]["resources"]["devices"]
    assert cfg["linux"]["cgroupsPath"] == "/p/q/cid1" and cfg["process"]["noNewPrivileges"] is True
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_CPU", "hard": 300, "soft": 300}]
    assert "pid" not in [n["type"] for n in cfg["linux"]["namespaces"]]
    dests = [m["destination"] for m in cfg["mounts"]]
    assert "/etc/hosts" not in dests and "/d/n" in dests  # --no-hosts: hosts None
    assert [m for m in cfg["mounts"] if m["destination"] == "/dev/shm"][0]["options"][-1] == "size=1048576"


def test_contexts_from_stdin_an_archive_and_a_dockerfile(pallet, tmp_path):
    import subprocess

    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY hello /hello\nRUN cat /hello\n", {"hello": "hi-from-ctx"})
    tarball = tmp_path / "ctx.tar.gz"
    subprocess.run(["tar", "-czf", str(tarball), "-C", ctx, "."], check=True)
    assert "hi-from-ctx" in pallet("build", "--no-cache", str(tarball)).stdout  # an archive as the context
    with open(tarball, "rb") as f:
        data = f.read()
    p = subprocess.run(pallet.args("build", "--no-cache", "-"), input=data, capture_output=True)
    assert p.returncode == 0 and b"hi-from-ctx" in p.stdout, p.stderr  # the archive on stdin
    p = pallet("build", "-q", "-t", "fromstdin", "-", input="FROM localhost/busybox:v1\nLABEL s=1\n")
    assert pallet.config("fromstdin")["config"]["Labels"]["s"] == "1"  # a Dockerfile on stdin
    assert "hi-from-ctx" in pallet("build", "--no-cache", os.path.join(ctx, "Dockerfile")).stdout
    # nothing of the extracted contexts stays in the store's staging
    assert not [n for n in os.listdir(os.path.join(pallet.root, "staging")) if not n.endswith(".lock")]


@pytest.mark.parametrize("make,args,needle", [
    (None, ["nonexistent-dir"], "the build context nonexistent-dir: no such file or directory"),
    ("empty", ["-f", "Empty", "CTX"], 'no contents in "'),
    (None, ["-f", "CTX", "CTX"], "cannot be path to a directory"),
    (None, ["CTX"], "cannot find Containerfile or Dockerfile in context directory: stat CTX/Dockerfile: "
                    "no such file or directory"),  # (podman's 070 greps "Dockerfile: no such file or directory")
    (None, ["-f", "/etc/hostname/Dockerfile", "CTX"], "/etc/hostname/Dockerfile: not a directory"),
    ("dir-dockerfile", ["CTX"], "Dockerfile is not a file"),
    ("copy-chown", ["CTX"], "COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the "
                            "--from=<image|stage> flags"),
    ("add-flag", ["CTX"], "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags"),
    ("self-from", ["CTX"], "COPY --from=build: no stage or image found with that name"),
    (None, ["http://127.0.0.1:1/ctx.tar"], "the build context http://127.0.0.1:1/ctx.tar: "),  # nothing listens
])
def test_context_and_dockerfile_errors_in_buildahs_words(pallet, tmp_path, make, args, needle):
    ctx = tmp_path / "c"
    ctx.mkdir()
    if make == "empty":
        (ctx / "Empty").write_text("")
    elif make == "dir-dockerfile":
        (ctx / "Dockerfile").mkdir()
    elif make == "copy-chown":
        (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nCOPY --chown 1:2 a /a\n")
    elif make == "add-flag":
        (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1\nADD --from=x a /a\n")
    elif make == "self-from":
        (ctx / "Dockerfile").write_text("FROM localhost/busybox:v1 AS build\nCOPY --from=build /bin /b\n")
    p = pallet("build", *[str(ctx) if a == "CTX" else a for a in args], check=False, cwd=str(tmp_path))
    assert p.returncode == 125, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(err) == 1 and needle.replace("CTX", str(ctx)) in err[0], p.stderr


def test_cache_ttl(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo step > /s\n")
    pallet("build", ctx)
    assert "Using cache" in pallet("build", "--cache-ttl=1h", ctx).stdout
    assert "Using cache" not in pallet("build", "--cache-ttl=0", ctx).stdout  # 0: as --no-cache
    cache = os.path.join(pallet.root, "build-cache")
    for n in os.listdir(cache):  # recorded two hours ago
        os.utime(os.path.join(cache, n), (0, os.path.getmtime(os.path.join(cache, n)) - 7200))
    assert "Using cache" not in pallet("build", "--cache-ttl=1h", ctx).stdout
    assert "Using cache" in pallet("build", ctx).stdout  # rebuilt just now, without a ttl


def test_ignore_rules_and_globs_as_buildah(pallet, tmp_path):
    files = {"test1.txt": "1", "test2.txt": "2", "subdir/sub1.txt": "s1", "subdir/sub2.txt": "s2",
             "keep/k.txt": "k", "keep/other.txt": "o",
             ".dockerignore": "*\n!test2*\nsubdir\n!*/sub1*\nkeep\n!keep/k.txt\n!Dockerfile\n"}
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY ./ /c/\nRUN find /c | sort\n", files)
    out = pallet("build", "--no-cache", ctx).stdout
    # a wildcard "!" rule does not bring an excluded directory back; one naming a path below it does
    assert "/c/test2.txt" in out and "/c/keep/k.txt" in out
    assert "/c/test1.txt" not in out and "/c/subdir" not in out and "/c/keep/other.txt" not in out
    p = pallet("build", _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY subdir /s/\n", files), check=False)
    assert p.returncode == 125 and 'building at STEP "COPY subdir /s/"' in p.stderr
    assert "1 filtered out using" in p.stderr and ".dockerignore" in p.stderr
    # one glob matching several files: DEST is a directory without its "/" (buildah's)
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY *.txt /testdir\nRUN ls /testdir\n", {".dockerignore": ""})
    assert "test1.txt" in pallet("build", "--no-cache", ctx).stdout


def test_os_version_and_features(pallet, tmp_path):
    pallet("build", "-t", "osv", "--os-version=1.0", "--os-feature", "gone", "--os-feature", "gone-",
           "--os-feature", "win32k", _ctx(tmp_path, "FROM scratch\n"))
    cfg = pallet.config("osv")
    assert cfg["os.version"] == "1.0" and cfg["os.features"] == ["win32k"]
    out = pallet("builder", "inspect", "--type", "image", "--format",
                 "{{.OCIv1.OSVersion}} {{.OCIv1.OSFeatures}} {{.Docker.OSVersion}} {{.Docker.OSFeatures}}", "osv")
    assert out.stdout == "1.0 [win32k] 1.0 [win32k]"


def test_log_rusage(pallet, tmp_path):
    """buildah 1.28's lines: per stage, one before each instruction (the first: the base
    image's pull and working container) and one when the stage ends; none with --quiet;
    ``--rusage-logfile`` emptied first (buildah opens it O_TRUNC), only those lines in it."""
    import re

    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1 AS a\nRUN echo one\nFROM localhost/busybox:v1\n"
                         "COPY --from=a /bin/true /t\nENV x=1\nRUN echo two\n")
    want = re.compile(r"^\S+\(system\) \S+\(user\) \S+\(elapsed\) \S+ input \S+ output$", re.M)
    out = pallet("build", "--no-cache", "--log-rusage", ctx).stdout.splitlines()
    assert len([ln for ln in out if want.match(ln)]) == (1 + 1) + (3 + 1)  # instructions + the end, per stage
    # each instruction's STEP line comes after the line of what the one before used
    for i, ln in enumerate(out):
        if "STEP 2/" in ln or "STEP 3/" in ln or "STEP 4/" in ln:
            before = [x for x in out[:i] if "STEP" in x or want.match(x)]
            assert want.match(before[-1]), (ln, before[-2:])
    assert not want.findall(pallet("build", "--no-cache", "--log-rusage", "-q", ctx).stdout)
    log = tmp_path / "rusage.log"
    log.write_text("earlier\n")
    out = pallet("build", "--no-cache", "--log-rusage", "--rusage-logfile", str(log), ctx).stdout
    text = log.read_text()
    assert not want.findall(out) and "earlier" not in text
    assert len(want.findall(text)) == len(text.splitlines()) == 6  # the lines only
    # a RUN's CPU is counted in the line after it (the user time of a busy shell loop)
    busy = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done\n"
                          "ENV z=1\n")
    lines = [ln for ln in pallet("build", "--no-cache", "--log-rusage", busy).stdout.splitlines() if want.match(ln)]
    assert len(lines) == 3 and lines[1].split(") ")[1].split("(user)")[0] not in ("0s", "0ms"), lines


def test_step_lines_are_numbered_per_stage_as_buildah(pallet, tmp_path):
    df = "FROM localhost/busybox:v1 AS a\nRUN true\nFROM localhost/busybox:v1\nCOPY --from=a /bin/true /t\nENV x=1\n"
    lines = [ln for ln in pallet("build", _ctx(tmp_path, df)).stdout.splitlines() if "STEP" in ln]
    assert lines == ["[1/2] STEP 1/2: FROM localhost/busybox:v1 AS a", "[1/2] STEP 2/2: RUN true",
                     "[2/2] STEP 1/3: FROM localhost/busybox:v1", "[2/2] STEP 2/3: COPY --from=a /bin/true /t",
                     "[2/2] STEP 3/3: ENV x=1"]
    # stages not built (after the target, or unused) are not counted
    lines = [ln for ln in pallet("build", "--target", "a", _ctx(tmp_path, df + "FROM scratch\n")).stdout.splitlines()
             if "STEP" in ln]
    assert lines == ["STEP 1/2: FROM localhost/busybox:v1 AS a", "STEP 2/2: RUN true"]
    one = pallet("build", _ctx(tmp_path, "FROM localhost/busybox:v1\nENV y=2\n")).stdout.splitlines()
    assert one[:2] == ["STEP 1/2: FROM localhost/busybox:v1", "STEP 2/2: ENV y=2"]


def test_from_replaces_the_first_stages_base(pallet, tmp_path):
    pallet("build", "-t", "marked", _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo marked > /m\n"))
    df = "FROM localhost/nonexistent:v1 AS builder\nFROM localhost/busybox:v1\nCOPY --from=builder /m /m\nRUN cat /m\n"
    out = pallet("build", "--no-cache", "--from", "marked", _ctx(tmp_path, df)).stdout
    assert "[1/2] STEP 1/1: FROM marked AS builder" in out and "\nmarked\n" in out


def test_run_user_has_its_group_among_the_supplementary_ones(pallet, tmp_path):
    out = pallet("build", "--no-cache", _ctx(tmp_path, "FROM localhost/busybox:v1\nUSER 1000:1000\n"
                                                       "RUN grep Groups /proc/self/status\n")).stdout
    assert "Groups:\t1000" in out  # as buildah's RUN


def test_inspect_author_annotations_from_by_id_and_oci_warnings(pallet, tmp_path):
    iid = tmp_path / "iid"
    p = pallet("build", "-t", "mt", "--annotation", "test=a1,a2=z", "--iidfile", str(iid),
               _ctx(tmp_path, 'FROM scratch\nMAINTAINER kilroy\nSHELL ["/bin/bash", "-c"]\n'))
    assert "SHELL is not supported for OCI image format, [/bin/bash -c] will be ignored. Must use `docker` format" \
        in p.stderr
    out = pallet("builder", "inspect", "--type", "image", "--format",
                 '{{.Docker.Author}} {{.OCIv1.Author}} {{index .ImageAnnotations "test"}}', "mt").stdout
    assert out == "kilroy kilroy a1,a2=z"
    assert pallet("builder", "from", iid.read_text()).stdout.strip() == "mt-working-container"  # named as the image
    pallet("builder", "rm", "--all")


def test_secret_sources_as_buildah(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN --mount=type=secret,id=s cat /run/secrets/s; echo\n")
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = {"MYVAR": "from-myvar", "s": "from-s", "TMPDIR": str(tmp)}
    for flag, want in (("id=s,src=MYVAR,type=env", "from-myvar"), ("id=s,env=MYVAR", "from-myvar"),
                       ("id=s", "from-s")):
        assert want in pallet("build", "--no-cache", "--secret", flag, ctx, env=env).stdout, flag
    assert os.listdir(tmp) == []  # a variable's secret is never left in a file (it was, in /tmp)
    (tmp_path / "sfile").write_text("from-file")
    assert "from-file" in pallet("build", "--no-cache", "--secret", f"id=s,src={tmp_path}/sfile", ctx).stdout
    p = pallet("build", "--secret", "id=s,type=env,src=UNSET_VAR_X", ctx, check=False)
    assert p.returncode == 125 and "UNSET_VAR_X is not set" in p.stderr
    p = pallet("build", ctx, "extra", check=False)
    assert p.returncode == 125 and "accepts at most 1 arg(s), received 2" in p.stderr


def test_empty_run_and_mounts_from_stages_as_buildah(pallet, tmp_path):
    # an empty RUN runs the shell without a command: the shell's own error and status 2
    p = pallet("build", _ctx(tmp_path, "FROM localhost/busybox:v1\nCMD [\"pwd\"]\nRUN\n"), check=False)
    assert p.returncode == 2 and "-c requires an argument" in p.stderr, p.stderr
    assert 'building at STEP "RUN ": exit status 2' in p.stderr
    # RUN --mount=type=cache,from=STAGE: that stage's files (SOURCE in them) are the cache, writable
    df = ("FROM localhost/busybox:v1 AS builder\nRUN mkdir -p /sub/deeper && echo hello > /sub/deeper/h\n"
          "FROM localhost/busybox:v1\n"
          "RUN --mount=type=cache,from=builder,target=/t --mount=type=cache,from=builder,source=/sub/deeper,"
          "target=/t2 cat /t/sub/deeper/h /t2/h && echo scribble > /t2/h\n")
    p = pallet("build", "-t", "cf", _ctx(tmp_path, df))
    assert p.stdout.count("hello") >= 2, p.stdout
    assert "/t2" not in pallet.tree("cf") or pallet.tree("cf")["/t2"][0] == "d"
    # an image is no stage for a cache mount; an empty from= is buildah's error
    for line, said in (("RUN --mount=type=cache,from=localhost/busybox:v1,target=/t true",
                        "no stage found with name localhost/busybox:v1"),
                       ("RUN --mount=type=bind,source=.,from=,target=/t true", "from points to an empty value")):
        p = pallet("build", _ctx(tmp_path, f"FROM localhost/busybox:v1\n{line}\n"), check=False)
        assert p.returncode == 125 and said in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert pallet.containers() == [] and pallet.mounts() == []


def test_base_image_annotations_as_buildah(pallet, tmp_path):
    """OCI images committed on a base carry its digest and name (the image spec's annotations),
    through FROM STAGE too; --annotation wins; Docker manifests have no annotations."""
    base_rec = pallet.store().image("localhost/busybox:v1")
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1 AS base\nRUN true\nFROM base\n")
    pallet("build", "-t", "ann", ctx)
    m, _ = pallet.manifest("ann")
    assert m["annotations"] == {"org.opencontainers.image.base.digest": base_rec["digest"],
                                "org.opencontainers.image.base.name": "localhost/busybox:v1"}
    pallet("build", "-t", "ann2", "--annotation", "org.opencontainers.image.base.name=mine", ctx)
    assert pallet.manifest("ann2")[0]["annotations"]["org.opencontainers.image.base.name"] == "mine"
    pallet("build", "-t", "ann3", "--format", "docker", ctx)
    assert "annotations" not in pallet.manifest("ann3")[0]
    # builder from an image by ID (no name of its own) and commit: the digest, no name
    iid = pallet("build", "-q", _ctx(tmp_path, "FROM scratch\nLABEL a=b\n")).stdout.strip()
    ctr = pallet("builder", "from", iid).stdout.strip()
    pallet("builder", "commit", "--rm", ctr, "fromid")
    ann = pallet.manifest("fromid")[0]["annotations"]
    assert ann == {"org.opencontainers.image.base.digest": pallet.store().image(iid)["digest"]}


def test_final_image_is_the_last_steps_image_as_buildah(pallet, tmp_path):
    """--layers: the last step's image is the image (no copy differing in its creation time:
    `images -a` counts as buildah's); a base nothing changed is itself the image, named."""
    before = {r["id"] for r in pallet.store().images()}
    iid = pallet("build", "-q", "--layers", "-t", "one", _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN touch /x\n")
                 ).stdout.strip().splitlines()[-1]
    made = {r["id"] for r in pallet.store().images()} - before
    assert made == {iid}, made
    base_rec = pallet.store().image("localhost/busybox:v1")
    iid = pallet("build", "-q", "-t", "same", _ctx(tmp_path, "FROM localhost/busybox:v1\n")).stdout.strip()
    rec = pallet.store().image("same")
    assert iid == rec["id"] == base_rec["id"] and rec["digest"] == base_rec["digest"]
    iid = pallet("build", "-q", "--label", "x=y", "-t", "other", _ctx(tmp_path, "FROM localhost/busybox:v1\n")
                 ).stdout.strip()
    assert iid != base_rec["id"] and pallet.store().image("localhost/busybox:v1")["digest"] == base_rec["digest"]
    p = pallet("--log-level", "debug", "build", "--layers", _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN touch /x\n"))
    assert "Found a cache hit in the first iteration" in p.stderr  # buildah's debug line, which scripts grep


def test_several_files_bad_tag_and_output_said_first(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a", "more": "COPY a /b\n"})
    pallet("build", "-t", "two", "-f", "Dockerfile", "-f", "more", ctx)  # read as one Dockerfile
    assert {"/a", "/b"} <= set(pallet.tree("two"))
    before = {r["id"] for r in pallet.store().images()}
    for args, said in ((("--tag", "TEST1"), "tag TEST1: invalid reference format: repository name must be lowercase"),
                       (("--output", "type=tar,"), "invalid build output options"),
                       (("--output", "type=wrong,dest=x"), 'invalid type "wrong"'),
                       (("--output", "type=local,dest=-"), "type=local and dest=- is not supported"),
                       (("--authfile", "/nonexistent/auth.json"),
                        "checking authfile: stat /nonexistent/auth.json: no such file or directory")):
        p = pallet("build", *args, ctx, check=False)
        assert p.returncode == 125 and said in p.stderr and "STEP" not in p.stdout, (args, p.stderr)
    assert {r["id"] for r in pallet.store().images()} == before  # nothing built


def test_bud_caches_as_buildah_and_build_as_podman(pallet, tmp_path):
    """`bud` keeps buildah's default (--layers=false unless $BUILDAH_LAYERS), `build` podman's (true)."""
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN touch /x\n")
    pallet("build", ctx)
    assert "Using cache" in pallet("build", ctx).stdout
    assert "Using cache" not in pallet("bud", ctx).stdout
    assert "Using cache" in pallet("bud", ctx, env={"BUILDAH_LAYERS": "true"}).stdout
    assert "Using cache" not in pallet("build", ctx, env={"BUILDAH_LAYERS": "false"}).stdout
    assert "Using cache" in pallet("buildx", "build", "--load", ctx).stdout  # podman's alias, podman's default


def test_step_pull_and_unused_arg_lines_as_buildah(pallet, tmp_path, registry):
    ref = f"{registry.host}/build/step-lines:v1"
    pallet("push", "--tls-verify=false", "localhost/busybox:v1", f"docker://{ref}")
    ctx = _ctx(tmp_path, "ARG base\nFROM ${base}\nRUN true\n")
    out = pallet("build", "--tls-verify=false", "--build-arg", f"base={ref}", "--build-arg", "foo2=x", ctx).stdout
    lines = out.splitlines()
    assert lines[0] == f"STEP 1/2: FROM {ref}" and lines[1] == f"Trying to pull {ref}...", out
    assert "one or more build args were not consumed: [foo2]" in out
    p = pallet("pull", "--tls-verify=false", ref)  # podman's pull says it too, on stderr (not with -q)
    assert p.stderr.startswith(f"Trying to pull {ref}...\n"), p.stderr
    assert "Trying" not in pallet("pull", "-q", "--tls-verify=false", ref).stderr


def test_unset_arg_warning_and_debug_lines_as_buildah(pallet, tmp_path):
    ctx = _ctx(tmp_path, 'ARG S="x"\nFROM scratch\nARG S\nARG foo\nLABEL a=$foo\n')
    p = pallet("--log-level", "debug", "build", "--retry", "4", "--retry-delay", "5s", "--cache-ttl", "0", ctx)
    assert 'missing \\"foo\\" build argument. Try adding \\"--build-arg foo=<VALUE>\\"' in p.stderr, p.stderr
    assert '"S\\"' not in p.stderr and "S=<VALUE>" not in p.stderr
    assert "Setting MaxPullPushRetries to 4 and PullPushRetryDelay to 5s" in p.stderr
    assert "Setting --no-cache=true" in p.stderr
    assert "missing" not in pallet("build", "--build-arg", "foo=1", ctx).stderr


def test_copy_refusals_in_buildahs_words(pallet, tmp_path):
    for line, said in (("COPY https://example.com/x /", "source can't be a URL for COPY"),
                       ("COPY ../up.txt /", "possible escaping context directory error"),
                       ("COPY --chown=${BOGUS}:${BOGUS} f /", "looking up UID/GID for \":\": can't find uid for user")):
        p = pallet("build", _ctx(tmp_path, f"FROM localhost/busybox:v1\n{line}\n", {"f": "x"}), check=False)
        assert p.returncode == 125 and said in p.stderr and p.stderr.count("\n") == 1, (line, p.stderr)
    assert pallet.containers() == [] and pallet.mounts() == []


def test_secret_mount_relative_target_and_required_wording(pallet, tmp_path):
    (tmp_path / "s").write_text("SOMESECRETDATA\n")
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nWORKDIR /w\n"
                         "RUN --mount=type=secret,id=mysecret,target=mysecret cat /w/mysecret\n")
    assert "SOMESECRETDATA" in pallet("build", "--secret", f"id=mysecret,src={tmp_path / 's'}", ctx).stdout
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN --mount=type=secret,id=mysecret,required=true true\n")
    p = pallet("build", ctx, check=False)
    assert p.returncode == 125 and "secret required but no secret with id mysecret found" in p.stderr


def test_hooks_dir_runs_oci_hooks_for_run_steps(pallet, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script = hooks / "h"
    script.write_text(f"#!/bin/sh\necho \"$1\" >> {tmp_path / 'out'}\n")
    script.chmod(0o755)
    for name, when, arg in (("a.json", {"always": True}, "always"),
                            ("b.json", {"commands": [".*/nothere"]}, "never")):
        (hooks / name).write_text(json.dumps({"version": "1.0.0", "hook": {"path": str(script), "args": ["h", arg]},
                                              "when": when, "stages": ["prestart"]}))
    pallet("build", "--hooks-dir", str(hooks), _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN true\nRUN true\n"))
    assert (tmp_path / "out").read_text() == "always\nalways\n"  # once per RUN step, the other never
    (hooks / "c.json").write_text('{"version": "1.0.0", "hook": {"path": "rel"}, "when": {"always": true}, '
                                  '"stages": ["prestart"]}')
    p = pallet("build", "--hooks-dir", str(hooks), _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN true\n"),
               check=False)
    assert p.returncode == 125 and "c.json" in p.stderr and "hook.path" in p.stderr and "STEP" not in p.stdout


def test_arg_cache_by_what_steps_see_and_tar_on_stdout(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nARG FOO\nENV FOO=bat\nRUN echo $FOO\n")
    pallet("build", "--layers", "--build-arg", "FOO=1", ctx)
    assert "Using cache" in pallet("build", "--layers", "--build-arg", "FOO=12", ctx).stdout  # ENV overrides it
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nARG FOO\nRUN echo $FOO\n")
    pallet("build", "--layers", "--build-arg", "FOO=1", ctx)
    out = pallet("build", "--layers", "--build-arg", "FOO=12", ctx).stdout
    assert "Using cache" not in out and "12" in out
    # -o -: a tar of the image's files on stdout, nothing else there
    p = subprocess.run(pallet.args("build", "-o", "-", ctx), capture_output=True, env=pallet.env())
    assert p.returncode == 0
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tf:
        assert "bin/sh" in tf.getnames() or "./bin/sh" in tf.getnames()


def test_containers_conf_caps_and_ulimits_for_run_steps(pallet, tmp_path):
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\nnetns = "host"\ndefault_ulimits = ["nofile=500:500"]\n'
                    'default_capabilities = ["CHOWN", "KILL", "NET_RAW"]\n')
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN grep CapBnd /proc/self/status; ulimit -n\n")
    out = pallet("build", "--no-cache", ctx, env={"CONTAINERS_CONF": str(conf)}).stdout
    assert int(out.split("CapBnd:")[1].split()[0], 16) == (1 << 0) | (1 << 5) | (1 << 13), out
    assert "\n500\n" in out
    out = pallet("build", "--no-cache", "--ulimit", "nofile=600:600", ctx, env={"CONTAINERS_CONF": str(conf)}).stdout
    assert "\n600\n" in out
    conf.write_text('[containers]\ndefault_capabilities = ["NOPE"]\n')
    p = pallet("build", ctx, env={"CONTAINERS_CONF": str(conf)}, check=False)
    assert p.returncode == 125 and "default_capabilities" in p.stderr and "STEP" not in p.stdout


def test_errors_start_with_the_peers_words(pallet, tmp_path):
    """podman's scripts match 'Error: building at STEP' and 'Error: creating build container:': the
    Dockerfile's place comes after."""
    p = pallet("build", "--pull-never", _ctx(tmp_path, "FROM quay.io/libpod/nosuchimage:nosuchtag\nRUN true\n"),
               check=False)
    assert p.returncode == 125
    assert p.stderr.startswith("Error: creating build container: quay.io/libpod/nosuchimage:nosuchtag: image not known")
    p = pallet("build", _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY nothere /x\n"), check=False)
    assert p.returncode == 125 and p.stderr.startswith('Error: building at STEP "COPY nothere /x": ')
    assert p.stderr.rstrip().endswith("(Dockerfile:2)")


def test_repeated_stage_names_and_globs_matching_nothing_as_buildah(pallet, tmp_path):
    df = ("FROM localhost/busybox:v1 AS final\nRUN echo one > /which\n"
          "FROM localhost/busybox:v1 AS final\nRUN echo two > /which\n"
          "FROM final\nCOPY *foo *.txt /t/\n")
    ctx = _ctx(tmp_path, df, {"a.txt": "a"})
    out = pallet("build", "-t", "rep", "--layers=false", ctx).stdout  # the latest 'final'
    assert "/t/a.txt" in pallet.tree("rep") and "/which" in pallet.tree("rep")
    ctr = pallet("builder", "from", "rep").stdout.strip()
    assert pallet("builder", "run", ctr, "cat", "/which").stdout == "two\n", out
    pallet("builder", "rm", ctr)
    p = pallet("build", _ctx(tmp_path, "FROM localhost/busybox:v1\nCOPY *foo /t/\n"), check=False)
    assert p.returncode == 125 and "'*foo': no such file or directory" in p.stderr


def test_the_images_edits_are_cached_as_a_step(pallet, tmp_path):
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1 AS base\nRUN true\nFROM base\nCMD [\"/x\"]\n")
    ids = [pallet("build", "-q", "--layers", "--label", f"l={v}", ctx).stdout.strip() for v in ("1", "2", "1")]
    assert ids[0] == ids[2] != ids[1]  # buildah: the same labels on the same steps (CMD too), the same image


def test_run_steps_have_a_run_directory_that_stays(pallet, tmp_path):
    pallet("build", "-t", "runs", _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN touch /run/hello\n"))
    tree = pallet.tree("runs")
    assert tree["/run"][0] == "d" and "/run/hello" in tree and "/run/.containerenv" not in tree


def test_the_run_steps_runtime_flag_env_then_containers_conf(pallet, tmp_path):
    """buildah 1.28's order: --runtime, $PALLET_BUILD_RUNTIME / $BUILDAH_RUNTIME, containers.conf's
    [engine] runtime (a name its [engine.runtimes] table maps to a path), else pallet-runtime;
    one that is not there is podman's error naming where it came from (podman 070 "set runtime")."""
    import sys

    log = tmp_path / "ran"
    wrapper = tmp_path / "logging-runtime"
    real = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
    wrapper.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[containers]\nnetns = "host"\n[engine]\nruntime = "logged"\n'
                    f'[engine.runtimes]\nlogged = ["/nonexistent/logged", "{wrapper}"]\n')
    ctx = _ctx(tmp_path, "FROM localhost/busybox:v1\nRUN echo ran-it\n")
    env = {"CONTAINERS_CONF": str(conf), "PALLET_BUILD_RUNTIME": "", "BUILDAH_RUNTIME": ""}
    out = pallet("build", "--no-cache", ctx, env=env).stdout
    assert "ran-it" in out and log.read_text().strip()  # through the table's path
    log.write_text("")
    pallet("build", "--no-cache", "--runtime", real, ctx, env=env)  # the flag over the file
    assert log.read_text() == ""
    conf.write_text('[containers]\nnetns = "host"\n[engine]\nruntime = "idonotexist"\n')
    p = pallet("build", "--no-cache", ctx, env=env, check=False)
    assert p.returncode == 125, p.stderr
    assert f'OCI runtime "idonotexist" not found (containers.conf {conf}: [engine] runtime)' in p.stderr, p.stderr
    p = pallet("build", "--no-cache", ctx, env=dict(env, BUILDAH_RUNTIME="idonotexist2"), check=False)
    assert p.returncode == 125 and '"idonotexist2" not found ($BUILDAH_RUNTIME)' in p.stderr, p.stderr
    pallet("build", "--no-cache", ctx, env=dict(env, BUILDAH_RUNTIME="idonotexist2", PALLET_BUILD_RUNTIME=real))
    p = pallet("build", "--no-cache", "--runtime", "idonotexist3", ctx, env=env, check=False)
    assert p.returncode == 125 and '"idonotexist3" not found (use --runtime NAME|PATH)' in p.stderr, p.stderr
