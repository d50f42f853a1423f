// Package strata is the Go API for mounting a Strata overlay: validate the
// options, mount, wait for the mount to end, unmount. The command in
// cmd/strata is a thin layer over it, and so are the tests.
//
// The overlay semantics live in package overlay (no FUSE there), the FUSE
// protocol in package fusefs, and the command line in package mountopt.
package strata

import (
	"fmt"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stratafs/strata/fusefs"
	"github.com/stratafs/strata/mountopt"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// CacheTimeout is how long the kernel caches entries and attributes. The
// layers of a mounted overlay must not be changed underneath it, and all
// changes through the mount are known to the kernel, so it can be long.
const CacheTimeout = time.Hour

// Server is a live Strata mount.
type Server struct {
	Mountpoint string
	FS         *overlay.FS
	FUSE       *fusefs.FS
	fuse       *fuse.Server
}

// Mount validates o, mounts the overlay on o.Mountpoint and returns once
// the kernel serves requests through it. Nothing is left mounted when it
// fails.
func Mount(o *mountopt.Options) (*Server, error) {
	return MountHooks(o, overlay.Hooks{})
}

// MountHooks is Mount with engine hooks set, for tests that stop the
// engine at chosen points.
func MountHooks(o *mountopt.Options, hooks overlay.Hooks) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cfg := overlay.Config{
		Lowers:    o.Lowers,
		Upper:     o.Upper,
		Work:      o.Work,
		UserXattr: o.UserXattr,
		Volatile:  o.Volatile,
		// Copy-ups are flushed in batches, in the background.
		AsyncCopyUp: true,
		IDMap:       idMapper(o),

		XattrPermissions: o.XattrPermissions,
	}
	if o.ReadOnly {
		cfg.Upper, cfg.Work = "", ""
	}
	ov, err := overlay.New(cfg)
	if err != nil {
		return nil, err
	}
	ov.Hooks = hooks
	ov.Logf = func(format string, args ...any) { log.Printf("strata: "+format, args...) }
	syscall.Umask(0) // modes from the kernel already have the caller's umask applied
	raw := fusefs.New(ov, CacheTimeout)
	raw.Passthrough = o.Passthrough
	raw.Writeback = writeback(o)
	// Serving one request at a time, with one P (cmd/strata/procs.go).
	raw.Serial = !o.Threaded && runtime.GOMAXPROCS(0) == 1
	raw.Logf = ov.Logf
	srv, err := fuse.NewServer(raw, o.Mountpoint, fuseOptions(o))
	if err != nil {
		ov.Close()
		return nil, fmt.Errorf("mounting on %s: %w", o.Mountpoint, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		ov.Close()
		return nil, fmt.Errorf("mounting on %s: %w", o.Mountpoint, err)
	}
	raiseReadahead(o.Mountpoint, o.Lowers[0])
	return &Server{Mountpoint: o.Mountpoint, FS: ov, FUSE: raw, fuse: srv}, nil
}

// raiseReadahead gives the mount the readahead of the filesystem its
// top lower layer is on (at least 1 MiB, the largest request the mount
// takes), instead of FUSE's 128 KiB: the kernel's overlayfs reads the
// real files with theirs. Sequential reads then need fewer round trips,
// and page faults of a mapped file read around as they would on the real
// file. Best effort: it needs root, and a layer on a block device.
func raiseReadahead(mnt string, layer string) {
	var st unix.Stat_t
	if unix.Stat(mnt, &st) != nil {
		return
	}
	kb := 1024
	var lst unix.Stat_t
	if unix.Stat(layer, &lst) == nil {
		if b, err := os.ReadFile(bdiPath(lst.Dev)); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > kb {
				kb = min(v, 16384)
			}
		}
	}
	os.WriteFile(bdiPath(st.Dev), []byte(strconv.Itoa(kb)), 0)
}

// bdiPath is the readahead setting of the filesystem on dev.
func bdiPath(dev uint64) string {
	return fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(dev), unix.Minor(dev))
}

// Wait blocks until the mount goes away (umount, fusermount3 -u, or
// Unmount).
func (s *Server) Wait() {
	s.fuse.Wait()
	s.FS.Close()
}

// Unmount unmounts the overlay, retrying while it is busy for a short
// while.
func (s *Server) Unmount() error {
	var err error
	for i := 0; i < 50; i++ {
		if err = s.fuse.Unmount(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmounting %s: %w", s.Mountpoint, err)
	}
	s.fuse.Wait()
	return s.FS.Close()
}

func idMapper(o *mountopt.Options) *overlay.IDMapper {
	if len(o.UIDMap) == 0 && len(o.GIDMap) == 0 && o.SquashToUID < 0 && o.SquashToGID < 0 && !o.SquashToRoot {
		return nil
	}
	m := &overlay.IDMapper{SquashUID: o.SquashToUID, SquashGID: o.SquashToGID}
	if o.SquashToRoot {
		m.SquashUID, m.SquashGID = 0, 0
	}
	// As fuse-overlayfs and containers/storage use them: layers store the
	// container's IDs, and the mount shows them as the host IDs the
	// container's user namespace maps back.
	for _, r := range o.UIDMap {
		m.UIDs = append(m.UIDs, overlay.IDRange{Inside: r.Host, Outside: r.Container, Size: r.Size})
	}
	for _, r := range o.GIDMap {
		m.GIDs = append(m.GIDs, overlay.IDRange{Inside: r.Host, Outside: r.Container, Size: r.Size})
	}
	return m
}

// mountFlags are the kernel options that must be mount(2) flags rather
// than FUSE option strings.
var mountFlags = map[string]uintptr{
	"ro": syscall.MS_RDONLY, "nosuid": syscall.MS_NOSUID, "nodev": syscall.MS_NODEV,
	"noexec": syscall.MS_NOEXEC, "noatime": syscall.MS_NOATIME, "nodiratime": syscall.MS_NODIRATIME,
	"relatime": syscall.MS_RELATIME, "strictatime": syscall.MS_STRICTATIME,
	"sync": syscall.MS_SYNCHRONOUS, "dirsync": syscall.MS_DIRSYNC,
	"lazytime": unix.MS_LAZYTIME,
	// The defaults they negate: nothing to set.
	"suid": 0, "dev": 0, "exec": 0, "atime": 0, "diratime": 0, "norelatime": 0,
	"nostrictatime": 0, "nolazytime": 0, "async": 0,
}

// writeback reports whether the mount gets the kernel's writeback cache:
// asked for, and neither passthrough (which the kernel turns off with it)
// nor read-only. mountopt settles that for command lines; this is for
// options built by hand.
func writeback(o *mountopt.Options) bool {
	return o.Writeback && !o.Passthrough && !o.ReadOnly
}

func fuseOptions(o *mountopt.Options) *fuse.MountOptions {
	mo := &fuse.MountOptions{
		AllowOther:               o.AllowOther,
		FsName:                   o.FsName,
		Name:                     o.Subtype,
		MaxWrite:                 1 << 20,
		MaxBackground:            16,   // in-flight async reads (readahead)
		DisableSplice:            true, // see fusefs.FS.Read
		Debug:                    o.Debug,
		EnableSymlinkCaching:     true, // a symlink's target never changes
		ExplicitDataCacheControl: true, // the daemon knows when data changes
	}
	if o.Passthrough {
		// Upper-layer files, or every file of a read-only mount
		// (fusefs/passthrough.go); the FUSE mount can still be a layer of
		// a kernel overlay (stack depth 1).
		mo.MaxStackDepth = 1
	} else {
		mo.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	// The kernel leaves it to the daemon to drop set-id bits on writes,
	// truncates and chown (FUSE_HANDLE_KILLPRIV_V2), which spares a
	// GETATTR per chown and a security.capability lookup per write.
	mo.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2
	// POSIX ACLs (FUSE_POSIX_ACL): the kernel checks them along with the
	// mode, as kernel overlayfs does with the real files' ACLs, and keeps
	// each inode's ACL once read, where without it every
	// system.posix_acl_access lookup (ls -l makes one per file) is a
	// round trip. Not where the ids or modes shown are not the layers':
	// the ACL entries name the layers' ids.
	mo.EnableAcl = o.ACL && idMapper(o) == nil && o.XattrPermissions == 0
	if writeback(o) {
		// The kernel caches writes and sends them in large requests
		// later (at the latest on close or fsync), keeping regular files'
		// sizes and times itself; fusefs.FS.Writeback keeps the upper
		// layer's mtimes equal to the ones it shows. Untar of the Go tree:
		// about a fifth fewer requests (one WRITE per file instead of one
		// per write(2)).
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	if !o.Threaded {
		// One request in flight (go-fuse lets one through whatever the
		// limit): a single goroutine reads a request, answers it and
		// reads the next, as fuse-overlayfs does by default. The
		// daemon's answers take a few µs of its own work; what a request
		// costs is the context switches around it, and go-fuse's
		// concurrent readers (two or more threads waiting in read(2) on
		// /dev/fuse, woken in turn) made about twice as many as one
		// reader does. Untar of the Go tree, on a VM where switches are
		// dear: 7.3 s and 6.1 CPU s threaded, 5.3 s and 3.7 CPU s serial.
		// The daemon runs with one P then (cmd/strata/procs.go): go-fuse
		// still starts a goroutine after each read, which finds the
		// budget spent and ends, and with an idle P each would wake a
		// thread. Nothing a request waits for needs another request:
		// background work (linking copy-ups, filling their data,
		// removing files' data) runs on goroutines of its own.
		mo.MaxInflightRequestBytes = 1
	}
	if mo.FsName == "" {
		mo.FsName = "strata"
	}
	if mo.Name == "" {
		mo.Name = "strata"
	}
	if o.Debug {
		mo.Logger = log.New(os.Stderr, "", log.Lmicroseconds)
	}
	mo.Options = append(mo.Options, "default_permissions")
	if os.Geteuid() == 0 {
		// Mount directly, with no set-id or device restrictions unless
		// asked: a container's root needs both.
		mo.DirectMountStrict = true
		flags := uintptr(syscall.MS_MGC_VAL)
		if o.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		for _, k := range o.KernelOptions {
			if f, ok := mountFlags[k]; ok {
				flags |= f
				continue
			}
			mo.Options = append(mo.Options, k)
		}
		mo.DirectMountFlags = flags
		return mo
	}
	mo.Options = append(mo.Options, o.KernelOptions...)
	if o.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	return mo
}
