#!/bin/sh
# Start-to-exit of /bin/true in a busybox bundle: pallet-runtime (console script in the venv)
# vs runc vs crun (crun wrapped for this machine's hybrid cgroups, see PEERS.md). Needs hyperfine.
# usage: bench/runtime_start.sh [RUNS]   (run as root)
set -eu
RUNS=${1:-50}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PR=${PALLET_RUNTIME:-$HERE/.venv/bin/pallet-runtime}
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }
W=$(mktemp -d /tmp/runtime-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bundle/rootfs/bin"
cp /bin/busybox "$W/bundle/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/bundle/rootfs/bin/$a"; done
"$PR" spec --bundle "$W/bundle"
python3 - "$W/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False; c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=2)
PY
cat > "$W/crun" <<'SH'
#!/bin/sh
exec unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
SH
chmod +x "$W/crun"
cd "$W/bundle"
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/out.json" \
  -n pallet-runtime "$PR --root $W/p run b" \
  -n runc "runc --root $W/r run b" \
  -n crun "$W/crun --root $W/c run b" >&2
python3 - "$W/out.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
p = res["pallet-runtime"]["median"]
for name, r in res.items():
    print(f"{name:15s} median {r['median']*1000:7.1f} ms  mean {r['mean']*1000:7.1f} ms  pallet/{name} = {p/r['median']:.2f}")
PY
