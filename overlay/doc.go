// Package overlay is Strata's overlay engine: layers, lookup through the
// stack, merged directory listings, copy-up, whiteouts, renames and open
// files. It knows nothing of FUSE; package fusefs translates the FUSE
// protocol into calls on an *FS, and the tests drive an *FS directly.
//
// # On-disk format
//
// The upper layer is written exactly as Linux overlayfs writes it, so the
// same directories can be mounted by the kernel: whiteouts are character
// devices 0/0 (hard links to one shared whiteout, as the kernel makes
// them: whiteout.go), opaque directories carry
// trusted.overlay.opaque="y" (or user.overlay.opaque with the userxattr
// option), copy-up goes through workdir/work and appears in the upper
// layer atomically. Lower layers are
// read in the kernel format and, in addition, in the AUFS/OCI format that
// container images use (".wh.NAME" whiteouts, ".wh..wh..opq" opaque
// markers), whose marker names are never shown.
//
// # Objects and coherence
//
// Every overlay object the kernel knows about is one *Node, and a Node
// stays the same object when it is copied up: its inode number does not
// change, and all reads and writes of it, whoever makes them, go through
// one open real file (the node's backing file, backing.go). Copy-up swaps
// the backing file from the lower to the upper file under the node's data
// lock, so every reader and writer of the object uses the upper file from
// then on. Through FUSE this means one kernel inode and one page cache per
// object, which keeps shared mappings coherent across copy-up.
//
// The kernel does not tell the engine when files are opened or closed
// (the FUSE adapter answers OPEN with ENOSYS), so backing files are
// opened on first use and kept in a small cache, and a lower file is
// copied up at its first change (write, truncate, metadata), not when it
// is opened for writing. An object the kernel may still have open when
// its last name goes keeps answering: an upper file's data is moved into
// workdir/work until the kernel forgets the node, a lower file is still in
// its layer, anything else keeps its last attributes. An unnamed file
// (O_TMPFILE: tmpfile.go) is such an object from the start, until a link
// gives it a name.
//
// # Locking
//
// Locks are taken in this order, and never the other way round:
//
//  0. pendingSet.run   held while a batch of pending copy-ups is
//     settled (settle.go), by the linker or by Settle.
//  1. Node.copyMu   serializes the copy-up of one node and its settling
//     (linking a pending copy); a goroutine holds at most one at a time
//     (a parent's copy-up finishes and releases its lock before the
//     child's starts). A copy-up may wait for room in the pending queue
//     while it holds it, never holding a later lock.
//  2. FS.treeMu     the namespace: parent/name links, layer presence
//     (upper, lowers) and the real directories' contents. Operations that
//     only read the namespace (lookup, getattr, readdir, open) hold it
//     shared for their syscalls; operations that change it (create,
//     remove, rename, the last step of a copy-up) hold it exclusively.
//     The shared whiteout (whiteout.go) is created and replaced only
//     with it held exclusively.
//     The long part of a copy-up (copying data) holds neither lock; a
//     fill's background copy holds copyMu for one chunk at a time.
//  3. Node.dataMu   the node's backing file: I/O holds it shared, copy-up
//     and opening or closing the file hold it exclusively. The file
//     cache, closing files of other nodes, only tries it (TryLock).
//     A filling node (fill.go) has one more lock under it, its
//     fillState.mu: chunks are read and written holding it shared and
//     copied holding it exclusively.
//     Under it, Node.timesMu keeps a write that puts the real file's
//     mtime back (WriteKeepingMtime) and Setattr's changes apart; a
//     filling node's fillState.mu may be taken under timesMu, nothing
//     else.
//  4. FS.tableMu    the node table: IDs, kernel reference counts, the
//     children maps, hard-link aliases and the hard-link index. A node's
//     parent, name and deleted flag are written only with both treeMu
//     (exclusive) and tableMu held, so either suffices for reading them.
//  5. fileCache.mu  the ring of open backing files; nothing is taken
//     under it.
//  6. reaper.mu     the queue of removed files' data to delete from the
//     work directory (reap.go); nothing is taken under it, and nothing
//     waits for the queue but Close and tests.
package overlay
