package overlay

import (
	"golang.org/x/sys/unix"
)

// Tmpfile makes an unnamed regular file in directory parent, as open(2)
// with O_TMPFILE does: an O_TMPFILE of the upper layer's filesystem,
// made in the parent's upper copy (copied up first), as kernel overlayfs
// makes it, and owned by c. It returns the file's node, with one kernel
// reference, and its attributes. The file's descriptor, its backing
// file, is its only copy: Link can give it a name, and it vanishes with
// the node's last reference if nothing did.
func (fs *FS) Tmpfile(parent *Node, mode uint32, c Caller) (*Node, unix.Stat_t, error) {
	var st unix.Stat_t
	if fs.upper == nil {
		return nil, st, unix.EROFS
	}
	if parent.kind != unix.S_IFDIR {
		return nil, st, unix.ENOTDIR
	}
	if err := fs.copyUp(parent, -1); err != nil {
		return nil, st, err
	}
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	if parent.deleted.Load() {
		return nil, st, unix.ENOENT
	}
	parentRel := parent.rel()
	var pst unix.Stat_t
	if err := fs.upper.lstat(parentRel, &pst); err != nil {
		return nil, st, err
	}
	uid, gid := fs.ids.toLayer(c.UID, c.GID)
	mode &= 07777
	madeGID := fs.selfGID
	if pst.Mode&unix.S_ISGID != 0 {
		gid, madeGID = pst.Gid, pst.Gid // BSD group semantics of a setgid directory
	}
	dirfd, at, done, err := fs.upper.at(parentRel) // deeper than PATH_MAX, maybe
	if err != nil {
		return nil, st, err
	}
	fd, err := unix.Openat(dirfd, at, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC|unix.O_LARGEFILE, mode)
	done()
	if err == unix.EISDIR || err == unix.EINVAL {
		err = unix.EOPNOTSUPP // a filesystem without O_TMPFILE
	}
	if err != nil {
		return nil, st, err
	}
	fail := func(err error) (*Node, unix.Stat_t, error) {
		unix.Close(fd)
		return nil, st, err
	}
	switch {
	case fs.upper.override != "":
		err = fs.writeOverride(realRef{fd: fd}, uid, gid, mode)
	case uid != fs.selfUID || gid != madeGID:
		err = unix.Fchown(fd, int(uid), int(gid))
	}
	if err != nil {
		return fail(err)
	}
	if mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		if err := unix.Fchmod(fd, mode); err != nil { // chown cleared them
			return fail(err)
		}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(err)
	}
	if fs.upper.override != "" {
		applyOverride(fs.upper, realRef{fd: fd}, &st)
	}
	n := &Node{fs: fs, kind: unix.S_IFREG, upper: true, anon: true, tmpfile: true,
		ino: fs.inos.ino(fs.upper, st.Ino), upperIno: st.Ino}
	n.deleted.Store(true) // no name in the overlay
	fs.tableMu.Lock()
	n.id = fs.newIDLocked()
	n.refs = 1
	n.parent = parent // where it was made; not one of the parent's children
	fs.nodes[n.id] = n
	fs.tableMu.Unlock()
	n.dataMu.Lock()
	fs.setKeep(fs.setBackingLocked(n, fd, true, true), true) // its only copy
	n.dataMu.Unlock()
	fs.fixAttr(n, &st)
	return n, st, nil
}

// linkTmpfile gives an unnamed file made by Tmpfile its first name: the
// link of its O_TMPFILE into the upper layer. From then on it is an
// upper file like any other. The caller holds treeMu exclusively.
func (fs *FS) linkTmpfile(n, parent *Node, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if parent.deleted.Load() {
		return st, unix.ENOENT
	}
	if _, err := fs.lookupEntry(parent, name); err == nil {
		return st, unix.EEXIST
	} else if err != unix.ENOENT {
		return st, err
	}
	dstRel := parent.childRel(name)
	d, done, err := fs.upper.place(dstRel)
	if err != nil {
		return st, err
	}
	defer done()
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	b := n.backing
	if b == nil {
		return st, unix.ENOENT // a tmpfile keeps its backing file: a bug
	}
	err = fs.linkAt(dstRel, d, func(dirfd int, name string) error {
		return linkFd(b.fd, dirfd, name)
	})
	if err != nil {
		return st, err
	}
	fs.tableMu.Lock()
	n.parent, n.name = parent, name
	parent.children[name] = n
	n.deleted.Store(false)
	n.refs++ // the kernel counts the link's reply as a lookup
	fs.tableMu.Unlock()
	n.anon, n.tmpfile = false, false
	fs.setKeep(b, false) // the upper layer has it now
	parent.dropListing()
	if err := unix.Fstat(b.fd, &st); err != nil {
		return st, err
	}
	if fs.upper.override != "" {
		applyOverride(fs.upper, realRef{fd: b.fd}, &st)
	}
	fs.fixAttr(n, &st)
	return st, nil
}
