package overlay

import (
	"encoding/binary"
	"strings"

	"golang.org/x/sys/unix"
)

// entry is what a lookup of one name in the stack found.
type entry struct {
	kind     uint32 // S_IFMT
	upper    bool
	whiteout bool  // the upper layer has a whiteout at the name
	opaque   bool  // upper directory marked opaque
	lowers   []int // as Node.lowers
	st       unix.Stat_t
	stLayer  *Layer // where st came from
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// ociWhiteoutPrefix marks AUFS/OCI whiteouts in lower layers.
const (
	ociWhiteoutPrefix = ".wh."
	ociOpaqueMarker   = ".wh..wh..opq"
)

// lookupEntry finds name in directory parent through the stack. It
// returns ENOENT for names that are absent or whited out. The caller
// holds treeMu.
func (fs *FS) lookupEntry(parent *Node, name string) (entry, error) {
	return fs.lookupEntryListed(parent, name, nil)
}

// lookupEntryListed is lookupEntry for a name of the directory's listing
// (nil: none): the lower layers whose copy of the directory does not
// list the name are not asked. The upper layer always is: it changes.
func (fs *FS) lookupEntryListed(parent *Node, name string, ent *DirEntry) (entry, error) {
	var e entry
	parentRel := parent.rel()
	rel := joinRel(parentRel, name)
	if parent.upper && !parent.anon {
		err := fs.upper.lstat(rel, &e.st)
		switch err {
		case nil:
			if isWhiteout(&e.st) {
				e.whiteout = true
				return e, unix.ENOENT
			}
			e.kind = e.st.Mode & unix.S_IFMT
			e.upper = true
			e.stLayer = fs.upper
			if e.kind != unix.S_IFDIR {
				return e, nil
			}
			if fs.opaque(fs.upper, rel) {
				e.opaque = true
				return e, nil
			}
		case unix.ENOENT, unix.ENOTDIR:
		default:
			return e, err
		}
	}
	if err := fs.lookupLowers(parent, parentRel, name, &e, ent); err != nil {
		return e, err
	}
	if !e.upper && len(e.lowers) == 0 {
		return e, unix.ENOENT
	}
	return e, nil
}

// lookupLowers continues a lookup in parent's lower layers, appending to
// e.lowers every layer whose copy merges into the result. With ent (a
// complete entry of parent's listing) a layer whose copy of parent does
// not list the name is taken as not having it, without a system call:
// for a sparse upper lower layer most lookups of a listed directory
// would otherwise be negative ones, which cost a search of the real
// directory each. A directory with lower layers never moves (rename
// gives EXDEV) and its lower layers never change, so the listing stays
// true for them.
func (fs *FS) lookupLowers(parent *Node, parentRel, name string, e *entry, ent *DirEntry) error {
	if strings.HasPrefix(name, ociWhiteoutPrefix) {
		return nil // OCI markers are never visible
	}
	rel := joinRel(parentRel, name)
	for k, li := range parent.lowers {
		l := fs.layers[li]
		var st unix.Stat_t
		var err error
		if !ent.mayHave(li) {
			err = unix.ENOENT // not in the layer's listing
			fs.probesSkipped.Add(1)
		} else {
			err = l.lstat(rel, &st)
		}
		switch err {
		case nil:
			if isWhiteout(&st) {
				return nil
			}
			kind := st.Mode & unix.S_IFMT
			if e.kind == 0 {
				e.kind, e.st, e.stLayer = kind, st, l
			} else if e.kind != unix.S_IFDIR || kind != unix.S_IFDIR {
				return nil // a non-directory below a directory is hidden
			}
			e.lowers = append(e.lowers, li)
			if kind != unix.S_IFDIR {
				return nil
			}
			// Whether this copy is opaque matters only if a layer below
			// may have the name too: not so in the bottom layer, nor
			// when the listing shows none below with it.
			below := false
			for _, lj := range parent.lowers[k+1:] {
				if ent.mayHave(lj) {
					below = true
					break
				}
			}
			if !below || fs.lowerOpaque(l, rel) {
				return nil
			}
		case unix.ENOENT, unix.ENOTDIR:
		default:
			return err
		}
		// An OCI whiteout hides the name in the layers below this one.
		if parent.mayHaveOCI(li) && l.exists(joinRel(parentRel, ociWhiteoutPrefix+name)) {
			return nil
		}
	}
	return nil
}

// mayHave reports whether lower layer li may have the listed name: a
// complete listing tells, else (ent nil) it may.
func (ent *DirEntry) mayHave(li int) bool {
	return ent == nil || !ent.listed || li >= 64 || ent.inLowers&(1<<uint(li)) != 0
}

// lowerVisible reports whether a lower layer shows something at
// (parent, name) when the upper layer is ignored: removing or renaming
// away an upper object there must then leave a whiteout. The caller
// holds treeMu.
func (fs *FS) lowerVisible(parent *Node, name string) bool {
	var e entry
	if err := fs.lookupLowers(parent, parent.rel(), name, &e, nil); err != nil {
		return true // be safe: a whiteout too many hides nothing visible
	}
	return len(e.lowers) > 0
}

// opaque reports whether directory rel of l has the opaque xattr.
func (fs *FS) opaque(l *Layer, rel string) bool {
	var buf [2]byte
	n, err := l.getxattr(rel, fs.xOpaque, buf[:])
	return err == nil && n == 1 && buf[0] == 'y'
}

// lowerOpaque reports whether a lower directory stops the merge: the
// kernel's opaque xattr or an OCI ".wh..wh..opq" marker.
func (fs *FS) lowerOpaque(l *Layer, rel string) bool {
	return fs.opaque(l, rel) || l.exists(joinRel(rel, ociOpaqueMarker))
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// inoOf returns the overlay inode number for what e found: an upper
// object keeps the number recorded at its copy-up; anything else uses
// its top-most real inode.
func (fs *FS) inoOf(e *entry, upperRel string) uint64 {
	if e.upper {
		if ino, ok := fs.readOrigin(upperRel); ok {
			return ino
		}
	}
	return fs.inos.ino(e.stLayer, e.st.Ino)
}

// readOrigin reads the overlay inode number recorded on upper object rel
// at its copy-up.
func (fs *FS) readOrigin(rel string) (uint64, bool) {
	var buf [8]byte
	n, err := fs.upper.getxattr(rel, fs.xOrigin, buf[:])
	if err != nil || n != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(buf[:]), true
}

func (fs *FS) originValue(ino uint64) []byte {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], ino)
	return buf[:]
}

// newRoot builds the root node from the layers' roots.
func (fs *FS) newRoot() (*Node, error) {
	n := &Node{fs: fs, kind: unix.S_IFDIR}
	var st unix.Stat_t
	if fs.upper != nil {
		n.upper = true
		if err := fs.upper.lstat("", &st); err != nil {
			return nil, err
		}
		n.ino = fs.inos.ino(fs.upper, st.Ino)
	}
	for _, l := range fs.lowers {
		n.lowers = append(n.lowers, l.Index)
		if len(n.lowers) == 1 && fs.upper == nil {
			if err := l.lstat("", &st); err != nil {
				return nil, err
			}
			n.ino = fs.inos.ino(l, st.Ino)
		}
		if fs.lowerOpaque(l, "") {
			break
		}
	}
	return fs.insertNode(n, nil, ""), nil
}

// Lookup finds name in directory parent and returns its node, with one
// more kernel reference, and its attributes.
func (fs *FS) Lookup(parent *Node, name string) (*Node, unix.Stat_t, error) {
	return fs.lookup(parent, name, nil)
}

// LookupListed is Lookup of an entry of parent's listing (from ReadDirAt
// or ReadDir), as READDIRPLUS does for every name it returns: it asks only
// the lower layers that listed the name.
func (fs *FS) LookupListed(parent *Node, ent *DirEntry) (*Node, unix.Stat_t, error) {
	return fs.lookup(parent, ent.Name, ent)
}

func (fs *FS) lookup(parent *Node, name string, ent *DirEntry) (*Node, unix.Stat_t, error) {
	if len(name) > 255 {
		return nil, unix.Stat_t{}, unix.ENAMETOOLONG
	}
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	if parent.deleted.Load() || parent.kind != unix.S_IFDIR {
		return nil, unix.Stat_t{}, unix.ENOENT
	}
	e, err := fs.lookupEntryListed(parent, name, ent)
	if err != nil {
		return nil, unix.Stat_t{}, err
	}
	n := fs.nodeFor(parent, name, &e)
	if n.pending.Load() {
		// Its upper copy is not at its path yet (settle.go).
		if st, ok, err := fs.backingAttr(n); ok && err == nil {
			return n, st, nil
		}
	}
	st := e.st
	applyOverrideAt(e.stLayer, parent.childRel(name), &st)
	fs.fixAttr(n, &st)
	return n, st, nil
}

// nodeFor returns the node for what a lookup found, reusing the node the
// kernel already knows under that name or, for a hard-linked upper file,
// under another name. It adds a reference. The caller holds treeMu.
//
// Lookups run concurrently (the kernel's, and READDIRPLUS spreads its
// own), so the check for a node of the same upper inode and the insertion
// of a new one happen under one hold of tableMu: two names of one file
// looked up at once still get one node.
func (fs *FS) nodeFor(parent *Node, name string, e *entry) *Node {
	hardLinked := e.upper && e.kind != unix.S_IFDIR && e.st.Nlink > 1
	fs.tableMu.Lock()
	if c := parent.children[name]; c != nil && !c.deleted.Load() && c.kind == e.kind {
		c.refs++
		fs.tableMu.Unlock()
		return c
	}
	if c := fs.linkedNode(e, hardLinked); c != nil {
		fs.addAliasLocked(c, parent, name)
		fs.tableMu.Unlock()
		return c
	}
	fs.tableMu.Unlock()

	n := &Node{fs: fs, kind: e.kind, upper: e.upper, lowers: e.lowers}
	upperRel := ""
	if e.upper {
		upperRel = joinRel(parent.rel(), name)
		n.upperIno = e.st.Ino
	}
	n.ino = fs.inoOf(e, upperRel) // reads an xattr: not under tableMu

	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	if c := fs.linkedNode(e, hardLinked); c != nil {
		fs.addAliasLocked(c, parent, name) // another of its names won the race
		return c
	}
	n = fs.insertNodeLocked(n, parent, name)
	if hardLinked {
		if c := fs.links[e.st.Ino]; c == nil || c.deleted.Load() {
			fs.links[e.st.Ino] = n // the inode number may be reused
		}
	}
	return n
}

// linkedNode returns, with one more reference, the live node of the
// hard-linked upper file e found, if there is one. The caller holds
// tableMu.
func (fs *FS) linkedNode(e *entry, hardLinked bool) *Node {
	if !hardLinked {
		return nil
	}
	c := fs.links[e.st.Ino]
	if c == nil || c.deleted.Load() {
		return nil
	}
	c.refs++
	return c
}
