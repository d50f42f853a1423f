package badinput

import (
	"context"
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
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(mounttest.RunTests(m)) }

// result is what one run of the strata command did.
type result struct {
	code   int // exit status; -1 when killed
	stdout string
	stderr string
}

// runStrata runs the binary with args in dir (the test's cwd when empty),
// failing the test if it does not end within 30 s.
func runStrata(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mounttest.Binary(t), args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("strata %q still running after 30 s", args)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("strata %q: %v", args, err)
	}
	return r
}

// ---- mounts and daemons ---------------------------------------------------

// mountsUnder lists the mount points at or below root, with their types.
func mountsUnder(root string) map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp != root && !strings.HasPrefix(mp, root+"/") {
			continue
		}
		typ := "?"
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				typ = f[i+1]
			}
		}
		out[mp] = typ
	}
	return out
}

// unescapeMountinfo undoes the octal escapes of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// daemonsUnder lists the pids of strata processes that name a path below
// root on their command line or hold a descriptor of one (the layers,
// when the command line had relative paths).
func daemonsUnder(t *testing.T, root string) map[int]string {
	bin := mounttest.Binary(t)
	out := map[int]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[0] != bin {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if zombie(pid) {
			continue
		}
		if strings.Contains(strings.Join(args[1:], " "), root) || holdsUnder(pid, root) {
			out[pid] = strings.Join(args, " ")
		}
	}
	return out
}

func holdsUnder(pid int, root string) bool {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, root+"/") {
			return true
		}
	}
	return false
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func waitDead(pid int, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if unix.Kill(pid, 0) == unix.ESRCH || zombie(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// mountStrata mounts with the binary (args as given, in dir) and returns
// the daemon's pid; cleanup unmounts and waits for the daemon to exit.
func mountStrata(t *testing.T, dir, mnt string, args ...string) int {
	t.Helper()
	near := filepath.Dir(mnt) // the layers are its neighbours in these tests
	before := daemonsUnder(t, near)
	r := runStrata(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("strata %q: exit %d: %s", args, r.code, r.stderr)
	}
	pid := 0
	for p := range daemonsUnder(t, near) {
		if _, ok := before[p]; !ok {
			pid = p
		}
	}
	t.Cleanup(func() {
		mounttest.ForceUnmount(mnt)
		if pid != 0 && !waitDead(pid, 10*time.Second) {
			t.Errorf("strata daemon %d still running 10 s after its unmount; killing it", pid)
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	if typ, ok := mounttest.Mounted(mnt); !ok || typ != "fuse.strata" {
		t.Fatalf("strata %q exited 0 but %s is not a strata mount (%q)", args, mnt, typ)
	}
	if pid == 0 {
		t.Fatalf("no daemon found for %s", mnt)
	}
	return pid
}

// mountTmpfs mounts a small tmpfs on dir for the rest of the test.
func mountTmpfs(t *testing.T, dir string, flags uintptr) {
	t.Helper()
	if err := os.MkdirAll(dir, 0755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size=8m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { mounttest.ForceUnmount(dir) })
}

// ---- snapshots of the layer directories -----------------------------------

// snapshotDirs describes everything below the given paths: type, mode,
// owner, size, mtime, content hash, symlink target and every xattr. It
// does not descend into FUSE or overlay mounts (live mounts a case made
// on purpose); a path that does not exist is recorded as such.
func snapshotDirs(paths ...string) map[string]string {
	skip := map[string]bool{}
	for mp, typ := range mountsUnder("/") {
		if typ == "overlay" || strings.HasPrefix(typ, "fuse") {
			skip[mp] = true
		}
	}
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		if _, done := out[p]; done {
			return
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			out[p] = "lstat: " + errName(err)
			return
		}
		desc := fmt.Sprintf("mode %o owner %d:%d size %d mtime %d.%09d", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		if skip[p] {
			out[p] = "a live mount"
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			sum, err := hashFile(p)
			if err != nil {
				sum = errName(err)
			}
			desc += " sha256 " + sum
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" rdev %d", st.Rdev)
		}
		desc += " xattrs " + xattrs(p)
		out[p] = desc
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			ents, err := os.ReadDir(p)
			if err != nil {
				out[p] += " readdir: " + errName(err)
				return
			}
			for _, e := range ents {
				walk(filepath.Join(p, e.Name()))
			}
		}
	}
	for _, p := range paths {
		walk(p)
	}
	return out
}

func xattrs(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "<" + errName(err) + ">"
	}
	var xs []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			xs = append(xs, name+"=<"+errName(err)+">")
			continue
		}
		xs = append(xs, fmt.Sprintf("%s=%q", name, v[:vn]))
	}
	sort.Strings(xs)
	return strings.Join(xs, ",")
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

func diffSnapshots(before, after map[string]string) []string {
	var out []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			out = append(out, fmt.Sprintf("%s: gone (was %s)", p, b))
		} else if a != b {
			out = append(out, fmt.Sprintf("%s: was %s, now %s", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			out = append(out, fmt.Sprintf("%s: new (%s)", p, a))
		}
	}
	sort.Strings(out)
	return out
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
