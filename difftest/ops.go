package difftest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpKind is what an Op does.
type OpKind uint8

// Operations. Paths are relative to the mount; "" is its root.
const (
	OpWrite       OpKind = iota + 1 // open(Path, O_WRONLY|O_CREAT|Flags, Mode), pwrite Len bytes of Pattern(Fill) at Off, close
	OpAppend                        // open(Path, O_WRONLY|O_APPEND), write Len bytes, close
	OpTruncate                      // truncate(Path, Off)
	OpOpenClose                     // open(Path, Flags, Mode), close: no data written
	OpMkdir                         // mkdir(Path, Mode)
	OpRmdir                         // rmdir(Path)
	OpUnlink                        // unlink(Path)
	OpRename                        // renameat2(Path, Path2, Flags)
	OpLink                          // link(Path, Path2)
	OpSymlink                       // symlink(Path2, Path): Path2 is the target
	OpMknod                         // mknod(Path, Mode, Dev)
	OpChmod                         // chmod(Path, Mode), following symlinks
	OpChown                         // fchownat(Path, UID, GID, Flags)
	OpUtimes                        // utimensat(Path, {Atime, Mtime}, Flags)
	OpSetxattr                      // setxattr or (Flags&FlagNoFollow) lsetxattr(Path, Name, Value, Flags&3)
	OpRemovexattr                   // removexattr or lremovexattr(Path, Name)
	OpOpen                          // open(Path, Flags) and keep the descriptor in Slot
	OpFdWrite                       // pwrite(Slot, Len bytes of Pattern(Fill) at Off)
	OpFdRead                        // pread the whole file from Slot: the data is compared
	OpFdStat                        // fstat(Slot): the attributes are compared
	OpFdTruncate                    // ftruncate(Slot, Off)
	OpClose                         // close(Slot)
	OpDropCaches                    // echo 2 >/proc/sys/vm/drop_caches: the kernel forgets unused dentries and inodes
	OpRemount                       // close the descriptors, unmount both, mount again over the same layers
	OpFdChmod                       // fchmod(Slot, Mode)
	OpFdChown                       // fchown(Slot, UID, GID)
	OpFdUtimes                      // futimens(Slot, {Atime, Mtime})
	OpFdSetxattr                    // fsetxattr(Slot, Name, Value, Flags)
	OpFdReaddir                     // lseek(Slot, 0) and read the whole directory: the names are compared
	OpFdSeek                        // lseek(Slot, Off, Flags): SEEK_DATA or SEEK_HOLE; the offset is compared
	OpFdFallocate                   // fallocate(Slot, Flags, Off, Len)
	OpFdSync                        // fsync(Slot), or fdatasync with Flags 1
	OpCopyRange                     // copy_file_range(open(Path) at Off, open(Path2, O_WRONLY) at Off2, Len): the count is compared
	OpTmpfile                       // open(Path, O_TMPFILE|O_RDWR|Flags, Mode), pwrite Len bytes of Pattern(Fill) at Off, linkat(fd, "", Path2, AT_EMPTY_PATH) unless Path2 is "", close
	opMax
)

var opNames = [...]string{"", "OpWrite", "OpAppend", "OpTruncate", "OpOpenClose", "OpMkdir", "OpRmdir", "OpUnlink", "OpRename",
	"OpLink", "OpSymlink", "OpMknod", "OpChmod", "OpChown", "OpUtimes", "OpSetxattr", "OpRemovexattr", "OpOpen",
	"OpFdWrite", "OpFdRead", "OpFdStat", "OpFdTruncate", "OpClose", "OpDropCaches", "OpRemount",
	"OpFdChmod", "OpFdChown", "OpFdUtimes", "OpFdSetxattr", "OpFdReaddir", "OpFdSeek", "OpFdFallocate", "OpFdSync", "OpCopyRange", "OpTmpfile"}

func (k OpKind) String() string {
	if int(k) < len(opNames) && k > 0 {
		return opNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// Special time values for OpUtimes.
const (
	UtimeNow  int64 = math.MinInt64
	UtimeOmit int64 = math.MinInt64 + 1
)

// FlagNoFollow in OpSetxattr and OpRemovexattr selects the l* calls.
const FlagNoFollow = 0x100

// NSlots is how many descriptors a sequence can hold open.
const NSlots = 2

// Op is one operation, applied alike to both mounts.
type Op struct {
	Kind     OpKind
	Path     string
	Path2    string
	Off      int64
	Off2     int64
	Len      int
	Fill     byte
	Mode     uint32
	Dev      int
	UID, GID int
	Atime    int64
	Mtime    int64
	Name     string
	Value    string
	Flags    int
	Slot     int
	// As, when not 0, is the user (and group) that performs a path
	// operation, in a helper process with no supplementary groups.
	As int
}

// String is a one-line description for logs.
func (o Op) String() string {
	var b strings.Builder
	b.WriteString(strings.TrimPrefix(o.Kind.String(), "Op"))
	add := func(f string, a ...any) { b.WriteByte(' '); fmt.Fprintf(&b, f, a...) }
	switch o.Kind {
	case OpFdWrite, OpFdRead, OpFdStat, OpFdTruncate, OpClose, OpFdChmod, OpFdChown, OpFdUtimes,
		OpFdSetxattr, OpFdReaddir, OpFdSeek, OpFdFallocate, OpFdSync:
		add("slot=%d", o.Slot)
	case OpDropCaches, OpRemount:
	default:
		add("%q", short(o.Path))
	}
	if o.Path2 != "" || o.Kind == OpRename || o.Kind == OpLink || o.Kind == OpSymlink {
		add("%q", short(o.Path2))
	}
	if o.Kind == OpOpen {
		add("slot=%d", o.Slot)
	}
	if o.Off != 0 {
		add("off=%d", o.Off)
	}
	if o.Off2 != 0 {
		add("off2=%d", o.Off2)
	}
	if o.Len != 0 {
		add("len=%d fill=%d", o.Len, o.Fill)
	}
	if o.Mode != 0 {
		add("mode=%#o", o.Mode)
	}
	if o.Dev != 0 {
		add("dev=%#x", o.Dev)
	}
	if o.Kind == OpChown || o.Kind == OpFdChown {
		add("uid=%d gid=%d", o.UID, o.GID)
	}
	if o.Kind == OpUtimes || o.Kind == OpFdUtimes {
		add("atime=%s mtime=%s", fmtTime(o.Atime), fmtTime(o.Mtime))
	}
	if o.Name != "" {
		add("name=%q", o.Name)
	}
	if o.Value != "" {
		add("value=%q", o.Value)
	}
	if o.Flags != 0 {
		add("flags=%#x", o.Flags)
	}
	if o.As != 0 {
		add("as=%d", o.As)
	}
	return b.String()
}

func fmtTime(t int64) string {
	switch t {
	case UtimeNow:
		return "NOW"
	case UtimeOmit:
		return "OMIT"
	}
	return time.Unix(0, t).UTC().Format("2006-01-02T15:04:05.999999999")
}

// short abbreviates very long strings for logs.
func short(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
	}
	return s
}

// GoString is the op as a Go composite literal, for regress_test.go.
func (o Op) GoString() string {
	var parts []string
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	add("Kind: %s", o.Kind)
	if o.Path != "" {
		add("Path: %s", goStr(o.Path))
	}
	if o.Path2 != "" {
		add("Path2: %s", goStr(o.Path2))
	}
	if o.Off != 0 {
		add("Off: %d", o.Off)
	}
	if o.Off2 != 0 {
		add("Off2: %d", o.Off2)
	}
	if o.Len != 0 {
		add("Len: %d", o.Len)
	}
	if o.Fill != 0 {
		add("Fill: %d", o.Fill)
	}
	if o.Mode != 0 {
		add("Mode: %#o", o.Mode)
	}
	if o.Dev != 0 {
		add("Dev: %#x", o.Dev)
	}
	if o.UID != 0 {
		add("UID: %d", o.UID)
	}
	if o.GID != 0 {
		add("GID: %d", o.GID)
	}
	for _, t := range []struct {
		n string
		v int64
	}{{"Atime", o.Atime}, {"Mtime", o.Mtime}} {
		switch t.v {
		case 0:
		case UtimeNow:
			add("%s: UtimeNow", t.n)
		case UtimeOmit:
			add("%s: UtimeOmit", t.n)
		default:
			add("%s: %d", t.n, t.v)
		}
	}
	if o.Name != "" {
		add("Name: %q", o.Name)
	}
	if o.Value != "" {
		add("Value: %q", o.Value)
	}
	if o.Flags != 0 {
		add("Flags: %#x", o.Flags)
	}
	if o.Slot != 0 {
		add("Slot: %d", o.Slot)
	}
	if o.As != 0 {
		add("As: %d", o.As)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// goStr quotes s, writing the 255-byte names compactly.
func goStr(s string) string {
	if s == longTarget {
		return "longTarget"
	}
	if i := strings.Index(s, longName); i >= 0 {
		return goStr(s[:i]) + " + longName + " + goStr(s[i+len(longName):])
	}
	return fmt.Sprintf("%q", s)
}

// OpGen generates operation sequences biased to the hard cases: names
// from the lower layers (shadowed, whited out, in opaque or merged
// directories, deep), names made by earlier operations, and fresh names
// next to them.
type OpGen struct {
	r           *rand.Rand
	weights     [opMax]int
	lowerPaths  []string // weighted: interesting paths repeated
	dirs        []string
	created     []string
	createdDirs []string
	fresh       int

	// exists is what the generator believes the mounts show: the merged
	// view of the layers, updated as if every operation succeeded. It
	// makes more operations succeed; a wrong belief only makes one fail,
	// which is tested as well.
	exists    map[string]Kind
	existList []string // sorted keys of exists, nil when stale
	open      [NSlots]bool
}

// NewOpGen returns a generator drawing from src over the layers of spec.
func NewOpGen(src rand.Source, spec *LayerSpec) *OpGen {
	g := &OpGen{r: rand.New(src), weights: opWeights}
	layersOf := map[string]int{}
	var whiteouts, opaque []string
	isDir := map[string]bool{"": true}
	for _, e := range spec.Entries {
		layersOf[e.Path]++
		switch e.Kind {
		case KWhiteout:
			whiteouts = append(whiteouts, e.Path)
		case KDir:
			isDir[e.Path] = true
			if e.Opaque {
				opaque = append(opaque, e.Path)
			}
		}
	}
	for _, p := range spec.Paths() {
		w := 1
		if layersOf[p] > 1 {
			w += 2
		}
		for _, wh := range whiteouts {
			if p == wh {
				w += 2
			}
		}
		for _, o := range opaque {
			if p == o || strings.HasPrefix(p, o+"/") {
				w++
			}
		}
		if depth(p) >= 3 {
			w++
		}
		for i := 0; i < w; i++ {
			g.lowerPaths = append(g.lowerPaths, p)
		}
	}
	for p := range isDir {
		g.dirs = append(g.dirs, p)
	}
	g.lowerPaths = append(g.lowerPaths, "") // the root itself, now and then
	sort.Strings(g.dirs)
	g.exists = MergedView(spec)
	return g
}

// MergedView computes what an overlay of spec's layers shows: path to
// kind (hard links as KFile), "" for the root.
func MergedView(spec *LayerSpec) map[string]Kind {
	type key struct {
		layer int
		path  string
	}
	at := map[key]Entry{}
	children := map[key][]string{}
	for _, e := range spec.Entries {
		k := key{e.Layer, e.Path}
		if _, ok := at[k]; !ok {
			at[k] = e
			pk := key{e.Layer, parentOf(e.Path)}
			children[pk] = append(children[pk], e.Path[len(parentOf(e.Path)):])
		}
	}
	view := map[string]Kind{"": KDir}
	var visit func(dir string, layers []int)
	visit = func(dir string, layers []int) {
		seen := map[string]bool{}
		var names []string
		for _, l := range layers {
			for _, n := range children[key{l, dir}] {
				n = strings.TrimPrefix(n, "/")
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p := joinPath(dir, n)
			var dirLayers []int
			for _, l := range layers {
				e, ok := at[key{l, p}]
				if !ok {
					continue
				}
				if e.Kind != KDir {
					if len(dirLayers) == 0 && e.Kind != KWhiteout {
						k := e.Kind
						if k == KHardlink {
							k = KFile
						}
						view[p] = k
					}
					break
				}
				dirLayers = append(dirLayers, l)
				if e.Opaque {
					break
				}
			}
			if len(dirLayers) > 0 {
				view[p] = KDir
				visit(p, dirLayers)
			}
		}
	}
	var all []int
	for l := 0; l < spec.Lowers; l++ {
		all = append(all, l)
	}
	visit("", all)
	return view
}

// existing returns the believed-existing paths, sorted.
func (g *OpGen) existing() []string {
	if g.existList == nil {
		for p := range g.exists {
			g.existList = append(g.existList, p)
		}
		sort.Strings(g.existList)
	}
	return g.existList
}

// pickExisting picks a believed-existing path, of a directory when dir
// is true, of anything else otherwise; "" and false when there is none.
func (g *OpGen) pickExisting(dir bool) (string, bool) {
	var cands []string
	for _, p := range g.existing() {
		if (g.exists[p] == KDir) == dir && (p != "" || g.r.IntN(20) == 0) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return "", false
	}
	return g.pick(cands), true
}

// believe updates the belief as if o succeeded.
func (g *OpGen) believe(o Op) {
	add := func(p string, k Kind) {
		if _, ok := g.exists[p]; !ok && g.exists[parentOf(p)] == KDir && len(baseName(p)) <= 255 {
			g.exists[p] = k
			g.existList = nil
		}
	}
	subtree := func(p string) []string {
		var out []string
		for _, q := range g.existing() {
			if q == p || strings.HasPrefix(q, p+"/") {
				out = append(out, q)
			}
		}
		return out
	}
	switch o.Kind {
	case OpWrite:
		add(o.Path, KFile)
	case OpOpenClose:
		if o.Flags&unix.O_CREAT != 0 {
			add(o.Path, KFile)
		}
	case OpMkdir:
		add(o.Path, KDir)
	case OpMknod:
		add(o.Path, KFifo)
	case OpSymlink:
		add(o.Path, KSymlink)
	case OpLink:
		if k, ok := g.exists[o.Path]; ok && k != KDir {
			add(o.Path2, k)
		}
	case OpTmpfile:
		if g.exists[o.Path] == KDir && o.Path2 != "" && o.Flags&unix.O_EXCL == 0 {
			add(o.Path2, KFile)
		}
	case OpUnlink:
		if k, ok := g.exists[o.Path]; ok && k != KDir {
			delete(g.exists, o.Path)
			g.existList = nil
		}
	case OpRmdir:
		if g.exists[o.Path] == KDir && len(subtree(o.Path)) == 1 && o.Path != "" {
			delete(g.exists, o.Path)
			g.existList = nil
		}
	case OpRename:
		src, dst := o.Path, o.Path2
		sk, sok := g.exists[src]
		dk, dok := g.exists[dst]
		exchange := o.Flags == unix.RENAME_EXCHANGE
		switch {
		case !sok, src == "", dst == "", src == dst, g.exists[parentOf(dst)] != KDir,
			strings.HasPrefix(dst, src+"/"), strings.HasPrefix(src, dst+"/"),
			exchange && !dok, o.Flags == unix.RENAME_NOREPLACE && dok,
			!exchange && dok && (sk == KDir) != (dk == KDir):
			return
		}
		moved := map[string]Kind{}
		for _, q := range subtree(src) {
			moved[dst+q[len(src):]] = g.exists[q]
			delete(g.exists, q)
		}
		for _, q := range subtree(dst) {
			if o.Flags == unix.RENAME_EXCHANGE {
				moved[src+q[len(dst):]] = g.exists[q]
			}
			delete(g.exists, q)
		}
		for q, k := range moved {
			g.exists[q] = k
		}
		g.existList = nil
	case OpRemount:
		g.open = [NSlots]bool{}
	}
}

func baseName(p string) string { return strings.TrimPrefix(p[len(parentOf(p)):], "/") }

// GenOps generates n operations from seed over spec's layers.
func GenOps(seed int64, spec *LayerSpec, n int) []Op {
	return GenOpsFocus(seed, spec, n, "")
}

// Focuses are alternative operation mixes for GenOpsFocus: "" is the
// default mix; the others concentrate on one area.
var Focuses = map[string]map[OpKind]int{
	"links": {OpLink: 10, OpRename: 10, OpUnlink: 6, OpWrite: 4, OpOpenClose: 2, OpOpen: 3, OpFdWrite: 2,
		OpFdStat: 3, OpFdRead: 2, OpClose: 1, OpChmod: 2, OpDropCaches: 1, OpRemount: 1, OpTruncate: 2, OpTmpfile: 3},
	"dirs": {OpMkdir: 10, OpRmdir: 8, OpRename: 12, OpWrite: 4, OpUnlink: 6, OpOpen: 2, OpFdReaddir: 3,
		OpSymlink: 2, OpMknod: 2, OpDropCaches: 1, OpRemount: 1, OpUtimes: 2, OpChmod: 2},
	"attrs": {OpChmod: 8, OpChown: 8, OpUtimes: 8, OpSetxattr: 8, OpRemovexattr: 6, OpOpen: 3, OpFdChmod: 3,
		OpFdChown: 3, OpFdUtimes: 3, OpFdSetxattr: 3, OpFdStat: 3, OpWrite: 3, OpTruncate: 2, OpRename: 2, OpLink: 2},
	"data": {OpWrite: 10, OpAppend: 5, OpTruncate: 6, OpOpenClose: 4, OpOpen: 6, OpFdWrite: 8, OpFdRead: 6,
		OpFdTruncate: 4, OpFdSeek: 4, OpFdFallocate: 4, OpFdSync: 2, OpFdStat: 3, OpClose: 2, OpRename: 3,
		OpUnlink: 2, OpLink: 2, OpDropCaches: 1, OpRemount: 1, OpCopyRange: 4, OpTmpfile: 2},
}

// GenOpsFocus is GenOps with the operation mix of Focuses[focus].
func GenOpsFocus(seed int64, spec *LayerSpec, n int, focus string) []Op {
	g := NewOpGen(rand.NewPCG(uint64(seed), 0x0BE7A7E5), spec)
	if f, ok := Focuses[focus]; ok {
		g.weights = [opMax]int{}
		for k, w := range f {
			g.weights[k] = w
		}
	}
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = g.Next()
	}
	return ops
}

func (g *OpGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *OpGen) freshName() string {
	r := g.r
	switch x := r.IntN(100); {
	case x < 40:
		return plainNames[r.IntN(len(plainNames))]
	case x < 60:
		return oddNames[r.IntN(len(oddNames))]
	case x < 62:
		return longName + "x" // 256 bytes: ENAMETOOLONG
	case x < 63:
		// Made in the upper layer, where they are ordinary names for both
		// (only lower layers hold OCI markers).
		return []string{".wh.a", ".wh..wh..opq"}[r.IntN(2)]
	default:
		g.fresh++
		return fmt.Sprintf("new%d", g.fresh%8)
	}
}

func (g *OpGen) dir() string {
	switch x := g.r.IntN(10); {
	case x < 6:
		if p, ok := g.pickExisting(true); ok {
			return p
		}
	case x < 8 && len(g.createdDirs) > 0:
		return g.pick(g.createdDirs)
	}
	return g.pick(g.dirs)
}

// path picks an operand path: usually one that exists.
func (g *OpGen) path() string { return g.pathPref(g.r.IntN(2) == 0) }

// pathNew picks a path for a new object: usually a fresh name in an
// existing directory.
func (g *OpGen) pathNew() string {
	if g.r.IntN(10) < 6 {
		return joinPath(g.dir(), g.freshName())
	}
	return g.path()
}

// pathPref picks an operand path, existing ones of a directory (dir) or
// not preferred.
func (g *OpGen) pathPref(dir bool) string {
	switch x := g.r.IntN(100); {
	case x < 45:
		if p, ok := g.pickExisting(dir); ok {
			return p
		}
		return g.pick(g.lowerPaths)
	case x < 57 && len(g.lowerPaths) > 0:
		return g.pick(g.lowerPaths)
	case x < 67 && len(g.created) > 0:
		return g.pick(g.created)
	case x < 92:
		return joinPath(g.dir(), g.freshName())
	default:
		p := "deep"
		for i := 0; i < g.r.IntN(7); i++ {
			p += fmt.Sprintf("/d%d", i)
		}
		return joinPath(p, g.freshName())
	}
}

// target picks a second path for rename and link: often a sibling or a
// name from the layers, sometimes inside the source (EINVAL).
func (g *OpGen) target(src string) string {
	switch x := g.r.IntN(100); {
	case x < 25:
		return joinPath(parentOf(src), g.freshName())
	case x < 30:
		return joinPath(src, g.freshName())
	default:
		return g.path()
	}
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func (g *OpGen) made(p string, dir bool) {
	g.created = append(g.created, p)
	if dir {
		g.createdDirs = append(g.createdDirs, p)
	}
	if len(g.created) > 64 {
		g.created = g.created[1:]
	}
	if len(g.createdDirs) > 32 {
		g.createdDirs = g.createdDirs[1:]
	}
}

// explicitTime is a time far from now: before 2020, before 1970 or
// after 2100.
func (g *OpGen) explicitTime() int64 {
	r := g.r
	switch x := r.IntN(100); {
	case x < 4:
		return UtimeNow
	case x < 8:
		return -int64(r.IntN(300e6))*1e9 - int64(r.IntN(1e9)) // 1960s
	case x < 14:
		return time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() + r.Int64N(int64(50*365*24*time.Hour))
	case x < 18:
		return oldTime(r) / 1e9 * 1e9 // whole seconds
	default:
		return oldTime(r)
	}
}

var (
	writeOffs  = []int64{0, 0, 0, 1, 100, 4095, 4096, 5000, 65536, 70000, 1 << 20}
	writeLens  = []int{0, 1, 10, 100, 4096, 9000}
	truncSizes = []int64{0, 0, 1, 50, 4096, 10000, 100000}
	setModes   = []uint32{0644, 0600, 0755, 0700, 0444, 0000, 04755, 02755, 01777, 06777, 0640}
	openFlags  = []int{unix.O_WRONLY, unix.O_RDWR, unix.O_RDONLY, unix.O_WRONLY | unix.O_TRUNC, unix.O_RDONLY | unix.O_TRUNC, unix.O_WRONLY | unix.O_CREAT, unix.O_RDWR | unix.O_CREAT | unix.O_EXCL}
	holdFlags  = []int{unix.O_RDONLY, unix.O_RDONLY, unix.O_WRONLY, unix.O_RDWR, unix.O_RDWR | unix.O_APPEND, unix.O_RDWR | unix.O_TRUNC}
	userXattrs = []string{"user.x0", "user.x1", "user.x2", "user.new"}
)

// xattrName is mostly a user.* name, rarely a trusted.* one and more
// rarely one in the overlay's own namespace.
func (g *OpGen) xattrName() string {
	switch x := g.r.IntN(40); {
	case x == 0:
		return []string{"trusted.overlay.opaque", "user.overlay.opaque"}[g.r.IntN(2)]
	case x == 1:
		return []string{"trusted.overlay.x", "user.overlay.x"}[g.r.IntN(2)]
	case x < 4:
		return "trusted.t1"
	default:
		return userXattrs[g.r.IntN(len(userXattrs))]
	}
}

// weights of the operation kinds, indexed by OpKind.
var opWeights = [opMax]int{
	OpWrite: 9, OpAppend: 4, OpTruncate: 6, OpOpenClose: 5, OpMkdir: 7, OpRmdir: 6, OpUnlink: 8,
	OpRename: 14, OpLink: 5, OpSymlink: 4, OpMknod: 4, OpChmod: 5, OpChown: 4, OpUtimes: 8,
	OpSetxattr: 6, OpRemovexattr: 4, OpOpen: 4, OpFdWrite: 3, OpFdRead: 2, OpFdStat: 2,
	OpFdTruncate: 1, OpClose: 2, OpDropCaches: 1, OpRemount: 1,
	OpFdChmod: 1, OpFdChown: 1, OpFdUtimes: 1, OpFdSetxattr: 1, OpFdReaddir: 2, OpFdSeek: 1, OpFdFallocate: 1, OpFdSync: 1,
	OpCopyRange: 2, OpTmpfile: 2,
}

// Next generates one operation.
func (g *OpGen) Next() (o Op) {
	r := g.r
	total := 0
	for _, w := range g.weights {
		total += w
	}
	x := r.IntN(total)
	kind := OpKind(1)
	for k, w := range g.weights {
		if x < w {
			kind = OpKind(k)
			break
		}
		x -= w
	}
	// Descriptor operations need an open descriptor, most of the time.
	var openSlots []int
	for i, ok := range g.open {
		if ok {
			openSlots = append(openSlots, i)
		}
	}
	if kind >= OpFdWrite && kind <= OpClose || kind >= OpFdChmod && kind <= OpFdSync {
		if len(openSlots) == 0 && r.IntN(10) != 0 {
			kind = OpOpen
		}
	}
	o = Op{Kind: kind}
	defer func() {
		if o.Kind >= OpFdWrite && o.Kind <= OpClose || o.Kind >= OpFdChmod && o.Kind <= OpFdSync {
			if len(openSlots) > 0 && r.IntN(10) != 0 {
				o.Slot = openSlots[r.IntN(len(openSlots))]
			}
		}
		switch o.Kind {
		case OpOpen:
			k, ok := g.exists[o.Path]
			g.open[o.Slot] = ok && (k != KDir || o.Flags == unix.O_RDONLY)
		case OpClose:
			g.open[o.Slot] = false
		}
		g.believe(o)
	}()
	switch kind {
	case OpWrite:
		o.Path = g.pathPref(false)
		o.Off = writeOffs[r.IntN(len(writeOffs))]
		o.Len = writeLens[1+r.IntN(len(writeLens)-1)]
		if r.IntN(10) == 0 {
			o.Len = 0
		}
		o.Fill = byte(r.IntN(256))
		o.Mode = []uint32{0644, 0600, 0755, 04755}[r.IntN(4)]
		switch r.IntN(10) {
		case 0:
			o.Flags = unix.O_TRUNC
		case 1:
			o.Flags = unix.O_EXCL
		}
		g.made(o.Path, false)
	case OpAppend:
		o.Path = g.pathPref(false)
		o.Len = writeLens[1+r.IntN(len(writeLens)-1)]
		o.Fill = byte(r.IntN(256))
	case OpTruncate:
		o.Path = g.pathPref(false)
		o.Off = truncSizes[r.IntN(len(truncSizes))]
	case OpOpenClose:
		o.Path = g.pathPref(false)
		o.Flags = openFlags[r.IntN(len(openFlags))]
		if o.Flags&unix.O_CREAT != 0 {
			o.Mode = 0644
			g.made(o.Path, false)
		}
	case OpMkdir:
		o.Path = g.pathNew()
		o.Mode = []uint32{0755, 0755, 0700, 01777, 02775}[r.IntN(5)]
		g.made(o.Path, true)
	case OpRmdir:
		o.Path = g.pathPref(true)
	case OpUnlink:
		o.Path = g.pathPref(false)
	case OpRename:
		o.Path = g.path()
		o.Path2 = g.target(o.Path)
		switch x := r.IntN(100); {
		case x < 20:
			o.Flags = unix.RENAME_NOREPLACE
		case x < 40:
			o.Flags = unix.RENAME_EXCHANGE
		}
		g.made(o.Path2, false)
	case OpLink:
		o.Path = g.pathPref(false)
		o.Path2 = g.pathNew()
		if r.IntN(2) == 0 {
			o.Path2 = g.target(o.Path)
		}
		g.made(o.Path2, false)
	case OpSymlink:
		o.Path = g.pathNew()
		o.Path2 = symlinkTargets[r.IntN(len(symlinkTargets))]
		if r.IntN(3) == 0 {
			o.Path2 = g.path()
		}
		g.made(o.Path, false)
	case OpMknod:
		o.Path = g.pathNew()
		switch x := r.IntN(100); {
		case x < 80:
			o.Mode = unix.S_IFIFO | 0644
		case x < 90:
			o.Mode = unix.S_IFCHR | 0644 // 0/0: a whiteout
		case x < 95:
			o.Mode, o.Dev = unix.S_IFCHR|0666, int(unix.Mkdev(1, 3))
		default:
			o.Mode = unix.S_IFSOCK | 0755
		}
		g.made(o.Path, false)
	case OpChmod:
		o.Path = g.path()
		o.Mode = setModes[r.IntN(len(setModes))]
	case OpChown:
		o.Path = g.path()
		o.UID = owners[r.IntN(len(owners))]
		o.GID = owners[r.IntN(len(owners))]
		if r.IntN(5) == 0 {
			o.UID = -1
		} else if r.IntN(5) == 0 {
			o.GID = -1
		}
		if r.IntN(2) == 0 {
			o.Flags = unix.AT_SYMLINK_NOFOLLOW
		}
	case OpUtimes:
		o.Path = g.path()
		o.Atime, o.Mtime = g.explicitTime(), g.explicitTime()
		if r.IntN(10) == 0 {
			o.Atime = UtimeOmit
		} else if r.IntN(20) == 0 {
			o.Mtime = UtimeOmit
		}
		if r.IntN(2) == 0 {
			o.Flags = unix.AT_SYMLINK_NOFOLLOW
		}
	case OpSetxattr:
		o.Path = g.path()
		o.Name = g.xattrName()
		o.Value = strings.Repeat(string(rune('a'+r.IntN(26))), []int{0, 3, 3, 100}[r.IntN(4)])
		o.Flags = []int{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[r.IntN(4)]
		if r.IntN(2) == 0 {
			o.Flags |= FlagNoFollow
		}
	case OpRemovexattr:
		o.Path = g.path()
		o.Name = g.xattrName()
		if r.IntN(2) == 0 {
			o.Flags |= FlagNoFollow
		}
	case OpOpen:
		o.Flags = holdFlags[r.IntN(len(holdFlags))]
		o.Path = g.pathPref(o.Flags == unix.O_RDONLY && r.IntN(3) == 0)
		o.Slot = r.IntN(NSlots)
	case OpFdWrite:
		o.Slot = r.IntN(NSlots)
		o.Off = writeOffs[r.IntN(len(writeOffs)-1)]
		o.Len = writeLens[1+r.IntN(len(writeLens)-1)]
		o.Fill = byte(r.IntN(256))
	case OpFdRead, OpFdStat, OpClose:
		o.Slot = r.IntN(NSlots)
	case OpFdTruncate:
		o.Slot = r.IntN(NSlots)
		o.Off = truncSizes[r.IntN(len(truncSizes))]
	case OpFdChmod:
		o.Slot = r.IntN(NSlots)
		o.Mode = setModes[r.IntN(len(setModes))]
	case OpFdChown:
		o.Slot = r.IntN(NSlots)
		o.UID, o.GID = owners[r.IntN(len(owners))], owners[r.IntN(len(owners))]
	case OpFdUtimes:
		o.Slot = r.IntN(NSlots)
		o.Atime, o.Mtime = g.explicitTime(), g.explicitTime()
	case OpFdSetxattr:
		o.Slot = r.IntN(NSlots)
		o.Name = g.xattrName()
		o.Value = strings.Repeat("q", r.IntN(20))
		o.Flags = []int{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[r.IntN(4)]
	case OpFdReaddir, OpFdSync:
		o.Slot = r.IntN(NSlots)
		o.Flags = r.IntN(2)
	case OpFdSeek:
		o.Slot = r.IntN(NSlots)
		o.Off = writeOffs[r.IntN(len(writeOffs))]
		o.Flags = []int{unix.SEEK_DATA, unix.SEEK_HOLE}[r.IntN(2)]
	case OpCopyRange:
		o.Path = g.pathPref(false)
		o.Path2 = g.pathPref(false)
		if r.IntN(4) == 0 {
			o.Path2 = o.Path
		}
		o.Off = writeOffs[r.IntN(len(writeOffs))]
		o.Off2 = writeOffs[r.IntN(len(writeOffs))]
		o.Len = writeLens[1+r.IntN(len(writeLens)-1)]
	case OpTmpfile:
		o.Path = g.dir()
		o.Off = writeOffs[r.IntN(len(writeOffs))]
		o.Len = writeLens[r.IntN(len(writeLens))]
		o.Fill = byte(r.IntN(256))
		o.Mode = []uint32{0644, 0600, 0755, 02755}[r.IntN(4)]
		switch x := r.IntN(10); {
		case x == 0: // never linked
		case x == 1: // not linkable
			o.Flags = unix.O_EXCL
			o.Path2 = joinPath(o.Path, g.freshName())
		case x < 6:
			o.Path2 = joinPath(o.Path, g.freshName())
			g.made(o.Path2, false)
		default:
			o.Path2 = g.pathNew()
			g.made(o.Path2, false)
		}
	case OpFdFallocate:
		o.Slot = r.IntN(NSlots)
		o.Off = writeOffs[r.IntN(len(writeOffs)-1)]
		o.Len = []int{1, 100, 4096, 8192, 70000}[r.IntN(5)]
		o.Flags = []int{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE}[r.IntN(3)]
	}
	if o.Kind <= OpRemovexattr && r.IntN(100) < 15 {
		o.As = []int{1000, 12345}[r.IntN(2)]
	}
	return o
}

// byteSource is a rand.Source that reads fuzz input; once the input is
// used up it goes on with a fixed pseudo-random stream (zeros would make
// rejection sampling loop forever).
type byteSource struct {
	data []byte
	off  int
	rest *rand.PCG
}

func (s *byteSource) Uint64() uint64 {
	if s.off >= len(s.data) {
		if s.rest == nil {
			s.rest = rand.NewPCG(uint64(len(s.data)), 0xF022)
		}
		return s.rest.Uint64()
	}
	var b [8]byte
	s.off += copy(b[:], s.data[s.off:])
	return binary.LittleEndian.Uint64(b[:])
}

func (s *byteSource) done() bool { return s.off >= len(s.data) }

// DecodeOps turns fuzz input into a layer seed and an operation sequence
// (at most maxOps): the input is the entropy of the same biased
// generator GenOps uses.
func DecodeOps(data []byte, maxOps int) (layerSeed int64, ops []Op) {
	if len(data) == 0 {
		return 0, nil
	}
	layerSeed = int64(data[0] % 32)
	src := &byteSource{data: data[1:]}
	g := NewOpGen(src, GenLayers(layerSeed, GenOptions{}))
	for !src.done() && len(ops) < maxOps {
		ops = append(ops, g.Next())
	}
	return layerSeed, ops
}

// Result is what an operation returned on one mount.
type Result struct {
	Errno unix.Errno
	Data  string // reads: length and hash; fstat: attributes
}

func (r Result) String() string {
	s := "ok"
	if r.Errno != 0 {
		s = fmt.Sprintf("%s (%d)", unix.ErrnoName(r.Errno), int(r.Errno))
	}
	if r.Data != "" {
		s += " " + r.Data
	}
	return s
}

// Side is one mount that operations are applied to, with its open
// descriptors.
type Side struct {
	Root string
	fds  [NSlots]int
}

// NewSide returns a Side for the mount at root.
func NewSide(root string) *Side {
	s := &Side{Root: root}
	for i := range s.fds {
		s.fds[i] = -1
	}
	return s
}

// CloseAll closes the held descriptors.
func (s *Side) CloseAll() {
	for i, fd := range s.fds {
		if fd >= 0 {
			unix.Close(fd)
			s.fds[i] = -1
		}
	}
}

func (s *Side) abs(p string) string {
	if p == "" {
		return s.Root
	}
	return s.Root + "/" + p
}

func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func openNB(p string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(p, flags|unix.O_NONBLOCK|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func timespec(t int64) unix.Timespec {
	switch t {
	case UtimeNow:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case UtimeOmit:
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t)
}

// RunAs performs a path operation as another user. The tests set it to
// run a helper process; without it operations run as the caller.
var RunAs func(root string, o Op) Result

// Apply performs op on the side's mount.
func (s *Side) Apply(o Op) Result {
	if o.As != 0 && o.Kind <= OpRemovexattr && RunAs != nil {
		return RunAs(s.Root, o)
	}
	p := s.abs(o.Path)
	var err error
	switch o.Kind {
	case OpWrite:
		var fd int
		if fd, err = openNB(p, unix.O_WRONLY|unix.O_CREAT|o.Flags, o.Mode); err == nil {
			err = pwriteAll(fd, Pattern(o.Fill, o.Off, o.Len), o.Off)
			if cerr := unix.Close(fd); err == nil {
				err = cerr
			}
		}
	case OpAppend:
		var fd int
		if fd, err = openNB(p, unix.O_WRONLY|unix.O_APPEND, 0); err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil {
				_, err = unix.Write(fd, Pattern(o.Fill, st.Size, o.Len))
			}
			if cerr := unix.Close(fd); err == nil {
				err = cerr
			}
		}
	case OpTruncate:
		err = unix.Truncate(p, o.Off)
	case OpOpenClose:
		var fd int
		if fd, err = openNB(p, o.Flags, o.Mode); err == nil {
			err = unix.Close(fd)
		}
	case OpMkdir:
		err = unix.Mkdir(p, o.Mode)
	case OpRmdir:
		err = unix.Rmdir(p)
	case OpUnlink:
		err = unix.Unlink(p)
	case OpRename:
		err = unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, s.abs(o.Path2), uint(o.Flags))
	case OpLink:
		err = unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, s.abs(o.Path2), 0)
	case OpSymlink:
		err = unix.Symlink(o.Path2, p)
	case OpMknod:
		err = unix.Mknod(p, o.Mode, o.Dev)
	case OpChmod:
		err = unix.Chmod(p, o.Mode)
	case OpChown:
		err = unix.Fchownat(unix.AT_FDCWD, p, o.UID, o.GID, o.Flags)
	case OpUtimes:
		err = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{timespec(o.Atime), timespec(o.Mtime)}, o.Flags)
	case OpSetxattr:
		if o.Flags&FlagNoFollow != 0 {
			err = unix.Lsetxattr(p, o.Name, []byte(o.Value), o.Flags&3)
		} else {
			err = unix.Setxattr(p, o.Name, []byte(o.Value), o.Flags&3)
		}
	case OpRemovexattr:
		if o.Flags&FlagNoFollow != 0 {
			err = unix.Lremovexattr(p, o.Name)
		} else {
			err = unix.Removexattr(p, o.Name)
		}
	case OpOpen:
		if s.fds[o.Slot] >= 0 {
			unix.Close(s.fds[o.Slot])
			s.fds[o.Slot] = -1
		}
		var fd int
		if fd, err = openNB(p, o.Flags, 0); err == nil {
			s.fds[o.Slot] = fd
		}
	case OpFdWrite, OpFdRead, OpFdStat, OpFdTruncate, OpClose, OpFdChmod, OpFdChown, OpFdUtimes,
		OpFdSetxattr, OpFdReaddir, OpFdSeek, OpFdFallocate, OpFdSync:
		return s.applyFd(o)
	case OpCopyRange:
		return s.copyRange(p, o)
	case OpTmpfile:
		return s.tmpfile(p, o)
	default:
		err = unix.EINVAL
	}
	return Result{Errno: errnoOf(err)}
}

// copyRange copies with one copy_file_range(2) call, as OpCopyRange.
func (s *Side) copyRange(p string, o Op) Result {
	in, err := openNB(p, unix.O_RDONLY, 0)
	if err != nil {
		return Result{Errno: errnoOf(err)}
	}
	defer unix.Close(in)
	out, err := openNB(s.abs(o.Path2), unix.O_WRONLY, 0)
	if err != nil {
		return Result{Errno: errnoOf(err)}
	}
	roff, woff := o.Off, o.Off2
	n, err := unix.CopyFileRange(in, &roff, out, &woff, o.Len, 0)
	if cerr := unix.Close(out); err == nil {
		err = cerr
	}
	if err != nil {
		return Result{Errno: errnoOf(err), Data: copyFailed}
	}
	return Result{Data: fmt.Sprintf("copied %d", n)}
}

// tmpfile makes an unnamed file in directory p and links it, as
// OpTmpfile. The data names the step that failed, if one did.
func (s *Side) tmpfile(p string, o Op) Result {
	fd, err := unix.Open(p, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC|o.Flags, o.Mode)
	if err != nil {
		return Result{Errno: errnoOf(err), Data: "not opened"}
	}
	defer unix.Close(fd)
	if err := pwriteAll(fd, Pattern(o.Fill, o.Off, o.Len), o.Off); err != nil {
		return Result{Errno: errnoOf(err), Data: "not written"}
	}
	if o.Path2 == "" {
		return Result{Data: "not linked"}
	}
	if err := unix.Linkat(fd, "", unix.AT_FDCWD, s.abs(o.Path2), unix.AT_EMPTY_PATH); err != nil {
		return Result{Errno: errnoOf(err), Data: "not linked"}
	}
	return Result{Data: "linked"}
}

// copyFailed is the data of an OpCopyRange whose copy failed after both
// files were opened.
const copyFailed = "opened, not copied"

func (s *Side) applyFd(o Op) Result {
	fd := s.fds[o.Slot]
	if fd < 0 {
		return Result{Errno: unix.EBADF}
	}
	var err error
	switch o.Kind {
	case OpFdWrite:
		err = pwriteAll(fd, Pattern(o.Fill, o.Off, o.Len), o.Off)
	case OpFdTruncate:
		err = unix.Ftruncate(fd, o.Off)
	case OpClose:
		err = unix.Close(fd)
		s.fds[o.Slot] = -1
	case OpFdChmod:
		err = unix.Fchmod(fd, o.Mode)
	case OpFdChown:
		err = unix.Fchown(fd, o.UID, o.GID)
	case OpFdUtimes:
		err = futimens(fd, timespec(o.Atime), timespec(o.Mtime))
	case OpFdSetxattr:
		err = unix.Fsetxattr(fd, o.Name, []byte(o.Value), o.Flags)
	case OpFdSync:
		if o.Flags == 1 {
			err = unix.Fdatasync(fd)
		} else {
			err = unix.Fsync(fd)
		}
	case OpFdFallocate:
		err = unix.Fallocate(fd, uint32(o.Flags), o.Off, int64(o.Len))
	case OpFdSeek:
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// Not compared: see "fuse-dir-seek" in DIFFERENCES.md.
			return Result{Data: "directory"}
		}
		off, err := unix.Seek(fd, o.Off, o.Flags)
		if err != nil {
			return Result{Errno: errnoOf(err)}
		}
		return Result{Data: fmt.Sprintf("offset %d", off)}
	case OpFdReaddir:
		if _, err := unix.Seek(fd, 0, 0); err != nil {
			return Result{Errno: errnoOf(err)}
		}
		var names []string
		buf := make([]byte, 32<<10)
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				return Result{Errno: errnoOf(err)}
			}
			if n <= 0 {
				break
			}
			for _, e := range parseDirents(buf[:n]) {
				var st unix.Stat_t
				if e.dtype == unix.DT_CHR && unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW) == unix.ENOENT {
					continue // a leaked lower whiteout (see DIFFERENCES.md)
				}
				names = append(names, e.name)
			}
		}
		sort.Strings(names)
		return Result{Data: fmt.Sprintf("%q", names)}
	case OpFdRead:
		var buf []byte
		chunk := make([]byte, 256<<10)
		for off := int64(0); off < 4<<20; {
			n, err := unix.Pread(fd, chunk, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return Result{Errno: errnoOf(err)}
			}
			if n == 0 {
				break
			}
			buf = append(buf, chunk[:n]...)
			off += int64(n)
		}
		return Result{Data: fmt.Sprintf("read %d bytes sha256:%x", len(buf), sha256.Sum256(buf))}
	case OpFdStat:
		var st unix.Stat_t
		if err = unix.Fstat(fd, &st); err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				st.Size, st.Nlink = 0, 0 // not compared for directories
			}
			return Result{Data: fmt.Sprintf("mode=%#o uid=%d gid=%d size=%d nlink=%d mtime=%s",
				st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, timeClass(st.Mtim))}
		}
	}
	return Result{Errno: errnoOf(err)}
}

func futimens(fd int, atime, mtime unix.Timespec) error {
	ts := [2]unix.Timespec{atime, mtime}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
