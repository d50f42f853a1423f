package fusefs

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/overlay"
)

// Passthrough (-o passthrough, kernel 6.9+, off by default).
//
// With it the kernel reads and writes files that are already in the upper
// layer itself, on the real file, and mmap maps the real file: the
// daemon's copies and round trips leave the data path. The price is that
// OPEN is no longer answered with ENOSYS (the kernel needs the backing
// file's ID in the OPEN reply), so every open of a file costs an OPEN and
// a RELEASE round trip, where otherwise opens cost none.
//
// The kernel keeps one backing file per inode, and refuses a passthrough
// open while the inode has opens that use its page cache ("cached" opens),
// and the reverse. Coherence across copy-up decides which an open gets:
//
//   - A file whose data is still in a lower layer gets a cached open: its
//     copy-up must re-target every reader, which only the daemon can do.
//     On a read-only mount nothing is copied up, and every file gets a
//     passthrough open.
//   - A file in the upper layer gets a passthrough open, unless cached
//     opens of it are left from before its copy-up; then it gets a cached
//     one too, until they are all released.
//   - Every passthrough open of an inode shares one backing ID, registered
//     at the first and unregistered after the last.
//
// The daemon learns of releases after the kernel has let go, so it never
// counts fewer cached opens than the kernel has. A passthrough open is
// opened without FOPEN_KEEP_CACHE: pages left from earlier cached opens
// are dropped. Writes through a passthrough open leave the daemon out, and
// with them dropping set-id bits (setID, below).

// Locks: a nodeOpens.mu is held across the engine calls of an OPEN or
// RELEASE (the engine takes its own locks inside, and never calls back
// into this file); openTable.mu is only ever held alone.

// File handle values: the kind of open, for RELEASE.
const (
	fhCached      = 1
	fhPassthrough = 2
)

// nodeOpens counts the kernel's open files of one node, by kind.
type nodeOpens struct {
	users int // open calls in progress and open files; guarded by openTable.mu

	mu          sync.Mutex
	cached      int
	passthrough int
	backingID   int32
}

type openTable struct {
	mu    sync.Mutex
	nodes map[uint64]*nodeOpens

	passthroughOpens, cachedOpens atomic.Uint64
}

// OpenStats counts the kernel's opens of files, with passthrough on.
type OpenStats struct {
	Passthrough uint64 // opens granted passthrough, since the mount
	Cached      uint64 // opens served by the daemon, since the mount
	Nodes       int    // files with opens now
}

// OpenStats returns the counts of opens so far (all zero without
// passthrough: the kernel then opens files without asking).
func (fs *FS) OpenStats() OpenStats {
	fs.opens.mu.Lock()
	defer fs.opens.mu.Unlock()
	return OpenStats{
		Passthrough: fs.opens.passthroughOpens.Load(),
		Cached:      fs.opens.cachedOpens.Load(),
		Nodes:       len(fs.opens.nodes),
	}
}

// get returns the node's entry, made if create, and counts a use of it;
// nil if there is none and !create.
func (t *openTable) get(id uint64, create bool) *nodeOpens {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.nodes[id]
	if o == nil {
		if !create {
			return nil
		}
		if t.nodes == nil {
			t.nodes = make(map[uint64]*nodeOpens)
		}
		o = &nodeOpens{}
		t.nodes[id] = o
	}
	o.users++
	return o
}

func (t *openTable) put(id uint64, o *nodeOpens) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o.users--; o.users == 0 {
		delete(t.nodes, id)
	}
}

// Passthrough states of a mount.
const (
	ptUnknown = iota // no OPEN yet
	ptOn
	ptOff    // not asked for, or the kernel cannot: OPEN answers ENOSYS
	ptFailed // registering a file failed: cached opens only
)

func (fs *FS) passthroughState() int32 {
	if s := fs.ptState.Load(); s != ptUnknown {
		return s
	}
	s := int32(ptOff)
	if fs.Passthrough && fs.server != nil &&
		fs.server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0 {
		s = ptOn
	}
	fs.ptState.CompareAndSwap(ptUnknown, s)
	return fs.ptState.Load()
}

// Open is answered with ENOSYS unless passthrough is on: the kernel then
// opens files itself, for good. With passthrough, see above.
func (fs *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	fs.turn()
	st := fs.passthroughState()
	if st == ptOff {
		return fuse.ENOSYS
	}
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	write := in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY
	o := fs.opens.get(n.ID(), true) // the open's use, until its RELEASE
	fs.open(n, o, write, in.Uid, st, out)
	return fuse.OK
}

func (fs *FS) open(n *overlay.Node, o *nodeOpens, write bool, caller uint32, st int32, out *fuse.OpenOut) {
	o.mu.Lock()
	defer o.mu.Unlock()
	setID := write && fs.setID(n, caller)
	// The kernel sends RELEASE after it let go of a file: give those in
	// flight a moment before a writer that must drop set-id bits shares
	// a passthrough file it should not. (A passthrough open that stays
	// open is shared after all, the gap setID describes.)
	for i := 0; setID && o.passthrough > 0 && i < 100; i++ {
		o.mu.Unlock()
		time.Sleep(time.Millisecond)
		o.mu.Lock()
	}
	if o.passthrough == 0 && o.cached == 0 && st == ptOn && !setID {
		fs.register(n, o, write)
	} else if o.passthrough > 0 && write {
		fs.ov.NoteWriter(n)
	}
	if o.backingID != 0 {
		o.passthrough++
		fs.opens.passthroughOpens.Add(1)
		out.Fh = fhPassthrough
		out.BackingID = o.backingID
		out.OpenFlags = fuse.FOPEN_PASSTHROUGH
		return
	}
	o.cached++
	fs.opens.cachedOpens.Add(1)
	out.Fh = fhCached
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
}

// register gives the kernel the node's real file, if it may have it
// (overlay.FS.WithDataFile), as the backing file of its passthrough opens.
// A kernel that refuses (a daemon without CAP_SYS_ADMIN, layers stacked
// too deep) refuses every
// file alike: the mount then goes on with cached opens only. A file the
// engine cannot give (its data gone with its last name, say) gets a
// cached open: its reads and writes then fail as they would without
// passthrough.
func (fs *FS) register(n *overlay.Node, o *nodeOpens, write bool) {
	var regErr syscall.Errno
	fs.ov.WithDataFile(n, write, func(fd int) error {
		id, errno := fs.server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
		if errno != 0 {
			regErr = errno
			return nil
		}
		o.backingID = id
		return nil
	})
	if regErr != 0 && fs.ptState.CompareAndSwap(ptOn, ptFailed) && fs.Logf != nil {
		why := regErr.Error()
		switch regErr {
		case syscall.ELOOP:
			why = "the layers are on a stacked file system, such as an overlay"
		case syscall.EPERM:
			why = "the daemon lacks CAP_SYS_ADMIN"
		}
		fs.Logf("passthrough: the kernel refused the layers' files (%s); the daemon serves them", why)
	}
}

// setID reports whether writes to the node by a caller other than root
// must drop set-id bits. The kernel leaves that to the daemon
// (FUSE_HANDLE_KILLPRIV_V2, which also spares a security.capability
// lookup per write), and the daemon does not see passthrough writes: such
// a file gets a cached open. (A file that gains set-id bits while opened
// for passthrough, or is opened so while another passthrough open of it
// stays open, keeps them through such writes until those opens close.)
func (fs *FS) setID(n *overlay.Node, uid uint32) bool {
	if uid == 0 {
		return false
	}
	st, err := fs.ov.Getattr(n)
	if err != nil {
		return true
	}
	return st.Mode&syscall.S_ISUID != 0 || st.Mode&(syscall.S_ISGID|syscall.S_IXGRP) == syscall.S_ISGID|syscall.S_IXGRP
}

// Release ends an open of the OPEN answer above.
func (fs *FS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	fs.turn()
	if in.Fh != fhCached && in.Fh != fhPassthrough {
		return
	}
	o := fs.opens.get(in.NodeId, false)
	if o == nil {
		return // not an open of ours
	}
	o.mu.Lock()
	if in.Fh == fhCached && o.cached > 0 {
		o.cached--
	} else if in.Fh == fhPassthrough && o.passthrough > 0 {
		if o.passthrough--; o.passthrough == 0 {
			if errno := fs.server.UnregisterBackingFd(o.backingID); errno != 0 && fs.Logf != nil {
				fs.Logf("passthrough: unregistering backing file %d: %v", o.backingID, errno)
			}
			o.backingID = 0
		}
	}
	o.mu.Unlock()
	fs.opens.put(in.NodeId, o) // this call's use
	fs.opens.put(in.NodeId, o) // the open's
}
