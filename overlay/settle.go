package overlay

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A regular file's copy-up is durable before it shows in the upper layer:
// after a crash, the upper layer holds the whole copy or nothing, never a
// partial or empty file shadowing the lower one. The kernel's overlayfs
// gets there by an fsync per copy-up, which makes every metadata change
// of a lower file (chmod, touch) wait for the disk.
//
// Strata does the copy at once and makes it durable later: the copy is an
// unnamed file in the work directory (O_TMPFILE) that becomes the node's
// backing file straight away, so every read, write and attribute change
// of the object uses it, and the node is "pending". A linker goroutine
// flushes the pending copies in batches (one syncfs for all of them) and
// only then links each into the upper layer. Until it has, the node keeps
// its backing file open and stays in the node table, and operations that
// need the object at its upper path (rename, link) or durability (fsync)
// settle it first themselves. Unmount settles everything. A crash loses
// at most the pending copy-ups, which are then absent as a whole.

// maxPending bounds the pending copy-ups (each holds a descriptor): a
// copy-up beyond it waits for the linker.
const maxPending = 512

// pendingSet is the queue of copy-ups waiting to be linked.
type pendingSet struct {
	run   sync.Mutex // held by whoever settles a batch
	mu    sync.Mutex
	nodes []*Node
	space *sync.Cond // signalled when the queue shrinks
	wake  chan struct{}
	full  chan struct{} // the queue is half full: settle without waiting
	stop  chan struct{}
	done  chan struct{}

	// Large copies filled on their own (fillAlone): at most fillWorkers
	// at once, all ended before the engine closes its files.
	fillSem chan struct{}
	fillers sync.WaitGroup
}

func (p *pendingSet) init() {
	p.space = sync.NewCond(&p.mu)
	p.wake = make(chan struct{}, 1)
	p.full = make(chan struct{}, 1)
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.fillSem = make(chan struct{}, fillWorkers)
}

func (p *pendingSet) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// add queues n, waiting while the queue is full.
func (fs *FS) addPending(n *Node) {
	p := &fs.pending
	p.mu.Lock()
	for len(p.nodes) >= maxPending {
		p.kick()
		p.hurry()
		p.space.Wait()
	}
	p.nodes = append(p.nodes, n)
	if len(p.nodes) >= maxPending/2 {
		p.hurry()
	}
	p.mu.Unlock()
	p.kick()
}

// hurry ends the linker's wait for more copy-ups: the queue is filling,
// and copy-ups would soon wait for room in it.
func (p *pendingSet) hurry() {
	select {
	case p.full <- struct{}{}:
	default:
	}
}

// gatherTime is how long the linker lets copy-ups gather before it
// flushes them, unless the queue fills up first: one flush of the
// filesystem (a journal commit and the disk's cache) per batch, and
// foreground work stalls less on commits the fewer there are. chmod of
// 11.5k lower files, 3 runs each, alternated: 10 ms 4.4-4.8 s, 50 ms
// 3.7-4.2 s, 200 ms 3.8-4.2 s; touch 4.7-6.4, 4.0-4.7 and 3.9-4.2 s.
// Without cutting the wait short when the queue fills, 200 ms took
// 6.3 s: copy-ups waited for room.
const gatherTime = 50 * time.Millisecond

// fillWorkers is how many copies the linker fills with data at once.
const fillWorkers = 4

// batchFillMax is the most data a copy may still lack for the linker to
// fill it as part of a batch. A copy lacking more is filled on its own
// (fillAlone) and linked with a later batch: one large file must not hold
// up the linking of every other copy-up, nor, once maxPending wait, the
// copy-ups themselves.
const batchFillMax = 16 << 20

// linker settles pending copy-ups in batches until the engine closes.
func (fs *FS) linker() {
	p := &fs.pending
	defer close(p.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		// Let a burst of copy-ups gather for one flush.
		t.Reset(gatherTime)
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.full:
			t.Stop()
		}
		if h := fs.Hooks.LinkerBatch; h != nil {
			h()
		}
		fs.settleBatch(false)
	}
}

// settleAll makes every pending copy-up durable and linked, waiting for
// every copy's data.
func (fs *FS) settleAll() {
	for fs.settleBatch(true) {
	}
}

// settleBatch makes the pending copy-ups durable with one flush of the
// upper filesystem and links each into place. Unless wait, copies that
// still lack much data are left for a later batch, filled meanwhile on
// their own. It reports whether there was any to settle and all were
// linked.
func (fs *FS) settleBatch(wait bool) bool {
	p := &fs.pending
	p.run.Lock()
	defer p.run.Unlock()
	p.mu.Lock()
	queued := p.nodes
	p.nodes = nil
	p.mu.Unlock()
	if len(queued) == 0 {
		return false
	}
	var batch, later []*Node
	for _, n := range queued {
		if !n.pending.Load() {
			// Removed while pending (unpend): nothing to link, and its
			// data, read from the lower file meanwhile, is copied only
			// if it is written to.
			continue
		}
		if !wait && fs.dataLeft(n) > batchFillMax {
			fs.fillAlone(n)
			later = append(later, n)
		} else {
			batch = append(batch, n)
		}
	}
	if len(later) > 0 {
		defer func() {
			p.mu.Lock()
			p.nodes = append(p.nodes, later...)
			p.mu.Unlock()
		}()
	}
	if len(batch) == 0 {
		return false
	}
	// Copies whose data was left for later get it now, before the flush,
	// a few at a time. The kernel is first asked to read all of their
	// lower data ahead, which waits for nothing: the disk then works
	// through the batch's reads together, and the workers copy from the
	// page cache instead of each waiting for the disk in turn while it
	// holds the daemon's only P (GOMAXPROCS is 1 when requests are served
	// one at a time). chmod of 11.5k lower files, 4 runs each: 3.2-4.2 s
	// against 4.0-4.1 s, daemon CPU 2.2-2.9 against 2.9-3.0 s.
	for _, n := range batch {
		n.readAheadData()
	}
	work := make(chan *Node)
	var wg sync.WaitGroup
	for i := 0; i < fillWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := fs.fillData(n); err != nil && fs.Logf != nil {
					fs.Logf("copy-up of node %d: data: %v", n.id, err)
				}
			}
		}()
	}
	for _, n := range batch {
		if n.dataPending.Load() || n.filling() {
			work <- n
		}
	}
	close(work)
	wg.Wait()
	// The work directory is on the upper layer's filesystem (and its
	// descriptor, unlike the layer roots', is not O_PATH, which syncfs
	// refuses).
	synced := fs.cfg.Volatile // nothing to flush
	if !synced {
		synced = unix.Syncfs(int(fs.workFd.Fd())) == nil
		if synced {
			fs.batchSyncs.Add(1)
		}
	}
	var failed []*Node
	for _, n := range batch {
		if err := fs.settle(n, !synced); err != nil {
			fs.linkFailures.Add(1)
			if fs.Logf != nil {
				fs.Logf("copy-up of node %d not linked yet: %v", n.id, err)
			}
			failed = append(failed, n)
		}
	}
	p.mu.Lock()
	p.space.Broadcast()
	if len(failed) > 0 {
		// Tried again with the next batch; the copy is in use meanwhile.
		p.nodes = append(p.nodes, failed...)
	}
	p.mu.Unlock()
	fs.trimFiles() // the copies linked may be closed now
	return len(failed) == 0
}

// dataLeft returns how much data a pending copy still lacks (roughly: by
// chunks for a fill).
func (fs *FS) dataLeft(n *Node) int64 {
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	if f := n.fill.Load(); f != nil {
		f.mu.RLock()
		defer f.mu.RUnlock()
		return f.left * fillChunk
	}
	if n.dataPending.Load() {
		return n.dataSize
	}
	return 0
}

// fillAlone fills a pending copy with its data in the background, unless
// that is under way, and wakes the linker when it is whole. A fill that
// fails is tried again with a later batch.
func (fs *FS) fillAlone(n *Node) {
	if !n.filler.CompareAndSwap(false, true) {
		return
	}
	p := &fs.pending
	p.fillers.Add(1)
	go func() {
		defer p.fillers.Done()
		p.fillSem <- struct{}{}
		err := fs.fillData(n)
		<-p.fillSem
		n.filler.Store(false)
		if err != nil {
			if fs.Logf != nil {
				fs.Logf("copy-up of node %d: data: %v", n.id, err)
			}
			return
		}
		p.kick()
	}()
}

// settle links a pending copy-up into the upper layer, after syncing it
// when sync is set (the caller has not flushed it already). Nothing
// happens to a node that is not pending.
func (fs *FS) settle(n *Node, sync bool) error {
	if !n.pending.Load() {
		return nil
	}
	n.copyMu.Lock()
	defer n.copyMu.Unlock()
	if !n.pending.Load() {
		return nil
	}
	if n.dataPending.Load() || n.filling() {
		if err := fs.fillDataLocked(n); err != nil {
			return err
		}
		sync = true // not covered by the caller's flush
	}
	n.dataMu.RLock()
	b := n.backing
	n.dataMu.RUnlock()
	if b == nil {
		return unix.EIO // a pending copy keeps its backing file: a bug
	}
	if sync && !fs.cfg.Volatile {
		if err := unix.Fsync(b.fd); err != nil {
			return err
		}
		fs.fileSyncs.Add(1)
	}
	err := fs.linkPending(n, b)
	if err == nil {
		fs.Forget(n, 0) // kept in the table while pending: it may go now
	}
	return err
}

// linkPending gives a pending copy its name in the upper layer.
func (fs *FS) linkPending(n *Node, b *backing) error {
	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	if n.deleted.Load() || !n.pending.Load() {
		n.pending.Store(false) // removed meanwhile: remove made it anonymous
		return nil
	}
	rel := n.rel()
	if h := fs.Hooks.CopyUpBeforeLink; h != nil {
		h(rel)
	}
	restore := fs.keepParentTimes(n.parent)
	err := fs.linkCopy(b.fd, n.tmpPath, rel)
	restore()
	if err != nil {
		return err
	}
	n.tmpPath = ""
	n.pending.Store(false)
	n.dataMu.Lock()
	if n.backing == b {
		fs.setKeep(b, false)
	}
	n.dataMu.Unlock()
	return nil
}

// Settle makes every copy-up so far durable and linked (for tests, and
// before the engine closes).
func (fs *FS) Settle() {
	fs.settleAll()
}
