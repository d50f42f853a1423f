package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is what a workload step works on.
type Env struct {
	Root      string  // mount root (or plain directory)
	L         *Layers // the layer set (nil for walk200k)
	RandReads int
	Seed      uint64
	ManyFiles int // walk200k: number of files

	Plain bool // the plain directory, not an overlay

	byte0 []byte // first byte of the big file, read by the copy-up setup

	// Remount unmounts the target and mounts it again, timing only the
	// mount (the mount workload and shared steps; set by the runner for
	// each target).
	Remount func() (time.Duration, error)
}

func (e *Env) path(rel string) string { return filepath.Join(e.Root, rel) }

// StepResult is what a step did besides taking time.
type StepResult struct {
	Bytes int64
	Files int
}

// Step is one timed operation. Cold steps run on a freshly remounted
// target after dropping the caches; warm steps run right after the
// previous step, on the same mount; shared steps run on a freshly
// remounted target whose layers' data the page cache still holds.
type Step struct {
	Name string
	Cold bool
	// Shared (with Cold unset) reads Cache through the mount, then
	// unmounts and mounts again without dropping caches: a FUSE daemon
	// starts with empty caches and its page cache is empty, but the
	// layers' files are cached, as a second container of an image finds
	// them.
	Shared bool
	Cache  string // relative path, for Shared
	Desc   string
	// Run does the work and returns how long the timed part took.
	Run func(e *Env) (time.Duration, StepResult, error)
}

func (s Step) mode() string {
	switch {
	case s.Cold:
		return "cold"
	case s.Shared:
		return "shared"
	}
	return "warm"
}

// Scenario is a sequence of steps on one fresh state (new upper dir).
type Scenario struct {
	Name    string
	Desc    string
	Mutates bool // changes the tree: the plain directory must be restored
	Many    bool // runs on the walk200k layer instead of the main set
	Setup   func(e *Env) error
	Steps   []Step
}

func coldWarm(name, desc string, run func(e *Env) (time.Duration, StepResult, error)) []Step {
	return []Step{{Name: name, Cold: true, Desc: desc, Run: run}, {Name: name, Cold: false, Desc: desc, Run: run}}
}

// coldWarmShared adds a shared step (the big file cached, a new mount) to
// coldWarm's two.
func coldWarmShared(name, desc string, run func(e *Env) (time.Duration, StepResult, error)) []Step {
	return append(coldWarm(name, desc, run), Step{Name: name, Shared: true, Cache: bigName, Desc: desc, Run: run})
}

// Scenarios lists the workloads, in the order they run.
func Scenarios(withBuild, withMany bool) []Scenario {
	var ro []Step
	ro = append(ro, coldWarm("walk", "readdir of every directory of the tree (Go, getdents only)", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return walkTree(e.path(treeDir), false, false) })
	})...)
	ro = append(ro, coldWarm("stat", "readdir + lstat of every entry of the tree (Go)", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return walkTree(e.path(treeDir), true, false) })
	})...)
	ro = append(ro, coldWarm("find", "find(1) over the tree", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return StepResult{}, runQuiet("", nil, "find", e.path(treeDir)) })
	})...)
	ro = append(ro, coldWarm("ls-l", "ls -lR of the tree: lstat and the ACL and security-label lookups of every entry", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return StepResult{}, runQuiet("", nil, "ls", "-lR", e.path(treeDir)) })
	})...)
	ro = append(ro, coldWarm("read-small", "open + read + close of every file of the tree (Go)", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return walkTree(e.path(treeDir), false, true) })
	})...)
	ro = append(ro, coldWarmShared("seq-read", "sequential read of the big lower file, 1 MiB reads", func(e *Env) (time.Duration, StepResult, error) {
		return timed(func() (StepResult, error) { return seqRead(e.path(bigName)) })
	})...)
	ro = append(ro, coldWarmShared("rand-read", "4 KiB preads at random 4 KiB-aligned offsets of the big lower file", func(e *Env) (time.Duration, StepResult, error) {
		return randRead(e.path(bigName), e.RandReads, e.Seed, false)
	})...)
	ro = append(ro, coldWarmShared("mmap-read", "one byte read through a shared read-only mmap at random pages of the big lower file", func(e *Env) (time.Duration, StepResult, error) {
		return randRead(e.path(bigName), e.RandReads, e.Seed, true)
	})...)

	out := []Scenario{
		{Name: "read-only", Desc: "metadata walks and reads on one mount (no writes)", Steps: ro},
		{Name: "seq-write", Steps: []Step{{Name: "seq-write", Cold: true,
			Desc: "write a new file of the big file's size in 1 MiB writes, then fsync",
			Run: func(e *Env) (time.Duration, StepResult, error) {
				return seqWrite(e.path("new.bin"), e.L.BigSize, e.Seed)
			}}}},
		{Name: "untar", Steps: []Step{
			{Name: "untar", Cold: true, Desc: "tar -xf of the tree (a tarball outside the mount) into a new directory", Run: func(e *Env) (time.Duration, StepResult, error) {
				return timed(func() (StepResult, error) {
					d := e.path("untar")
					if err := os.Mkdir(d, 0o755); err != nil {
						return StepResult{}, err
					}
					return StepResult{}, runQuiet("", nil, "tar", "-C", d, "-xf", e.L.Tarball)
				})
			}},
			{Name: "rm-rf", Cold: true, Desc: "rm -rf of the untarred tree (after a remount)", Run: func(e *Env) (time.Duration, StepResult, error) {
				return timed(func() (StepResult, error) { return StepResult{}, runQuiet("", nil, "rm", "-rf", e.path("untar")) })
			}},
		}},
		{Name: "chmod", Mutates: true, Steps: []Step{{Name: "chmod", Cold: true,
			Desc: "chmod of every lower file (copy-up of metadata; kernel overlayfs without metacopy copies the data too)",
			Run: func(e *Env) (time.Duration, StepResult, error) {
				return forEachFile(e, false, func(p string, f TreeFile) error { return syscall.Chmod(p, uint32(f.Mode^0o004)) })
			}}}},
		{Name: "touch", Mutates: true, Steps: []Step{{Name: "touch", Cold: true,
			Desc: "set atime/mtime of every lower file (copy-up of metadata)",
			Run: func(e *Env) (time.Duration, StepResult, error) {
				ts := []syscall.Timespec{syscall.NsecToTimespec(time.Now().UnixNano()), syscall.NsecToTimespec(time.Now().UnixNano())}
				return forEachFile(e, false, func(p string, f TreeFile) error { return syscall.UtimesNano(p, ts) })
			}}}},
		{Name: "unlink", Mutates: true, Steps: []Step{{Name: "unlink", Cold: true,
			Desc: "unlink of every lower file (whiteouts)",
			Run: func(e *Env) (time.Duration, StepResult, error) {
				return forEachFile(e, true, func(p string, f TreeFile) error { return syscall.Unlink(p) })
			}}}},
		{Name: "copy-up",
			Setup: copyUpSetup,
			Steps: []Step{{Name: "copy-up", Cold: true,
				Desc: "open O_RDWR + 1-byte write of the big lower file (full data copy-up), until the write returns; plain: cp --reflink=auto of the big file",
				Run: func(e *Env) (time.Duration, StepResult, error) {
					if e.Plain {
						// The reference of the copy-up target: a copy of
						// the file on the same filesystem, as cp makes it.
						return timed(func() (StepResult, error) {
							return StepResult{Files: 1}, runQuiet("", nil, "cp", "--reflink=auto", e.path(bigName), e.path(bigName+".copy"))
						})
					}
					return copyUp(e.path(bigName), e.byte0, false)
				}}}},
		{Name: "copy-up-fsync",
			Setup: copyUpSetup,
			Steps: []Step{{Name: "copy-up-fsync", Cold: true,
				Desc: "open O_RDWR + 1-byte write of the big lower file + fsync, until the fsync returns (the whole copy durable); plain: cp --reflink=auto of the big file + fsync of the copy",
				Run: func(e *Env) (time.Duration, StepResult, error) {
					if e.Plain {
						return timed(func() (StepResult, error) {
							dst := e.path(bigName + ".copy")
							if err := runQuiet("", nil, "cp", "--reflink=auto", e.path(bigName), dst); err != nil {
								return StepResult{}, err
							}
							return StepResult{Files: 1}, fsyncPath(dst)
						})
					}
					return copyUp(e.path(bigName), e.byte0, true)
				}}}},
		{Name: "mount", Steps: []Step{{Name: "mount", Cold: true,
			Desc: fmt.Sprintf("the mount command until it returns (a FUSE daemon then serving in the background), plus an lstat of the big lower file through the mount; mean of %d mounts", mountRounds),
			Run:  mountTimes}}},
		{Name: "cp", Steps: []Step{{Name: "cp", Cold: true,
			Desc: "cp of the big lower file to a new file in the mount (coreutils cp: copy_file_range), until cp returns",
			Run: func(e *Env) (time.Duration, StepResult, error) {
				return timed(func() (StepResult, error) {
					return StepResult{Files: 1, Bytes: e.L.BigSize}, runQuiet("", nil, "cp", e.path(bigName), e.path(bigName+".cp"))
				})
			}}}},
	}
	if withBuild {
		build := func(e *Env) (time.Duration, StepResult, error) {
			return timed(func() (StepResult, error) { return StepResult{}, goBuild(e) })
		}
		out = append(out, Scenario{Name: "build", Steps: []Step{
			{Name: "build-fresh", Cold: true, Desc: "go build with the tree's own toolchain, GOROOT, GOCACHE and GOTMPDIR inside the mount, empty cache", Run: build},
			{Name: "build-noop", Cold: true, Desc: "the same go build again after a remount (everything cached)", Run: build},
			{Name: "build-noop", Cold: false, Desc: "the same go build again after a remount (everything cached)", Run: build},
		}})
	}
	if withMany {
		out = append(out, Scenario{Name: "walk200k", Many: true, Steps: []Step{
			{Name: "walk200k-stat", Cold: true, Desc: "readdir + lstat of a lower layer of many small files", Run: func(e *Env) (time.Duration, StepResult, error) {
				return timed(func() (StepResult, error) { return walkTree(e.path("files"), true, false) })
			}},
			{Name: "walk200k-read", Cold: true, Desc: "read every file of a lower layer of many small files", Run: func(e *Env) (time.Duration, StepResult, error) {
				return timed(func() (StepResult, error) { return walkTree(e.path("files"), false, true) })
			}},
		}})
	}
	return out
}

// mountRounds is how many mounts one sample of the mount workload
// averages: one takes 5-30 ms, within the machine's noise.
const mountRounds = 10

// mountTimes times mounting the target again and a first stat through it:
// what a container engine waits for before it starts a container.
func mountTimes(e *Env) (time.Duration, StepResult, error) {
	var total time.Duration
	for range mountRounds {
		d, err := e.Remount()
		if err != nil {
			return 0, StepResult{}, err
		}
		t0 := time.Now()
		if _, err := os.Lstat(e.path(bigName)); err != nil {
			return 0, StepResult{}, err
		}
		total += d + time.Since(t0)
	}
	return total / mountRounds, StepResult{}, nil
}

func timed(f func() (StepResult, error)) (time.Duration, StepResult, error) {
	t0 := time.Now()
	r, err := f()
	return time.Since(t0), r, err
}

// walkTree walks dir with getdents (no sorting); with stat it lstats every
// entry, with read it reads every regular file.
func walkTree(dir string, stat, read bool) (StepResult, error) {
	var res StepResult
	var buf []byte
	if read {
		buf = make([]byte, 256<<10)
	}
	var walk func(d string) error
	walk = func(d string) error {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := d + "/" + e.Name()
			res.Files++
			if stat {
				var st syscall.Stat_t
				if err := syscall.Lstat(p, &st); err != nil {
					return fmt.Errorf("lstat %s: %w", p, err)
				}
			}
			switch {
			case e.IsDir():
				if err := walk(p); err != nil {
					return err
				}
			case read && e.Type().IsRegular():
				n, err := readFile(p, buf)
				if err != nil {
					return err
				}
				res.Bytes += n
			}
		}
		return nil
	}
	return res, walk(dir)
}

func readFile(p string, buf []byte) (int64, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", p, err)
	}
	defer syscall.Close(fd)
	var total int64
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return total, fmt.Errorf("read %s: %w", p, err)
		}
		if n == 0 {
			return total, nil
		}
		total += int64(n)
	}
}

func seqRead(p string) (StepResult, error) {
	n, err := readFile(p, make([]byte, 1<<20))
	return StepResult{Bytes: n, Files: 1}, err
}

// randOffsets are n page-aligned offsets in [0, size), the same for every
// target.
func randOffsets(size int64, n int, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 4096))
	pages := size / 4096
	if pages < 1 {
		pages = 1
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = rng.Int64N(pages) * 4096
	}
	return out
}

// randRead does n 4 KiB preads, or n page touches of a shared mmap, at
// random offsets of p. Only the reads are timed (open, mmap included).
func randRead(p string, n int, seed uint64, useMmap bool) (time.Duration, StepResult, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, StepResult{}, err
	}
	offs := randOffsets(st.Size, n, seed)
	t0 := time.Now()
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, StepResult{}, err
	}
	defer syscall.Close(fd)
	res := StepResult{Files: 1, Bytes: int64(n) * 4096}
	if !useMmap {
		buf := make([]byte, 4096)
		for _, off := range offs {
			if _, err := syscall.Pread(fd, buf, off); err != nil {
				return 0, res, fmt.Errorf("pread at %d: %w", off, err)
			}
		}
		return time.Since(t0), res, nil
	}
	data, err := syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, res, fmt.Errorf("mmap: %w", err)
	}
	var sum byte
	for _, off := range offs {
		sum += data[off]
	}
	d := time.Since(t0)
	mmapSink = sum
	return d, res, syscall.Munmap(data)
}

var mmapSink byte

// seqWrite writes size bytes to a new file in 1 MiB writes and fsyncs it.
func seqWrite(p string, size int64, seed uint64) (time.Duration, StepResult, error) {
	buf := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), 1}).Read(buf)
	t0 := time.Now()
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, StepResult{}, err
	}
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		w, err := syscall.Write(fd, buf[:n])
		if err != nil {
			syscall.Close(fd)
			return 0, StepResult{}, fmt.Errorf("write: %w", err)
		}
		left -= int64(w)
	}
	if err := syscall.Fsync(fd); err != nil {
		syscall.Close(fd)
		return 0, StepResult{}, fmt.Errorf("fsync: %w", err)
	}
	if err := syscall.Close(fd); err != nil {
		return 0, StepResult{}, err
	}
	return time.Since(t0), StepResult{Files: 1, Bytes: size}, nil
}

// forEachFile applies op to every lower file of the tree (symlinks only
// with withSymlinks), timing the loop.
func forEachFile(e *Env, withSymlinks bool, op func(p string, f TreeFile) error) (time.Duration, StepResult, error) {
	var res StepResult
	t0 := time.Now()
	for _, f := range e.L.Files {
		if f.Symlink && !withSymlinks {
			continue
		}
		p := e.path(f.Rel)
		if err := op(p, f); err != nil {
			return 0, res, fmt.Errorf("%s: %w", p, err)
		}
		res.Files++
	}
	return time.Since(t0), res, nil
}

// copyUp opens the big lower file for writing and writes one byte (its own
// first byte, so the plain directory's copy stays the same); the timing
// stops when the write returns.
// copyUpSetup reads the big file's first byte, which the copy-up writes
// back.
func copyUpSetup(e *Env) error {
	f, err := os.Open(e.path(bigName))
	if err != nil {
		return err
	}
	defer f.Close()
	e.byte0 = make([]byte, 1)
	_, err = io.ReadFull(f, e.byte0)
	return err
}

// fsyncPath makes a file durable.
func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// copyUp times the copy-up of the file at p by a write of its first
// byte, b, until the write returns, or with sync until an fsync after it
// does.
func copyUp(p string, b []byte, sync bool) (time.Duration, StepResult, error) {
	if len(b) != 1 {
		return 0, StepResult{}, errors.New("copy-up setup did not run")
	}
	t0 := time.Now()
	fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, StepResult{}, err
	}
	_, err = syscall.Pwrite(fd, b, 0)
	if err == nil && sync {
		err = syscall.Fsync(fd)
	}
	d := time.Since(t0)
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	var st syscall.Stat_t
	if err == nil {
		err = syscall.Stat(p, &st)
	}
	return d, StepResult{Files: 1, Bytes: st.Size}, err
}

// goBuild builds the build program with the tree's own go command, with
// GOROOT, GOCACHE and the build's temporary directory inside the mount.
func goBuild(e *Env) error {
	b := e.L.Build
	if b == nil {
		return errors.New("no build program")
	}
	base := e.path(".bench")
	for _, d := range []string{"gocache", "tmp", "out"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return err
		}
	}
	gocache := filepath.Join(base, "gocache")
	if b.SeedCache {
		gocache = e.path(seedCacheDir)
	}
	goroot := e.path(treeDir)
	env := append(goEnv(goroot, gocache), "GOTMPDIR="+filepath.Join(base, "tmp"), "TMPDIR="+filepath.Join(base, "tmp"))
	return runQuiet(e.path(b.Dir), env, filepath.Join(goroot, "bin", "go"), "build", "-o", filepath.Join(base, "out", b.Name), b.Pkg)
}

// Child processes, each in its own process group, so that cleanup can kill
// them (and what they started) before unmounting.
var (
	childrenMu sync.Mutex
	children   = map[int]bool{}
)

// runQuiet runs a command with its output discarded (kept for the error
// message when it fails).
func runQuiet(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	var stderr bytes.Buffer
	cmd.Stdout = devnull
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 4096}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	childrenMu.Lock()
	children[pid] = true
	childrenMu.Unlock()
	err = cmd.Wait()
	childrenMu.Lock()
	delete(children, pid)
	childrenMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// killChildren kills every running child's process group.
func killChildren() {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	for pid := range children {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
