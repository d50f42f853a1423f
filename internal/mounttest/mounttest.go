// Package mounttest mounts real overlays for tests: Strata in-process
// through the strata API, Strata as a daemon through the built binary, and
// the kernel's overlayfs as the reference. Every mount is unmounted in
// t.Cleanup, also when the test fails.
//
// Tests need root and /dev/fuse. Without them a test skips, except under
// CI (CI set in the environment), where it fails: a test that cannot
// mount must never pass silently there.
package mounttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/mountopt"
	"golang.org/x/sys/unix"
)

// Require fails (under CI) or skips the test when mounts are impossible.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	default:
		if _, err := os.Stat("/dev/fuse"); err != nil {
			why = "no /dev/fuse"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("cannot mount (%s), and CI is set: refusing to skip", why)
	}
	t.Skipf("cannot mount: %s", why)
}

// Stack is a set of layer directories under one temporary directory.
type Stack struct {
	Dir    string
	Lowers []string // top-most first
	Upper  string
	Work   string
	Mnt    string
}

// NewStack makes nLowers empty lower layers, an upper, a work directory
// and a mount point.
func NewStack(t testing.TB, nLowers int) *Stack {
	t.Helper()
	dir := t.TempDir()
	s := &Stack{Dir: dir, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Mnt: filepath.Join(dir, "mnt")}
	for i := 0; i < nLowers; i++ {
		s.Lowers = append(s.Lowers, filepath.Join(dir, fmt.Sprintf("lower%d", i)))
	}
	for _, d := range append([]string{s.Upper, s.Work, s.Mnt}, s.Lowers...) {
		if err := os.MkdirAll(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Options returns Strata's options for the stack.
func (s *Stack) Options() *mountopt.Options {
	o := mountopt.DefaultOptions()
	o.Lowers = append([]string(nil), s.Lowers...)
	o.Upper, o.Work, o.Mountpoint = s.Upper, s.Work, s.Mnt
	o.Foreground = true
	o.Passthrough = Passthrough()
	o.Threaded = Threaded()
	o.Writeback = Writeback()
	return o
}

// Passthrough reports whether the tests run with -o passthrough
// (STRATA_TEST_PASSTHROUGH=1): every mount of a stack then uses it, and
// the suites check the same semantics through it.
func Passthrough() bool { return os.Getenv("STRATA_TEST_PASSTHROUGH") == "1" }

// Threaded reports whether the tests run with -o threaded=1
// (STRATA_TEST_THREADED=1): requests served several at a time instead of
// one by one.
func Threaded() bool { return os.Getenv("STRATA_TEST_THREADED") == "1" }

// Writeback reports whether the tests run with the writeback cache, the
// default; STRATA_TEST_WRITEBACK=0 runs them with -o writeback=0, every
// write(2) sent to the daemon as it happens.
func Writeback() bool { return os.Getenv("STRATA_TEST_WRITEBACK") != "0" }

// OptionString is the -o argument for the stack (with passthrough,
// threaded=1 and writeback=0 when the tests run with them).
func (s *Stack) OptionString() string {
	o := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(s.Lowers, ":"), s.Upper, s.Work)
	if Passthrough() {
		o += ",passthrough"
	}
	if Threaded() {
		o += ",threaded=1"
	}
	if !Writeback() {
		o += ",writeback=0"
	}
	return o
}

// Mount mounts Strata in-process on s.Mnt, for the rest of the test.
func (s *Stack) Mount(t testing.TB) *strata.Server {
	t.Helper()
	return MountOptions(t, s.Options())
}

// MountOptions mounts Strata in-process with o, for the rest of the test.
func MountOptions(t testing.TB, o *mountopt.Options) *strata.Server {
	t.Helper()
	Require(t)
	srv, err := strata.Mount(o)
	if err != nil {
		t.Fatalf("mount strata: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			if err := srv.Unmount(); err != nil {
				t.Errorf("unmount: %v", err)
				ForceUnmount(o.Mountpoint)
			}
		})
	})
	return srv
}

// MountKernel mounts kernel overlayfs over the stack on s.Mnt.
func (s *Stack) MountKernel(t testing.TB) {
	t.Helper()
	Require(t)
	KernelMount(t, s.Lowers, s.Upper, s.Work, s.Mnt)
}

// KernelMount mounts kernel overlayfs, for the rest of the test. An
// empty upper makes a read-only mount of the lowers.
func KernelMount(t testing.TB, lowers []string, upper, work, mnt string) {
	t.Helper()
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		t.Fatalf("mount -t overlay %s: %v", opts, err)
	}
	t.Cleanup(func() { ForceUnmount(mnt) })
}

// ForceUnmount unmounts mnt, retrying while busy, then lazily.
func ForceUnmount(mnt string) {
	for i := 0; i < 50; i++ {
		err := unix.Unmount(mnt, 0)
		if err == nil || err == unix.EINVAL || err == unix.ENOENT {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	unix.Unmount(mnt, unix.MNT_DETACH)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/strata once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "strata")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/stratafs/strata/cmd/strata").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RunTests runs a package's tests and then removes the binary Binary built,
// so a test run leaves nothing behind in the temporary directory. Packages
// that use Binary call it from TestMain: os.Exit(mounttest.RunTests(m)).
func RunTests(m *testing.M) int {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

// MountDaemon mounts the stack with the strata binary, as a user would,
// and unmounts it (ending the daemon) in cleanup.
func (s *Stack) MountDaemon(t testing.TB, extraOpts ...string) {
	t.Helper()
	s.MountDaemonEnv(t, nil, extraOpts...)
}

// MountDaemonEnv is MountDaemon with extra environment for the daemon.
func (s *Stack) MountDaemonEnv(t testing.TB, env []string, extraOpts ...string) {
	t.Helper()
	Require(t)
	bin := Binary(t)
	opts := s.OptionString()
	for _, o := range extraOpts {
		opts += "," + o
	}
	cmd := exec.Command(bin, "-o", opts, s.Mnt)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("strata -o %s %s: %v\n%s", opts, s.Mnt, err, out)
	}
	pid := daemonPid(bin, s.Mnt)
	t.Cleanup(func() {
		ForceUnmount(s.Mnt)
		waitGone(t, pid)
	})
}

// UnmountDaemon unmounts a daemon MountDaemon started and waits for it to
// exit: until it has, it holds the work directory, and a new mount of the
// same layers is refused.
func (s *Stack) UnmountDaemon(t testing.TB) {
	t.Helper()
	pid := daemonPid(Binary(t), s.Mnt)
	ForceUnmount(s.Mnt)
	waitGone(t, pid)
}

// daemonPid finds the strata daemon serving mnt.
func daemonPid(bin, mnt string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && args[0] == bin && args[len(args)-1] == mnt {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			return pid
		}
	}
	return 0
}

// waitGone waits for a daemon to exit after its unmount, and kills it if
// it does not.
func waitGone(t testing.TB, pid int) {
	if pid == 0 {
		return
	}
	for i := 0; i < 250; i++ {
		if unix.Kill(pid, 0) == unix.ESRCH || zombie(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("strata daemon %d still running 5 s after its unmount; killing it", pid)
	unix.Kill(pid, unix.SIGKILL)
}

// zombie reports whether pid has exited and waits to be reaped (a
// daemon's parent is whoever adopted it, which may take its time): it
// holds nothing any more.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Mounted reports whether mnt is a mount point in /proc/self/mountinfo,
// and with what file system type.
func Mounted(mnt string) (string, bool) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != mnt {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				return f[i+1], true
			}
		}
	}
	return "", false
}

// WriteFile writes a file, creating parents, failing the test on error.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0644); err != nil {
		t.Fatal(err)
	}
}
