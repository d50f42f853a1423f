package fusefs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

func (fs *FS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	fs.turn()
	n := fs.node(h.NodeId)
	if n == nil {
		return 0, fuse.ENOENT
	}
	sz, err := fs.ov.GetXattr(n, attr, dest)
	if err == unix.ERANGE {
		sz, err = fs.ov.GetXattr(n, attr, nil)
		if err == nil {
			return uint32(sz), fuse.ERANGE
		}
	}
	return uint32(sz), status(err)
}

func (fs *FS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	fs.turn()
	n := fs.node(h.NodeId)
	if n == nil {
		return 0, fuse.ENOENT
	}
	sz, err := fs.ov.ListXattr(n, dest)
	return uint32(sz), status(err)
}

func (fs *FS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	fs.turn()
	n := fs.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.SetXattr(n, attr, data, int(in.Flags)))
}

func (fs *FS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	fs.turn()
	n := fs.node(h.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	return status(fs.ov.RemoveXattr(n, attr))
}
