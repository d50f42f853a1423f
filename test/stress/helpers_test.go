package stress

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// daemon is a strata process serving a mount in the foreground (-f), its
// stderr kept in a file: on a hang, SIGQUIT makes it dump its goroutines
// there.
type daemon struct {
	cmd    *exec.Cmd
	mnt    string
	stderr string
	stats  string
	done   chan struct{}
	state  *os.ProcessState
}

// startDaemon mounts the stack with `strata -f` and waits until the mount
// serves. Cleanup unmounts it and checks that the daemon exited cleanly.
func startDaemon(t *testing.T, s *mounttest.Stack) *daemon {
	t.Helper()
	mounttest.Require(t)
	d := &daemon{mnt: s.Mnt, stderr: filepath.Join(s.Dir, "daemon.stderr"), stats: filepath.Join(s.Dir, "stats.json"), done: make(chan struct{})}
	errf, err := os.Create(d.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	d.cmd = exec.Command(mounttest.Binary(t), "-f", "-o", s.OptionString(), s.Mnt)
	d.cmd.Env = append(os.Environ(), "STRATA_STATS_FILE="+d.stats)
	d.cmd.Stdout, d.cmd.Stderr = errf, errf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		d.state = d.cmd.ProcessState
		close(d.done)
	}()
	t.Cleanup(func() { d.stop(t) })
	end := time.Now().Add(20 * time.Second)
	for {
		if typ, ok := mounttest.Mounted(s.Mnt); ok && typ == "fuse.strata" {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("strata -f exited before mounting: %v\n%s", d.state, d.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(end) {
			t.Fatalf("strata -f did not mount in 20 s\n%s", d.log())
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.stderr)
	return string(b)
}

func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// dump asks a hung daemon for its goroutines and returns them.
func (d *daemon) dump() string {
	if !d.alive() {
		return "(the daemon is gone)"
	}
	d.cmd.Process.Signal(unix.SIGQUIT)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
	}
	return d.log()
}

// unmount unmounts and waits for a clean exit: status 0 and its counters
// written.
func (d *daemon) unmount(t *testing.T) {
	t.Helper()
	var err error
	for i := 0; i < 100; i++ {
		if err = unix.Unmount(d.mnt, 0); err == nil || err == unix.EINVAL {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil && err != unix.EINVAL {
		t.Fatalf("unmount %s: %v", d.mnt, err)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the daemon still runs 20 s after its unmount:\n%s", d.dump())
	}
	if !d.state.Success() {
		t.Fatalf("the daemon ended badly: %v\n%s", d.state, d.log())
	}
	if _, err := os.Stat(d.stats); err != nil {
		t.Errorf("the daemon left no counters: %v", err)
	}
}

func (d *daemon) stop(t *testing.T) {
	if d.alive() {
		mounttest.ForceUnmount(d.mnt)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("strata daemon %d still running 10 s after its unmount; killing it", d.pid())
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	if _, ok := mounttest.Mounted(d.mnt); ok {
		mounttest.ForceUnmount(d.mnt)
	}
}

// fdCount counts a process's open descriptors.
func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// procStatus returns a field of /proc/PID/status, such as VmRSS.
func procStatus(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// findDaemon finds the strata process serving mnt from /proc/*/cmdline.
func findDaemon(t *testing.T, mnt string) int {
	t.Helper()
	bin := mounttest.Binary(t)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && args[0] == bin && args[len(args)-1] == mnt {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no strata daemon found for %s", mnt)
	return 0
}

// ---- tree snapshots -------------------------------------------------------

// entry is what a walk shows of one path: type, size and content hash
// for files, target for symlinks.
type entry struct {
	typ  uint32
	size int64
	sum  string
	err  string
}

func (e entry) String() string {
	if e.err != "" {
		return "error " + e.err
	}
	switch e.typ {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink -> " + e.sum
	case unix.S_IFREG:
		return fmt.Sprintf("file size %d sha %.16s", e.size, e.sum)
	}
	return fmt.Sprintf("type %o", e.typ)
}

type tree map[string]entry

func snapshot(root string) tree {
	t := tree{}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t[rel] = entry{err: "lstat " + errName(err)}
			return
		}
		e := entry{typ: st.Mode & unix.S_IFMT}
		switch e.typ {
		case unix.S_IFREG:
			e.size = st.Size
			sum, n, err := hashFile(p)
			e.sum = sum
			if err != nil {
				e.err = "read " + errName(err)
			} else if n != st.Size {
				e.err = fmt.Sprintf("read %d bytes of %d", n, st.Size)
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				e.err = "readlink " + errName(err)
			}
			e.sum = target
		case unix.S_IFDIR:
			f, err := os.Open(p)
			if err != nil {
				e.err = "opendir " + errName(err)
				break
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				e.err = "readdir " + errName(err)
			}
			for _, n := range names {
				walk(filepath.Join(rel, n))
			}
		}
		t[rel] = e
	}
	walk("")
	delete(t, "")
	return t
}

func hashFile(p string) (string, int64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", 0, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil)), n, err
}

func diffTrees(a, b tree, aName, bName string) []string {
	var out []string
	for k, x := range a {
		if y, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%s: only in %s (%v)", k, aName, x))
		} else if x != y {
			out = append(out, fmt.Sprintf("%s: %s has %v, %s has %v", k, aName, x, bName, y))
		}
	}
	for k, y := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s: only in %s (%v)", k, bName, y))
		}
	}
	sort.Strings(out)
	return out
}

func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) == 0 {
		return
	}
	n := len(diffs)
	if n > 30 {
		diffs = append(diffs[:30], fmt.Sprintf("... and %d more", n-30))
	}
	t.Errorf("%s (%d differences):\n  %s", what, n, strings.Join(diffs, "\n  "))
}

func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if err == nil {
		return "OK"
	}
	return err.Error()
}
