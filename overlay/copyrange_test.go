package overlay_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// copyRange calls CopyRange and checks the count it returns.
func copyRange(t *testing.T, fs *overlay.FS, src *overlay.Node, offIn int64, dst *overlay.Node, offOut, length, want int64) {
	t.Helper()
	got, err := fs.CopyRange(src, offIn, dst, offOut, length, false)
	if err != nil || got != want {
		t.Fatalf("CopyRange(%d -> %d, %d bytes): %d, %v; want %d", offIn, offOut, length, got, err, want)
	}
}

// TestCopyRangeLowerToNew: a lower file's bytes copied into a new file;
// the source is not copied up, and a copy past its end stops there.
func TestCopyRangeLowerToNew(t *testing.T) {
	s := newStack(t, 1)
	want := bigLower(t, s.lower(0)+"/src", 3*mib+5, 0, 0)
	fs := s.mount()
	src, _ := mustWalk(t, fs, "src")
	dst, _ := mustCreate(t, fs, fs.Root(), "dst", objFile(0644))

	copyRange(t, fs, src, 1000, dst, 0, 2*mib, 2*mib)
	copyRange(t, fs, src, 3*mib, dst, 2*mib, mib, 5) // the source ends
	copyRange(t, fs, src, 4*mib, dst, 0, mib, 0)     // past it
	expect := append(append([]byte{}, want[1000:1000+2*mib]...), want[3*mib:]...)
	wantBytes(t, "dst", readRange(t, fs, dst, 0, 3*mib), expect)
	wantAbsent(t, s.upper+"/src")
	fs.Settle()
	got, err := os.ReadFile(s.upper + "/dst")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper dst", got, expect)
}

// TestCopyRangeIntoLower: copying into a lower file copies it up first;
// its lower file keeps its bytes, and the copy has the lower bytes around
// the range.
func TestCopyRangeIntoLower(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=0123456789", "b=abcdefghij")
	fs := s.mount()
	a, _ := mustWalk(t, fs, "a")
	b, _ := mustWalk(t, fs, "b")
	copyRange(t, fs, a, 2, b, 4, 3, 3)
	copyRange(t, fs, a, 8, b, 12, 10, 2) // past b's end: a hole between
	const want = "abcd234hij\x00\x0089"
	if got := readAll(t, fs, b); got != want {
		t.Fatalf("b: %q, want %q", got, want)
	}
	fs.Settle()
	if got := fileContent(t, s.upper+"/b"); got != want {
		t.Fatalf("upper b: %q, want %q", got, want)
	}
	if got := fileContent(t, s.lower(0)+"/b"); got != "abcdefghij" {
		t.Fatalf("lower b changed: %q", got)
	}
	wantAbsent(t, s.upper+"/a")
}

// TestCopyRangeWithinFile: source and destination are one lower file;
// it is copied up once and the bytes move within it.
func TestCopyRangeWithinFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=0123456789")
	fs := s.mount()
	f, _ := mustWalk(t, fs, "f")
	copyRange(t, fs, f, 0, f, 6, 4, 4)
	if got := readAll(t, fs, f); got != "0123450123" {
		t.Fatalf("f: %q", got)
	}
	if st := fs.Stats(); st.CopyUps != 1 {
		t.Fatalf("%d copy-ups, want 1", st.CopyUps)
	}
}

// TestCopyRangePendingData: source and destination are copies whose data
// is still to come: a metadata copy-up (chmod) and a large file being
// filled after a write. The copy must carry the lower bytes and the
// write, not the copies' holes.
func TestCopyRangePendingData(t *testing.T) {
	s := newStack(t, 1)
	size := int64(12 * mib)
	big := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	meta := bigLower(t, s.lower(0)+"/meta", 6*mib, 0, 0)
	other := bigLower(t, s.lower(0)+"/other", 5*mib, 0, 0)
	fs, release := s.mountAsync()
	defer release()
	bn, _ := mustWalk(t, fs, "big")
	mn, _ := mustWalk(t, fs, "meta")
	on, _ := mustWalk(t, fs, "other")

	writeBytes(t, fs, bn, []byte("written"), 7*mib+3) // big fills from here
	copy(big[7*mib+3:], "written")
	wantLazy(t, fs, 1)
	if _, err := fs.Setattr(mn, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Setattr(on, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}

	dst, _ := mustCreate(t, fs, fs.Root(), "dst", objFile(0644))
	copyRange(t, fs, bn, 6*mib, dst, 0, 2*mib, 2*mib)  // from the filling file
	copyRange(t, fs, mn, 0, dst, 2*mib, 6*mib, 6*mib)  // from a data-less copy
	copyRange(t, fs, mn, mib, on, 3*mib, 4*mib, 4*mib) // into one
	expect := append(append([]byte{}, big[6*mib:8*mib]...), meta...)
	wantBytes(t, "dst", readRange(t, fs, dst, 0, 8*mib+1), expect)
	other = append(other[:3*mib], meta[mib:5*mib]...)
	wantBytes(t, "other", readRange(t, fs, on, 0, 7*mib+1), other)

	release()
	fs.Settle()
	for name, want := range map[string][]byte{"big": big, "meta": meta, "other": other, "dst": expect} {
		got, err := os.ReadFile(s.upper + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes(t, "upper "+name, got, want)
	}
	if got, _ := os.ReadFile(s.lower(0) + "/other"); !bytes.Equal(got[:3*mib], other[:3*mib]) || len(got) != 5*mib {
		t.Fatalf("lower other changed")
	}
}

// TestCopyRangeBounded: one call copies at most 64 MiB; the caller asks
// again for the rest, as after a short write.
func TestCopyRangeBounded(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=")
	if err := os.Truncate(s.lower(0)+"/f", 80*mib); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	f, _ := mustWalk(t, fs, "f")
	dst, _ := mustCreate(t, fs, fs.Root(), "dst", objFile(0644))
	copyRange(t, fs, f, 0, dst, 0, 80*mib, 64*mib)
	copyRange(t, fs, f, 64*mib, dst, 64*mib, 16*mib, 16*mib)
	st, err := fs.Getattr(dst)
	if err != nil || st.Size != 80*mib {
		t.Fatalf("dst size %d, %v", st.Size, err)
	}
}

// TestCopyRangeErrors: a read-only engine refuses to write, a directory
// is no file to copy.
func TestCopyRangeErrors(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=data", "b=data", "d/")
	ro := s.mountRO()
	a, _ := mustWalk(t, ro, "a")
	b, _ := mustWalk(t, ro, "b")
	_, err := ro.CopyRange(a, 0, b, 0, 4, false)
	wantErrno(t, "read-only", err, unix.EROFS)

	fs := mountCfg(t, s.configWithWork(t))
	a, _ = mustWalk(t, fs, "a")
	d, _ := mustWalk(t, fs, "d")
	_, err = fs.CopyRange(d, 0, a, 0, 4, false)
	wantErrno(t, "from a directory", err, unix.EISDIR)
	_, err = fs.CopyRange(a, 0, d, 0, 4, false)
	wantErrno(t, "into a directory", err, unix.EISDIR)
	wantAbsent(t, s.upper+"/a")
}
