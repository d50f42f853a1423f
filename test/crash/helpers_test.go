package crash

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// ---- the helper process ---------------------------------------------------

// The test binary doubles as the processes that use the mount, so that a
// request left hanging in a dead daemon never blocks the test process
// itself: run with helperEnv set, it performs one operation and exits.
const helperEnv = "STRATA_CRASH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := helperMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(mounttest.RunTests(m))
}

func helperMain(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: OP PATH ...")
	}
	op, path := args[0], args[1]
	switch op {
	case "stat": // PATH: prints OK or the errno name
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			fmt.Println(errName(err))
		} else {
			fmt.Println("OK")
		}
		return nil
	case "probe": // DIR: requests the kernel cannot answer from its caches
		fmt.Println(probe(path))
		return nil
	case "copy-up": // PATH: a change that changes nothing (chown to its own owner) copies it up
		return chownSelf(path)
	case "fsync": // PATH
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	case "write-copy-up": // PATH OFFSET TEXT: a write that copies a file up (no fsync)
		if len(args) != 4 {
			return errors.New("usage: write-copy-up PATH OFFSET TEXT")
		}
		off, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return err
		}
		return writeAt(path, off, args[3])
	case "copyup-tree": // ROOT: copies up every object, top-down
		return copyUpTree(path)
	case "creator": // DIR TAG: creates files and directories until an error
		return creator(path, args[2])
	case "fsync-writer": // DIR: appends fsync'ed records until killed
		return fsyncWriter(path, args[2:])
	}
	return fmt.Errorf("unknown op %q", op)
}

// probe makes requests that must reach the daemon: a lookup of a name
// never seen, an xattr read (never cached), a statx wanting more than the
// cached attributes. (Opening and listing a directory may not reach it:
// the kernel keeps listings.) It returns "OK" or the errno names.
func probe(dir string) string {
	var errs []string
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, fmt.Sprintf("never-seen-%d", os.Getpid())), &st); err != unix.ENOENT {
		errs = append(errs, "lookup:"+errName(err))
	}
	if _, err := unix.Lgetxattr(dir, "user.strata-probe", make([]byte, 64)); err != unix.ENODATA {
		errs = append(errs, "getxattr:"+errName(err))
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_FORCE_SYNC, unix.STATX_ALL, &stx); err != nil {
		errs = append(errs, "statx:"+errName(err))
	}
	if len(errs) == 0 {
		return "OK"
	}
	return strings.Join(errs, " ")
}

// copyUpTree makes every object below root (through the mount) go to the
// upper layer without changing it: each gets chown'ed to its own owner.
func copyUpTree(root string) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		return chownSelf(p)
	})
}

// chownSelf chowns path (not following a symlink) to the owner it has:
// a metadata change that changes nothing, and copies the object up.
func chownSelf(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if err := unix.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %s", path, errName(err))
	}
	return nil
}

// writeAt writes text at off in the existing file path.
func writeAt(path string, off int64, text string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %s", path, errName(err))
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, []byte(text), off); err != nil {
		return fmt.Errorf("write %s: %s", path, errName(err))
	}
	return nil
}

// creator makes files (mode 0640) and directories (mode 0750) in dir from
// 8 threads at once until something fails (the daemon dies).
func creator(dir, tag string) error {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p := fmt.Sprintf("%s/%s-%d-%d", dir, tag, g, i)
				if i%2 == 0 {
					fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0640)
					if err != nil {
						return
					}
					unix.Close(fd)
				} else if unix.Mkdir(p, 0750) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// record is one line appended by the fsync writer.
func record(file string, i int) string {
	return fmt.Sprintf("%s record %06d %s\n", file, i, strings.Repeat("x", 40+i%50))
}

// fsyncWriter appends records to the given files (relative to dir) in
// turn, fsyncing each, and prints "FILE I" once record I of FILE is
// durable. Files that do not exist are created.
func fsyncWriter(dir string, files []string) error {
	out := bufio.NewWriter(os.Stdout)
	fds := map[string]int{}
	for _, f := range files {
		fd, err := unix.Open(filepath.Join(dir, f), unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, 0644)
		if err != nil {
			return fmt.Errorf("open %s: %s", f, errName(err))
		}
		fds[f] = fd
	}
	for i := 0; ; i++ {
		f := files[i%len(files)]
		if _, err := unix.Write(fds[f], []byte(record(f, i))); err != nil {
			return fmt.Errorf("write %s: %s", f, errName(err))
		}
		if err := unix.Fsync(fds[f]); err != nil {
			return fmt.Errorf("fsync %s: %s", f, errName(err))
		}
		fmt.Fprintf(out, "%s %d\n", f, i)
		out.Flush()
	}
}

// helper is a running helper process.
type helper struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan error
}

func startHelper(t *testing.T, args ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	h := &helper{cmd: cmd, out: &strings.Builder{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() { h.kill() })
	return h
}

// wait waits for the helper to end, at most d.
func (h *helper) wait(d time.Duration) (error, bool) {
	select {
	case err := <-h.done:
		h.done <- err
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

func (h *helper) kill() {
	if h.cmd.Process != nil {
		h.cmd.Process.Kill()
	}
	h.wait(10 * time.Second)
}

// runHelper runs a helper to its end, failing the test after timeout.
func runHelper(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("helper %v still running after %v: a hang", args, timeout)
	}
	return strings.TrimSpace(string(out)), err
}

// fsyncLog follows a fsync writer's output: the last record of each file
// that the writer knows is durable.
type fsyncLog struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  string

	files []string
	mu    sync.Mutex
	last  map[string]int
}

func startFsyncWriter(t *testing.T, dir string, files ...string) *fsyncLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"fsync-writer", dir}, files...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &fsyncLog{cmd: cmd, files: files, last: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			f, n, ok := strings.Cut(s.Text(), " ")
			if !ok {
				continue
			}
			i, _ := strconv.Atoi(n)
			l.mu.Lock()
			l.last[f] = i
			l.mu.Unlock()
		}
		cmd.Wait()
		l.err = stderr.String()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-l.done
	})
	return l
}

// finish waits for the writer to end (the daemon died under it) and
// returns what it acknowledged.
func (l *fsyncLog) finish(t *testing.T) map[string]int {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("fsync writer still running 20 s after the daemon died: a hang")
	}
	return l.acked()
}

// acked returns the last durable record of each file so far.
func (l *fsyncLog) acked() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, f := range l.files {
		out[f] = -1 // nothing durable yet
	}
	for k, v := range l.last {
		out[k] = v
	}
	return out
}

// waitRecords waits until every file has at least n durable records.
func (l *fsyncLog) waitRecords(t *testing.T, files []string, n int) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		a := l.acked()
		ok := true
		for _, f := range files {
			if a[f] < n*len(files) {
				ok = false
			}
		}
		if ok {
			return
		}
		select {
		case <-l.done:
			t.Fatalf("fsync writer ended early: %s", l.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("fsync writer made no progress in 20 s: %v", l.acked())
}

// checkRecords checks that file (a real path in the upper layer) holds
// every record of name up to and including last, in order, as a prefix of
// its content (a later record may or may not follow). start is the
// content the file had before the first record.
func checkRecords(t *testing.T, file, name string, start string, files []string, last int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("fsync'ed records of %s: %v", name, err)
		return
	}
	want := start
	for i := 0; i <= last; i++ {
		if files[i%len(files)] == name {
			want += record(name, i)
		}
	}
	if !strings.HasPrefix(string(data), want) {
		t.Errorf("%s lost fsync'ed data: has %d bytes, the %d bytes acknowledged up to record %d are not all there", name, len(data), len(want), last)
	}
}

// ---- the daemon -------------------------------------------------------------

// daemonPid finds the strata daemon serving mnt from /proc/*/cmdline.
func daemonPid(t *testing.T, mnt string) int {
	t.Helper()
	pids := daemonPids(mounttest.Binary(t), mnt)
	if len(pids) == 0 {
		t.Fatalf("no strata daemon found for %s", mnt)
	}
	return pids[len(pids)-1]
}

// daemonPids lists the live strata processes serving mnt, oldest first.
func daemonPids(bin, mnt string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && args[0] == bin && args[len(args)-1] == mnt {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if alive(pid) {
				pids = append(pids, pid)
			}
		}
	}
	sort.Ints(pids)
	return pids
}

// newStack is mounttest.NewStack with a last cleanup that leaves nothing
// behind whatever the test did: every mount stacked on the mount point
// (live or dead) is unmounted, every daemon serving it is killed.
func newStack(t *testing.T, nLowers int) *mounttest.Stack {
	t.Helper()
	s := mounttest.NewStack(t, nLowers)
	bin := mounttest.Binary(t)
	t.Cleanup(func() {
		for i := 0; i < 10; i++ {
			if _, ok := mounttest.Mounted(s.Mnt); !ok {
				break
			}
			mounttest.ForceUnmount(s.Mnt)
		}
		for _, pid := range daemonPids(bin, s.Mnt) {
			t.Errorf("strata daemon %d still serving %s after the test: killing it", pid, s.Mnt)
			unix.Kill(pid, unix.SIGKILL)
			waitDead(pid, 5*time.Second)
		}
	})
	return s
}

// mountDaemon mounts the stack with the strata binary and returns the
// daemon's pid. Cleanup kills the daemon if it is still there after the
// test (it may be stopped in a hook), then unmounts.
func mountDaemon(t *testing.T, s *mounttest.Stack, env ...string) int {
	t.Helper()
	s.MountDaemonEnv(t, env)
	pid := daemonPid(t, s.Mnt)
	t.Cleanup(func() {
		if env != nil && alive(pid) {
			unix.Kill(pid, unix.SIGKILL)
			waitDead(pid, 5*time.Second)
		}
	})
	return pid
}

// alive reports whether any thread of pid is still running. The thread
// group leader turns zombie before the other threads have finished
// exiting (and closed /dev/fuse), so every task is looked at.
func alive(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X' {
			return true
		}
	}
	return false
}

func waitDead(pid int, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !alive(pid) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// crash kills the daemon with SIGKILL and waits until it is gone.
func crash(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	if !waitDead(pid, 10*time.Second) {
		t.Fatalf("daemon %d still alive 10 s after SIGKILL", pid)
	}
}

// workFiles lists what the daemon has open in the work directory (a
// copy-up under way).
func workFiles(pid int, work string) []string {
	var out []string
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(target, work+"/work/") {
			out = append(out, target)
		}
	}
	return out
}

// expectDead checks that the dead mount answers ENOTCONN, at once, to
// every request that reaches the (dead) daemon. A request the kernel
// queued before it tore the connection down ends with ECONNABORTED
// instead; the daemon's threads can all be gone a moment before that
// (seen once in a full run under load), so a probe that met it is
// repeated, and the answers must settle on ENOTCONN.
func expectDead(t *testing.T, mnt string) {
	t.Helper()
	const want = "lookup:ENOTCONN getxattr:ENOTCONN statx:ENOTCONN"
	var out string
	for try := 0; try < 20; try++ {
		out, _ = runHelper(t, 10*time.Second, "probe", mnt)
		if out == want || !strings.Contains(out, "ECONNABORTED") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out != want {
		t.Errorf("requests on the dead mount %s: %s, want ENOTCONN for each", mnt, out)
	}
}

// unmountLive unmounts a working mount and waits for its daemon, pid,
// to exit.
func unmountLive(t *testing.T, mnt string, pid int) {
	t.Helper()
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	waitDead(pid, 10*time.Second)
}

// unmountDead unmounts the dead mount with one of the ways a user would.
func unmountDead(t *testing.T, mnt, how string) {
	t.Helper()
	var cmd []string
	switch how {
	case "umount":
		cmd = []string{"umount", mnt}
	case "fusermount3":
		cmd = []string{"fusermount3", "-u", mnt}
	case "umount-l":
		cmd = []string{"umount", "-l", mnt}
	default:
		t.Fatalf("unmount how %q", how)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	if typ, ok := mounttest.Mounted(mnt); ok {
		t.Fatalf("%v: still mounted (%s)", cmd, typ)
	}
}

// ---- layer content ---------------------------------------------------------

// writeRandom writes size pseudo-random bytes (from seed) to path and
// returns their hash.
func writeRandom(t *testing.T, path string, size int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if n > left {
			n = left
		}
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func hashFile(p string) (string, int64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", 0, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n, nil
}

// setMeta gives p an owner, a mode, a user xattr and an mtime in the past.
func setMeta(t *testing.T, p string, uid, gid int, mode os.FileMode, tag string, mtime time.Time) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lsetxattr(p, "user.tag", []byte(tag), 0); err != nil {
			t.Fatal(err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// ---- tree snapshots -------------------------------------------------------

// obj is what a walk sees of one path.
type obj struct {
	typ      uint32
	perm     uint32
	uid, gid uint32
	size     int64
	mtime    unix.Timespec
	sum      string // files: content hash; symlinks: target
	xattrs   string // user.* xattrs, sorted "name=value;"
	err      string
}

func (o *obj) String() string {
	if o.err != "" {
		return "error " + o.err
	}
	return fmt.Sprintf("%s %04o %d:%d size %d mtime %d.%09d %.16s %s", typeName(o.typ), o.perm, o.uid, o.gid,
		o.size, o.mtime.Sec, o.mtime.Nsec, o.sum, o.xattrs)
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "chardev"
	}
	return fmt.Sprintf("type%o", t)
}

type tree map[string]*obj

// snapshot walks root without following symlinks; paths are relative.
func snapshot(t *testing.T, root string) tree {
	t.Helper()
	tr := tree{}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		o := statObj(p)
		tr[rel] = o
		if o.typ != unix.S_IFDIR {
			return
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			o.err = "readdir: " + errName(err)
			return
		}
		for _, e := range ents {
			walk(filepath.Join(rel, e.Name()))
		}
	}
	walk("")
	delete(tr, "")
	return tr
}

func statObj(p string) *obj {
	o := &obj{}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		o.err = "lstat: " + errName(err)
		return o
	}
	o.typ, o.perm = st.Mode&unix.S_IFMT, st.Mode&07777
	o.uid, o.gid, o.size, o.mtime = st.Uid, st.Gid, st.Size, st.Mtim
	switch o.typ {
	case unix.S_IFREG:
		sum, n, err := hashFile(p)
		if err != nil {
			o.err = "read: " + errName(err)
		} else if n != st.Size {
			o.err = fmt.Sprintf("read %d bytes of %d", n, st.Size)
		}
		o.sum = sum
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			o.err = "readlink: " + errName(err)
		}
		o.sum = target
	case unix.S_IFCHR:
		o.sum = fmt.Sprintf("rdev %d", st.Rdev)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil && err != unix.ENOTSUP {
		o.err += " listxattr: " + errName(err)
	}
	var xs []string
	for _, name := range strings.Split(string(buf[:max(n, 0)]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			xs = append(xs, name+"=<"+errName(err)+">")
			continue
		}
		xs = append(xs, name+"="+string(v[:vn]))
	}
	sort.Strings(xs)
	o.xattrs = strings.Join(xs, ";")
	return o
}

func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// diffTrees lists the differences between two snapshots, ignoring
// directory mtimes when ignoreDirMtime is set.
func diffTrees(a, b tree, aName, bName string, ignoreDirMtime bool) []string {
	var out []string
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var sorted []string
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, y := a[k], b[k]
		switch {
		case x == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%v)", k, bName, y))
		case y == nil:
			out = append(out, fmt.Sprintf("%s: only in %s (%v)", k, aName, x))
		default:
			xx, yy := *x, *y
			if ignoreDirMtime && xx.typ == unix.S_IFDIR {
				xx.mtime, yy.mtime = unix.Timespec{}, unix.Timespec{}
			}
			if xx != yy {
				out = append(out, fmt.Sprintf("%s: %s has %v, %s has %v", k, aName, x, bName, y))
			}
		}
	}
	return out
}

func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	if len(diffs) == 0 {
		return
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	t.Errorf("%s:\n  %s", what, strings.Join(diffs, "\n  "))
}

// checkWorkClean checks that the work directory holds nothing but an
// empty workdir/work.
func checkWorkClean(t *testing.T, work string) {
	t.Helper()
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "work" {
			t.Errorf("workdir holds %q after the remount", e.Name())
		}
	}
	left, err := os.ReadDir(filepath.Join(work, "work"))
	if err != nil {
		t.Errorf("workdir/work after the remount: %v", err)
		return
	}
	for _, e := range left {
		t.Errorf("workdir/work still holds %q after the remount: crash leftovers not cleaned", e.Name())
	}
}

// compareWithKernel unmounts Strata, mounts kernel overlayfs over the same
// layers on the same mount point and compares its tree with want (what
// Strata showed), then unmounts it again.
func compareWithKernel(t *testing.T, s *mounttest.Stack, pid int, want tree) {
	t.Helper()
	if err := unix.Unmount(s.Mnt, 0); err != nil {
		t.Fatalf("unmount strata: %v", err)
	}
	if !waitDead(pid, 10*time.Second) {
		t.Fatalf("daemon %d still running 10 s after its unmount", pid)
	}
	mounttest.KernelMount(t, s.Lowers, s.Upper, s.Work, s.Mnt)
	got := snapshot(t, s.Mnt)
	reportDiffs(t, "kernel overlayfs after the crash differs from Strata after the remount", diffTrees(want, got, "strata", "kernel", false))
	mounttest.ForceUnmount(s.Mnt)
}
