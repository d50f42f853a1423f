package difftest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is the type of a layer entry.
type Kind uint8

// Layer entry kinds.
const (
	KFile     Kind = iota + 1 // regular file with Size bytes of Pattern(Fill)
	KDir                      // directory, maybe Opaque
	KSymlink                  // symbolic link to Target
	KFifo                     // named pipe
	KWhiteout                 // kernel whiteout (char 0/0) or OCI ".wh.NAME"
	KHardlink                 // another name of the file at Target, same layer
)

var kindNames = map[Kind]string{KFile: "KFile", KDir: "KDir", KSymlink: "KSymlink", KFifo: "KFifo", KWhiteout: "KWhiteout", KHardlink: "KHardlink"}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Xattr is one extended attribute of a layer entry.
type Xattr struct{ Name, Value string }

// Entry is one object of one lower layer.
type Entry struct {
	Layer    int    // 0 is the top-most lower layer
	Path     string // relative to the layer root, no leading slash
	Kind     Kind
	Mode     uint32 // permission bits, set-id and sticky bits included
	UID, GID int
	Mtime    int64  // nanoseconds since the epoch (atime is set the same)
	Size     int    // files: content length
	Fill     byte   // files: content pattern (see Pattern)
	Target   string // symlinks: target; hard links: path of a KFile of the same layer
	Opaque   bool   // directories: opaque (trusted.overlay.opaque=y or .wh..wh..opq)
	Xattrs   []Xattr
}

// LayerSpec describes a set of lower layers; the upper layer starts
// empty. It is data, so a failing case can be printed, shrunk and kept
// as a regression test.
type LayerSpec struct {
	Lowers  int
	Entries []Entry
}

// Format is how whiteouts and opaque directories are written.
type Format int

const (
	// Kernel format: whiteouts are char devices 0/0, opaque directories
	// carry trusted.overlay.opaque=y.
	Kernel Format = iota
	// OCI format (image tarballs as extracted): whiteouts are empty files
	// ".wh.NAME", opaque directories hold an empty ".wh..wh..opq".
	OCI
)

// Pattern returns n content bytes that belong at offset off of a file
// written with pattern fill. Every byte depends on fill and on its
// absolute offset, so misplaced data is detected.
func Pattern(fill byte, off int64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		p := uint64(off) + uint64(i)
		x := p*0x9E3779B97F4A7C15 ^ uint64(fill)*0xBF58476D1CE4E5B9
		x ^= x >> 29
		b[i] = byte(x) | 1 // never 0, so data is told apart from holes
	}
	return b
}

// Names used by the generators: short ones collide across layers on
// purpose; the others are the odd names a file system must survive.
var (
	plainNames = []string{"a", "b", "c", "d", "e", "f"}
	oddNames   = []string{
		"sp ace", " lead", "trail ", "-dash", "--", "ünï", "日本語", "x.y", "tab\tname",
		"new\nline", "...", "#%&", longName,
		strings.Repeat("é", 127) + "z", // 255 bytes, 2-byte runes
	}
	longName = strings.Repeat("long-", 51) // 255 bytes, the longest name
)

// GenOptions tunes GenLayers.
type GenOptions struct {
	// Lowers is the number of lower layers; 0 picks 2 or 3.
	Lowers int
	// OCI avoids what the OCI format cannot express (whiteouts of names
	// longer than 251 bytes).
	OCI bool
}

// shape is a name tree the layers draw from, so that the same paths turn
// up in several layers.
type shape struct {
	name     string
	dir      bool
	children []*shape
}

// GenLayers generates a random lower layer set from seed.
func GenLayers(seed int64, o GenOptions) *LayerSpec {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5EED1A7E))
	g := &layerGen{r: r, oci: o.OCI}
	n := o.Lowers
	if n == 0 {
		n = 2 + r.IntN(2)
	}
	g.spec = &LayerSpec{Lowers: n}
	root := &shape{dir: true}
	g.shapeChildren(root, 0)
	// A deep chain, present in every layer most of the time.
	deep := &shape{name: "deep", dir: true}
	cur := deep
	for i := 0; i < 6; i++ {
		c := &shape{name: fmt.Sprintf("d%d", i), dir: true}
		cur.children = append(cur.children, c, &shape{name: "f"})
		cur = c
	}
	cur.children = append(cur.children, &shape{name: "leaf"}, &shape{name: longName})
	root.children = append(root.children, deep)
	for l := 0; l < n; l++ {
		g.fill(l, "", root, 0)
	}
	return g.spec
}

type layerGen struct {
	r     *rand.Rand
	oci   bool
	spec  *LayerSpec
	files []string // files of the current layer, for hard links
	fresh int
}

func (g *layerGen) name() string {
	if g.r.IntN(4) == 0 {
		return oddNames[g.r.IntN(len(oddNames))]
	}
	return plainNames[g.r.IntN(len(plainNames))]
}

func (g *layerGen) shapeChildren(s *shape, depth int) {
	n := 2 + g.r.IntN(4)
	if depth == 0 {
		n = 6 + g.r.IntN(4)
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		nm := g.name()
		if seen[nm] {
			continue
		}
		seen[nm] = true
		c := &shape{name: nm, dir: depth < 3 && g.r.IntN(3) != 0}
		if c.dir {
			g.shapeChildren(c, depth+1)
		}
		s.children = append(s.children, c)
	}
}

// Fixed choices of attributes.
var (
	fileModes = []uint32{0644, 0644, 0600, 0755, 0444, 0640, 0000, 04755, 02755, 06711, 01644}
	dirModes  = []uint32{0755, 0755, 0700, 0555, 0775, 01777, 02755, 0711}
	owners    = []int{0, 0, 1000, 65534, 12345}
)

// oldTime returns a time well away from now: explicit times are then
// never mistaken for "the time of the operation" (see timesEqual).
func oldTime(r *rand.Rand) int64 {
	base := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	return base + r.Int64N(int64(19*365*24*time.Hour)) + int64(r.IntN(1e9))
}

func (g *layerGen) attrs(e *Entry) {
	r := g.r
	switch e.Kind {
	case KDir:
		e.Mode = dirModes[r.IntN(len(dirModes))]
	case KSymlink:
		e.Mode = 0777
	case KFifo:
		e.Mode = []uint32{0644, 0600, 0666}[r.IntN(3)]
	default:
		e.Mode = fileModes[r.IntN(len(fileModes))]
	}
	e.UID = owners[r.IntN(len(owners))]
	e.GID = owners[r.IntN(len(owners))]
	e.Mtime = oldTime(r)
	if (e.Kind == KFile || e.Kind == KDir) && r.IntN(3) == 0 {
		for i := 0; i < 1+r.IntN(2); i++ {
			e.Xattrs = append(e.Xattrs, Xattr{Name: fmt.Sprintf("user.x%d", r.IntN(3)), Value: fmt.Sprintf("v%d-%d", e.Layer, r.IntN(100))})
		}
		e.Xattrs = dedupXattrs(e.Xattrs)
	}
}

func dedupXattrs(xs []Xattr) []Xattr {
	seen := map[string]bool{}
	var out []Xattr
	for _, x := range xs {
		if !seen[x.Name] {
			seen[x.Name] = true
			out = append(out, x)
		}
	}
	return out
}

var symlinkTargets = []string{"a", "b", "c/d", "deep/d0/f", "missing", "/nonexistent-difftest/x", "sp ace", ".", "self",
	longTarget}

// longTarget is the longest symlink target (4095 bytes).
var longTarget = strings.Repeat("t/", 2047) + "t"

func (g *layerGen) fill(layer int, dir string, s *shape, depth int) {
	if dir == "" {
		g.files = nil
	}
	r := g.r
	bottom := layer == g.spec.Lowers-1
	for _, c := range s.children {
		p := joinPath(dir, c.name)
		prob := 55
		if c.name == "deep" || strings.HasPrefix(c.name, "d") && len(c.name) == 2 {
			prob = 85
		}
		if r.IntN(100) >= prob {
			continue
		}
		e := Entry{Layer: layer, Path: p}
		x := r.IntN(100)
		switch {
		case c.dir && x < 75:
			e.Kind = KDir
		case !c.dir && x < 55:
			e.Kind = KFile
		case x < 66:
			e.Kind = KSymlink
		case x < 72:
			e.Kind = KFifo
		case x < 86:
			e.Kind = KWhiteout
		case x < 93 && len(g.files) > 0:
			e.Kind = KHardlink
		case x < 93:
			e.Kind = KFile
		default:
			e.Kind = KDir
		}
		if e.Kind == KWhiteout && (bottom && r.IntN(3) != 0 || g.oci && len(c.name) > 251) {
			e.Kind = KFile
		}
		g.attrs(&e)
		switch e.Kind {
		case KFile:
			e.Size = []int{0, 1, 13, 100, 4096, 5000, 70000}[r.IntN(7)]
			e.Fill = byte(r.IntN(256))
			g.files = append(g.files, p)
		case KSymlink:
			e.Target = symlinkTargets[r.IntN(len(symlinkTargets))]
			if e.Target == "self" {
				e.Target = c.name
			}
		case KHardlink:
			e.Target = g.files[r.IntN(len(g.files))]
			e.Mode, e.UID, e.GID, e.Mtime, e.Xattrs = 0, 0, 0, 0, nil
		case KWhiteout:
			e.Mode, e.UID, e.GID, e.Mtime, e.Xattrs = 0, 0, 0, 0, nil
		case KDir:
			e.Opaque = !bottom && r.IntN(7) == 0
		}
		g.spec.Entries = append(g.spec.Entries, e)
		if e.Kind != KDir {
			continue
		}
		if c.dir {
			g.fill(layer, p, c, depth+1)
		} else {
			// A directory where other layers have a file: a few
			// children of its own.
			for i := 0; i < 1+r.IntN(2); i++ {
				g.fresh++
				f := Entry{Layer: layer, Path: joinPath(p, fmt.Sprintf("n%d", g.fresh)), Kind: KFile}
				g.attrs(&f)
				f.Size, f.Fill = 10+r.IntN(50), byte(r.IntN(256))
				g.spec.Entries = append(g.spec.Entries, f)
			}
		}
	}
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Paths returns every path the spec mentions, in any layer.
func (s *LayerSpec) Paths() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range s.Entries {
		if !seen[e.Path] {
			seen[e.Path] = true
			out = append(out, e.Path)
		}
	}
	sort.Strings(out)
	return out
}

// Without returns a copy of the spec without entry i, the entries below
// it (when it is a directory) and the hard links to it.
func (s *LayerSpec) Without(i int) *LayerSpec {
	gone := s.Entries[i]
	out := &LayerSpec{Lowers: s.Lowers}
	for j, e := range s.Entries {
		if j == i {
			continue
		}
		if e.Layer == gone.Layer && (strings.HasPrefix(e.Path, gone.Path+"/") ||
			e.Kind == KHardlink && (e.Target == gone.Path || strings.HasPrefix(e.Target, gone.Path+"/"))) {
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	return out
}

// Materialize writes the spec's layers into dirs (one per lower, top-most
// first; they must exist and be empty) in format f.
func Materialize(s *LayerSpec, dirs []string, f Format) error {
	return MaterializeNS(s, dirs, f, TrustedNS)
}

// Namespaces of the overlay's own xattrs.
const (
	TrustedNS = "trusted.overlay." // the default
	UserNS    = "user.overlay."    // with the userxattr mount option
)

// MaterializeNS is Materialize with the overlay xattrs (opaque) in
// namespace ns.
func MaterializeNS(s *LayerSpec, dirs []string, f Format, ns string) error {
	if len(dirs) != s.Lowers {
		return fmt.Errorf("materialize: %d dirs for %d layers", len(dirs), s.Lowers)
	}
	for l := 0; l < s.Lowers; l++ {
		var ents []Entry
		for _, e := range s.Entries {
			if e.Layer == l {
				ents = append(ents, e)
			}
		}
		if err := materializeLayer(ents, dirs[l], f, ns); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
	}
	return nil
}

func depth(p string) int { return strings.Count(p, "/") }

func materializeLayer(ents []Entry, root string, f Format, ns string) error {
	sort.SliceStable(ents, func(i, j int) bool { return depth(ents[i].Path) < depth(ents[j].Path) })
	// Objects, parents first; hard links after all files.
	for _, e := range ents {
		p := filepath.Join(root, e.Path)
		var err error
		switch e.Kind {
		case KDir:
			err = os.MkdirAll(p, 0755)
			if err == nil && e.Opaque && f == OCI {
				err = os.WriteFile(filepath.Join(p, ".wh..wh..opq"), nil, 0644)
			}
		case KFile:
			err = os.WriteFile(p, Pattern(e.Fill, 0, e.Size), 0600)
		case KSymlink:
			err = os.Symlink(e.Target, p)
		case KFifo:
			err = unix.Mkfifo(p, 0600)
		case KWhiteout:
			if f == OCI {
				err = os.WriteFile(filepath.Join(filepath.Dir(p), ".wh."+filepath.Base(p)), nil, 0644)
			} else {
				err = unix.Mknod(p, unix.S_IFCHR, 0)
			}
		}
		if err != nil {
			return fmt.Errorf("%q: %w", e.Path, err)
		}
	}
	for _, e := range ents {
		if e.Kind == KHardlink {
			if err := os.Link(filepath.Join(root, e.Target), filepath.Join(root, e.Path)); err != nil {
				return fmt.Errorf("%q: %w", e.Path, err)
			}
		}
	}
	// Attributes: xattrs, owner, then mode (chown clears set-id bits).
	for _, e := range ents {
		if e.Kind == KWhiteout || e.Kind == KHardlink {
			continue
		}
		p := filepath.Join(root, e.Path)
		for _, x := range e.Xattrs {
			if err := unix.Lsetxattr(p, x.Name, []byte(x.Value), 0); err != nil {
				return fmt.Errorf("%q: setxattr %s: %w", e.Path, x.Name, err)
			}
		}
		if e.Kind == KDir && e.Opaque && f == Kernel {
			if err := unix.Lsetxattr(p, ns+"opaque", []byte("y"), 0); err != nil {
				return fmt.Errorf("%q: %w", e.Path, err)
			}
		}
		if err := os.Lchown(p, e.UID, e.GID); err != nil {
			return fmt.Errorf("%q: %w", e.Path, err)
		}
		if e.Kind != KSymlink {
			if err := unix.Chmod(p, e.Mode); err != nil {
				return fmt.Errorf("%q: %w", e.Path, err)
			}
		}
	}
	// Times last, deepest first, so that nothing changes them after; the
	// root gets a fixed time too.
	rootTime := unix.NsecToTimespec(time.Date(2000, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano())
	defer unix.UtimesNanoAt(unix.AT_FDCWD, root, []unix.Timespec{rootTime, rootTime}, 0)
	for i := len(ents) - 1; i >= 0; i-- {
		e := ents[i]
		if e.Kind == KWhiteout || e.Kind == KHardlink {
			continue
		}
		ts := unix.NsecToTimespec(e.Mtime)
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, e.Path), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%q: utimes: %w", e.Path, err)
		}
	}
	return nil
}

// OCIToKernel converts an OCI-format layer in place into the kernel
// format: ".wh..wh..opq" becomes trusted.overlay.opaque=y on its
// directory and ".wh.NAME" a char 0/0 device NAME. Directory times are
// kept.
func OCIToKernel(root string) error { return OCIToKernelNS(root, TrustedNS) }

// OCIToKernelNS is OCIToKernel with the opaque xattr in namespace ns.
func OCIToKernelNS(root, ns string) error {
	type fix struct {
		path string
		st   unix.Stat_t
	}
	var dirs []fix
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		dirs = append(dirs, fix{p, st})
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(d.path)
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasPrefix(n, ".wh.") {
				continue
			}
			p := filepath.Join(d.path, n)
			if err := os.Remove(p); err != nil {
				return err
			}
			if n == ".wh..wh..opq" {
				err = unix.Lsetxattr(d.path, ns+"opaque", []byte("y"), 0)
			} else {
				err = unix.Mknod(filepath.Join(d.path, n[len(".wh."):]), unix.S_IFCHR, 0)
			}
			if err != nil {
				return err
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, []unix.Timespec{d.st.Atim, d.st.Mtim}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}
