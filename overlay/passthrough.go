package overlay

import "golang.org/x/sys/unix"

// Handing a node's file to the kernel (FUSE passthrough, see package
// fusefs). The kernel then reads and writes the real file itself, without
// the daemon, for as long as the files it opened that way stay open: the
// file it was given must be the node's data for all that time. That holds
// for a file whose data is in the upper layer already, and for every file
// of a read-only overlay, where nothing is ever copied up. A lower file of
// a writable overlay is replaced by its copy at copy-up, and the kernel
// would keep reading the old one; a copy whose data is still to come
// (dataPending, or filling: fill.go) has holes where the data will be.

// WithDataFile runs f with a descriptor of the node's real data file,
// held open until f returns, and reports true, if that file stays the
// node's data (above). It reports false without calling f otherwise, and
// for anything but a regular file. With write, the node counts as
// written (Written) from then on: the kernel will write to it without
// telling the engine.
func (fs *FS) WithDataFile(n *Node, write bool, f func(fd int) error) (bool, error) {
	if n.kind != unix.S_IFREG || n.dataPending.Load() || n.filling() {
		return false, nil
	}
	if fs.upper == nil {
		// Read-only: every file is final, and never written.
		b, err := fs.acquire(n, false)
		if err != nil {
			return false, err
		}
		defer n.dataMu.RUnlock()
		return true, f(b.fd)
	}
	fs.treeMu.RLock()
	upper := n.upper
	fs.treeMu.RUnlock()
	if !upper {
		return false, nil // a lower file: not opened for nothing
	}
	b, err := fs.acquire(n, false)
	if err != nil {
		return false, err
	}
	defer n.dataMu.RUnlock()
	// The backing file, not the flag above, decides: it is what the
	// kernel gets, and it cannot change while dataMu is held.
	if !b.upper || n.dataPending.Load() || n.filling() {
		return false, nil
	}
	if write && !n.written.Load() {
		n.written.Store(true)
	}
	return true, f(b.fd)
}

// NoteWriter records that the kernel may write to the node's file without
// the engine (a further writer of a file handed over with WithUpperFile).
func (fs *FS) NoteWriter(n *Node) {
	if !n.written.Load() {
		n.written.Store(true)
	}
}
