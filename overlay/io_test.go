package overlay_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestWriteKeepingMtime: a write for a caller that keeps times itself
// (the kernel's writeback cache) copies up and writes as WriteAt does but
// leaves the mtime as it was; a plain write moves it.
func TestWriteKeepingMtime(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "kept=lower data", "moved=lower data", "big="+strings.Repeat("b", 5<<20))
	old := unix.Timespec{Sec: 1234567890, Nsec: 42}
	for _, name := range []string{"kept", "moved", "big"} {
		setTimes(t, s.lower(0)+"/"+name, old, old)
	}
	fs := s.mount()
	for _, name := range []string{"kept", "big"} { // big: copied up with its data following
		n, _ := mustWalk(t, fs, name)
		if _, err := fs.WriteKeepingMtime(n, []byte("UPPER"), 3); err != nil {
			t.Fatal(err)
		}
		st, err := fs.Getattr(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mtim != old {
			t.Errorf("%s: mtime %v after WriteKeepingMtime, want %v", name, st.Mtim, old)
		}
		buf := make([]byte, 10)
		if _, err := fs.ReadAt(n, buf, 0); err != nil || string(buf[3:8]) != "UPPER" {
			t.Errorf("%s: reads %q, %v", name, buf, err)
		}
	}
	n, _ := mustWalk(t, fs, "moved")
	if _, err := fs.WriteAt(n, []byte("UPPER"), 3); err != nil {
		t.Fatal(err)
	}
	if st, err := fs.Getattr(n); err != nil || st.Mtim == old {
		t.Errorf("moved: mtime %v after WriteAt (%v), want it set by the write", st.Mtim, err)
	}

	// A truncate without a new mtime keeps it when asked to.
	kept, _ := mustWalk(t, fs, "kept")
	st, err := fs.Setattr(kept, &overlay.SetAttr{Valid: overlay.SetSize, Size: 4, KeepMtime: true})
	if err != nil || st.Size != 4 || st.Mtim != old {
		t.Errorf("truncate with KeepMtime: size %d, mtime %v, %v; want 4, %v", st.Size, st.Mtim, err, old)
	}
	st, err = fs.Setattr(kept, &overlay.SetAttr{Valid: overlay.SetSize, Size: 2})
	if err != nil || st.Size != 2 || st.Mtim == old {
		t.Errorf("truncate: size %d, mtime %v, %v; want 2 and a new mtime", st.Size, st.Mtim, err)
	}
}

// TestWriteKeepingMtimeRacesSetattr: whichever comes first, a write that
// keeps the mtime cannot undo the mtime a concurrent Setattr sets (the
// kernel sends the time it showed with a SETATTR that may overtake the
// data it belongs to).
func TestWriteKeepingMtimeRacesSetattr(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower data")
	fs := s.mount()
	n, _ := mustWalk(t, fs, "f")
	for i := 0; i < 1000; i++ {
		want := unix.Timespec{Sec: int64(1500000000 + i), Nsec: int64(i)}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := fs.WriteKeepingMtime(n, []byte("x"), int64(i%10)); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: want, KeepMtime: true}); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		st, err := fs.Getattr(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mtim != want {
			t.Fatalf("round %d: mtime %v after a write and a Setattr of %v", i, st.Mtim, want)
		}
	}
}

// TestRemovedSameMtimeCopiesNothing: setting a removed lower file's mtime
// to what it is (the kernel's writeback cache does, when it lets go of an
// unlinked inode) copies nothing up; a real change still does.
func TestRemovedSameMtimeCopiesNothing(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower data", "g=lower data")
	fs := s.mount()
	root, _ := mustWalk(t, fs, "")
	f, st := mustWalk(t, fs, "f")
	g, _ := mustWalk(t, fs, "g")
	wantErrno(t, "unlink f", fs.Unlink(root, "f"), 0)
	wantErrno(t, "unlink g", fs.Unlink(root, "g"), 0)
	got, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: st.Mtim, KeepMtime: true})
	if err != nil || got.Mtim != st.Mtim {
		t.Fatalf("Setattr of the same mtime: %v, %v", got.Mtim, err)
	}
	if n := fs.Stats().CopyUps; n != 0 {
		t.Errorf("%d copy-ups after setting a removed file's mtime to what it was", n)
	}
	later := unix.Timespec{Sec: st.Mtim.Sec + 100}
	if got, err := fs.Setattr(g, &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: later, KeepMtime: true}); err != nil || got.Mtim != later {
		t.Fatalf("Setattr of a new mtime on a removed file: %v, %v", got.Mtim, err)
	}
	if n := fs.Stats().CopyUps; n != 1 {
		t.Errorf("%d copy-ups after a removed file's mtime changed, want 1", n)
	}
	if got, err := fs.Getattr(g); err != nil || got.Mtim != later {
		t.Errorf("removed file's mtime %v, %v; want %v", got.Mtim, err, later)
	}
}
