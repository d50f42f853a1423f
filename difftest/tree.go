package difftest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Obj is what a mount shows of one path.
type Obj struct {
	Type     uint32 // S_IFMT bits
	Perm     uint32 // 07777 bits
	UID, GID uint32
	Size     int64
	Nlink    uint64
	Mtime    unix.Timespec
	Rdev     uint64
	Sum      string            // files: content hash; symlinks: target
	Xattrs   map[string]string // every name listed (the overlay's own are hidden by both)
	Ino      uint64            // never compared across mounts
	DType    uint8             // d_type from the parent's readdir
	DIno     uint64            // d_ino from the parent's readdir
	Err      string            // what failed while looking at the path
}

func (o *Obj) desc() string {
	if o.Err != "" {
		return strings.TrimSpace(o.Err)
	}
	return typeName(o.Type)
}

// Tree is a snapshot of a whole mount, by relative path ("" is the root).
type Tree map[string]*Obj

// Snapshot walks the tree at root without following symlinks.
func Snapshot(root string) Tree {
	t := Tree{}
	o := statObj(root)
	t[""] = o
	if o.Type == unix.S_IFDIR {
		walkDir(t, root, "")
	}
	return t
}

func statObj(p string) *Obj {
	o := &Obj{}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		o.Err = "lstat: " + errName(err)
		return o
	}
	o.Type, o.Perm = st.Mode&unix.S_IFMT, st.Mode&07777
	o.UID, o.GID, o.Size, o.Nlink = st.Uid, st.Gid, st.Size, st.Nlink
	o.Mtime, o.Ino = st.Mtim, st.Ino
	if o.Type == unix.S_IFCHR || o.Type == unix.S_IFBLK {
		o.Rdev = st.Rdev
	}
	switch o.Type {
	case unix.S_IFREG:
		data, err := readFile(p)
		if err != nil {
			o.Err = "read: " + errName(err)
		} else {
			o.Sum = fmt.Sprintf("%x", sha256.Sum256(data))[:16]
			if int64(len(data)) != st.Size {
				o.Err = fmt.Sprintf("read %d bytes, size %d", len(data), st.Size)
			}
		}
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlink(p, buf)
		if err != nil {
			o.Err = "readlink: " + errName(err)
		} else {
			o.Sum = string(buf[:n])
		}
	}
	names, err := listXattr(p)
	if err != nil {
		o.Err += " listxattr: " + errName(err)
	}
	for _, n := range names {
		if o.Xattrs == nil {
			o.Xattrs = map[string]string{}
		}
		v, err := getXattr(p, n)
		if err != nil {
			v = "<" + errName(err) + ">"
		}
		o.Xattrs[n] = v
	}
	return o
}

func errName(err error) string {
	if e, ok := err.(unix.Errno); ok {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func readFile(p string) ([]byte, error) {
	fd, err := openNB(p, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 256<<10)
	for len(out) < 16<<20 {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
	}
	return out, nil
}

func listXattr(p string) ([]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// direntry is one entry of a real readdir.
type direntry struct {
	name  string
	ino   uint64
	dtype uint8
}

func readDir(p string) ([]direntry, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []direntry
	buf := make([]byte, 32<<10)
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
		out = append(out, parseDirents(buf[:n])...)
	}
}

// parseDirents decodes linux_dirent64 records, without "." and "..".
func parseDirents(buf []byte) []direntry {
	var out []direntry
	for off := 0; off+19 <= len(buf); {
		rec := buf[off:]
		ino := binary.LittleEndian.Uint64(rec[0:])
		reclen := int(binary.LittleEndian.Uint16(rec[16:]))
		if reclen < 19 || reclen > len(rec) {
			break
		}
		name := rec[19:reclen]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			name = name[:i]
		}
		off += reclen
		if s := string(name); s != "." && s != ".." {
			out = append(out, direntry{s, ino, rec[18]})
		}
	}
	return out
}

func walkDir(t Tree, root, rel string) {
	p := root
	if rel != "" {
		p = root + "/" + rel
	}
	ents, err := readDir(p)
	if err != nil {
		t[rel].Err += " readdir: " + errName(err)
		return
	}
	seen := map[string]bool{}
	for _, e := range ents {
		crel := joinPath(rel, e.name)
		if seen[e.name] {
			t[crel].Err += " listed twice"
			continue
		}
		seen[e.name] = true
		o := statObj(p + "/" + e.name)
		o.DType, o.DIno = e.dtype, e.ino
		t[crel] = o
		if o.Type == unix.S_IFDIR {
			walkDir(t, root, crel)
		}
	}
}

// recentWindow: a time this close to now was set by the clock, not by an
// explicit time of the generators (which keep away from the present).
const recentWindow = 24 * time.Hour

// timeClass is "recent" for clock-set times, else the exact time.
func timeClass(ts unix.Timespec) string {
	d := time.Since(time.Unix(ts.Sec, ts.Nsec))
	if d < recentWindow && d > -recentWindow {
		return "recent"
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

// CmpOpts selects what Diff compares.
type CmpOpts struct {
	// ExactTimes compares mtimes exactly: for two views of the same real
	// files. Otherwise clock-set times (both "recent") match each other.
	ExactTimes bool
	// DirentInoA checks, in the first tree only, that readdir's d_ino
	// equals st_ino (the kernel itself does not always manage it: see
	// "inode-numbers" in DIFFERENCES.md).
	DirentInoA bool
}

var typeNames = map[uint32]string{unix.S_IFREG: "file", unix.S_IFDIR: "dir", unix.S_IFLNK: "symlink",
	unix.S_IFIFO: "fifo", unix.S_IFCHR: "chardev", unix.S_IFBLK: "blockdev", unix.S_IFSOCK: "socket"}

func typeName(t uint32) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type%#o", t)
}

// Diff lists the differences between two trees, by path; a and b name
// the two sides in the messages. Inode numbers are never compared
// across the trees; directory sizes, atimes and ctimes neither.
func Diff(ta, tb Tree, a, b string, o CmpOpts) []string {
	var out []string
	paths := map[string]bool{}
	for p := range ta {
		paths[p] = true
	}
	for p := range tb {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		x, y := ta[p], tb[p]
		q := fmt.Sprintf("%q", p)
		switch {
		case x == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%s)", q, b, y.desc()))
			continue
		case y == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%s)", q, a, x.desc()))
			continue
		}
		d := func(field string, vx, vy any) {
			out = append(out, fmt.Sprintf("%s: %s: %s has %v, %s has %v", q, field, a, vx, b, vy))
		}
		if x.Err != y.Err {
			d("error", x.Err, y.Err)
		}
		if x.Type != y.Type {
			d("type", typeName(x.Type), typeName(y.Type))
			continue
		}
		if x.Perm != y.Perm {
			d("mode", fmt.Sprintf("%#o", x.Perm), fmt.Sprintf("%#o", y.Perm))
		}
		if x.UID != y.UID || x.GID != y.GID {
			d("owner", fmt.Sprintf("%d:%d", x.UID, x.GID), fmt.Sprintf("%d:%d", y.UID, y.GID))
		}
		isDir := x.Type == unix.S_IFDIR
		if !isDir && x.Size != y.Size {
			d("size", x.Size, y.Size)
		}
		if !isDir && x.Nlink != y.Nlink {
			d("nlink", x.Nlink, y.Nlink)
		}
		if x.Rdev != y.Rdev {
			d("rdev", x.Rdev, y.Rdev)
		}
		if x.Sum != y.Sum {
			if x.Type == unix.S_IFLNK {
				d("target", fmt.Sprintf("%q", x.Sum), fmt.Sprintf("%q", y.Sum))
			} else {
				d("content", x.Sum, y.Sum)
			}
		}
		if fx, fy := fmtXattrs(x.Xattrs), fmtXattrs(y.Xattrs); fx != fy {
			d("xattrs", fx, fy)
		}
		if !timesMatch(x.Mtime, y.Mtime, o.ExactTimes) {
			d("mtime", fmtTs(x.Mtime), fmtTs(y.Mtime))
		}
		if p != "" && x.DType != y.DType {
			d("d_type", x.DType, y.DType)
		}
	}
	if o.DirentInoA {
		out = append(out, direntInoDiffs(ta, a)...)
	}
	return out
}

// direntInoDiffs checks that readdir and stat agree on inode numbers, as
// the kernel's overlayfs guarantees when all layers share a file system.
func direntInoDiffs(t Tree, name string) []string {
	var out []string
	for p, o := range t {
		if p != "" && o.Err == "" && o.DIno != o.Ino {
			out = append(out, fmt.Sprintf("%q: %s: readdir d_ino %d != st_ino %d", p, name, o.DIno, o.Ino))
		}
	}
	sort.Strings(out)
	return out
}

func fmtXattrs(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range ks {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}

func timesMatch(x, y unix.Timespec, exact bool) bool {
	if x == y {
		return true
	}
	return !exact && timeClass(x) == "recent" && timeClass(y) == "recent"
}

func fmtTs(ts unix.Timespec) string {
	s := time.Unix(ts.Sec, ts.Nsec).UTC().Format("2006-01-02T15:04:05.000000000")
	if timeClass(ts) == "recent" {
		s += "(recent)"
	}
	return s
}

// RawObj is how a layer directory stores one path.
type RawObj struct {
	Type     uint32
	Whiteout bool
	Opaque   bool
}

// RawLayer lists a real layer directory (an upper layer after unmount).
func RawLayer(root string) (map[string]RawObj, error) { return RawLayerNS(root, TrustedNS) }

// RawLayerNS is RawLayer with the opaque xattr in namespace ns.
func RawLayerNS(root, ns string) (map[string]RawObj, error) {
	out := map[string]RawObj{}
	var walk func(rel string) error
	walk = func(rel string) error {
		p := root
		if rel != "" {
			p = root + "/" + rel
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			crel := joinPath(rel, e.Name())
			var st unix.Stat_t
			if err := unix.Lstat(root+"/"+crel, &st); err != nil {
				return err
			}
			o := RawObj{Type: st.Mode & unix.S_IFMT}
			o.Whiteout = o.Type == unix.S_IFCHR && st.Rdev == 0
			if o.Type == unix.S_IFDIR {
				v, err := getXattr(root+"/"+crel, ns+"opaque")
				o.Opaque = err == nil && v == "y"
			}
			out[crel] = o
			if o.Type == unix.S_IFDIR {
				if err := walk(crel); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk("")
}

func (o RawObj) String() string {
	switch {
	case o.Whiteout:
		return "whiteout"
	case o.Opaque:
		return "opaque dir"
	}
	return typeName(o.Type)
}

// DiffRaw compares two upper layers structurally: the same paths, the
// same types, whiteouts and opaque directories in the same places.
func DiffRaw(ra, rb map[string]RawObj, a, b string) []string {
	var out []string
	for p, x := range ra {
		y, ok := rb[p]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%q: only in %s (%s)", p, a, x))
		case x != y:
			out = append(out, fmt.Sprintf("%q: %s has %s, %s has %s", p, a, x, b, y))
		}
	}
	for p, y := range rb {
		if _, ok := ra[p]; !ok {
			out = append(out, fmt.Sprintf("%q: only in %s (%s)", p, b, y))
		}
	}
	sort.Strings(out)
	return out
}
