#!/bin/sh
# Memory of pallet-runtime vs runc vs crun: peak RSS of the runtime process for `run` of
# /bin/true, and RSS/PSS of a created-but-not-started container's init (what waits on
# exec.fifo). usage: bench/runtime_memory.sh   (run as root)
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
PR=${PALLET_RUNTIME:-$HERE/.venv/bin/pallet-runtime}
W=$(mktemp -d /tmp/runtime-mem.XXXXXX)
trap 'for r in "$PR" runc "$W/crun"; do "$r" --root "$W/s-$(basename $r)" delete --force m >/dev/null 2>&1 || true; done; rm -rf "$W"' EXIT
. "$HERE/bench/_runtime_bundle.sh"
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
