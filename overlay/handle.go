package overlay

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// backing is a node's open real file, shared by all of its handles. It
// refers to the lower file until copy-up and to the upper file after:
// copy-up replaces fd under the node's dataMu.
type backing struct {
	fd       int
	writable bool
	upper    bool
	opens    int
}

// Handle is an open file of a non-directory node. All I/O goes through
// the node's backing file, never a file of the handle's own, so a handle
// opened before copy-up sees the upper file after it.
type Handle struct {
	node  *Node
	flags int
}

// Node returns the handle's node.
func (h *Handle) Node() *Node { return h.node }

func procFdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func wantsWrite(flags int) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0
}

// Open opens a non-directory node. Opening for writing or with O_TRUNC
// copies the node up first.
func (fs *FS) Open(n *Node, flags int) (*Handle, error) {
	if n.kind == unix.S_IFDIR {
		return nil, unix.EISDIR
	}
	write := wantsWrite(flags)
	trunc := flags&unix.O_TRUNC != 0
	if write {
		if fs.upper == nil {
			return nil, unix.EROFS
		}
		limit := int64(-1)
		if trunc {
			limit = 0
		}
		if err := fs.copyUp(n, limit); err != nil {
			return nil, err
		}
	}
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	if err := fs.ensureBacking(n, write); err != nil {
		return nil, err
	}
	if trunc {
		if err := unix.Ftruncate(n.backing.fd, 0); err != nil {
			fs.dropBacking(n)
			return nil, err
		}
	}
	return &Handle{node: n, flags: flags}, nil
}

// ensureBacking opens the node's backing file, or reopens it for writing,
// and counts one more open. The caller holds treeMu and n.dataMu.
func (fs *FS) ensureBacking(n *Node, write bool) error {
	b := n.backing
	if b != nil && (b.writable || !write) {
		b.opens++
		return nil
	}
	upper := n.upper
	mode := unix.O_RDONLY
	if write {
		mode = unix.O_RDWR
	}
	var fd int
	var err error
	switch {
	case b != nil:
		// Reopen the very same file for writing. The /proc entry is a
		// (magic) symlink: following it is the point.
		fd, err = unix.Open(procFdPath(b.fd), mode|unix.O_CLOEXEC|unix.O_LARGEFILE, 0)
	case n.deleted || n.anon:
		return unix.ENOENT
	default:
		l := n.topLayer()
		if l == nil {
			return unix.ENOENT
		}
		flags := mode | unix.O_NOFOLLOW | unix.O_LARGEFILE
		if !l.Upper {
			flags |= unix.O_NOATIME // as the kernel opens real files: lower layers stay untouched
		}
		fd, err = l.open(n.rel(), flags, 0)
	}
	if err != nil {
		return err
	}
	if b == nil {
		n.backing = &backing{fd: fd, writable: write, upper: upper, opens: 1}
		return nil
	}
	unix.Close(b.fd)
	b.fd, b.writable, b.upper = fd, true, upper
	b.opens++
	return nil
}

// dropBacking counts one open less and closes the backing file after the
// last. The caller holds n.dataMu.
func (fs *FS) dropBacking(n *Node) {
	b := n.backing
	if b == nil {
		return
	}
	b.opens--
	if b.opens <= 0 {
		unix.Close(b.fd)
		n.backing = nil
	}
}

// Release closes a handle.
func (fs *FS) Release(h *Handle) {
	n := h.node
	n.dataMu.Lock()
	fs.dropBacking(n)
	n.dataMu.Unlock()
}

// Read reads from the node's current backing file.
func (fs *FS) Read(h *Handle, dest []byte, off int64) (int, error) {
	n := h.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	if b == nil {
		return 0, unix.EBADF
	}
	total := 0
	for total < len(dest) {
		r, err := unix.Pread(b.fd, dest[total:], off+int64(total))
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

// ReadFd returns the node's current backing descriptor for a zero-copy
// read, with the node's data lock held shared so copy-up cannot swap or
// close it meanwhile; call done when the data has been sent.
func (fs *FS) ReadFd(h *Handle) (fd int, done func(), err error) {
	n := h.node
	n.dataMu.RLock()
	if n.backing == nil {
		n.dataMu.RUnlock()
		return -1, nil, unix.EBADF
	}
	return n.backing.fd, n.dataMu.RUnlock, nil
}

// Write writes to the node's backing file, which open made the upper one.
func (fs *FS) Write(h *Handle, data []byte, off int64) (int, error) {
	n := h.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	if b == nil || !b.writable {
		return 0, unix.EBADF
	}
	total := 0
	for total < len(data) {
		w, err := unix.Pwrite(b.fd, data[total:], off+int64(total))
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

// Fsync flushes the backing file.
func (fs *FS) Fsync(h *Handle, dataOnly bool) error {
	n := h.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	if b == nil {
		return unix.EBADF
	}
	if !b.upper || fs.cfg.Volatile {
		return nil // nothing to flush in a lower layer; volatile skips syncs
	}
	if dataOnly {
		return unix.Fdatasync(b.fd)
	}
	return unix.Fsync(b.fd)
}

// Fallocate preallocates or punches space in the backing file.
func (fs *FS) Fallocate(h *Handle, mode uint32, off, length int64) error {
	n := h.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	if b == nil || !b.writable {
		return unix.EBADF
	}
	return unix.Fallocate(b.fd, mode, off, length)
}

// Lseek answers SEEK_DATA and SEEK_HOLE (and the others) on the backing
// file.
func (fs *FS) Lseek(h *Handle, off int64, whence int) (int64, error) {
	n := h.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	if b == nil {
		return 0, unix.EBADF
	}
	return unix.Seek(b.fd, off, whence)
}
