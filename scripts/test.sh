#!/usr/bin/env bash
# Runs all of Strata's tests on this machine, as root: vet, the engine and
# the option parser under the race detector, then every package that mounts
# real file systems (Strata, kernel overlayfs, fuse-overlayfs, podman).
# Under CI (CI set) a test that cannot mount fails instead of skipping.
#
# Longer runs are one variable away (see README, "Longer runs").
set -euo pipefail
cd "$(dirname "$0")/.."
# Go lives in /usr/local/go on these machines; a non-interactive shell may
# not have it on PATH.
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
bash scripts/deps.sh

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi

echo "== engine and options, with the race detector"
go test -race -count=1 -timeout 15m ./overlay/ ./mountopt/

echo "== everything else, against real mounts"
mapfile -t pkgs < <(go list ./... | grep -v -e '/overlay$' -e '/mountopt$')
go test -count=1 -timeout 45m -p 2 "${pkgs[@]}"

echo "== the mount suites again, serving requests on several threads (-o threaded=1)"
STRATA_TEST_THREADED=1 go test -count=1 -timeout 30m -p 2 \
	./test/posix/ ./test/coherence/ ./difftest/ ./test/stress/

echo "== the mount suites again, every write sent through at once (-o writeback=0)"
STRATA_TEST_WRITEBACK=0 go test -count=1 -timeout 30m -p 2 \
	./test/posix/ ./test/coherence/ ./difftest/ ./test/stress/

echo "== the mount suites again, with -o passthrough"
STRATA_TEST_PASSTHROUGH=1 go test -count=1 -timeout 30m -p 2 \
	./fusefs/ ./test/posix/ ./test/coherence/ ./difftest/ ./test/stress/
