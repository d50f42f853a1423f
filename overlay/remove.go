package overlay

import (
	"golang.org/x/sys/unix"
)

// Unlink removes a non-directory: the upper object goes, and a whiteout
// takes its place where a lower layer still has the name.
func (fs *FS) Unlink(parent *Node, name string) error {
	return fs.remove(parent, name, false)
}

// Rmdir removes a directory that is empty in the merged view.
func (fs *FS) Rmdir(parent *Node, name string) error {
	return fs.remove(parent, name, true)
}

func (fs *FS) remove(parent *Node, name string, dir bool) error {
	if fs.upper == nil {
		return unix.EROFS
	}
	// Check first, as the kernel does: a removal that fails copies nothing
	// up. (Nothing to copy when the parent is in the upper layer already.)
	fs.treeMu.RLock()
	parentUp := parent.upper
	var err error
	if !parentUp {
		_, err = fs.removable(parent, name, dir)
	}
	fs.treeMu.RUnlock()
	if err != nil {
		return err
	}
	if !parentUp {
		if err := fs.copyUp(parent, -1); err != nil {
			return err
		}
	}
	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	e, err := fs.removable(parent, name, dir)
	if err != nil {
		return err
	}
	isDir := e.kind == unix.S_IFDIR
	rel := parent.childRel(name)
	dst := fs.upper.path(rel)
	needWhiteout := len(e.lowers) > 0 || fs.lowerVisible(parent, name)
	if err := fs.removeUpper(dst, e.upper, isDir, needWhiteout); err != nil {
		return err
	}
	fs.tableMu.Lock()
	c := parent.children[name]
	fs.tableMu.Unlock()
	if c != nil {
		fs.detach(parent, name, c)
	}
	return nil
}

// removable finds (parent, name) and checks that it can be removed: the
// right type, and for a directory, empty in the merged view. The caller
// holds treeMu.
func (fs *FS) removable(parent *Node, name string, dir bool) (entry, error) {
	if parent.deleted {
		return entry{}, unix.ENOENT
	}
	e, err := fs.lookupEntry(parent, name)
	if err != nil {
		return e, err
	}
	isDir := e.kind == unix.S_IFDIR
	switch {
	case dir && !isDir:
		return e, unix.ENOTDIR
	case !dir && isDir:
		return e, unix.EISDIR
	}
	if isDir {
		ents, err := fs.listMerged(parent.childRel(name), e.upper, e.lowers, true)
		if err != nil {
			return e, err
		}
		if len(ents) > 0 {
			return e, unix.ENOTEMPTY
		}
	}
	return e, nil
}

// removeUpper removes the upper object at dst (if any), leaving a
// whiteout when asked, atomically: the whiteout replaces the object in
// one rename.
func (fs *FS) removeUpper(dst string, exists, isDir, whiteout bool) error {
	if !exists {
		if !whiteout {
			return nil
		}
		return unix.Mknod(dst, unix.S_IFCHR, 0)
	}
	if !whiteout {
		if !isDir {
			return unix.Unlink(dst)
		}
		clearWhiteouts(dst)
		return unix.Rmdir(dst)
	}
	wh := fs.tmpName()
	if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
		return err
	}
	if !isDir {
		if err := unix.Rename(wh, dst); err != nil {
			unix.Unlink(wh)
			return err
		}
		return nil
	}
	if err := unix.Renameat2(unix.AT_FDCWD, wh, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlink(wh)
		return err
	}
	removeTemp(wh) // the old directory: only whiteouts inside
	return nil
}

// clearWhiteouts removes the whiteouts of an upper directory that is
// empty in the merged view, so the real directory can go.
func clearWhiteouts(dir string) {
	ents, _ := readDirRaw(dir)
	for _, e := range ents {
		if e.dtype == unix.DT_CHR {
			unix.Unlink(dir + "/" + e.name)
		}
	}
}
