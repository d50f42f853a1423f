package overlay

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// metaOnly, as copyUp's limit, says the change is to metadata only
// (owner, mode, times, xattrs): a regular file's data may then follow
// later, in the background (see fillData).
const metaOnly = int64(-2)

// copyUp makes n exist in the upper layer, with its parents first. For a
// regular file, limit >= 0 copies only the first limit bytes of data (the
// caller is about to truncate there); limit -1 copies it all, metaOnly
// may leave the data for later, and dataLazy (a write) may leave the
// data of a large file to a fill (fill.go).
//
// The new upper object is built in the work directory (an O_TMPFILE for
// regular files) with its data, owner, mode, xattrs and times, and only
// then linked into the upper layer, a regular file once it is durable
// (settle.go): the upper layer never holds a partial copy. The node's
// readers and writers are switched to the new file in the same step, so
// they never see two different files.
func (fs *FS) copyUp(n *Node, limit int64) error {
	if fs.upper == nil {
		return unix.EROFS
	}
	fs.treeMu.RLock()
	done, parent := n.upper, n.parent
	fs.treeMu.RUnlock()
	if done {
		switch {
		case limit == metaOnly:
		case limit == dataLazy:
			if n.dataPending.Load() && n.kind == unix.S_IFREG {
				// A write: a large file's data may follow, the chunks it
				// touches first; a small one's is copied now.
				n.copyMu.Lock()
				defer n.copyMu.Unlock()
				if err := fs.startFillLocked(n, -1); err != nil {
					return err
				}
				if f := n.fill.Load(); f != nil && f.size < lazyFillMin {
					return fs.finishFill(n, true)
				}
			}
		case n.dataPending.Load() || n.filling():
			return fs.fillData(n) // all the data is wanted now
		}
		return nil
	}
	if parent != nil {
		if err := fs.copyUp(parent, -1); err != nil {
			return err
		}
	}
	n.copyMu.Lock()
	relink, renumbered, err := fs.copyUpLocked(n, limit)
	n.copyMu.Unlock()
	fs.trimFiles() // the copy is an open file more
	if err == nil && renumbered && parent != nil && fs.ListingChanged != nil {
		fs.ListingChanged(parent) // listed with its old inode number
	}
	if err == nil && (relink || renumbered) && fs.AttrChanged != nil {
		// The object's link count now comes from its upper copy (a lower
		// hard link's drops to 1, a directory becomes merged): whoever
		// caches its attributes must ask again. (Its ctime moves too, but
		// the request that made the copy reports fresh attributes or has
		// the kernel drop them.) Its data is the same and stays cached.
		fs.AttrChanged(n)
	}
	return err
}

// copyUpLocked does the copy-up for copyUp, and reports whether the
// object's link count changed with it, and whether its inode number did.
func (fs *FS) copyUpLocked(n *Node, limit int64) (relink, renumbered bool, err error) {
	fs.treeMu.RLock()
	if n.upper {
		fs.treeMu.RUnlock()
		return false, false, nil
	}
	if n.parent != nil && !n.parent.upper && !n.deleted.Load() {
		// The parent was replaced while we waited: let the caller retry.
		fs.treeMu.RUnlock()
		return false, false, unix.EAGAIN
	}
	rel := n.rel()
	src := n.topLayer()
	fs.treeMu.RUnlock()
	if src == nil {
		return false, false, unix.ENOENT
	}
	if n.kind == unix.S_IFREG {
		relink, err := fs.copyUpFile(n, src, rel, limit)
		return relink, false, err
	}
	srcPath, done, err := src.longPath(rel)
	if err != nil {
		return false, false, err
	}
	defer done()
	var st unix.Stat_t
	if err := unix.Lstat(srcPath, &st); err != nil {
		return false, false, err
	}
	applyOverride(src, realRef{path: srcPath}, &st) // carry what the object shows
	renumbered, err = fs.copyUpOther(n, srcPath, &st)
	return st.Nlink > 1 || n.kind == unix.S_IFDIR, renumbered, err
}

// copyUpFile copies a regular file (rel in layer src) into an anonymous
// file in the work directory and makes it the node's upper file. It
// reports whether the object's link count changes with it.
func (fs *FS) copyUpFile(n *Node, src *Layer, rel string, limit int64) (relink bool, err error) {
	// O_NOATIME: reading the lower file must not change it.
	sfd, err := src.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		sfd, err = src.open(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0) // not its owner
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if sfd >= 0 {
			unix.Close(sfd)
		}
	}()
	var sst unix.Stat_t
	if err := unix.Fstat(sfd, &sst); err != nil {
		return false, err
	}
	st := &sst
	applyOverride(src, realRef{fd: sfd}, st) // carry what the object shows
	relink = st.Nlink > 1
	tfd, tmpPath, err := fs.createTemp()
	if err != nil {
		return false, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(tfd)
			if tmpPath != "" {
				unix.Unlink(tmpPath)
			}
		}
	}()
	size := st.Size
	if limit >= 0 && limit < size {
		size = limit
	}
	// A metadata change to a file with data does not wait for the data:
	// the copy gets its size (sparse), the rest of what the object shows,
	// and the lower file keeps serving reads until the data follows. Nor
	// does a write to a large file, unless the filesystem clones it at
	// once: the copy fills in around it (fill.go).
	deferData := limit == metaOnly && size > 0 && fs.cfg.AsyncCopyUp
	lazy := limit == dataLazy && size >= lazyFillMin && fs.cfg.AsyncCopyUp
	cloned := lazy && fs.clone(sfd, tfd, size)
	switch {
	case cloned:
		lazy = false
	case (lazy || deferData) && size > reserveMax && !fs.roomFor(size):
		// Too little room in the upper layer to promise the data of a
		// large copy for later: copy it now, so that the change fails
		// (ENOSPC) rather than succeeds and is lost with its copy.
		lazy, deferData = false, false
		err = fs.copyData(sfd, tfd, size)
	case lazy || deferData:
		// The data of a smaller copy is reserved (reserveData). A larger
		// one's is not: filling preallocated blocks made the durable
		// copy-up of a 1 GiB file on ext4 take 1.6 s instead of 0.93 s;
		// roomFor's check above stands in for it.
		deferData = true
		if size > reserveMax {
			err = unix.Ftruncate(tfd, size)
		} else {
			err = reserveData(sfd, tfd, size, st) // gives it its size too
		}
		if err == errNoReserve {
			// The data cannot be promised for later: copy it now.
			lazy, deferData = false, false
			err = fs.copyData(sfd, tfd, size)
		}
	default:
		err = fs.copyData(sfd, tfd, size)
	}
	if err != nil {
		return false, err
	}
	if _, err := fs.copyMeta(st, realRef{fd: sfd}, realRef{fd: tfd}, n.ino); err != nil {
		return false, err
	}
	if deferData {
		n.dataLayer, n.dataSize = src.Index, size
	}
	// The data's fill reads the lower file this one opened, unless it is
	// a write's fill, which takes it below.
	keep := -1
	if deferData && !lazy {
		keep = sfd
	}
	pending, err := fs.installCopy(n, tfd, tmpPath, deferData, keep)
	if err != nil {
		return false, err
	}
	if keep >= 0 {
		sfd = -1 // the node's now
	}
	ok = true
	if pending {
		fs.addPending(n)
	}
	if lazy {
		src := sfd
		sfd = -1 // the fill's now
		return relink, fs.startFillLocked(n, src)
	}
	return relink, nil
}

// installCopy makes the finished copy tfd the node's upper file and
// backing file. With AsyncCopyUp it is only queued, to be linked into
// the upper layer once durable (settle.go; on a volatile mount, without
// the flush), and it reports that; otherwise it is synced and linked now.
// With deferData, the copy answers for the metadata only and src, if
// >= 0, is the lower file its data will come from, which the node owns
// once installCopy succeeds.
func (fs *FS) installCopy(n *Node, tfd int, tmpPath string, deferData bool, src int) (pending bool, err error) {
	async := fs.cfg.AsyncCopyUp
	if !async {
		if err := fs.fsync(tfd); err != nil { // (not on a volatile mount)
			return false, err
		}
	}
	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	switch {
	case n.deleted.Load():
		// Unlinked while we copied: the copy lives on as the backing file
		// of the remaining open handles only.
		n.upper, n.anon = true, true
	case async:
		n.upper, n.tmpPath = true, tmpPath
		n.pending.Store(true)
		pending = true
	default:
		rel := n.rel()
		if h := fs.Hooks.CopyUpBeforeLink; h != nil {
			h(rel)
		}
		restore := fs.keepParentTimes(n.parent)
		err = fs.linkCopy(tfd, tmpPath, rel)
		restore()
		if err != nil {
			return false, err
		}
		n.upper = true
	}
	var ust unix.Stat_t
	if unix.Fstat(tfd, &ust) == nil {
		n.upperIno = ust.Ino
	}
	n.lowers = nil
	fs.copyUps.Add(1)
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	if deferData {
		// The copy answers for the object's metadata; the lower file,
		// which has the same bytes, for its data, until fillData.
		n.metaFd, n.dataSrc = tfd, src
		n.dataPending.Store(true)
		return pending, nil
	}
	// The new file becomes the node's backing file: every reader and
	// writer of the node uses it from now on.
	b := fs.setBackingLocked(n, tfd, true, true)
	fs.setKeep(b, n.anon || pending) // its only copy (for now)
	return pending, nil
}

// fillData gives a copy-up whose data was left for later (metaOnly, or a
// fill) all its data, and makes it the node's backing file (fill.go).
// It takes n.copyMu for one chunk at a time.
func (fs *FS) fillData(n *Node) error {
	n.copyMu.Lock()
	err := fs.startFillLocked(n, -1)
	n.copyMu.Unlock()
	if err != nil {
		return err
	}
	return fs.finishFill(n, false)
}

// fillDataLocked is fillData with n.copyMu held throughout.
func (fs *FS) fillDataLocked(n *Node) error {
	if err := fs.startFillLocked(n, -1); err != nil {
		return err
	}
	return fs.finishFill(n, true)
}

// xattrCaps holds a file's capabilities; writing data drops it.
const xattrCaps = "security.capability"

// copyUpOther copies up a directory, symlink or special file: built in
// the work directory, then renamed into place. It reports whether the
// node's inode number changed with it.
func (fs *FS) copyUpOther(n *Node, srcPath string, st *unix.Stat_t) (renumbered bool, err error) {
	tmp := fs.tmpName()
	switch n.kind {
	case unix.S_IFDIR:
		err = unix.Mkdir(tmp, 0700)
	case unix.S_IFLNK:
		var target string
		if target, err = readlink(srcPath); err == nil {
			err = unix.Symlink(target, tmp)
		}
	default:
		err = unix.Mknod(tmp, st.Mode, int(st.Rdev))
	}
	if err != nil {
		return false, err
	}
	ok := false
	defer func() {
		if !ok {
			removeTemp(tmp)
		}
	}()
	recorded, err := fs.copyMeta(st, realRef{path: srcPath}, realRef{path: tmp}, n.ino)
	if err != nil {
		return false, err
	}
	// Without the record of its inode number (with userxattr, symlinks and
	// special files take no user.* xattrs), the copy has its own number
	// from now on, as in the kernel's overlayfs.
	var renumber uint64
	if !recorded && n.kind != unix.S_IFDIR {
		var ust unix.Stat_t
		if err := unix.Lstat(tmp, &ust); err != nil {
			return false, err
		}
		renumber = fs.inos.ino(fs.upper, ust.Ino)
	}

	fs.treeMu.Lock()
	defer fs.treeMu.Unlock()
	if n.deleted.Load() {
		return false, unix.ENOENT
	}
	rel := n.rel()
	if h := fs.Hooks.CopyUpBeforeLink; h != nil {
		h(rel)
	}
	dst, done, err := fs.upper.longPath(rel)
	if err != nil {
		return false, err
	}
	defer done()
	restore := fs.keepParentTimes(n.parent)
	err = unix.Rename(tmp, dst)
	restore()
	if err != nil {
		return false, err
	}
	ok = true
	fs.copyUps.Add(1)
	n.upper = true
	if n.kind != unix.S_IFDIR {
		n.lowers = nil
	}
	if renumber != 0 && renumber != n.ino {
		// Readers of n.ino hold treeMu. The parent's kept listing has the
		// old number; the kernel's is dropped by the caller.
		n.ino = renumber
		if n.parent != nil {
			n.parent.dropListing()
		}
		return true, nil
	}
	return false, nil
}

// keepParentTimes records the upper parent directory's times and returns
// a function that puts them back, so that a copy-up (which adds an entry
// to the upper directory) does not change the directory's visible mtime,
// as in the kernel.
func (fs *FS) keepParentTimes(parent *Node) func() {
	if parent == nil {
		return func() {}
	}
	rel := parent.rel()
	var st unix.Stat_t
	if fs.upper.lstat(rel, &st) != nil {
		return func() {}
	}
	return func() {
		fd, at, done, err := fs.upper.at(rel)
		if err != nil {
			return
		}
		defer done()
		ts := []unix.Timespec{st.Atim, st.Mtim}
		unix.UtimesNanoAt(fd, at, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// createTemp creates an unnamed file in the work directory, or a named
// one where O_TMPFILE is not supported.
func (fs *FS) createTemp() (fd int, path string, err error) {
	if !fs.noTmpfile.Load() {
		fd, err = unix.Openat(fs.workDir, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC|unix.O_LARGEFILE, 0600)
		if err == nil {
			return fd, "", nil
		}
		if err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL {
			fs.noTmpfile.Store(true)
		}
	}
	path = fs.tmpName()
	fd, err = unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC|unix.O_LARGEFILE, 0600)
	if err != nil {
		return -1, "", err
	}
	return fd, path, nil
}

// linkCopy gives a finished copy (an O_TMPFILE, or the named file
// tmpPath) its name rel in the upper layer.
func (fs *FS) linkCopy(fd int, tmpPath, rel string) error {
	up, rel, done, err := fs.upper.at(rel) // rel may be deeper than PATH_MAX
	if err != nil {
		return err
	}
	defer done()
	if tmpPath != "" {
		return unix.Renameat(unix.AT_FDCWD, tmpPath, up, rel)
	}
	return linkFd(fd, up, rel)
}

// linkFd gives the open file fd, an O_TMPFILE, the name (dirfd, name).
func linkFd(fd, dirfd int, name string) error {
	err := unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT || err == unix.EPERM {
		// Without CAP_DAC_READ_SEARCH, AT_EMPTY_PATH is refused.
		err = unix.Linkat(unix.AT_FDCWD, procFdPath(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}

// realRef names a real object by descriptor (fd > 0) or by path; when
// layer is set, path is rel in that layer, for the calls that can take
// the layer's descriptor instead.
type realRef struct {
	fd    int
	path  string
	layer *Layer
	rel   string
}

// copyMeta gives dst the xattrs, owner, mode and times of src (whose
// stat is st) and records the overlay inode number where it can
// (recorded: not on a symlink or special file with userxattr).
func (fs *FS) copyMeta(st *unix.Stat_t, src, dst realRef, ino uint64) (recorded bool, err error) {
	kind := st.Mode & unix.S_IFMT
	useOverride := fs.upper.override != "" && (kind == unix.S_IFREG || kind == unix.S_IFDIR)
	switch {
	case useOverride:
		// Owner and mode go in the override xattr, written below.
	case st.Uid == fs.selfUID && st.Gid == fs.selfGID:
		// Made by the daemon (not in a setgid directory): owned right.
	case dst.path == "":
		err = unix.Fchown(dst.fd, int(st.Uid), int(st.Gid))
	default:
		err = unix.Lchown(dst.path, int(st.Uid), int(st.Gid))
	}
	if err != nil {
		return false, err
	}
	if kind != unix.S_IFLNK {
		// After chown, which clears set-id bits.
		if dst.path == "" {
			err = unix.Fchmod(dst.fd, st.Mode&07777)
		} else {
			err = unix.Chmod(dst.path, st.Mode&07777)
		}
		if err != nil {
			return false, err
		}
	}
	// Xattrs after chown, which drops security.capability.
	if err := fs.copyXattrs(src, dst); err != nil {
		return false, err
	}
	if kind == unix.S_IFREG || kind == unix.S_IFDIR {
		fs.copyFlags(src, dst)
	}
	if useOverride {
		if err := fs.writeOverride(dst, st.Uid, st.Gid, st.Mode); err != nil {
			return false, err
		}
	}
	// Best effort: without the record the copy has its own number.
	recorded = fs.setXattr(dst, fs.xOrigin, fs.originValue(ino)) == nil
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	if dst.path == "" {
		return recorded, futimens(dst.fd, &ts)
	}
	return recorded, unix.UtimesNanoAt(unix.AT_FDCWD, dst.path, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (fs *FS) setXattr(dst realRef, name string, value []byte) error {
	if dst.path == "" {
		return unix.Fsetxattr(dst.fd, name, value, 0)
	}
	return unix.Lsetxattr(dst.path, name, value, 0)
}

// copyXattrs copies every xattr but the overlay's own. Names the target
// filesystem refuses (user.* on a symlink, security labels it does not
// know) are skipped, as the kernel skips them.
func (fs *FS) copyXattrs(src, dst realRef) error {
	var names []string
	var err error
	if src.path != "" {
		names, err = listXattrs(src.path)
	} else {
		names, err = flistXattrs(src.fd)
	}
	if err != nil {
		if err == unix.ENOTSUP {
			return nil
		}
		return err
	}
	for _, name := range names {
		if fs.shownXattr(name) == "" || isOverrideXattr(name) {
			continue // the overlay's own metadata, not the object's
		}
		val, err := src.getXattr(name)
		if err != nil {
			if err == unix.ENODATA {
				continue
			}
			return err
		}
		if err := fs.setXattr(dst, name, val); err != nil {
			if err == unix.ENOTSUP || err == unix.EPERM || err == unix.EINVAL {
				continue
			}
			return err
		}
	}
	return nil
}

// smallCopy is the size up to which copyData reads and writes a file in
// one go, without looking for holes or asking for a clone.
const smallCopy = 128 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}

// reserveMax is the largest copy whose data is reserved before it is
// copied in the background (see copyUpFile).
const reserveMax = 8 << 20

// roomFor reports whether the upper layer's filesystem has size bytes
// free for unprivileged use (root may have more: a copy made now finds out).
func (fs *FS) roomFor(size int64) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(int(fs.workFd.Fd()), &sfs) != nil {
		return false
	}
	return int64(sfs.Bavail)*sfs.Bsize >= size
}

// errNoReserve: the upper layer's filesystem cannot preallocate.
var errNoReserve = errors.New("no preallocation")

// reserveData gives the copy tfd its size and allocates in it the blocks
// the data of the lower file sfd (its first size bytes, holes left out)
// will take, before that data is copied in the background. A full upper
// layer then refuses the copy-up at once, and the change that set it off
// (a chmod, a write) fails with ENOSPC as it does on the kernel's
// overlayfs, instead of succeeding and being lost when the data cannot
// follow. errNoReserve where the filesystem cannot preallocate.
func reserveData(sfd, tfd int, size int64, st *unix.Stat_t) error {
	alloc := func(off, n int64) error {
		err := unix.Fallocate(tfd, 0, off, n)
		if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
			return errNoReserve
		}
		return err
	}
	if st.Blocks*512 >= size {
		return alloc(0, size) // no holes to keep; sets the size too
	}
	if err := unix.Ftruncate(tfd, size); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if err == unix.ENXIO || err == nil && data >= size {
			return nil // holes to the end
		}
		if err != nil {
			return alloc(off, size-off) // no SEEK_DATA: all of it
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if err := alloc(data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyData copies the first size bytes of sfd into tfd, keeping holes:
// a clone where the filesystem shares extents, else copy_file_range over
// the data extents only, else read and write. A small file is simply
// read and written.
func (fs *FS) copyData(sfd, tfd int, size int64) error {
	if size == 0 {
		return nil
	}
	if size > smallCopy && fs.clone(sfd, tfd, size) {
		return nil
	}
	short, err := copyDataRange(sfd, tfd, 0, size)
	if err != nil {
		return err
	}
	if short || size > smallCopy {
		return unix.Ftruncate(tfd, size) // holes at the end, or the source ended early
	}
	return nil
}

// copyDataRange copies [off, end) of sfd to the same offsets of tfd: a
// short range (up to smallCopy) simply read and written, and then short
// reports whether the source ended before end; a longer one by its data
// extents, holes left unwritten (short is then false).
func copyDataRange(sfd, tfd int, off, end int64) (short bool, err error) {
	if end-off > smallCopy {
		return false, copyExtents(sfd, tfd, off, end)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := (*bp)[:end-off]
	n, err := preadFull(sfd, buf, off)
	if err != nil {
		return false, err
	}
	if _, err := pwriteFull(tfd, buf[:n], off); err != nil {
		return false, err
	}
	return n < len(buf), nil
}

// clone makes tfd share sfd's extents and cuts it to size, where the
// filesystem can, and reports whether it did.
func (fs *FS) clone(sfd, tfd int, size int64) bool {
	if fs.noClone.Load() {
		return false
	}
	err := unix.IoctlFileClone(tfd, sfd)
	if err == nil {
		return unix.Ftruncate(tfd, size) == nil
	}
	if err == unix.EOPNOTSUPP || err == unix.ENOTTY || err == unix.EXDEV || err == unix.EINVAL {
		fs.noClone.Store(true) // not on this filesystem: do not ask again
	}
	return false
}

// copyExtents copies the data extents of sfd in [off, end) to the same
// offsets of tfd, leaving its holes unwritten.
func copyExtents(sfd, tfd int, off, end int64) error {
	for off < end {
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole is left
		}
		if err != nil {
			// No SEEK_DATA: copy everything as data.
			return copyRange(sfd, tfd, off, end-off)
		}
		if data >= end {
			return nil
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil || hole > end {
			hole = end
		}
		if err := copyRange(sfd, tfd, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// removeTemp removes a scratch object (a directory holding only
// whiteouts at most) from the work directory.
func removeTemp(path string) {
	if unix.Rmdir(path) == nil || unix.Unlink(path) == nil {
		return
	}
	entries, _ := readDirRaw(path)
	for _, e := range entries {
		unix.Unlink(path + "/" + e.name)
	}
	unix.Rmdir(path)
}

// lockMeta holds n.copyMu while a metadata change goes to a copy whose
// data is still to come (the fill puts its time and capability back
// after each chunk it copies, holding n.copyMu).
// It returns the unlock.
func (fs *FS) lockMeta(n *Node) func() {
	if !n.dataPending.Load() && !n.filling() {
		return func() {}
	}
	n.copyMu.Lock()
	return n.copyMu.Unlock
}
