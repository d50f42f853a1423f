package overlay

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A regular file node's data lives in its backing file: an open descriptor
// of the real file, the lower one until copy-up and the upper one after.
// Every read and write of the node goes through it, whoever asks, so
// copy-up (which swaps it under the node's data lock) re-targets all of
// them at once.
//
// The mount answers the kernel's OPEN with ENOSYS, so the kernel opens
// and closes files without telling the daemon (no round trip per open;
// with passthrough, opens are told, but only to hand the kernel upper
// files: WithDataFile).
// Backing files are therefore opened on first use and kept in a small
// cache: at most Config.MaxOpenFiles stay open (while none is in use),
// and those unused for two sweeps are closed. A backing file can be
// closed whenever its real file can be found again by path. It cannot
// for a copy not linked into the upper layer yet (pending, settle.go), a
// file copied up after it was unlinked ("anon"), or a hard-linked file
// whose known name was removed: those are kept, out of the cache, as long
// as they are that. An explicit Open (Handle) pins the backing file until
// Release.
type backing struct {
	node     *Node
	fd       int
	writable bool
	upper    bool
	pins     int  // explicit opens; guarded by node.dataMu
	keep     bool // the only copy of its object: never closed while the node lives
	used     atomic.Bool

	// The cache ring, guarded by fileCache.mu.
	prev, next *backing
	listed     bool
}

func (b *backing) evictable() bool { return b.pins == 0 && !b.keep }

// setKeep marks b as the only copy of its object (or no longer): a kept
// file leaves the cache's ring, which then only holds files it may close.
// The caller holds b.node.dataMu exclusively.
func (fs *FS) setKeep(b *backing, keep bool) {
	if b.keep == keep {
		return
	}
	b.keep = keep
	if keep {
		fs.files.remove(b)
	} else {
		fs.files.add(b)
	}
}

// DefaultMaxOpenFiles is how many backing files the engine keeps open
// when Config.MaxOpenFiles is 0.
const DefaultMaxOpenFiles = 64

// fileCache is the ring of open backing files, swept CLOCK-wise: a file
// used since the hand last passed gets another round.
type fileCache struct {
	mu    sync.Mutex
	hand  *backing // next to look at; nil when empty
	count int
	max   int

	stop chan struct{}
	done chan struct{}
}

func (c *fileCache) add(b *backing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.listed {
		return
	}
	b.listed = true
	c.count++
	if c.hand == nil {
		b.prev, b.next = b, b
		c.hand = b
		return
	}
	// Insert behind the hand: the newest entry is looked at last.
	b.next = c.hand
	b.prev = c.hand.prev
	b.prev.next = b
	c.hand.prev = b
}

func (c *fileCache) remove(b *backing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(b)
}

func (c *fileCache) removeLocked(b *backing) {
	if !b.listed {
		return
	}
	b.listed = false
	c.count--
	if b.next == b {
		c.hand = nil
	} else {
		b.prev.next = b.next
		b.next.prev = b.prev
		if c.hand == b {
			c.hand = b.next
		}
	}
	b.prev, b.next = nil, nil
}

// victims moves the hand over at most limit entries and returns those
// not used since it last passed them (their use bit is cleared for the
// next round otherwise), up to want of them.
func (c *fileCache) victims(want, limit int) []*backing {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*backing
	for i := 0; i < limit && c.hand != nil && len(out) < want; i++ {
		b := c.hand
		c.hand = b.next
		if b.used.Swap(false) {
			continue
		}
		out = append(out, b)
	}
	return out
}

// trimFiles closes backing files until no more than the cache's limit
// are open. It takes node data locks, so the caller holds none.
func (fs *FS) trimFiles() {
	c := &fs.files
	for round := 0; round < 4; round++ {
		c.mu.Lock()
		excess := c.count - c.max
		total := c.count
		c.mu.Unlock()
		if excess <= 0 {
			return
		}
		// Two passes of the ring at most: the first may only clear use bits.
		for _, b := range c.victims(excess, 2*total) {
			fs.evict(b, false)
		}
	}
}

// evict closes b if it is still its node's evictable backing file and, if
// idleOnly, unused since the sweep looked at it. A node busy with I/O (its
// data lock held) is skipped, not waited for.
func (fs *FS) evict(b *backing, idleOnly bool) {
	n := b.node
	if !n.dataMu.TryLock() {
		return
	}
	defer n.dataMu.Unlock()
	if n.backing != b || !b.evictable() || idleOnly && b.used.Load() {
		return
	}
	fs.closeBackingLocked(n)
}

// closeBackingLocked closes the node's backing file. The caller holds
// n.dataMu exclusively.
func (fs *FS) closeBackingLocked(n *Node) {
	b := n.backing
	if b == nil {
		return
	}
	fs.files.remove(b)
	unix.Close(b.fd)
	n.backing = nil
}

// setBackingLocked makes fd the node's backing file, replacing the one
// it has (whose pins it keeps). The caller holds n.dataMu exclusively.
func (fs *FS) setBackingLocked(n *Node, fd int, writable, upper bool) *backing {
	if b := n.backing; b != nil {
		if b.fd != fd {
			unix.Close(b.fd)
		}
		b.fd, b.writable, b.upper = fd, writable, upper
		b.used.Store(true)
		return b
	}
	b := &backing{node: n, fd: fd, writable: writable, upper: upper}
	b.used.Store(true)
	n.backing = b
	fs.files.add(b)
	return b
}

// sweepInterval is how often backing files unused since the last sweep
// are closed.
const sweepInterval = 2 * time.Second

// sweeper closes idle backing files until the engine is closed, so an
// idle daemon holds no descriptor per object.
func (fs *FS) sweeper() {
	defer close(fs.files.done)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-fs.files.stop:
			return
		case <-t.C:
			fs.CloseIdleFiles()
		}
	}
}

// CloseIdleFiles closes the backing files not used since the last call
// (or since they were opened, for the first call after that), and trims
// the cache to its limit.
func (fs *FS) CloseIdleFiles() {
	c := &fs.files
	c.mu.Lock()
	total := c.count
	c.mu.Unlock()
	for _, b := range c.victims(total, total) {
		fs.evict(b, true)
	}
	fs.trimFiles()
}

// OpenFiles returns how many backing files the cache holds, those it may
// close (for tests and stats).
func (fs *FS) OpenFiles() int {
	fs.files.mu.Lock()
	defer fs.files.mu.Unlock()
	return fs.files.count
}

// acquire returns the node's backing file with n.dataMu held shared,
// opening it if needed; with write it is the upper file, opened for
// writing, after a copy-up if the node was not there yet. The caller
// calls n.dataMu.RUnlock when done with the descriptor.
func (fs *FS) acquire(n *Node, write bool) (*backing, error) {
	return fs.acquireFor(n, write, -1)
}

// acquireFor is acquire with the copy-up limit a write asks for (copyUp):
// with dataLazy, the node may be filling (fill.go) when it returns.
func (fs *FS) acquireFor(n *Node, write bool, limit int64) (*backing, error) {
	if n.kind != unix.S_IFREG {
		if n.kind == unix.S_IFDIR {
			return nil, unix.EISDIR
		}
		return nil, unix.EINVAL
	}
	if write {
		if fs.upper == nil {
			return nil, unix.EROFS
		}
		if err := fs.copyUp(n, limit); err != nil {
			return nil, err
		}
	}
	for {
		n.dataMu.RLock()
		if b := n.backing; b != nil && (!write || b.writable && b.upper) {
			if !b.used.Load() {
				b.used.Store(true)
			}
			return b, nil
		}
		n.dataMu.RUnlock()
		fs.trimFiles() // room first: the new file must not go before its use
		if err := fs.openBacking(n, write); err != nil {
			return nil, err
		}
	}
}

// openBacking opens the node's real file as its backing file (or reopens
// it for writing).
func (fs *FS) openBacking(n *Node, write bool) error {
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	b := n.backing
	if b != nil && (!write || b.writable && b.upper) {
		return nil // someone else did
	}
	if b != nil {
		// Reopen the very same file for writing. The /proc entry is a
		// (magic) symlink: following it is the point.
		fd, err := unix.Open(procFdPath(b.fd), unix.O_RDWR|unix.O_CLOEXEC|unix.O_LARGEFILE, 0)
		if err != nil {
			return err
		}
		fs.setBackingLocked(n, fd, true, b.upper)
		return nil
	}
	fd, writable, upper, err := fs.openReal(n, write)
	if err != nil {
		return err
	}
	fs.setBackingLocked(n, fd, writable, upper)
	return nil
}

// openReal opens the real file that holds the node's data: its upper
// file (read-write where allowed), the place an unlinked upper file was
// kept, or its lower file (read-only, without touching its atime). The
// caller holds treeMu.
func (fs *FS) openReal(n *Node, write bool) (fd int, writable, upper bool, err error) {
	switch {
	case n.dataPending.Load() && !write:
		// Its copy has no data yet: the lower file has the same bytes.
		fd, err = fs.layers[n.dataLayer].open(n.rel(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE|unix.O_NOATIME, 0)
		return fd, false, false, err
	case n.anon:
		return -1, false, false, unix.ENOENT // its only copy was its backing file
	case n.upper && n.deleted.Load():
		if n.grave == "" {
			return -1, false, false, unix.ENOENT
		}
		fd, err = unix.Open(n.grave, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_LARGEFILE, 0)
		return fd, true, true, err
	case n.upper:
		rel := n.rel()
		fd, err = fs.upper.open(rel, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0)
		if err == nil {
			return fd, true, true, nil
		}
		if write || err != unix.EACCES && err != unix.EPERM && err != unix.EROFS && err != unix.ETXTBSY {
			return -1, false, false, err
		}
		fd, err = fs.upper.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0)
		return fd, false, true, err
	}
	if write {
		return -1, false, false, unix.EIO // copy-up did not happen: a bug, not a user error
	}
	l := n.topLayer()
	if l == nil {
		return -1, false, false, unix.ENOENT
	}
	// O_NOATIME, as the kernel opens real files: lower layers stay
	// untouched.
	fd, err = l.open(n.rel(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE|unix.O_NOATIME, 0)
	return fd, false, false, err
}

// closeAllFiles closes every backing file, and the copies whose data was
// still to come (the engine is closing).
func (fs *FS) closeAllFiles() {
	fs.tableMu.Lock()
	nodes := make([]*Node, 0, len(fs.nodes))
	for _, n := range fs.nodes {
		nodes = append(nodes, n)
	}
	fs.tableMu.Unlock()
	for _, n := range nodes {
		n.dataMu.Lock()
		if n.backing != nil {
			fs.closeBackingLocked(n)
		}
		if n.dataPending.Load() {
			n.closeMetaLocked()
		}
		n.endFill()
		n.dataMu.Unlock()
	}
	// Files of nodes no longer in the table (kept open by a Handle).
	c := &fs.files
	for {
		c.mu.Lock()
		b := c.hand
		c.mu.Unlock()
		if b == nil {
			return
		}
		n := b.node
		n.dataMu.Lock()
		if n.backing == b {
			fs.closeBackingLocked(n)
		} else {
			c.remove(b)
		}
		n.dataMu.Unlock()
	}
}
