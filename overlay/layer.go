package overlay

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Layer is one real directory tree of the stack.
type Layer struct {
	// Path is the absolute path of the layer's root directory.
	Path string
	// Index is the layer's position: 0 is the upper layer when there is
	// one, then the lower layers from the top-most down.
	Index int
	// Upper reports whether this is the writable upper layer.
	Upper bool

	dev   uint64 // st_dev of the root
	fsIdx uint64 // small number per distinct st_dev, for inode numbers
	fd    int    // O_PATH descriptor of the root, held for the mount's life
	root  string // how real paths start: through fd, not through Path

	override string // the stat-override xattr this layer uses, or ""
}

// path returns the real path of rel (relative to the layer root; "" is
// the root itself). Paths go through the descriptor opened at mount time,
// so the layer stays reachable when the mount point hides it (a mount over
// a lower directory) or its path goes away (container engines detach
// idmapped lower mounts as soon as the mount program returns).
func (l *Layer) path(rel string) string {
	if rel == "" {
		return l.root + "/." // the directory, not the /proc link to it
	}
	return l.root + "/" + rel
}

func openLayer(path string, idx int, upper bool) (*Layer, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("layer %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("layer %q: %w", path, err)
	}
	l := &Layer{Path: path, Index: idx, Upper: upper, dev: st.Dev, fd: fd, root: path}
	// Use the descriptor where /proc shows it (it always does on Linux,
	// but a sandbox may hide /proc).
	if p := procFdPath(fd); unix.Access(p, unix.F_OK) == nil {
		l.root = p
	}
	l.override = probeOverride(l.path(""))
	return l, nil
}

// maxRel is the longest path below a layer's root handed to the kernel
// in one piece. The kernel takes paths of up to PATH_MAX (4096) bytes,
// but a tree may be deeper than that (kernel overlayfs serves it, being
// built on dentries, not paths): a longer one is reached a piece at a
// time (Layer.at).
const maxRel = 3072

// at returns a descriptor and a path relative to it naming rel ("" is the
// root) in the layer: the root's descriptor and rel itself, unless rel is
// longer than maxRel; then a descriptor of a directory on the way, opened
// a piece at a time, which done closes.
func (l *Layer) at(rel string) (fd int, name string, done func(), err error) {
	if rel == "" {
		rel = "."
	}
	if len(rel) <= maxRel {
		return l.fd, rel, noDone, nil
	}
	return walkAt(l.fd, rel)
}

func noDone() {}

// walkAt opens the directories of a long rel below dirfd in pieces of at
// most maxRel bytes, and returns the last one with what is left of rel.
func walkAt(dirfd int, rel string) (int, string, func(), error) {
	fd := dirfd
	for len(rel) > maxRel {
		i := strings.LastIndexByte(rel[:maxRel+1], '/')
		if i <= 0 {
			if fd != dirfd {
				unix.Close(fd)
			}
			return -1, "", nil, unix.ENAMETOOLONG
		}
		next, err := unix.Openat(fd, rel[:i], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if fd != dirfd {
			unix.Close(fd)
		}
		if err != nil {
			return -1, "", nil, err
		}
		fd, rel = next, rel[i+1:]
	}
	return fd, rel, func() { unix.Close(fd) }, nil
}

// place is rel resolved once for both kinds of system call: a
// descriptor and a short path below it (the *at calls), and one path
// (calls that take only a path, such as the xattr ones).
type place struct {
	fd   int
	name string
	path string
}

// place resolves rel as at does; done closes what it opened.
func (l *Layer) place(rel string) (place, func(), error) {
	fd, name, done, err := l.at(rel)
	if err != nil {
		return place{}, nil, err
	}
	p := place{fd: fd, name: name}
	if fd == l.fd {
		p.path = l.path(rel)
	} else {
		p.path = procFdPath(fd) + "/" + name // rel itself is too long
	}
	return p, done, nil
}

// longPath is path for rel of any length, through the descriptor of a
// directory on the way for a rel longer than maxRel, open until done.
func (l *Layer) longPath(rel string) (string, func(), error) {
	p, done, err := l.place(rel)
	return p.path, done, err
}

// lstat stats rel without following a final symlink, resolving it from
// the layer's root descriptor (no path walk through /proc).
func (l *Layer) lstat(rel string, st *unix.Stat_t) error {
	fd, name, done, err := l.at(rel)
	if err != nil {
		return err
	}
	defer done()
	return unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// open opens rel relative to the layer's root descriptor.
func (l *Layer) open(rel string, flags int, mode uint32) (int, error) {
	fd, name, done, err := l.at(rel)
	if err != nil {
		return -1, err
	}
	defer done()
	return unix.Openat(fd, name, flags|unix.O_CLOEXEC, mode)
}

// exists reports whether rel exists in the layer.
func (l *Layer) exists(rel string) bool {
	var st unix.Stat_t
	return l.lstat(rel, &st) == nil
}

func (l *Layer) close() {
	if l.fd > 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}

// inoMapper turns (layer, real inode number) into the overlay's inode
// number. When all layers share one filesystem the real numbers are
// already unique and are used as they are, as the kernel does; otherwise
// the filesystem's index goes into the top bits (the kernel's "xino").
type inoMapper struct {
	shift uint // 0: identity
}

const xinoBits = 8

func newInoMapper(layers []*Layer) inoMapper {
	devs := map[uint64]uint64{}
	for _, l := range layers {
		if _, ok := devs[l.dev]; !ok {
			devs[l.dev] = uint64(len(devs))
		}
		l.fsIdx = devs[l.dev]
	}
	if len(devs) == 1 {
		return inoMapper{}
	}
	return inoMapper{shift: 64 - xinoBits}
}

func (m inoMapper) ino(l *Layer, real uint64) uint64 {
	if m.shift == 0 {
		return real
	}
	// Inode numbers that do not fit below the fs index are rare (they
	// need 2^56 inodes); fold them rather than collide with the index.
	low := real & (1<<m.shift - 1)
	return l.fsIdx<<m.shift | low
}
