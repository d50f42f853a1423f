//go:build linux

// Package podman is an end-to-end test of a FUSE overlay mount program under
// a real podman: containers/storage runs `PROGRAM -o OPTS TARGET`, waits for
// it to exit and expects the mount to be live by then.
//
// Everything podman stores or configures lives in one temporary directory:
// storage (--root, --runroot), containers.conf (CONTAINERS_CONF),
// storage.conf (CONTAINERS_STORAGE_CONF), podman's tmp dir, events log and
// network config dir. The host's /etc/containers is never written. The base
// image is a busybox root filesystem made from the local busybox-static
// package and brought in with `podman import`: no registry is involved.
//
// Environment:
//
//	STRATA_MOUNT_PROGRAM  the mount program to test. Default: cmd/strata,
//	                      built by the test with `go build`.
//	                      /usr/bin/fuse-overlayfs is the reference.
//	STRATA_EXPECT_FSTYPE  the fstype the container's root must have.
//	                      Default: "fuse." + the program's base name
//	                      (fuse.strata, fuse.fuse-overlayfs).
//	STRATA_E2E_UIDMAP     set to 0 to skip the --uidmap subtest.
//	CI                    when set, a missing podman (or runc, /dev/fuse,
//	                      root) fails the test instead of skipping it.
//
// Run (as root): go test ./e2e/podman/ -run . -v -count=1
package podman

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	envMountProgram = "STRATA_MOUNT_PROGRAM"
	envExpectFSType = "STRATA_EXPECT_FSTYPE"
	envUIDMap       = "STRATA_E2E_UIDMAP"

	baseImage = "localhost/strata-e2e/base:latest"

	// Timeouts for one podman invocation.
	shortTimeout = 60 * time.Second
	buildTimeout = 180 * time.Second
)

// harness is one podman installation confined to a temporary directory.
type harness struct {
	podmanPath   string
	dir          string // everything lives under here
	root         string // --root (graphroot)
	runroot      string // --runroot
	mountProgram string
	fstype       string   // expected fstype of a container's root, e.g. fuse.strata
	globalArgs   []string // flags that go before every podman subcommand
	environ      []string
}

// requireOrSkip skips the test when something it needs is missing, or fails
// it when running in CI, where the setup script must have installed it.
func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this is a failure; run e2e/podman/setup.sh)", msg)
	}
	t.Skip(msg)
}

func TestPodman(t *testing.T) {
	start := time.Now()
	podmanPath, err := exec.LookPath("podman")
	if err != nil {
		requireOrSkip(t, "podman is not installed: %v", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		requireOrSkip(t, "runc is not installed: %v", err)
	}
	if os.Geteuid() != 0 {
		requireOrSkip(t, "the podman e2e test runs as root only (euid %d)", os.Geteuid())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		requireOrSkip(t, "no /dev/fuse: %v", err)
	}

	h := newHarness(t, podmanPath, mountProgram(t))
	h.checkInfo(t)
	h.importBase(t)
	t.Logf("setup took %v", time.Since(start).Round(time.Millisecond))

	t.Run("RootIsServedByMountProgram", h.testRootFSType)
	t.Run("RunReadWrite", h.testRunReadWrite)
	t.Run("ModifyLowerFile", h.testModifyLower)
	t.Run("DeleteCommitRun", h.testDeleteCommit)
	t.Run("RecreateDirCommit", h.testRecreateDirCommit)
	t.Run("BuildContainerfile", h.testBuild)
	t.Run("DetachedStopRestart", h.testDetachedRestart)
	t.Run("UIDMap", h.testUIDMap)

	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// mountProgram returns the mount program under test: $STRATA_MOUNT_PROGRAM,
// or cmd/strata built from this module.
func mountProgram(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envMountProgram); p != "" {
		abs, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("%s=%q: %v", envMountProgram, p, err)
		}
		abs, err = filepath.Abs(abs)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mount program: %s (from $%s)", abs, envMountProgram)
		return abs
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("$%s is not set and there is no go tool to build cmd/strata: %v", envMountProgram, err)
	}
	out := filepath.Join(t.TempDir(), "strata")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "github.com/stratafs/strata/cmd/strata")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the mount program (set $%s=/usr/bin/fuse-overlayfs to test the reference instead):\n$ %s\n%s%v",
			envMountProgram, strings.Join(cmd.Args, " "), b, err)
	}
	t.Logf("mount program: %s (built from cmd/strata)", out)
	return out
}

func newHarness(t *testing.T, podmanPath, mp string) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-podman-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		podmanPath:   podmanPath,
		dir:          dir,
		root:         filepath.Join(dir, "root"),
		runroot:      filepath.Join(dir, "runroot"),
		mountProgram: mp,
		fstype:       os.Getenv(envExpectFSType),
	}
	if h.fstype == "" {
		h.fstype = "fuse." + filepath.Base(mp)
	}
	// Registered before anything can be mounted, so it runs last of all.
	t.Cleanup(func() { h.cleanup(t) })

	for _, d := range []string{h.root, h.runroot, "tmp", "net", "nocni", "runroot/overlay"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Only for this test: run with runc (crun refuses the hybrid cgroup
	// layout here), cgroupfs (no systemd), no network at all (and no CNI
	// plugins, so anything that tries to build a network fails instead of
	// touching the host's), limits root can actually grant, no pulls, and
	// every scratch path under dir.
	containersConf := fmt.Sprintf(`# written by the strata podman e2e test
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %[1]q
tmp_dir = %[2]q
image_copy_tmp_dir = %[2]q
pull_policy = "never"

[network]
network_backend = "cni"
network_config_dir = %[3]q
cni_plugin_dirs = [%[4]q]
`, filepath.Join(dir, "tmp", "events.log"), filepath.Join(dir, "tmp"),
		filepath.Join(dir, "net"), filepath.Join(dir, "nocni"))
	// podman drops storage.conf's driver options as soon as --root or
	// --runroot is given, so the mount program is also passed with
	// --storage-opt below; the file still documents the whole setup and
	// serves the conmon cleanup processes.
	storageConf := fmt.Sprintf(`# written by the strata podman e2e test
[storage]
driver = "overlay"
graphroot = %q
runroot = %q

[storage.options.overlay]
mount_program = %q
`, h.root, h.runroot, mp)
	writeFile(t, filepath.Join(dir, "containers.conf"), containersConf)
	writeFile(t, filepath.Join(dir, "storage.conf"), storageConf)
	// containers/storage caches whether the kernel can make idmapped mounts
	// here. When it can, the Debian 12 podman also idmaps the lower layers
	// for a --uidmap container and still passes uidmapping= to the mount
	// program: ownership is shifted twice (see NOTES.md). Saying "no" keeps
	// the ID shifting to the mount program alone. It matters only to the
	// UIDMap subtest.
	writeFile(t, filepath.Join(dir, "runroot", "overlay", "idmapped-lower-dir-false"), "")

	h.globalArgs = []string{
		"--root", h.root,
		"--runroot", h.runroot,
		"--storage-driver", "overlay",
		"--storage-opt", "overlay.mount_program=" + mp,
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONTAINERS_") || strings.HasPrefix(kv, "CONTAINER_HOST=") ||
			strings.HasPrefix(kv, "CONTAINER_CONNECTION=") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		h.environ = append(h.environ, kv)
	}
	h.environ = append(h.environ,
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)
	t.Logf("podman env: CONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s TMPDIR=%s",
		filepath.Join(dir, "containers.conf"), filepath.Join(dir, "storage.conf"), filepath.Join(dir, "tmp"))
	t.Logf("podman global flags: %s", shellJoin(h.globalArgs))
	return h
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// exec runs podman with the harness' flags and environment. It never hangs
// for longer than timeout (plus a short grace for leftover pipe holders).
func (h *harness) exec(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.podmanPath, append(append([]string{}, h.globalArgs...), args...)...)
	cmd.Env = h.environ
	cmd.Dir = h.dir
	var so, se bytes.Buffer
	cmd.Stdout = &so
	cmd.Stderr = &se
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return so.String(), se.String(), err
}

// run runs podman and fails the test, with the command and both outputs, if
// it does not exit 0. It returns stdout.
func (h *harness) run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	began := time.Now()
	out, errOut, err := h.exec(timeout, args...)
	t.Logf("$ podman %s  (%v)", shellJoin(args), time.Since(began).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("podman %s: %v\nfull command: podman %s\n--- stdout ---\n%s--- stderr ---\n%s",
			shellJoin(args), err, shellJoin(append(append([]string{}, h.globalArgs...), args...)), out, errOut)
	}
	return out
}

// podman is run with the default timeout.
func (h *harness) podman(t *testing.T, args ...string) string {
	t.Helper()
	return h.run(t, shortTimeout, args...)
}

// remove removes a stopped container. Right after `podman run` returns,
// podman's own cleanup may still hold the container's shm mount, and rm
// then fails with EBUSY: retry for a few seconds.
func (h *harness) remove(t *testing.T, name string) {
	t.Helper()
	for i := 0; ; i++ {
		_, stderr, err := h.exec(shortTimeout, "rm", name)
		if err == nil || i > 0 && strings.Contains(stderr, "no such container") {
			return // gone: an earlier try removed it before reporting the busy mount
		}
		if i == 20 {
			h.podman(t, "rm", name) // fails the test with the full output
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkInfo makes sure podman really uses the overlay driver with our mount
// program: a silently ignored storage option would otherwise let the kernel's
// overlayfs pass every test.
func (h *harness) checkInfo(t *testing.T) {
	t.Helper()
	out := h.podman(t, "info", "--format", "{{json .Store}}")
	var store struct {
		GraphDriverName string
		GraphRoot       string
		RunRoot         string
		GraphOptions    map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &store); err != nil {
		t.Fatalf("podman info: %v\n%s", err, out)
	}
	if store.GraphDriverName != "overlay" || store.GraphRoot != h.root || store.RunRoot != h.runroot {
		t.Fatalf("podman info: driver %q root %q runroot %q; want overlay %q %q",
			store.GraphDriverName, store.GraphRoot, store.RunRoot, h.root, h.runroot)
	}
	var mp struct{ Executable, Version string }
	if raw, ok := store.GraphOptions["overlay.mount_program"]; !ok {
		t.Fatalf("podman info: no overlay.mount_program in graph options: %s", out)
	} else if err := json.Unmarshal(raw, &mp); err != nil {
		t.Fatalf("podman info: overlay.mount_program: %v: %s", err, raw)
	}
	if mp.Executable != h.mountProgram {
		t.Fatalf("podman uses mount program %q, want %q", mp.Executable, h.mountProgram)
	}
	t.Logf("mount program version (from podman info): %s", strings.ReplaceAll(mp.Version, "\n", "; "))
}

// importBase makes a busybox root filesystem tarball and imports it.
func (h *harness) importBase(t *testing.T) {
	t.Helper()
	tarball := filepath.Join(h.dir, "rootfs.tar")
	if err := writeRootfs(tarball); err != nil {
		if os.Getenv("CI") == "" && errors.Is(err, errNoBusybox) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	h.podman(t, "import", "--quiet", tarball, baseImage)
}

var errNoBusybox = errors.New("no statically linked busybox (install busybox-static)")

// fixture is the content of /e2e in the base image.
var fixture = []struct {
	name, content string
	mode          int64
}{
	{"e2e/lower.txt", "lower-original\n", 0o644},
	{"e2e/mode.txt", "mode\n", 0o644},
	{"e2e/rename-me.txt", "rename\n", 0o644},
	{"e2e/delete-me.txt", "delete\n", 0o644},
	{"e2e/keep.txt", "keep\n", 0o644},
	{"e2e/deldir/a.txt", "a\n", 0o644},
	{"e2e/deldir/sub/b.txt", "b\n", 0o644},
	{"e2e/opaque/old1.txt", "old1\n", 0o644},
	{"e2e/opaque/old2.txt", "old2\n", 0o644},
	{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644},
	{"etc/group", "root:x:0:\nnobody:x:65534:\n", 0o644},
}

func findBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p, nil
		}
	}
	return "", errNoBusybox
}

// writeRootfs writes a tar of a minimal root filesystem: a static busybox
// with its applet symlinks, /etc/passwd and /etc/group, and the /e2e fixture.
func writeRootfs(name string) error {
	bb, err := findBusybox()
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w", bb, err)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "." || d == "" || dirs[d] {
			return nil
		}
		if err := addDir(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		mode := int64(0o755)
		if d == "tmp" || d == "var/tmp" {
			mode = 0o1777
		}
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: mtime})
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev", "run", "var/tmp", "e2e"} {
		if err := addDir(d); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	seen := map[string]bool{"bin/busybox": true}
	for sc.Scan() {
		p := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "/")
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		if err := addDir(filepath.Dir(p)); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return err
		}
	}
	if !seen["bin/sh"] {
		return fmt.Errorf("%s --list-full has no bin/sh", bb)
	}
	for _, fx := range fixture {
		if err := addDir(filepath.Dir(fx.name)); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fx.name, Mode: fx.mode, Size: int64(len(fx.content)), ModTime: mtime}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(fx.content)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// ---- the scenarios ----

func (h *harness) testRootFSType(t *testing.T) {
	out := h.podman(t, "run", "--rm", baseImage, "cat", "/proc/self/mountinfo")
	fstype, ok := rootFSType(out)
	if !ok {
		t.Fatalf("no / in the container's mountinfo:\n%s", out)
	}
	if fstype != h.fstype {
		t.Fatalf("container root fstype %q, want %q; mountinfo:\n%s", fstype, h.fstype, out)
	}
}

// rootFSType finds the fstype of the mount at / in a mountinfo text.
func rootFSType(mountinfo string) (string, bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) >= 5 && lf[4] == "/" && len(rf) >= 1 {
			return rf[0], true
		}
	}
	return "", false
}

func (h *harness) testRunReadWrite(t *testing.T) {
	script := `set -e
cat /e2e/lower.txt
echo written > /tmp/new.txt
cat /tmp/new.txt
mkdir -p /var/x/y
echo deep > /var/x/y/z
cat /var/x/y/z
ln -s /tmp/new.txt /tmp/sym
cat /tmp/sym
ln /tmp/new.txt /tmp/hard
stat -c %h /tmp/new.txt
head -c 4194304 /dev/urandom > /tmp/big
cp /tmp/big /tmp/big2
a=$(md5sum < /tmp/big); b=$(md5sum < /tmp/big2)
[ "$a" = "$b" ] && echo same-md5
stat -c %s /tmp/big2
echo end`
	out := h.podman(t, "run", "--rm", baseImage, "sh", "-c", script)
	expectLines(t, out, "lower-original", "written", "deep", "written", "2", "same-md5", "4194304", "end")
}

func (h *harness) testModifyLower(t *testing.T) {
	const name = "e2e-modify"
	script := `set -e
echo appended >> /e2e/lower.txt
chmod 600 /e2e/mode.txt
mv /e2e/rename-me.txt /e2e/renamed.txt
cat /e2e/lower.txt
stat -c %a /e2e/mode.txt
ls /e2e`
	out := h.podman(t, "run", "--name", name, baseImage, "sh", "-c", script)
	expectLines(t, out, "lower-original", "appended", "600",
		"deldir", "delete-me.txt", "keep.txt", "lower.txt", "mode.txt", "opaque", "renamed.txt")

	// containers/storage reads the upper layer itself: the changes must be
	// there in the overlay format it understands.
	diff := h.podman(t, "diff", name)
	for _, want := range []string{"C /e2e/lower.txt", "C /e2e/mode.txt", "A /e2e/renamed.txt", "D /e2e/rename-me.txt"} {
		if !containsLine(diff, want) {
			t.Errorf("podman diff %s: no %q line in:\n%s", name, want, diff)
		}
	}

	// The lower layer itself is untouched.
	out = h.podman(t, "run", "--rm", baseImage, "sh", "-c", "cat /e2e/lower.txt; stat -c %a /e2e/mode.txt; ls /e2e")
	expectLines(t, out, "lower-original", "644",
		"deldir", "delete-me.txt", "keep.txt", "lower.txt", "mode.txt", "opaque", "rename-me.txt")
	h.remove(t, name)
}

func (h *harness) testDeleteCommit(t *testing.T) {
	const name = "e2e-delete"
	const committed = "localhost/strata-e2e/deleted:latest"
	script := `set -e
rm /e2e/delete-me.txt
rm -r /e2e/deldir
ls -A /e2e
test -e /e2e/deldir/a.txt && echo VISIBLE-deldir-a
test -e /e2e/delete-me.txt && echo VISIBLE-delete-me
echo end`
	out := h.podman(t, "run", "--name", name, baseImage, "sh", "-c", script)
	expectLines(t, out, "keep.txt", "lower.txt", "mode.txt", "opaque", "rename-me.txt", "end")

	h.podman(t, "commit", "--quiet", name, committed)
	h.remove(t, name)

	check := `ls -A /e2e
test -e /e2e/deldir && echo RESURRECTED-deldir
test -e /e2e/deldir/sub/b.txt && echo RESURRECTED-deldir-b
test -e /e2e/delete-me.txt && echo RESURRECTED-delete-me
mkdir /e2e/deldir && ls -A /e2e/deldir
echo end`
	out = h.podman(t, "run", "--rm", committed, "sh", "-c", check)
	expectLines(t, out, "keep.txt", "lower.txt", "mode.txt", "opaque", "rename-me.txt", "end")

	// A second generation: delete in a container of the committed image,
	// commit again, and make sure everything deleted so far stays deleted.
	const name2 = "e2e-delete2"
	const committed2 = "localhost/strata-e2e/deleted2:latest"
	h.podman(t, "run", "--name", name2, committed, "sh", "-c", "rm /e2e/keep.txt && rm -r /e2e/opaque")
	h.podman(t, "commit", "--quiet", name2, committed2)
	h.remove(t, name2)
	out = h.podman(t, "run", "--rm", committed2, "sh", "-c",
		"ls -A /e2e; test -e /e2e/opaque/old1.txt && echo RESURRECTED-old1; echo end")
	expectLines(t, out, "lower.txt", "mode.txt", "rename-me.txt", "end")

	// The base image still has everything.
	out = h.podman(t, "run", "--rm", baseImage, "ls", "-A", "/e2e")
	expectLines(t, out, "deldir", "delete-me.txt", "keep.txt", "lower.txt", "mode.txt", "opaque", "rename-me.txt")
}

// testRecreateDirCommit removes a directory of a lower layer and makes a new
// one of the same name: the new one is opaque, none of the old children may
// show through, neither in the container nor in the committed image.
// podman commits through a mount program with a "naive diff" that walks the
// container's mount and the parent's and lstat()s every name it saw in
// either, so a lookup that finds a hidden lower entry resurrects it.
func (h *harness) testRecreateDirCommit(t *testing.T) {
	const name = "e2e-recreate"
	const committed = "localhost/strata-e2e/recreated:latest"
	probe := `ls -A /e2e/opaque
test -e /e2e/opaque/old1.txt && echo VISIBLE-old1
test -e /e2e/opaque/old2.txt && echo VISIBLE-old2
cat /e2e/opaque/new.txt
echo end`
	out := h.podman(t, "run", "--name", name, baseImage, "sh", "-c",
		"set -e; rm -r /e2e/deldir; rm -r /e2e/opaque; mkdir /e2e/opaque; echo fresh > /e2e/opaque/new.txt; set +e\n"+probe)
	want := []string{"new.txt", "fresh", "end"}
	h.expectLinesKnownBug(t, out, want...)
	h.podman(t, "commit", "--quiet", name, committed)
	h.remove(t, name)
	out = h.podman(t, "run", "--rm", committed, "sh", "-c", probe)
	h.expectLinesKnownBug(t, out, want...)
}

// expectLinesKnownBug is expectLines, except that with fuse-overlayfs (the
// reference, which has this bug: lookups in a directory that was removed and
// made again still find the old lower entries; upstream issue 324 of
// containers/fuse-overlayfs) a mismatch skips the test instead of failing it.
func (h *harness) expectLinesKnownBug(t *testing.T, out string, want ...string) {
	t.Helper()
	got := strings.TrimRight(out, "\n")
	if got == strings.Join(want, "\n") {
		return
	}
	if h.fstype == "fuse.fuse-overlayfs" {
		t.Skipf("known fuse-overlayfs bug (lower entries visible in a re-created directory), output:\n%s", got)
	}
	expectLines(t, out, want...)
}

func (h *harness) testBuild(t *testing.T) {
	const built = "localhost/strata-e2e/built:latest"
	ctxDir := filepath.Join(h.dir, "build")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "added.txt"), "from-context\n")
	writeFile(t, filepath.Join(ctxDir, "Containerfile"), `FROM `+baseImage+`
RUN mkdir -p /built && echo one > /built/one.txt
COPY added.txt /built/added.txt
RUN echo two >> /built/one.txt && rm /e2e/delete-me.txt && echo changed > /e2e/lower.txt
RUN rm -r /e2e/deldir && mv /e2e/keep.txt /built/kept.txt && cat /built/one.txt /built/added.txt > /built/copy.txt
RUN test ! -e /e2e/deldir && test ! -e /e2e/delete-me.txt && grep -q two /built/one.txt
`)
	h.run(t, buildTimeout, "build", "--network", "none", "--pull=never", "--quiet",
		"-t", built, "-f", filepath.Join(ctxDir, "Containerfile"), ctxDir)
	out := h.podman(t, "run", "--rm", built, "sh", "-c",
		"cat /built/one.txt /built/copy.txt /built/kept.txt /e2e/lower.txt; ls -A /e2e; echo end")
	expectLines(t, out, "one", "two", "one", "two", "from-context", "keep", "changed",
		"lower.txt", "mode.txt", "opaque", "rename-me.txt", "end")
}

func (h *harness) testDetachedRestart(t *testing.T) {
	const name = "e2e-detached"
	script := `trap 'exit 0' TERM
echo boot >> /boots
while :; do sleep 1; done`
	h.podman(t, "run", "-d", "--name", name, baseImage, "sh", "-c", script)
	defer h.exec(shortTimeout, "rm", "-f", "-t", "0", name) // best effort; the cleanup checks too

	waitBoots := func(n int) {
		t.Helper()
		var out string
		ok := waitFor(20*time.Second, func() bool {
			o, _, err := h.exec(shortTimeout, "exec", name, "cat", "/boots")
			out = o
			return err == nil && strings.Count(o, "boot") == n
		})
		if !ok {
			t.Fatalf("waiting for %d boot lines in /boots, last saw %q", n, out)
		}
	}
	waitBoots(1)
	merged := strings.TrimSpace(h.podman(t, "inspect", "--format", "{{.GraphDriver.Data.MergedDir}}", name))
	h.expectMounted(t, merged)

	h.podman(t, "exec", name, "sh", "-c", "echo kept > /state.txt && mkdir -p /d/e && echo f > /d/e/f && rm /e2e/keep.txt")
	h.podman(t, "stop", "-t", "10", name)
	if st := strings.TrimSpace(h.podman(t, "inspect", "--format", "{{.State.Status}}", name)); st != "exited" {
		t.Fatalf("after stop: state %q, want exited", st)
	}
	// Stopping unmounts the container's root (the mount program's daemon
	// must let go of it).
	if !waitFor(15*time.Second, func() bool { _, ok := findMount(merged); return !ok }) {
		m, _ := findMount(merged)
		t.Fatalf("%s still mounted (%s) after podman stop", merged, m.fstype)
	}

	h.podman(t, "start", name)
	waitBoots(2)
	h.expectMounted(t, merged)
	out := h.podman(t, "exec", name, "sh", "-c", "cat /state.txt /d/e/f; test -e /e2e/keep.txt && echo RESURRECTED-keep; echo end")
	expectLines(t, out, "kept", "f", "end")
	h.podman(t, "stop", "-t", "10", name)
	h.remove(t, name)
}

func (h *harness) testUIDMap(t *testing.T) {
	if os.Getenv(envUIDMap) == "0" {
		t.Skipf("%s=0: --uidmap (uidmapping=/gidmapping= options) not tested", envUIDMap)
	}
	const name = "e2e-uidmap"
	script := `set -e
stat -c %u:%g /bin/busybox /e2e/lower.txt
echo x > /new.txt
chown 5:5 /new.txt
stat -c %u:%g /new.txt
echo y >> /e2e/lower.txt
stat -c %u:%g /e2e/lower.txt
echo $(cat /proc/self/uid_map)`
	out := h.podman(t, "run", "--name", name, "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", baseImage, "sh", "-c", script)
	expectLines(t, out, "0:0", "0:0", "5:5", "0:0", "0 100000 65536")
	// With a mount program, the upper layer keeps the IDs the container sees
	// (containers/storage does not shift them again when it commits).
	upper := strings.TrimSpace(h.podman(t, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name))
	for file, want := range map[string]uint32{"new.txt": 5, "e2e/lower.txt": 0} {
		fi, err := os.Lstat(filepath.Join(upper, file))
		if err != nil {
			t.Errorf("upper layer: %v", err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != want || st.Gid != want {
			t.Errorf("upper layer %s is owned by %d:%d on disk, want %d:%d", file, st.Uid, st.Gid, want, want)
		}
	}
	h.remove(t, name)
}

// ---- helpers ----

// expectLines checks that out is exactly the given lines.
func expectLines(t *testing.T, out string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func containsLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type mountEntry struct {
	mountpoint, fstype string
}

// mounts reads /proc/self/mountinfo, in mount order.
func mounts() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ms []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 1 {
			continue
		}
		ms = append(ms, mountEntry{mountpoint: unescapeMount(lf[4]), fstype: rf[0]})
	}
	return ms, nil
}

// unescapeMount undoes the octal escapes (\040 ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func findMount(mountpoint string) (mountEntry, bool) {
	ms, err := mounts()
	if err != nil {
		return mountEntry{}, false
	}
	var found mountEntry
	ok := false
	for _, m := range ms {
		if m.mountpoint == mountpoint {
			found, ok = m, true // the last one is the one on top
		}
	}
	return found, ok
}

// expectMounted checks on the host that mountpoint is a mount of the mount
// program under test.
func (h *harness) expectMounted(t *testing.T, mountpoint string) {
	t.Helper()
	m, ok := findMount(mountpoint)
	if !ok {
		t.Fatalf("%s is not mounted on the host", mountpoint)
	}
	if m.fstype != h.fstype {
		t.Fatalf("%s is mounted with fstype %q, want %q", mountpoint, m.fstype, h.fstype)
	}
}

// cleanup removes every container and image, unmounts whatever is left under
// the harness directory and removes it.
func (h *harness) cleanup(t *testing.T) {
	if h.podmanPath != "" {
		for _, args := range [][]string{{"rm", "-af", "-t", "0"}, {"rmi", "-af"}} {
			if out, errOut, err := h.exec(shortTimeout, args...); err != nil {
				t.Logf("cleanup: podman %s: %v\n%s%s", shellJoin(args), err, out, errOut)
			}
		}
	}
	h.unmountAll(t)
	if left := h.mountsUnder(); len(left) > 0 {
		t.Errorf("cleanup: still mounted under %s: %v; not removing it", h.dir, left)
		return
	}
	if err := os.RemoveAll(h.dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func (h *harness) mountsUnder() []mountEntry {
	ms, err := mounts()
	if err != nil {
		return nil
	}
	var under []mountEntry
	for _, m := range ms {
		if m.mountpoint == h.dir || strings.HasPrefix(m.mountpoint, h.dir+"/") {
			under = append(under, m)
		}
	}
	return under
}

// unmountAll unmounts everything under the harness directory, newest and
// deepest first: FUSE mounts with fusermount3 -u (so that their daemons
// exit), anything else (podman's shm mounts, the private bind mount
// containers/storage makes of root/overlay) with umount(2), lazily if need be.
func (h *harness) unmountAll(t *testing.T) {
	for round := 0; round < 3; round++ {
		under := h.mountsUnder()
		if len(under) == 0 {
			return
		}
		// Reverse mount order; within that, deeper paths first.
		idx := make([]int, len(under))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool {
			da := strings.Count(under[idx[a]].mountpoint, "/")
			db := strings.Count(under[idx[b]].mountpoint, "/")
			if da != db {
				return da > db
			}
			return idx[a] > idx[b]
		})
		for _, i := range idx {
			m := under[i]
			t.Logf("cleanup: unmounting %s (%s)", m.mountpoint, m.fstype)
			if strings.HasPrefix(m.fstype, "fuse") {
				if err := exec.Command("fusermount3", "-u", m.mountpoint).Run(); err == nil {
					continue
				}
			}
			if err := syscall.Unmount(m.mountpoint, 0); err != nil {
				if err := syscall.Unmount(m.mountpoint, syscall.MNT_DETACH); err != nil {
					t.Logf("cleanup: unmount %s: %v", m.mountpoint, err)
				}
			}
		}
	}
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]{}!#~") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
