package overlay_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestHandleSeesCopyUp: a handle opened read-only on the lower file reads
// what another handle wrote after copying the file up.
func TestHandleSeesCopyUp(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower data")
	fs := s.mount()
	f, _ := mustWalk(t, fs, "d/f")
	ro, err := fs.Open(f, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Release(ro)
	if got := readHandle(t, fs, ro); got != "lower data" {
		t.Fatalf("read %q", got)
	}
	if _, err := fs.Write(ro, []byte("x"), 0); err != unix.EBADF {
		t.Fatalf("write through a read-only handle: %v, want EBADF", err)
	}
	if err := fs.Fsync(ro, false); err != nil {
		t.Fatalf("fsync of a lower file: %v", err)
	}
	rw, err := fs.Open(f, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Write(rw, []byte("UPPER"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readHandle(t, fs, ro); got != "UPPER data" {
		t.Fatalf("read-only handle opened before copy-up reads %q, want the upper data", got)
	}
	if err := fs.Fsync(rw, true); err != nil {
		t.Fatal(err)
	}
	fs.Release(rw)
	if got := readHandle(t, fs, ro); got != "UPPER data" {
		t.Fatalf("after the writer's release the reader reads %q", got)
	}
	if got := fileContent(t, s.upper+"/d/f"); got != "UPPER data" {
		t.Fatalf("upper file holds %q", got)
	}
	if got := fileContent(t, s.lower(0)+"/d/f"); got != "lower data" {
		t.Fatalf("lower file changed to %q", got)
	}
	// Attributes follow the open file.
	if st, err := fs.Getattr(f); err != nil || st.Size != 10 {
		t.Fatalf("Getattr: size %d, %v", st.Size, err)
	}
}

// TestHandleReadOnlyThenWritable: a node of the upper layer opened
// read-only, then read-write. Regression: reopening the shared file
// through /proc/self/fd must follow the magic link (was ELOOP).
func TestHandleReadOnlyThenWritable(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "low=lower")
	build(t, s.upper, "d/up=upper")
	fs := s.mount()

	// Copy "low" up and let its backing file go, so both nodes are
	// upper nodes without an open file.
	low, _ := mustWalk(t, fs, "low")
	writeFile(t, fs, low, "L", 0)
	up, _ := mustWalk(t, fs, "d/up")
	for _, c := range []struct {
		n    *overlay.Node
		want string
	}{{low, "Lower"}, {up, "upper"}} {
		ro, err := fs.Open(c.n, unix.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		if got := readHandle(t, fs, ro); got != c.want {
			t.Fatalf("read %q, want %q", got, c.want)
		}
		rw, err := fs.Open(c.n, unix.O_RDWR)
		if err != nil {
			t.Fatalf("read-write open after a read-only open of an upper file: %v", err)
		}
		if _, err := fs.Write(rw, []byte("W"), 0); err != nil {
			t.Fatal(err)
		}
		want := "W" + c.want[1:]
		if got := readHandle(t, fs, ro); got != want {
			t.Fatalf("reader reads %q, want %q", got, want)
		}
		// A third handle, write-only, shares the same file.
		wo, err := fs.Open(c.n, unix.O_WRONLY)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Write(wo, []byte("Z"), 1); err != nil {
			t.Fatal(err)
		}
		fs.Release(rw)
		fs.Release(wo)
		want = "WZ" + c.want[2:]
		if got := readHandle(t, fs, ro); got != want {
			t.Fatalf("reader reads %q, want %q", got, want)
		}
		fs.Release(ro)
	}
	if got := fileContent(t, s.upper+"/d/up"); got != "WZper" {
		t.Fatalf("upper d/up holds %q", got)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHandleRelease: handles of one node share one open file, kept in
// the engine's cache after the last release and closed once idle.
func TestHandleRelease(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=a", "b=b")
	fs := s.mount()
	a, _ := mustWalk(t, fs, "a")
	b, _ := mustWalk(t, fs, "b")
	base := openFDs(t)
	var hs []*overlay.Handle
	for i := 0; i < 3; i++ {
		h, err := fs.Open(a, unix.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if h := hs[0]; h.Node() != a {
		t.Fatalf("Handle.Node() is not the node")
	}
	if got := openFDs(t); got != base+1 {
		t.Fatalf("three handles of one node hold %d descriptors, want 1", got-base)
	}
	hb, err := fs.Open(b, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t); got != base+2 {
		t.Fatalf("two nodes hold %d descriptors, want 2", got-base)
	}
	fs.Release(hs[0])
	fs.Release(hs[1])
	if got := readHandle(t, fs, hs[2]); got != "a" {
		t.Fatalf("last handle reads %q", got)
	}
	fs.Release(hs[2])
	fs.Release(hb)
	if got := openFDs(t); got != base+2 {
		t.Fatalf("%d descriptors open after every release, want the 2 cached", got-base)
	}
	fs.CloseIdleFiles() // first pass: used since the last one
	fs.CloseIdleFiles()
	if got := openFDs(t); got != base {
		t.Fatalf("%d descriptors left open when idle", got-base)
	}
	if _, err := fs.Read(hs[2], make([]byte, 1), 0); err != unix.EBADF {
		t.Fatalf("read through a released handle: %v, want EBADF", err)
	}
	// Copy-up while open replaces the descriptor, it does not add one.
	h, _ := fs.Open(a, unix.O_RDONLY)
	h2, err := fs.Open(a, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t); got != base+1 {
		t.Fatalf("after copy-up the node holds %d descriptors, want 1", got-base)
	}
	fs.Release(h)
	fs.Release(h2)
	fs.CloseIdleFiles()
	fs.CloseIdleFiles()
	if got := openFDs(t); got != base {
		t.Fatalf("%d descriptors left open", got-base)
	}
}

// TestHandleUnlinkedWhileOpen: an upper file removed while open keeps
// working through its handles.
func TestHandleUnlinkedWhileOpen(t *testing.T) {
	s := newStack(t, 1)
	fs := s.mount()
	f, h, _, err := fs.Create(fs.Root(), "f", objFile(0644), caller0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Write(h, []byte("before"), 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.SetXattr(f, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "unlink", fs.Unlink(fs.Root(), "f"), 0)
	wantAbsent(t, s.upper+"/f") // upper only: no whiteout
	_, _, err = fs.Lookup(fs.Root(), "f")
	wantErrno(t, "lookup after unlink", err, unix.ENOENT)

	if _, err := fs.Write(h, []byte("AFTER"), 0); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	if got := readHandle(t, fs, h); got != "AFTERe" {
		t.Fatalf("read after unlink: %q", got)
	}
	st, err := fs.Getattr(f)
	if err != nil || st.Nlink != 0 || st.Size != 6 {
		t.Fatalf("Getattr after unlink: nlink %d size %d, %v", st.Nlink, st.Size, err)
	}
	if _, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetSize | overlay.SetMode, Size: 2, Mode: 0600}); err != nil {
		t.Fatalf("ftruncate+fchmod after unlink: %v", err)
	}
	if got := readHandle(t, fs, h); got != "AF" {
		t.Fatalf("read after truncate: %q", got)
	}
	if err := fs.Fsync(h, false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := fs.GetXattr(f, "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Fatalf("GetXattr after unlink: %q %v", buf[:n], err)
	}
	if err := fs.SetXattr(f, "user.k2", []byte("w"), 0); err != nil {
		t.Fatalf("SetXattr after unlink: %v", err)
	}
	// A second handle can be opened on the node (open of /proc/PID/fd/N).
	h2, err := fs.Open(f, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("open of an unlinked but open file: %v", err)
	}
	if got := readHandle(t, fs, h2); got != "AF" {
		t.Fatalf("second handle reads %q", got)
	}
	fs.Release(h2)
	if ents, _ := os.ReadDir(s.upper); len(ents) != 0 {
		t.Fatalf("upper layer not empty: %v", ents)
	}
	// Its data stays in the work directory for the kernel's open files
	// until the kernel forgets the node.
	fs.CloseIdleFiles()
	fs.CloseIdleFiles()
	if got := readHandle(t, fs, h); got != "AF" {
		t.Fatalf("read after the backing file was closed: %q", got)
	}
	fs.Release(h)
	fs.Forget(f, 1)
	wantWorkEmpty(t, s)
}

// TestHandleListXattrUnlinked: the xattrs of a file unlinked while open
// are listed.
func TestHandleListXattrUnlinked(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "f=data")
	if err := unix.Lsetxattr(s.upper+"/f", "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	f, _ := mustWalk(t, fs, "f")
	if got := listXattrNames(t, fs, f); strings.Join(got, ",") != "user.k" {
		t.Fatalf("ListXattr before unlink: %q", got)
	}
	h, err := fs.Open(f, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Release(h)
	wantErrno(t, "unlink", fs.Unlink(fs.Root(), "f"), 0)
	buf := make([]byte, 16)
	if n, err := fs.GetXattr(f, "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Fatalf("GetXattr after unlink: %q %v", buf[:n], err)
	}
	if got := listXattrNames(t, fs, f); strings.Join(got, ",") != "user.k" {
		// llistxattr on /proc/self/fd/N lists the magic link, not the
		// file: the listing must go through the descriptor.
		t.Fatalf("ListXattr of a file unlinked while open gives %q, want [user.k]", got)
	}
}

// TestHandleUnlinkedLowerWhileOpen: a lower file removed while open is
// still readable, and can still be opened for writing (copied up with no
// name).
func TestHandleUnlinkedLowerWhileOpen(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	f, _, _ := fs.Lookup(d, "f")
	ro, err := fs.Open(f, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Release(ro)
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	wantWhiteout(t, s.upper+"/d/f")
	if got := readHandle(t, fs, ro); got != "lower" {
		t.Fatalf("read after unlink: %q", got)
	}
	if st, err := fs.Getattr(f); err != nil || st.Size != 5 {
		t.Fatalf("Getattr after unlink: size %d, %v", st.Size, err)
	}
	rw, err := fs.Open(f, unix.O_RDWR)
	if err != nil {
		t.Fatalf("open for write after unlink: %v", err)
	}
	if _, err := fs.Write(rw, []byte("LOW"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readHandle(t, fs, ro); got != "LOWer" {
		t.Fatalf("reader reads %q after a write through the other handle", got)
	}
	fs.Release(rw)
	wantWhiteout(t, s.upper+"/d/f")
	if got := fileContent(t, s.lower(0)+"/d/f"); got != "lower" {
		t.Fatalf("lower file changed: %q", got)
	}
	if ents, _ := os.ReadDir(s.upper + "/d"); len(ents) != 1 {
		t.Fatalf("upper d holds %d entries, want the whiteout only", len(ents))
	}
	wantWorkEmpty(t, s)
}

func TestHandleWrongKinds(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/", "f=")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	f, _ := mustWalk(t, fs, "f")
	_, err := fs.Open(d, unix.O_RDONLY)
	wantErrno(t, "Open of a directory", err, unix.EISDIR)
	_, err = fs.OpenDir(f)
	wantErrno(t, "OpenDir of a file", err, unix.ENOTDIR)
	h, _ := fs.Open(f, unix.O_RDONLY)
	wantErrno(t, "Fallocate on a read-only handle", fs.Fallocate(h, 0, 0, 4096), unix.EBADF)
	fs.Release(h)
	h, _ = fs.Open(f, unix.O_RDWR)
	wantErrno(t, "Fallocate", fs.Fallocate(h, 0, 0, 8192), 0)
	if st, _ := fs.Getattr(f); st.Size != 8192 {
		t.Fatalf("size %d after fallocate", st.Size)
	}
	fs.Release(h)
}
