package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// inodeOf returns p's inode number and link count, not following symlinks.
func inodeOf(t *testing.T, p string) (ino uint64, nlink uint64) {
	t.Helper()
	st := lstat(t, p)
	return st.Ino, uint64(st.Nlink)
}

// TestWhiteoutsShareAnInode: every whiteout made (an unlink with and
// without an upper file, an rmdir, a rename) is a link to the work
// directory's shared whiteout, as the kernel makes them; a remount
// starts a new shared whiteout and leaves the old links as they are.
func TestWhiteoutsShareAnInode(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=1", "b=2", "u=lower", "d/x=3", "r=4")
	build(t, s.upper, "u=upper", "d/")
	fs := s.mount()
	root := fs.Root()
	d, _ := mustWalk(t, fs, "d")
	wantErrno(t, "unlink a", fs.Unlink(root, "a"), 0)
	wantErrno(t, "unlink b", fs.Unlink(root, "b"), 0)
	wantErrno(t, "unlink u", fs.Unlink(root, "u"), 0)
	wantErrno(t, "unlink d/x", fs.Unlink(d, "x"), 0)
	wantErrno(t, "rmdir d", fs.Rmdir(root, "d"), 0)
	wantErrno(t, "rename r", fs.Rename(root, "r", root, "r2", 0), 0)

	shared := s.work + "/work/" + overlay.SharedWhiteout
	wantWhiteout(t, shared)
	ino, _ := inodeOf(t, shared)
	whiteouts := []string{"a", "b", "u", "d"}
	for _, name := range whiteouts {
		p := s.upper + "/" + name
		wantWhiteout(t, p)
		if got, _ := inodeOf(t, p); got != ino {
			t.Errorf("%s: inode %d, want the shared whiteout's %d", name, got, ino)
		}
	}
	// The rename's whiteout is the filesystem's (RENAME_WHITEOUT): atomic.
	wantWhiteout(t, s.upper+"/r")
	// d/x's whiteout went with d (replaced by one whiteout).
	if _, n := inodeOf(t, shared); n != uint64(len(whiteouts))+1 {
		t.Errorf("shared whiteout has %d links, want %d", n, len(whiteouts)+1)
	}
	wantNames(t, "root", listDir(t, fs, root), "r2")
	wantWorkEmpty(t, s)

	// A new engine empties the work directory: the links stay whiteouts,
	// and the next whiteout starts a new shared one.
	fs.Close()
	fs = s.mount()
	root = fs.Root()
	wantAbsent(t, shared)
	wantNames(t, "root after remount", listDir(t, fs, root), "r2")
	wantErrno(t, "unlink r2", fs.Unlink(root, "r2"), 0)
	wantAbsent(t, s.upper+"/r2") // upper only: no whiteout needed
	build(t, s.lower(0), "c=5")
	wantErrno(t, "unlink c", fs.Unlink(root, "c"), 0)
	wantWhiteout(t, s.upper+"/c")
	ino2, n2 := inodeOf(t, s.upper+"/c")
	if ino2 == ino || n2 != 2 {
		t.Errorf("whiteout after remount: inode %d with %d links, want a new shared whiteout (not %d) with 2", ino2, n2, ino)
	}
	if _, n := inodeOf(t, s.upper+"/a"); n != uint64(len(whiteouts)) {
		t.Errorf("old whiteouts have %d links, want %d", n, len(whiteouts))
	}
	wantWorkEmpty(t, s)
}

// TestWhiteoutSharedFull: when the shared whiteout has as many links as
// the filesystem allows, it becomes the next whiteout itself and the one
// after starts a new shared whiteout.
func TestWhiteoutSharedFull(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=1", "b=2", "c=3")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "unlink a", fs.Unlink(root, "a"), 0)
	shared := s.work + "/work/" + overlay.SharedWhiteout
	ino, _ := inodeOf(t, shared)

	// Fill the shared whiteout up with links from beside the layers.
	links := filepath.Join(filepath.Dir(s.upper), "links")
	if err := os.Mkdir(links, 0755); err != nil {
		t.Fatal(err)
	}
	full := false
	for i := 0; i < 200000; i++ {
		err := unix.Link(shared, fmt.Sprintf("%s/%d", links, i))
		if err == unix.EMLINK {
			full = true
			break
		}
		if err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	if !full {
		t.Skip("this filesystem allows more than 200000 links: the shared whiteout cannot be filled")
	}
	wantErrno(t, "unlink b", fs.Unlink(root, "b"), 0)
	wantWhiteout(t, s.upper+"/b")
	if got, _ := inodeOf(t, s.upper+"/b"); got != ino {
		t.Errorf("b's whiteout is inode %d, want the full shared whiteout %d moved there", got, ino)
	}
	wantAbsent(t, shared)
	wantErrno(t, "unlink c", fs.Unlink(root, "c"), 0)
	wantWhiteout(t, s.upper+"/c")
	if got, n := inodeOf(t, s.upper+"/c"); got == ino || n != 2 {
		t.Errorf("c's whiteout: inode %d with %d links, want a new shared whiteout with 2", got, n)
	}
	wantNames(t, "root", listDir(t, fs, root))
	wantWorkEmpty(t, s)
}

// TestWhiteoutWithoutLinks: where the upper layer cannot link to the work
// directory (here a bind mount of it: same filesystem, another mount),
// every whiteout is a device node of its own.
func TestWhiteoutWithoutLinks(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=1", "b=2")
	if err := unix.Mount(s.upper, s.upper, "", unix.MS_BIND, ""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("bind mount of the upper layer: %v", err)
		}
		t.Skipf("bind mount of the upper layer: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(s.upper, unix.MNT_DETACH) })
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "unlink a", fs.Unlink(root, "a"), 0)
	wantErrno(t, "unlink b", fs.Unlink(root, "b"), 0)
	wantWhiteout(t, s.upper+"/a")
	wantWhiteout(t, s.upper+"/b")
	ia, na := inodeOf(t, s.upper+"/a")
	ib, nb := inodeOf(t, s.upper+"/b")
	if ia == ib || na != 1 || nb != 1 {
		t.Errorf("whiteouts a (inode %d, %d links) and b (%d, %d): want two of their own", ia, na, ib, nb)
	}
	wantNames(t, "root", listDir(t, fs, root))
}
