#!/bin/sh
# `run --rm --network none IMAGE true`: pallet vs podman 4.3, the same OCI runtime (RUNTIME:
# pallet-runtime by default, or runc/crun), both on overlay stores in temp dirs, the demo busybox
# image (scripts/make-demo-image.py) in both. Measured INTERLEAVED (pallet, podman, pallet, ...),
# medians and the ratio printed; the target is pallet <= 0.8x podman. PYTHONDONTWRITEBYTECODE is
# removed (a pip install precompiles).
# usage: bench/containers_run.sh [RUNS] [RUNTIME]   (as root; NETWORK=bridge for the default network:
# then a detached container of each tool keeps its bridge up, so neither makes its bridge per run)
set -eu
RUNS=${1:-21}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RT=${2:-$HERE/.venv/bin/pallet-runtime}
NET=${NETWORK:-none}
W=/tmp/ctr-bench-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')  # lower case: podman names an oci: image by its path
mkdir -m 700 "$W"
cleanup() {
    "$HERE/.venv/bin/pallet" --root "$W/p" --runroot "$W/pr" rm -a -f -t 0 >/dev/null 2>&1 || true
    CONTAINERS_CONF="$W/c.conf" podman --root "$W/q" --runroot "$W/qr" rm -a -f -t 0 >/dev/null 2>&1 || true
    for m in $(awk -v w="$W/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
    rm -rf "$W"
}
trap cleanup EXIT
"$HERE/.venv/bin/python" -m compileall -q "$HERE/src/pallet" >/dev/null
python3 "$HERE/scripts/make-demo-image.py" "$W/layout" v1 >/dev/null
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$W/c.conf"
python3 - "$RUNS" "$RT" "$W" "$HERE" "$NET" <<'PY'
import os, subprocess, sys
runs, rt, w, here, net = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
env["CONTAINERS_CONF"] = f"{w}/c.conf"
pallet = [f"{here}/.venv/bin/pallet", "--root", f"{w}/p", "--runroot", f"{w}/pr"]
podman = ["podman", "--root", f"{w}/q", "--runroot", f"{w}/qr", "--storage-driver", "overlay", "--runtime", rt]
ids = [subprocess.run(tool + ["pull", "-q", f"oci:{w}/layout:v1"], check=True, capture_output=True, env=env,
                      text=True).stdout.split()[-1] for tool in (pallet, podman)]
tools = {"pallet": pallet + ["run", "--runtime", rt, "--network-config-dir", f"{w}/nets", "--rm", "--network", net,
                             ids[0], "true"],
         "podman": podman + ["run", "--rm", "--network", net, ids[1], "true"]}
if net == "bridge":  # each tool's bridge kept up by a container of its own, as a user's running one would
    subprocess.run(pallet + ["run", "-d", "--runtime", rt, "--network-config-dir", f"{w}/nets", "--network", net,
                             ids[0], "sleep", "3600"], check=True, capture_output=True, env=env)
    subprocess.run(podman + ["run", "-d", "--network", net, ids[1], "sleep", "3600"], check=True,
                   capture_output=True, env=env)
sys.path.insert(0, f"{here}/bench")
from _common import interleaved_medians
med = interleaved_medians(tools, runs, 2, env)  # the first 2 rounds warm the caches and are not counted
print(f"run --rm --network {net} IMAGE true, runtime {os.path.basename(rt)}, interleaved, {runs} runs each, medians:")
for name, m in med.items():
    print(f"  {name:7s} {m * 1000:7.1f} ms")
print(f"  pallet/podman {med['pallet'] / med['podman']:.2f} (target <= 0.80)")
PY
