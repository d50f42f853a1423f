// Package crash kills the Strata daemon (SIGKILL) in the middle of
// copy-ups and checks what a crash may leave behind: the dead mount
// answers ENOTCONN rather than hanging, it can be unmounted and mounted
// again, the upper layer never holds a partial copy-up (an object is
// either absent from it or complete with its metadata), the next mount
// clears the leftovers in workdir/work, whatever was fsync'ed before the
// kill is there, and kernel overlayfs shows the same tree as Strata over
// the layers the crash left.
package crash

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

const bigSize = 256 << 20

var past = time.Date(2001, 2, 3, 4, 5, 6, 789000000, time.UTC)

// iterations is how many random kills a test makes: STRATA_CRASH_ITERS,
// or def.
func iterations(def int) int {
	if n, err := strconv.Atoi(os.Getenv("STRATA_CRASH_ITERS")); err == nil && n > 0 {
		return n
	}
	return def
}

// resetUpper empties the upper and work directories for a fresh run.
func resetUpper(t *testing.T, s *mounttest.Stack) {
	t.Helper()
	for _, d := range []string{s.Upper, s.Work} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
}

// plantLeftovers puts crash debris in workdir/work that the next mount
// must clear: what an interrupted copy-up, rename or removal leaves.
func plantLeftovers(t *testing.T, work string) {
	t.Helper()
	w := filepath.Join(work, "work")
	// A directory on its way out, as deep as an overlay's debris goes: its
	// files (whiteouts, half a copy-up) and an empty directory.
	mounttest.WriteFile(t, filepath.Join(w, "#dead1", "file"), "half a copy-up")
	if err := os.Mkdir(filepath.Join(w, "#dead1", "sub"), 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w, "#dead2"), []byte("partial data"), 0600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(w, "#dead3"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(w, "#dead1"), 0); err != nil {
		t.Fatal(err)
	}
}

// TestKillBeforeCopyUpLink stops the daemon exactly before it links the
// finished copy of a 256 MiB file (and, in a second mount, of a directory)
// into the upper layer, kills it there, and checks the crash's aftermath.
func TestKillBeforeCopyUpLink(t *testing.T) {
	mounttest.Require(t)
	s := newStack(t, 2)
	l0, l1 := s.Lowers[0], s.Lowers[1]
	bigSum := writeRandom(t, filepath.Join(l0, "big"), bigSize, 1)
	setMeta(t, filepath.Join(l0, "big"), 1234, 5678, 0640, "big", past)
	mounttest.WriteFile(t, filepath.Join(l0, "small"), "small lower content\n")
	setMeta(t, filepath.Join(l0, "small"), 42, 43, 0600, "small", past)
	mounttest.WriteFile(t, filepath.Join(l0, "pdir", "inner"), "inner lower content\n")
	mounttest.WriteFile(t, filepath.Join(l1, "pdir", "below"), "from the bottom layer\n")
	mounttest.WriteFile(t, filepath.Join(l1, "base"), "base\n")
	mounttest.WriteFile(t, filepath.Join(l0, "tree", "sub", "deeper", "leaf"), "leaf\n")
	setMeta(t, filepath.Join(l0, "tree", "sub"), 7, 8, 0750, "sub", past)
	setMeta(t, filepath.Join(l0, "pdir"), 0, 0, 0755, "pdir", past)
	lowerBig := statObj(filepath.Join(l0, "big"))
	lows := lowerTrees(t, s)

	mark := filepath.Join(s.Dir, "paused")
	pid := mountDaemon(t, s, "STRATA_TEST_PAUSE_COPYUP=big", "STRATA_TEST_PAUSE_MARK="+mark)

	// Durable writes before the crash: a new file, a copied-up lower file,
	// a file in a copied-up directory.
	if err := os.Mkdir(filepath.Join(s.Mnt, "newdir"), 0755); err != nil {
		t.Fatal(err)
	}
	files := []string{"newdir/new1", "small", "pdir/inner"}
	starts := map[string]string{"newdir/new1": "", "small": "small lower content\n", "pdir/inner": "inner lower content\n"}
	w := startFsyncWriter(t, s.Mnt, files...)
	w.waitRecords(t, files, 10)

	// A file's copy-up is linked in the background once it is durable:
	// its caller returns before the pause.
	cu := startHelper(t, "copy-up", filepath.Join(s.Mnt, "big"))
	waitForPause(t, mark, cu, true)
	if tmp := workFiles(pid, s.Work); len(tmp) == 0 {
		t.Logf("note: the paused daemon holds no file in workdir/work (%v)", tmp)
	} else {
		t.Logf("paused before linking %v", tmp)
	}
	if _, err := os.Lstat(filepath.Join(s.Upper, "big")); err == nil {
		t.Errorf("big is in the upper layer before its copy-up was linked")
	}

	crash(t, pid)
	if err, done := cu.wait(20 * time.Second); !done {
		t.Fatalf("the paused copy-up's caller still blocked 20 s after the daemon died: a hang")
	} else {
		// Either way: what a crash must not do is leave a partial copy.
		t.Logf("the copy-up's caller got: %v %s", err, strings.TrimSpace(cu.out.String()))
	}
	acked := w.finish(t)
	expectDead(t, s.Mnt)
	mountOverDead(t, s)
	unmountDead(t, s.Mnt, "umount")

	if _, err := os.Lstat(filepath.Join(s.Upper, "big")); err == nil {
		t.Errorf("the upper layer holds big although the copy-up was killed before its link")
	}
	for _, f := range files {
		checkRecords(t, filepath.Join(s.Upper, f), f, starts[f], files, acked[f])
	}
	plantLeftovers(t, s.Work)

	// A second crash, during a directory's copy-up: its scratch directory
	// is a real leftover in workdir/work.
	mark2 := filepath.Join(s.Dir, "paused2")
	pid = mountDaemon(t, s, "STRATA_TEST_PAUSE_COPYUP=tree/sub", "STRATA_TEST_PAUSE_MARK="+mark2)
	checkWorkClean(t, s.Work)
	cu = startHelper(t, "copy-up", filepath.Join(s.Mnt, "tree", "sub", "deeper", "leaf"))
	waitForPause(t, mark2, cu, false)
	left, _ := os.ReadDir(filepath.Join(s.Work, "work"))
	if len(left) == 0 {
		t.Errorf("the paused directory copy-up has nothing in workdir/work")
	}
	crash(t, pid)
	if _, done := cu.wait(20 * time.Second); !done {
		t.Fatalf("the paused copy-up's caller still blocked 20 s after the daemon died: a hang")
	}
	expectDead(t, s.Mnt)
	unmountDead(t, s.Mnt, "fusermount3")
	if _, err := os.Lstat(filepath.Join(s.Upper, "tree", "sub")); err == nil {
		t.Errorf("the upper layer holds tree/sub although its copy-up was killed before the link")
	}
	checkUpperComplete(t, s, lows, 0, files...)

	// The remount clears the leftovers and shows the lower files whole.
	pid = mountDaemon(t, s)
	checkWorkClean(t, s.Work)
	got := statObj(filepath.Join(s.Mnt, "big"))
	if got.sum != bigSum || got.String() != lowerBig.String() {
		t.Errorf("big after the remount: %v, want %v", got, lowerBig)
	}
	for _, f := range files {
		checkRecords(t, filepath.Join(s.Mnt, f), f, starts[f], files, acked[f])
	}
	// The interrupted copy-ups now complete.
	if out, err := runHelper(t, 60*time.Second, "copy-up", filepath.Join(s.Mnt, "big")); err != nil {
		t.Fatalf("copy-up of big after the remount: %v %s", err, out)
	}
	if out, err := runHelper(t, 60*time.Second, "copy-up", filepath.Join(s.Mnt, "tree", "sub", "deeper", "leaf")); err != nil {
		t.Fatalf("copy-up of tree/sub/deeper/leaf after the remount: %v %s", err, out)
	}
	if up := statUpper(filepath.Join(s.Upper, "big")); up.String() != lowerBig.String() {
		t.Errorf("big copied up after the remount: %v, want %v", up, lowerBig)
	}
	checkUpperComplete(t, s, lows, 0, files...)
	compareWithKernel(t, s, pid, snapshot(t, s.Mnt))
}

// statUpper is statObj of a file copied up through the mount just
// before: a file's copy-up reaches the upper layer in the background,
// once durable, so it waits up to 30 s for the file to appear.
func statUpper(path string) *obj {
	end := time.Now().Add(30 * time.Second)
	for {
		o := statObj(path)
		if o.err != "lstat: ENOENT" || time.Now().After(end) {
			return o
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForFile waits for the pause hook's mark, failing early if the
// helper that should reach the hook ends instead.
// waitForPause waits for the daemon to stop in its pause hook (path, the
// mark it leaves, appears). The helper that set the copy-up off must not
// finish first, unless background (a file's copy-up is linked in the
// background, after its caller got its answer) and it succeeded.
func waitForPause(t *testing.T, path string, h *helper, background bool) {
	t.Helper()
	end := time.Now().Add(60 * time.Second)
	finished := false
	for time.Now().Before(end) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if finished {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err, done := h.wait(5 * time.Millisecond); done {
			if !background || err != nil {
				t.Fatalf("the copy-up ended (%v: %s) without stopping in the pause hook", err, h.out)
			}
			finished = true
		}
	}
	t.Fatalf("the daemon did not reach the pause hook in 60 s")
}

// mountOverDead tries strata on the dead mount's mount point before it is
// unmounted. Stat of the mount point is answered from the kernel's
// attribute cache, so strata cannot tell that the mount below is dead: it
// may stack a new mount over it (as any FUSE file system would), which
// must then work, and unmounting it must leave the dead mount as it was.
// A refusal must be one line.
func mountOverDead(t *testing.T, s *mounttest.Stack) {
	t.Helper()
	cmd := exec.Command(mounttest.Binary(t), "-o", s.OptionString(), s.Mnt)
	out, err := cmd.CombinedOutput()
	msg := strings.TrimSpace(string(out))
	if err != nil {
		if !strings.HasPrefix(msg, "strata: ") || strings.Contains(msg, "\n") {
			t.Errorf("strata over the dead mount: %q, want one line", msg)
		}
		return
	}
	t.Logf("note: strata mounted over the dead mount on %s without a word; the dead mount stays below it", s.Mnt)
	pid := daemonPid(t, s.Mnt)
	if res, _ := runHelper(t, 10*time.Second, "probe", s.Mnt); res != "OK" {
		t.Errorf("the mount stacked over the dead one: %s", res)
	}
	if err := unix.Unmount(s.Mnt, 0); err != nil {
		t.Fatalf("unmount the mount stacked over the dead one: %v", err)
	}
	if !waitDead(pid, 10*time.Second) {
		t.Errorf("daemon %d still running after its unmount", pid)
	}
}

// checkUpperComplete checks that every object in the upper layer is a
// complete copy of the lower object it came from (same type, content,
// mode, owner, mtime, user xattrs). The parent directory of the object
// linked last may show a later mtime: the copy-up restores the parent's
// times right after the link, and a kill between the two leaves it so (the
// kernel has the same window). At most allowDirMtime directories may
// differ in mtime only; it returns how many did.
func checkUpperComplete(t *testing.T, s *mounttest.Stack, lows []tree, allowDirMtime int, changed ...string) int {
	t.Helper()
	up := snapshot(t, s.Upper)
	for _, c := range changed {
		delete(up, c) // changed through the mount since its copy-up
	}
	dirMtime := 0
	for rel, u := range up {
		var lo *obj
		for _, lt := range lows {
			if lo = lt[rel]; lo != nil {
				break
			}
		}
		if lo == nil {
			continue // created through the mount, not a copy-up
		}
		if *u == *lo {
			continue
		}
		if u.typ == unix.S_IFDIR && lo.typ == unix.S_IFDIR {
			uu, ll := *u, *lo
			uu.mtime, ll.mtime = unix.Timespec{}, unix.Timespec{}
			if uu == ll && dirMtime < allowDirMtime {
				dirMtime++
				t.Logf("note: upper directory %s has mtime %d.%09d, lower %d.%09d (killed between a child's link and the restore of its parent's times)",
					rel, u.mtime.Sec, u.mtime.Nsec, lo.mtime.Sec, lo.mtime.Nsec)
				continue
			}
		}
		t.Errorf("partial copy-up in the upper layer: %s is %v, the lower is %v", rel, u, lo)
	}
	return dirMtime
}

// lowerTrees snapshots the lower layers (which never change).
func lowerTrees(t *testing.T, s *mounttest.Stack) []tree {
	t.Helper()
	lows := make([]tree, len(s.Lowers))
	for i, l := range s.Lowers {
		lows[i] = snapshot(t, l)
	}
	return lows
}

// TestRandomKillDuringBigCopyUp kills the daemon at random moments while
// it copies up a 256 MiB file (and an fsync'ing writer works next to it).
func TestRandomKillDuringBigCopyUp(t *testing.T) {
	mounttest.Require(t)
	s := newStack(t, 1)
	l0 := s.Lowers[0]
	bigSum := writeRandom(t, filepath.Join(l0, "big"), bigSize, 2)
	setMeta(t, filepath.Join(l0, "big"), 1000, 1000, 0604, "big", past)
	mounttest.WriteFile(t, filepath.Join(l0, "log"), "lower log\n")
	lowerBig := statObj(filepath.Join(l0, "big"))
	if lowerBig.sum != bigSum {
		t.Fatalf("lower big: hash %s, wrote %s", lowerBig.sum, bigSum)
	}

	// How long one copy-up takes, from the caller's start.
	pid := mountDaemon(t, s)
	start := time.Now()
	if out, err := runHelper(t, 60*time.Second, "copy-up", filepath.Join(s.Mnt, "big")); err != nil {
		t.Fatalf("copy-up: %v %s", err, out)
	}
	took := time.Since(start)
	t.Logf("a 256 MiB copy-up takes %v", took)
	unmountLive(t, s.Mnt, pid)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	n := iterations(6)
	hows := []string{"umount", "fusermount3", "umount-l"}
	var outcomes []string
	for i := 0; i < n; i++ {
		resetUpper(t, s)
		pid := mountDaemon(t, s)
		files := []string{"log", "fresh"}
		starts := map[string]string{"log": "lower log\n", "fresh": ""}
		w := startFsyncWriter(t, s.Mnt, files...)
		w.waitRecords(t, files, 3)
		// The writer slows the copy-up down: kills up to 2.5 times the
		// calibrated time hit before, during and after it.
		delay := time.Duration(rng.Int64N(int64(took) * 5 / 2))
		cu := startHelper(t, "copy-up", filepath.Join(s.Mnt, "big"))
		time.Sleep(delay)
		inFlight := workFiles(pid, s.Work)
		crash(t, pid)
		if _, done := cu.wait(20 * time.Second); !done {
			t.Fatalf("copy-up caller still blocked 20 s after the daemon died: a hang")
		}
		acked := w.finish(t)
		expectDead(t, s.Mnt)
		unmountDead(t, s.Mnt, hows[i%len(hows)])

		outcome := "absent"
		if up := statObj(filepath.Join(s.Upper, "big")); up.err == "" {
			outcome = "complete"
			if up.String() != lowerBig.String() {
				t.Errorf("iteration %d: partial copy-up of big in the upper layer: %v, want %v", i, up, lowerBig)
				outcome = "PARTIAL"
			}
		} else if !strings.Contains(up.err, "ENOENT") {
			t.Errorf("iteration %d: upper big: %s", i, up.err)
		}
		if len(inFlight) > 0 {
			outcome += " (killed mid-copy)"
		}
		outcomes = append(outcomes, fmt.Sprintf("%v: %s", delay.Round(time.Millisecond), outcome))
		for _, f := range files {
			checkRecords(t, filepath.Join(s.Upper, f), f, starts[f], files, acked[f])
		}

		pid = mountDaemon(t, s)
		checkWorkClean(t, s.Work)
		for _, f := range files {
			checkRecords(t, filepath.Join(s.Mnt, f), f, starts[f], files, acked[f])
		}
		if i == n-1 {
			// Reading 256 MiB through the mount each time is slow: once.
			if got := statObj(filepath.Join(s.Mnt, "big")); got.String() != lowerBig.String() {
				t.Errorf("iteration %d: big after the remount: %v, want %v", i, got, lowerBig)
			}
			compareWithKernel(t, s, pid, snapshot(t, s.Mnt))
		} else {
			unmountLive(t, s.Mnt, pid)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("kills after: %s", strings.Join(outcomes, ", "))
}

// TestRandomKillDuringBigWriteCopyUp kills the daemon at random moments
// after a write into a 256 MiB lower file: the write returns once the
// chunk it touches is copied, and the rest of the copy follows in the
// background. Whenever the kill comes, the upper layer holds no copy or
// the whole file with the write in it, never a part of it.
func TestRandomKillDuringBigWriteCopyUp(t *testing.T) {
	mounttest.Require(t)
	s := newStack(t, 1)
	l0 := s.Lowers[0]
	writeRandom(t, filepath.Join(l0, "big"), bigSize, 3)
	setMeta(t, filepath.Join(l0, "big"), 1000, 1000, 0644, "big", past)
	const mark = "WRITTEN-BEFORE-THE-KILL"
	markOff := int64(bigSize/2 + 12345)
	data, err := os.ReadFile(filepath.Join(l0, "big"))
	if err != nil {
		t.Fatal(err)
	}
	copy(data[markOff:], mark)
	sum := sha256.Sum256(data)
	wantSum := fmt.Sprintf("%x", sum)
	data = nil

	// How long the whole copy takes, from the disk: the write, then an
	// fsync, which waits for the rest of the copy.
	pid := mountDaemon(t, s)
	dropCaches(t)
	start := time.Now()
	if out, err := runHelper(t, 60*time.Second, "write-copy-up", filepath.Join(s.Mnt, "big"), strconv.FormatInt(markOff, 10), mark); err != nil {
		t.Fatalf("write: %v %s", err, out)
	}
	wrote := time.Since(start)
	if out, err := runHelper(t, 60*time.Second, "fsync", filepath.Join(s.Mnt, "big")); err != nil {
		t.Fatalf("fsync: %v %s", err, out)
	}
	took := time.Since(start)
	t.Logf("the write returned after %v, the copy was durable after %v", wrote, took)
	if got := statObj(filepath.Join(s.Upper, "big")); got.sum != wantSum || got.size != bigSize {
		t.Fatalf("upper big after fsync: %v, want the lower file with the write", got)
	}
	unmountLive(t, s.Mnt, pid)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	n := iterations(6)
	var outcomes []string
	for i := 0; i < n; i++ {
		resetUpper(t, s)
		pid := mountDaemon(t, s)
		dropCaches(t) // the background copy reads from the disk: kills land in it
		delay := time.Duration(rng.Int64N(int64(took)))
		w := startHelper(t, "write-copy-up", filepath.Join(s.Mnt, "big"), strconv.FormatInt(markOff, 10), mark)
		time.Sleep(delay)
		crash(t, pid)
		if _, done := w.wait(20 * time.Second); !done {
			t.Fatalf("writer still blocked 20 s after the daemon died: a hang")
		}
		expectDead(t, s.Mnt)
		unmountDead(t, s.Mnt, "umount")

		outcome := "absent"
		if up := statObj(filepath.Join(s.Upper, "big")); up.err == "" {
			outcome = "complete"
			if up.sum != wantSum || up.size != bigSize || up.uid != 1000 || up.perm != 0644 {
				t.Errorf("iteration %d: partial copy-up of big in the upper layer: %v", i, up)
				outcome = "PARTIAL"
			}
		} else if !strings.Contains(up.err, "ENOENT") {
			t.Errorf("iteration %d: upper big: %s", i, up.err)
		}
		outcomes = append(outcomes, fmt.Sprintf("%v: %s", delay.Round(time.Millisecond), outcome))

		pid = mountDaemon(t, s)
		checkWorkClean(t, s.Work)
		if i == n-1 || outcome == "absent" {
			got := statObj(filepath.Join(s.Mnt, "big"))
			if outcome == "absent" && got.sum == wantSum || outcome == "complete" && got.sum != wantSum {
				t.Errorf("big through the mount after the remount: %v, upper layer %s", got, outcome)
			}
		}
		unmountLive(t, s.Mnt, pid)
		if t.Failed() {
			break
		}
	}
	t.Logf("kills after: %s", strings.Join(outcomes, ", "))
}

// dropCaches writes back and drops the page cache, so that reads come
// from the disk.
func dropCaches(t *testing.T) {
	t.Helper()
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatalf("drop caches: %v", err)
	}
}

// makeDeepTree fills root with a chain of depth directories, each with
// files of several sizes, a symlink and its own owner, mode, xattr and
// mtime.
func makeDeepTree(t *testing.T, root string, depth int) {
	t.Helper()
	modes := []os.FileMode{0755, 0750, 0711, 0700, 0775}
	dir := root
	var dirs []string
	for d := 0; d < depth; d++ {
		dir = filepath.Join(dir, fmt.Sprintf("level%02d", d))
		if err := os.Mkdir(dir, 0755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		for j, size := range []int64{0, 4096, int64(1+d*7919) % (256 << 10)} {
			f := filepath.Join(dir, fmt.Sprintf("f%d", j))
			writeRandom(t, f, size, uint64(d*10+j))
			setMeta(t, f, 100+d, 200+j, 0600+os.FileMode(j*044), fmt.Sprintf("f%d.%d", d, j), past.Add(time.Duration(d*3+j)*time.Hour))
		}
		ln := filepath.Join(dir, "ln")
		if err := os.Symlink("f1", ln); err != nil {
			t.Fatal(err)
		}
		setMeta(t, ln, 300+d, 300, 0, "", past)
		if d%5 == 4 {
			if err := os.Mkdir(filepath.Join(dir, "empty"), 0700); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Directory metadata last: adding entries changes the mtime.
	for d := len(dirs) - 1; d >= 0; d-- {
		setMeta(t, dirs[d], d, d, modes[d%len(modes)], fmt.Sprintf("level%d", d), past.Add(time.Duration(d)*time.Minute))
	}
}

// TestRandomKillDuringTreeCopyUp kills the daemon at random moments while
// a process copies up every object of a deep directory tree.
func TestRandomKillDuringTreeCopyUp(t *testing.T) {
	mounttest.Require(t)
	s := newStack(t, 2)
	makeDeepTree(t, s.Lowers[1], 40)
	// The top layer merges into part of the tree.
	mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "level00", "level01", "from-top"), "top layer\n")
	setMeta(t, filepath.Join(s.Lowers[0], "level00", "level01"), 1, 1, 0755, "top-level01", past)
	setMeta(t, filepath.Join(s.Lowers[0], "level00"), 0, 0, 0755, "top-level00", past)
	lows := lowerTrees(t, s)

	pid := mountDaemon(t, s)
	want := snapshot(t, s.Mnt) // the lower tree, through the mount
	start := time.Now()
	if out, err := runHelper(t, 120*time.Second, "copyup-tree", s.Mnt); err != nil {
		t.Fatalf("copy-up of the tree: %v %s", err, out)
	}
	took := time.Since(start)
	t.Logf("copying up the tree (%d objects) takes %v", len(want), took)
	checkUpperComplete(t, s, lows, 0)
	unmountLive(t, s.Mnt, pid)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	n := iterations(5)
	hows := []string{"fusermount3", "umount-l", "umount"}
	var outcomes []string
	for i := 0; i < n; i++ {
		resetUpper(t, s)
		pid := mountDaemon(t, s)
		delay := time.Duration(rng.Int64N(int64(took)))
		cu := startHelper(t, "copyup-tree", s.Mnt)
		time.Sleep(delay)
		crash(t, pid)
		if _, done := cu.wait(20 * time.Second); !done {
			t.Fatalf("tree copy-up still blocked 20 s after the daemon died: a hang")
		}
		expectDead(t, s.Mnt)
		unmountDead(t, s.Mnt, hows[i%len(hows)])
		odd := checkUpperComplete(t, s, lows, 1)
		up := snapshot(t, s.Upper)
		outcomes = append(outcomes, fmt.Sprintf("%v: %d of %d objects up", delay.Round(time.Millisecond), len(up), len(want)))

		pid = mountDaemon(t, s)
		checkWorkClean(t, s.Work)
		got := snapshot(t, s.Mnt)
		reportDiffs(t, fmt.Sprintf("iteration %d: the tree after the remount differs from the lower tree", i), diffTrees(want, got, "lower", "remount", odd > 0))
		// Finish the job: the tree is then complete in the upper layer.
		if out, err := runHelper(t, 120*time.Second, "copyup-tree", s.Mnt); err != nil {
			t.Fatalf("iteration %d: copy-up of the tree after the remount: %v %s", i, err, out)
		}
		checkUpperComplete(t, s, lows, odd)
		if i == n-1 {
			compareWithKernel(t, s, pid, snapshot(t, s.Mnt))
		} else {
			unmountLive(t, s.Mnt, pid)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("kills after: %s", strings.Join(outcomes, ", "))
}

// helperForAnyone copies the test binary where every user can run it (the
// go test binary lives in a directory of root's alone).
func helperForAnyone(t *testing.T, s *mounttest.Stack) string {
	t.Helper()
	for _, d := range []string{filepath.Dir(s.Dir), s.Dir} {
		if err := os.Chmod(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(s.Dir, "helper")
	if err := os.WriteFile(bin, data, 0755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestKillDuringCreates kills the daemon while an unprivileged user
// creates files and directories: every object the crash leaves in the
// upper layer must be the user's, with the mode asked for (kernel
// overlayfs creates it with the caller's credentials, in one step).
func TestKillDuringCreates(t *testing.T) {
	mounttest.Require(t)
	s := newStack(t, 1)
	pub := filepath.Join(s.Lowers[0], "pub")
	if err := os.Mkdir(pub, 0777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0777); err != nil {
		t.Fatal(err)
	}
	bin := helperForAnyone(t, s)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	total := 0
	var wrong []string
	n := iterations(8)
	for i := 0; i < n && len(wrong) == 0; i++ {
		pid := mountDaemon(t, s)
		cmd := exec.Command(bin, "creator", filepath.Join(s.Mnt, "pub"), fmt.Sprintf("i%d", i))
		cmd.Env = append(os.Environ(), helperEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(300*time.Millisecond))))
		crash(t, pid)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("the creator still runs 20 s after the daemon died: a hang")
		}
		expectDead(t, s.Mnt)
		unmountDead(t, s.Mnt, "umount")

		ents, err := os.ReadDir(filepath.Join(s.Upper, "pub"))
		if errors.Is(err, os.ErrNotExist) {
			// Killed before the creator's first create (a slow start
			// under load): nothing was copied up, nothing to check.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		total = len(ents)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), fmt.Sprintf("i%d-", i)) {
				continue
			}
			o := statObj(filepath.Join(s.Upper, "pub", e.Name()))
			want := uint32(0640)
			if o.typ == unix.S_IFDIR {
				want = 0750
			}
			if o.uid != 65534 || o.gid != 65534 || o.perm != want {
				wrong = append(wrong, fmt.Sprintf("pub/%s: %s owned by %d:%d, mode %04o (made by 65534:65534 with mode %04o)", e.Name(), typeName(o.typ), o.uid, o.gid, o.perm, want))
			}
		}
	}
	t.Logf("%d objects created over the crashes", total)
	if len(wrong) > 0 {
		t.Fatalf("a crash during a create left objects in the upper layer not owned by their creator: %s", strings.Join(wrong, "; "))
	}
}
