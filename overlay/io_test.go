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
