package overlay

import (
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// RootID is the ID of the root directory node.
const RootID = 1

// Node is one overlay object (file, directory, symlink, special file)
// that the kernel holds a reference to. It stays the same Node when the
// object is copied up, renamed or unlinked while open.
type Node struct {
	fs   *FS
	id   uint64
	kind uint32 // S_IFMT bits; fixed for the node's life
	// Overlay inode number: fixed for the node's life, except that a
	// copy-up that cannot record it takes the upper one (copyUpOther,
	// with treeMu exclusive; read with treeMu or for directories, which
	// always record it).
	ino uint64

	// Written with treeMu (exclusive) and tableMu held, read with either.
	parent *Node
	name   string
	// No name left in the overlay. Written like parent and name; atomic
	// so that Getattr can look without either lock.
	deleted atomic.Bool
	// A copy-up not yet linked into the upper layer (settle.go). Written
	// with treeMu held exclusively.
	pending atomic.Bool
	// A copy-up whose data is still in lower layer dataLayer (metaOnly
	// in copyup.go): metaFd, the copy, answers for the metadata (guarded
	// by dataMu), the lower file for the data. dataSrc is that lower
	// file, kept open from the copy-up for the fill (-1 once taken or
	// when not kept; guarded by dataMu).
	dataPending atomic.Bool
	dataLayer   int
	dataSize    int64 // the copy's size (written before dataPending is set)
	metaFd      int
	dataSrc     int
	// A copy whose data is arriving chunk by chunk (fill.go): set and
	// cleared with dataMu held exclusively, read with it held.
	fill atomic.Pointer[fillState]
	// A goroutine is filling the copy outside the linker's batches
	// (fillAlone).
	filler atomic.Bool
	// Written through this mount at least once (WriteAt): see Written.
	written atomic.Bool

	// Guarded by tableMu.
	aliases  []link           // further names of a hard-linked upper file
	children map[string]*Node // referenced children, directories only

	// Guarded by treeMu.
	upper    bool         // the object exists in the upper layer
	upperIno uint64       // real inode number in the upper layer (non-directories)
	anon     bool         // copied up after it was unlinked: backing is its only copy
	tmpfile  bool         // made unnamed (Tmpfile) and never linked: Link may name it
	tmpPath  string       // a pending copy's name in the work directory (no O_TMPFILE)
	gone     *unix.Stat_t // a removed object's last attributes, when nothing else has them
	lowers   []int        // directories: merged lower layers, top-most first;
	//              others: the lower layer holding the data (len <= 1)

	// Guarded by tableMu.
	refs uint64 // kernel references (the FUSE lookup count)

	// What directory listings taught about OCI whiteouts: bit i of
	// ociKnown is set once layer i's copy was listed, and bit i of ociHas
	// if it held ".wh." names. Lookups skip the ".wh.NAME" probe where a
	// listing showed none. Atomic: written under treeMu held shared.
	ociKnown, ociHas atomic.Uint64

	// A directory's merged listing, kept between reads (readdir.go).
	listing atomic.Pointer[[]DirEntry]

	copyMu sync.Mutex

	dataMu  sync.RWMutex
	backing *backing // the open real file (backing.go), nil when closed
	// timesMu keeps a write that puts the real file's mtime back
	// (WriteKeepingMtime) and a Setattr apart, so that the write cannot
	// undo the times the Setattr set. Held under dataMu.
	timesMu sync.Mutex
	// Where an unlinked upper file's data was kept (in the work
	// directory) for the kernel's open files of it. Written with treeMu
	// (exclusive) and dataMu held, read with either.
	grave string
}

type link struct {
	parent *Node
	name   string
}

// ID returns the node's stable identifier (the FUSE node ID).
func (n *Node) ID() uint64 { return n.id }

// Written reports whether the node's data was ever written through this
// mount: whether writes to it may be racing whoever asks.
func (n *Node) Written() bool { return n.written.Load() }

// Ino returns the overlay inode number.
func (n *Node) Ino() uint64 { return n.ino }

// IsDir reports whether the node is a directory.
func (n *Node) IsDir() bool { return n.kind == unix.S_IFDIR }

// Mode returns the file type bits.
func (n *Node) Kind() uint32 { return n.kind }

// rel returns the node's path relative to the layer roots. The caller
// holds treeMu or tableMu.
func (n *Node) rel() string {
	if n.parent == nil {
		return ""
	}
	depth := 0
	size := 0
	for p := n; p.parent != nil; p = p.parent {
		depth++
		size += len(p.name) + 1
	}
	if depth == 1 {
		return n.name
	}
	var b strings.Builder
	b.Grow(size)
	names := make([]string, depth)
	i := depth
	for p := n; p.parent != nil; p = p.parent {
		i--
		names[i] = p.name
	}
	for i, s := range names {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(s)
	}
	return b.String()
}

// childRel is the relative path of name inside directory n.
func (n *Node) childRel(name string) string {
	r := n.rel()
	if r == "" {
		return name
	}
	return r + "/" + name
}

// topLayer returns the layer whose copy of the object is the visible one.
// The caller holds treeMu.
func (n *Node) topLayer() *Layer {
	if n.upper {
		return n.fs.upper
	}
	if len(n.lowers) == 0 {
		return nil
	}
	return n.fs.layers[n.lowers[0]]
}

// Node returns the node with the given ID, or nil.
func (fs *FS) Node(id uint64) *Node {
	if id == RootID {
		return fs.root
	}
	fs.tableMu.Lock()
	n := fs.nodes[id]
	fs.tableMu.Unlock()
	return n
}

// insertNode registers a node under parent (nil for the root). The caller
// holds treeMu exclusively or shared; tableMu is taken here.
func (fs *FS) insertNode(n *Node, parent *Node, name string) *Node {
	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	return fs.insertNodeLocked(n, parent, name)
}

// insertNodeLocked is insertNode for a caller that holds tableMu.
func (fs *FS) insertNodeLocked(n *Node, parent *Node, name string) *Node {
	if parent != nil {
		if old := parent.children[name]; old != nil && !old.deleted.Load() {
			// A concurrent lookup of the same name won the race.
			old.refs++
			return old
		}
	}
	n.id = fs.newIDLocked()
	if parent == nil {
		n.id = RootID
	}
	n.refs = 1
	n.parent = parent
	n.name = name
	if n.kind == unix.S_IFDIR {
		n.children = map[string]*Node{}
	}
	if parent != nil {
		parent.children[name] = n
	}
	fs.nodes[n.id] = n
	return n
}

// newIDLocked returns an unused node ID. The caller holds tableMu.
func (fs *FS) newIDLocked() uint64 {
	fs.nextID++
	if fs.nextID == RootID {
		fs.nextID++
	}
	return fs.nextID
}

// Ref adds a kernel reference to n (a lookup that returned an existing
// node).
func (fs *FS) ref(n *Node) {
	fs.tableMu.Lock()
	n.refs++
	fs.tableMu.Unlock()
}

// Forget drops count kernel references to n. A node with no references
// left is removed from the table; its parent may follow. A removed file
// node's backing file is closed (unless an explicit open still pins it)
// and the data an unlinked file left in the work directory goes.
func (fs *FS) Forget(n *Node, count uint64) {
	if n == fs.root {
		return
	}
	var dropped []*Node
	fs.tableMu.Lock()
	if count > n.refs {
		count = n.refs
	}
	n.refs -= count
	for n != nil && n != fs.root && n.refs == 0 && len(n.children) == 0 && !n.pending.Load() {
		delete(fs.nodes, n.id)
		if fs.links[n.upperIno] == n {
			delete(fs.links, n.upperIno)
		}
		p := n.parent
		if p != nil && p.children[n.name] == n {
			delete(p.children, n.name)
		}
		for _, a := range n.aliases {
			if a.parent.children[a.name] == n {
				delete(a.parent.children, a.name)
			}
		}
		if n.kind == unix.S_IFREG {
			dropped = append(dropped, n)
		}
		n = p
	}
	fs.tableMu.Unlock()
	for _, n := range dropped {
		fs.dropData(n)
	}
}

// dropData releases what a node no longer in the table holds of its
// data. The caller holds no lock.
func (fs *FS) dropData(n *Node) {
	n.dataMu.Lock()
	grave := n.grave
	n.grave = ""
	if b := n.backing; b != nil && b.pins == 0 {
		fs.closeBackingLocked(n)
	}
	if n.dataPending.Load() && !n.pending.Load() {
		n.closeMetaLocked() // an unlinked copy whose data never came
	}
	if n.backing == nil {
		n.endFill() // an unlinked copy not all of whose data came
	}
	n.dataMu.Unlock()
	if grave != "" {
		fs.reap(grave)
	}
}

// NodeCount returns how many nodes the table holds (for tests and stats).
func (fs *FS) NodeCount() int {
	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	return len(fs.nodes)
}

// detach removes name's link to n after n's name went away. The caller
// holds treeMu exclusively.
func (fs *FS) detach(parent *Node, name string, n *Node) {
	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	if parent.children[name] == n {
		delete(parent.children, name)
	}
	if n.parent == parent && n.name == name {
		if len(n.aliases) > 0 {
			n.parent, n.name = n.aliases[0].parent, n.aliases[0].name
			n.aliases = n.aliases[1:]
			return
		}
		n.deleted.Store(true)
		return
	}
	for i, a := range n.aliases {
		if a.parent == parent && a.name == name {
			n.aliases = append(n.aliases[:i], n.aliases[i+1:]...)
			return
		}
	}
}

// move renames n's link (oldParent, oldName) to (newParent, newName). The
// caller holds treeMu exclusively.
func (fs *FS) move(n *Node, oldParent *Node, oldName string, newParent *Node, newName string) {
	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	if oldParent.children[oldName] == n {
		delete(oldParent.children, oldName)
	}
	newParent.children[newName] = n
	if n.parent == oldParent && n.name == oldName {
		n.parent, n.name = newParent, newName
		return
	}
	for i, a := range n.aliases {
		if a.parent == oldParent && a.name == oldName {
			n.aliases[i] = link{newParent, newName}
			return
		}
	}
}

// addAlias records a further name of a hard-linked node that still has
// a name. The caller holds treeMu exclusively or shared.
func (fs *FS) addAlias(n *Node, parent *Node, name string) {
	fs.tableMu.Lock()
	defer fs.tableMu.Unlock()
	fs.addAliasLocked(n, parent, name)
}

// addAliasLocked is addAlias for a caller that holds tableMu.
func (fs *FS) addAliasLocked(n *Node, parent *Node, name string) {
	parent.children[name] = n
	if n.parent == parent && n.name == name {
		return
	}
	for _, a := range n.aliases {
		if a.parent == parent && a.name == name {
			return
		}
	}
	n.aliases = append(n.aliases, link{parent, name})
}

// mayHaveOCI reports whether the directory's copy in lower layer li may
// hold OCI whiteouts (unknown counts as yes).
func (n *Node) mayHaveOCI(li int) bool {
	bit := uint64(1) << uint(li)
	return n.ociKnown.Load()&bit == 0 || n.ociHas.Load()&bit != 0
}

// learnOCI records what a full listing of the directory's lower layers
// showed.
func (n *Node) learnOCI(lowers []int, has uint64) {
	var known uint64
	for _, li := range lowers {
		known |= 1 << uint(li)
	}
	n.ociHas.Or(has)
	n.ociKnown.Or(known)
}
