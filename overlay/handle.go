package overlay

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// Handle is an explicit open of a non-directory node, for users of the
// engine that open files themselves (the FUSE adapter does not: the
// kernel does not tell it about opens). A handle pins the node's backing
// file, and opening for writing copies the node up at once, as the
// kernel's overlayfs does. Its I/O is the node's (io.go), so a handle
// opened before a copy-up sees the upper file after it.
type Handle struct {
	node     *Node
	flags    int
	released bool
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
	if write {
		if fs.upper == nil {
			return nil, unix.EROFS
		}
		limit := dataLazy // the writes go through WriteAt
		if flags&unix.O_TRUNC != 0 {
			limit = 0
		}
		if err := fs.copyUp(n, limit); err != nil {
			return nil, err
		}
	}
	if n.kind != unix.S_IFREG {
		return &Handle{node: n, flags: flags}, nil
	}
	// Pin the node's backing file, opening it if need be (the cache may
	// close it between the open and the pin: then again).
	limit := dataLazy
	if flags&unix.O_TRUNC != 0 {
		limit = -1
	}
	for {
		if _, err := fs.acquireFor(n, write, limit); err != nil {
			return nil, err
		}
		n.dataMu.RUnlock()
		n.dataMu.Lock()
		b := n.backing
		if b == nil || write && !(b.writable && b.upper) {
			n.dataMu.Unlock()
			continue
		}
		if flags&unix.O_TRUNC != 0 {
			if err := unix.Ftruncate(b.fd, 0); err != nil {
				n.dataMu.Unlock()
				return nil, err
			}
		}
		b.pins++
		n.dataMu.Unlock()
		return &Handle{node: n, flags: flags}, nil
	}
}

// Release closes a handle: its node's backing file is no longer pinned
// by it (it stays cached).
func (fs *FS) Release(h *Handle) {
	n := h.node
	if h.released || n.kind != unix.S_IFREG {
		h.released = true
		return
	}
	h.released = true
	n.dataMu.Lock()
	if b := n.backing; b != nil && b.pins > 0 {
		b.pins--
	}
	n.dataMu.Unlock()
}

func (h *Handle) check(write bool) error {
	if h.released {
		return unix.EBADF
	}
	if write && h.flags&unix.O_ACCMODE == unix.O_RDONLY {
		return unix.EBADF
	}
	return nil
}

// Read reads through a handle.
func (fs *FS) Read(h *Handle, dest []byte, off int64) (int, error) {
	if err := h.check(false); err != nil {
		return 0, err
	}
	return fs.ReadAt(h.node, dest, off)
}

// Write writes through a handle opened for writing.
func (fs *FS) Write(h *Handle, data []byte, off int64) (int, error) {
	if err := h.check(true); err != nil {
		return 0, err
	}
	return fs.WriteAt(h.node, data, off)
}

// Fsync flushes the handle's file.
func (fs *FS) Fsync(h *Handle, dataOnly bool) error {
	if err := h.check(false); err != nil {
		return err
	}
	return fs.Sync(h.node, dataOnly)
}

// Fallocate preallocates or punches space through a handle opened for
// writing.
func (fs *FS) Fallocate(h *Handle, mode uint32, off, length int64) error {
	if err := h.check(true); err != nil {
		return err
	}
	return fs.Allocate(h.node, mode, off, length)
}

// Lseek answers SEEK_DATA and SEEK_HOLE (and the others) through a
// handle.
func (fs *FS) Lseek(h *Handle, off int64, whence int) (int64, error) {
	if err := h.check(false); err != nil {
		return 0, err
	}
	return fs.Seek(h.node, off, whence)
}
