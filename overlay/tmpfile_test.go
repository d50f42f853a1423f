package overlay_test

import (
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestTmpfileLinked: an unnamed file made in a lower directory copies the
// directory up, has no name anywhere (neither in the upper layer nor in
// the work directory) and no link until Link gives it one; then it is an
// upper file like any other, under both names Link gives it.
func TestTmpfileLinked(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	n, st, err := fs.Tmpfile(d, 0o640, caller0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o640 || st.Nlink != 0 || st.Size != 0 {
		t.Fatalf("Tmpfile: mode %o nlink %d size %d, want a regular 0640 file with no link", st.Mode, st.Nlink, st.Size)
	}
	wantKind(t, s.upper+"/d", unix.S_IFDIR)
	writeFile(t, fs, n, "unnamed", 0)
	if got := readAll(t, fs, n); got != "unnamed" {
		t.Fatalf("read back %q", got)
	}
	wantNames(t, "upper d before the link", upperNames(t, s.upper+"/d"))
	wantWorkEmpty(t, s)
	if st, err := fs.Getattr(n); err != nil || st.Nlink != 0 || st.Size != 7 {
		t.Fatalf("Getattr: nlink %d size %d %v, want 0 links, 7 bytes", st.Nlink, st.Size, err)
	}

	st, err = fs.Link(n, d, "named")
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if st.Nlink != 1 || st.Size != 7 {
		t.Fatalf("Link: nlink %d size %d, want 1 and 7", st.Nlink, st.Size)
	}
	if got := fileContent(t, s.upper+"/d/named"); got != "unnamed" {
		t.Fatalf("upper d/named holds %q", got)
	}
	if m, _ := mustWalk(t, fs, "d/named"); m != n {
		t.Fatalf("lookup of the new name found another node")
	}
	wantNames(t, "merged d", listDir(t, fs, d), "f", "named")

	// A second link is an ordinary hard link.
	e, _ := mustWalk(t, fs, "")
	if st, err := fs.Link(n, e, "again"); err != nil || st.Nlink != 2 {
		t.Fatalf("second Link: nlink %d, %v; want 2", st.Nlink, err)
	}
	if a, b := lstat(t, s.upper+"/d/named"), lstat(t, s.upper+"/again"); a.Ino != b.Ino || a.Nlink != 2 {
		t.Fatalf("upper d/named and again: inodes %d %d, nlink %d; want one inode, 2 links", a.Ino, b.Ino, a.Nlink)
	}
	writeFile(t, fs, n, "U", 0)
	if got := fileContent(t, s.upper+"/again"); got != "Unnamed" {
		t.Fatalf("after a write through the node: upper again holds %q", got)
	}
	fs.Forget(n, 3)
	if m, _ := mustWalk(t, fs, "again"); readAll(t, fs, m) != "Unnamed" {
		t.Fatalf("after forget: again reads wrong")
	}
}

// upperNames lists a real directory.
func upperNames(t *testing.T, dir string) map[string]uint32 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint32{}
	for _, e := range ents {
		m[e.Name()] = uint32(e.Type())
	}
	return m
}

// TestTmpfileForgotten: an unnamed file the kernel lets go of without
// linking it leaves nothing behind, and its descriptor is closed.
func TestTmpfileForgotten(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	before := openFDs(t)
	n, _, err := fs.Tmpfile(d, 0o600, caller0)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, n, "gone soon", 0)
	if got := openFDs(t); got != before+1 {
		t.Fatalf("%d descriptors open, want %d (the unnamed file's)", got, before+1)
	}
	fs.Forget(n, 1)
	if fs.Node(n.ID()) != nil {
		t.Fatalf("node still in the table")
	}
	if got := openFDs(t); got != before {
		t.Fatalf("%d descriptors open after the forget, want %d", got, before)
	}
	wantNames(t, "upper d", upperNames(t, s.upper+"/d"))
	wantWorkEmpty(t, s)
	if _, err := fs.Link(n, d, "late"); err == nil {
		t.Fatalf("Link of a forgotten unnamed file succeeded")
	}
}

// TestTmpfileOverWhiteout: linking an unnamed file where a lower file was
// removed replaces the whiteout with the file.
func TestTmpfileOverWhiteout(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/x=lower")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	if err := fs.Unlink(d, "x"); err != nil {
		t.Fatal(err)
	}
	wantWhiteout(t, s.upper+"/d/x")
	n, _, err := fs.Tmpfile(d, 0o644, caller0)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, n, "new", 0)
	if _, err := fs.Link(n, d, "x"); err != nil {
		t.Fatalf("Link over the whiteout: %v", err)
	}
	if got := fileContent(t, s.upper+"/d/x"); got != "new" {
		t.Fatalf("upper d/x holds %q", got)
	}
	if m, _ := mustWalk(t, fs, "d/x"); m != n {
		t.Fatalf("lookup of d/x found another node")
	}
	wantWorkEmpty(t, s)
}

// TestTmpfileOwnerAndErrors: the unnamed file belongs to the caller, in
// the group of a setgid directory; a name taken, a read-only engine and a
// non-directory are refused.
func TestTmpfileOwnerAndErrors(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/taken=x", "g/")
	if err := os.Chown(s.lower(0)+"/g", 0, 3000); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(s.lower(0)+"/g", 0o2777); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	c := overlay.Caller{UID: 1000, GID: 2000}
	n, st, err := fs.Tmpfile(d, 0o600, c)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1000 || st.Gid != 2000 {
		t.Fatalf("owner %d:%d, want 1000:2000", st.Uid, st.Gid)
	}
	_, err = fs.Link(n, d, "taken")
	wantErrno(t, "Link onto a taken name", err, unix.EEXIST)
	if _, err := fs.Link(n, d, "mine"); err != nil {
		t.Fatal(err)
	}
	if up := lstat(t, s.upper+"/d/mine"); up.Uid != 1000 || up.Gid != 2000 {
		t.Fatalf("upper d/mine owned by %d:%d, want 1000:2000", up.Uid, up.Gid)
	}

	g, _ := mustWalk(t, fs, "g")
	if _, st, err := fs.Tmpfile(g, 0o600, c); err != nil || st.Gid != 3000 {
		t.Fatalf("in the setgid directory: group %d, %v; want 3000", st.Gid, err)
	}
	f, _ := mustWalk(t, fs, "d/taken")
	_, _, err = fs.Tmpfile(f, 0o600, c)
	wantErrno(t, "Tmpfile in a file", err, unix.ENOTDIR)

	ro := s.mountRO()
	rd, _ := mustWalk(t, ro, "d")
	_, _, err = ro.Tmpfile(rd, 0o600, c)
	wantErrno(t, "Tmpfile on a read-only engine", err, unix.EROFS)
}

// TestTmpfileOverride: with xattr_permissions=2 an unnamed file's owner
// and mode are recorded in the override xattr, as a named file's are, and
// the real file stays the daemon's.
func TestTmpfileOverride(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/")
	cfg := s.config()
	cfg.XattrPermissions = 2
	fs := mountCfg(t, cfg)
	d, _ := mustWalk(t, fs, "d")
	n, st, err := fs.Tmpfile(d, 0o4750, overlay.Caller{UID: 1000, GID: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1000 || st.Gid != 2000 || st.Mode != unix.S_IFREG|0o4750 {
		t.Fatalf("Tmpfile: %d:%d %o, want 1000:2000 and 104750", st.Uid, st.Gid, st.Mode)
	}
	if _, err := fs.Link(n, d, "f"); err != nil {
		t.Fatal(err)
	}
	if real := lstat(t, s.upper+"/d/f"); real.Uid != 0 || real.Gid != 0 {
		t.Fatalf("the upper file is owned by %d:%d, want the daemon's 0:0", real.Uid, real.Gid)
	}
	if v, err := xattr(s.upper+"/d/f", overlay.OverrideUser); err != nil || string(v) != "1000:2000:4750" {
		t.Fatalf("upper override: %q %v", v, err)
	}
	if _, st := mustWalk(t, fs, "d/f"); st.Uid != 1000 || st.Gid != 2000 || st.Mode&07777 != 0o4750 {
		t.Fatalf("d/f shows %d:%d %o", st.Uid, st.Gid, st.Mode)
	}
}
