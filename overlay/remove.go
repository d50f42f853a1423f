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
	needWhiteout := len(e.lowers) > 0 || fs.lowerVisible(parent, name)
	fs.tableMu.Lock()
	c := parent.children[name]
	fs.tableMu.Unlock()
	keep, err := fs.keepData(c, parent, name, &e)
	if err != nil {
		return err
	}
	grave, err := fs.removeUpper(rel, e.upper, isDir, needWhiteout, keep)
	if err != nil {
		return err
	}
	if c != nil {
		fs.detach(parent, name, c)
		if c.deleted.Load() {
			fs.lastRites(c, &e, grave)
		}
	}
	parent.dropListing()
	return nil
}

// unpend makes a pending copy-up (settle.go) whose name was removed an
// anonymous upper file instead: its backing file, kept, is its only copy.
// The caller holds treeMu exclusively.
func (fs *FS) unpend(c *Node) {
	if c.pending.Load() {
		c.pending.Store(false)
		c.anon = true
	}
}

// keepData prepares an upper object the kernel holds a node for (c) to
// lose its name (parent, name) with its data kept, for the kernel may
// have it open. It reports whether the file must be moved into the work
// directory rather than removed: a regular file whose last link this is.
// A hard-linked file is kept open instead (its other names are not known
// here). The caller holds treeMu exclusively.
func (fs *FS) keepData(c *Node, parent *Node, name string, e *entry) (grave bool, err error) {
	if c == nil || !e.upper || c.kind != unix.S_IFREG {
		return false, nil
	}
	fs.tableMu.Lock()
	last := c.parent == parent && c.name == name && len(c.aliases) == 0
	fs.tableMu.Unlock()
	if !last {
		return false, nil
	}
	if e.st.Nlink <= 1 {
		return true, nil
	}
	c.dataMu.Lock()
	defer c.dataMu.Unlock()
	if c.backing == nil || !c.backing.upper {
		fd, err := fs.upper.open(parent.childRel(name), unix.O_RDWR|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0)
		if err != nil {
			return false, err
		}
		fs.setBackingLocked(c, fd, true, true)
	}
	fs.setKeep(c.backing, true)
	return false, nil
}

// lastRites records what a node that just lost its last name needs to
// go on answering the kernel: where its upper file's data was kept
// (grave), or, for anything else that was in the upper layer, its
// attributes as they were, with no links left. A lower object stays
// where it is and is found there. The caller holds treeMu exclusively.
func (fs *FS) lastRites(c *Node, e *entry, grave string) {
	fs.unpend(c)
	if !e.upper {
		return
	}
	if c.kind != unix.S_IFREG {
		st := e.st
		st.Nlink = 0
		c.gone = &st
		return
	}
	if grave != "" {
		c.dataMu.Lock()
		c.grave = grave
		c.dataMu.Unlock()
	}
}

// removable finds (parent, name) and checks that it can be removed: the
// right type, and for a directory, empty in the merged view. The caller
// holds treeMu.
func (fs *FS) removable(parent *Node, name string, dir bool) (entry, error) {
	if parent.deleted.Load() {
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

// removeUpper removes the upper object at rel (if any), leaving a
// whiteout when asked, atomically: the whiteout replaces the object in
// one rename. With keep, a regular file is moved into the work directory
// instead of removed, and its new path returned.
func (fs *FS) removeUpper(rel string, exists, isDir, whiteout, keep bool) (grave string, err error) {
	up, rel, done, err := fs.upper.at(rel) // rel may be deeper than PATH_MAX
	if err != nil {
		return "", err
	}
	defer done()
	if !exists {
		if !whiteout {
			return "", nil
		}
		return "", fs.makeWhiteout(up, rel)
	}
	if !whiteout {
		switch {
		case isDir:
			clearWhiteouts(up, rel)
			return "", unix.Unlinkat(up, rel, unix.AT_REMOVEDIR)
		case keep:
			grave = fs.tmpName()
			return grave, unix.Renameat(up, rel, fs.workDir, fs.workRel(grave))
		}
		return "", unix.Unlinkat(up, rel, 0)
	}
	wh := fs.tmpName()
	whRel := fs.workRel(wh)
	if err := fs.makeWhiteout(fs.workDir, whRel); err != nil {
		return "", err
	}
	if !isDir && !keep {
		if err := unix.Renameat(fs.workDir, whRel, up, rel); err != nil {
			unix.Unlinkat(fs.workDir, whRel, 0)
			return "", err
		}
		return "", nil
	}
	if err := unix.Renameat2(fs.workDir, whRel, up, rel, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlinkat(fs.workDir, whRel, 0)
		return "", err
	}
	if keep {
		return wh, nil // the file, now in the work directory
	}
	removeTemp(wh) // the old directory: only whiteouts inside
	return "", nil
}

// clearWhiteouts removes the whiteouts of an upper directory (rel below
// dirfd) that is empty in the merged view, so the real directory can go.
func clearWhiteouts(dirfd int, rel string) {
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	ents, _ := readDirFd(fd)
	for _, e := range ents {
		if e.dtype == unix.DT_CHR {
			unix.Unlinkat(dirfd, rel+"/"+e.name, 0)
		}
	}
}
