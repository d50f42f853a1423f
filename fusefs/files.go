package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Files are never opened or closed through the daemon: OPEN and FLUSH
// are answered with ENOSYS, after which the
// kernel stops sending them (FUSE_NO_OPEN_SUPPORT) and every open, close
// and read from the page cache costs no round trip. CREATE is ENOSYS too,
// so new files come through MKNOD and need no RELEASE either. The kernel
// opens with FOPEN_KEEP_CACHE: the page cache belongs to the object, and
// copy-up does not change the object's data. Requests for file data carry
// the node ID, and the engine serves them from the node's backing file.

// Open is answered with ENOSYS: the kernel then opens files itself, for
// good.
func (fs *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

// Flush is answered with ENOSYS: the kernel then stops sending it.
func (fs *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.ENOSYS
}

// Read answers from the node's current backing file. The node's data
// lock is held until the reply is sent (lockedRead.Done), so a concurrent
// copy-up cannot close the descriptor in between. The data is read into
// the reply buffer, not spliced: go-fuse takes a splice that returns
// fewer bytes than asked for as the end of the file, and the kernel then
// shrinks the file under its readers (a mapping of it gets SIGBUS).
func (fs *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	n := fs.node(in.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	fd, done, err := fs.ov.ReadFdAt(n)
	if err != nil {
		return nil, status(err)
	}
	return &lockedRead{fd: fd, off: int64(in.Offset), size: int(in.Size), done: done}, fuse.OK
}

// lockedRead is a read result that releases a lock when sent.
type lockedRead struct {
	fd   int
	off  int64
	size int
	done func()
}

// Bytes reads into buf, to the end of the file or of the request.
func (r *lockedRead) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(buf) > r.size {
		buf = buf[:r.size]
	}
	total := 0
	for total < len(buf) {
		n, err := unix.Pread(r.fd, buf[total:], r.off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fuse.ToStatus(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	return buf[:total], fuse.OK
}

func (r *lockedRead) Size() int { return r.size }

func (r *lockedRead) Done() {
	if r.done != nil {
		r.done()
		r.done = nil
	}
}

// Write writes to the node's data; the first write to a lower file
// copies it up.
func (fs *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	n := fs.node(in.NodeId)
	if n == nil {
		return 0, fuse.ENOENT
	}
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		// The writer lacks CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2).
		if err := fs.ov.DropSetID(n, inGroup(&in.InHeader)); err != nil {
			return 0, status(err)
		}
	}
	w, err := fs.ov.WriteAt(n, data, int64(in.Offset))
	return uint32(w), status(err)
}

func (fs *FS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Sync(n, in.FsyncFlags&1 != 0))
}

func (fs *FS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Allocate(n, in.Mode, int64(in.Offset), int64(in.Length)))
}

func (fs *FS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	off, err := fs.ov.Seek(n, int64(in.Offset), int(in.Whence))
	if err != nil {
		return status(err)
	}
	out.Offset = uint64(off)
	return fuse.OK
}
