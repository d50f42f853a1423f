package stress

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the stress workers: run with workerEnv set
// to a JSON workerArgs, it works on the mount until the deadline, checks
// its own files and writes a workerResult.
const workerEnv = "STRATA_STRESS_WORKER"

type workerArgs struct {
	Mnt    string   // the mount
	Lowers []string // the lower layers, top-most first (to know the start)
	ID     int
	Seed   uint64
	Until  int64  // deadline, Unix nanoseconds
	Result string // where the result goes
	// Inflight is the file of the shared operation counters
	// (inflight_test.go).
	Inflight string
	// SizesKept: the mount has the writeback cache, so the kernel keeps
	// files' sizes itself and the attribute races inflight_test.go
	// excuses cannot happen: any SIGBUS of the shared-area reader fails.
	SizesKept bool
}

type workerResult struct {
	Files    map[string]string // own files (mount-relative path) -> content hash
	Ops      map[string]int
	Errors   []string // unexpected results: the test fails
	Warnings []string
}

// The private area of worker N is wNN (and wNN/sub): nobody else touches
// it, so the worker knows exactly what must be there. The shared area,
// shared/d0..d4 with names s00..s59, is everybody's: anything may
// happen to a name there, except errors other than ENOENT and EEXIST.
const (
	sharedDirs  = 5
	sharedNames = 60
)

func privDir(id int) string { return fmt.Sprintf("w%02d", id) }

// object is one file of the private area; hard links share it.
type object struct{ data []byte }

type worker struct {
	a     workerArgs
	rng   *rand.Rand
	dir   string
	names map[string]*object // relative to dir: "x" or "sub/x"
	seq   int
	res   workerResult

	inflight *inflight
}

func workerMain(spec string) error {
	var a workerArgs
	if err := json.Unmarshal([]byte(spec), &a); err != nil {
		return err
	}
	w := &worker{
		a:     a,
		rng:   rand.New(rand.NewPCG(a.Seed, uint64(a.ID))),
		dir:   filepath.Join(a.Mnt, privDir(a.ID)),
		names: map[string]*object{},
		res:   workerResult{Ops: map[string]int{}},
	}
	var err error
	if w.inflight, err = openInflight(a.Inflight); err != nil {
		return err
	}
	if err := w.loadStart(); err != nil {
		return err
	}
	w.verify("at the start")
	for time.Now().UnixNano() < a.Until && len(w.res.Errors) < 20 {
		if w.rng.IntN(3) == 0 {
			w.sharedOp()
		} else {
			w.privateOp()
		}
	}
	w.verify("at the end")
	w.res.Files = map[string]string{}
	for name, o := range w.names {
		w.res.Files[filepath.Join(privDir(a.ID), name)] = fmt.Sprintf("%x", sha256.Sum256(o.data))
	}
	b, err := json.Marshal(w.res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(a.Result, b, 0644); err != nil {
		return err
	}
	if len(w.res.Errors) > 0 {
		return fmt.Errorf("worker %d: %d errors, first: %s", a.ID, len(w.res.Errors), w.res.Errors[0])
	}
	return nil
}

func (w *worker) fail(format string, args ...any) {
	w.res.Errors = append(w.res.Errors, fmt.Sprintf("worker %d: ", w.a.ID)+fmt.Sprintf(format, args...))
}

// loadStart reads what the private area holds before anything ran, from
// the lower layers themselves (the top-most copy of each name wins).
func (w *worker) loadStart() error {
	for _, sub := range []string{"", "sub"} {
		for i := len(w.a.Lowers) - 1; i >= 0; i-- {
			d := filepath.Join(w.a.Lowers[i], privDir(w.a.ID), sub)
			ents, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if !e.Type().IsRegular() {
					continue
				}
				data, err := os.ReadFile(filepath.Join(d, e.Name()))
				if err != nil {
					return err
				}
				w.names[filepath.Join(sub, e.Name())] = &object{data}
			}
		}
	}
	return nil
}

// verify checks the private area against the model: the same names, the
// same content.
func (w *worker) verify(when string) {
	got := map[string]bool{}
	for _, sub := range []string{"", "sub"} {
		f, err := os.Open(filepath.Join(w.dir, sub))
		if err != nil {
			w.fail("%s: opendir %s: %v", when, sub, err)
			continue
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			w.fail("%s: readdir %s: %v", when, sub, err)
		}
		for _, n := range names {
			if sub == "" && n == "sub" {
				continue
			}
			rel := filepath.Join(sub, n)
			if got[rel] {
				w.fail("%s: %s listed twice", when, rel)
			}
			got[rel] = true
		}
	}
	for name, o := range w.names {
		if !got[name] {
			w.fail("%s: %s is missing from the listing", when, name)
			continue
		}
		w.check(when, name, o)
	}
	for name := range got {
		if w.names[name] == nil {
			w.fail("%s: %s is listed but was removed", when, name)
		}
	}
}

// check reads a private file and compares it with the model.
func (w *worker) check(when, name string, o *object) {
	data, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		w.fail("%s: read %s: %v", when, name, err)
		return
	}
	if !bytes.Equal(data, o.data) {
		i := 0
		for i < len(data) && i < len(o.data) && data[i] == o.data[i] {
			i++
		}
		w.fail("%s: %s holds %d bytes, want %d; first difference at %d", when, name, len(data), len(o.data), i)
	}
}

func (w *worker) randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	return b
}

// pick returns a random private name ("" when there is none).
func (w *worker) pick() string {
	if len(w.names) == 0 {
		return ""
	}
	keys := make([]string, 0, len(w.names))
	for k := range w.names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[w.rng.IntN(len(keys))]
}

func (w *worker) newName() string {
	w.seq++
	if w.rng.IntN(3) == 0 {
		return fmt.Sprintf("sub/n%d", w.seq)
	}
	return fmt.Sprintf("n%d", w.seq)
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

func (w *worker) privateOp() {
	ops := []string{"create", "pwrite", "pwrite", "append", "truncate", "read", "read", "rename",
		"unlink", "link", "mmapwrite", "mmapread", "fsync", "stat", "tmpfile"}
	op := ops[w.rng.IntN(len(ops))]
	if len(w.names) < 4 {
		op = "create"
	} else if len(w.names) > 40 && w.rng.IntN(2) == 0 {
		op = "unlink"
	}
	w.res.Ops[op]++
	name := w.pick()
	path := filepath.Join(w.dir, name)
	o := w.names[name]
	switch op {
	case "create":
		name = w.newName()
		data := w.randomBytes(w.rng.IntN(32 << 10))
		fd, err := unix.Open(filepath.Join(w.dir, name), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0644)
		if err != nil {
			w.fail("create %s: %v", name, err)
			return
		}
		if _, err := unix.Write(fd, data); err != nil {
			w.fail("write new %s: %v", name, err)
		}
		unix.Close(fd)
		w.names[name] = &object{data}
	case "tmpfile":
		// Written unnamed (O_TMPFILE), then linked, or dropped.
		name = w.newName()
		p := filepath.Join(w.dir, name)
		data := w.randomBytes(w.rng.IntN(32 << 10))
		fd, err := unix.Open(filepath.Dir(p), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0644)
		if err != nil {
			w.fail("open O_TMPFILE in %s: %v", filepath.Dir(name), err)
			return
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, data); err != nil {
			w.fail("write unnamed %s: %v", name, err)
			return
		}
		if w.rng.IntN(4) == 0 {
			return // never named: it goes with the descriptor
		}
		if err := unix.Linkat(fd, "", unix.AT_FDCWD, p, unix.AT_EMPTY_PATH); err != nil {
			w.fail("link unnamed file as %s: %v", name, err)
			return
		}
		w.names[name] = &object{data}
	case "pwrite", "append", "fsync":
		// Opening a lower file for writing copies it up.
		flags := unix.O_WRONLY | unix.O_CLOEXEC
		if op == "append" {
			flags |= unix.O_APPEND
		}
		fd, err := unix.Open(path, flags, 0)
		if err != nil {
			w.fail("open %s for writing: %v", name, err)
			return
		}
		defer unix.Close(fd)
		data := w.randomBytes(1 + w.rng.IntN(16<<10))
		off := len(o.data)
		if op != "append" {
			off = w.rng.IntN(len(o.data) + 4096)
		}
		var n int
		if op == "append" {
			n, err = unix.Write(fd, data)
		} else {
			n, err = unix.Pwrite(fd, data, int64(off))
		}
		if err != nil || n != len(data) {
			w.fail("%s %s: %d of %d bytes, %v", op, name, n, len(data), err)
			return
		}
		if end := off + len(data); end > len(o.data) {
			o.data = resize(o.data, end)
		}
		copy(o.data[off:], data)
		if op == "fsync" {
			if err := unix.Fsync(fd); err != nil {
				w.fail("fsync %s: %v", name, err)
			}
		}
	case "truncate":
		size := w.rng.IntN(len(o.data) + 8192)
		if err := unix.Truncate(path, int64(size)); err != nil {
			w.fail("truncate %s: %v", name, err)
			return
		}
		o.data = resize(o.data, size)
	case "read":
		w.check("read", name, o)
	case "stat":
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil || st.Size != int64(len(o.data)) {
			w.fail("stat %s: size %d, %v; want %d", name, st.Size, err, len(o.data))
		}
	case "rename":
		to := w.newName()
		if w.rng.IntN(4) == 0 {
			to = w.pick() // over an existing name
		}
		if err := unix.Rename(path, filepath.Join(w.dir, to)); err != nil {
			w.fail("rename %s to %s: %v", name, to, err)
			return
		}
		if w.names[to] != o { // renaming a name onto another name of the same file does nothing
			w.names[to] = o
			delete(w.names, name)
		}
	case "unlink":
		if err := unix.Unlink(path); err != nil {
			w.fail("unlink %s: %v", name, err)
			return
		}
		delete(w.names, name)
	case "link":
		to := w.newName()
		if err := unix.Link(path, filepath.Join(w.dir, to)); err != nil {
			w.fail("link %s to %s: %v", name, to, err)
			return
		}
		w.names[to] = o
	case "mmapwrite", "mmapread":
		if len(o.data) == 0 {
			return
		}
		mode, prot := unix.O_RDONLY, unix.PROT_READ
		if op == "mmapwrite" {
			mode, prot = unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
		}
		fd, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			w.fail("open %s for mmap: %v", name, err)
			return
		}
		defer unix.Close(fd)
		m, err := unix.Mmap(fd, 0, len(o.data), prot, unix.MAP_SHARED)
		if err != nil {
			w.fail("mmap %s: %v", name, err)
			return
		}
		defer unix.Munmap(m)
		if op == "mmapread" {
			got, ok := faultless(func() []byte { return append([]byte(nil), m...) })
			if !ok {
				w.fail("mmap read of %s: SIGBUS", name)
			} else if !bytes.Equal(got, o.data) {
				w.fail("mmap read of %s differs from what was written", name)
			}
			return
		}
		off := w.rng.IntN(len(o.data))
		data := w.randomBytes(1 + w.rng.IntN(len(o.data)-off))
		if _, ok := faultless(func() []byte { copy(m[off:], data); return nil }); !ok {
			w.fail("mmap write of %s: SIGBUS", name)
			return
		}
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			w.fail("msync %s: %v", name, err)
		}
		copy(o.data[off:], data)
	}
}

// faultless runs fn, turning a fault on a mapping into ok == false.
func faultless(fn func() []byte) (b []byte, ok bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return fn(), true
}

func (w *worker) sharedName() string {
	return fmt.Sprintf("shared/d%d/s%02d", w.rng.IntN(sharedDirs), w.rng.IntN(sharedNames))
}

// sharedOp does something to the shared area: others may race it, so
// ENOENT and EEXIST are fine, nothing else is.
func (w *worker) sharedOp() {
	ops := []string{"sread", "swrite", "sappend", "screate", "srename", "sunlink", "slink", "smmap", "sreaddir", "sstat"}
	op := ops[w.rng.IntN(len(ops))]
	w.res.Ops[op]++
	name := w.sharedName()
	path := filepath.Join(w.a.Mnt, name)
	var err error
	switch op {
	case "sread":
		_, err = os.ReadFile(path)
	case "sstat":
		var st unix.Stat_t
		err = unix.Lstat(path, &st)
	case "swrite", "sappend", "screate":
		flags := unix.O_WRONLY | unix.O_CLOEXEC
		switch op {
		case "sappend":
			flags |= unix.O_APPEND
		case "screate":
			flags |= unix.O_CREAT | unix.O_EXCL
		}
		var fd int
		fd, err = unix.Open(path, flags, 0644)
		if err == nil {
			data := w.randomBytes(1 + w.rng.IntN(8192))
			off := int64(w.rng.IntN(8192))
			err = w.inflight.write(fd, func() (err error) {
				if op == "swrite" {
					_, err = unix.Pwrite(fd, data, off)
				} else {
					_, err = unix.Write(fd, data)
				}
				return err
			})
			unix.Close(fd)
		}
	case "srename":
		err = unix.Rename(path, filepath.Join(w.a.Mnt, w.sharedName()))
	case "sunlink":
		err = unix.Unlink(path)
	case "slink":
		err = w.inflight.link(path, filepath.Join(w.a.Mnt, w.sharedName()))
	case "smmap":
		var fd int
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			// What runs on the inode is noted before the size that is
			// mapped is read, so that anything that could make that
			// size run ahead of the kernel's shows.
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil {
				win := w.inflight.open(st.Ino)
				if err = unix.Fstat(fd, &st); err == nil && st.Size > 0 {
					w.mmapRead(fd, name, st.Ino, st.Size, win)
				}
			}
			unix.Close(fd)
		}
	case "sreaddir":
		var f *os.File
		dir := filepath.Dir(path)
		if f, err = os.Open(dir); err == nil {
			var names []string
			names, err = f.Readdirnames(-1)
			f.Close()
			seen := map[string]bool{}
			for _, n := range names {
				if seen[n] {
					w.res.Warnings = append(w.res.Warnings, fmt.Sprintf("%s listed %s twice", dir, n))
				}
				seen[n] = true
			}
		}
	}
	if err != nil && !isErrno(err, unix.ENOENT) && !isErrno(err, unix.EEXIST) {
		w.fail("%s %s: %v", op, name, err)
	}
}

func isErrno(err error, e unix.Errno) bool {
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	x, ok := err.(unix.Errno)
	return ok && x == e
}

// populate fills three lower layers for the stress test: the workers'
// private areas (with files in several layers) and the shared area
// (files in every layer, a whiteout and an opaque directory in the
// middle one).
func populate(lowers []string, workers int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(p string, n int) error {
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			return err
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return os.WriteFile(p, b, 0644)
	}
	top, mid, bottom := lowers[0], lowers[1], lowers[2]
	for id := 0; id < workers; id++ {
		d := privDir(id)
		for i := 0; i < 12; i++ {
			if err := write(filepath.Join(bottom, d, fmt.Sprintf("lf%02d", i)), rng.IntN(48<<10)); err != nil {
				return err
			}
		}
		// A large file: a write copies only the chunks it touches, the
		// rest follows in the background (overlay/fill.go).
		if err := write(filepath.Join(bottom, d, "lbig"), 4<<20+rng.IntN(3<<20)); err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			if err := write(filepath.Join(bottom, d, "sub", fmt.Sprintf("sf%d", i)), rng.IntN(16<<10)); err != nil {
				return err
			}
		}
		for _, f := range []string{"lf02", "l1only"} {
			if err := write(filepath.Join(mid, d, f), rng.IntN(8<<10)); err != nil {
				return err
			}
		}
		for _, f := range []string{"lf05", "sub/top"} {
			if err := write(filepath.Join(top, d, f), rng.IntN(8<<10)); err != nil {
				return err
			}
		}
	}
	for dn := 0; dn < sharedDirs; dn++ {
		for i := 0; i < sharedNames; i += 2 {
			layer := lowers[i%3]
			if err := write(filepath.Join(layer, "shared", fmt.Sprintf("d%d", dn), fmt.Sprintf("s%02d", i)), rng.IntN(16<<10)); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{top, mid} {
		if err := os.MkdirAll(filepath.Join(d, "shared", "d4"), 0755); err != nil {
			return err
		}
	}
	// A kernel-format whiteout and opaque directory in the middle layer.
	if err := unix.Mknod(filepath.Join(mid, "shared", "d2", "s02"), unix.S_IFCHR, 0); err != nil {
		return err
	}
	if err := unix.Setxattr(filepath.Join(mid, "shared", "d4"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return err
	}
	return nil
}

// checkWorkerFiles checks a worker's own files (from its result) against
// a snapshot of the whole tree.
func checkWorkerFiles(id int, files map[string]string, tr tree) []string {
	var out []string
	prefix := privDir(id) + "/"
	for rel, e := range tr {
		if e.typ == unix.S_IFREG && strings.HasPrefix(rel, prefix) {
			if _, ok := files[rel]; !ok {
				out = append(out, fmt.Sprintf("%s is there but worker %d removed it", rel, id))
			}
		}
	}
	for rel, sum := range files {
		e, ok := tr[rel]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s is missing (worker %d)", rel, id))
		case e.sum != sum:
			out = append(out, fmt.Sprintf("%s: %v, worker %d last wrote sha %.16s", rel, e, id, sum))
		}
	}
	return out
}
