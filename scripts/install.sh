#!/usr/bin/env bash
# Install everything pallet and its tests need on Debian 12 (as root), idempotently:
# the peer tools from Debian, a virtual environment in .venv, pallet itself (editable) with test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(python3-venv python3-dev gcc runc crun skopeo buildah podman umoci docker-registry conmon
          containernetworking-plugins busybox-static jq hyperfine apache2-utils iproute2 util-linux kmod time
          libseccomp2 mmdebstrap gnupg gpgv openssl libarchive-tools netavark aardvark-dns catatonit
          dpkg rpm golang-go unzip libcommons-io-java libcommons-cli-java systemd
          openscap-scanner ssg-debian ssg-debderived git uidmap slirp4netns
          squashfs-tools-ng squashfs-tools fakeroot)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# docker-registry's package starts a system instance on :5000; pallet's demo and tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e '.[test]' >&2
# setuptools is only needed to build (pip does that in an isolated environment); in the venv its
# .pth hook would run at every start of pallet
.venv/bin/python -m pip uninstall -q -y setuptools >&2 2>/dev/null || true
echo "pallet installed: $(.venv/bin/pallet --version)" >&2
