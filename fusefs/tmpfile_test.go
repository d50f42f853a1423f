package fusefs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"github.com/stratafs/strata/internal/treecmp"
	"golang.org/x/sys/unix"
)

// tmpfileSteps opens unnamed files (O_TMPFILE) in mnt/d, a lower
// directory, writes them, links one under two names, tries to link one
// made with O_EXCL and drops a third unlinked. It returns what each step
// saw, one line each.
func tmpfileSteps(t *testing.T, mnt string) []string {
	t.Helper()
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	fstat := func(what string, fd int) {
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		note("%s: mode %o nlink %d size %d %v", what, st.Mode, st.Nlink, st.Size, err)
	}
	fd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o640)
	if err != nil {
		t.Fatalf("open O_TMPFILE: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	fstat("unnamed", fd)
	note("linkat AT_EMPTY_PATH: %v", unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(mnt, "d", "a"), unix.AT_EMPTY_PATH))
	fstat("linked", fd)
	note("linkat /proc/self/fd: %v", unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, filepath.Join(mnt, "b"), unix.AT_SYMLINK_FOLLOW))
	if _, err := unix.Pwrite(fd, []byte("!"), 5); err != nil {
		t.Fatal(err)
	}
	fstat("linked twice", fd)

	excl, err := unix.Open(filepath.Join(mnt, "d"), unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("open O_TMPFILE|O_EXCL: %v", err)
	}
	note("linkat of an O_EXCL one: %v", unix.Linkat(excl, "", unix.AT_FDCWD, filepath.Join(mnt, "d", "excl"), unix.AT_EMPTY_PATH))
	unix.Close(excl)
	dropped, err := unix.Open(filepath.Join(mnt, "d"), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("open O_TMPFILE|O_WRONLY: %v", err)
	}
	unix.Write(dropped, []byte("dropped"))
	unix.Close(dropped)
	return out
}

// walk records what the tree under dir shows.
func walk(t *testing.T, dir string) treecmp.Tree {
	t.Helper()
	tr, err := treecmp.Walk(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTmpfile: O_TMPFILE works through the mount as through kernel
// overlayfs (which has it since Linux 6.6): an unnamed file in a lower
// directory, linked later by linkat(2), or never; the layers it leaves
// read the same through kernel overlayfs, and a file never linked leaves
// nothing behind (its node goes with the kernel's last reference).
func TestTmpfile(t *testing.T) {
	layer := func(s *mounttest.Stack) {
		mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "d", "f"), "lower")
	}
	k := mounttest.NewStack(t, 1)
	layer(k)
	k.MountKernel(t)
	want := tmpfileSteps(t, k.Mnt)
	wantTree := walk(t, k.Mnt)
	if wantTree["b"].Nlink != 2 || wantTree["d/a"].Hash != wantTree["b"].Hash {
		t.Fatalf("kernel overlayfs: b %+v, d/a %+v; want one file with two links", wantTree["b"], wantTree["d/a"])
	}

	s := mounttest.NewStack(t, 1)
	layer(s)
	srv := s.Mount(t)
	got := tmpfileSteps(t, s.Mnt)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Strata:\n\t%s\nkernel overlayfs:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if d := treecmp.Diff(walk(t, s.Mnt), wantTree, 20); len(d) > 0 {
		t.Errorf("Strata's tree and kernel overlayfs':\n\t%s", strings.Join(d, "\n\t"))
	}
	// The O_EXCL file and the dropped one are forgotten: only the root,
	// d and the linked file are left in the node table, besides what the
	// kernel still holds of f.
	deadline := time.Now().Add(5 * time.Second)
	for srv.FS.NodeCount() > 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.FS.NodeCount(); n > 4 {
		t.Errorf("%d nodes after the unnamed files were closed, want at most 4 (root, d, f, the linked file)", n)
	}
	if err := srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(filepath.Join(s.Work, "work")); err != nil || len(ents) > 0 {
		t.Errorf("work directory: %d entries, %v; want none", len(ents), err)
	}
	s.MountKernel(t)
	if d := treecmp.Diff(walk(t, s.Mnt), wantTree, 20); len(d) > 0 {
		t.Errorf("kernel overlayfs over Strata's layers and over its own:\n\t%s", strings.Join(d, "\n\t"))
	}
}

// TestTmpfileDefaultACL: an unnamed file made in a directory with a
// default ACL inherits it, as on kernel overlayfs (and as a file made
// with a name does).
func TestTmpfileDefaultACL(t *testing.T) {
	layer := func(s *mounttest.Stack) {
		d := filepath.Join(s.Lowers[0], "acl")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(d, "system.posix_acl_default", accessACL(65534), 0); err != nil {
			t.Fatalf("default ACL on the lower directory: %v", err)
		}
	}
	steps := func(mnt string) []string {
		fd, err := unix.Open(filepath.Join(mnt, "acl"), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o666)
		if err != nil {
			t.Fatalf("open O_TMPFILE: %v", err)
		}
		defer unix.Close(fd)
		if err := unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(mnt, "acl", "unnamed"), unix.AT_EMPTY_PATH); err != nil {
			t.Fatal(err)
		}
		mounttest.WriteFile(t, filepath.Join(mnt, "acl", "named"), "x")
		var out []string
		for _, name := range []string{"unnamed", "named"} {
			p := filepath.Join(mnt, "acl", name)
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			n, err := unix.Getxattr(p, "system.posix_acl_access", buf)
			if err != nil {
				n = 0
			}
			out = append(out, fmt.Sprintf("%s: mode %o, access ACL %x (%v)", name, st.Mode, buf[:n], err))
		}
		return out
	}
	k := mounttest.NewStack(t, 1)
	layer(k)
	k.MountKernel(t)
	want := steps(k.Mnt)
	s := mounttest.NewStack(t, 1)
	layer(s)
	s.Mount(t)
	if got := steps(s.Mnt); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Strata:\n\t%s\nkernel overlayfs:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
