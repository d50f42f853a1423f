package overlay

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading an xattr by name relative to a layer's descriptor.
//
// Objects in the layers are reached from the layers' root descriptors
// (*at system calls), not by path: a path through /proc/self/fd/N costs
// a walk of /proc and a magic link on every call, about 2 µs more per
// system call on the project's VM. Extended attributes have no *at call
// before getxattrat(2) (Linux 6.13); on older kernels, or where a
// seccomp filter refuses it, the path is used.

// xattrArgs is the kernel's struct xattr_args.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

var (
	getxattratOnce sync.Once
	getxattratOK   bool
)

// haveGetxattrat reports whether getxattrat(2) can be used, trying it on
// dirfd the first time.
func haveGetxattrat(dirfd int) bool {
	getxattratOnce.Do(func() {
		_, err := getxattrat(dirfd, ".", "user.strata.probe", nil)
		// ENODATA, ENOTSUP: the call works. ENOSYS: an older kernel;
		// EPERM: a seccomp filter that does not know it.
		getxattratOK = err != unix.ENOSYS && err != unix.EPERM
	})
	return getxattratOK
}

func getxattrat(dirfd int, rel, name string, dest []byte) (int, error) {
	p, err := unix.BytePtrFromString(rel)
	if err != nil {
		return 0, err
	}
	nm, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	args := xattrArgs{size: uint32(len(dest))}
	if len(dest) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&dest[0])))
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(nm)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if e != 0 {
		return -1, e // as lgetxattr returns it
	}
	return int(r), nil
}

// getxattr reads xattr name of rel (not following a final symlink) into
// dest and returns its size; with an empty dest it returns the size only.
func (l *Layer) getxattr(rel, name string, dest []byte) (int, error) {
	if haveGetxattrat(l.fd) {
		fd, at, done, err := l.at(rel)
		if err != nil {
			return -1, err
		}
		defer done()
		return getxattrat(fd, at, name, dest)
	}
	p, done, err := l.longPath(rel)
	if err != nil {
		return -1, err
	}
	defer done()
	return unix.Lgetxattr(p, name, dest)
}
