#!/usr/bin/env bash
# Installs, from Debian's packages, what Strata's tests and tools need on a
# fresh machine: fuse3 (fusermount3), attr, the peers the tests and the
# benchmark compare against (fuse-overlayfs) and the container engine the
# end-to-end test drives (podman, runc, busybox-static). Idempotent: it
# runs `apt-get update` (once) only when something is missing.
set -euo pipefail

pkgs=(fuse3 attr util-linux procps kmod tar findutils coreutils
	fuse-overlayfs podman runc busybox-static)

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: run as root (mounting, whiteouts and trusted.* xattrs need it)" >&2
	exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The FUSE control filesystem lets tests abort a dead daemon's connection.
if [ -d /sys/fs/fuse/connections ] && ! mountpoint -q /sys/fs/fuse/connections; then
	mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null || true
fi
if [ ! -c /dev/fuse ]; then
	echo "deps.sh: /dev/fuse is missing: nothing can be mounted here" >&2
	exit 1
fi
