package overlay_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

const (
	concDirs     = 4
	concFiles    = 30 // per directory in lower0
	concDeep     = 5  // per directory in lower1
	concWorkers  = 8
	concPrefix   = 16 // bytes every writer writes at offset 0
	concDuration = 1200 * time.Millisecond
)

func concOrig(dir, name string) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%s/%s;", dir, name)), 300)
}

// concShared lists the lower files every worker reads and writes.
func concShared() (dirs []string, files map[string][]string) {
	files = map[string][]string{}
	for i := 0; i < concDirs; i++ {
		d := fmt.Sprintf("d%d", i)
		dirs = append(dirs, d)
		for j := 0; j < concFiles; j++ {
			files[d] = append(files[d], fmt.Sprintf("f%d", j))
		}
		for j := 0; j < concDeep; j++ {
			files[d] = append(files[d], fmt.Sprintf("g%d", j))
		}
	}
	return dirs, files
}

// checkShared checks a shared file's content: the original, with some of
// the first concPrefix bytes replaced by 'W' (a write may be seen
// partly), or all of them when written must be true.
func checkShared(got []byte, dir, name string, written bool) error {
	want := concOrig(dir, name)
	if len(got) != len(want) {
		return fmt.Errorf("%s/%s: %d bytes, want %d", dir, name, len(got), len(want))
	}
	for i := range got {
		switch {
		case i < concPrefix && got[i] == 'W':
		case i < concPrefix && written:
			return fmt.Errorf("%s/%s: byte %d is %q after a completed write", dir, name, i, got[i])
		case got[i] != want[i]:
			return fmt.Errorf("%s/%s: byte %d is %q, want %q", dir, name, i, got[i], want[i])
		}
	}
	return nil
}

// worker is one goroutine's state: the names it made (only it touches
// them) and the shared files it has written.
type worker struct {
	id    int
	fs    *overlay.FS
	rng   *rand.Rand
	dirs  []string
	files map[string][]string
	own   map[string]string // "dN/name" -> content ("" for a directory)
	seq   int
	wrote map[string]bool // shared files written (or chmodded) by this worker
	ops   map[string]int
}

func (w *worker) lookup(parent *overlay.Node, name string) (*overlay.Node, error) {
	n, _, err := w.fs.Lookup(parent, name)
	return n, err
}

// dir returns a directory node with one reference the caller forgets.
func (w *worker) dir(name string) (*overlay.Node, error) {
	return w.lookup(w.fs.Root(), name)
}

// node looks up dn/name and returns it with what forgets it and its
// directory.
func (w *worker) node(dn, name string) (*overlay.Node, func(), error) {
	d, err := w.dir(dn)
	if err != nil {
		return nil, nil, err
	}
	n, err := w.lookup(d, name)
	if err != nil {
		w.fs.Forget(d, 1)
		return nil, nil, fmt.Errorf("lookup %s/%s: %w", dn, name, err)
	}
	return n, func() { w.fs.Forget(n, 1); w.fs.Forget(d, 1) }, nil
}

func (w *worker) pickShared() (string, string) {
	d := w.dirs[w.rng.Intn(len(w.dirs))]
	fs := w.files[d]
	return d, fs[w.rng.Intn(len(fs))]
}

func (w *worker) pickOwn(wantDir bool) (string, bool) {
	var keys []string
	for k, v := range w.own {
		if (v == "") == wantDir {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	sort.Strings(keys)
	return keys[w.rng.Intn(len(keys))], true
}

func split(p string) (string, string) {
	i := strings.IndexByte(p, '/')
	return p[:i], p[i+1:]
}

func (w *worker) step() error {
	fs := w.fs
	op := w.rng.Intn(12)
	switch op {
	case 0, 1: // read a shared file
		w.ops["read"]++
		dn, name := w.pickShared()
		n, release, err := w.node(dn, name)
		if err != nil {
			return err
		}
		defer release()
		h, err := fs.Open(n, unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("open %s/%s: %w", dn, name, err)
		}
		defer fs.Release(h)
		buf := make([]byte, 16<<10)
		r, err := fs.Read(h, buf, 0)
		if err != nil {
			return err
		}
		return checkShared(buf[:r], dn, name, w.wrote[dn+"/"+name])
	case 2, 3: // write a shared file (copy-up)
		w.ops["write"]++
		dn, name := w.pickShared()
		n, release, err := w.node(dn, name)
		if err != nil {
			return err
		}
		defer release()
		h, err := fs.Open(n, unix.O_RDWR)
		if err != nil {
			return fmt.Errorf("open %s/%s for write: %w", dn, name, err)
		}
		defer fs.Release(h)
		if _, err := fs.Write(h, bytes.Repeat([]byte("W"), concPrefix), 0); err != nil {
			return err
		}
		w.wrote[dn+"/"+name] = true
		return nil
	case 4: // chmod a shared file (copy-up racing the writers)
		w.ops["chmod"]++
		dn, name := w.pickShared()
		n, release, err := w.node(dn, name)
		if err != nil {
			return err
		}
		defer release()
		_, err = fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0640})
		return err
	case 5: // list a directory
		w.ops["readdir"]++
		dn := w.dirs[w.rng.Intn(len(w.dirs))]
		d, err := w.dir(dn)
		if err != nil {
			return err
		}
		defer fs.Forget(d, 1)
		h, err := fs.OpenDir(d)
		if err != nil {
			return err
		}
		ents, err := fs.ReadDir(h, 0, true)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range ents {
			if seen[e.Name] {
				return fmt.Errorf("%s lists %s twice", dn, e.Name)
			}
			seen[e.Name] = true
		}
		for _, name := range w.files[dn] {
			if !seen[name] {
				return fmt.Errorf("%s does not list %s", dn, name)
			}
		}
		for p, content := range w.own {
			if pd, pn := split(p); pd == dn && !seen[pn] {
				return fmt.Errorf("%s does not list its own %s (%q)", dn, pn, content)
			}
		}
		return nil
	case 6, 7: // create a file (or an unnamed one, then linked) or a directory of its own
		w.ops["create"]++
		w.seq++
		dn := w.dirs[w.rng.Intn(len(w.dirs))]
		name := fmt.Sprintf("w%d-%d", w.id, w.seq)
		d, err := w.dir(dn)
		if err != nil {
			return err
		}
		defer fs.Forget(d, 1)
		if op == 7 {
			n, _, _, err := fs.Create(d, name, objDir(0755), caller0)
			if err != nil {
				return fmt.Errorf("mkdir %s/%s: %w", dn, name, err)
			}
			fs.Forget(n, 1)
			w.own[dn+"/"+name] = ""
			return nil
		}
		if w.rng.Intn(2) == 0 {
			// Written unnamed (O_TMPFILE), then linked.
			n, _, err := fs.Tmpfile(d, 0644, caller0)
			if err != nil {
				return fmt.Errorf("tmpfile in %s: %w", dn, err)
			}
			defer fs.Forget(n, 1)
			writeTo := func() error {
				h, err := fs.Open(n, unix.O_WRONLY)
				if err != nil {
					return err
				}
				defer fs.Release(h)
				_, err = fs.Write(h, []byte(name), 0)
				return err
			}
			if err := writeTo(); err != nil {
				return fmt.Errorf("write tmpfile in %s: %w", dn, err)
			}
			if _, err := fs.Link(n, d, name); err != nil {
				return fmt.Errorf("link tmpfile as %s/%s: %w", dn, name, err)
			}
			fs.Forget(n, 1) // the link's reference
			w.own[dn+"/"+name] = name
			return nil
		}
		n, h, _, err := fs.Create(d, name, objFile(0644), caller0)
		if err != nil {
			return fmt.Errorf("create %s/%s: %w", dn, name, err)
		}
		defer fs.Forget(n, 1)
		defer fs.Release(h)
		if _, err := fs.Write(h, []byte(name), 0); err != nil {
			return err
		}
		w.own[dn+"/"+name] = name
		return nil
	case 8: // rename something of its own to another directory
		w.ops["rename"]++
		p, ok := w.pickOwn(w.rng.Intn(2) == 0)
		if !ok {
			return nil
		}
		odn, oname := split(p)
		ndn := w.dirs[w.rng.Intn(len(w.dirs))]
		w.seq++
		nname := fmt.Sprintf("w%d-%d", w.id, w.seq)
		od, err := w.dir(odn)
		if err != nil {
			return err
		}
		defer fs.Forget(od, 1)
		nd, err := w.dir(ndn)
		if err != nil {
			return err
		}
		defer fs.Forget(nd, 1)
		if err := fs.Rename(od, oname, nd, nname, 0); err != nil {
			return fmt.Errorf("rename %s -> %s/%s: %w", p, ndn, nname, err)
		}
		w.own[ndn+"/"+nname] = w.own[p]
		delete(w.own, p)
		return nil
	case 9: // remove something of its own
		w.ops["remove"]++
		isDir := w.rng.Intn(2) == 0
		p, ok := w.pickOwn(isDir)
		if !ok {
			return nil
		}
		dn, name := split(p)
		d, err := w.dir(dn)
		if err != nil {
			return err
		}
		defer fs.Forget(d, 1)
		if isDir {
			err = fs.Rmdir(d, name)
		} else {
			err = fs.Unlink(d, name)
		}
		if err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		delete(w.own, p)
		return nil
	case 10: // copy bytes of a shared file past the writers' prefix into a file of its own
		w.ops["copyrange"]++
		p, ok := w.pickOwn(false)
		if !ok {
			return nil
		}
		sdn, sname := w.pickShared()
		src, releaseSrc, err := w.node(sdn, sname)
		if err != nil {
			return err
		}
		defer releaseSrc()
		dn, name := split(p)
		dst, releaseDst, err := w.node(dn, name)
		if err != nil {
			return err
		}
		defer releaseDst()
		const off, size = concPrefix + 5, 32
		if c, err := fs.CopyRange(src, off, dst, 0, size, false); err != nil || c != size {
			return fmt.Errorf("copy %s/%s to %s: %d, %v", sdn, sname, p, c, err)
		}
		w.own[p] = string(concOrig(sdn, sname)[off : off+size])
		return nil
	default: // look its own names up and read its files
		w.ops["check"]++
		p, ok := w.pickOwn(false)
		if !ok {
			return nil
		}
		dn, name := split(p)
		n, release, err := w.node(dn, name)
		if err != nil {
			return err
		}
		defer release()
		h, err := fs.Open(n, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer fs.Release(h)
		buf := make([]byte, 64)
		r, err := fs.Read(h, buf, 0)
		if err != nil {
			return err
		}
		if string(buf[:r]) != w.own[p] {
			return fmt.Errorf("own %s reads %q, want %q", p, buf[:r], w.own[p])
		}
		return nil
	}
}

// TestConcurrency runs lookups, reads, copy-ups (writes and chmods of the
// same lower files from several goroutines), creates, renames and
// removals on one tree for a while, then checks the merged view, the
// upper layer and that each object was copied up once.
func TestConcurrency(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*overlay.Config)
	}{
		{"sync", func(*overlay.Config) {}},
		{"volatile", func(c *overlay.Config) { c.Volatile = true }},
		// As strata.Mount runs it: copy-ups linked in the background.
		{"async", func(c *overlay.Config) { c.AsyncCopyUp = true }},
	} {
		t.Run(c.name, func(t *testing.T) { testConcurrency(t, c.set) })
	}
}

func testConcurrency(t *testing.T, set func(*overlay.Config)) {
	s := newStack(t, 2)
	dirs, files := concShared()
	for _, d := range dirs {
		for _, name := range files[d] {
			layer := s.lower(0)
			if name[0] == 'g' {
				layer = s.lower(1) // merged directories: some files come from below
			}
			if err := os.MkdirAll(layer+"/"+d, 0755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(layer+"/"+d+"/"+name, concOrig(d, name), 0644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := s.config()
	set(&cfg)
	fs := mountCfg(t, cfg)

	workers := make([]*worker, concWorkers)
	var wg sync.WaitGroup
	deadline := time.Now().Add(concDuration)
	errs := make(chan error, concWorkers)
	for i := range workers {
		w := &worker{id: i, fs: fs, rng: rand.New(rand.NewSource(int64(i) + 1)), dirs: dirs, files: files,
			own: map[string]string{}, wrote: map[string]bool{}, ops: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := w.step(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w.id, err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(concDuration + 60*time.Second):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("workers still running a minute after the deadline: deadlock?\n%s", buf[:n])
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	total := map[string]int{}
	for _, w := range workers {
		for k, v := range w.ops {
			total[k] += v
		}
	}
	t.Logf("operations: %v", total)

	// The merged view: every shared file, every name of every worker.
	checkView := func(fs *overlay.FS, what string) {
		t.Helper()
		for _, dn := range dirs {
			d, _ := mustWalk(t, fs, dn)
			want := map[string]string{}
			for _, name := range files[dn] {
				want[name] = "shared"
			}
			for _, w := range workers {
				for p, c := range w.own {
					if pd, pn := split(p); pd == dn {
						want[pn] = c
					}
				}
			}
			got := listDir(t, fs, d)
			var wantList []string
			for k := range want {
				wantList = append(wantList, k)
			}
			wantNames(t, what+" "+dn, got, wantList...)
			for name, c := range want {
				n, st, err := fs.Lookup(d, name)
				if err != nil {
					t.Fatalf("%s: %s/%s: %v", what, dn, name, err)
				}
				switch {
				case c == "shared":
					written := false
					for _, w := range workers {
						written = written || w.wrote[dn+"/"+name]
					}
					h, err := fs.Open(n, unix.O_RDONLY)
					if err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, 16<<10)
					r, _ := fs.Read(h, buf, 0)
					fs.Release(h)
					if err := checkShared(buf[:r], dn, name, written); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
				case c == "":
					if st.Mode&unix.S_IFMT != unix.S_IFDIR {
						t.Fatalf("%s: %s/%s is not a directory", what, dn, name)
					}
				default:
					if got := readAll(t, fs, n); got != c {
						t.Fatalf("%s: %s/%s reads %q, want %q", what, dn, name, got, c)
					}
				}
				fs.Forget(n, 1)
			}
		}
	}
	checkView(fs, "engine")
	fs.Settle() // copy-ups linked in the background are all linked now

	// Each copied-up object was copied once: the objects of the lower
	// layers now in the upper layer are as many as the copy-ups.
	inUpper := 0
	for _, dn := range dirs {
		if !exists(s.upper + "/" + dn) {
			continue
		}
		inUpper++
		for _, name := range files[dn] {
			if exists(s.upper + "/" + dn + "/" + name) {
				wantKind(t, s.upper+"/"+dn+"/"+name, unix.S_IFREG)
				inUpper++
			}
		}
	}
	if got := fs.Stats().CopyUps; got != uint64(inUpper) {
		t.Fatalf("Stats().CopyUps = %d, but %d lower objects are in the upper layer: some were copied up twice", got, inUpper)
	}
	if inUpper == 0 {
		t.Fatalf("no copy-up happened: the test is void")
	}
	wantWorkEmpty(t, s)
	// Nothing of the workers' own was removed with a whiteout (no lower
	// copy), and no whiteout hides a shared name.
	for _, dn := range dirs {
		ents, _ := os.ReadDir(s.upper + "/" + dn)
		for _, e := range ents {
			if isWhiteout(s.upper + "/" + dn + "/" + e.Name()) {
				t.Fatalf("unexpected whiteout %s/%s", dn, e.Name())
			}
		}
	}
	// A new engine on the same layers sees the same.
	checkView(mountCfg(t, s.configWithWork(t)), "new engine")
}

// TestConcurrentCopyUpSameFiles: goroutines start together and copy the
// same lower files (and their common parents) up by every means at once,
// while readers that opened the files before keep reading: every object
// is copied once, and every reader ends up on the upper file.
func TestConcurrentCopyUpSameFiles(t *testing.T) {
	const files, goroutines = 24, 6
	s := newStack(t, 1)
	var specs []string
	for i := 0; i < files; i++ {
		specs = append(specs, fmt.Sprintf("a/b/f%d=%s", i, strings.Repeat("o", 4096)))
	}
	build(t, s.lower(0), specs...)
	fs := s.mount()
	b, _ := mustWalk(t, fs, "a/b")
	nodes := make([]*overlay.Node, files)
	readers := make([]*overlay.Handle, files)
	for i := range nodes {
		n, _, err := fs.Lookup(b, fmt.Sprintf("f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		if readers[i], err = fs.Open(n, unix.O_RDONLY); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			rng := rand.New(rand.NewSource(int64(g)))
			for _, i := range rng.Perm(files) {
				n := nodes[i]
				var err error
				switch g % 3 {
				case 0:
					var h *overlay.Handle
					if h, err = fs.Open(n, unix.O_RDWR); err == nil {
						_, err = fs.Write(h, []byte("W"), int64(g))
						fs.Release(h)
					}
				case 1:
					_, err = fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0600})
				case 2:
					err = fs.SetXattr(n, fmt.Sprintf("user.g%d", g), []byte("x"), 0)
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, f%d: %w", g, i, err)
					return
				}
			}
		}(g)
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("copy-ups still running after a minute: deadlock?\n%s", buf[:n])
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := fs.Stats().CopyUps; got != files+2 {
		t.Fatalf("Stats().CopyUps = %d, want %d (each file, a and a/b, once)", got, files+2)
	}
	want := []byte(strings.Repeat("o", 4096))
	for g := 0; g < goroutines; g += 3 {
		want[g] = 'W'
	}
	for i, h := range readers {
		buf := make([]byte, 8192)
		r, err := fs.Read(h, buf, 0)
		if err != nil || !bytes.Equal(buf[:r], want) {
			t.Fatalf("f%d: reader opened before copy-up reads %d bytes %q..., %v", i, r, buf[:8], err)
		}
		fs.Release(h)
		up := fmt.Sprintf("%s/a/b/f%d", s.upper, i)
		if st := lstat(t, up); st.Mode&07777 != 0600 {
			t.Fatalf("f%d: upper mode %o", i, st.Mode&07777)
		}
		for g := 2; g < goroutines; g += 3 {
			if _, err := xattr(up, fmt.Sprintf("user.g%d", g)); err != nil {
				t.Fatalf("f%d: user.g%d: %v", i, g, err)
			}
		}
		if !bytes.Equal([]byte(fileContent(t, up)), want) {
			t.Fatalf("f%d: upper content differs", i)
		}
	}
	wantWorkEmpty(t, s)
}
