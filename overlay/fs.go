package overlay

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Config describes the stack to serve.
type Config struct {
	// Lowers are the lower layers, top-most first.
	Lowers []string
	// Upper and Work are empty for a read-only overlay.
	Upper string
	Work  string
	// UserXattr stores overlay metadata under "user.overlay." instead of
	// "trusted.overlay." (the kernel's userxattr option).
	UserXattr bool
	// Volatile skips every fsync: faster, and a crash may lose anything
	// not yet written back (the kernel's "volatile").
	Volatile bool
	// AsyncCopyUp makes a regular file's copy-up durable in the
	// background: the copy is used at once and linked into the upper
	// layer after a batched flush (settle.go). Without it, each copy-up
	// is fsynced before it returns, as in the kernel's overlayfs.
	AsyncCopyUp bool
	// IDMap translates owners between the mount and the layers; nil is
	// the identity.
	IDMap *IDMapper
	// XattrPermissions is fuse-overlayfs' xattr_permissions: 1 or 2 keep
	// owners and modes set through the mount in an override xattr of the
	// upper layer (OverridePrivileged or OverrideUser) instead of chown
	// and chmod.
	XattrPermissions int
	// MaxOpenFiles bounds the backing files kept open (0:
	// DefaultMaxOpenFiles). Files in use are never closed, so the bound
	// can be exceeded while more are busy at once.
	MaxOpenFiles int
}

// FS is a mounted overlay's engine.
type FS struct {
	cfg     Config
	layers  []*Layer // upper (if any) first, then lowers top-most first
	upper   *Layer   // nil when read-only
	lowers  []*Layer
	work    string // workdir/work: scratch space for atomic changes
	workDir int    // an O_PATH descriptor of it
	workFd  *os.File
	upperFd *os.File // holds a shared lock: see prepareWork
	inos    inoMapper
	ids     *IDMapper

	xattrPrefix string // "trusted.overlay." or "user.overlay."
	xOpaque     string
	xOrigin     string // Strata's record of an object's inode number

	treeMu  sync.RWMutex
	tableMu sync.Mutex
	nodes   map[uint64]*Node
	nextID  uint64
	links   map[uint64]*Node // upper inode number -> node, for hard links
	root    *Node

	selfUID, selfGID uint32 // who the daemon creates files as

	files   fileCache  // open backing files
	pending pendingSet // copy-ups waiting to be linked
	reaper  reaper     // removed files' data to delete from the work directory

	noTmpfile atomic.Bool // the work directory's filesystem has no O_TMPFILE
	noClone   atomic.Bool // the upper filesystem cannot clone extents

	noSharedWhiteout atomic.Bool // whiteouts cannot be links (whiteout.go)

	tmpSeq        atomic.Uint64
	copyUps       atomic.Uint64
	lazyFills     atomic.Uint64 // copy-ups whose data followed a chunk at a time
	linkFailures  atomic.Uint64
	probesSkipped atomic.Uint64 // lower-layer lookups a listing answered
	batchSyncs    atomic.Uint64 // syncfs calls of the linker
	fileSyncs     atomic.Uint64 // pending copy-ups synced one by one

	// Logf, when set, is told of problems no request can report (a
	// background link that failed).
	Logf func(format string, args ...any)

	// Hooks are for tests that stop the engine at chosen points.
	Hooks Hooks

	// AttrChanged, when set, is told of a node whose attributes changed
	// other than by the request being served (copy-up), so that a cache of
	// them (the kernel's) can be dropped.
	AttrChanged func(n *Node)
	// ListingChanged, when set, is told of a directory whose listing
	// changed other than by the request being served (an entry's inode
	// number, at a copy-up), so that a cache of it can be dropped.
	ListingChanged func(dir *Node)
}

// Hooks are called, when set, at points where a crash must not lose
// data; tests use them to kill the daemon there.
type Hooks struct {
	// CopyUpBeforeLink runs after a copy-up has written the new upper
	// object in the work directory and before it appears in the upper
	// layer.
	CopyUpBeforeLink func(rel string)
	// LinkerBatch runs in the background linker (AsyncCopyUp) before it
	// takes a batch of pending copy-ups.
	LinkerBatch func()
	// FillChunk runs before the background copies a chunk of a filling
	// node (fill.go), holding no lock.
	FillChunk func(n *Node)
	// AttrAfterFstat runs when Getattr has read a backing file's
	// attributes, before it adjusts them.
	AttrAfterFstat func(n *Node)
}

// New opens the layers, prepares the work directory and returns the
// engine. It cleans leftovers of an earlier crash from workdir/work.
func New(cfg Config) (*FS, error) {
	if len(cfg.Lowers) == 0 {
		return nil, errors.New("at least one lower layer is needed")
	}
	if (cfg.Upper == "") != (cfg.Work == "") {
		return nil, errors.New("upperdir and workdir go together")
	}
	fs := &FS{
		cfg:   cfg,
		nodes: map[uint64]*Node{},
		links: map[uint64]*Node{},
		ids:   cfg.IDMap,
	}
	fs.reaper.idle.L = &fs.reaper.mu
	fs.selfUID, fs.selfGID = uint32(os.Geteuid()), uint32(os.Getegid())
	fs.xattrPrefix = "trusted.overlay."
	if cfg.UserXattr {
		fs.xattrPrefix = "user.overlay."
	}
	fs.xOpaque = fs.xattrPrefix + "opaque"
	fs.xOrigin = fs.xattrPrefix + "strata.ino"

	ok := false
	defer func() {
		if !ok {
			fs.Close()
		}
	}()
	if cfg.Upper != "" {
		l, err := openLayer(cfg.Upper, 0, true)
		if err != nil {
			return nil, err
		}
		fs.upper = l
		fs.layers = append(fs.layers, l)
		switch cfg.XattrPermissions {
		case 1:
			l.override = OverridePrivileged
		case 2:
			l.override = OverrideUser
		}
	}
	for _, p := range cfg.Lowers {
		l, err := openLayer(p, len(fs.layers), false)
		if err != nil {
			return nil, err
		}
		fs.lowers = append(fs.lowers, l)
		fs.layers = append(fs.layers, l)
	}
	fs.inos = newInoMapper(fs.layers)
	if fs.upper != nil {
		if err := fs.prepareWork(cfg.Work); err != nil {
			return nil, err
		}
	}
	root, err := fs.newRoot()
	if err != nil {
		return nil, err
	}
	fs.root = root
	fs.files.max = cfg.MaxOpenFiles
	if fs.files.max <= 0 {
		fs.files.max = DefaultMaxOpenFiles
	}
	fs.files.stop, fs.files.done = make(chan struct{}), make(chan struct{})
	go fs.sweeper()
	fs.pending.init()
	if fs.upper != nil && cfg.AsyncCopyUp {
		go fs.linker()
	} else {
		close(fs.pending.done)
	}
	ok = true
	return fs, nil
}

// Close releases the layers, the backing files and the work directory
// lock.
func (fs *FS) Close() error {
	if fs.pending.stop != nil {
		close(fs.pending.stop)
		<-fs.pending.done
		fs.pending.stop = nil
		fs.settleAll()
		fs.pending.fillers.Wait() // done: settleAll filled every copy
	}
	if fs.files.stop != nil {
		close(fs.files.stop)
		<-fs.files.done
		fs.files.stop = nil
	}
	fs.closeAllFiles()
	fs.closeReaper()
	if fs.workDir > 0 {
		unix.Close(fs.workDir)
		fs.workDir = -1
	}
	for _, l := range fs.layers {
		l.close()
	}
	if fs.upperFd != nil {
		fs.upperFd.Close()
		fs.upperFd = nil
	}
	if fs.workFd != nil {
		err := fs.workFd.Close()
		fs.workFd = nil
		return err
	}
	return nil
}

// Root returns the root directory node (ID 1).
func (fs *FS) Root() *Node { return fs.root }

// ReadOnly reports whether the overlay has no upper layer.
func (fs *FS) ReadOnly() bool { return fs.upper == nil }

// prepareWork locks the work directory against a second mount, creates
// workdir/work as the kernel does and empties it of crash leftovers.
//
// As with the kernel, a workdir must not be any other mount's workdir or
// upperdir (whose work/ would be emptied from under it): kernel overlays
// are found in the mount table, Strata mounts by their locks, exclusive
// on the work directory, shared on the upper layer. An upperdir that
// another mount uses too is allowed, as the kernel allows it without
// index (changes through both mounts are undefined, as there).
func (fs *FS) prepareWork(workdir string) error {
	if other := kernelOverlayUsing(workdir); other != "" {
		return fmt.Errorf("workdir %q is in use by the overlay mounted on %s", workdir, other)
	}
	f, err := os.Open(workdir)
	if err != nil {
		return fmt.Errorf("workdir %q: %w", workdir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("workdir %q is in use by another Strata mount", workdir)
	}
	fs.workFd = f
	if u, err := os.Open(fs.upper.root); err == nil {
		// Refused only where the upper layer is another Strata mount's
		// workdir, which the check above refuses from the other side.
		if unix.Flock(int(u.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
			u.Close()
			return fmt.Errorf("upperdir %q is in use as the workdir of another Strata mount", fs.upper.Path)
		}
		fs.upperFd = u
	}
	var ust, wst unix.Stat_t
	if err := unix.Stat(fs.upper.root, &ust); err != nil {
		return err
	}
	if err := unix.Stat(workdir, &wst); err != nil {
		return err
	}
	if ust.Dev != wst.Dev {
		return fmt.Errorf("workdir %q and upperdir %q are on different filesystems", workdir, fs.upper.Path)
	}
	fs.work = procFdPath(int(f.Fd())) + "/work"
	if unix.Access(fs.work+"/..", unix.F_OK) != nil {
		fs.work = workdir + "/work" // no /proc
	}
	if err := unix.Mkdir(fs.work, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("workdir %q: %w", workdir, err)
	}
	if err := cleanWork(fs.work); err != nil {
		return fmt.Errorf("workdir %q: %w", workdir, err)
	}
	wd, err := unix.Open(fs.work, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("workdir %q: %w", workdir, err)
	}
	fs.workDir = wd
	return nil
}

// cleanWork empties workdir/work of what an interrupted overlay leaves
// there: temporary files and devices, the shared whiteout, and
// directories that were being copied up or removed, which hold at most
// files and empty directories (a removed directory's whiteouts). Anything
// deeper was put there by someone else: the workdir was given by mistake,
// and, unlike fuse-overlayfs, which empties it whatever it holds, and the
// kernel, which removes two levels before it gives up, nothing is removed
// and the mount is refused.
//
// work/incompat is the kernel's: a feature named in it (volatile: the
// upper layer may have lost writes in a crash) makes the kernel refuse
// every later mount until someone removes it, and so does Strata.
func cleanWork(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("work: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if e.Name() == incompatDir {
			features, err := os.ReadDir(dir + "/" + incompatDir)
			if err != nil {
				return fmt.Errorf("work/%s: %w", incompatDir, err)
			}
			if len(features) > 0 {
				f := features[0].Name()
				return fmt.Errorf("work/%s/%s: last mounted by the kernel's overlayfs with %q, which it refuses to mount again (the upper layer may be incomplete); remove work/%s to mount anyway", incompatDir, f, f, incompatDir)
			}
			continue
		}
		sub, err := os.ReadDir(dir + "/" + e.Name())
		if err != nil {
			return fmt.Errorf("work/%s: %w", e.Name(), err)
		}
		for _, s := range sub {
			if !s.IsDir() {
				continue
			}
			p := e.Name() + "/" + s.Name()
			deeper, err := os.ReadDir(dir + "/" + p)
			if err != nil {
				return fmt.Errorf("work/%s: %w", p, err)
			}
			if len(deeper) > 0 {
				return fmt.Errorf("work/%s holds a tree no overlay leaves there; empty work/ or choose another workdir", p)
			}
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			return fmt.Errorf("emptying work: %w", err)
		}
	}
	return nil
}

// kernelOverlayUsing returns the mount point of a kernel overlay mount
// that uses dir as its workdir or upperdir, or "". The kernel shows each
// mount's directories as they were given, so one named another way
// (through a symlink, with "." or ".." in it) is recognised by its
// identity, not its spelling.
func kernelOverlayUsing(dir string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	var want unix.Stat_t
	haveWant := unix.Stat(dir, &want) == nil
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		i := strings.Index(line, " - overlay ")
		if i < 0 {
			continue
		}
		for _, o := range strings.Split(line[i:], ",") {
			o = unescapeMountinfo(o)
			w, ok := strings.CutPrefix(o, "workdir=")
			if !ok {
				if w, ok = strings.CutPrefix(o, "upperdir="); !ok {
					continue
				}
			}
			if w == dir || haveWant && sameDir(w, &want) {
				fields := strings.Fields(line)
				if len(fields) > 4 {
					return unescapeMountinfo(fields[4])
				}
				return "?"
			}
		}
	}
	return ""
}

// sameDir reports whether the absolute path p names the directory st
// describes. A relative path (taken from the mounting process's working
// directory, unknown here) never matches.
func sameDir(p string, st *unix.Stat_t) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	var pst unix.Stat_t
	return unix.Stat(p, &pst) == nil && pst.Dev == st.Dev && pst.Ino == st.Ino
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, \011,
// \012, \134, and \054 for a comma in overlay options) that
// /proc/self/mountinfo puts in paths and options.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// incompatDir is the kernel's directory, in workdir/work, of features an
// overlay mount must understand (volatile, see cleanWork).
const incompatDir = "incompat"

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// tmpName returns the path of a fresh name inside the work directory.
func (fs *FS) tmpName() string {
	return fmt.Sprintf("%s/#%x", fs.work, fs.tmpSeq.Add(1))
}

// workRel returns the name inside the work directory of a path tmpName
// made, for the *at calls on fs.workDir.
func (fs *FS) workRel(path string) string {
	return strings.TrimPrefix(path, fs.work+"/")
}

// fsync syncs fd unless the overlay is volatile.
func (fs *FS) fsync(fd int) error {
	if fs.cfg.Volatile {
		return nil
	}
	return unix.Fsync(fd)
}

// syncDir makes a directory's entries durable unless volatile.
func (fs *FS) syncDir(path string) error {
	if fs.cfg.Volatile {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}
