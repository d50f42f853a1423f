#!/usr/bin/env bash
# Installs what the Strata benchmark needs on Debian/Ubuntu: fuse-overlayfs
# and fuse3 (the comparison target and the FUSE user-space tools), plus the
# tools the workloads shell out to. Idempotent: installs only what is
# missing. It does not run apt-get update (run it yourself first on a fresh
# machine if apt-get cannot find the packages).
set -euo pipefail

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "setup.sh: must run as root (or with sudo available)" >&2
		exit 1
	fi
fi

pkgs=(fuse-overlayfs fuse3 tar findutils coreutils procps kmod)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "setup.sh: installing ${missing[*]}"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Kernel side: FUSE and overlayfs (built in or as modules).
$SUDO modprobe fuse 2>/dev/null || true
$SUDO modprobe overlay 2>/dev/null || true
if [ ! -e /dev/fuse ]; then
	echo "setup.sh: /dev/fuse is missing (no FUSE in this kernel or container?)" >&2
	exit 1
fi
if ! grep -qw overlay /proc/filesystems; then
	echo "setup.sh: the kernel has no overlayfs" >&2
	exit 1
fi
for tool in fuse-overlayfs fusermount3 tar find; do
	command -v "$tool" >/dev/null || { echo "setup.sh: $tool not found after install" >&2; exit 1; }
done
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	echo "setup.sh: warning: no Go toolchain found; the benchmark needs one (go run ./bench, and /usr/local/go as the source tree)" >&2
fi
echo "setup.sh: ok ($(fuse-overlayfs --version 2>/dev/null | grep -m1 "^fuse-overlayfs" || true))"
