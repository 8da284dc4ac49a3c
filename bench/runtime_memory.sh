#!/bin/sh
# Memory of pallet-runtime vs runc vs crun: peak RSS of the runtime process for `run` of
# /bin/true, and RSS/PSS of a created-but-not-started container's init (what waits on
# exec.fifo). usage: bench/runtime_memory.sh   (run as root)
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
PR=${PALLET_RUNTIME:-$HERE/.venv/bin/pallet-runtime}
W=$(mktemp -d /tmp/runtime-mem.XXXXXX)
trap 'for r in "$PR" runc "$W/crun"; do "$r" --root "$W/s-$(basename $r)" delete --force m >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT
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
printf '%-15s %22s %26s\n' runtime "run: peak RSS (KiB)" "created init: RSS/PSS (KiB)"
for r in "$PR" runc "$W/crun"; do
    name=$(basename "$r")
    peak=$( { /usr/bin/time -f %M "$r" --root "$W/s-$name" run b >/dev/null; } 2>&1 | tail -1)
    "$r" --root "$W/s-$name" create m </dev/null >/dev/null 2>&1
    pid=$("$r" --root "$W/s-$name" state m | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
    rss=$(awk '/^Rss:/ {print $2}' /proc/$pid/smaps_rollup)
    pss=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)
    "$r" --root "$W/s-$name" delete --force m >/dev/null 2>&1
    printf '%-15s %22s %26s\n' "$name" "$peak" "$rss/$pss"
done
