package overlay

import (
	"slices"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirEntry is one name of a merged directory listing.
type DirEntry struct {
	Name string
	Kind uint32 // S_IFMT, 0 when unknown
	Ino  uint64
	// Off is the entry's position cookie: a hash of its name, so it means
	// the same in every listing of the directory (like ext4's hashed
	// directory offsets). Listings come in cookie order.
	Off uint64

	// inLowers has bit i set when lower layer i's copy of the directory
	// lists the name; listed says the bits are complete (a full listing
	// over at most 64 layers). Lower layers never change under a mount,
	// so a lookup of the name may skip the layers without it (see
	// LookupListed).
	inLowers uint64
	listed   bool
}

// FirstCookie is the smallest cookie of a name: 0 is the start of a
// listing, 1 and 2 are left for "." and "..".
const FirstCookie = 3

// cookie is a name's position cookie: 63 bits of its FNV-1a hash.
func cookie(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	h >>= 1
	if h < FirstCookie {
		h += FirstCookie
	}
	return h
}

// rawEntry is one entry of a real directory.
type rawEntry struct {
	name  string
	dtype uint8
	ino   uint64
}

// readDirRaw lists a real directory with getdents64, without stat calls.
func readDirRaw(path string) ([]rawEntry, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return readDirFd(fd)
}

// readDirAt lists rel in layer l.
func readDirAt(l *Layer, rel string) ([]rawEntry, error) {
	fd, err := l.open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return readDirFd(fd)
}

// readDirFd lists and closes a directory descriptor.
func readDirFd(fd int) ([]rawEntry, error) {
	defer unix.Close(fd)
	var out []rawEntry
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
			rec := buf[off:]
			ino := *(*uint64)(unsafe.Pointer(&rec[0]))
			reclen := int(*(*uint16)(unsafe.Pointer(&rec[16])))
			dtype := rec[18]
			nameBytes := rec[19:reclen]
			if i := indexByte(nameBytes, 0); i >= 0 {
				nameBytes = nameBytes[:i]
			}
			off += reclen
			name := string(nameBytes)
			if name == "." || name == ".." {
				continue
			}
			out = append(out, rawEntry{name: name, dtype: dtype, ino: ino})
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func dtypeToKind(t uint8) uint32 {
	return uint32(t) << 12
}

// listMerged merges a directory's listing over the stack: each name once,
// upper first, whiteouts and OCI markers hidden. With firstOnly it stops
// at the first visible name (an emptiness check). The caller holds treeMu.
func (fs *FS) listMerged(rel string, upper bool, lowers []int, firstOnly bool) ([]DirEntry, error) {
	ents, _, err := fs.listMergedOCI(rel, upper, lowers, firstOnly)
	return ents, err
}

// listMergedOCI is listMerged that also returns the bitmask of lower
// layers whose copy of the directory holds OCI whiteouts.
func (fs *FS) listMergedOCI(rel string, upper bool, lowers []int, firstOnly bool) ([]DirEntry, uint64, error) {
	var oci uint64
	seen := map[string]struct{}{}
	var out []DirEntry
	// Where each name is in out, to note every lower layer that lists it.
	var at map[string]int
	if !firstOnly {
		at = map[string]int{}
	}
	if upper {
		ents, err := readDirAt(fs.upper, rel)
		if err != nil {
			return nil, 0, err
		}
		for _, e := range ents {
			seen[e.name] = struct{}{}
			if e.dtype == unix.DT_CHR && isWhiteoutIn(fs.upper, joinRel(rel, e.name)) {
				continue
			}
			ino := fs.inos.ino(fs.upper, e.ino)
			if len(lowers) > 0 && !firstOnly {
				// In a merged directory an upper entry may be a copy-up,
				// which keeps its lower inode number (as the kernel
				// reports it in merged directories).
				if o, ok := fs.readOrigin(joinRel(rel, e.name)); ok {
					ino = o
				}
			}
			if at != nil {
				at[e.name] = len(out)
			}
			out = append(out, DirEntry{Name: e.name, Kind: dtypeToKind(e.dtype), Ino: ino})
			if firstOnly {
				return out, 0, nil
			}
		}
	}
	for _, li := range lowers {
		l := fs.layers[li]
		ents, err := readDirAt(l, rel)
		if err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR {
				continue
			}
			return nil, 0, err
		}
		var hidden []string
		for _, e := range ents {
			if strings.HasPrefix(e.name, ociWhiteoutPrefix) {
				oci |= 1 << uint(li)
				if e.name != ociOpaqueMarker {
					hidden = append(hidden, e.name[len(ociWhiteoutPrefix):])
				}
				continue
			}
			if _, ok := seen[e.name]; ok {
				if i, ok := at[e.name]; ok && li < 64 {
					out[i].inLowers |= 1 << uint(li)
				}
				continue
			}
			seen[e.name] = struct{}{}
			if e.dtype == unix.DT_CHR && isWhiteoutIn(l, joinRel(rel, e.name)) {
				continue
			}
			if at != nil {
				at[e.name] = len(out)
			}
			out = append(out, DirEntry{Name: e.name, Kind: dtypeToKind(e.dtype), Ino: fs.inos.ino(l, e.ino)})
			if li < 64 {
				out[len(out)-1].inLowers = 1 << uint(li)
			}
			if firstOnly {
				return out, oci, nil
			}
		}
		for _, h := range hidden {
			seen[h] = struct{}{}
		}
	}
	if !firstOnly && (len(lowers) == 0 || slices.Max(lowers) < 64) {
		for i := range out {
			out[i].listed = true
		}
	}
	return out, oci, nil
}

// isWhiteoutIn reports whether rel in layer l is a whiteout.
func isWhiteoutIn(l *Layer, rel string) bool {
	var st unix.Stat_t
	return l.lstat(rel, &st) == nil && isWhiteout(&st)
}

// ReadDirAt returns the directory's entries whose cookies come after the
// offset after (0: from the start), from the node's listing: built on
// the first read and kept until the directory changes or a read finds
// nothing left (the kernel keeps its own copy of a listing it has read
// to the end). Any snapshot serves any offset, because offsets are name
// cookies, not positions: a reader going on from an offset neither skips
// nor repeats a name that stayed, and the offsets the kernel keeps in its
// cached copy stay valid.
func (fs *FS) ReadDirAt(n *Node, after uint64) ([]DirEntry, error) {
	if n.kind != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	ents := n.listing.Load()
	if ents == nil {
		l, err := fs.buildListing(n)
		if err != nil {
			return nil, err
		}
		ents = &l
	}
	i := sort.Search(len(*ents), func(i int) bool { return (*ents)[i].Off > after })
	if i == len(*ents) {
		n.listing.CompareAndSwap(ents, nil)
		return nil, nil
	}
	return (*ents)[i:], nil
}

// dropListing forgets the directory's listing after a change to its
// entries. The caller holds treeMu exclusively.
func (n *Node) dropListing() { n.listing.Store(nil) }

// DirHandle is an open directory with a listing of its own: a snapshot
// taken when reading starts at offset 0 (see ReadDirAt on offsets).
type DirHandle struct {
	node    *Node
	entries []DirEntry
	loaded  bool
}

// Node returns the directory's node.
func (d *DirHandle) Node() *Node { return d.node }

// OpenDir opens a directory node.
func (fs *FS) OpenDir(n *Node) (*DirHandle, error) {
	if n.kind != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	return &DirHandle{node: n}, nil
}

// ReadDir returns the directory's entries whose cookies come after the
// offset after (0: from the start). With rewind (rewinddir) it takes a
// fresh snapshot; the first read takes one too.
func (fs *FS) ReadDir(d *DirHandle, after uint64, rewind bool) ([]DirEntry, error) {
	if rewind || !d.loaded {
		ents, err := fs.buildListing(d.node)
		if err != nil {
			return nil, err
		}
		d.entries, d.loaded = ents, true
	}
	i := sort.Search(len(d.entries), func(i int) bool { return d.entries[i].Off > after })
	return d.entries[i:], nil
}

// buildListing lists the directory through the stack, in cookie order,
// and keeps the result as the node's listing.
func (fs *FS) buildListing(n *Node) ([]DirEntry, error) {
	fs.treeMu.RLock()
	defer fs.treeMu.RUnlock()
	if n.deleted.Load() {
		return nil, nil
	}
	ents, oci, err := fs.listMergedOCI(n.rel(), n.upper, n.lowers, false)
	if err != nil {
		return nil, err
	}
	n.learnOCI(n.lowers, oci)
	// Names the kernel already knows carry the overlay inode number (a
	// copied-up object keeps its lower number).
	fs.tableMu.Lock()
	for i := range ents {
		if c := n.children[ents[i].Name]; c != nil {
			ents[i].Ino = c.ino
		}
	}
	fs.tableMu.Unlock()
	for i := range ents {
		ents[i].Off = cookie(ents[i].Name)
	}
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].Off != ents[j].Off {
			return ents[i].Off < ents[j].Off
		}
		return ents[i].Name < ents[j].Name
	})
	// Two names with one hash (rare with 63 bits) share a cookie: give the
	// later ones the next free numbers.
	for i := 1; i < len(ents); i++ {
		if ents[i].Off <= ents[i-1].Off {
			ents[i].Off = ents[i-1].Off + 1
		}
	}
	// No change can come between the listing and this store: changes
	// hold treeMu exclusively.
	n.listing.Store(&ents)
	return ents, nil
}
