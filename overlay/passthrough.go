package overlay

import "golang.org/x/sys/unix"

// Handing a node's file to the kernel (FUSE passthrough, see package
// fusefs). The kernel then reads and writes the real file itself, without
// the daemon, for as long as the files it opened that way stay open: the
// file it was given must be the node's data for all that time. That holds
// only for a file whose data is in the upper layer already. A lower file
// is replaced by its copy at copy-up, and the kernel would keep reading
// the old one; a metadata copy-up's file has no data until the background
// copy is done (dataPending), and a filling one's not all (fill.go).

// WithUpperFile runs f with a descriptor of the node's data file in the
// upper layer, held open until f returns, and reports true. It reports
// false without calling f when the node is not a regular file whose data
// is in the upper layer. With write, the node counts as written (Written)
// from then on: the kernel will write to it without telling the engine.
func (fs *FS) WithUpperFile(n *Node, write bool, f func(fd int) error) (bool, error) {
	if n.kind != unix.S_IFREG || fs.upper == nil || n.dataPending.Load() || n.filling() {
		return false, nil
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
