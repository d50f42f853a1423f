#!/usr/bin/env bash
# Quick start: installs what Strata needs, builds it, makes an example
# overlay of two lower layers and mounts it on /tmp/strata-demo/merged.
# Run as root. Unmount with: umount /tmp/strata-demo/merged
set -euo pipefail
cd "$(dirname "$0")/.."
# Go lives in /usr/local/go on these machines; a non-interactive shell may
# not have it on PATH.
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
bash scripts/deps.sh
go build -o bin/strata ./cmd/strata

demo=${STRATA_DEMO:-/tmp/strata-demo}
if mountpoint -q "$demo/merged" 2>/dev/null; then
	umount "$demo/merged"
fi
rm -rf "$demo"
mkdir -p "$demo"/{base,app,upper,work,merged}
echo "from the base layer" >"$demo/base/hello.txt"
echo "base version" >"$demo/base/config"
mkdir -p "$demo/base/etc" && echo "base" >"$demo/base/etc/motd"
echo "app version (shadows base)" >"$demo/app/config"
mkdir -p "$demo/app/etc" && echo "app" >"$demo/app/etc/app.conf"

bin/strata -o "lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work" "$demo/merged"

echo "Mounted: $(grep " $demo/merged " /proc/mounts)"
echo
echo "Merged view of $demo/merged:"
ls -la "$demo/merged" "$demo/merged/etc"
cat <<MSG

Try:  echo change >> $demo/merged/hello.txt   # copied up into $demo/upper
      rm $demo/merged/config                  # leaves a whiteout in $demo/upper
      ls -la $demo/upper
Then: umount $demo/merged
      mount -t overlay overlay -o lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work $demo/merged
      (the kernel's overlayfs shows the same tree)
MSG
