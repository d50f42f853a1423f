package overlay

import (
	"math/bits"
	"sync"

	"golang.org/x/sys/unix"
)

// A large lower file's copy-up for a write does not make the writer wait
// for the whole copy. The copy (an O_TMPFILE, as every copy-up) gets the
// file's size and metadata and becomes the node's backing file at once,
// but its data arrives a chunk at a time: the chunks a write touches are
// copied before the write, the rest by the linker in the background
// (settle.go), and until a chunk is copied its bytes are read from the
// lower file, which has the same ones. The node is "filling" meanwhile.
// Everything that needs the whole file (fsync, truncate, fallocate,
// SEEK_DATA, a link, handing the file to the kernel for passthrough)
// finishes the fill first; linking into the upper layer waits for it, so
// the upper layer still never holds a partial copy. A metadata copy-up
// (chmod, touch) whose data was left for later (dataPending) turns into a
// fill the same way when its data is wanted.
//
// Coherence: the node, its backing file and the kernel's page cache stay
// the same throughout; only where the daemon reads each byte from
// changes, per chunk, under the fill's lock.

// fillChunk is the unit of a fill: what a write into a chunk not copied
// yet waits for.
const fillChunk = 1 << 20

// lazyFillMin is the size from which a copy-up for a write leaves the
// data to a fill: smaller files are copied at once.
const lazyFillMin = 4 << 20

// dataLazy, as copyUp's limit, says the caller writes through WriteAt,
// which knows fills: a large file's data may follow (see above).
const dataLazy = int64(-3)

// fillState is a filling node's record of its chunks. The node's
// backing file is the copy; chunks not copied are read from src.
type fillState struct {
	src    int   // the lower file, read-only; closed when the fill ends
	size   int64 // bytes [0, size) come from src; after that, the copy has them
	blocks int64 // the lower file's st_blocks, shown until the copy has as many

	// mu guards done and left. Reads and writes of the node's data hold it
	// shared; copying a chunk holds it exclusively, and so does a write
	// whose chunks were marked done without a copy (it covers them) until
	// it has written them.
	mu    sync.RWMutex
	done  []uint64 // bit c: chunk c is in the copy
	left  int64    // chunks not copied
	first int64    // no chunk before it is left to copy
}

func newFillState(src int, size, blocks int64) *fillState {
	chunks := (size + fillChunk - 1) / fillChunk
	return &fillState{src: src, size: size, blocks: blocks,
		done: make([]uint64, (chunks+63)/64), left: chunks}
}

func (f *fillState) isDone(c int64) bool { return f.done[c/64]&(1<<uint(c%64)) != 0 }

func (f *fillState) markDone(c int64) {
	if !f.isDone(c) {
		f.done[c/64] |= 1 << uint(c%64)
		f.left--
	}
}

func (f *fillState) markUndone(c int64) {
	if f.isDone(c) {
		f.done[c/64] &^= 1 << uint(c%64)
		f.left++
		f.first = min(f.first, c)
	}
}

// nextUndone returns the first chunk not copied, or -1. The caller holds
// f.mu exclusively.
func (f *fillState) nextUndone() int64 {
	if f.left == 0 {
		return -1
	}
	for i := f.first / 64; i < int64(len(f.done)); i++ {
		if w := f.done[i]; ^w != 0 {
			c := i*64 + int64(bits.TrailingZeros64(^w))
			f.first = c
			return c
		}
	}
	return -1
}

// chunkEnd is where chunk c ends (the last one at size).
func (f *fillState) chunkEnd(c int64) int64 {
	end := (c + 1) * fillChunk
	if end > f.size {
		end = f.size
	}
	return end
}

// copyChunk copies chunk c from the lower file into dst and marks it
// done. The caller holds f.mu exclusively.
func (f *fillState) copyChunk(dst int, c int64) error {
	if f.isDone(c) {
		return nil
	}
	if _, err := copyDataRange(f.src, dst, c*fillChunk, f.chunkEnd(c)); err != nil {
		return err
	}
	f.markDone(c)
	return nil
}

// readAt reads the node's data at off: each chunk from the copy if it is
// there, else from the lower file. dst is the copy.
func (f *fillState) readAt(dst int, p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	total := 0
	for total < len(p) {
		pos := off + int64(total)
		end := off + int64(len(p))
		fd := dst
		if pos < f.size {
			// The run of chunks in the same state as pos's.
			c := pos / fillChunk
			have := f.isDone(c)
			runEnd := f.chunkEnd(c)
			for runEnd < f.size && runEnd < end && f.isDone(runEnd/fillChunk) == have {
				runEnd = f.chunkEnd(runEnd / fillChunk)
			}
			if runEnd < end {
				end = runEnd
			}
			if !have {
				fd = f.src
			}
		}
		want := int(end - pos)
		r, err := preadFull(fd, p[total:total+want], pos)
		total += r
		if err != nil || r < want {
			return total, err // the end of the file
		}
	}
	return total, nil
}

// lockForWrite makes the chunks a write of length bytes at off touches
// ready for it and returns the lock the write must hold, to be unlocked
// after it with the write's outcome. Chunks the write covers whole are
// only marked done (the write puts their bytes), and then the lock is
// exclusive until the write is over; partly covered ones are copied
// first.
func (f *fillState) lockForWrite(dst int, off, length int64) (unlock func(ok bool), err error) {
	end := off + length
	if end > f.size {
		end = f.size
	}
	if off >= end {
		f.mu.RLock()
		return func(bool) { f.mu.RUnlock() }, nil
	}
	first, last := off/fillChunk, (end-1)/fillChunk
	f.mu.RLock()
	ready := true
	for c := first; c <= last && ready; c++ {
		ready = f.isDone(c)
	}
	if ready {
		return func(bool) { f.mu.RUnlock() }, nil
	}
	f.mu.RUnlock()
	f.mu.Lock()
	var covered []int64
	for c := first; c <= last; c++ {
		if f.isDone(c) {
			continue
		}
		if off <= c*fillChunk && f.chunkEnd(c) <= off+length {
			f.markDone(c)
			covered = append(covered, c)
			continue
		}
		if err := f.copyChunk(dst, c); err != nil {
			for _, c := range covered {
				f.markUndone(c)
			}
			f.mu.Unlock()
			return nil, err
		}
	}
	if len(covered) > 0 {
		return func(ok bool) {
			if !ok {
				// Not all written: those chunks come from the lower file
				// again, and are copied whole later.
				for _, c := range covered {
					f.markUndone(c)
				}
			}
			f.mu.Unlock()
		}, nil
	}
	f.mu.Unlock()
	f.mu.RLock() // chunks never go back to not done but under f.mu exclusively
	return func(bool) { f.mu.RUnlock() }, nil
}

// startFillLocked turns a copy whose data was left for later
// (dataPending) into a filling one: the copy becomes the backing file and
// the lower file serves the chunks not copied yet: src if >= 0 (which it
// then owns), else the one the copy-up kept (dataSrc), else opened here.
// The caller holds n.copyMu.
func (fs *FS) startFillLocked(n *Node, src int) error {
	if !n.dataPending.Load() {
		if src >= 0 {
			unix.Close(src)
		}
		return nil
	}
	if src < 0 {
		n.dataMu.Lock()
		src, n.dataSrc = n.dataSrc, -1
		n.dataMu.Unlock()
	}
	if src < 0 {
		fs.treeMu.RLock()
		l, rel := fs.layers[n.dataLayer], n.rel()
		fs.treeMu.RUnlock()
		var err error
		src, err = l.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			src, err = l.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0)
		}
		if err != nil {
			return err
		}
	}
	// The copy's size (the lower file's, or what it was cut to) does not
	// change while its data is to come: a truncate fills it first.
	size := n.dataSize
	var blocks int64
	if size >= lazyFillMin {
		// A fill that may take a while shows the lower file's blocks.
		var sst unix.Stat_t
		if err := unix.Fstat(src, &sst); err != nil {
			unix.Close(src)
			return err
		}
		blocks = sst.Blocks
	}
	f := newFillState(src, size, blocks)
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	b := fs.setBackingLocked(n, n.metaFd, true, true)
	fs.setKeep(b, n.anon || n.pending.Load()) // its only copy (for now)
	n.fill.Store(f)
	n.metaFd = -1
	n.dataPending.Store(false)
	if size >= lazyFillMin {
		fs.lazyFills.Add(1)
	}
	return nil
}

// finishFill copies every chunk of a filling node not copied yet, then
// ends the fill. The chunks copied here keep the copy's modification time
// and capability (a copy stamps the one and drops the other; the node's
// own writes change them as they should). Unless locked (the caller holds
// n.copyMu), n.copyMu is taken for one chunk at a time, so that metadata
// changes, which hold it (lockMeta), go on between chunks.
func (fs *FS) finishFill(n *Node, locked bool) error {
	for {
		if h := fs.Hooks.FillChunk; h != nil {
			h(n)
		}
		if !locked {
			n.copyMu.Lock()
		}
		more, err := fs.fillNextChunk(n)
		if !locked {
			n.copyMu.Unlock()
		}
		if err != nil || !more {
			return err
		}
	}
}

// fillNextChunk copies the first chunk of n not copied yet, or ends the
// fill if there is none, and reports whether there may be more. The
// caller holds n.copyMu.
func (fs *FS) fillNextChunk(n *Node) (more bool, err error) {
	n.dataMu.RLock()
	f := n.fill.Load()
	if f == nil {
		n.dataMu.RUnlock()
		return false, nil
	}
	dst := n.backing.fd // a filling node's copy is kept: never closed under it
	f.mu.Lock()
	c := f.nextUndone()
	if c >= 0 {
		err = fillChunkKeepingMeta(f, dst, c)
	} else if f.left != 0 {
		err = unix.EIO // the record of chunks disagrees with itself: never end such a fill
	}
	left := f.left
	f.mu.Unlock()
	n.dataMu.RUnlock()
	if err != nil || left > 0 {
		return err == nil, err
	}
	// All copied: the lower file is no longer needed.
	n.dataMu.Lock()
	if n.fill.Load() == f {
		n.fill.Store(nil)
		unix.Close(f.src)
	}
	n.dataMu.Unlock()
	return false, nil
}

// fillChunkKeepingMeta copies chunk c and puts back the copy's
// modification time and capability, which copying changes. The caller
// holds f.mu exclusively.
func fillChunkKeepingMeta(f *fillState, dst int, c int64) error {
	var caps []byte
	err := keepingMtime(dst, func() error {
		caps, _ = realRef{fd: dst}.getXattr(xattrCaps)
		return f.copyChunk(dst, c)
	})
	if err != nil {
		return err
	}
	if caps != nil {
		return unix.Fsetxattr(dst, xattrCaps, caps, 0)
	}
	return nil
}

// filling reports whether the node's data is still being filled in.
func (n *Node) filling() bool { return n.fill.Load() != nil }

// readAheadData asks the kernel to start reading the lower data of a
// copy whose data is to come (POSIX_FADV_WILLNEED on the file its copy-up
// kept open), so that the fill finds it in the page cache. It does not
// wait for the reads.
func (n *Node) readAheadData() {
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	if n.dataPending.Load() && n.dataSrc >= 0 {
		unix.Fadvise(n.dataSrc, 0, n.dataSize, unix.FADV_WILLNEED)
	}
}

// closeMetaLocked drops a copy whose data never came, and the lower file
// kept for its fill. The caller holds n.dataMu exclusively.
func (n *Node) closeMetaLocked() {
	unix.Close(n.metaFd)
	if n.dataSrc >= 0 {
		unix.Close(n.dataSrc)
		n.dataSrc = -1
	}
	n.dataPending.Store(false)
}

// endFill drops a filling node's lower file (the node is going, or the
// engine is closing). The caller holds n.dataMu exclusively.
func (n *Node) endFill() {
	if f := n.fill.Load(); f != nil {
		unix.Close(f.src)
		n.fill.Store(nil)
	}
}
