package overlay

import (
	"sync"

	"golang.org/x/sys/unix"
)

// reaper removes, in the background, files of the work directory that
// nothing needs any more: the data of a removed file, kept there for as
// long as the kernel held a node for it (remove.go, "graves").
//
// Removing such a file frees its blocks, which can cost the filesystem
// several disk reads (bitmaps, extent trees) when its metadata is no
// longer cached. The node goes away in a FORGET, which the kernel sends
// without waiting for an answer: the request after it should not wait
// for the disk either. `rm -rf` of a tree of 12k files untarred into a
// mount, caches dropped, spent half the daemon's time in these unlinks.
//
// A crash leaves what was still queued in the work directory, where the
// next mount's cleanup (prepareWork) removes it like any leftover.
type reaper struct {
	mu     sync.Mutex
	queue  []string
	busy   bool // the goroutine is running
	idle   sync.Cond
	closed bool
}

// reap removes path from the work directory, soon.
func (fs *FS) reap(path string) {
	r := &fs.reaper
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		fs.unlinkWork(path)
		return
	}
	r.queue = append(r.queue, path)
	start := !r.busy
	r.busy = true
	r.mu.Unlock()
	if start {
		go fs.reapQueued()
	}
}

// unlinkWork removes a file tmpName named, from the work directory's
// descriptor.
func (fs *FS) unlinkWork(path string) {
	unix.Unlinkat(fs.workDir, fs.workRel(path), 0)
}

// reapQueued removes queued paths until the queue is empty. One runs at a
// time; it ends when there is nothing left, so an idle mount keeps no
// goroutine for it.
func (fs *FS) reapQueued() {
	r := &fs.reaper
	r.mu.Lock()
	for len(r.queue) > 0 {
		batch := r.queue
		r.queue = nil
		r.mu.Unlock()
		for _, p := range batch {
			fs.unlinkWork(p)
		}
		r.mu.Lock()
	}
	r.busy = false
	r.idle.Broadcast()
	r.mu.Unlock()
}

// WaitReaped returns once every file queued for removal from the work
// directory is gone (for tests, and before the engine closes).
func (fs *FS) WaitReaped() {
	r := &fs.reaper
	r.mu.Lock()
	for r.busy {
		r.idle.Wait()
	}
	r.mu.Unlock()
}

// closeReaper makes later removals immediate and waits for queued ones.
func (fs *FS) closeReaper() {
	fs.reaper.mu.Lock()
	fs.reaper.closed = true
	fs.reaper.mu.Unlock()
	fs.WaitReaped()
}
