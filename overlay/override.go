package overlay

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Stat overrides, as fuse-overlayfs keeps them for containers run without
// the privilege to chown: an xattr "uid:gid:mode" (mode in octal) on a
// directory or regular file says what owner and permissions it shows. A
// layer uses them when its root directory carries one of these names
// (checked in this order); the xattr_permissions option makes the upper
// layer write them instead of calling chown and chmod.
const (
	OverridePrivileged = "security.fuseoverlayfs.override_stat" // xattr_permissions=1
	OverrideContainers = "user.containers.override_stat"
	OverrideUser       = "user.fuseoverlayfs.override_stat" // xattr_permissions=2
)

// probeOverride returns the override xattr a layer root carries, or "".
func probeOverride(root string) string {
	var buf [64]byte
	for _, name := range []string{OverridePrivileged, OverrideContainers, OverrideUser} {
		if _, err := unix.Lgetxattr(root, name, buf[:]); err == nil {
			return name
		}
	}
	return ""
}

// isOverrideXattr reports whether name is one of the override xattrs,
// which are the overlay's bookkeeping, not the object's.
func isOverrideXattr(name string) bool {
	return strings.HasSuffix(name, ".override_stat") &&
		(name == OverridePrivileged || name == OverrideContainers || name == OverrideUser)
}

// applyOverrideAt is applyOverride for the object at rel in layer l.
func applyOverrideAt(l *Layer, rel string, st *unix.Stat_t) {
	if l == nil || l.override == "" {
		return
	}
	if p, done, err := l.longPath(rel); err == nil {
		applyOverride(l, realRef{path: p}, st)
		done()
	}
}

// applyOverride replaces st's owner and permission bits with the ones
// layer l records for the object (at path, or behind fd), if any.
func applyOverride(l *Layer, ref realRef, st *unix.Stat_t) {
	if l == nil || l.override == "" {
		return
	}
	if k := st.Mode & unix.S_IFMT; k != unix.S_IFDIR && k != unix.S_IFREG {
		return
	}
	var buf [64]byte
	var n int
	var err error
	if ref.path != "" {
		n, err = unix.Lgetxattr(ref.path, l.override, buf[:])
	} else {
		n, err = unix.Fgetxattr(ref.fd, l.override, buf[:])
	}
	if err != nil {
		return
	}
	var uid, gid, mode uint32
	if _, err := fmt.Sscanf(string(buf[:n]), "%d:%d:%o", &uid, &gid, &mode); err != nil {
		return
	}
	st.Uid, st.Gid = uid, gid
	st.Mode = st.Mode&unix.S_IFMT | mode&07777
}

// writeOverride records owner and permissions in the upper layer's
// override xattr instead of changing the real object.
func (fs *FS) writeOverride(ref realRef, uid, gid, mode uint32) error {
	v := []byte(fmt.Sprintf("%d:%d:%o", uid, gid, mode&07777))
	if ref.path != "" {
		return unix.Lsetxattr(ref.path, fs.upper.override, v, 0)
	}
	return unix.Fsetxattr(ref.fd, fs.upper.override, v, 0)
}
