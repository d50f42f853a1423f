package overlay_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

// bigLower writes a file of size bytes of random data at path, with a
// hole of holeLen bytes at holeOff (holeLen 0: none), and returns its
// content.
func bigLower(t *testing.T, path string, size, holeOff, holeLen int64) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(size)).Read(data)
	for i := holeOff; i < holeOff+holeLen; i++ {
		data[i] = 0
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[:holeOff], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[holeOff+holeLen:], holeOff+holeLen); err != nil {
		t.Fatal(err)
	}
	return data
}

// readRange reads length bytes at off through the engine.
func readRange(t *testing.T, fs *overlay.FS, n *overlay.Node, off, length int64) []byte {
	t.Helper()
	buf := make([]byte, length)
	got, err := fs.ReadAt(n, buf, off)
	if err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, length, err)
	}
	return buf[:got]
}

func wantBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

// writeBytes writes data at off through the engine.
func writeBytes(t *testing.T, fs *overlay.FS, n *overlay.Node, data []byte, off int64) {
	t.Helper()
	if w, err := fs.WriteAt(n, data, off); err != nil || w != len(data) {
		t.Fatalf("WriteAt(%d, %d bytes): %d, %v", off, len(data), w, err)
	}
}

// wantLazy checks that the engine left a copy-up's data to a fill, as
// it does where the upper filesystem cannot clone files (ext4, tmpfs).
func wantLazy(t *testing.T, fs *overlay.FS, want uint64) {
	t.Helper()
	if got := fs.Stats().LazyFills; got != want {
		t.Fatalf("lazy fills: %d, want %d", got, want)
	}
}

// TestFillWriteBeforeData: a write to a large lower file returns before
// the file is copied; the file reads the same through the engine at
// every point, and the upper layer gets the whole copy, holes kept, with
// the modification time of the write.
func TestFillWriteBeforeData(t *testing.T) {
	s := newStack(t, 1)
	size := int64(12*mib + 777)
	want := bigLower(t, s.lower(0)+"/big", size, 6*mib, 3*mib)
	lst := lstat(t, s.lower(0)+"/big")
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")

	writeBytes(t, fs, n, []byte("hello"), 5*mib+10) // inside chunk 5
	copy(want[5*mib+10:], "hello")
	whole := bytes.Repeat([]byte{'W'}, mib) // chunk 9 whole: no copy needed
	writeBytes(t, fs, n, whole, 9*mib)
	copy(want[9*mib:], whole)
	tail := []byte("past the end")
	writeBytes(t, fs, n, tail, size+100) // beyond the lower file's size
	want = append(want, make([]byte, 100)...)
	want = append(want, tail...)
	wantLazy(t, fs, 1)

	wantBytes(t, "whole file while filling", readRange(t, fs, n, 0, int64(len(want))+10), want)
	// Reads across chunks in both states.
	wantBytes(t, "range over chunks 4-6", readRange(t, fs, n, 4*mib+3, 2*mib+5), want[4*mib+3:6*mib+8])
	wantBytes(t, "range over the old end", readRange(t, fs, n, size-50, 200), want[size-50:])
	st, err := fs.Getattr(n)
	if err != nil || st.Size != int64(len(want)) || st.Blocks < lst.Blocks {
		t.Fatalf("Getattr while filling: size %d blocks %d (lower %d), %v", st.Size, st.Blocks, lst.Blocks, err)
	}
	wantAbsent(t, s.upper+"/big") // not linked before it is whole

	release()
	fs.Settle()
	if fs.Stats().Pending != 0 {
		t.Fatalf("still pending after Settle")
	}
	got, err := os.ReadFile(s.upper + "/big")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper file", got, want)
	ust := lstat(t, s.upper+"/big")
	if ust.Mtim != st.Mtim {
		t.Fatalf("upper mtime %v, want the write's %v (the fill must not stamp it)", ust.Mtim, st.Mtim)
	}
	if ust.Blocks >= int64(len(want))/512 {
		t.Fatalf("upper file has %d blocks: the lower file's hole was filled in", ust.Blocks)
	}
	wantBytes(t, "after the fill", readRange(t, fs, n, 0, int64(len(want))), want)
	wantWorkEmpty(t, s)
}

// TestFillSmallFileCopiedAtOnce: below the fill threshold a write copies
// the file before it returns, as before.
func TestFillSmallFileCopiedAtOnce(t *testing.T) {
	s := newStack(t, 1)
	want := bigLower(t, s.lower(0)+"/f", 3*mib, 0, 0)
	fs, release := s.mountAsync()
	defer release()
	n, _ := mustWalk(t, fs, "f")
	writeBytes(t, fs, n, []byte("x"), 0)
	want[0] = 'x'
	wantLazy(t, fs, 0)
	wantBytes(t, "file", readRange(t, fs, n, 0, 3*mib), want)
}

// TestFillInterleaved stops the background fill between chunks and
// changes the file there: writes into chunks not copied yet, a new
// modification time, a capability. What the fill copies afterwards must
// not undo any of it.
func TestFillInterleaved(t *testing.T) {
	s := newStack(t, 1)
	size := int64(10 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")

	chunks := 0
	paused := make(chan struct{})
	resume := make(chan struct{})
	var resumeOnce sync.Once
	t.Cleanup(func() { resumeOnce.Do(func() { close(resume) }) }) // a failed test must not leave the fill stopped
	fs.Hooks.FillChunk = func(fn *overlay.Node) {
		if fn != n {
			return
		}
		chunks++
		if chunks == 4 { // three chunks copied by the background
			close(paused)
			<-resume
		}
	}
	writeBytes(t, fs, n, []byte("first"), 100) // starts the fill, copies chunk 0
	wantLazy(t, fs, 1)
	release()
	settled := make(chan struct{})
	go func() { fs.Settle(); close(settled) }()
	select {
	case <-paused:
	case <-settled:
		t.Fatal("the fill ended before its fourth chunk")
	case <-time.After(time.Minute):
		t.Fatal("the fill never reached its fourth chunk")
	}

	// Chunks 0-2 are copied (0 by the write), the rest not.
	writeBytes(t, fs, n, []byte("late"), 7*mib+5)
	copy(want[100:], "first")
	copy(want[7*mib+5:], "late")
	wantBytes(t, "while paused", readRange(t, fs, n, 0, size), want)
	mtime := ts(1_700_000_000)
	if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: mtime}); err != nil {
		t.Fatal(err)
	}
	capsSet := fs.SetXattr(n, "security.capability", capV2, 0) == nil
	resumeOnce.Do(func() { close(resume) })
	<-settled

	got, err := os.ReadFile(s.upper + "/big")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper file", got, want)
	ust := lstat(t, s.upper+"/big")
	if ust.Mtim != mtime {
		t.Fatalf("upper mtime %v, want %v as set during the fill", ust.Mtim, mtime)
	}
	if capsSet {
		if v, err := xattr(s.upper+"/big", "security.capability"); err != nil || !bytes.Equal(v, capV2) {
			t.Fatalf("capability set during the fill: %x, %v", v, err)
		}
	}
	if chunks < 8 {
		t.Fatalf("the background copied %d chunks, want the 7 not copied by then and one more look", chunks)
	}
}

// TestFillMetaCopyUpThenWrite: a chmod leaves a large file's data for
// later; a write then starts a fill instead of waiting for all of it,
// and the capability the file had goes, as any write drops it.
func TestFillMetaCopyUpThenWrite(t *testing.T) {
	s := newStack(t, 1)
	size := int64(8 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	capable := unix.Lsetxattr(s.lower(0)+"/big", "security.capability", capV2, 0) == nil
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")
	if _, err := fs.Setattr(n, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	wantLazy(t, fs, 0) // data left for later, not yet a fill
	writeBytes(t, fs, n, []byte("abc"), 3*mib)
	copy(want[3*mib:], "abc")
	wantLazy(t, fs, 1)
	wantBytes(t, "while filling", readRange(t, fs, n, 0, size), want)
	release()
	fs.Settle()
	got, err := os.ReadFile(s.upper + "/big")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper file", got, want)
	if st := lstat(t, s.upper+"/big"); st.Mode&07777 != 0600 {
		t.Fatalf("upper mode %o", st.Mode)
	}
	if capable {
		if _, err := xattr(s.upper+"/big", "security.capability"); err != unix.ENODATA {
			t.Fatalf("capability after a write: %v, want ENODATA", err)
		}
	}
}

// TestFillWholeFileWanted: truncate, fallocate and SEEK_DATA of a
// filling file see the whole file (they finish the fill first).
func TestFillWholeFileWanted(t *testing.T) {
	s := newStack(t, 1)
	size := int64(9 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 2*mib, 2*mib)
	fs, release := s.mountAsync()
	defer release()
	n, _ := mustWalk(t, fs, "big")
	writeBytes(t, fs, n, []byte("z"), 8*mib)
	want[8*mib] = 'z'
	wantLazy(t, fs, 1)
	if off, err := fs.Seek(n, 0, unix.SEEK_HOLE); err != nil || off != 2*mib {
		t.Fatalf("SEEK_HOLE: %d, %v; want %d", off, err, 2*mib)
	}
	if off, err := fs.Seek(n, 2*mib, unix.SEEK_DATA); err != nil || off != 4*mib {
		t.Fatalf("SEEK_DATA: %d, %v; want %d", off, err, 4*mib)
	}
	if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetSize, Size: uint64(5 * mib)}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Allocate(n, 0, 0, 6*mib); err != nil {
		t.Fatal(err)
	}
	want = append(want[:5*mib], make([]byte, mib)...)
	wantBytes(t, "after truncate and fallocate", readRange(t, fs, n, 0, 7*mib), want)
}

// TestFillUnlinked: a filling file whose name is removed keeps reading
// right (its chunks not copied still come from the lower file) and
// leaves nothing behind.
func TestFillUnlinked(t *testing.T) {
	s := newStack(t, 1)
	size := int64(6 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")
	writeBytes(t, fs, n, []byte("q"), 1)
	want[1] = 'q'
	if err := fs.Unlink(fs.Root(), "big"); err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "unlinked, filling", readRange(t, fs, n, 0, size), want)
	release()
	fs.Settle()
	wantBytes(t, "unlinked, settled", readRange(t, fs, n, 0, size), want)
	wantWhiteout(t, s.upper+"/big")
	fs.Forget(n, 1)
	wantWorkEmpty(t, s)
}

// TestFillConcurrent: readers of chunks no one writes, a writer of
// others, and the background fill, all at once (run with -race).
func TestFillConcurrent(t *testing.T) {
	s := newStack(t, 1)
	size := int64(16 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "big")
	writeBytes(t, fs, n, []byte{1}, 0) // chunk 0 is the writer's
	want[0] = 1
	release()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			buf := make([]byte, 300*1024)
			for i := 0; i < 200; i++ {
				// Chunks 8-15: never written.
				off := 8*mib + rng.Int63n(8*mib-int64(len(buf)))
				got, err := fs.ReadAt(n, buf, off)
				if err != nil || !bytes.Equal(buf[:got], want[off:off+int64(len(buf))]) {
					errs <- "a reader saw wrong data"
					return
				}
			}
		}(int64(r))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewSource(99))
		mine := make([]byte, 8*mib) // chunks 0-7, as written here
		copy(mine, want[:8*mib])
		buf := make([]byte, 64*1024)
		for i := 0; i < 100; i++ {
			off := rng.Int63n(8*mib - int64(len(buf)))
			rng.Read(buf)
			if _, err := fs.WriteAt(n, buf, off); err != nil {
				errs <- "write: " + err.Error()
				return
			}
			copy(mine[off:], buf)
			got := make([]byte, 8*mib)
			if r, err := fs.ReadAt(n, got, 0); err != nil || r != len(got) || !bytes.Equal(got, mine) {
				errs <- "the writer read back wrong data"
				return
			}
		}
		copy(want, mine)
	}()
	go fs.Settle()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	fs.Settle()
	got, err := os.ReadFile(s.upper + "/big")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper file", got, want)
}

// TestFillManyChunks: a file of more chunks than one bitmap word holds,
// mostly holes, written in a late chunk and an early one; the fill
// copies every chunk once and keeps the holes.
func TestFillManyChunks(t *testing.T) {
	s := newStack(t, 1)
	size := int64(136 * mib) // three words of chunks
	path := s.lower(0) + "/sparse"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	marks := map[int64]string{0: "start", 70*mib + 3: "in word two", 129 * mib: "word three", size - 4: "end!"}
	for off, m := range marks {
		if _, err := f.WriteAt([]byte(m), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	fs, release := s.mountAsync()
	n, _ := mustWalk(t, fs, "sparse")
	writeBytes(t, fs, n, []byte("late write"), 131*mib+7)
	writeBytes(t, fs, n, []byte("early"), 3*mib)
	marks[131*mib+7], marks[3*mib] = "late write", "early"
	wantLazy(t, fs, 1)
	release()
	fs.Settle()
	got, err := os.ReadFile(s.upper + "/sparse")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for off, m := range marks {
		copy(want[off:], m)
	}
	wantBytes(t, "upper file", got, want)
	if st := lstat(t, s.upper+"/sparse"); st.Blocks > 64*8 {
		t.Fatalf("upper file has %d blocks: the holes were filled", st.Blocks)
	}
}

// TestFillLargeDoesNotHoldUpOthers: while a large copy is still being
// filled, other copy-ups are linked (the linker does not wait for it),
// and the large one is linked once whole.
func TestFillLargeDoesNotHoldUpOthers(t *testing.T) {
	s := newStack(t, 1)
	size := int64(40 * mib)
	want := bigLower(t, s.lower(0)+"/big", size, 0, 0)
	build(t, s.lower(0), "small=small lower")
	fs, release := s.mountAsync()
	big, _ := mustWalk(t, fs, "big")
	small, _ := mustWalk(t, fs, "small")

	hold := make(chan struct{})
	var holdOnce sync.Once
	unhold := func() { holdOnce.Do(func() { close(hold) }) }
	t.Cleanup(unhold)
	fs.Hooks.FillChunk = func(n *overlay.Node) {
		if n == big {
			<-hold
		}
	}
	writeBytes(t, fs, big, []byte("big write"), 20*mib)
	copy(want[20*mib:], "big write")
	if _, err := fs.Setattr(small, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	release()
	for i := 0; !exists(s.upper + "/small"); i++ {
		if i == 5000 {
			t.Fatal("small was not linked while big was being filled")
		}
		time.Sleep(time.Millisecond)
	}
	wantAbsent(t, s.upper+"/big")
	wantBytes(t, "big while held", readRange(t, fs, big, 0, size), want)

	unhold()
	for i := 0; !exists(s.upper + "/big"); i++ {
		if i == 10000 {
			t.Fatal("big was not linked after its fill")
		}
		time.Sleep(time.Millisecond)
	}
	got, err := os.ReadFile(s.upper + "/big")
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "upper big", got, want)
}

// TestFillAttrsNeverStamped: while the background copies the data of
// files whose metadata was copied up, their attributes and capability,
// read at any moment, stay what the metadata copy-up set (the copying
// stamps the copy's mtime and drops its capability until it puts them
// back).
func TestFillAttrsNeverStamped(t *testing.T) {
	s := newStack(t, 1)
	const files = 200
	for i := 0; i < files; i++ {
		build(t, s.lower(0), fmt.Sprintf("f%03d=%s", i, strings.Repeat("x", 100+i)))
	}
	fs, release := s.mountAsync()
	nodes := make([]*overlay.Node, files)
	mtime := ts(1_234_567_890)
	capable := true
	for i := range nodes {
		nodes[i], _ = mustWalk(t, fs, fmt.Sprintf("f%03d", i))
		if _, err := fs.Setattr(nodes[i], &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: mtime}); err != nil {
			t.Fatal(err)
		}
		if fs.SetXattr(nodes[i], "security.capability", capV2, 0) != nil {
			capable = false
		}
	}
	release()
	done := make(chan struct{})
	go func() { fs.Settle(); close(done) }()
	buf := make([]byte, 64)
	for looking := true; looking; {
		select {
		case <-done:
			looking = false
		default:
		}
		for _, n := range nodes {
			st, err := fs.Getattr(n)
			if err != nil || st.Mtim != mtime {
				t.Fatalf("Getattr during the fill: mtime %v, %v; want %v", st.Mtim, err, mtime)
			}
			if capable {
				if c, err := fs.GetXattr(n, "security.capability", buf); err != nil || c != len(capV2) {
					t.Fatalf("capability during the fill: %d bytes, %v", c, err)
				}
			}
		}
	}
	if st := lstat(t, s.upper+"/f000"); st.Mtim != mtime {
		t.Fatalf("upper mtime %v, want %v", st.Mtim, mtime)
	}
}
