package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
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

func (fs *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	h := fs.file(in.Fh)
	if h == nil {
		return nil, fuse.EBADF
	}
	if int(in.Size) < len(buf) {
		buf = buf[:in.Size]
	}
	n, err := fs.ov.Read(h, buf, int64(in.Offset))
	if err != nil {
		return nil, status(err)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
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
