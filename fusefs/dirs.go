package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Directories are not opened through the daemon either: OPENDIR is
// answered with ENOSYS (FUSE_NO_OPENDIR_SUPPORT), and the kernel then
// opens every directory with FOPEN_CACHE_DIR|FOPEN_KEEP_CACHE: it keeps
// the listing in the directory's page cache and reuses it across opens.
// That is safe because every change to a directory goes through this
// mount, and the kernel drops its cached listing when one happens.

func (fs *FS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	fs.turn()
	return fuse.OK
}

// Directory offsets: 1 is after ".", 2 after "..", and every other entry's
// offset is the engine's name cookie, which means the same in every
// listing of the directory, so any read may go on from any offset.
func (fs *FS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	after := in.Offset
	ents, err := fs.ov.ReadDirAt(n, max(after, 2))
	if err != nil {
		return status(err)
	}
	for pos := after; pos < 2; pos++ {
		name := "."
		if pos == 1 {
			name = ".."
		}
		e := fuse.DirEntry{Name: name, Mode: unix.S_IFDIR, Ino: n.Ino(), Off: pos + 1}
		if plus {
			if out.AddDirLookupEntry(e) == nil {
				return fuse.OK
			}
		} else if !out.AddDirEntry(e) {
			return fuse.OK
		}
	}
	for i := range ents {
		ent := &ents[i]
		e := fuse.DirEntry{Name: ent.Name, Mode: ent.Kind, Ino: ent.Ino, Off: ent.Off}
		if !plus {
			if !out.AddDirEntry(e) {
				break
			}
			continue
		}
		// Look the name up first, in the layers that listed it: the entry
		// then carries the object's own inode number (a copied-up object
		// keeps its lower one).
		c, st, err := fs.ov.LookupListed(n, ent)
		if err == nil {
			e.Ino, e.Mode = st.Ino, st.Mode
		}
		eo := out.AddDirLookupEntry(e)
		if eo == nil {
			if err == nil {
				fs.ov.Forget(c, 1) // no room: the kernel will not count it
			}
			break
		}
		if err != nil {
			continue // gone since the snapshot: NodeId 0 makes the kernel skip it
		}
		fs.fillEntry(eo, c, &st)
	}
	return fuse.OK
}

func (fs *FS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fs.turn()
	return fs.readDir(in, out, false)
}

func (fs *FS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	fs.turn()
	return fs.readDir(in, out, true)
}
