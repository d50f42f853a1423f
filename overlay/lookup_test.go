package overlay_test

import (
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

func TestLookupUpperHidesLower(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "f=bottom", "l->bottom-target")
	build(t, s.lower(0), "f=middle")
	build(t, s.upper, "f=top", "l->top-target")
	fs := s.mount()

	n, st := mustWalk(t, fs, "f")
	if got := readAll(t, fs, n); got != "top" {
		t.Fatalf("f reads %q, want the upper copy", got)
	}
	if ust := lstat(t, s.upper+"/f"); st.Ino != ust.Ino || st.Size != 3 {
		t.Fatalf("f: ino %d size %d, want the upper file's ino %d size 3", st.Ino, st.Size, ust.Ino)
	}
	l, _ := mustWalk(t, fs, "l")
	if target, err := fs.Readlink(l); err != nil || target != "top-target" {
		t.Fatalf("Readlink = %q, %v; want top-target", target, err)
	}

	// Without the upper copy, the top-most lower wins.
	if err := unix.Unlink(s.upper + "/f"); err != nil {
		t.Fatal(err)
	}
	fs2 := mountCfg(t, s.configWithWork(t))
	n2, _ := mustWalk(t, fs2, "f")
	if got := readAll(t, fs2, n2); got != "middle" {
		t.Fatalf("f reads %q, want the top-most lower copy", got)
	}
}

func TestLookupNonDirHidesEverythingBelow(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "x/child=c", "y/child=c", "z=file-in-lower1")
	build(t, s.lower(0), "x=file", "z/a=a")
	build(t, s.upper, "y=upper-file")
	fs := s.mount()

	for _, name := range []string{"x", "y"} {
		n, st := mustWalk(t, fs, name)
		if st.Mode&unix.S_IFMT != unix.S_IFREG || n.IsDir() {
			t.Fatalf("%s: mode %o, want a regular file hiding the lower directory", name, st.Mode)
		}
		if _, _, err := fs.Lookup(n, "child"); err == nil {
			t.Fatalf("%s/child found through a file", name)
		}
	}
	// A lower directory over a lower file: the file below is hidden.
	z, st := mustWalk(t, fs, "z")
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("z: mode %o, want the directory of lower0", st.Mode)
	}
	wantNames(t, "z", listDir(t, fs, z), "a")
}

func TestLookupDirsMergeDown(t *testing.T) {
	s := newStack(t, 3)
	build(t, s.lower(2), "d/c=c", "d/shared=2")
	build(t, s.lower(1), "d/b=b", "d/shared=1")
	build(t, s.lower(0), "d/a=a")
	build(t, s.upper, "d/u=u")
	fs := s.mount()

	d, st := mustWalk(t, fs, "d")
	if st.Nlink != 1 {
		t.Errorf("merged directory nlink %d, want 1 as the kernel reports", st.Nlink)
	}
	wantNames(t, "d", listDir(t, fs, d), "a", "b", "c", "shared", "u")
	for _, c := range []struct{ name, want string }{{"a", "a"}, {"b", "b"}, {"c", "c"}, {"u", "u"}, {"shared", "1"}} {
		n, _, err := fs.Lookup(d, c.name)
		if err != nil {
			t.Fatalf("d/%s: %v", c.name, err)
		}
		if got := readAll(t, fs, n); got != c.want {
			t.Fatalf("d/%s reads %q, want %q", c.name, got, c.want)
		}
	}
}

func TestLookupOpaqueStopsMerge(t *testing.T) {
	s := newStack(t, 3)
	build(t, s.lower(2), "up/c=c", "lo/c=c", "oci/c=c")
	build(t, s.lower(1), "up/b=b", "lo/b=b", "oci/b=b", "oci/.wh..wh..opq=")
	build(t, s.lower(0), "up/a=a", "lo/*", "lo/a=a", "oci/a=a")
	build(t, s.upper, "up/*", "up/u=u")
	fs := s.mount()

	cases := []struct {
		dir  string
		want []string
	}{
		{"up", []string{"u"}},       // opaque upper directory
		{"lo", []string{"a"}},       // opaque lower directory (xattr)
		{"oci", []string{"a", "b"}}, // OCI opaque marker in lower1
	}
	for _, c := range cases {
		d, _ := mustWalk(t, fs, c.dir)
		wantNames(t, c.dir, listDir(t, fs, d), c.want...)
		for _, hidden := range []string{"a", "b", "c"} {
			visible := false
			for _, w := range c.want {
				visible = visible || w == hidden
			}
			_, _, err := fs.Lookup(d, hidden)
			if visible {
				wantErrno(t, c.dir+"/"+hidden, err, 0)
			} else {
				wantErrno(t, c.dir+"/"+hidden, err, unix.ENOENT)
			}
		}
		_, _, err := fs.Lookup(d, ".wh..wh..opq")
		wantErrno(t, c.dir+"/.wh..wh..opq", err, unix.ENOENT)
	}
}

func TestLookupKernelWhiteouts(t *testing.T) {
	s := newStack(t, 3)
	build(t, s.lower(2), "g=g", "d/c=c", "e/x=x")
	build(t, s.lower(1), "!g", "!d", "e/y=y")
	build(t, s.lower(0), "f=f", "d/a=a", "e/z=z")
	build(t, s.upper, "!f", "!e")
	fs := s.mount()
	root := fs.Root()

	for _, name := range []string{"f", "g", "e"} {
		_, _, err := fs.Lookup(root, name)
		wantErrno(t, "lookup "+name, err, unix.ENOENT)
	}
	d, _ := mustWalk(t, fs, "d")
	wantNames(t, "d (merge stops at the whiteout in lower1)", listDir(t, fs, d), "a")
	_, _, err := fs.Lookup(d, "c")
	wantErrno(t, "d/c", err, unix.ENOENT)
	wantNames(t, "root", listDir(t, fs, root), "d")
}

func TestLookupOCIWhiteouts(t *testing.T) {
	s := newStack(t, 3)
	build(t, s.lower(2), "f=f", "d/x=x", "d/keep=k", "gone/in=in")
	build(t, s.lower(1), "d/y=y")
	build(t, s.lower(0), ".wh.f=", ".wh.gone=", "d/.wh.x=", "d/.wh.y=", "d/z=z")
	fs := s.mount()
	root := fs.Root()

	check := func(when string) {
		t.Helper()
		for _, name := range []string{"f", "gone", ".wh.f", ".wh.gone"} {
			_, _, err := fs.Lookup(root, name)
			wantErrno(t, when+": lookup "+name, err, unix.ENOENT)
		}
		d, _ := mustWalk(t, fs, "d")
		for _, name := range []string{"x", "y", ".wh.x", ".wh.y"} {
			_, _, err := fs.Lookup(d, name)
			wantErrno(t, when+": lookup d/"+name, err, unix.ENOENT)
		}
		for _, name := range []string{"z", "keep"} {
			_, _, err := fs.Lookup(d, name)
			wantErrno(t, when+": lookup d/"+name, err, 0)
		}
	}
	check("before any listing")
	wantNames(t, "root", listDir(t, fs, root), "d")
	d, _ := mustWalk(t, fs, "d")
	wantNames(t, "d", listDir(t, fs, d), "keep", "z")
	// Listings may teach the engine which layers hold markers: lookups
	// after them must hide the same names.
	check("after listing")

	// Same on a read-only overlay.
	ro := s.mountRO()
	wantNames(t, "ro root", listDir(t, ro, ro.Root()), "d")
	rd, _ := mustWalk(t, ro, "d")
	wantNames(t, "ro d", listDir(t, ro, rd), "keep", "z")
	_, _, err := ro.Lookup(rd, "x")
	wantErrno(t, "ro d/x", err, unix.ENOENT)
}

func TestLookupNameTooLong(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/")
	fs := s.mount()
	_, _, err := fs.Lookup(fs.Root(), strings.Repeat("n", 256))
	wantErrno(t, "lookup of a 256-byte name", err, unix.ENAMETOOLONG)
	_, _, err = fs.Lookup(fs.Root(), strings.Repeat("n", 255))
	wantErrno(t, "lookup of a 255-byte name", err, unix.ENOENT)
	d, _ := mustWalk(t, fs, "d")
	_, _, err = fs.Lookup(d, strings.Repeat(".wh.", 64))
	wantErrno(t, "lookup of a 256-byte .wh. name", err, unix.ENAMETOOLONG)
}

func TestLookupInDeletedDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "lowerdir/", "keep=")
	build(t, s.upper, "upperdir/")
	fs := s.mount()
	for _, name := range []string{"upperdir", "lowerdir"} {
		d, _ := mustWalk(t, fs, name)
		wantErrno(t, "rmdir "+name, fs.Rmdir(fs.Root(), name), 0)
		_, _, err := fs.Lookup(d, "anything")
		wantErrno(t, "lookup in removed "+name, err, unix.ENOENT)
		_, _, err = fs.Lookup(fs.Root(), name)
		wantErrno(t, "lookup of removed "+name, err, unix.ENOENT)
		// Reading the removed directory gives nothing.
		if m := listDir(t, fs, d); len(m) != 0 {
			t.Fatalf("removed %s lists %v", name, names(m))
		}
	}
}

func TestLookupSameNodeAndForget(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=x")
	fs := s.mount()
	base := fs.Stats().Nodes
	d1, _ := mustWalk(t, fs, "d")
	f1, st1, err := fs.Lookup(d1, "f")
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := mustWalk(t, fs, "d")
	f2, st2, _ := fs.Lookup(d2, "f")
	if d1 != d2 || f1 != f2 {
		t.Fatalf("two lookups of one name gave different nodes")
	}
	if st1.Ino != st2.Ino || st1.Ino != f1.Ino() {
		t.Fatalf("inode numbers differ: %d %d %d", st1.Ino, st2.Ino, f1.Ino())
	}
	if fs.Node(f1.ID()) != f1 {
		t.Fatalf("Node(ID) does not find the node")
	}
	if got := fs.Stats().Nodes; got != base+2 {
		t.Fatalf("Stats().Nodes = %d, want %d", got, base+2)
	}
	fs.Forget(f1, 2)
	fs.Forget(d1, 2)
	if got := fs.Stats().Nodes; got != base {
		t.Fatalf("after forgetting everything Stats().Nodes = %d, want %d", got, base)
	}
	if fs.Node(f1.ID()) != nil {
		t.Fatalf("forgotten node still in the table")
	}
	f3, st3 := mustWalk(t, fs, "d/f")
	if st3.Ino != st1.Ino {
		t.Fatalf("inode number changed across forget: %d -> %d", st1.Ino, st3.Ino)
	}
	if f3.ID() == f1.ID() {
		t.Fatalf("a forgotten node's ID was reused")
	}
}

// TestOCIHiddenNamesReused: names hidden by OCI markers can be created;
// removing them again leaves no kernel whiteout (nothing below shows),
// and a new directory over an OCI-hidden one does not merge with it.
func TestOCIHiddenNamesReused(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "d/x=old", "dd/old=")
	build(t, s.lower(0), "d/.wh.x=", "d/y=", ".wh.dd=")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	wantNames(t, "d", listDir(t, fs, d), "y")
	n, _ := mustCreate(t, fs, d, "x", objFile(0644))
	writeFile(t, fs, n, "new", 0)
	if got := readAll(t, fs, n); got != "new" {
		t.Fatalf("new x reads %q", got)
	}
	wantNames(t, "d", listDir(t, fs, d), "x", "y")
	wantErrno(t, "unlink x", fs.Unlink(d, "x"), 0)
	_, _, err := fs.Lookup(d, "x")
	wantErrno(t, "lookup x after unlink", err, unix.ENOENT)
	wantNames(t, "d after unlink", listDir(t, fs, d), "y")

	dd, _ := mustCreate(t, fs, fs.Root(), "dd", objDir(0755))
	wantNames(t, "new dd", listDir(t, fs, dd))
	_, _, err = fs.Lookup(dd, "old")
	wantErrno(t, "lookup dd/old", err, unix.ENOENT)
	wantNames(t, "root", listDir(t, fs, fs.Root()), "d", "dd")
	wantErrno(t, "rmdir dd", fs.Rmdir(fs.Root(), "dd"), 0)
	wantNames(t, "root after rmdir", listDir(t, fs, fs.Root()), "d")
	fs.Forget(n, 1) // the unlinked x's data is kept until the kernel forgets it
	wantWorkEmpty(t, s)
}

// TestLookupListedMatchesLookup builds a stack with every way layers
// combine (shadowing, kernel and OCI whiteouts, opaque directories of
// both kinds, a directory over a file and a file over a directory, names
// in only some layers) and walks it twice, on two engines: once with
// Lookup, once with LookupListed of each entry of the parent's listing,
// as READDIRPLUS does. The two trees must be the same, names, kinds,
// inode numbers and contents; and the listed walk must have skipped
// lower layers (else it proves nothing).
func TestLookupListedMatchesLookup(t *testing.T) {
	s := newStack(t, 3)
	build(t, s.lower(2), "a=2", "only2=2", "d/x=2", "d/y=2", "d/sub/deep=2",
		"opq/h=2", "oci/h=2", "wd/h=2", "ociw/h=2", "fileover/", "fileover/k=2",
		"dirover=2", "m/n/o/p=2", "m/n/q=2")
	build(t, s.lower(1), "a=1", "d/y=1", "d/z=1", "d/sub/mid=1", "opq/*", "opq/m=1",
		"oci/m=1", "oci/.wh..wh..opq=", "!wd", "ociw/.wh.h=", "ociw/g=1",
		"fileover=1", "m/n/q=1", "m/r=1")
	build(t, s.lower(0), "b=0", "d/x=0", "d/w=0", "dirover/", "dirover/v=0",
		"m/n/o/s=0", "opq/t=0", "oci/t=0")
	build(t, s.upper, "u=u", "d/uu=u", "!d/z", "m/*", "m/mine=u")

	type obj struct {
		kind uint32
		ino  uint64
		data string
	}
	walkTree := func(fs *overlay.FS, listed bool) map[string]obj {
		tree := map[string]obj{}
		var visit func(n *overlay.Node, path string)
		visit = func(n *overlay.Node, path string) {
			ents, err := fs.ReadDirAt(n, 0)
			if err != nil {
				t.Fatalf("list %q: %v", path, err)
			}
			for i := range ents {
				var c *overlay.Node
				var st unix.Stat_t
				if listed {
					c, st, err = fs.LookupListed(n, &ents[i])
				} else {
					c, st, err = fs.Lookup(n, ents[i].Name)
				}
				p := path + "/" + ents[i].Name
				if err != nil {
					t.Fatalf("lookup %q (listed %v): %v", p, listed, err)
				}
				o := obj{kind: st.Mode & unix.S_IFMT, ino: st.Ino}
				if o.kind == unix.S_IFREG {
					o.data = readAll(t, fs, c)
				}
				tree[p] = o
				if o.kind == unix.S_IFDIR {
					visit(c, p)
				}
			}
		}
		visit(fs.Root(), "")
		return tree
	}
	plain := walkTree(mountCfg(t, s.configWithWork(t)), false)
	fsListed := mountCfg(t, s.configWithWork(t))
	listed := walkTree(fsListed, true)

	if len(plain) < 20 {
		t.Fatalf("the stack shows only %d objects", len(plain))
	}
	for p, o := range plain {
		if l, ok := listed[p]; !ok {
			t.Errorf("%s: found by Lookup, not by LookupListed", p)
		} else if l != o {
			t.Errorf("%s: Lookup %+v, LookupListed %+v", p, o, l)
		}
	}
	for p := range listed {
		if _, ok := plain[p]; !ok {
			t.Errorf("%s: found by LookupListed, not by Lookup", p)
		}
	}
	if fsListed.Stats().ProbesSkipped == 0 {
		t.Fatalf("LookupListed asked every lower layer")
	}
	// Spot checks that the stack merges as meant.
	for p, want := range map[string]string{"/a": "1", "/d/y": "1", "/d/x": "0", "/fileover": "1", "/m/mine": "u"} {
		if got := plain[p].data; got != want {
			t.Errorf("%s reads %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"/d/z", "/opq/h", "/oci/h", "/wd", "/ociw/h", "/dirover/k", "/m/n", "/m/r"} {
		if _, ok := plain[p]; ok {
			t.Errorf("%s is visible", p)
		}
	}
}
