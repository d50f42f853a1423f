package overlay_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestRenameLowerFile: the file is copied up under its new name and a
// whiteout hides the old one.
func TestRenameLowerFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "src/a=data", "dst/")
	fs := s.mount()
	src, _ := mustWalk(t, fs, "src")
	dst, _ := mustWalk(t, fs, "dst")
	a, ast, _ := fs.Lookup(src, "a")
	wantErrno(t, "rename", fs.Rename(src, "a", dst, "b", 0), 0)
	wantWhiteout(t, s.upper+"/src/a")
	wantKind(t, s.upper+"/dst/b", unix.S_IFREG)
	if got := fileContent(t, s.upper+"/dst/b"); got != "data" {
		t.Fatalf("upper dst/b: %q", got)
	}
	if got := fs.Stats().CopyUps; got != 3 {
		t.Fatalf("CopyUps %d, want 3 (src, a, dst)", got)
	}
	b, bst, err := fs.Lookup(dst, "b")
	if err != nil {
		t.Fatal(err)
	}
	if b != a || bst.Ino != ast.Ino {
		t.Fatalf("renamed file: same node %v, ino %d -> %d", b == a, ast.Ino, bst.Ino)
	}
	_, _, err = fs.Lookup(src, "a")
	wantErrno(t, "lookup of the old name", err, unix.ENOENT)
	wantNames(t, "src", listDir(t, fs, src))
	wantNames(t, "dst", listDir(t, fs, dst), "b")
	if got := fileContent(t, s.lower(0)+"/src/a"); got != "data" {
		t.Fatalf("lower changed")
	}
	wantWorkEmpty(t, s)
}

func TestRenameOverExistingFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=A", "b=B", "c=C")
	build(t, s.upper, "u=U")
	fs := s.mount()
	root := fs.Root()
	b, _, _ := fs.Lookup(root, "b")
	u, _, _ := fs.Lookup(root, "u")
	// lower over lower
	wantErrno(t, "rename a b", fs.Rename(root, "a", root, "b", 0), 0)
	wantWhiteout(t, s.upper+"/a")
	if got := fileContent(t, s.upper+"/b"); got != "A" {
		t.Fatalf("upper b: %q", got)
	}
	// The kernel may still have the replaced files open: they answer.
	if st, err := fs.Getattr(b); err != nil || st.Size != 1 {
		t.Fatalf("the replaced lower file's node: size %d, %v", st.Size, err)
	}
	if got := readAll(t, fs, b); got != "B" {
		t.Fatalf("the replaced lower file reads %q", got)
	}
	// lower over upper-only
	wantErrno(t, "rename c u", fs.Rename(root, "c", root, "u", 0), 0)
	if got := fileContent(t, s.upper+"/u"); got != "C" {
		t.Fatalf("upper u: %q", got)
	}
	if st, err := fs.Getattr(u); err != nil || st.Nlink != 0 || st.Size != 1 {
		t.Fatalf("the replaced upper file's node: nlink %d size %d, %v", st.Nlink, st.Size, err)
	}
	if got := readAll(t, fs, u); got != "U" {
		t.Fatalf("the replaced upper file reads %q", got)
	}
	wantWhiteout(t, s.upper+"/c")
	m := listDir(t, fs, root)
	wantNames(t, "root", m, "b", "u")
	for name, want := range map[string]string{"b": "A", "u": "C"} {
		n, _ := mustWalk(t, fs, name)
		if got := readAll(t, fs, n); got != want {
			t.Fatalf("%s reads %q, want %q", name, got, want)
		}
	}
	fs.Forget(u, 1) // the replaced u's data is kept until the kernel forgets it
	wantWorkEmpty(t, s)
}

func TestRenameOverWhiteout(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "b=old", "d/old=")
	build(t, s.upper, "a=new", "!b", "dir/x=", "!d")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "rename a b", fs.Rename(root, "a", root, "b", 0), 0)
	wantKind(t, s.upper+"/b", unix.S_IFREG)
	wantAbsent(t, s.upper+"/a") // a exists in no lower layer
	if got := fileContent(t, s.upper+"/b"); got != "new" {
		t.Fatalf("upper b: %q", got)
	}
	// A directory over a whiteout: opaque, so the lower d stays hidden.
	wantErrno(t, "rename dir d", fs.Rename(root, "dir", root, "d", 0), 0)
	wantKind(t, s.upper+"/d", unix.S_IFDIR)
	if !isOpaque(s.upper + "/d") {
		t.Fatalf("upper d: %s, want opaque", describe(s.upper+"/d"))
	}
	wantAbsent(t, s.upper+"/dir")
	d, _ := mustWalk(t, fs, "d")
	wantNames(t, "d", listDir(t, fs, d), "x")
	wantNames(t, "root", listDir(t, fs, root), "b", "d")
	wantWorkEmpty(t, s)
}

// TestRenameUpperDir: a directory that exists only in the upper layer
// moves, children and all.
func TestRenameUpperDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "merged/low=")
	build(t, s.upper, "pure/d/child=c", "pure/d/sub/g=g", "merged/")
	fs := s.mount()
	pure, _ := mustWalk(t, fs, "pure")
	d, _ := mustWalk(t, fs, "pure/d")
	child, _ := mustWalk(t, fs, "pure/d/child")
	g, _ := mustWalk(t, fs, "pure/d/sub/g")

	// Within a directory that is upper only: a plain rename.
	wantErrno(t, "rename in pure", fs.Rename(pure, "d", pure, "e", 0), 0)
	wantAbsent(t, s.upper+"/pure/d")
	wantKind(t, s.upper+"/pure/e", unix.S_IFDIR)
	if isOpaque(s.upper + "/pure/e") {
		t.Fatalf("a directory renamed inside an upper-only directory became opaque")
	}
	if e, _ := mustWalk(t, fs, "pure/e"); e != d {
		t.Fatalf("renamed directory has a new node")
	}
	if got := readAll(t, fs, child); got != "c" {
		t.Fatalf("child of the moved directory reads %q", got)
	}
	// Into a merged directory: opaque, as the kernel makes it.
	merged, _ := mustWalk(t, fs, "merged")
	wantErrno(t, "rename into merged", fs.Rename(pure, "e", merged, "e", 0), 0)
	wantAbsent(t, s.upper+"/pure/e")
	if !isOpaque(s.upper + "/merged/e") {
		t.Fatalf("upper merged/e: %s, want opaque (a directory moved into a merged directory)", describe(s.upper+"/merged/e"))
	}
	if got := readAll(t, fs, g); got != "g" {
		t.Fatalf("grandchild reads %q after two moves", got)
	}
	if n, _ := mustWalk(t, fs, "merged/e/sub/g"); n != g {
		t.Fatalf("grandchild has a new node")
	}
	wantNames(t, "merged", listDir(t, fs, merged), "e", "low")
	wantNames(t, "pure", listDir(t, fs, pure))
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("CopyUps %d", got)
	}
}

// TestRenameLowerDirEXDEV: directories with a lower part cannot move
// (no redirect_dir): EXDEV, and nothing is copied up.
func TestRenameLowerDirEXDEV(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "p/low/x=", "p/merged/y=", "p/pure/", "p/f=")
	build(t, s.upper, "p/merged/z=", "p/pure/")
	fs := s.mount()
	p, _ := mustWalk(t, fs, "p")
	for _, name := range []string{"low", "merged"} {
		wantErrno(t, "rename "+name, fs.Rename(p, name, p, name+"2", 0), unix.EXDEV)
		wantErrno(t, "exchange "+name, fs.Rename(p, "f", p, name, overlay.RenameExchange), unix.EXDEV)
	}
	wantAbsent(t, s.upper+"/p/low")
	wantAbsent(t, s.upper+"/p/f")
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("failed renames copied %d objects up", got)
	}
	wantNames(t, "p", listDir(t, fs, p), "f", "low", "merged", "pure")
}

// TestRenameDirOverLowerDir: a directory renamed to a name where a lower
// directory exists (hidden by a whiteout, or empty and visible) becomes
// opaque, so the lower one does not merge into it.
func TestRenameDirOverLowerDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "x/hidden=", "empty/")
	build(t, s.upper, "!x", "d1/mine=", "d2/mine2=")
	fs := s.mount()
	root := fs.Root()
	empty, _ := mustWalk(t, fs, "empty")
	wantErrno(t, "rename d1 x", fs.Rename(root, "d1", root, "x", 0), 0)
	wantErrno(t, "rename d2 empty", fs.Rename(root, "d2", root, "empty", 0), 0)
	for dir, child := range map[string]string{"x": "mine", "empty": "mine2"} {
		if !isOpaque(s.upper + "/" + dir) {
			t.Fatalf("upper %s: %s, want opaque", dir, describe(s.upper+"/"+dir))
		}
		n, _ := mustWalk(t, fs, dir)
		wantNames(t, dir, listDir(t, fs, n), child)
	}
	wantAbsent(t, s.upper+"/d1")
	wantAbsent(t, s.upper+"/d2")
	if st, err := fs.Getattr(empty); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("the replaced directory's node: mode %o, %v", st.Mode, err)
	}
	_, _, err := fs.Lookup(empty, "anything")
	wantErrno(t, "lookup in the replaced directory", err, unix.ENOENT)
	wantNames(t, "root", listDir(t, fs, root), "empty", "x")
	wantWorkEmpty(t, s)
	fs2 := mountCfg(t, s.configWithWork(t))
	x, _ := mustWalk(t, fs2, "x")
	wantNames(t, "x in a new engine", listDir(t, fs2, x), "mine")
}

func TestRenameNoReplace(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=A", "b=B")
	build(t, s.upper, "u=U")
	fs := s.mount()
	root := fs.Root()
	for _, c := range [][2]string{{"a", "b"}, {"a", "u"}, {"u", "a"}} {
		wantErrno(t, "noreplace "+c[0]+" "+c[1], fs.Rename(root, c[0], root, c[1], overlay.RenameNoReplace), unix.EEXIST)
	}
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("failed renames copied %d objects up", got)
	}
	wantErrno(t, "noreplace to a new name", fs.Rename(root, "a", root, "c", overlay.RenameNoReplace), 0)
	wantWhiteout(t, s.upper+"/a")
	wantNames(t, "root", listDir(t, fs, root), "b", "c", "u")
	wantErrno(t, "both flags", fs.Rename(root, "b", root, "d", overlay.RenameNoReplace|overlay.RenameExchange), unix.EINVAL)
	wantErrno(t, "unknown flag", fs.Rename(root, "b", root, "d", 1<<7), unix.EINVAL)
}

func TestRenameExchange(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=A", "p/")
	build(t, s.upper, "b=B", "dir/x=")
	fs := s.mount()
	root := fs.Root()
	a, _, _ := fs.Lookup(root, "a")
	b, _, _ := fs.Lookup(root, "b")
	wantErrno(t, "exchange a b", fs.Rename(root, "a", root, "b", overlay.RenameExchange), 0)
	if fileContent(t, s.upper+"/a") != "B" || fileContent(t, s.upper+"/b") != "A" {
		t.Fatalf("upper a, b hold %q, %q", fileContent(t, s.upper+"/a"), fileContent(t, s.upper+"/b"))
	}
	na, _ := mustWalk(t, fs, "a")
	nb, _ := mustWalk(t, fs, "b")
	if na != b || nb != a {
		t.Fatalf("nodes were not exchanged")
	}
	if readAll(t, fs, na) != "B" || readAll(t, fs, nb) != "A" {
		t.Fatalf("contents were not exchanged")
	}
	// A directory and a file, across directories.
	p, _ := mustWalk(t, fs, "p")
	wantErrno(t, "exchange dir with missing", fs.Rename(root, "dir", p, "missing", overlay.RenameExchange), unix.ENOENT)
	wantErrno(t, "exchange a p/dir", fs.Rename(root, "a", p, "a", overlay.RenameExchange), unix.ENOENT)
	wantErrno(t, "rename b p/b", fs.Rename(root, "b", p, "b", 0), 0)
	wantErrno(t, "exchange dir p/b", fs.Rename(root, "dir", p, "b", overlay.RenameExchange), 0)
	wantKind(t, s.upper+"/dir", unix.S_IFREG)
	wantKind(t, s.upper+"/p/b", unix.S_IFDIR)
	pb, _ := mustWalk(t, fs, "p/b")
	wantNames(t, "p/b", listDir(t, fs, pb), "x")
	wantNames(t, "root", listDir(t, fs, root), "a", "dir", "p")
	wantWorkEmpty(t, s)
}

// TestRenameHardLinkNoop: renaming one name of a file onto another name of
// the same file does nothing (rename(2)).
func TestRenameHardLinkNoop(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "x=data")
	if err := os.Link(s.upper+"/x", s.upper+"/y"); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	root := fs.Root()
	x, _ := mustWalk(t, fs, "x")
	wantErrno(t, "rename x y", fs.Rename(root, "x", root, "y", 0), 0)
	for _, name := range []string{"x", "y"} {
		n, st := mustWalk(t, fs, name)
		if n != x || st.Nlink != 2 {
			t.Fatalf("%s: same node %v, nlink %d", name, n == x, st.Nlink)
		}
	}
	if st := lstat(t, s.upper+"/x"); st.Nlink != 2 {
		t.Fatalf("upper nlink %d", st.Nlink)
	}
	wantNames(t, "root", listDir(t, fs, root), "x", "y")
	wantErrno(t, "noreplace x y", fs.Rename(root, "x", root, "y", overlay.RenameNoReplace), unix.EEXIST)
}

func TestRenameErrors(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "full/x=")
	build(t, s.upper, "f=", "d/", "e/", "g=")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "file over dir", fs.Rename(root, "f", root, "d", 0), unix.EISDIR)
	wantErrno(t, "dir over file", fs.Rename(root, "d", root, "f", 0), unix.ENOTDIR)
	wantErrno(t, "dir over non-empty dir", fs.Rename(root, "d", root, "full", 0), unix.ENOTEMPTY)
	wantErrno(t, "missing source", fs.Rename(root, "nothing", root, "z", 0), unix.ENOENT)
	wantErrno(t, "long name", fs.Rename(root, "f", root, strings.Repeat("n", 256), 0), unix.ENAMETOOLONG)
	d, _ := mustWalk(t, fs, "d")
	if err := fs.Rename(root, "e", d, "e", 0); err != nil {
		t.Fatal(err)
	}
	e, _ := mustWalk(t, fs, "d/e")
	wantErrno(t, "dir into its own child", fs.Rename(root, "d", e, "d", 0), unix.EINVAL)
	wantErrno(t, "rename to itself", fs.Rename(root, "f", root, "f", 0), 0)
	wantErrno(t, "rmdir e", fs.Rmdir(d, "e"), 0)
	wantErrno(t, "rename into a removed dir", fs.Rename(root, "g", e, "g", 0), unix.ENOENT)
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("failed renames copied %d objects up", got)
	}
	wantNames(t, "root", listDir(t, fs, root), "d", "f", "full", "g")
	wantKind(t, s.upper+"/f", unix.S_IFREG)
}

// TestRenameOpaqueDir: an opaque upper directory over a lower one moves
// (it has no lower part); the old name gets a whiteout, as the lower
// directory would show again.
func TestRenameOpaqueDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "o/hidden=")
	build(t, s.upper, "o/*", "o/mine=")
	fs := s.mount()
	root := fs.Root()
	wantErrno(t, "rename o o2", fs.Rename(root, "o", root, "o2", 0), 0)
	wantWhiteout(t, s.upper+"/o")
	if !isOpaque(s.upper + "/o2") {
		t.Fatalf("upper o2: %s, want opaque", describe(s.upper+"/o2"))
	}
	o2, _ := mustWalk(t, fs, "o2")
	wantNames(t, "o2", listDir(t, fs, o2), "mine")
	wantNames(t, "root", listDir(t, fs, root), "o2")
	wantWorkEmpty(t, s)
}
