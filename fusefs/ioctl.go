package fusefs

import (
	"encoding/binary"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// The kernel sends an IOCTL for lsattr's FS_IOC_GETFLAGS and for
// FS_IOC_FSGETXATTR (fuse_fileattr_get), with room for the answer. Both
// are answered from the object's real file. Setting inode flags (chattr)
// is not supported, as in fuse-overlayfs: the immutable and append-only
// flags would have to be kept in the upper layer's overlay.protattr, as
// kernel overlayfs keeps them, and enforced by the daemon. Other ioctls
// are unknown to the mount.

const (
	fsIocSetFlags    = 0x40086602 // FS_IOC_SETFLAGS (the kernel's long-sized code)
	fsIocFSSetXattr  = 0x401c5820 // FS_IOC_FSSETXATTR
	fsIocGetFlags32  = 0x80046601 // FS_IOC32_GETFLAGS
	fsIocSetFlags32  = 0x40046602 // FS_IOC32_SETFLAGS
	fsxattrSize      = int(unsafe.Sizeof(overlay.Fsxattr{}))
	fsIocGetFlagsOut = 4 // the kernel passes the flags as an unsigned int
)

// Ioctl answers the inode-flags ioctls; see above.
func (fs *FS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	switch in.Cmd {
	case unix.FS_IOC_GETFLAGS, fsIocGetFlags32:
		if len(outbuf) < fsIocGetFlagsOut {
			return fuse.EINVAL
		}
		flags, err := fs.ov.GetFlags(n)
		if err != nil {
			return status(err)
		}
		clear(outbuf)
		binary.NativeEndian.PutUint32(outbuf, flags)
		return fuse.OK
	case overlay.IoctlFSGetXattr:
		if len(outbuf) < fsxattrSize {
			return fuse.EINVAL
		}
		fa, err := fs.ov.GetFsxattr(n)
		if err != nil {
			return status(err)
		}
		copy(outbuf, unsafe.Slice((*byte)(unsafe.Pointer(&fa)), fsxattrSize))
		return fuse.OK
	case fsIocSetFlags, fsIocSetFlags32, fsIocFSSetXattr:
		return fuse.Status(unix.EOPNOTSUPP)
	}
	return fuse.Status(unix.ENOTTY)
}
