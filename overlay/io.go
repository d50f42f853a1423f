package overlay

import (
	"golang.org/x/sys/unix"
)

// File I/O on a node, whoever has it open: the kernel checks a file's
// open mode before it sends a request, so these take none. Data goes
// through the node's backing file (backing.go); the first change to a
// lower file copies it up.

// ReadAt reads from the node's data at off.
func (fs *FS) ReadAt(n *Node, dest []byte, off int64) (int, error) {
	b, err := fs.acquire(n, false)
	if err != nil {
		return 0, err
	}
	defer n.dataMu.RUnlock()
	if f := n.fill.Load(); f != nil {
		return f.readAt(b.fd, dest, off)
	}
	return preadFull(b.fd, dest, off)
}

// WriteAt writes data at off, copying the node up first if it is not in
// the upper layer yet (a large file's data may follow: fill.go).
func (fs *FS) WriteAt(n *Node, data []byte, off int64) (int, error) {
	return fs.writeAt(n, data, off, false)
}

// WriteKeepingMtime writes as WriteAt does but leaves the real file's
// modification time as it was. It is for a caller that caches writes and
// keeps files' times itself, sending them with Setattr when they change
// (the kernel's FUSE writeback cache): the data may arrive long after the
// write(2) that set the time, and the time the real file records, which
// kernel overlayfs would show, must be the one the caller showed, not the
// moment the data arrived.
func (fs *FS) WriteKeepingMtime(n *Node, data []byte, off int64) (int, error) {
	return fs.writeAt(n, data, off, true)
}

func (fs *FS) writeAt(n *Node, data []byte, off int64, keepMtime bool) (int, error) {
	b, err := fs.acquireFor(n, true, dataLazy)
	if err != nil {
		return 0, err
	}
	defer n.dataMu.RUnlock()
	if !n.written.Load() {
		n.written.Store(true)
	}
	if !keepMtime {
		return fs.writeNode(n, b.fd, data, off)
	}
	n.timesMu.Lock()
	defer n.timesMu.Unlock()
	var w int
	err = keepingMtime(b.fd, func() (err error) {
		w, err = fs.writeNode(n, b.fd, data, off)
		return err
	})
	return w, err
}

// keepingMtime runs change on the real file fd and then puts the file's
// modification time back as it was before.
func keepingMtime(fd int, change func() error) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	err := change()
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, st.Mtim}
	if terr := futimens(fd, &ts); terr != nil && err == nil {
		err = terr
	}
	return err
}

// streamWrite is the size from which a write is taken for part of a
// stream (a large file being written, or the kernel writing a file's
// cached pages back), whose data should start for the disk at once.
const streamWrite = 512 << 10

// startWriteout starts writing a large write's data to the disk without
// waiting for it (sync_file_range, SYNC_FILE_RANGE_WRITE). Left alone,
// the data would sit in the real file system's page cache until the
// writer's fsync or the kernel's dirty limits and then be written in one
// go while the writer waits; started now, the disk works while the next
// requests arrive. Nothing waits for it and a volatile mount skips it.
func (fs *FS) startWriteout(fd int, off int64, n int) {
	if n < streamWrite || fs.cfg.Volatile {
		return
	}
	unix.SyncFileRange(fd, off, int64(n), unix.SYNC_FILE_RANGE_WRITE)
}

// writeNode writes to the node's backing file fd and starts a large
// write's data for the disk; the caller holds n.dataMu shared.
func (fs *FS) writeNode(n *Node, fd int, data []byte, off int64) (w int, err error) {
	defer func() { fs.startWriteout(fd, off, w) }()
	f := n.fill.Load()
	if f == nil {
		return pwriteFull(fd, data, off)
	}
	unlock, err := f.lockForWrite(fd, off, int64(len(data)))
	if err != nil {
		return 0, err
	}
	w, err = pwriteFull(fd, data, off)
	unlock(err == nil)
	return w, err
}

// Sync flushes the node's data to disk (only data and size with
// dataOnly). A lower file has nothing to flush, and a volatile mount
// skips it.
func (fs *FS) Sync(n *Node, dataOnly bool) error {
	fs.treeMu.RLock()
	up := n.upper
	fs.treeMu.RUnlock()
	if !up || fs.cfg.Volatile {
		return nil
	}
	if n.pending.Load() {
		// Its copy-up is not durable yet: make it so, and its name too.
		if err := fs.settle(n, true); err != nil {
			return err
		}
		fs.treeMu.RLock()
		parent, done, err := fs.upper.longPath(n.parent.rel())
		fs.treeMu.RUnlock()
		if err != nil {
			return err
		}
		defer done()
		return fs.syncDir(parent)
	}
	b, err := fs.acquire(n, false)
	if err != nil {
		return err
	}
	defer n.dataMu.RUnlock()
	if dataOnly {
		return unix.Fdatasync(b.fd)
	}
	return unix.Fsync(b.fd)
}

// Allocate preallocates or punches space (fallocate(2) modes), copying
// the node up first.
func (fs *FS) Allocate(n *Node, mode uint32, off, length int64) error {
	b, err := fs.acquire(n, true)
	if err != nil {
		return err
	}
	defer n.dataMu.RUnlock()
	return unix.Fallocate(b.fd, mode, off, length)
}

// Seek answers SEEK_DATA and SEEK_HOLE (and the others) on the node's
// data.
func (fs *FS) Seek(n *Node, off int64, whence int) (int64, error) {
	if n.filling() {
		// The copy's holes are not all the file's yet.
		if err := fs.fillData(n); err != nil {
			return 0, err
		}
	}
	b, err := fs.acquire(n, false)
	if err != nil {
		return 0, err
	}
	defer n.dataMu.RUnlock()
	return unix.Seek(b.fd, off, whence)
}

func preadFull(fd int, dest []byte, off int64) (int, error) {
	total := 0
	for total < len(dest) {
		r, err := unix.Pread(fd, dest[total:], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if r == 0 {
			break
		}
		total += r
	}
	return total, nil
}

func pwriteFull(fd int, data []byte, off int64) (int, error) {
	total := 0
	for total < len(data) {
		w, err := unix.Pwrite(fd, data[total:], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		total += w
	}
	return total, nil
}
