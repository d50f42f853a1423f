package overlay

import (
	"golang.org/x/sys/unix"
)

// Rename flags, as renameat2 takes them.
const (
	RenameNoReplace = unix.RENAME_NOREPLACE
	RenameExchange  = unix.RENAME_EXCHANGE
)

// Rename moves (op, oname) to (np, nname). Files move from any layer
// (they are copied up first); a directory that has a lower part gives
// EXDEV, as the kernel does without redirect_dir, so that mv copies it.
// A whiteout is left where a lower layer still has the old name, and a
// directory moved over lower entries becomes opaque.
func (fs *FS) Rename(op *Node, oname string, np *Node, nname string, flags uint32) error {
	if fs.upper == nil {
		return unix.EROFS
	}
	if len(nname) > 255 {
		return unix.ENAMETOOLONG
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return unix.EINVAL
	}
	exchange := flags&RenameExchange != 0
	// Check first, as the kernel does: a rename that fails copies nothing
	// up.
	fs.treeMu.RLock()
	err := fs.renameCheck(op, oname, np, nname, flags)
	fs.treeMu.RUnlock()
	if err != nil {
		return err
	}

	src, _, err := fs.Lookup(op, oname)
	if err != nil {
		return err
	}
	defer fs.Forget(src, 1)
	if err := fs.movable(src); err != nil {
		return err
	}
	// Renames work on real names: a copy-up still pending gets its name
	// first.
	if err := fs.settle(src, true); err != nil {
		return err
	}
	if exchange {
		dst, _, err := fs.Lookup(np, nname)
		if err != nil {
			return err
		}
		defer fs.Forget(dst, 1)
		if err := fs.movable(dst); err != nil {
			return err
		}
		if err := fs.settle(dst, true); err != nil {
			return err
		}
	} else {
		fs.tableMu.Lock()
		dst := np.children[nname]
		fs.tableMu.Unlock()
		if dst != nil {
			if err := fs.settle(dst, true); err != nil {
				return err
			}
		}
	}
	if err := fs.copyUp(np, -1); err != nil {
		return err
	}

	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	if op.deleted.Load() || np.deleted.Load() {
		return unix.ENOENT
	}
	se, err := fs.lookupEntry(op, oname)
	if err != nil {
		return err
	}
	if !se.upper {
		return unix.ENOENT // replaced while we copied up: let the caller look again
	}
	srcRel, dstRel := op.childRel(oname), np.childRel(nname)
	if srcRel == dstRel {
		return nil
	}
	// Both names resolved for the *at calls and as paths (for xattrs): a
	// tree may be deeper than PATH_MAX.
	s, doneS, err := fs.upper.place(srcRel)
	if err != nil {
		return err
	}
	defer doneS()
	d, doneD, err := fs.upper.place(dstRel)
	if err != nil {
		return err
	}
	defer doneD()
	upS, srcAt, srcPath := s.fd, s.name, s.path
	upD, dstAt, dstPath := d.fd, d.name, d.path
	de, derr := fs.lookupEntry(np, nname)
	dstExists := derr == nil
	if derr != nil && derr != unix.ENOENT {
		return derr
	}
	fs.tableMu.Lock()
	srcNode, dstNode := op.children[oname], np.children[nname]
	fs.tableMu.Unlock()
	isDir := se.kind == unix.S_IFDIR

	if exchange {
		if !dstExists || !de.upper {
			return unix.ENOENT
		}
		if isDir && (merged(np) || fs.lowerVisible(np, nname)) {
			if err := unix.Lsetxattr(srcPath, fs.xOpaque, []byte("y"), 0); err != nil {
				return err
			}
		}
		if de.kind == unix.S_IFDIR && (merged(op) || fs.lowerVisible(op, oname)) {
			if err := unix.Lsetxattr(dstPath, fs.xOpaque, []byte("y"), 0); err != nil {
				return err
			}
		}
		if err := unix.Renameat2(upS, srcAt, upD, dstAt, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		if srcNode != nil {
			fs.move(srcNode, op, oname, np, nname)
		}
		if dstNode != nil {
			fs.move(dstNode, np, nname, op, oname)
		}
		op.dropListing()
		np.dropListing()
		return nil
	}

	if dstExists {
		if flags&RenameNoReplace != 0 {
			return unix.EEXIST
		}
		dIsDir := de.kind == unix.S_IFDIR
		switch {
		case isDir && !dIsDir:
			return unix.ENOTDIR
		case !isDir && dIsDir:
			return unix.EISDIR
		}
		if de.upper && !dIsDir && se.st.Ino == de.st.Ino {
			return nil // two names of one file: rename does nothing
		}
		if dIsDir {
			ents, err := fs.listMerged(np.childRel(nname), de.upper, de.lowers, true)
			if err != nil {
				return err
			}
			if len(ents) > 0 {
				return unix.ENOTEMPTY
			}
			if de.upper {
				clearWhiteouts(upD, dstAt)
			}
		}
	}
	// The object replaced loses its name: keep its data for the kernel,
	// which may have it open.
	var lost *Node
	grave := ""
	if dstExists && dstNode != nil && dstNode != srcNode {
		lost = dstNode
		keep, err := fs.keepData(dstNode, np, nname, &de)
		if err != nil {
			return err
		}
		if keep {
			grave = fs.tmpName()
			if err := unix.Linkat(upD, dstAt, fs.workDir, fs.workRel(grave), 0); err != nil {
				return err
			}
		}
	}
	renamed := false
	defer func() {
		if grave != "" && !renamed {
			fs.unlinkWork(grave) // the rename failed
		}
	}()
	srcWhiteout := fs.lowerVisible(op, oname)
	// A directory moved into a merged directory, or over lower entries,
	// becomes opaque, so nothing below its new name merges into it.
	if isDir && (merged(np) || dstExists && len(de.lowers) > 0 || fs.lowerVisible(np, nname)) {
		if err := unix.Lsetxattr(srcPath, fs.xOpaque, []byte("y"), 0); err != nil {
			return err
		}
	}
	if isDir && !dstExists && isWhiteoutIn(fs.upper, dstRel) {
		// A directory cannot replace the whiteout file: swap the two, and
		// the whiteout lands where one may be needed.
		if err := unix.Renameat2(upS, srcAt, upD, dstAt, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
		if !srcWhiteout {
			unix.Unlinkat(upS, srcAt, 0)
		}
	} else if srcWhiteout {
		err := unix.Renameat2(upS, srcAt, upD, dstAt, unix.RENAME_WHITEOUT)
		if err == unix.EINVAL || err == unix.EOPNOTSUPP {
			if err = unix.Renameat(upS, srcAt, upD, dstAt); err == nil {
				err = fs.makeWhiteout(upS, srcAt)
			}
		}
		if err != nil {
			return err
		}
	} else if err := unix.Renameat(upS, srcAt, upD, dstAt); err != nil {
		return err
	}
	renamed = true
	if lost != nil {
		fs.detach(np, nname, lost)
		if lost.deleted.Load() {
			fs.lastRites(lost, &de, grave)
		} else if grave != "" {
			fs.unlinkWork(grave)
		}
	}
	if srcNode != nil {
		fs.move(srcNode, op, oname, np, nname)
	}
	op.dropListing()
	np.dropListing()
	return nil
}

// merged reports whether directory n has both an upper and a lower part.
// The caller holds treeMu.
func merged(n *Node) bool { return n.upper && len(n.lowers) > 0 }

// renameCheck finds the errors a rename must give before it changes
// anything. The caller holds treeMu.
func (fs *FS) renameCheck(op *Node, oname string, np *Node, nname string, flags uint32) error {
	if op.deleted.Load() || np.deleted.Load() {
		return unix.ENOENT
	}
	se, err := fs.lookupEntry(op, oname)
	if err != nil {
		return err
	}
	if se.kind == unix.S_IFDIR && len(se.lowers) > 0 {
		return unix.EXDEV
	}
	de, derr := fs.lookupEntry(np, nname)
	if derr != nil && derr != unix.ENOENT {
		return derr
	}
	if flags&RenameExchange != 0 {
		if derr != nil {
			return derr
		}
		if de.kind == unix.S_IFDIR && len(de.lowers) > 0 {
			return unix.EXDEV
		}
		return nil
	}
	if derr != nil {
		return nil
	}
	if flags&RenameNoReplace != 0 {
		return unix.EEXIST
	}
	srcDir, dstDir := se.kind == unix.S_IFDIR, de.kind == unix.S_IFDIR
	switch {
	case srcDir && !dstDir:
		return unix.ENOTDIR
	case !srcDir && dstDir:
		return unix.EISDIR
	case dstDir:
		ents, err := fs.listMerged(np.childRel(nname), de.upper, de.lowers, true)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return unix.ENOTEMPTY
		}
	}
	return nil
}

// movable copies up what a rename moves, or refuses a directory with a
// lower part.
func (fs *FS) movable(n *Node) error {
	fs.treeMu.RLock()
	lowerDir := n.kind == unix.S_IFDIR && len(n.lowers) > 0
	fs.treeMu.RUnlock()
	if lowerDir {
		return unix.EXDEV
	}
	return fs.copyUp(n, dataLazy) // a name change: the data may follow
}
