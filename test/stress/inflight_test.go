package stress

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's FUSE client lets a mapped reader see a size that the
// inode does not have yet, or no longer has, while a write that extends
// the file or a hard link of it is in flight (docs/coherence.md, "Sizes
// while appends are in flight"): stat hands back a GETATTR reply it did
// not apply because an extending write was running, and a LINK reply is
// applied without the check for racing writes. A page fault beyond the
// inode's size in that moment gets SIGBUS, whatever the daemon does.
//
// The shared-area mmap reader tells that case apart from a Strata bug by
// asking whether an extending write or a hard link of its inode ran while
// it stat-ed, mapped and read: the workers count those operations per
// inode in a small table in a file all of them map.
const inflightSlots = 1024

// inflight is that table: per slot (inode number modulo inflightSlots),
// how many operations started and how many finished.
type inflight struct{ m []byte }

// createInflight makes the zeroed table file the workers map.
func createInflight(path string) error {
	return os.WriteFile(path, make([]byte, 16*inflightSlots), 0600)
}

func openInflight(path string) (*inflight, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 16*inflightSlots, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &inflight{m}, nil
}

func (f *inflight) counter(ino uint64, i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&f.m[16*(ino%inflightSlots)+8*uint64(i)]))
}

// run counts op as running on inode ino while it runs.
func (f *inflight) run(ino uint64, op func() error) error {
	atomic.AddUint64(f.counter(ino, 0), 1)
	defer atomic.AddUint64(f.counter(ino, 1), 1)
	return op()
}

// window is what the table said of an inode when a read began.
type window struct{ started, finished uint64 }

func (f *inflight) open(ino uint64) window {
	fin := atomic.LoadUint64(f.counter(ino, 1)) // finished first: never above started
	return window{atomic.LoadUint64(f.counter(ino, 0)), fin}
}

// overlapped reports whether an operation on ino was running when w was
// taken or has started since.
func (f *inflight) overlapped(ino uint64, w window) bool {
	return w.started != w.finished || atomic.LoadUint64(f.counter(ino, 0)) != w.started
}

// link hard-links the file at from to the name to, counted as running on
// the inode it links. The file is pinned by an O_PATH descriptor first,
// so the inode counted is the one linked even if the name is renamed
// meanwhile.
func (f *inflight) link(from, to string) error {
	fd, err := unix.Open(from, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return f.run(st.Ino, func() error {
		return unix.Linkat(fd, "", unix.AT_FDCWD, to, unix.AT_EMPTY_PATH)
	})
}

// write runs a write to the open file fd, counted as running on its
// inode.
func (f *inflight) write(fd int, op func() error) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return f.run(st.Ino, op)
}

// mmapRead maps the shared file open at fd (size bytes by the stat taken
// after w) and reads it all. A shared file only grows, so a fault is a
// failure, unless an extending write or a hard link of the same inode ran
// meanwhile: then the daemon must still report at least size, and the
// read must succeed once the size has been fetched again.
func (w *worker) mmapRead(fd int, name string, ino uint64, size int64, win window) {
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		w.fail("mmap of shared %s: %v", name, err)
		return
	}
	defer unix.Munmap(m)
	read := func() bool {
		_, ok := faultless(func() []byte { return append([]byte(nil), m...) })
		return ok
	}
	if read() {
		return
	}
	at := time.Now().Format("15:04:05.000000") // to match a daemon log (-d)
	if w.a.SizesKept {
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		w.fail("mmap read of shared %s: SIGBUS at %s with the writeback cache, where the kernel keeps the size itself (ino %d size at mmap %d, now %d)", name, at, ino, size, st.Size)
		return
	}
	for try := 0; ; try++ {
		if !w.inflight.overlapped(ino, win) {
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			w.fail("mmap read of shared %s: SIGBUS at %s with no write or hard link of it running (ino %d size at mmap %d, now %d)", name, at, ino, size, st.Size)
			return
		}
		win = w.inflight.open(ino)
		// Ask the daemon (AT_STATX_FORCE_SYNC sends a GETATTR whatever
		// the cache holds): its size must not have gone back.
		var stx unix.Statx_t
		if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_FORCE_SYNC, unix.STATX_SIZE, &stx); err != nil {
			w.fail("statx of shared %s after SIGBUS: %v", name, err)
			return
		}
		if int64(stx.Size) < size {
			w.fail("mmap read of shared %s: SIGBUS at %s, and the daemon reports size %d, below %d at mmap", name, at, stx.Size, size)
			return
		}
		if read() {
			w.res.Ops["smmap-inflight-sigbus"]++
			w.res.Warnings = append(w.res.Warnings, fmt.Sprintf("mmap read of shared %s: SIGBUS at %s while a write or hard link of it ran, gone once the size was fetched again (the kernel's attribute races)", name, at))
			return
		}
		if try == 3 {
			w.fail("mmap read of shared %s: SIGBUS at %s, again after %d fresh sizes (daemon reports %d, mapped %d)", name, at, try+1, stx.Size, size)
			return
		}
	}
}
