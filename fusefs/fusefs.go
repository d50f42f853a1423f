// Package fusefs serves an overlay.FS over the FUSE protocol. It is a thin
// translation layer: FUSE node IDs are overlay node IDs, file handles map
// to overlay handles, and every semantic decision is the engine's.
//
// The kernel contract it relies on: entries and attributes are cached for
// a long time (a mounted overlay's layers must not be changed underneath
// it, and every change goes through this file system, so the kernel is
// told of each), file data is cached in the page cache of the single
// kernel inode of each overlay object (FOPEN_KEEP_CACHE, no automatic
// invalidation), and writes go through to the daemon (no writeback cache),
// which is what keeps mappings coherent across copy-up.
package fusefs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// FS implements fuse.RawFileSystem over an overlay.FS.
type FS struct {
	fuse.RawFileSystem // ENOSYS for what is not implemented below

	ov      *overlay.FS
	timeout time.Duration
	server  *fuse.Server
}

// New returns a FUSE file system serving ov. timeout is how long the
// kernel may cache entries and attributes.
func New(ov *overlay.FS, timeout time.Duration) *FS {
	return &FS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		ov:            ov,
		timeout:       timeout,
	}
}

func (fs *FS) String() string { return "strata" }

// Init keeps the server for notifications: when a copy-up changes an
// object's attributes (a lower hard link's nlink, its ctime), the kernel's
// cached attributes are dropped (an offset of -1 leaves its page cache,
// which holds the unchanged data, alone).
func (fs *FS) Init(s *fuse.Server) {
	fs.server = s
	fs.ov.AttrChanged = func(n *overlay.Node) {
		s.InodeNotify(n.ID(), -1, 0)
	}
}

func status(err error) fuse.Status {
	if err == nil {
		return fuse.OK
	}
	if e, ok := err.(syscall.Errno); ok {
		return fuse.Status(e)
	}
	return fuse.ToStatus(err)
}

func (fs *FS) node(id uint64) *overlay.Node { return fs.ov.Node(id) }

func fillAttr(out *fuse.Attr, st *unix.Stat_t) {
	out.Ino = st.Ino
	out.Size = uint64(st.Size)
	out.Blocks = uint64(st.Blocks)
	out.Atime = uint64(st.Atim.Sec)
	out.Atimensec = uint32(st.Atim.Nsec)
	out.Mtime = uint64(st.Mtim.Sec)
	out.Mtimensec = uint32(st.Mtim.Nsec)
	out.Ctime = uint64(st.Ctim.Sec)
	out.Ctimensec = uint32(st.Ctim.Nsec)
	out.Mode = st.Mode
	out.Nlink = uint32(st.Nlink)
	out.Uid = st.Uid
	out.Gid = st.Gid
	out.Rdev = uint32(st.Rdev)
	out.Blksize = uint32(st.Blksize)
}

func (fs *FS) fillEntry(out *fuse.EntryOut, n *overlay.Node, st *unix.Stat_t) {
	out.NodeId = n.ID()
	out.Generation = 1
	out.SetEntryTimeout(fs.timeout)
	out.SetAttrTimeout(fs.timeout)
	fillAttr(&out.Attr, st)
}

func caller(h *fuse.InHeader) overlay.Caller {
	return overlay.Caller{UID: h.Uid, GID: h.Gid}
}
