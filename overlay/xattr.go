package overlay

import (
	"strings"

	"golang.org/x/sys/unix"
)

func listXattrs(path string) ([]string, error) {
	b, err := readXattr(func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) })
	return splitNames(b), err
}

func flistXattrs(fd int) ([]string, error) {
	b, err := readXattr(func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) })
	return splitNames(b), err
}

// splitNames splits a listxattr(2) result into its names.
func splitNames(b []byte) []string {
	var names []string
	for _, s := range strings.Split(string(b), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

func getXattr(path, name string) ([]byte, error) {
	return readXattr(func(buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
}

// readXattr returns the value get reads, growing the buffer until the
// value fits (it may grow between the calls).
func readXattr(get func(buf []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(buf)
		if err == unix.ERANGE {
			sz, err := get(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func readlink(path string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlink(path, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*4)
	}
}

// The overlay's own xattr namespace ("trusted.overlay." or, with
// userxattr, "user.overlay.") is escaped as the kernel (6.7+) escapes it: a
// name in it given through the mount is stored with "overlay." inserted
// ("trusted.overlay.X" is stored as "trusted.overlay.overlay.X"), and the
// real overlay metadata (opaque, origin, ...) is never shown.

// realXattr returns the stored name of an xattr named through the mount.
func (fs *FS) realXattr(name string) string {
	if strings.HasPrefix(name, fs.xattrPrefix) {
		return fs.xattrPrefix + "overlay." + name[len(fs.xattrPrefix):]
	}
	return name
}

// shownXattr returns the name a stored xattr shows as, or "" for the
// overlay's own metadata.
func (fs *FS) shownXattr(real string) string {
	if isOverrideXattr(real) {
		return "" // stat overrides are bookkeeping too
	}
	if !strings.HasPrefix(real, fs.xattrPrefix) {
		return real
	}
	rest := real[len(fs.xattrPrefix):]
	if strings.HasPrefix(rest, "overlay.") {
		return fs.xattrPrefix + rest[len("overlay."):]
	}
	return ""
}

// readRef runs fn on the node's visible real object: its path, or for a
// node whose name was removed, its backing descriptor or the place its
// data was kept.
func (fs *FS) readRef(n *Node, fn func(r realRef) error) error {
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	if n.deleted.Load() && n.upper || n.anon || n.pending.Load() {
		n.dataMu.RLock()
		defer n.dataMu.RUnlock()
		if f := n.fill.Load(); f != nil {
			// Not while a chunk is copied: copying drops the copy's
			// capability until the fill puts it back.
			f.mu.RLock()
			defer f.mu.RUnlock()
		}
		switch {
		case n.dataPending.Load():
			return fn(realRef{fd: n.metaFd})
		case n.backing != nil:
			return fn(realRef{fd: n.backing.fd})
		case n.grave != "":
			return fn(realRef{path: n.grave})
		}
		return unix.ENOENT
	}
	l := n.topLayer()
	if l == nil {
		return unix.ENOENT
	}
	rel := n.rel()
	p, done, err := l.longPath(rel)
	if err != nil {
		return err
	}
	defer done()
	return fn(realRef{path: p, layer: l, rel: rel})
}

// GetXattr reads an xattr into dest and returns its size; with an empty
// dest it returns the size only.
func (fs *FS) GetXattr(n *Node, name string, dest []byte) (int, error) {
	if isOverrideXattr(name) {
		return 0, unix.ENODATA
	}
	name = fs.realXattr(name)
	var size int
	err := fs.readRef(n, func(r realRef) error {
		var err error
		if r.layer != nil {
			size, err = r.layer.getxattr(r.rel, name, dest)
		} else if r.path != "" {
			size, err = unix.Lgetxattr(r.path, name, dest)
		} else {
			size, err = unix.Fgetxattr(r.fd, name, dest)
		}
		return err
	})
	return size, err
}

// ListXattr lists the node's xattr names, the overlay's own left out, as
// NUL-terminated strings into dest; with an empty dest it returns the
// size only.
func (fs *FS) ListXattr(n *Node, dest []byte) (int, error) {
	var names []string
	err := fs.readRef(n, func(r realRef) error {
		var err error
		if r.path != "" {
			names, err = listXattrs(r.path)
		} else {
			names, err = flistXattrs(r.fd)
		}
		if err == unix.ENOTSUP {
			names, err = nil, nil
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var b strings.Builder
	for _, s := range names {
		if s = fs.shownXattr(s); s == "" {
			continue
		}
		b.WriteString(s)
		b.WriteByte(0)
	}
	if len(dest) == 0 {
		return b.Len(), nil
	}
	if b.Len() > len(dest) {
		return b.Len(), unix.ERANGE
	}
	return copy(dest, b.String()), nil
}

// SetXattr sets an xattr, copying the node up first.
func (fs *FS) SetXattr(n *Node, name string, value []byte, flags int) error {
	if isOverrideXattr(name) {
		return unix.EPERM
	}
	name = fs.realXattr(name)
	return fs.changeXattr(n, func(r realRef) error {
		if r.path != "" {
			return unix.Lsetxattr(r.path, name, value, flags)
		}
		return unix.Fsetxattr(r.fd, name, value, flags)
	})
}

// RemoveXattr removes an xattr, copying the node up first, but only when
// the object has it: like the kernel, a removal that fails copies nothing.
func (fs *FS) RemoveXattr(n *Node, name string) error {
	if isOverrideXattr(name) {
		return unix.EPERM
	}
	name = fs.realXattr(name)
	if _, err := fs.GetXattr(n, fs.shownXattr(name), nil); err != nil {
		return err
	}
	return fs.changeXattr(n, func(r realRef) error {
		if r.path != "" {
			return unix.Lremovexattr(r.path, name)
		}
		return unix.Fremovexattr(r.fd, name)
	})
}

func (fs *FS) changeXattr(n *Node, fn func(r realRef) error) error {
	if fs.upper == nil {
		return unix.EROFS
	}
	if err := fs.copyUp(n, metaOnly); err != nil {
		return err
	}
	unlock := fs.lockMeta(n)
	defer unlock()
	return fs.onReal(n, func(at realAt, fd int) error {
		if fd >= 0 {
			return fn(realRef{fd: fd})
		}
		return fn(realRef{path: at.path})
	})
}

// Readlink returns a symlink's target.
func (fs *FS) Readlink(n *Node) (string, error) {
	if n.kind != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	var target string
	err := fs.readRef(n, func(r realRef) error {
		if r.path == "" {
			return unix.ENOENT
		}
		var err error
		target, err = readlink(r.path)
		return err
	})
	return target, err
}

// Statfs reports the upper layer's filesystem (the top lower layer's on
// a read-only overlay).
func (fs *FS) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	return st, unix.Statfs(fs.layers[0].root, &st)
}

// getXattr reads an xattr of the object r names.
func (r realRef) getXattr(name string) ([]byte, error) {
	if r.path != "" {
		return getXattr(r.path, name)
	}
	return readXattr(func(buf []byte) (int, error) { return unix.Fgetxattr(r.fd, name, buf) })
}
