package overlay_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestCreateOverWhiteout: a new object replaces the whiteout of a removed
// lower object; a new directory is opaque, so the old lower directory's
// entries stay hidden.
func TestCreateOverWhiteout(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower", "d/old=", "d/sub/x=", "l=", "p=", "e/old=")
	build(t, s.upper, "!f", "!d", "!l", "!p")
	fs := s.mount()
	root := fs.Root()
	wantNames(t, "root before", listDir(t, fs, root), "e")

	f, h, st, err := fs.Create(root, "f", objFile(0644), caller0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		t.Fatalf("created f: mode %o size %d", st.Mode, st.Size)
	}
	if _, err := fs.Write(h, []byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	fs.Release(h)
	wantKind(t, s.upper+"/f", unix.S_IFREG)
	if got := readAll(t, fs, f); got != "new" {
		t.Fatalf("f reads %q", got)
	}

	d, dst := mustCreate(t, fs, root, "d", objDir(0755))
	if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("created d: mode %o", dst.Mode)
	}
	if !isOpaque(s.upper + "/d") {
		t.Fatalf("upper d: %s, want an opaque directory", describe(s.upper+"/d"))
	}
	if m := listDir(t, fs, d); len(m) != 0 {
		t.Fatalf("new directory lists %v", names(m))
	}
	_, _, err = fs.Lookup(d, "old")
	wantErrno(t, "d/old", err, unix.ENOENT)

	l, _ := mustCreate(t, fs, root, "l", overlay.NewObject{Kind: unix.S_IFLNK, Mode: 0777, Target: "tgt"})
	if got, err := fs.Readlink(l); err != nil || got != "tgt" {
		t.Fatalf("Readlink: %q %v", got, err)
	}
	wantKind(t, s.upper+"/l", unix.S_IFLNK)
	mustCreate(t, fs, root, "p", overlay.NewObject{Kind: unix.S_IFIFO, Mode: 0600})
	wantKind(t, s.upper+"/p", unix.S_IFIFO)

	// Whiteouts the engine made itself: unlink then create, rmdir then mkdir.
	e, _ := mustWalk(t, fs, "e")
	wantErrno(t, "unlink e/old", fs.Unlink(e, "old"), 0)
	wantErrno(t, "rmdir e", fs.Rmdir(root, "e"), 0)
	wantWhiteout(t, s.upper+"/e")
	e2, _ := mustCreate(t, fs, root, "e", objDir(0700))
	if e2 == e {
		t.Fatalf("the new directory is the removed one's node")
	}
	if !isOpaque(s.upper + "/e") {
		t.Fatalf("upper e: %s, want an opaque directory", describe(s.upper+"/e"))
	}
	if ents, _ := os.ReadDir(s.upper + "/e"); len(ents) != 0 {
		t.Fatalf("recreated upper e holds %d entries", len(ents))
	}
	wantWorkEmpty(t, s)

	// A new engine sees the same.
	fs2 := mountCfg(t, s.configWithWork(t))
	wantNames(t, "root in a new engine", listDir(t, fs2, fs2.Root()), "d", "e", "f", "l", "p")
	d2, _ := mustWalk(t, fs2, "d")
	wantNames(t, "d in a new engine", listDir(t, fs2, d2))
}

func TestCreateOwner(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	c := overlay.Caller{UID: 1000, GID: 2000}
	objs := map[string]overlay.NewObject{
		"file": objFile(0640),
		"dir":  objDir(0750),
		"link": {Kind: unix.S_IFLNK, Mode: 0777, Target: "x"},
		"fifo": {Kind: unix.S_IFIFO, Mode: 0600},
		"sock": {Kind: unix.S_IFSOCK, Mode: 0600},
		"chr":  {Kind: unix.S_IFCHR, Mode: 0600, Rdev: uint32(unix.Mkdev(1, 3))},
	}
	for name, obj := range objs {
		n, h, st, err := fs.Create(d, name, obj, c)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if (h != nil) != (obj.Kind == unix.S_IFREG) {
			t.Fatalf("create %s: handle %v", name, h)
		}
		if h != nil {
			fs.Release(h)
		}
		if n.Kind() != obj.Kind {
			t.Fatalf("%s: node kind %o", name, n.Kind())
		}
		ust := lstat(t, s.upper+"/d/"+name)
		if ust.Uid != 1000 || ust.Gid != 2000 || st.Uid != 1000 || st.Gid != 2000 {
			t.Errorf("%s: upper owner %d:%d, reported %d:%d, want 1000:2000", name, ust.Uid, ust.Gid, st.Uid, st.Gid)
		}
		if ust.Mode&unix.S_IFMT != obj.Kind {
			t.Errorf("%s: upper kind %o", name, ust.Mode&unix.S_IFMT)
		}
		if obj.Kind != unix.S_IFLNK && ust.Mode&07777 != obj.Mode {
			t.Errorf("%s: upper mode %o, want %o", name, ust.Mode&07777, obj.Mode)
		}
		if st.Ino != n.Ino() || st.Mode != ust.Mode {
			t.Errorf("%s: reported ino %d mode %o, node ino %d, upper mode %o", name, st.Ino, st.Mode, n.Ino(), ust.Mode)
		}
		if obj.Kind == unix.S_IFCHR && ust.Rdev != uint64(obj.Rdev) {
			t.Errorf("%s: rdev %x", name, ust.Rdev)
		}
	}
	wantNames(t, "d", listDir(t, fs, d), "chr", "dir", "fifo", "file", "link", "sock")
}

// TestCreateSetgidDir: in a set-group-ID directory new objects take the
// directory's group and new directories inherit the bit.
func TestCreateSetgidDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "lsg/")
	build(t, s.upper, "usg/")
	for _, p := range []string{s.lower(0) + "/lsg", s.upper + "/usg"} {
		if err := os.Chown(p, 0, 3000); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 02775|os.ModeSetgid); err != nil {
			t.Fatal(err)
		}
	}
	fs := s.mount()
	c := overlay.Caller{UID: 1000, GID: 2000}
	for _, dir := range []string{"lsg", "usg"} {
		d, _ := mustWalk(t, fs, dir)
		_, h, fst, err := fs.Create(d, "file", objFile(0644), c)
		if err != nil {
			t.Fatal(err)
		}
		fs.Release(h)
		_, _, dst, err := fs.Create(d, "dir", objDir(0755), c)
		if err != nil {
			t.Fatal(err)
		}
		uf, ud := lstat(t, s.upper+"/"+dir+"/file"), lstat(t, s.upper+"/"+dir+"/dir")
		if uf.Gid != 3000 || ud.Gid != 3000 || fst.Gid != 3000 || dst.Gid != 3000 {
			t.Errorf("%s: groups file %d dir %d (reported %d %d), want the directory's 3000", dir, uf.Gid, ud.Gid, fst.Gid, dst.Gid)
		}
		if uf.Uid != 1000 || ud.Uid != 1000 {
			t.Errorf("%s: owners %d %d, want 1000", dir, uf.Uid, ud.Uid)
		}
		if ud.Mode&07777 != 02755 || dst.Mode&07777 != 02755 {
			t.Errorf("%s: new directory mode %o (reported %o), want 2755", dir, ud.Mode&07777, dst.Mode&07777)
		}
		if uf.Mode&07777 != 0644 {
			t.Errorf("%s: new file mode %o, want 644", dir, uf.Mode&07777)
		}
	}
	if st := lstat(t, s.upper+"/lsg"); st.Mode&07777 != 02775 || st.Gid != 3000 {
		t.Fatalf("copied-up lsg: mode %o gid %d", st.Mode&07777, st.Gid)
	}
}

// TestCreateSetgidDirOverWhiteout: the same in a setgid directory when
// the name holds a whiteout (the object is made in the work directory,
// which is not setgid, and then renamed into place).
func TestCreateSetgidDirOverWhiteout(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "sg/f=", "sg/d/")
	build(t, s.upper, "sg/", "!sg/f", "!sg/d")
	p := s.upper + "/sg"
	if err := os.Chown(p, 0, 3000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	sg, _ := mustWalk(t, fs, "sg")
	for _, c := range []overlay.Caller{{UID: 0, GID: 0}, {UID: 1000, GID: 2000}} {
		t.Run("uid"+strconv.Itoa(int(c.UID)), func(t *testing.T) {
			if c.UID != 0 {
				// Put the whiteouts back for the second caller.
				wantErrno(t, "unlink f", fs.Unlink(sg, "f"), 0)
				wantErrno(t, "rmdir d", fs.Rmdir(sg, "d"), 0)
			}
			wantWhiteout(t, p+"/f")
			_, h, fst, err := fs.Create(sg, "f", objFile(0644), c)
			if err != nil {
				t.Fatal(err)
			}
			fs.Release(h)
			_, _, dst, err := fs.Create(sg, "d", objDir(0755), c)
			if err != nil {
				t.Fatal(err)
			}
			uf, ud := lstat(t, p+"/f"), lstat(t, p+"/d")
			if uf.Gid != 3000 || ud.Gid != 3000 || fst.Gid != 3000 || dst.Gid != 3000 {
				// The object is made in the work directory, which is not
				// setgid: the group must be set from the directory's.
				t.Fatalf("Create over a whiteout in a setgid directory as uid %d gid %d: upper groups file %d dir %d "+
					"(reported %d, %d), want the directory's 3000",
					c.UID, c.GID, uf.Gid, ud.Gid, fst.Gid, dst.Gid)
			}
			if ud.Mode&07777 != 02755 || uf.Uid != c.UID || ud.Uid != c.UID {
				t.Fatalf("dir mode %o, owners %d %d", ud.Mode&07777, uf.Uid, ud.Uid)
			}
		})
	}
}

func TestCreateExisting(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "deep=", "d/x=")
	build(t, s.lower(0), "f=", "d/")
	build(t, s.upper, "u=")
	fs := s.mount()
	root := fs.Root()
	d, _ := mustWalk(t, fs, "d")
	for _, c := range []struct {
		parent *overlay.Node
		name   string
	}{{root, "f"}, {root, "deep"}, {root, "u"}, {root, "d"}, {d, "x"}} {
		for _, obj := range []overlay.NewObject{objFile(0644), objDir(0755), {Kind: unix.S_IFLNK, Target: "t"}} {
			_, _, _, err := fs.Create(c.parent, c.name, obj, caller0)
			wantErrno(t, "create over visible "+c.name, err, unix.EEXIST)
		}
	}
	_, _, _, err := fs.Create(root, strings.Repeat("n", 256), objFile(0644), caller0)
	wantErrno(t, "create with a 256-byte name", err, unix.ENAMETOOLONG)
	// (The parent may have been copied up: through FUSE the kernel's own
	// lookup answers EEXIST before Create is called.)
	for _, p := range []string{"f", "deep", "d/x"} {
		wantAbsent(t, s.upper+"/"+p)
	}
	// Create in a removed directory.
	x, _, _ := fs.Lookup(d, "x")
	wantErrno(t, "unlink d/x", fs.Unlink(d, "x"), 0)
	_ = x
	wantErrno(t, "rmdir d", fs.Rmdir(root, "d"), 0)
	_, _, _, err = fs.Create(d, "new", objFile(0644), caller0)
	wantErrno(t, "create in a removed directory", err, unix.ENOENT)
	wantWhiteout(t, s.upper+"/d")
	wantWorkEmpty(t, s)
}

func TestCreateInLowerDir(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a/b/keep=k")
	fs := s.mount()
	b, _ := mustWalk(t, fs, "a/b")
	n, h, _, err := fs.Create(b, "new", overlay.NewObject{Kind: unix.S_IFREG, Mode: 0600, Open: true, Flags: unix.O_WRONLY}, caller0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Write(h, []byte("hello"), 0); err != nil {
		t.Fatalf("write through the create handle: %v", err)
	}
	fs.Release(h)
	if got := fileContent(t, s.upper+"/a/b/new"); got != "hello" {
		t.Fatalf("upper a/b/new: %q", got)
	}
	wantAbsent(t, s.upper+"/a/b/keep")
	wantNames(t, "a/b", listDir(t, fs, b), "keep", "new")
	again, _, err := fs.Lookup(b, "new")
	if err != nil || again != n {
		t.Fatalf("lookup of the created name: %v, same node %v", err, again == n)
	}
	if got := fs.Stats().CopyUps; got != 2 {
		t.Fatalf("CopyUps %d, want 2 (a, a/b)", got)
	}
}

// TestCreateWhiteoutDevice: mknod of a character device 0/0 would write a
// whiteout; the kernel refuses it with EPERM.
func TestCreateWhiteoutDevice(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=")
	fs := s.mount()
	_, _, _, err := fs.Create(fs.Root(), "wh", overlay.NewObject{Kind: unix.S_IFCHR, Mode: 0644}, caller0)
	wantErrno(t, "mknod c 0 0", err, unix.EPERM)
}
