package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Files are never opened or closed through the daemon (unless
// passthrough is on: passthrough.go): OPEN and FLUSH
// are answered with ENOSYS, after which the
// kernel stops sending them (FUSE_NO_OPEN_SUPPORT) and every open, close
// and read from the page cache costs no round trip. CREATE is ENOSYS too,
// so new files come through MKNOD and need no RELEASE either. The kernel
// opens with FOPEN_KEEP_CACHE: the page cache belongs to the object, and
// copy-up does not change the object's data. Requests for file data carry
// the node ID, and the engine serves them from the node's backing file.

// Flush is answered with ENOSYS: the kernel then stops sending it.
func (fs *FS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	fs.turn()
	return fuse.ENOSYS
}

// Read answers from the node's current backing file, read straight into
// the reply buffer. (Not spliced: go-fuse takes a splice that returns
// fewer bytes than asked for as the end of the file, and the kernel then
// shrinks the file under its readers, whose mappings get SIGBUS.)
func (fs *FS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	if len(buf) < int(in.Size) {
		buf = make([]byte, in.Size) // a short read would read as the end of the file
	}
	buf = buf[:in.Size]
	got, err := fs.ov.ReadAt(n, buf, int64(in.Offset))
	if err != nil {
		return nil, status(err)
	}
	return fuse.ReadResultData(buf[:got]), fuse.OK
}

// Write writes to the node's data; the first write to a lower file
// copies it up. With the writeback cache the data may come long after
// the write(2), from the kernel's flusher, and the file's mtime is the
// kernel's (see FS.Writeback).
func (fs *FS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	fs.turn()
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
	write := fs.ov.WriteAt
	if fs.Writeback {
		write = fs.ov.WriteKeepingMtime
	}
	w, err := write(n, data, int64(in.Offset))
	return uint32(w), status(err)
}

// CopyFileRange serves copy_file_range(2) between two files of the mount
// in the daemon: the real filesystems copy the data (or share it, where
// they clone), where the kernel would otherwise read it through the mount
// and write it back, request by request. The kernel has written both
// ranges' cached pages back before, and drops the destination's after.
func (fs *FS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	fs.turn()
	src, dst := fs.node(in.NodeId), fs.node(in.NodeIdOut)
	if src == nil || dst == nil {
		return 0, fuse.ENOENT
	}
	if in.Flags != 0 {
		return 0, fuse.EINVAL
	}
	n, err := fs.ov.CopyRange(src, int64(in.OffIn), dst, int64(in.OffOut), int64(min(in.Len, 1<<31)), fs.Writeback)
	return uint32(n), status(err)
}

func (fs *FS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Sync(n, in.FsyncFlags&1 != 0))
}

func (fs *FS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Allocate(n, in.Mode, int64(in.Offset), int64(in.Length)))
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the real file on a
// read-only mount only. On a writable one the kernel may hold data the
// daemon has not seen yet (pages written with the writeback cache, or
// through a shared mapping, and not sent), and it does not send them
// before it asks: the daemon would report holes where the file has data,
// and SEEK_DATA past its own end of the file would fail with ENXIO though
// the file is longer (a sparse copy made then, by cp or qemu-img, would
// lose the data). ENOSYS makes the kernel answer this and every later
// call itself, from the size it knows: data up to the end of the file,
// the hole after it. That is always true, as fuse-overlayfs answers.
func (fs *FS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	fs.turn()
	if !fs.ov.ReadOnly() {
		return fuse.ENOSYS
	}
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
