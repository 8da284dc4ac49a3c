#!/usr/bin/env bash
# Install everything, then show pallet's main job offline: make an image, run a registry on
# 127.0.0.1, push, inspect and copy the image between transports, and let skopeo read the results.
set -euo pipefail
cd "$(dirname "$0")/.."
# the test suite runs this demo too, with everything already installed
[ -n "${PALLET_DEMO_NO_INSTALL:-}" ] || ./scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d /tmp/pallet-demo.XXXXXX)
registry_pid=""
cleanup() {
    rc=$?
    set +e
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
    pallet --root "$work/store" image umount --all >/dev/null 2>&1
    grep -o " $work[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Make a busybox image offline (an OCI layout)"
python3 scripts/make-demo-image.py "$work/layout" demo
run pallet inspect --format '{{.Digest}} {{.Architecture}} {{.Layers}}' "oci:$work/layout:demo"

step "Start a registry on 127.0.0.1"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=1); break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("the registry did not start")
PY
reg="127.0.0.1:$port"

step "Push it, inspect it remotely, list its tags"
run pallet copy --dest-tls-verify=false "oci:$work/layout:demo" "docker://$reg/demo/busybox:1.0"
run pallet copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$reg/demo/busybox:1.0" "docker://$reg/demo/busybox:latest"
run pallet inspect --tls-verify=false "docker://$reg/demo/busybox:1.0"
run pallet list-tags --tls-verify=false "docker://$reg/demo/busybox"

step "Copy it out of the registry to every local format"
run pallet copy --src-tls-verify=false "docker://$reg/demo/busybox:1.0" "oci:$work/oci:1.0"
run pallet copy --src-tls-verify=false --format v2s2 "docker://$reg/demo/busybox:1.0" "docker-archive:$work/busybox.tar:demo/busybox:1.0"
run pallet copy --src-tls-verify=false --dest-compress-format zstd "docker://$reg/demo/busybox:1.0" "oci-archive:$work/busybox-zstd.tar"
run pallet copy --src-tls-verify=false "docker://$reg/demo/busybox:1.0" "dir:$work/dir"

step "skopeo reads what pallet wrote, with the same digests"
for ref in "docker://$reg/demo/busybox:1.0" "oci:$work/oci:1.0" "dir:$work/dir"; do
    echo "$ref: pallet $(pallet inspect --tls-verify=false --format '{{.Digest}}' "$ref")" \
         " skopeo $(skopeo inspect --tls-verify=false --format '{{.Digest}}' "$ref")"
done
run skopeo inspect --format '{{.Layers}}' "docker-archive:$work/busybox.tar"

step "Pull it into a local store (its own --root here) and look inside without running it"
store=(pallet --root "$work/store")
run "${store[@]}" pull --tls-verify=false "$reg/demo/busybox:1.0"
run "${store[@]}" images
mnt=$("${store[@]}" image mount "$reg/demo/busybox:1.0")
echo "mounted read-only at $mnt"
run cat "$mnt/etc/passwd"
run ls "$mnt/bin" | head -5
echo "\$ ${store[*]} rmi $reg/demo/busybox:1.0    # refused while mounted:"
"${store[@]}" rmi "$reg/demo/busybox:1.0" || echo "(exit code $?)"
run "${store[@]}" image umount "$reg/demo/busybox:1.0"
run "${store[@]}" tag "$reg/demo/busybox:1.0" mybusybox
run "${store[@]}" push --tls-verify=false mybusybox "$reg/demo/mybusybox:1"
run "${store[@]}" system check

step "Build an image from a Containerfile (RUN steps go through pallet-runtime) and run a command in it"
mkdir -p "$work/ctx"
cat > "$work/ctx/Containerfile" <<DOCKERFILE
FROM $reg/demo/busybox:1.0
RUN echo "hello from a pallet build" > /hello && ls /bin | wc -l > /applets
ENV GREETING=hi
CMD ["cat", "/hello"]
DOCKERFILE
run cat "$work/ctx/Containerfile"
run "${store[@]}" build --tls-verify=false -t demo-app "$work/ctx"
ctr=$("${store[@]}" builder from demo-app)
run "${store[@]}" builder run "$ctr" -- cat /hello
run "${store[@]}" builder rm "$ctr"
run "${store[@]}" rmi --all

step "Done: pallet pushed, inspected, copied, pulled, mounted, built and ran an image without a daemon"
