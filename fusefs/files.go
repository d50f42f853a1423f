package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Open opens a file. FOPEN_KEEP_CACHE keeps the page cache across opens:
// the cache belongs to the object, not to one open, and copy-up does not
// change the object's data.
func (fs *FS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	h, err := fs.ov.Open(n, int(in.Flags))
	if err != nil {
		return status(err)
	}
	out.Fh = fs.addFile(h)
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// Read answers from the node's current backing file, spliced to the
// kernel without a copy through the daemon. The node's data lock is held
// until the reply is sent (lockedRead.Done), so a concurrent copy-up
// cannot close the descriptor under the splice.
func (fs *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h := fs.file(in.Fh)
	if h == nil {
		return nil, fuse.EBADF
	}
	fd, done, err := fs.ov.ReadFd(h)
	if err != nil {
		return nil, status(err)
	}
	return &lockedRead{fd: fd, off: int64(in.Offset), size: int(in.Size), done: done}, fuse.OK
}

// lockedRead is a zero-copy read result that releases a lock when sent.
type lockedRead struct {
	fd   int
	off  int64
	size int
	done func()
}

// Seekable lets go-fuse splice from the descriptor.
func (r *lockedRead) Seekable() (uintptr, int64, int) { return uintptr(r.fd), r.off, r.size }

// Bytes reads into buf where splicing is not possible.
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

func (fs *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	h := fs.file(in.Fh)
	if h == nil {
		return 0, fuse.EBADF
	}
	n, err := fs.ov.Write(h, data, int64(in.Offset))
	return uint32(n), status(err)
}

func (fs *FS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	fs.mu.Lock()
	h := fs.files[in.Fh]
	delete(fs.files, in.Fh)
	fs.mu.Unlock()
	if h != nil {
		fs.ov.Release(h)
	}
}

func (fs *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return fuse.OK
}

func (fs *FS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	h := fs.file(in.Fh)
	if h == nil {
		return fuse.EBADF
	}
	return status(fs.ov.Fsync(h, in.FsyncFlags&1 != 0))
}

func (fs *FS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	h := fs.file(in.Fh)
	if h == nil {
		return fuse.EBADF
	}
	return status(fs.ov.Fallocate(h, in.Mode, int64(in.Offset), int64(in.Length)))
}

func (fs *FS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	h := fs.file(in.Fh)
	if h == nil {
		return fuse.EBADF
	}
	off, err := fs.ov.Lseek(h, int64(in.Offset), int(in.Whence))
	if err != nil {
		return status(err)
	}
	out.Offset = uint64(off)
	return fuse.OK
}
