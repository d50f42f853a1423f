package overlay_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// stack is a set of layer directories in a test's temporary directory:
// lowers[0] is the top-most lower layer.
type stack struct {
	t      *testing.T
	lowers []string
	upper  string
	work   string
}

// newStack makes nLowers empty lower layers, an upper layer and a work
// directory.
func newStack(t *testing.T, nLowers int) *stack {
	t.Helper()
	root := t.TempDir()
	s := &stack{t: t, upper: root + "/upper", work: root + "/work"}
	for i := 0; i < nLowers; i++ {
		s.lowers = append(s.lowers, root+"/lower"+string(rune('0'+i)))
	}
	for _, d := range append([]string{s.upper, s.work}, s.lowers...) {
		if err := os.Mkdir(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// lower returns the path of lower layer i.
func (s *stack) lower(i int) string { return s.lowers[i] }

// config returns the stack's configuration, writable.
func (s *stack) config() overlay.Config {
	return overlay.Config{Lowers: s.lowers, Upper: s.upper, Work: s.work}
}

// configWithWork returns the stack's config with a fresh work directory,
// so that a second engine can run on the same layers while the first
// holds the work directory's lock.
func (s *stack) configWithWork(t *testing.T) overlay.Config {
	cfg := s.config()
	cfg.Work = t.TempDir()
	return cfg
}

// mount starts an engine on the stack (writable) and closes it at the
// end of the test.
func (s *stack) mount() *overlay.FS {
	s.t.Helper()
	return mountCfg(s.t, s.config())
}

// mountRO starts a read-only engine on the stack's lowers.
func (s *stack) mountRO() *overlay.FS {
	s.t.Helper()
	return mountCfg(s.t, overlay.Config{Lowers: s.lowers})
}

func mountCfg(t *testing.T, cfg overlay.Config) *overlay.FS {
	t.Helper()
	fs, err := overlay.New(cfg)
	if err != nil {
		t.Fatalf("overlay.New: %v", err)
	}
	t.Cleanup(func() { fs.Close() })
	enginesMu.Lock()
	engines[t] = append(engines[t], fs)
	enginesMu.Unlock()
	t.Cleanup(func() {
		enginesMu.Lock()
		delete(engines, t)
		enginesMu.Unlock()
	})
	return fs
}

// engines are the engines each test started, so that checks of the work
// directory can wait for their background removals.
var (
	enginesMu sync.Mutex
	engines   = map[*testing.T][]*overlay.FS{}
)

// build creates entries under dir. Each spec is one of
//
//	"a/b/"          a directory (parents are made as needed)
//	"a/b/*"         an opaque directory a/b (trusted.overlay.opaque=y)
//	"a/f=content"   a regular file
//	"a/l->target"   a symlink
//	"!a/x"          a kernel whiteout (character device 0/0)
//	"a/|fifo"       a named pipe "fifo" in a
func build(t *testing.T, dir string, specs ...string) {
	t.Helper()
	for _, spec := range specs {
		var err error
		switch {
		case strings.HasPrefix(spec, "!"):
			p := filepath.Join(dir, spec[1:])
			mkParents(t, p)
			err = unix.Mknod(p, unix.S_IFCHR|0644, 0)
		case strings.HasSuffix(spec, "/*"):
			p := filepath.Join(dir, strings.TrimSuffix(spec, "/*"))
			if err = os.MkdirAll(p, 0755); err == nil {
				err = unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0)
			}
		case strings.HasSuffix(spec, "/"):
			err = os.MkdirAll(filepath.Join(dir, spec), 0755)
		case strings.Contains(spec, "->"):
			i := strings.Index(spec, "->")
			p := filepath.Join(dir, spec[:i])
			mkParents(t, p)
			err = os.Symlink(spec[i+2:], p)
		case strings.Contains(spec, "="):
			i := strings.Index(spec, "=")
			p := filepath.Join(dir, spec[:i])
			mkParents(t, p)
			err = os.WriteFile(p, []byte(spec[i+1:]), 0644)
		case strings.Contains(spec, "|"):
			i := strings.Index(spec, "|")
			p := filepath.Join(dir, spec[:i], spec[i+1:])
			mkParents(t, p)
			err = unix.Mkfifo(p, 0644)
		default:
			t.Fatalf("bad spec %q", spec)
		}
		if err != nil {
			t.Fatalf("build %s %q: %v", dir, spec, err)
		}
	}
}

func mkParents(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
		t.Fatal(err)
	}
}

// walk looks up a slash-separated path from the root. Each node on the
// way gets one kernel reference, as the kernel's walk would.
func walk(fs *overlay.FS, path string) (*overlay.Node, unix.Stat_t, error) {
	n := fs.Root()
	st, err := fs.Getattr(n)
	if err != nil || path == "" {
		return n, st, err
	}
	for _, name := range strings.Split(path, "/") {
		n, st, err = fs.Lookup(n, name)
		if err != nil {
			return nil, st, err
		}
	}
	return n, st, nil
}

func mustWalk(t *testing.T, fs *overlay.FS, path string) (*overlay.Node, unix.Stat_t) {
	t.Helper()
	n, st, err := walk(fs, path)
	if err != nil {
		t.Fatalf("lookup %q: %v", path, err)
	}
	return n, st
}

// wantErrno fails unless err is the errno want (0 means no error).
func wantErrno(t *testing.T, what string, err error, want unix.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// listDir returns a directory's merged listing as name -> kind.
func listDir(t *testing.T, fs *overlay.FS, n *overlay.Node) map[string]uint32 {
	t.Helper()
	d, err := fs.OpenDir(n)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	ents, err := fs.ReadDir(d, 0, true)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	m := map[string]uint32{}
	for _, e := range ents {
		if _, dup := m[e.Name]; dup {
			t.Errorf("ReadDir lists %q twice", e.Name)
		}
		m[e.Name] = e.Kind
	}
	return m
}

// names returns the sorted names of a listing.
func names(m map[string]uint32) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantNames(t *testing.T, what string, got map[string]uint32, want ...string) {
	t.Helper()
	sort.Strings(want)
	g := names(got)
	if strings.Join(g, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: names %q, want %q", what, g, want)
	}
}

// readAll reads a file node's content through a fresh read-only handle.
func readAll(t *testing.T, fs *overlay.FS, n *overlay.Node) string {
	t.Helper()
	h, err := fs.Open(n, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer fs.Release(h)
	return readHandle(t, fs, h)
}

func readHandle(t *testing.T, fs *overlay.FS, h *overlay.Handle) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := fs.Read(h, buf, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return string(buf[:n])
}

// writeFile opens n for writing, writes data at off and releases.
func writeFile(t *testing.T, fs *overlay.FS, n *overlay.Node, data string, off int64) {
	t.Helper()
	h, err := fs.Open(n, unix.O_WRONLY)
	if err != nil {
		t.Fatalf("Open for write: %v", err)
	}
	defer fs.Release(h)
	if _, err := fs.Write(h, []byte(data), off); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// On-disk checks.

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st
}

func exists(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil
}

func isWhiteout(p string) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func wantWhiteout(t *testing.T, p string) {
	t.Helper()
	if !isWhiteout(p) {
		t.Fatalf("%s: want a whiteout (char 0/0), have %s", p, describe(p))
	}
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if exists(p) {
		t.Fatalf("%s: want nothing, have %s", p, describe(p))
	}
}

func wantKind(t *testing.T, p string, kind uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if st.Mode&unix.S_IFMT != kind || isWhiteout(p) {
		t.Fatalf("%s: have %s, want kind %o", p, describe(p), kind)
	}
}

func describe(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.Error()
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			return "a whiteout"
		}
		return "a char device"
	case unix.S_IFDIR:
		if isOpaque(p) {
			return "an opaque directory"
		}
		return "a directory"
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "something else"
}

func isOpaque(p string) bool {
	v, err := xattr(p, "trusted.overlay.opaque")
	return err == nil && string(v) == "y"
}

func xattr(p, name string) ([]byte, error) {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func fileContent(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantWorkEmpty checks that workdir/work holds no leftovers (the shared
// whiteout is not one).
func wantWorkEmpty(t *testing.T, s *stack) {
	t.Helper()
	enginesMu.Lock()
	started := engines[t]
	enginesMu.Unlock()
	for _, fs := range started {
		fs.WaitReaped()
	}
	ents, err := os.ReadDir(s.work + "/work")
	if err != nil {
		t.Fatalf("work dir: %v", err)
	}
	var ns []string
	for _, e := range ents {
		if e.Name() == overlay.SharedWhiteout && isWhiteout(s.work+"/work/"+e.Name()) {
			continue // kept for the next whiteout, as by the kernel
		}
		ns = append(ns, e.Name())
	}
	if len(ns) > 0 {
		t.Fatalf("work dir not empty: %q", ns)
	}
}

// setTimes sets a path's atime and mtime (seconds and nanoseconds) without
// following symlinks.
func setTimes(t *testing.T, p string, atime, mtime unix.Timespec) {
	t.Helper()
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// listXattrNames lists a node's xattr names through the engine.
func listXattrNames(t *testing.T, fs *overlay.FS, n *overlay.Node) []string {
	t.Helper()
	size, err := fs.ListXattr(n, nil)
	if err != nil {
		t.Fatalf("ListXattr size: %v", err)
	}
	buf := make([]byte, size)
	if size > 0 {
		got, err := fs.ListXattr(n, buf)
		if err != nil {
			t.Fatalf("ListXattr: %v", err)
		}
		buf = buf[:got]
	}
	var out []string
	for _, s := range bytes.Split(buf, []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s))
		}
	}
	sort.Strings(out)
	return out
}

func ts(sec int64) unix.Timespec { return unix.Timespec{Sec: sec, Nsec: 123456789} }

// root is the caller most tests create as.
var caller0 = overlay.Caller{}

func objFile(mode uint32) overlay.NewObject {
	return overlay.NewObject{Kind: unix.S_IFREG, Mode: mode, Open: true, Flags: unix.O_RDWR}
}

func objDir(mode uint32) overlay.NewObject {
	return overlay.NewObject{Kind: unix.S_IFDIR, Mode: mode}
}

// mustCreate creates an object as root and releases the handle a regular
// file comes with.
func mustCreate(t *testing.T, fs *overlay.FS, parent *overlay.Node, name string, obj overlay.NewObject) (*overlay.Node, unix.Stat_t) {
	t.Helper()
	n, h, st, err := fs.Create(parent, name, obj, caller0)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if h != nil {
		fs.Release(h)
	}
	return n, st
}

var overlaySetMode0600 = overlay.SetAttr{Valid: overlay.SetMode, Mode: 0600}
