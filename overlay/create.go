package overlay

import (
	"golang.org/x/sys/unix"
)

// Caller is who asks for a new object: it will own it.
type Caller struct {
	UID, GID uint32
}

// NewObject describes an object to create.
type NewObject struct {
	Kind   uint32 // S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK
	Mode   uint32 // permission bits, umask already applied
	Rdev   uint32 // devices
	Target string // symlinks
	// Regular files: Open asks for a handle on the new file, opened with
	// Flags.
	Open  bool
	Flags int
}

// Create makes a new object in parent and returns its node (with one
// kernel reference), its attributes and, for a regular file, an open
// handle. A whiteout at the name is replaced; a directory made over a
// whiteout is opaque, so the lower directory it replaces stays hidden.
func (fs *FS) Create(parent *Node, name string, obj NewObject, c Caller) (*Node, *Handle, unix.Stat_t, error) {
	n, h, st, err := fs.create(parent, name, obj, c)
	if err == nil && h == nil && obj.Kind == unix.S_IFREG {
		fs.trimFiles() // the new file's descriptor was kept
	}
	return n, h, st, err
}

func (fs *FS) create(parent *Node, name string, obj NewObject, c Caller) (*Node, *Handle, unix.Stat_t, error) {
	var st unix.Stat_t
	if fs.upper == nil {
		return nil, nil, st, unix.EROFS
	}
	if len(name) > 255 {
		return nil, nil, st, unix.ENAMETOOLONG
	}
	if obj.Kind == unix.S_IFCHR && obj.Rdev == 0 {
		return nil, nil, st, unix.EPERM // that is a whiteout: the kernel refuses it too
	}
	if err := fs.copyUp(parent, -1); err != nil {
		return nil, nil, st, err
	}
	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	if parent.deleted.Load() {
		return nil, nil, st, unix.ENOENT
	}
	e, err := fs.lookupEntry(parent, name)
	if err == nil {
		return nil, nil, st, unix.EEXIST
	} else if err != unix.ENOENT {
		return nil, nil, st, err
	}
	parentRel := parent.rel()
	var pst unix.Stat_t
	if err := fs.upper.lstat(parentRel, &pst); err != nil {
		return nil, nil, st, err
	}
	dstRel := joinRel(parentRel, name)
	d, done, err := fs.upper.place(dstRel) // a tree may be deeper than PATH_MAX
	if err != nil {
		return nil, nil, st, err
	}
	defer done()
	up, dstAt, dst := d.fd, d.name, d.path
	overWhiteout := e.whiteout

	uid, gid := fs.ids.toLayer(c.UID, c.GID)
	mode := obj.Mode & 07777
	sgidDir := pst.Mode&unix.S_ISGID != 0
	if sgidDir {
		gid = pst.Gid // BSD group semantics of a setgid directory
		if obj.Kind == unix.S_IFDIR {
			mode |= unix.S_ISGID
		}
	}
	// The daemon creates objects as itself. Where that is not who they
	// must belong to, or a whiteout is in the way, the object is made in
	// the work directory, given its owner there and then renamed into
	// place, so a crash never leaves one in the upper layer with the wrong
	// owner. Otherwise it is made at its name directly, through the upper
	// root's descriptor.
	madeGID := fs.selfGID
	if sgidDir {
		madeGID = pst.Gid
	}
	viaWork := overWhiteout || uid != fs.selfUID || gid != madeGID
	dirfd, targetRel := up, dstAt
	target := dst
	if viaWork {
		target = fs.tmpName()
		dirfd, targetRel = fs.workDir, fs.workRel(target)
		madeGID = fs.selfGID // the work directory is not setgid
	}

	fd := -1
	switch obj.Kind {
	case unix.S_IFREG:
		fd, err = unix.Openat(dirfd, targetRel, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_LARGEFILE, mode)
	case unix.S_IFDIR:
		err = unix.Mkdirat(dirfd, targetRel, mode)
	case unix.S_IFLNK:
		err = unix.Symlinkat(obj.Target, dirfd, targetRel)
	default:
		err = unix.Mknodat(dirfd, targetRel, obj.Kind|mode, int(obj.Rdev))
	}
	if err != nil {
		return nil, nil, st, err
	}
	fail := func(err error) (*Node, *Handle, unix.Stat_t, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		if obj.Kind == unix.S_IFDIR {
			unix.Unlinkat(dirfd, targetRel, unix.AT_REMOVEDIR)
		} else {
			unix.Unlinkat(dirfd, targetRel, 0)
		}
		return nil, nil, st, err
	}
	if fs.upper.override != "" && (obj.Kind == unix.S_IFREG || obj.Kind == unix.S_IFDIR) {
		if err := fs.writeOverride(realRef{path: target}, uid, gid, mode); err != nil {
			return fail(err)
		}
	} else if uid != fs.selfUID || gid != madeGID {
		if err := unix.Fchownat(dirfd, targetRel, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(err)
		}
	}
	if mode&(unix.S_ISUID|unix.S_ISGID) != 0 && obj.Kind != unix.S_IFLNK {
		if err := unix.Fchmodat(dirfd, targetRel, mode, 0); err != nil { // chown cleared them
			return fail(err)
		}
	}
	if overWhiteout {
		if obj.Kind == unix.S_IFDIR {
			if err := unix.Lsetxattr(target, fs.xOpaque, []byte("y"), 0); err != nil {
				return fail(err)
			}
			if err := unix.Renameat2(dirfd, targetRel, up, dstAt, unix.RENAME_EXCHANGE); err != nil {
				return fail(err)
			}
			unix.Unlinkat(dirfd, targetRel, 0) // the whiteout, now in the work directory
		} else if err := unix.Renameat(dirfd, targetRel, up, dstAt); err != nil {
			return fail(err)
		}
	} else if viaWork {
		if err := unix.Renameat2(dirfd, targetRel, up, dstAt, unix.RENAME_NOREPLACE); err != nil {
			return fail(err)
		}
	}
	if fd >= 0 {
		err = unix.Fstat(fd, &st)
	} else {
		err = fs.upper.lstat(dstRel, &st)
	}
	if err != nil {
		return fail(err)
	}
	if fs.upper.override != "" {
		applyOverride(fs.upper, realRef{path: dst}, &st)
	}
	n := &Node{fs: fs, kind: obj.Kind, upper: true, ino: fs.inos.ino(fs.upper, st.Ino)}
	if obj.Kind != unix.S_IFDIR {
		n.upperIno = st.Ino
	}
	n = fs.insertNode(n, parent, name)
	parent.dropListing()
	var h *Handle
	if fd >= 0 {
		// The new file's descriptor is its backing file: the writes that
		// usually follow need no open. A caller that asked for a handle
		// gets one that pins it.
		n.dataMu.Lock()
		b := fs.setBackingLocked(n, fd, true, true)
		if obj.Open {
			b.pins++
			h = &Handle{node: n, flags: obj.Flags}
		}
		n.dataMu.Unlock()
	}
	fs.fixAttr(n, &st)
	return n, h, st, nil
}

// Link gives node n the further name (parent, name), or an unnamed file
// made by Tmpfile its first one.
func (fs *FS) Link(n *Node, parent *Node, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if fs.upper == nil {
		return st, unix.EROFS
	}
	if n.kind == unix.S_IFDIR {
		return st, unix.EPERM
	}
	if len(name) > 255 {
		return st, unix.ENAMETOOLONG
	}
	if err := fs.copyUp(n, -1); err != nil {
		return st, err
	}
	if err := fs.settle(n, true); err != nil { // a link needs its real name
		return st, err
	}
	if err := fs.copyUp(parent, -1); err != nil {
		return st, err
	}
	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	if n.tmpfile {
		return fs.linkTmpfile(n, parent, name)
	}
	if n.deleted.Load() || n.anon || parent.deleted.Load() {
		return st, unix.ENOENT
	}
	if _, err := fs.lookupEntry(parent, name); err == nil {
		return st, unix.EEXIST
	} else if err != unix.ENOENT {
		return st, err
	}
	srcRel, dstRel := n.rel(), parent.childRel(name)
	upS, srcAt, doneS, err := fs.upper.at(srcRel) // deeper than PATH_MAX, maybe
	if err != nil {
		return st, err
	}
	defer doneS()
	d, doneD, err := fs.upper.place(dstRel)
	if err != nil {
		return st, err
	}
	defer doneD()
	err = fs.linkAt(dstRel, d, func(dirfd int, name string) error {
		return unix.Linkat(upS, srcAt, dirfd, name, 0)
	})
	if err != nil {
		return st, err
	}
	fs.addAlias(n, parent, name)
	parent.dropListing()
	fs.tableMu.Lock()
	n.refs++
	fs.links[n.upperIno] = n
	fs.tableMu.Unlock()
	if err := fs.upper.lstat(dstRel, &st); err != nil {
		return st, err
	}
	if fs.upper.override != "" {
		applyOverride(fs.upper, realRef{path: d.path}, &st)
	}
	fs.fixAttr(n, &st)
	return st, nil
}

// linkAt gives a file the name dstRel, at the place d, with link (a
// linkat to a directory and a name). Over a whiteout the link is made in
// the work directory and renamed onto it, so that the name never shows
// nothing in between. The caller holds treeMu exclusively.
func (fs *FS) linkAt(dstRel string, d place, link func(dirfd int, name string) error) error {
	if !isWhiteoutIn(fs.upper, dstRel) {
		return link(d.fd, d.name)
	}
	tmp := fs.workRel(fs.tmpName())
	if err := link(fs.workDir, tmp); err != nil {
		return err
	}
	if err := unix.Renameat(fs.workDir, tmp, d.fd, d.name); err != nil {
		unix.Unlinkat(fs.workDir, tmp, 0)
		return err
	}
	return nil
}
