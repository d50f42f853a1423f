package overlay

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Inode flags (lsattr, FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR) are read
// from the object's real file, as kernel overlayfs reads them: the upper
// one, else the top lower one. Kernel overlayfs keeps the immutable and
// append-only flags of an upper object in its overlay.protattr xattr
// ("i", "a") rather than on the real file, which must stay writable for
// the overlay; they are shown from there.

// Inode flag bits (linux/fs.h) and their FS_IOC_FSGETXATTR counterparts.
const (
	flagSync       = 0x00000008 // FS_SYNC_FL
	flagImmutable  = 0x00000010 // FS_IMMUTABLE_FL
	flagAppend     = 0x00000020 // FS_APPEND_FL
	flagNoatime    = 0x00000080 // FS_NOATIME_FL
	xflagImmutable = 0x00000008 // FS_XFLAG_IMMUTABLE
	xflagAppend    = 0x00000010 // FS_XFLAG_APPEND
)

// IoctlFSGetXattr is FS_IOC_FSGETXATTR, _IOR('X', 31, struct fsxattr),
// which GetFsxattr answers.
const IoctlFSGetXattr = 0x801c581f

// Fsxattr is struct fsxattr, what FS_IOC_FSGETXATTR returns.
type Fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

// GetFlags returns the node's inode flags (FS_IOC_GETFLAGS).
func (fs *FS) GetFlags(n *Node) (uint32, error) {
	var flags uint32
	prot, err := fs.onRealFile(n, func(fd int) (err error) {
		flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		return err
	})
	if prot&flagImmutable != 0 {
		flags |= flagImmutable
	}
	if prot&flagAppend != 0 {
		flags |= flagAppend
	}
	return flags, err
}

// GetFsxattr returns the node's extended inode flags and project
// (FS_IOC_FSGETXATTR).
func (fs *FS) GetFsxattr(n *Node) (Fsxattr, error) {
	var fa Fsxattr
	prot, err := fs.onRealFile(n, func(fd int) error {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), IoctlFSGetXattr, uintptr(unsafe.Pointer(&fa)))
		if e != 0 {
			return e
		}
		return nil
	})
	if prot&flagImmutable != 0 {
		fa.Xflags |= xflagImmutable
	}
	if prot&flagAppend != 0 {
		fa.Xflags |= xflagAppend
	}
	return fa, err
}

// onRealFile runs fn on a descriptor of the node's real file or
// directory (opened for it unless the node has one open) and returns the
// flags its overlay.protattr xattr records, if it is an upper object.
// Only regular files and directories have inode flags to show.
func (fs *FS) onRealFile(n *Node, fn func(fd int) error) (prot uint32, err error) {
	if n.kind != unix.S_IFREG && n.kind != unix.S_IFDIR {
		return 0, unix.ENOTTY
	}
	err = fs.readRef(n, func(r realRef) error {
		fd, done, err := flagsFd(r)
		if err != nil {
			return err
		}
		defer done()
		if err := fn(fd); err != nil {
			return err
		}
		if r.layer == nil || r.layer == fs.upper {
			prot = protFlags(fd, fs.xattrPrefix+"protattr")
		}
		return nil
	})
	return prot, err
}

// flagsFd returns a descriptor of r's object for an inode-flags ioctl
// (r's own, or one opened for it) and what releases it.
func flagsFd(r realRef) (fd int, done func(), err error) {
	if r.path == "" {
		return r.fd, func() {}, nil
	}
	if fd, err = openForFlags(r.path); err != nil {
		return -1, nil, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// openForFlags opens a real file or directory for an inode-flags ioctl,
// without following a symlink, blocking on a fifo or touching its atime.
func openForFlags(path string) (int, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_LARGEFILE
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(path, flags, 0) // not the owner: O_NOATIME is refused
	}
	return fd, err
}

// protFlags reads an overlay.protattr xattr: "a" for append-only, "i"
// for immutable, as kernel overlayfs writes it. A value with anything
// else in it counts for nothing, as on the kernel.
func protFlags(fd int, name string) uint32 {
	var buf [8]byte
	size, err := unix.Fgetxattr(fd, name, buf[:])
	if err != nil || size <= 0 {
		return 0
	}
	var flags uint32
	for _, c := range buf[:size] {
		switch c {
		case 'a':
			flags |= flagAppend
		case 'i':
			flags |= flagImmutable
		default:
			return 0
		}
	}
	return flags
}

// copyFlags gives a copy-up the inode flags kernel overlayfs carries over
// (ovl_copy_fileattr): sync and noatime on the real file, immutable and
// append-only in overlay.protattr, since the copy itself must stay
// writable. Best effort, as for xattrs the target cannot take: a
// filesystem without inode flags has none to give.
func (fs *FS) copyFlags(src, dst realRef) {
	sfd, done, err := flagsFd(src)
	if err != nil {
		return
	}
	defer done()
	flags, err := unix.IoctlGetUint32(sfd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&(flagSync|flagNoatime|flagImmutable|flagAppend) == 0 {
		return
	}
	if flags&(flagImmutable|flagAppend) != 0 {
		var prot []byte
		if flags&flagAppend != 0 {
			prot = append(prot, 'a')
		}
		if flags&flagImmutable != 0 {
			prot = append(prot, 'i')
		}
		fs.setXattr(dst, fs.xattrPrefix+"protattr", prot)
	}
	keep := flags & (flagSync | flagNoatime)
	if keep == 0 {
		return
	}
	dfd, done, err := flagsFd(dst)
	if err != nil {
		return
	}
	defer done()
	if cur, err := unix.IoctlGetUint32(dfd, unix.FS_IOC_GETFLAGS); err == nil && cur&keep != keep {
		unix.IoctlSetPointerInt(dfd, unix.FS_IOC_SETFLAGS, int(cur|keep))
	}
}
