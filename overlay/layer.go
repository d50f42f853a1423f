package overlay

import (
	"fmt"

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

// lstat stats rel without following a final symlink, resolving it from
// the layer's root descriptor (no path walk through /proc).
func (l *Layer) lstat(rel string, st *unix.Stat_t) error {
	if rel == "" {
		rel = "."
	}
	return unix.Fstatat(l.fd, rel, st, unix.AT_SYMLINK_NOFOLLOW)
}

// open opens rel relative to the layer's root descriptor.
func (l *Layer) open(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	return unix.Openat(l.fd, rel, flags|unix.O_CLOEXEC, mode)
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
