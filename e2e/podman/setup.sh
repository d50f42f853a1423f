#!/bin/sh
# Installs what the podman end-to-end test (e2e/podman) needs on Debian 12.
# Idempotent; run as root. It does not run `apt-get update`: CI does that once.
#
#   podman          the container engine under test (pulls in conmon,
#                   containernetworking-plugins, golang-github-containers-common)
#   runc            the OCI runtime the test configures (crun is not used)
#   busybox-static  the base image is made from its /bin/busybox, no registry
#   fuse3           fusermount3, which containers/storage uses to unmount
#   fuse-overlayfs  the reference mount program (STRATA_MOUNT_PROGRAM=/usr/bin/fuse-overlayfs)
set -eu

pkgs="podman runc busybox-static fuse3 fuse-overlayfs"

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi

if [ ! -c /dev/fuse ]; then
	echo "setup.sh: warning: no /dev/fuse; the podman e2e test cannot mount anything" >&2
fi
