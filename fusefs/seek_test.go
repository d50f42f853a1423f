package fusefs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// sparseLower writes a file of size bytes to dir whose first 4 KiB are
// data and the rest a hole.
func sparseLower(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "sparse")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

func seek(t *testing.T, fd int, off int64, whence int) int64 {
	t.Helper()
	got, err := unix.Seek(fd, off, whence)
	if err != nil {
		t.Fatalf("lseek(%d, %d): %v", off, whence, err)
	}
	return got
}

// TestSeekSeesUnsentData: SEEK_DATA and SEEK_HOLE on a writable mount
// count data the kernel holds and has not sent to the daemon yet (a
// writer's pages with the writeback cache, pages written through a shared
// mapping), which the daemon's real file does not have: a hole reported
// there, or ENXIO from SEEK_DATA short of the end of the file, makes
// sparse copies (cp, qemu-img) drop the data.
func TestSeekSeesUnsentData(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	const size = 1 << 20
	sparseLower(t, s.Lowers[0], size)
	s.MountDaemon(t)

	// A writer that keeps its file open.
	w, err := unix.Open(filepath.Join(s.Mnt, "new"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(w)
	if _, err := unix.Pwrite(w, []byte("data after a hole"), 8192); err != nil {
		t.Fatal(err)
	}
	r, err := unix.Open(filepath.Join(s.Mnt, "new"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(r)
	if got := seek(t, r, 4096, unix.SEEK_DATA); got > 8192 {
		t.Errorf("SEEK_DATA from 4096: %d, past the data at 8192", got)
	}
	if got := seek(t, r, 8192, unix.SEEK_HOLE); got < 8192+17 {
		t.Errorf("SEEK_HOLE from 8192: %d, inside the data written there", got)
	}

	// A shared mapping that writes into a lower file's hole.
	p := filepath.Join(s.Mnt, "sparse")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	copy(m[size/2:], "mapped")
	if got := seek(t, fd, size/2, unix.SEEK_HOLE); got < size/2+6 {
		t.Errorf("SEEK_HOLE from %d: %d, inside the data written through the mapping", size/2, got)
	}
	if got := seek(t, fd, 4096, unix.SEEK_DATA); got > size/2 {
		t.Errorf("SEEK_DATA from 4096: %d, past the data written through the mapping at %d", got, size/2)
	}
}

// TestSeekReadOnlyHoles: on a read-only mount, where nothing can be
// written, SEEK_HOLE and SEEK_DATA report the lower file's holes.
func TestSeekReadOnlyHoles(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	const size = 1 << 20
	lower := sparseLower(t, s.Lowers[0], size)
	lfd, err := unix.Open(lower, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	hole := seek(t, lfd, 0, unix.SEEK_HOLE)
	unix.Close(lfd)
	if hole >= size {
		t.Skipf("the filesystem of %s reports no hole", lower)
	}
	o := s.Options()
	o.Upper, o.Work = "", ""
	o.ReadOnly = true
	o.AllowOther = true
	mounttest.MountOptions(t, o)
	fd, err := unix.Open(filepath.Join(s.Mnt, "sparse"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got := seek(t, fd, 0, unix.SEEK_HOLE); got != hole {
		t.Errorf("SEEK_HOLE from 0: %d, want the lower file's %d", got, hole)
	}
	if _, err := unix.Seek(fd, hole, unix.SEEK_DATA); err != unix.ENXIO {
		t.Errorf("SEEK_DATA from the hole: %v, want ENXIO (no data after it)", err)
	}
}
