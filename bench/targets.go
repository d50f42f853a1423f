package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Target is one way of presenting the layer set: a plain directory, a
// kernel overlayfs mount, or a FUSE overlay (fuse-overlayfs, Strata).
type Target interface {
	Name() string
	// Root is where the workloads run: the mountpoint, or the directory.
	Root() string
	// Fresh unmounts and resets the state: a new, empty upper and work
	// directory for overlays; a pristine copy of the tree for the plain
	// directory when a workload changed it.
	Fresh() error
	Mount() error
	Unmount() error
	// DaemonPID is the FUSE daemon serving the current mount, 0 if none.
	DaemonPID() int
	// MarkDirty tells the target that a workload changed the tree.
	MarkDirty()
}

// mountMu serializes mounting and unmounting with the cleanup that runs on
// a signal.
var mountMu sync.Mutex

// ---------------------------------------------------------------- plain

type plainTarget struct {
	root     string // the directory the workloads run in
	pristine string // merged tree to restore from; "" for a read-only set
	keep     map[string]bool
	dirty    bool
}

func newPlainTarget(root, pristine string) *plainTarget {
	return &plainTarget{root: root, pristine: pristine, keep: map[string]bool{treeDir: true, bigName: true, "files": true}}
}

func (p *plainTarget) Name() string   { return tPlain }
func (p *plainTarget) Root() string   { return p.root }
func (p *plainTarget) Mount() error   { return nil }
func (p *plainTarget) Unmount() error { return nil }
func (p *plainTarget) DaemonPID() int { return 0 }
func (p *plainTarget) MarkDirty()     { p.dirty = true }

func (p *plainTarget) Fresh() error {
	ents, err := os.ReadDir(p.root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !p.keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(p.root, e.Name())); err != nil {
				return err
			}
		}
	}
	if p.pristine != "" {
		// Restore what the workloads removed (e.g. a seeded build cache).
		pents, err := os.ReadDir(p.pristine)
		if err != nil {
			return err
		}
		for _, e := range pents {
			if _, err := os.Lstat(filepath.Join(p.root, e.Name())); err != nil {
				if err := cpA(filepath.Join(p.pristine, e.Name()), filepath.Join(p.root, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	if p.dirty && p.pristine != "" {
		if err := os.RemoveAll(filepath.Join(p.root, treeDir)); err != nil {
			return err
		}
		if err := cpA(filepath.Join(p.pristine, treeDir), filepath.Join(p.root, treeDir)); err != nil {
			return err
		}
		p.dirty = false
	}
	return nil
}

// ---------------------------------------------------------------- overlays

type overlayKind int

const (
	kindKernel overlayKind = iota
	kindFUSE
)

type overlayTarget struct {
	name   string
	kind   overlayKind
	bin    string   // FUSE daemon binary
	base   string   // directory holding upper-N and work-N
	lowers []string // top first
	mnt    string
	extra  string // further mount options (-strata-opts)
	gen    int
	upper  string
	work   string

	mounted bool
	pid     int       // FUSE daemon
	cmd     *exec.Cmd // the command that mounted (may have exited)
	stderr  *bytes.Buffer
}

func newOverlayTarget(name string, kind overlayKind, bin, base string, lowers []string, mnt string) *overlayTarget {
	return &overlayTarget{name: name, kind: kind, bin: bin, base: base, lowers: lowers, mnt: mnt}
}

// withOptions adds mount options after the layers' (-strata-opts).
func (o *overlayTarget) withOptions(extra string) *overlayTarget {
	o.extra = extra
	return o
}

func (o *overlayTarget) Name() string   { return o.name }
func (o *overlayTarget) Root() string   { return o.mnt }
func (o *overlayTarget) DaemonPID() int { return o.pid }
func (o *overlayTarget) MarkDirty()     {}

func (o *overlayTarget) options() string {
	s := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(o.lowers, ":"), o.upper, o.work)
	if o.extra != "" {
		s += "," + o.extra
	}
	return s
}

func (o *overlayTarget) Fresh() error {
	if err := o.Unmount(); err != nil {
		return err
	}
	for _, d := range []string{o.upper, o.work} {
		if d != "" {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
	}
	o.gen++
	o.upper = filepath.Join(o.base, fmt.Sprintf("upper-%d", o.gen))
	o.work = filepath.Join(o.base, fmt.Sprintf("work-%d", o.gen))
	for _, d := range []string{o.upper, o.work, o.mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (o *overlayTarget) Mount() error {
	mountMu.Lock()
	defer mountMu.Unlock()
	if o.mounted {
		return nil
	}
	if o.upper == "" {
		return errors.New("mount before Fresh")
	}
	switch o.kind {
	case kindKernel:
		if err := syscall.Mount("overlay", o.mnt, "overlay", 0, o.options()); err != nil {
			return fmt.Errorf("mount -t overlay -o %s %s: %w", o.options(), o.mnt, err)
		}
		o.mounted = true
		return nil
	}
	return o.mountFUSE()
}

// mountFUSE runs `bin -o OPTIONS MNT` and waits until the mount shows up
// (the daemon forks into the background once the mount is ready).
func (o *overlayTarget) mountFUSE() error {
	o.stderr = &bytes.Buffer{}
	cmd := exec.Command(o.bin, "-o", o.options(), o.mnt)
	cmd.Stdout = o.stderr
	cmd.Stderr = o.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	o.cmd = cmd
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	exited := false
	failed := func(err error) error {
		return fmt.Errorf("%s -o %s %s: %v: %s", o.bin, o.options(), o.mnt, err, strings.TrimSpace(o.stderr.String()))
	}
	for !isMounted(o.mnt) {
		select {
		case err := <-done:
			done, exited = nil, true
			if err != nil {
				return failed(err)
			}
			// Exited successfully: the mount should be there already;
			// allow a moment for a daemon that reports early.
			deadline = time.Now().Add(5 * time.Second)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			if !exited {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			return failed(errors.New("no mount appeared"))
		}
	}
	// A daemon that daemonizes has its foreground process exit about now;
	// one that stays in the foreground is the daemon itself.
	if !exited {
		select {
		case err := <-done:
			exited = true
			if err != nil {
				_ = unmount(o.mnt)
				return failed(err)
			}
		case <-time.After(2 * time.Second):
		}
	}
	o.mounted = true
	o.pid = findDaemon(o.mnt)
	if o.pid == 0 && !exited {
		o.pid = cmd.Process.Pid
	}
	trackDaemon(o.pid)
	return nil
}

func (o *overlayTarget) Unmount() error {
	mountMu.Lock()
	defer mountMu.Unlock()
	if !o.mounted {
		return nil
	}
	err := unmount(o.mnt)
	if err != nil {
		return err
	}
	o.mounted = false
	if o.pid > 0 {
		waitExit(o.pid, 10*time.Second)
		untrackDaemon(o.pid)
	}
	o.pid = 0
	return nil
}

// ---------------------------------------------------------------- helpers

// unmount unmounts mnt, retrying while busy, then detaching it lazily.
func unmount(mnt string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = syscall.Unmount(mnt, 0)
		if err == nil || err == syscall.EINVAL || err == syscall.ENOENT {
			return nil
		}
		if err != syscall.EBUSY {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if isFUSE(mnt) {
		abortFUSE(mnt)
	}
	if err2 := syscall.Unmount(mnt, syscall.MNT_DETACH); err2 != nil && err2 != syscall.EINVAL {
		return fmt.Errorf("umount %s: %v (lazy: %v)", mnt, err, err2)
	}
	logf("warning: %s was busy (%v); detached it lazily", mnt, err)
	return nil
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Dev    string // major:minor
	Point  string
	FSType string
}

func mountTable() []mountEntry {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		if sep+1 >= len(f) {
			continue
		}
		out = append(out, mountEntry{Dev: f[2], Point: unescapeMount(f[4]), FSType: f[sep+1]})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 etc.) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isMounted(mnt string) bool {
	for _, m := range mountTable() {
		if m.Point == mnt {
			return true
		}
	}
	return false
}

func isFUSE(mnt string) bool {
	for _, m := range mountTable() {
		if m.Point == mnt && strings.HasPrefix(m.FSType, "fuse") {
			return true
		}
	}
	return false
}

// abortFUSE aborts the FUSE connection of the mount at mnt, which makes
// every request pending on a hung daemon fail with ENOTCONN.
func abortFUSE(mnt string) {
	for _, m := range mountTable() {
		if m.Point != mnt || !strings.HasPrefix(m.FSType, "fuse") {
			continue
		}
		_, minor, ok := strings.Cut(m.Dev, ":")
		if !ok {
			continue
		}
		p := filepath.Join("/sys/fs/fuse/connections", minor, "abort")
		if err := os.WriteFile(p, []byte("1"), 0o200); err == nil {
			logf("aborted the FUSE connection of %s", mnt)
		}
	}
}

// mountsUnder lists the mountpoints at or below dir, deepest first.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range mountTable() {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unmountAllUnder unmounts everything mounted under dir.
func unmountAllUnder(dir string) {
	for _, mp := range mountsUnder(dir) {
		pid := findDaemon(mp)
		if err := unmount(mp); err != nil {
			logf("cleanup: %v", err)
			continue
		}
		logf("cleanup: unmounted %s", mp)
		if pid > 0 {
			waitExit(pid, 5*time.Second)
		}
	}
}

// findDaemon finds the FUSE daemon serving mnt: a process whose command
// line names the mountpoint and that holds /dev/fuse open.
func findDaemon(mnt string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cl) == 0 {
			continue
		}
		named := false
		for _, a := range strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00") {
			if a == mnt || strings.TrimRight(a, "/") == mnt {
				named = true
				break
			}
		}
		if !named {
			continue
		}
		if holdsDevFuse(pid) {
			return pid
		}
		if best == 0 {
			best = pid
		}
	}
	return best
}

func holdsDevFuse(pid int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == "/dev/fuse" {
			return true
		}
	}
	return false
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitExit waits for pid to exit, killing it after timeout.
func waitExit(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			logf("warning: daemon %d still running %v after unmount; killing it", pid, timeout)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DaemonStats is a snapshot of a daemon's resource use.
type DaemonStats struct {
	CPUSeconds float64 // utime + stime
	HWMKiB     int64   // VmHWM: peak resident set
	RSSKiB     int64
	FDs        int
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go runs on.
const clockTicks = 100

func daemonCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / clockTicks
}

func daemonStats(pid int) DaemonStats {
	var s DaemonStats
	if pid <= 0 {
		return s
	}
	s.CPUSeconds = daemonCPU(pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			switch k {
			case "VmHWM":
				s.HWMKiB = n
			case "VmRSS":
				s.RSSKiB = n
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	return s
}

// daemons started by this process that have not yet been seen exiting.
var (
	daemonsMu sync.Mutex
	daemons   = map[int]bool{}
)

func trackDaemon(pid int) {
	if pid <= 0 {
		return
	}
	daemonsMu.Lock()
	daemons[pid] = true
	daemonsMu.Unlock()
}

func untrackDaemon(pid int) {
	daemonsMu.Lock()
	delete(daemons, pid)
	daemonsMu.Unlock()
}

// dropCaches writes back dirty data and drops the page, dentry and inode
// caches.
func dropCaches() error {
	if err := syncFS(); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
}

func syncFS() error {
	syscall.Sync()
	return nil
}
