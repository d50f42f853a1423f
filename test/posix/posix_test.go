// Package posix runs go-fuse's POSIX conformance suite (posixtest) against
// Strata mounts: in an empty overlay (everything lands in the upper
// layer), inside a directory merged from two lower layers, and with the
// kernel-facing daemon started from the binary.
package posix

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"github.com/stratafs/strata/internal/mounttest"
)

// notApplicable lists posixtest cases that do not apply to an overlay,
// with the reason. Every other case must pass.
var notApplicable = map[string]string{
	"FcntlFlockLocksFile": "expects two descriptors of one process to conflict on a POSIX record lock, " +
		"which is go-fuse loopback's OFD emulation; POSIX locks belong to the process, so ext4 and " +
		"kernel overlayfs grant the lock too (TestLockCaseOnPlainDir checks that)",
}

// TestLockCaseOnPlainDir backs the reason above: on a plain directory the
// case fails the same way, so a failure is not Strata's.
func TestLockCaseOnPlainDir(t *testing.T) {
	dir := t.TempDir()
	f1, err := os.Create(filepath.Join(dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	wlk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f1.Fd(), syscall.F_SETLK, &wlk); err != nil {
		t.Fatal(err)
	}
	f2, err := os.OpenFile(filepath.Join(dir, "test"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	rlk := syscall.Flock_t{Type: syscall.F_RDLCK}
	if err := syscall.FcntlFlock(f2.Fd(), syscall.F_SETLK, &rlk); err != nil {
		t.Fatalf("plain directory refused the lock (%v): the case would apply after all", err)
	}
}

func names() []string {
	var ns []string
	for n := range posixtest.All {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

func TestPosixUpper(t *testing.T) {
	for _, name := range names() {
		t.Run(name, func(t *testing.T) {
			if why, ok := notApplicable[name]; ok {
				t.Skip(why)
			}
			s := mounttest.NewStack(t, 2)
			s.Mount(t)
			posixtest.All[name](t, s.Mnt)
		})
	}
}

// TestPosixMergedDir runs the suite inside a directory that exists in
// both lower layers (with files of its own), so every name goes through
// the merge and every change copies the directory up first.
func TestPosixMergedDir(t *testing.T) {
	for _, name := range names() {
		t.Run(name, func(t *testing.T) {
			if why, ok := notApplicable[name]; ok {
				t.Skip(why)
			}
			s := mounttest.NewStack(t, 2)
			for i, l := range s.Lowers {
				// deep is empty in both lowers (the suite wants an empty
				// directory); its parent holds lower files.
				if err := os.MkdirAll(filepath.Join(l, "merged", "deep"), 0755); err != nil {
					t.Fatal(err)
				}
				mounttest.WriteFile(t, filepath.Join(l, "merged", "only"+string(rune('a'+i))), "x")
			}
			s.Mount(t)
			dir := filepath.Join(s.Mnt, "merged", "deep")
			if _, err := os.Stat(dir); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
		})
	}
}
