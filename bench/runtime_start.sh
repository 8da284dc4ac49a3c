#!/bin/sh
# Start-to-exit of /bin/true in a busybox bundle: pallet-runtime (console script in the venv)
# vs runc vs crun (crun wrapped for this machine's hybrid cgroups, see PEERS.md).
#
# Measured INTERLEAVED (pallet-runtime, runc, crun, pallet-runtime, runc, crun, ...): this
# machine's timing drifts by tens of percent over seconds, so running one tool's batch after
# the other's (hyperfine's way) compares different moments; medians and ratios are printed.
# PYTHONDONTWRITEBYTECODE is removed from the environment (a pip install precompiles).
# usage: bench/runtime_start.sh [RUNS]   (run as root; HYPERFINE=1 also runs hyperfine)
set -eu
RUNS=${1:-41}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PR=${PALLET_RUNTIME:-$HERE/.venv/bin/pallet-runtime}
W=$(mktemp -d /tmp/runtime-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
. "$HERE/bench/_runtime_bundle.sh"
cd "$W/bundle"
python3 - "$RUNS" "$PR" "$W" "$HERE" <<'PY'
import os, shutil, sys
runs, pr, w, here = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
tools = {"pallet-runtime": [pr, "--root", f"{w}/p", "run", "b"]}
if shutil.which("runc"):
    tools["runc"] = ["runc", "--root", f"{w}/r", "run", "b"]
if shutil.which("crun"):
    tools["crun"] = [f"{w}/crun", "--root", f"{w}/c", "run", "b"]
sys.path.insert(0, f"{here}/bench")
from _common import interleaved_medians
med = interleaved_medians(tools, runs, 3, env)  # the first 3 rounds warm the caches and are not counted
p = med["pallet-runtime"]
print(f"interleaved, {runs} runs each, medians:")
for name, m in med.items():
    print(f"{name:15s} median {m * 1000:7.1f} ms  pallet/{name} = {p / m:.2f}")
PY
if [ "${HYPERFINE:-0}" = 1 ]; then
  command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }
  env -u PYTHONDONTWRITEBYTECODE hyperfine -N --warmup 5 --runs "$RUNS" \
    -n pallet-runtime "$PR --root $W/p run b" \
    -n runc "runc --root $W/r run b" \
    -n crun "$W/crun --root $W/c run b" >&2
fi
