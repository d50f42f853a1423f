package overlay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

func TestNewConfigErrors(t *testing.T) {
	s := newStack(t, 1)
	for what, cfg := range map[string]overlay.Config{
		"no lowers":       {Upper: s.upper, Work: s.work},
		"upper, no work":  {Lowers: s.lowers, Upper: s.upper},
		"work, no upper":  {Lowers: s.lowers, Work: s.work},
		"missing lower":   {Lowers: []string{s.lower(0) + "/nothing"}},
		"missing upper":   {Lowers: s.lowers, Upper: s.upper + "/nothing", Work: s.work},
		"missing workdir": {Lowers: s.lowers, Upper: s.upper, Work: s.work + "/nothing"},
	} {
		if fs, err := overlay.New(cfg); err == nil {
			fs.Close()
			t.Errorf("%s: New succeeded", what)
		}
	}
}

// TestNewWorkDir: New makes workdir/work, empties it of a crash's
// leftovers, and refuses a second engine on the same work directory.
func TestNewWorkDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.work, "work/#1=partial copy", "work/#2/#3=", "!work/#4")
	fs := s.mount()
	wantWorkEmpty(t, s)
	if fs.ReadOnly() {
		t.Fatalf("ReadOnly() with an upper layer")
	}
	if fs2, err := overlay.New(s.config()); err == nil {
		fs2.Close()
		t.Fatalf("a second engine got the same work directory")
	}
	fs.Close()
	fs3, err := overlay.New(s.config())
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	fs3.Close()
}

// TestNewWorkDirLeftoversOnly: what an interrupted overlay leaves in
// workdir/work goes at mount, down to a directory holding files and empty
// directories; a deeper tree was not made by any overlay, so New refuses
// and removes nothing at all.
func TestNewWorkDirLeftoversOnly(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.work, "work/#1=partial copy", "work/#4/sub/", "!work/#5/x", "work/incompat/")
	s.mount()
	wantWorkEmpty(t, s)

	s2 := newStack(t, 1)
	build(t, s2.work, "work/#1=partial copy", "work/notes/2025/todo=keep me")
	wantRefused(t, s2, "work/notes/2025", "work/#1", "work/notes/2025/todo")
}

// wantRefused checks that New refuses the stack's work directory with an
// error naming what, and removes none of the paths keep.
func wantRefused(t *testing.T, s *stack, what string, keep ...string) {
	t.Helper()
	fs, err := overlay.New(s.config())
	if err == nil {
		fs.Close()
		t.Fatalf("New accepted a work directory it must refuse (%s)", what)
	}
	if !strings.Contains(err.Error(), what) {
		t.Errorf("error %q does not name %s", err, what)
	}
	for _, p := range keep {
		if _, err := os.Lstat(filepath.Join(s.work, p)); err != nil {
			t.Errorf("%s removed by a refused mount: %v", p, err)
		}
	}
}

// TestNewWorkDirKernelVolatile: after a kernel overlay mounted with
// volatile (workdir/work/incompat/volatile/dirty), the kernel refuses to
// mount the layers again until the marker is removed; so does New, and it
// removes nothing.
func TestNewWorkDirKernelVolatile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.work, "work/incompat/volatile/dirty=", "work/#1=partial copy")
	wantRefused(t, s, "volatile", "work/#1", "work/incompat/volatile/dirty")
	if err := os.RemoveAll(filepath.Join(s.work, "work", "incompat")); err != nil {
		t.Fatal(err)
	}
	s.mount()
	wantWorkEmpty(t, s)
}

// TestNewFreshWorkDir: the work directory is created as the kernel does.
func TestNewFreshWorkDir(t *testing.T) {
	s := newStack(t, 1)
	s.mount()
	if st := lstat(t, s.work+"/work"); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("workdir/work is not a directory")
	}
	if ents, _ := os.ReadDir(s.upper); len(ents) != 0 {
		t.Fatalf("New wrote into the upper layer")
	}
}

func TestRootAndStatfs(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(0), "a=")
	fs := s.mount()
	root := fs.Root()
	if root.ID() != overlay.RootID || !root.IsDir() || fs.Node(overlay.RootID) != root {
		t.Fatalf("root: ID %d dir %v", root.ID(), root.IsDir())
	}
	st, err := fs.Getattr(root)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != root.Ino() {
		t.Fatalf("Getattr(root): %o %d %v", st.Mode, st.Ino, err)
	}
	if ust := lstat(t, s.upper); st.Ino != ust.Ino {
		t.Fatalf("root ino %d, upper root's %d", st.Ino, ust.Ino)
	}
	sfs, err := fs.Statfs()
	if err != nil || sfs.Blocks == 0 {
		t.Fatalf("Statfs: %+v %v", sfs, err)
	}
	var want unix.Statfs_t
	unix.Statfs(s.upper, &want)
	if sfs.Type != want.Type || sfs.Blocks != want.Blocks {
		t.Fatalf("Statfs is not the upper layer's")
	}
}
