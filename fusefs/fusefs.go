// Package fusefs serves an overlay.FS over the FUSE protocol. It is a thin
// translation layer: FUSE node IDs are overlay node IDs, and every
// semantic decision is the engine's.
//
// The kernel contract it relies on, chosen to spare round trips (each
// costs tens of microseconds, more than most operations' work):
//
//   - Entries and attributes are cached for a long time (a mounted
//     overlay's layers must not be changed underneath it, and every
//     change goes through this file system, so the kernel knows of each).
//   - OPEN, OPENDIR, FLUSH and CREATE are answered with ENOSYS: the
//     kernel then opens and closes files and directories on its own, and
//     creates files with MKNOD. (With -o passthrough OPEN is answered, so
//     that files in the upper layer can be handed to the kernel:
//     passthrough.go.) There are no file handles; data requests
//     name the node, and the engine serves them from the node's backing
//     file. The kernel opens files with FOPEN_KEEP_CACHE and directories
//     with FOPEN_CACHE_DIR: data and listings stay in the page cache of
//     the object's single kernel inode across opens, with no automatic
//     invalidation (explicit data cache control), which is what keeps
//     mappings coherent across copy-up.
//   - Writes are cached by the kernel (FUSE_WRITEBACK_CACHE, unless
//     -o writeback=0, passthrough or a read-only mount): it keeps regular
//     files' sizes and mtimes itself, sends the data later in large
//     WRITEs and the times it showed in SETATTRs, so a WRITE puts the
//     real file's mtime back (overlay.FS.WriteKeepingMtime) and the upper
//     layer ends up with the times the mount showed.
//   - The daemon drops set-id bits on unprivileged writes and truncates
//     (FUSE_HANDLE_KILLPRIV_V2).
package fusefs

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// FS implements fuse.RawFileSystem over an overlay.FS.
type FS struct {
	fuse.RawFileSystem // ENOSYS for what is not implemented below

	// Passthrough hands files in the upper layer to the kernel
	// (passthrough.go). Set before mounting.
	Passthrough bool
	// Writeback is set when the kernel caches writes (the mount has
	// FUSE_WRITEBACK_CACHE): it then keeps regular files' sizes and
	// times itself, sends the data later, and sends the times it showed
	// with SETATTR, so a WRITE must not move the real file's mtime. Set
	// before mounting.
	Writeback bool
	// Logf, if set, reports what the mount cannot do as asked.
	Logf func(format string, args ...any)
	// Serial is set when go-fuse hands this file system one request at
	// a time and the process has a single P (see turn). Set before
	// mounting.
	Serial bool

	ov      *overlay.FS
	timeout time.Duration
	server  *fuse.Server
	ptState atomic.Int32 // passthrough state: ptUnknown, ...
	opens   openTable    // passthrough: the kernel's open files, by node
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

// turn starts every request's handler. When requests are served one at
// a time (Serial), it lets the goroutine go-fuse started after reading
// this request run first: that goroutine finds the budget of requests in
// flight spent and ends at once, and run now, on this thread, it costs two
// goroutine switches. Left for later, it would wait in the run queue until
// this thread blocks in a system call (the next read of /dev/fuse, a disk
// read), and the runtime's monitor would then wake another thread only to
// run it: a context switch, mostly a preemption, per request. Untar of the
// Go tree: 58k involuntary context switches to 1k, daemon CPU 3.6-4.3 s to
// 3.0-3.3 s (fuse-overlayfs: 2.8-3.0 s).
func (fs *FS) turn() {
	if fs.Serial {
		runtime.Gosched()
	}
}

// Init keeps the server for notifications: when a copy-up changes an
// object's attributes (a lower hard link's nlink, its ctime), the kernel's
// cached attributes are dropped (an offset of -1 leaves its page cache,
// which holds the unchanged data, alone).
func (fs *FS) Init(s *fuse.Server) {
	fs.server = s
	fs.ov.AttrChanged = func(n *overlay.Node) {
		s.InodeNotify(n.ID(), -1, 0)
	}
	// A directory's listing is kept in its page cache (FOPEN_CACHE_DIR):
	// dropping the pages makes the next readdir ask again.
	fs.ov.ListingChanged = func(dir *overlay.Node) {
		s.InodeNotify(dir.ID(), 0, 0)
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

// inGroup returns a test of whether the process that made a request is
// in a group: its group from the request, else its supplementary groups
// as /proc shows them (read only when asked).
func inGroup(h *fuse.InHeader) func(gid uint32) bool {
	return func(gid uint32) bool {
		if gid == h.Gid {
			return true
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.Pid))
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(data), "\n") {
			if groups, ok := strings.CutPrefix(l, "Groups:"); ok {
				for _, g := range strings.Fields(groups) {
					if v, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(v) == gid {
						return true
					}
				}
			}
		}
		return false
	}
}
