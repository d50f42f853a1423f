package overlay

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fixAttr turns a real object's stat into the overlay's: the node's inode
// number, nlink 1 for merged directories (as the kernel reports them) and
// owners as seen through the mount.
func (fs *FS) fixAttr(n *Node, st *unix.Stat_t) {
	st.Ino = n.ino
	if n.kind == unix.S_IFDIR && (n.upper && len(n.lowers) > 0 || len(n.lowers) > 1) {
		st.Nlink = 1
	}
	st.Uid, st.Gid = fs.ids.toMount(st.Uid, st.Gid)
}

// Getattr returns the node's attributes: those of its open backing file
// when there is one (so they follow copy-up), else those of the visible
// real object. A node whose name was removed answers too, as the kernel
// may have it open: from the place its data was kept, from its lower
// object (still there), or from its last attributes.
func (fs *FS) Getattr(n *Node) (unix.Stat_t, error) {
	if st, ok, err := fs.backingAttr(n); ok {
		return st, err
	}
	var st unix.Stat_t
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	switch {
	case n.anon:
		return st, unix.ENOENT
	case n.deleted.Load() && n.gone != nil:
		st = *n.gone
		fs.fixAttr(n, &st)
		return st, nil
	case n.deleted.Load() && n.upper:
		if n.grave == "" {
			return st, unix.ENOENT
		}
		if err := unix.Fstatat(fs.workDir, fs.workRel(n.grave), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return st, err
		}
		if fs.upper.override != "" {
			applyOverride(fs.upper, realRef{path: n.grave}, &st)
		}
		fs.unlinkedNlink(n, &st)
		fs.fixAttr(n, &st)
		return st, nil
	}
	l := n.topLayer()
	if l == nil {
		return st, unix.ENOENT
	}
	rel := n.rel()
	if err := l.lstat(rel, &st); err != nil {
		return st, err
	}
	applyOverrideAt(l, rel, &st)
	if !l.Upper {
		fs.unlinkedNlink(n, &st)
	}
	fs.fixAttr(n, &st)
	return st, nil
}

// backingAttr returns the attributes of the node's backing file, if it
// has one open (ok). It takes no tree lock.
func (fs *FS) backingAttr(n *Node) (st unix.Stat_t, ok bool, err error) {
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	b := n.backing
	fd, upper := -1, false
	switch {
	case n.dataPending.Load():
		fd, upper = n.metaFd, true // the copy has the metadata
	case b != nil:
		fd, upper = b.fd, b.upper
	default:
		return st, false, nil
	}
	if f := n.fill.Load(); f != nil {
		// Not while a chunk is copied: copying stamps the copy's mtime
		// until the fill puts it back.
		f.mu.RLock()
		defer f.mu.RUnlock()
	}
	// Whether the copy is linked is read before its attributes: the
	// linker may link it (nlink 0 to 1) and clear pending in between,
	// and an nlink read before the link must still count the name.
	pending := n.pending.Load()
	if err := unix.Fstat(fd, &st); err != nil {
		return st, true, err
	}
	if h := fs.Hooks.AttrAfterFstat; h != nil {
		h(n)
	}
	l := fs.upper
	if !upper && len(n.lowers) > 0 {
		l = fs.layers[n.lowers[0]]
	}
	if l != nil && l.override != "" {
		applyOverride(l, realRef{fd: fd}, &st)
	}
	if f := n.fill.Load(); f != nil && st.Blocks < f.blocks {
		st.Blocks = f.blocks // the copy is not all there yet
	}
	switch {
	case pending:
		st.Nlink = 1 // not linked yet, but it will have this one name
	case n.grave != "" || !upper || n.anon:
		fs.unlinkedNlink(n, &st)
	}
	fs.fixAttr(n, &st)
	return st, true, nil
}

// unlinkedNlink counts, for a node whose name was removed, the link that
// no longer is: a lower file still has it (the name is whited out), an
// upper file kept in the work directory has it there. This is the count
// the kernel keeps for the inode after the unlink.
func (fs *FS) unlinkedNlink(n *Node, st *unix.Stat_t) {
	if n.deleted.Load() && n.kind != unix.S_IFDIR && st.Nlink > 0 {
		st.Nlink--
	}
}

// SetAttr says what Setattr changes.
type SetAttr struct {
	Valid    uint32
	Mode     uint32 // permission bits
	UID, GID uint32 // as seen through the mount
	Size     uint64
	Atime    unix.Timespec
	Mtime    unix.Timespec
	// KillSUIDGID drops set-id bits as an unprivileged truncate does
	// (DropSetID, with InGroup), unless Mode is set too.
	KillSUIDGID bool
	InGroup     func(gid uint32) bool
	// KeepMtime: the caller keeps the file's times itself and sends a
	// new mtime whenever it sets one (the kernel's FUSE writeback cache,
	// see WriteKeepingMtime), so a size change that comes without one
	// leaves the real file's mtime as it was.
	KeepMtime bool
}

// SetAttr.Valid bits.
const (
	SetMode uint32 = 1 << iota
	SetUID
	SetGID
	SetSize
	SetAtime
	SetMtime
	SetAtimeNow
	SetMtimeNow
)

// Setattr changes the node's attributes, copying it up first.
func (fs *FS) Setattr(n *Node, a *SetAttr) (unix.Stat_t, error) {
	var st unix.Stat_t
	if fs.upper == nil {
		return st, unix.EROFS
	}
	limit := metaOnly
	if a.Valid&SetSize != 0 {
		if n.kind == unix.S_IFDIR {
			return st, unix.EISDIR
		}
		limit = int64(a.Size)
	}
	if n.deleted.Load() && a.Valid == SetMtime && !a.KillSUIDGID {
		// A removed object's mtime set to what it is: the kernel's
		// writeback cache sends that when it lets go of an inode whose
		// ctime it changed (an unlink's). A lower file would be copied up
		// for nothing that anyone could see.
		if st, err := fs.Getattr(n); err == nil && st.Mtim == a.Mtime {
			return st, nil
		}
	}
	if n.deleted.Load() {
		if st, ok := fs.setGone(n, a); ok {
			return st, nil
		}
	}
	if err := fs.copyUp(n, limit); err != nil {
		return st, err
	}
	unlock := fs.lockMeta(n)
	err := fs.onReal(n, func(at realAt, fd int) error {
		n.timesMu.Lock() // see WriteKeepingMtime
		defer n.timesMu.Unlock()
		if fs.upper.override != "" && a.Valid&(SetUID|SetGID|SetMode) != 0 {
			if err := fs.setOverride(n, at.path, fd, a); err != nil {
				return err
			}
			a = &SetAttr{Valid: a.Valid &^ (SetUID | SetGID | SetMode), Size: a.Size, Atime: a.Atime, Mtime: a.Mtime, KeepMtime: a.KeepMtime}
		}
		if a.Valid&(SetUID|SetGID) != 0 {
			uid, gid := -1, -1
			luid, lgid := fs.ids.toLayer(a.UID, a.GID)
			if a.Valid&SetUID != 0 {
				uid = int(luid)
			}
			if a.Valid&SetGID != 0 {
				gid = int(lgid)
			}
			var err error
			if fd >= 0 {
				err = unix.Fchown(fd, uid, gid)
			} else {
				err = unix.Fchownat(at.dir, at.rel, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
			}
			if err != nil {
				return err
			}
		}
		if a.Valid&SetMode != 0 && n.kind != unix.S_IFLNK {
			var err error
			if fd >= 0 {
				err = unix.Fchmod(fd, a.Mode&07777)
			} else {
				err = unix.Fchmodat(at.dir, at.rel, a.Mode&07777, 0)
			}
			if err != nil {
				return err
			}
		}
		if a.Valid&SetSize != 0 {
			if a.KeepMtime && a.Valid&(SetMtime|SetMtimeNow) == 0 {
				// Put the mtime back after the truncate.
				var st unix.Stat_t
				var err error
				if fd >= 0 {
					err = unix.Fstat(fd, &st)
				} else {
					err = unix.Fstatat(at.dir, at.rel, &st, unix.AT_SYMLINK_NOFOLLOW)
				}
				if err != nil {
					return err
				}
				keep := *a
				keep.Valid |= SetMtime
				keep.Mtime = st.Mtim
				a = &keep
			}
			var err error
			if fd >= 0 {
				err = unix.Ftruncate(fd, int64(a.Size))
				if err == unix.EBADF || err == unix.EINVAL {
					err = truncateViaProc(fd, int64(a.Size))
				}
			} else {
				err = unix.Truncate(at.path, int64(a.Size))
			}
			if err != nil {
				return err
			}
		}
		if a.Valid&(SetAtime|SetMtime|SetAtimeNow|SetMtimeNow) != 0 {
			ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
			switch {
			case a.Valid&SetAtimeNow != 0:
				ts[0] = unix.Timespec{Nsec: unix.UTIME_NOW}
			case a.Valid&SetAtime != 0:
				ts[0] = a.Atime
			}
			switch {
			case a.Valid&SetMtimeNow != 0:
				ts[1] = unix.Timespec{Nsec: unix.UTIME_NOW}
			case a.Valid&SetMtime != 0:
				ts[1] = a.Mtime
			}
			if fd >= 0 {
				return futimens(fd, &ts)
			}
			return unix.UtimesNanoAt(at.dir, at.rel, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
	unlock()
	if err != nil {
		return st, err
	}
	if a.KillSUIDGID && a.Valid&SetMode == 0 {
		return fs.dropSetID(n, a.InGroup)
	}
	return fs.Getattr(n)
}

// setGone applies a to a removed directory, symlink or special file
// (ok), whose attributes then live on only in the node: the kernel may
// still hold it open, and fchown, fchmod and futimens of it work on
// kernel overlayfs (on the upper inode its open file keeps, or on a copy
// of the lower one). Not for a size, which only regular files have; a
// removed regular file has its data kept or is copied up anonymously.
func (fs *FS) setGone(n *Node, a *SetAttr) (st unix.Stat_t, ok bool) {
	if a.Valid&SetSize != 0 {
		return st, false
	}
	fs.treeMu.Lock()
	if n.gone == nil && !n.upper && !n.anon && n.kind != unix.S_IFREG {
		// A removed lower object, still there under its whiteout: its
		// attributes, as Getattr shows them, are where the changes start.
		if l := n.topLayer(); l != nil {
			var base unix.Stat_t
			rel := n.rel()
			if l.lstat(rel, &base) == nil {
				applyOverrideAt(l, rel, &base)
				fs.unlinkedNlink(n, &base)
				n.gone = &base
			}
		}
	}
	if n.gone == nil {
		fs.treeMu.Unlock()
		return st, false
	}
	g := *n.gone
	if a.Valid&SetMode != 0 && n.kind != unix.S_IFLNK {
		g.Mode = g.Mode&unix.S_IFMT | a.Mode&07777
	}
	if a.Valid&(SetUID|SetGID) != 0 {
		uid, gid := fs.ids.toLayer(a.UID, a.GID)
		if a.Valid&SetUID != 0 {
			g.Uid = uid
		}
		if a.Valid&SetGID != 0 {
			g.Gid = gid
		}
	}
	now := timeNow()
	switch {
	case a.Valid&SetAtimeNow != 0:
		g.Atim = now
	case a.Valid&SetAtime != 0:
		g.Atim = a.Atime
	}
	switch {
	case a.Valid&SetMtimeNow != 0:
		g.Mtim = now
	case a.Valid&SetMtime != 0:
		g.Mtim = a.Mtime
	}
	g.Ctim = now
	n.gone = &g
	fs.treeMu.Unlock()
	st = g
	fs.fixAttr(n, &st)
	return st, true
}

// DropSetID clears the set-user-ID bit, and the set-group-ID bit where
// group-execute is set or the caller is not in the file's group
// (inGroup), as a write or truncate by a process without CAP_FSETID
// does. Through FUSE the kernel leaves that to the daemon
// (FUSE_HANDLE_KILLPRIV_V2), whose own writes, as root, keep them.
func (fs *FS) DropSetID(n *Node, inGroup func(gid uint32) bool) error {
	_, err := fs.dropSetID(n, inGroup)
	return err
}

// dropSetID is DropSetID, and returns the node's attributes after it.
func (fs *FS) dropSetID(n *Node, inGroup func(gid uint32) bool) (unix.Stat_t, error) {
	st, err := fs.Getattr(n)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
		return st, err
	}
	mode := st.Mode & 07777
	keep := mode &^ unix.S_ISUID
	if mode&unix.S_ISGID != 0 && (mode&unix.S_IXGRP != 0 || inGroup == nil || !inGroup(st.Gid)) {
		keep &^= unix.S_ISGID
	}
	if keep == mode {
		return st, nil
	}
	return fs.Setattr(n, &SetAttr{Valid: SetMode, Mode: keep})
}

// realAt names a real object for the *at system calls: rel relative to
// the directory descriptor dir. path names it too, for the calls that
// have no *at form.
type realAt struct {
	dir       int
	rel, path string
}

// onReal runs fn on the node's upper object: on the backing file's
// descriptor when one is open (fd >= 0), else by name (at).
func (fs *FS) onReal(n *Node, fn func(at realAt, fd int) error) error {
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	if n.dataPending.Load() {
		return fn(realAt{}, n.metaFd)
	}
	if b := n.backing; b != nil && b.upper {
		return fn(realAt{}, b.fd)
	}
	if n.deleted.Load() && n.grave != "" {
		return fn(realAt{dir: fs.workDir, rel: fs.workRel(n.grave), path: n.grave}, -1)
	}
	if n.deleted.Load() || n.anon {
		return unix.ENOENT
	}
	if !n.upper {
		return unix.EIO // copy-up did not happen: a bug, not a user error
	}
	rel := n.rel()
	p, done, err := fs.upper.place(rel) // rel may be deeper than PATH_MAX
	if err != nil {
		return err
	}
	defer done()
	return fn(realAt{dir: p.fd, rel: p.name, path: p.path}, -1)
}

func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// truncateViaProc truncates the file behind a read-only descriptor.
func truncateViaProc(fd int, size int64) error {
	wfd, err := unix.Open(procFdPath(fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(wfd)
	return unix.Ftruncate(wfd, size)
}

// setOverride applies the owner and mode changes of a to the upper
// object's override xattr (xattr_permissions), starting from what it shows
// now. The caller holds what onReal holds.
func (fs *FS) setOverride(n *Node, path string, fd int, a *SetAttr) error {
	var st unix.Stat_t
	ref := realRef{path: path, fd: fd}
	var err error
	if fd >= 0 {
		ref.path = ""
		err = unix.Fstat(fd, &st)
	} else {
		err = unix.Lstat(path, &st)
	}
	if err != nil {
		return err
	}
	applyOverride(fs.upper, ref, &st)
	luid, lgid := fs.ids.toLayer(a.UID, a.GID)
	if a.Valid&SetUID != 0 {
		st.Uid = luid
	}
	if a.Valid&SetGID != 0 {
		st.Gid = lgid
	}
	if a.Valid&SetMode != 0 {
		st.Mode = st.Mode&unix.S_IFMT | a.Mode&07777
	}
	return fs.writeOverride(ref, st.Uid, st.Gid, st.Mode)
}

// timeNow is the current time as a file timestamp.
func timeNow() unix.Timespec {
	return unix.NsecToTimespec(time.Now().UnixNano())
}
