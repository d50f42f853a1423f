package overlay_test

import (
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestWithDataFile: only a file whose data is in the upper layer is
// handed out, and what is handed out is that file: writes through the
// descriptor are the node's data, and the node counts as written.
func TestWithDataFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower data", "d/g=other")
	fs := s.mount()
	f, _ := mustWalk(t, fs, "d/f")
	d, _ := mustWalk(t, fs, "d")

	called := false
	mark := func(int) error { called = true; return nil }
	if ok, err := fs.WithDataFile(f, true, mark); ok || err != nil || called {
		t.Fatalf("lower file: %v, %v, called %v; want not handed out", ok, err, called)
	}
	if ok, err := fs.WithDataFile(d, false, mark); ok || err != nil || called {
		t.Fatalf("directory: %v, %v, called %v; want not handed out", ok, err, called)
	}

	if _, err := fs.WriteAt(f, []byte("UPPER"), 0); err != nil { // copy-up
		t.Fatal(err)
	}
	var upper unix.Stat_t
	if err := unix.Stat(s.upper+"/d/f", &upper); err != nil {
		t.Fatal(err)
	}
	ok, err := fs.WithDataFile(f, true, func(fd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Ino != upper.Ino || st.Dev != upper.Dev {
			t.Errorf("handed out inode %d, the upper file is %d", st.Ino, upper.Ino)
		}
		_, err := unix.Pwrite(fd, []byte("KERNEL"), 0)
		return err
	})
	if !ok || err != nil {
		t.Fatalf("upper file: %v, %v; want handed out", ok, err)
	}
	buf := make([]byte, 32)
	n, err := fs.ReadAt(f, buf, 0)
	if err != nil || string(buf[:n]) != "KERNELdata" {
		t.Fatalf("node reads %q, %v after a write through the handed-out file", buf[:n], err)
	}

	g, _ := mustWalk(t, fs, "d/g")
	if _, err := fs.Setattr(g, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0o600}); err != nil {
		t.Fatal(err) // a metadata copy-up
	}
	if g.Written() {
		t.Fatal("chmod counted as a write")
	}
	if ok, err := fs.WithDataFile(g, false, func(int) error { return nil }); !ok || err != nil {
		t.Fatalf("file copied up by chmod: %v, %v; want handed out", ok, err)
	}
	if g.Written() {
		t.Error("handed out for reading, and counted as written")
	}
	fs.NoteWriter(g)
	if !g.Written() {
		t.Error("NoteWriter did not count the node as written")
	}
}

// TestWithDataFileReadOnly: in a read-only engine nothing is copied up,
// and every regular file is handed out: its lower file.
func TestWithDataFileReadOnly(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=data", "d/")
	fs := s.mountRO()
	f, _ := mustWalk(t, fs, "f")
	d, _ := mustWalk(t, fs, "d")
	var lower unix.Stat_t
	if err := unix.Stat(s.lower(0)+"/f", &lower); err != nil {
		t.Fatal(err)
	}
	ok, err := fs.WithDataFile(f, false, func(fd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Ino != lower.Ino || st.Dev != lower.Dev {
			t.Errorf("handed out inode %d, the lower file is %d", st.Ino, lower.Ino)
		}
		return nil
	})
	if !ok || err != nil {
		t.Fatalf("file of a read-only engine: %v, %v; want handed out", ok, err)
	}
	if ok, err := fs.WithDataFile(d, false, func(int) error { t.Error("called"); return nil }); ok || err != nil {
		t.Fatalf("directory: %v, %v; want not handed out", ok, err)
	}
}

// TestWithDataFileFilling: a copy whose data is still arriving is not
// handed out (it has holes where the data will be), and is once whole.
func TestWithDataFileFilling(t *testing.T) {
	s := newStack(t, 1)
	bigLower(t, s.lower(0)+"/big", 6<<20, 0, 0)
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")
	writeBytes(t, fs, n, []byte("x"), 0)
	wantLazy(t, fs, 1)
	if ok, err := fs.WithDataFile(n, false, func(int) error { t.Error("called"); return nil }); ok || err != nil {
		t.Fatalf("filling: %v, %v; want not handed out", ok, err)
	}
	release()
	fs.Settle()
	if ok, err := fs.WithDataFile(n, false, func(int) error { return nil }); !ok || err != nil {
		t.Fatalf("after the fill: %v, %v; want handed out", ok, err)
	}
}
