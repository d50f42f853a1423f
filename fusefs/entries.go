package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// Lookup answers with the node, or with a cached negative entry: names
// cannot appear behind the kernel's back.
func (fs *FS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	fs.turn()
	parent := fs.node(h.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	n, st, err := fs.ov.Lookup(parent, name)
	if err == unix.ENOENT {
		out.NodeId = 0
		out.SetEntryTimeout(fs.timeout)
		return fuse.OK
	}
	if err != nil {
		return status(err)
	}
	fs.fillEntry(out, n, &st)
	return fuse.OK
}

func (fs *FS) Forget(nodeid, nlookup uint64) {
	fs.turn()
	if n := fs.node(nodeid); n != nil {
		fs.ov.Forget(n, nlookup)
	}
}

func (fs *FS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	st, err := fs.ov.Getattr(n)
	if err != nil {
		return status(err)
	}
	out.SetTimeout(fs.timeout)
	fillAttr(&out.Attr, &st)
	return fuse.OK
}

func (fs *FS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	a := overlay.SetAttr{Mode: in.Mode, UID: in.Uid, GID: in.Gid, Size: in.Size}
	v := in.Valid
	set := func(bit uint32, flag uint32) {
		if v&bit != 0 {
			a.Valid |= flag
		}
	}
	set(fuse.FATTR_MODE, overlay.SetMode)
	set(fuse.FATTR_UID, overlay.SetUID)
	set(fuse.FATTR_GID, overlay.SetGID)
	set(fuse.FATTR_SIZE, overlay.SetSize)
	set(fuse.FATTR_ATIME, overlay.SetAtime)
	set(fuse.FATTR_MTIME, overlay.SetMtime)
	set(fuse.FATTR_ATIME_NOW, overlay.SetAtimeNow)
	set(fuse.FATTR_MTIME_NOW, overlay.SetMtimeNow)
	if v&fuse.FATTR_KILL_SUIDGID != 0 {
		a.KillSUIDGID, a.InGroup = true, inGroup(&in.InHeader)
	}
	a.Atime = unix.Timespec{Sec: int64(in.Atime), Nsec: int64(in.Atimensec)}
	a.Mtime = unix.Timespec{Sec: int64(in.Mtime), Nsec: int64(in.Mtimensec)}
	a.KeepMtime = fs.Writeback // see FS.Writeback
	if a.Valid == 0 && !a.KillSUIDGID {
		return fs.GetAttr(cancel, &fuse.GetAttrIn{InHeader: in.InHeader}, out)
	}
	st, err := fs.ov.Setattr(n, &a)
	if err != nil {
		return status(err)
	}
	out.SetTimeout(fs.timeout)
	fillAttr(&out.Attr, &st)
	return fuse.OK
}

func (fs *FS) create(h *fuse.InHeader, name string, obj overlay.NewObject, out *fuse.EntryOut) fuse.Status {
	parent := fs.node(h.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	n, _, st, err := fs.ov.Create(parent, name, obj, caller(h))
	if err != nil {
		return status(err)
	}
	fs.fillEntry(out, n, &st)
	return fuse.OK
}

// Mknod makes regular files too: CREATE is answered with ENOSYS (see
// files.go), so the kernel creates files with MKNOD and opens them
// without asking.
func (fs *FS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	fs.turn()
	return fs.create(&in.InHeader, name, overlay.NewObject{Kind: in.Mode & unix.S_IFMT, Mode: in.Mode, Rdev: in.Rdev}, out)
}

// Tmpfile makes an unnamed file (open with O_TMPFILE) and opens it: the
// kernel links it later, if at all, with LINK.
func (fs *FS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	fs.turn()
	parent := fs.node(in.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	n, st, err := fs.ov.Tmpfile(parent, in.Mode, caller(&in.InHeader))
	if err != nil {
		return status(err)
	}
	fs.fillEntry(&out.EntryOut, n, &st)
	if pt := fs.passthroughState(); pt != ptOff {
		// As OPEN answers it: the kernel sends RELEASE for it.
		write := in.Flags&unix.O_ACCMODE != unix.O_RDONLY
		fs.open(n, fs.opens.get(n.ID(), true), write, in.Uid, pt, &out.OpenOut)
		return fuse.OK
	}
	// As the kernel opens files itself when OPEN is ENOSYS; the RELEASE
	// it sends for this one (Fh 0) is ignored.
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

func (fs *FS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	fs.turn()
	return fs.create(&in.InHeader, name, overlay.NewObject{Kind: unix.S_IFDIR, Mode: in.Mode}, out)
}

func (fs *FS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	fs.turn()
	return fs.create(h, name, overlay.NewObject{Kind: unix.S_IFLNK, Mode: 0777, Target: target}, out)
}

func (fs *FS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	fs.turn()
	n, parent := fs.node(in.Oldnodeid), fs.node(in.NodeId)
	if n == nil || parent == nil {
		return fuse.ENOENT
	}
	st, err := fs.ov.Link(n, parent, name)
	if err != nil {
		return status(err)
	}
	fs.fillEntry(out, n, &st)
	// The kernel applies a LINK reply's attributes to the (already cached)
	// inode without the version check that guards every other reply
	// against racing writes (create_new_entry passes attr_version 0), so
	// if another fd appends while this reply waits for its task to run,
	// the cached size goes back to the one read here. For a file that is
	// being written through the mount, expiring the attributes at once
	// makes the next stat, read near the end or SEEK_END ask again (a page
	// fault in between still sees the old size: docs/coherence.md, "Sizes
	// while appends are in flight"). Others keep them: hard-linking a tree
	// (cp -al) would otherwise cost a GETATTR per file afterwards.
	if n.Written() {
		out.SetAttrTimeout(0)
	}
	return fuse.OK
}

func (fs *FS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	fs.turn()
	parent := fs.node(h.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Unlink(parent, name))
}

func (fs *FS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	fs.turn()
	parent := fs.node(h.NodeId)
	if parent == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Rmdir(parent, name))
}

func (fs *FS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	fs.turn()
	op, np := fs.node(in.NodeId), fs.node(in.Newdir)
	if op == nil || np == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.Rename(op, oldName, np, newName, in.Flags))
}

func (fs *FS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	fs.turn()
	n := fs.node(h.NodeId)
	if n == nil {
		return nil, fuse.ENOENT
	}
	t, err := fs.ov.Readlink(n)
	if err != nil {
		return nil, status(err)
	}
	return []byte(t), fuse.OK
}

func (fs *FS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	fs.turn()
	st, err := fs.ov.Statfs()
	if err != nil {
		return status(err)
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize, out.NameLen = uint32(st.Bsize), uint32(st.Frsize), uint32(st.Namelen)
	return fuse.OK
}
