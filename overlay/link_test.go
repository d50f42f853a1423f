package overlay_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestLinkLowerFile: linking a lower file copies it up, then links it;
// both names are one node.
func TestLinkLowerFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=data", "e/")
	fs := s.mount()
	f, st0 := mustWalk(t, fs, "d/f")
	e, _ := mustWalk(t, fs, "e")
	st, err := fs.Link(f, e, "g")
	if err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 2 || st.Ino != st0.Ino {
		t.Fatalf("Link: nlink %d ino %d, want 2 and %d", st.Nlink, st.Ino, st0.Ino)
	}
	uf, ug := lstat(t, s.upper+"/d/f"), lstat(t, s.upper+"/e/g")
	if uf.Ino != ug.Ino || uf.Nlink != 2 {
		t.Fatalf("upper d/f and e/g: inodes %d %d, nlink %d; want one inode with 2 links", uf.Ino, ug.Ino, uf.Nlink)
	}
	if got := fs.Stats().CopyUps; got != 3 {
		t.Fatalf("CopyUps %d, want 3 (d, f, e)", got)
	}
	g, gst := mustWalk(t, fs, "e/g")
	f2, fst := mustWalk(t, fs, "d/f")
	if g != f || f2 != f {
		t.Fatalf("the two names are different nodes")
	}
	if gst.Nlink != 2 || fst.Nlink != 2 || gst.Ino != st0.Ino {
		t.Fatalf("nlink %d %d, ino %d", gst.Nlink, fst.Nlink, gst.Ino)
	}
	writeFile(t, fs, g, "DATA", 0)
	if got := fileContent(t, s.upper+"/d/f"); got != "DATA" {
		t.Fatalf("write through one name: the other holds %q", got)
	}

	// After the kernel forgets everything, both names still meet in one
	// node.
	fs.Forget(f, 100)
	if fs.Node(f.ID()) != nil {
		t.Fatalf("node not forgotten")
	}
	g2, _ := mustWalk(t, fs, "e/g")
	f3, _ := mustWalk(t, fs, "d/f")
	if g2 != f3 {
		t.Fatalf("after forget the two names are different nodes")
	}

	// Unlink one name: the other works on.
	d, _ := mustWalk(t, fs, "d")
	wantErrno(t, "unlink d/f", fs.Unlink(d, "f"), 0)
	wantWhiteout(t, s.upper+"/d/f") // the lower d/f must stay hidden
	st, err = fs.Getattr(g2)
	if err != nil || st.Nlink != 1 {
		t.Fatalf("Getattr of the other name: nlink %d, %v", st.Nlink, err)
	}
	if got := readAll(t, fs, g2); got != "DATA" {
		t.Fatalf("other name reads %q", got)
	}
	if _, err := fs.Setattr(g2, &overlaySetMode0600); err != nil {
		t.Fatalf("chmod through the other name: %v", err)
	}
	if st := lstat(t, s.upper+"/e/g"); st.Mode&07777 != 0600 {
		t.Fatalf("upper e/g mode %o", st.Mode&07777)
	}
	_, _, err = fs.Lookup(d, "f")
	wantErrno(t, "lookup d/f", err, unix.ENOENT)
	wantWorkEmpty(t, s)
}

// TestLinkUnlinkOtherName: unlinking the newer name leaves the first.
func TestLinkUnlinkOtherName(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "f=x")
	fs := s.mount()
	root := fs.Root()
	f, _ := mustWalk(t, fs, "f")
	if _, err := fs.Link(f, root, "g"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "unlink g", fs.Unlink(root, "g"), 0)
	wantAbsent(t, s.upper+"/g") // no lower g: no whiteout
	st, err := fs.Getattr(f)
	if err != nil || st.Nlink != 1 {
		t.Fatalf("Getattr f: nlink %d, %v", st.Nlink, err)
	}
	n, _ := mustWalk(t, fs, "f")
	if n != f {
		t.Fatalf("f has a new node")
	}
	wantNames(t, "root", listDir(t, fs, root), "f")
}

func TestLinkErrors(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=", "d/", "w=")
	build(t, s.upper, "!w", "u=")
	fs := s.mount()
	root := fs.Root()
	f, _ := mustWalk(t, fs, "f")
	d, _ := mustWalk(t, fs, "d")
	_, err := fs.Link(d, root, "d2")
	wantErrno(t, "link of a directory", err, unix.EPERM)
	_, err = fs.Link(f, root, "u")
	wantErrno(t, "link over an existing name", err, unix.EEXIST)
	_, err = fs.Link(f, root, strings.Repeat("n", 256))
	wantErrno(t, "link with a long name", err, unix.ENAMETOOLONG)
	// Over a whiteout.
	if _, err := fs.Link(f, root, "w"); err != nil {
		t.Fatalf("link over a whiteout: %v", err)
	}
	if uf, uw := lstat(t, s.upper+"/f"), lstat(t, s.upper+"/w"); uf.Ino != uw.Ino {
		t.Fatalf("upper w is not a link of f: %s", describe(s.upper+"/w"))
	}
	wantNames(t, "root", listDir(t, fs, root), "d", "f", "u", "w")
	wantWorkEmpty(t, s)
}

// TestConcurrentLookupsOfHardLinksShareANode looks up every name of a
// hard-linked upper file at once, many times over: all of them must get
// the file's one node (the kernel's lookups run in parallel, and so do
// READDIRPLUS's own).
func TestConcurrentLookupsOfHardLinksShareANode(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "f0=x")
	const names = 8
	for i := 1; i < names; i++ {
		if err := os.Link(s.upper+"/f0", fmt.Sprintf("%s/f%d", s.upper, i)); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 50; round++ {
		fs := mountCfg(t, s.configWithWork(t))
		root := fs.Root()
		nodes := make([]*overlay.Node, names)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range nodes {
			wg.Go(func() {
				<-start
				n, _, err := fs.Lookup(root, fmt.Sprintf("f%d", i))
				if err != nil {
					t.Errorf("lookup f%d: %v", i, err)
				}
				nodes[i] = n
			})
		}
		close(start)
		wg.Wait()
		for i, n := range nodes {
			if n != nodes[0] {
				t.Fatalf("round %d: f%d has node %p, f0 %p", round, i, n, nodes[0])
			}
		}
		fs.Close()
	}
}
