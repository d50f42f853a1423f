package overlay_test

import (
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

func TestUnlinkLowerOnly(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower", "d/keep=")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	f, _, _ := fs.Lookup(d, "f")
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	wantWhiteout(t, s.upper+"/d/f")
	wantAbsent(t, s.upper+"/d/keep")
	if got := fs.Stats().CopyUps; got != 1 {
		t.Fatalf("CopyUps %d, want 1 (the parent only)", got)
	}
	_, _, err := fs.Lookup(d, "f")
	wantErrno(t, "lookup after unlink", err, unix.ENOENT)
	// The kernel may still have it open: its lower file answers.
	if st, err := fs.Getattr(f); err != nil || st.Size != 5 {
		t.Fatalf("getattr of the unlinked node: size %d, %v", st.Size, err)
	}
	wantNames(t, "d", listDir(t, fs, d), "keep")
	if got := fileContent(t, s.lower(0)+"/d/f"); got != "lower" {
		t.Fatalf("lower file changed")
	}
	wantErrno(t, "second unlink", fs.Unlink(d, "f"), unix.ENOENT)
	wantWorkEmpty(t, s)
}

func TestUnlinkUpperOverLower(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "f=bottom")
	build(t, s.upper, "f=upper", "g=upper") // g exists in no lower layer
	build(t, s.lower(0), "h=h")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "unlink f", fs.Unlink(root, "f"), 0)
	wantWhiteout(t, s.upper+"/f")
	wantErrno(t, "unlink g", fs.Unlink(root, "g"), 0)
	wantAbsent(t, s.upper+"/g")
	wantNames(t, "root", listDir(t, fs, root), "h")
	for _, name := range []string{"f", "g"} {
		_, _, err := fs.Lookup(root, name)
		wantErrno(t, "lookup "+name, err, unix.ENOENT)
	}
	wantWorkEmpty(t, s)
}

// TestUnlinkInOpaqueDir: below an opaque directory nothing shows, so
// removing leaves no whiteout.
func TestUnlinkInOpaqueDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower")
	build(t, s.upper, "d/*", "d/f=upper")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	wantAbsent(t, s.upper+"/d/f")
	wantNames(t, "d", listDir(t, fs, d))
}

func TestRemoveWrongKind(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/", "f=")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "unlink of a directory", fs.Unlink(root, "d"), unix.EISDIR)
	wantErrno(t, "rmdir of a file", fs.Rmdir(root, "f"), unix.ENOTDIR)
	wantErrno(t, "unlink of nothing", fs.Unlink(root, "nothing"), unix.ENOENT)
	wantErrno(t, "rmdir of nothing", fs.Rmdir(root, "nothing"), unix.ENOENT)
	if ents, _ := os.ReadDir(s.upper); len(ents) != 0 {
		t.Fatalf("failed removals changed the upper layer")
	}
}

// TestRmdirMergedWithWhiteouts: a merged directory that is empty in the
// merged view, its upper part full of whiteouts, is replaced by one
// whiteout.
func TestRmdirMergedWithWhiteouts(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/a=", "d/b=", "d/sub/")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	wantErrno(t, "unlink a", fs.Unlink(d, "a"), 0)
	wantErrno(t, "rmdir d (b left)", fs.Rmdir(fs.Root(), "d"), unix.ENOTEMPTY)
	wantErrno(t, "unlink b", fs.Unlink(d, "b"), 0)
	wantErrno(t, "rmdir sub", fs.Rmdir(d, "sub"), 0)
	for _, n := range []string{"a", "b", "sub"} {
		wantWhiteout(t, s.upper+"/d/"+n)
	}
	wantErrno(t, "rmdir d", fs.Rmdir(fs.Root(), "d"), 0)
	wantWhiteout(t, s.upper+"/d")
	_, _, err := fs.Lookup(fs.Root(), "d")
	wantErrno(t, "lookup d", err, unix.ENOENT)
	_, _, err = fs.Lookup(d, "a")
	wantErrno(t, "lookup in removed d", err, unix.ENOENT)
	wantWorkEmpty(t, s)
	if ents, _ := os.ReadDir(s.upper); len(ents) != 1 {
		t.Fatalf("upper holds %d entries, want the whiteout only", len(ents))
	}
}

// TestRmdirNotEmpty: a lower entry still shows, so rmdir fails, and
// nothing is copied up for it.
func TestRmdirNotEmpty(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "p/d/deep=")
	build(t, s.lower(0), "p/d/")
	build(t, s.upper, "u/f=")
	fs := s.mount()
	p, _ := mustWalk(t, fs, "p")
	wantErrno(t, "rmdir p/d", fs.Rmdir(p, "d"), unix.ENOTEMPTY)
	wantErrno(t, "rmdir p", fs.Rmdir(fs.Root(), "p"), unix.ENOTEMPTY)
	wantErrno(t, "rmdir u", fs.Rmdir(fs.Root(), "u"), unix.ENOTEMPTY)
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("a failed rmdir copied %d objects up", got)
	}
	wantAbsent(t, s.upper+"/p")
	wantKind(t, s.upper+"/u/f", unix.S_IFREG)
}

func TestRmdirLeavesWhiteout(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "lowdir/", "merged/", "opq/x=")
	build(t, s.upper, "updir/", "merged/", "opq/*")
	fs := s.mount()
	root := fs.Root()
	for _, c := range []struct {
		name     string
		whiteout bool
	}{{"lowdir", true}, {"merged", true}, {"opq", true}, {"updir", false}} {
		n, _ := mustWalk(t, fs, c.name)
		wantErrno(t, "rmdir "+c.name, fs.Rmdir(root, c.name), 0)
		if c.whiteout {
			wantWhiteout(t, s.upper+"/"+c.name)
		} else {
			wantAbsent(t, s.upper+"/"+c.name)
		}
		// The kernel may still have it open: fstat answers, from the
		// lower directory, or with the last attributes and no links.
		st, err := fs.Getattr(n)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Fatalf("%s: Getattr of the removed directory: mode %o, %v", c.name, st.Mode, err)
		}
		if !c.whiteout && st.Nlink != 0 {
			t.Fatalf("%s: removed upper directory has nlink %d", c.name, st.Nlink)
		}
	}
	wantNames(t, "root", listDir(t, fs, root))
	wantWorkEmpty(t, s)
	// The same in a new engine.
	fs2 := mountCfg(t, s.configWithWork(t))
	wantNames(t, "root in a new engine", listDir(t, fs2, fs2.Root()))
}

// TestSetattrRemovedSpecial: a directory, symlink or special file whose
// name was removed may still be open in the kernel, and fchmod, fchown
// and futimens through that descriptor work (as on kernel overlayfs).
// Their attributes live on in the node; no name comes back, and a lower
// one stays as it was.
func TestSetattrRemovedSpecial(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/|fifo", "d/l->target")
	build(t, s.upper, "d/up/")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	for _, c := range []struct {
		name   string
		remove func() error
		mode   bool // chmod applies (not to symlinks)
	}{
		{"fifo", func() error { return fs.Unlink(d, "fifo") }, true},
		{"l", func() error { return fs.Unlink(d, "l") }, false},
		{"up", func() error { return fs.Rmdir(d, "up") }, true},
	} {
		n, before, err := fs.Lookup(d, c.name)
		if err != nil {
			t.Fatalf("lookup %s: %v", c.name, err)
		}
		wantErrno(t, "remove "+c.name, c.remove(), 0)
		mtime := unix.Timespec{Sec: 1000000000, Nsec: 5}
		st, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMode | overlay.SetGID | overlay.SetMtime,
			Mode: 0640, GID: 4321, Mtime: mtime})
		if err != nil {
			t.Fatalf("setattr of removed %s: %v", c.name, err)
		}
		wantMode := before.Mode
		if c.mode {
			wantMode = before.Mode&unix.S_IFMT | 0640
		}
		if st.Mode != wantMode || st.Gid != 4321 || st.Mtim != mtime || st.Nlink != 0 {
			t.Fatalf("removed %s after setattr: mode %o gid %d mtime %v nlink %d", c.name, st.Mode, st.Gid, st.Mtim, st.Nlink)
		}
		if again, err := fs.Getattr(n); err != nil || again != st {
			t.Fatalf("Getattr of removed %s: %+v, %v; Setattr said %+v", c.name, again, err, st)
		}
		_, _, err = fs.Lookup(d, c.name)
		wantErrno(t, "lookup of removed "+c.name, err, unix.ENOENT)
	}
	wantWhiteout(t, s.upper+"/d/fifo")
	var st unix.Stat_t
	if err := unix.Lstat(s.lower(0)+"/d/fifo", &st); err != nil || st.Gid == 4321 || st.Mode&07777 != 0644 {
		t.Fatalf("the lower fifo changed: gid %d mode %o, %v", st.Gid, st.Mode, err)
	}
}

// TestRemovedDataReapedAtClose: the data of a removed file the kernel
// still held a node for waits in the work directory until the node is
// forgotten, and is deleted in the background after that; an engine
// closed right after the FORGET still deletes it.
func TestRemovedDataReapedAtClose(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "f=data", "g=more")
	fs := s.mount()
	var nodes []*overlay.Node
	for _, name := range []string{"f", "g"} {
		n, _ := mustWalk(t, fs, name)
		wantErrno(t, "unlink "+name, fs.Unlink(fs.Root(), name), 0)
		nodes = append(nodes, n)
	}
	ents, err := os.ReadDir(s.work + "/work")
	if err != nil || len(ents) != 2 {
		t.Fatalf("work dir after the unlinks: %d entries, %v (want the two files' data)", len(ents), err)
	}
	if got := readAll(t, fs, nodes[0]); got != "data" {
		t.Fatalf("removed f reads %q", got)
	}
	for _, n := range nodes {
		fs.Forget(n, 1)
	}
	fs.Close()
	ents, err = os.ReadDir(s.work + "/work")
	if err != nil || len(ents) != 0 {
		t.Fatalf("work dir after close: %d entries, %v", len(ents), err)
	}
}
