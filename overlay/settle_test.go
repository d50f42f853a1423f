package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// mountAsync starts an engine whose copy-ups are linked in the
// background (AsyncCopyUp), as strata.Mount runs it. The linker is held
// until release is called, so that the tests see copy-ups pending for
// as long as they need.
func (s *stack) mountAsync() (fs *overlay.FS, release func()) {
	s.t.Helper()
	cfg := s.config()
	cfg.AsyncCopyUp = true
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	fs = mountCfg(s.t, cfg)
	s.t.Cleanup(release) // before the engine's Close (cleanups run last first), which settles
	fs.Hooks.LinkerBatch = func() { <-gate }
	return fs, release
}

// TestAsyncCopyUpPending: a copied-up file whose copy is not linked yet
// is the upper object in every way the mount shows (attributes, data,
// xattrs, lookups), and is linked once settled.
func TestAsyncCopyUpPending(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower data", "d/g=")
	if err := unix.Lsetxattr(s.lower(0)+"/d/f", "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	fs, release := s.mountAsync()
	d, _ := mustWalk(t, fs, "d")
	f, _, _ := fs.Lookup(d, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	if !exists(s.upper + "/d") {
		t.Fatalf("the parent directory is not copied up")
	}
	wantAbsent(t, s.upper+"/d/f") // pending: not linked before it is durable
	writeFile(t, fs, f, "UPPER", 0)
	if st, err := fs.Getattr(f); err != nil || st.Mode&07777 != 0600 || st.Nlink != 1 || st.Size != 10 {
		t.Fatalf("Getattr of the pending copy: mode %o nlink %d size %d, %v", st.Mode, st.Nlink, st.Size, err)
	}
	// A lookup of the name (a readdirplus, a kernel revalidation) shows
	// the copy, not the lower file still at the upper path's place.
	f2, st, err := fs.Lookup(d, "f")
	if err != nil || f2 != f || st.Mode&07777 != 0600 || st.Size != 10 {
		t.Fatalf("Lookup of the pending copy: same node %v, mode %o size %d, %v", f2 == f, st.Mode, st.Size, err)
	}
	fs.Forget(f2, 1)
	if got := readAll(t, fs, f); got != "UPPER data" {
		t.Fatalf("read %q", got)
	}
	buf := make([]byte, 8)
	if n, err := fs.GetXattr(f, "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Fatalf("GetXattr of the pending copy: %q, %v", buf[:n], err)
	}
	if got := listXattrNames(t, fs, f); len(got) != 1 || got[0] != "user.k" {
		t.Fatalf("ListXattr of the pending copy: %q", got)
	}
	wantNames(t, "d", listDir(t, fs, d), "f", "g")
	if got := fileContent(t, s.lower(0)+"/d/f"); got != "lower data" {
		t.Fatalf("lower file changed: %q", got)
	}

	release()
	fs.Settle()
	if got := fileContent(t, s.upper+"/d/f"); got != "UPPER data" {
		t.Fatalf("upper file after settling: %q", got)
	}
	if st := lstat(t, s.upper+"/d/f"); st.Mode&07777 != 0600 || st.Nlink != 1 {
		t.Fatalf("upper file after settling: mode %o nlink %d", st.Mode, st.Nlink)
	}
	if v, err := xattr(s.upper+"/d/f", "user.k"); err != nil || string(v) != "v" {
		t.Fatalf("upper file's xattr: %q %v", v, err)
	}
	wantWorkEmpty(t, s)
}

// TestAsyncCopyUpNamedOperations: rename, link and fsync need the copy
// at its name and durable: they settle it first.
func TestAsyncCopyUpNamedOperations(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a=A", "b=B", "c=C", "x=X")
	fs, release := s.mountAsync()
	root := fs.Root()
	var nodes []*overlay.Node
	for _, name := range []string{"a", "b", "c", "x"} {
		n, _ := mustWalk(t, fs, name)
		if _, err := fs.Setattr(n, &overlaySetMode0600); err != nil {
			t.Fatal(err)
		}
		wantAbsent(t, s.upper+"/"+name)
		nodes = append(nodes, n)
	}
	release() // the linker may run from now on; these must not wait for it
	wantErrno(t, "rename a a2", fs.Rename(root, "a", root, "a2", 0), 0)
	if got := fileContent(t, s.upper+"/a2"); got != "A" {
		t.Fatalf("renamed copy: %q", got)
	}
	wantWhiteout(t, s.upper+"/a")
	if _, err := fs.Link(nodes[1], root, "b2"); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, s.upper+"/b"); st.Nlink != 2 {
		t.Fatalf("linked copy has nlink %d", st.Nlink)
	}
	h, err := fs.Open(nodes[2], unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Fsync(h, false); err != nil {
		t.Fatal(err)
	}
	fs.Release(h)
	if got := fileContent(t, s.upper+"/c"); got != "C" {
		t.Fatalf("fsynced copy: %q", got)
	}
	// Renaming over a pending copy settles it too, then replaces it.
	wantErrno(t, "rename a2 x", fs.Rename(root, "a2", root, "x", 0), 0)
	if got := fileContent(t, s.upper+"/x"); got != "A" {
		t.Fatalf("x after the rename over it: %q", got)
	}
	if got := readAll(t, fs, nodes[3]); got != "X" {
		t.Fatalf("the replaced copy reads %q", got)
	}
	fs.Settle()
	fs.Forget(nodes[3], 1)
	wantWorkEmpty(t, s)
}

// TestAsyncCopyUpUnlinked: a pending copy whose name is removed is never
// linked; its data stays readable through the node until it is
// forgotten.
func TestAsyncCopyUpUnlinked(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower")
	fs, release := s.mountAsync()
	d, _ := mustWalk(t, fs, "d")
	f, _, _ := fs.Lookup(d, "f")
	writeFile(t, fs, f, "UP", 0)
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	release()
	fs.Settle()
	wantWhiteout(t, s.upper+"/d/f")
	if got := readAll(t, fs, f); got != "UPwer" {
		t.Fatalf("the unlinked copy reads %q", got)
	}
	if st, err := fs.Getattr(f); err != nil || st.Size != 5 {
		t.Fatalf("Getattr of the unlinked copy: size %d, %v", st.Size, err)
	}
	fs.Forget(f, 1)
	wantWorkEmpty(t, s)
}

// TestAsyncCopyUpForgotten: the kernel forgetting a pending node does not
// lose the copy: the node stays until it is linked, and a new lookup
// finds the same object.
func TestAsyncCopyUpForgotten(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower")
	fs, release := s.mountAsync()
	d, _ := mustWalk(t, fs, "d")
	f, _, _ := fs.Lookup(d, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	before := fs.NodeCount()
	fs.Forget(f, 1)
	if fs.NodeCount() != before {
		t.Fatalf("a pending node left the table when forgotten")
	}
	f2, st, err := fs.Lookup(d, "f")
	if err != nil || f2 != f || st.Mode&07777 != 0600 {
		t.Fatalf("lookup after forget: same node %v mode %o, %v", f2 == f, st.Mode, err)
	}
	fs.Forget(f2, 1)
	release()
	fs.Settle()
	if fs.NodeCount() != before-1 {
		t.Fatalf("node count %d after settling, want %d", fs.NodeCount(), before-1)
	}
	if st := lstat(t, s.upper+"/d/f"); st.Mode&07777 != 0600 {
		t.Fatalf("upper mode %o", st.Mode)
	}
}

// TestAsyncCopyUpClose: closing the engine links every pending copy.
func TestAsyncCopyUpClose(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower")
	cfg := s.config()
	cfg.AsyncCopyUp = true
	fs, err := overlay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := mustWalk(t, fs, "f")
	writeFile(t, fs, f, "L", 0)
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileContent(t, s.upper+"/f"); got != "Lower" {
		t.Fatalf("after Close the upper file holds %q", got)
	}
	wantWorkEmpty(t, s)
}

// TestAsyncCopyUpMany: copy-ups from many goroutines, beyond the pending
// queue's bound, all end linked with their data.
func TestAsyncCopyUpMany(t *testing.T) {
	s := newStack(t, 1)
	const files = 1200
	var specs []string
	for i := 0; i < files; i++ {
		specs = append(specs, fmt.Sprintf("d%d/f%d=lower %d", i%7, i, i))
	}
	build(t, s.lower(0), specs...)
	cfg := s.config()
	cfg.AsyncCopyUp = true
	fs := mountCfg(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, files)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < files; i += 8 {
				n, _, err := walk(fs, fmt.Sprintf("d%d/f%d", i%7, i))
				if err == nil {
					_, err = fs.WriteAt(n, []byte("L"), 0)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fs.Settle()
	// One flush of the filesystem per batch, not one per file.
	if st := fs.Stats(); st.FileSyncs != 0 || st.BatchSyncs == 0 || st.BatchSyncs > files/4 {
		t.Errorf("%d copy-ups flushed with %d syncfs and %d fsyncs", files, st.BatchSyncs, st.FileSyncs)
	}
	for i := 0; i < files; i++ {
		if got, want := fileContent(t, fmt.Sprintf("%s/d%d/f%d", s.upper, i%7, i)), fmt.Sprintf("Lower %d", i); got != want {
			t.Fatalf("f%d: %q, want %q", i, got, want)
		}
	}
	wantWorkEmpty(t, s)
}

// capV2 is a valid security.capability value (revision 2, effective,
// CAP_NET_RAW permitted).
var capV2 = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// TestAsyncMetaCopyUpDefersData: a metadata change copies up the
// metadata at once and leaves the data for the linker; until then the
// lower file serves reads, and the copy the metadata. The data, when it
// comes, keeps the times and the capability the copy had.
func TestAsyncMetaCopyUpDefersData(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower data", "d/g=other")
	if err := unix.Lsetxattr(s.lower(0)+"/d/f", "security.capability", capV2, 0); err != nil {
		t.Skipf("no security.capability here: %v", err)
	}
	fs, release := s.mountAsync()
	f, _ := mustWalk(t, fs, "d/f")
	if _, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMode | overlay.SetMtime, Mode: 0600, Mtime: ts(1234)}); err != nil {
		t.Fatal(err)
	}
	st, err := fs.Getattr(f)
	if err != nil || st.Mode&07777 != 0600 || st.Mtim != ts(1234) || st.Size != 10 {
		t.Fatalf("Getattr with the data to come: mode %o mtime %v size %d, %v", st.Mode, st.Mtim, st.Size, err)
	}
	if got := readAll(t, fs, f); got != "lower data" {
		t.Fatalf("read with the data to come: %q", got)
	}
	buf := make([]byte, 64)
	if n, err := fs.GetXattr(f, "security.capability", buf); err != nil || string(buf[:n]) != string(capV2) {
		t.Fatalf("capability with the data to come: %x, %v", buf[:n], err)
	}
	// A second change goes to the copy too.
	if err := fs.SetXattr(f, "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	release()
	fs.Settle()
	if got := fileContent(t, s.upper+"/d/f"); got != "lower data" {
		t.Fatalf("upper data: %q", got)
	}
	ust := lstat(t, s.upper+"/d/f")
	if ust.Mode&07777 != 0600 || ust.Mtim != ts(1234) {
		t.Fatalf("upper file: mode %o mtime %v", ust.Mode, ust.Mtim)
	}
	if v, err := xattr(s.upper+"/d/f", "security.capability"); err != nil || string(v) != string(capV2) {
		t.Fatalf("upper capability: %x, %v", v, err)
	}
	if v, err := xattr(s.upper+"/d/f", "user.k"); err != nil || string(v) != "v" {
		t.Fatalf("upper user.k: %q, %v", v, err)
	}
	wantAbsent(t, s.upper+"/d/g")
	wantWorkEmpty(t, s)
}

// TestAsyncMetaCopyUpThenWrite: a write to a copy whose data is still to
// come brings the data first.
func TestAsyncMetaCopyUpThenWrite(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower data")
	fs, release := s.mountAsync()
	f, _ := mustWalk(t, fs, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, f, "LOW", 0)
	if got := readAll(t, fs, f); got != "LOWer data" {
		t.Fatalf("read after the write: %q", got)
	}
	// Truncate too.
	if _, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetSize, Size: 5}); err != nil {
		t.Fatal(err)
	}
	release()
	fs.Settle()
	if got := fileContent(t, s.upper+"/f"); got != "LOWer" {
		t.Fatalf("upper data: %q", got)
	}
	if st := lstat(t, s.upper+"/f"); st.Mode&07777 != 0600 {
		t.Fatalf("upper mode %o", st.Mode)
	}
}

// TestAsyncMetaCopyUpFillsFromItsFile: the data of a metadata copy-up
// comes from the lower file the copy-up opened, kept for the fill, not
// from a second open of its path (one open and close fewer per chmod).
// Moving the lower file away in between, which a mounted overlay's layers
// never see, shows which: its path is gone, its bytes are not.
func TestAsyncMetaCopyUpFillsFromItsFile(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=lower data")
	fs, release := s.mountAsync()
	f, _ := mustWalk(t, fs, "d/f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.lower(0)+"/d/f", s.lower(0)+"/d/moved"); err != nil {
		t.Fatal(err)
	}
	release()
	fs.Settle()
	if got := fileContent(t, s.upper+"/d/f"); got != "lower data" {
		t.Fatalf("upper data: %q", got)
	}
	if st := fs.Stats(); st.LinkFailures != 0 {
		t.Fatalf("%d copy-ups not linked", st.LinkFailures)
	}
}

// TestAsyncMetaCopyUpReadsDataAhead: before the linker's workers fill a
// batch of metadata copy-ups with their data, the kernel has been asked
// to read that data ahead: a lower file dropped from the page cache is
// back in it by the time its fill starts, though nothing read it.
func TestAsyncMetaCopyUpReadsDataAhead(t *testing.T) {
	s := newStack(t, 1)
	const size = 256 << 10
	lower := s.lower(0) + "/f"
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(lower, data, 0644); err != nil {
		t.Fatal(err)
	}
	evict(t, lower, size)
	fs, release := s.mountAsync()
	f, _ := mustWalk(t, fs, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	if resident(t, lower, size) {
		t.Fatal("the metadata copy-up read the lower file's data")
	}
	var cached atomic.Bool
	fs.Hooks.FillChunk = func(*overlay.Node) {
		// The read ahead is under way, not necessarily done.
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if in, _ := inPageCache(lower, size); in {
				cached.Store(true)
				return
			}
		}
	}
	release()
	fs.Settle()
	if !cached.Load() {
		t.Fatal("the lower file's data was not read ahead of its fill")
	}
	if got := fileContent(t, s.upper+"/f"); got != string(data) {
		t.Fatalf("upper data: %d bytes, want the lower file's %d", len(got), size)
	}
}

// evict writes path's pages back and drops them from the page cache. A
// filesystem that keeps them anyway (tmpfs) cannot show a read ahead.
func evict(t *testing.T, path string, size int) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if resident(t, path, size) {
		msg := "the filesystem of " + path + " keeps its pages cached (tmpfs?): no read ahead to see"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// resident reports whether every page of path's first size bytes is in
// the page cache.
func resident(t *testing.T, path string, size int) bool {
	t.Helper()
	in, err := inPageCache(path, size)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// inPageCache is resident for any goroutine: mincore of a mapping, which
// reads nothing.
func inPageCache(path string, size int) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false, err
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return false, e
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false, nil
		}
	}
	return true, nil
}

// TestAsyncMetaCopyUpDroppedClosesLower: an unlinked copy whose data
// never came, once forgotten, leaves no descriptor of its lower file (kept
// for the fill that is no longer needed) open.
func TestAsyncMetaCopyUpDroppedClosesLower(t *testing.T) {
	s, fs, release, d, f := metaCopiedUp(t)
	lower := s.lower(0) + "/d/f"
	if n := openTo(t, lower); n != 1 {
		t.Fatalf("%d descriptors of the lower file after the metadata copy-up, want 1 (kept for the fill)", n)
	}
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	fs.Forget(f, 1) // before the linker's batch
	if n := openTo(t, lower); n != 0 {
		t.Fatalf("%d descriptors of the lower file left open", n)
	}
	release()
	fs.Settle()
	wantWorkEmpty(t, s)
}

// metaCopiedUp mounts a lower layer holding d/f and d/h with the linker
// held, and changes d/f's mode: a metadata copy-up, pending, its data to
// come.
func metaCopiedUp(t *testing.T) (s *stack, fs *overlay.FS, release func(), d, f *overlay.Node) {
	t.Helper()
	s = newStack(t, 1)
	build(t, s.lower(0), "d/f=lower", "d/h=x")
	fs, release = s.mountAsync()
	d, _ = mustWalk(t, fs, "d")
	f, _, _ = fs.Lookup(d, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	return s, fs, release, d, f
}

// openTo counts this process's descriptors open on path.
func openTo(t *testing.T, path string) int {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == real {
			n++
		}
	}
	return n
}

// TestAsyncMetaCopyUpUnlinked: a copy with its data to come, unlinked,
// still reads (from the lower file) and takes writes; the linker, with
// no name to link it under, does not copy its data.
func TestAsyncMetaCopyUpUnlinked(t *testing.T) {
	s, fs, release, d, f := metaCopiedUp(t)
	wantErrno(t, "unlink", fs.Unlink(d, "f"), 0)
	var chunks atomic.Int32
	fs.Hooks.FillChunk = func(*overlay.Node) { chunks.Add(1) }
	release()
	fs.Settle()
	wantWhiteout(t, s.upper+"/d/f")
	if st, err := fs.Getattr(f); err != nil || st.Mode&07777 != 0600 || st.Nlink != 0 {
		t.Fatalf("Getattr of the unlinked copy: mode %o nlink %d, %v", st.Mode, st.Nlink, err)
	}
	if got := readAll(t, fs, f); got != "lower" {
		t.Fatalf("read of the unlinked copy: %q", got)
	}
	if n := chunks.Load(); n != 0 {
		t.Fatalf("the linker copied %d chunks of data nobody wrote into a copy it had no name to link under", n)
	}
	writeFile(t, fs, f, "UP", 0)
	if got := readAll(t, fs, f); got != "UPwer" {
		t.Fatalf("read after a write: %q", got)
	}
	if got := fileContent(t, s.lower(0)+"/d/f"); got != "lower" {
		t.Fatalf("lower file changed: %q", got)
	}
	fs.Forget(f, 1)
	wantWorkEmpty(t, s)
}

// TestAsyncCopyUpAttrRacesLink: Getattr of a pending copy reads the
// copy's attributes (nlink 0, it has no name yet); if the linker links it
// before Getattr has looked at whether it is pending, nlink must still be
// 1. (Found by the differential test: a stat said nlink 0.)
func TestAsyncCopyUpAttrRacesLink(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=lower data")
	fs, release := s.mountAsync()
	f, _ := mustWalk(t, fs, "f")
	if _, err := fs.Setattr(f, &overlaySetMode0600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, f, "UPPER", 0) // the data is copied now, only the link waits
	wantAbsent(t, s.upper+"/f")
	var once sync.Once
	var wg sync.WaitGroup
	fs.Hooks.AttrAfterFstat = func(n *overlay.Node) {
		once.Do(func() {
			// Let the linker run now, and wait until the copy has its name.
			release()
			wg.Go(func() {
				if err := fs.Sync(n, false); err != nil {
					t.Errorf("Sync: %v", err)
				}
			})
			for i := 0; !exists(s.upper + "/f"); i++ {
				if i == 5000 {
					t.Fatalf("the copy was not linked")
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // and pending is cleared
		})
	}
	st, err := fs.Getattr(f)
	wg.Wait()
	if err != nil || st.Nlink != 1 {
		t.Fatalf("Getattr while the copy was linked: nlink %d, %v", st.Nlink, err)
	}
}
