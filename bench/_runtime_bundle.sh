# Sourced by the runtime benches: in $W (already made), a busybox bundle running /bin/true,
# and $W/crun, crun wrapped for this machine's hybrid cgroups (see PEERS.md). Needs $PR.
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
