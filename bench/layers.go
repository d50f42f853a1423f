package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The layer set, built once per run under <work>/layers:
//
//	lower2/tree/...        the source tree (a copy, or a subset, of -src)
//	lower2/big.bin         -big-size bytes of random data
//	lower1/tree/...        every 10th .go file of the tree, modified (a
//	                       comment appended), shadowing lower2's copy; plus
//	                       one file that only lower1 has
//	merged/                what the overlay shows: the reference tree, and
//	                       the plain-directory target is a copy of it
//	tree.tar               tar of merged/tree, for the untar workload
//
// Each target gets its own copy (cp -a --reflink=auto) of lower1 and lower2,
// and a fresh upper and work directory for every scenario.

const (
	treeDir      = "tree"
	bigName      = "big.bin"
	helloDir     = "stratabench-hello"
	layer1Only   = "STRATA-BENCH-LAYER1-ONLY.txt"
	seedCacheDir = ".gocache-seed"
	shadowMark   = "\n// shadowed by the strata benchmark's upper lower layer\n"
)

// TreeFile is one non-directory entry of the merged tree.
type TreeFile struct {
	Rel     string      // relative to the mount root, e.g. "tree/src/fmt/print.go"
	Mode    fs.FileMode // permission bits
	Symlink bool
	Size    int64
}

// BuildSpec says how the build workload builds a program from the tree
// inside the mount, with the tree's own toolchain (GOROOT = <mount>/tree).
type BuildSpec struct {
	Name string // "gofmt" or "hello"
	Dir  string // package directory, relative to the mount root
	Pkg  string // what to pass to go build ("." )
	// SeedCache is set when GOCACHE starts as a copy of a cache that
	// already holds the compiled standard library (seedCacheDir, in the
	// lower layer), rather than empty.
	SeedCache bool
}

// Layers describes a built layer set.
type Layers struct {
	Dir      string
	Lower1   string
	Lower2   string
	Merged   string
	Tarball  string
	Files    []TreeFile // regular files and symlinks under tree/, sorted
	Dirs     int
	Bytes    int64 // bytes of regular files under tree/
	Shadowed int   // files of lower2 shadowed by lower1
	BigSize  int64
	Build    *BuildSpec // nil when the tree has no usable Go toolchain
	Notes    []string
}

// LayerConfig is what to build.
type LayerConfig struct {
	Src       string // source tree, normally /usr/local/go
	TreeFiles int    // 0: the whole tree
	BigSize   int64
	Build     string // "gofmt", "hello" or "none"
	SeedCache bool   // put a GOCACHE holding the compiled std in lower2
	Seed      uint64
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// BuildLayers builds the layer set in dir (which must not exist).
func BuildLayers(dir string, cfg LayerConfig) (*Layers, error) {
	l := &Layers{
		Dir:     dir,
		Lower1:  filepath.Join(dir, "lower1"),
		Lower2:  filepath.Join(dir, "lower2"),
		Merged:  filepath.Join(dir, "merged"),
		Tarball: filepath.Join(dir, "tree.tar"),
		BigSize: cfg.BigSize,
	}
	for _, d := range []string{l.Lower1, l.Lower2} {
		if err := os.MkdirAll(filepath.Join(d, treeDir), 0o755); err != nil {
			return nil, err
		}
	}

	all, err := listTree(cfg.Src)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", cfg.Src, err)
	}
	hasToolchain := fileExists(filepath.Join(cfg.Src, "bin", "go")) && fileExists(filepath.Join(cfg.Src, "src", "runtime"))
	build := cfg.Build
	if build != "none" && !hasToolchain {
		l.Notes = append(l.Notes, fmt.Sprintf("%s is not a Go distribution: build workloads skipped", cfg.Src))
		build = "none"
	}
	var required []string
	if build != "none" && cfg.TreeFiles > 0 && cfg.TreeFiles < len(all) {
		required, err = buildClosure(cfg.Src, build)
		if err != nil {
			return nil, fmt.Errorf("finding the files %s needs: %w", build, err)
		}
	}
	sel := selectFiles(all, required, cfg.TreeFiles)
	logf("layers: copying %d of %d files of %s", len(sel), len(all), cfg.Src)
	dst := filepath.Join(l.Lower2, treeDir)
	for _, rel := range sel {
		if err := copyEntry(filepath.Join(cfg.Src, rel), filepath.Join(dst, rel)); err != nil {
			return nil, err
		}
	}
	switch build {
	case "hello":
		if err := writeHello(filepath.Join(dst, helloDir)); err != nil {
			return nil, err
		}
		l.Build = &BuildSpec{Name: "hello", Dir: filepath.Join(treeDir, helloDir), Pkg: "."}
	case "gofmt":
		l.Build = &BuildSpec{Name: "gofmt", Dir: filepath.Join(treeDir, "src", "cmd", "gofmt"), Pkg: "."}
	}

	// Lower layer 1: every 10th .go file, modified.
	var goFiles []string
	for _, rel := range sel {
		if strings.HasSuffix(rel, ".go") && !strings.Contains(rel, "testdata") {
			if fi, err := os.Lstat(filepath.Join(dst, rel)); err == nil && fi.Mode().IsRegular() {
				goFiles = append(goFiles, rel)
			}
		}
	}
	for i := 0; i < len(goFiles); i += 10 {
		rel := goFiles[i]
		b, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil {
			return nil, err
		}
		p := filepath.Join(l.Lower1, treeDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, append(b, shadowMark...), 0o644); err != nil {
			return nil, err
		}
		l.Shadowed++
	}
	if err := os.WriteFile(filepath.Join(l.Lower1, treeDir, layer1Only), []byte("only in lower layer 1\n"), 0o644); err != nil {
		return nil, err
	}

	logf("layers: writing %s of random data", formatBytes(cfg.BigSize))
	if err := writeRandomFile(filepath.Join(l.Lower2, bigName), cfg.BigSize, cfg.Seed); err != nil {
		return nil, err
	}

	logf("layers: building the merged reference tree")
	if err := os.MkdirAll(l.Merged, 0o755); err != nil {
		return nil, err
	}
	if err := cpA(l.Lower2+"/.", l.Merged); err != nil {
		return nil, err
	}
	if err := cpA(l.Lower1+"/.", l.Merged); err != nil {
		return nil, err
	}
	if l.Build != nil && cfg.SeedCache {
		// Compiled from the merged view, so that the cache matches what
		// the mounts show (lower1 modifies some standard library files).
		logf("layers: compiling the standard library into %s", seedCacheDir)
		gocache := filepath.Join(l.Lower2, seedCacheDir)
		goroot := filepath.Join(l.Merged, treeDir)
		cmd := exec.Command(filepath.Join(goroot, "bin", "go"), "build", "-o", os.DevNull, l.Build.Pkg)
		cmd.Dir = filepath.Join(l.Merged, l.Build.Dir)
		cmd.Env = goEnv(goroot, gocache)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("seeding the build cache: %v: %s", err, out)
		}
		if err := cpA(gocache, filepath.Join(l.Merged, seedCacheDir)); err != nil {
			return nil, err
		}
		l.Build.SeedCache = true
	}
	if err := run("tar", "-C", l.Merged, "-cf", l.Tarball, treeDir); err != nil {
		return nil, err
	}
	if err := l.scanMerged(); err != nil {
		return nil, err
	}
	if err := syncFS(); err != nil {
		return nil, err
	}
	logf("layers: %d files (%d shadowed by lower1), %d dirs, %s in the tree; big file %s",
		len(l.Files), l.Shadowed, l.Dirs, formatBytes(l.Bytes), formatBytes(l.BigSize))
	return l, nil
}

// scanMerged fills Files, Dirs and Bytes from the merged tree.
func (l *Layers) scanMerged() error {
	l.Files, l.Dirs, l.Bytes = nil, 0, 0
	return filepath.WalkDir(filepath.Join(l.Merged, treeDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			l.Dirs++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.Merged, p)
		tf := TreeFile{Rel: rel, Mode: fi.Mode().Perm(), Symlink: fi.Mode()&fs.ModeSymlink != 0, Size: fi.Size()}
		if fi.Mode().IsRegular() {
			l.Bytes += fi.Size()
		}
		l.Files = append(l.Files, tf)
		return nil
	})
}

// listTree lists the regular files and symlinks under root, relative to it,
// in lexical order.
func listTree(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

// selectFiles picks n files of all: every required one that exists, then
// evenly spaced others (so the subset spans the whole tree). n <= 0 or
// n >= len(all) selects everything. The result is sorted.
func selectFiles(all, required []string, n int) []string {
	if n <= 0 || n >= len(all) {
		return append([]string(nil), all...)
	}
	have := map[string]bool{}
	exists := map[string]bool{}
	for _, f := range all {
		exists[f] = true
	}
	var out []string
	for _, f := range required {
		if exists[f] && !have[f] {
			have[f] = true
			out = append(out, f)
		}
	}
	var rest []string
	for _, f := range all {
		if !have[f] {
			rest = append(rest, f)
		}
	}
	need := n - len(out)
	if need > 0 && len(rest) > 0 {
		step := float64(len(rest)) / float64(need)
		if step < 1 {
			step = 1
		}
		for i := 0.0; int(i) < len(rest) && need > 0; i += step {
			out = append(out, rest[int(i)])
			need--
		}
	}
	sort.Strings(out)
	return out
}

// buildClosure lists the files (relative to src, a Go distribution) that
// building the program needs: the toolchain, and every file in the
// directories of the packages it depends on.
func buildClosure(src, build string) ([]string, error) {
	goos, goarch := runtime.GOOS, runtime.GOARCH
	out := []string{"VERSION", "go.env", "bin/go", "src/go.mod", "src/go.sum", "src/vendor/modules.txt",
		"src/cmd/go.mod", "src/cmd/go.sum", "src/cmd/vendor/modules.txt"}
	for _, t := range []string{"compile", "link", "asm"} {
		out = append(out, filepath.Join("pkg", "tool", goos+"_"+goarch, t))
	}
	dirs := []string{filepath.Join(src, "pkg", "include"), filepath.Join(src, "src", "runtime", "cgo")}

	listDir, pkg := "", ""
	switch build {
	case "hello":
		tmp, err := os.MkdirTemp("", "strata-bench-hello")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := writeHello(tmp); err != nil {
			return nil, err
		}
		listDir, pkg = tmp, "."
	case "gofmt":
		listDir, pkg = filepath.Join(src, "src", "cmd", "gofmt"), "."
	default:
		return nil, fmt.Errorf("unknown build program %q", build)
	}
	cmd := exec.Command(filepath.Join(src, "bin", "go"), "list", "-deps", "-f", "{{.Dir}}", pkg)
	cmd.Dir = listDir
	cmd.Env = goEnv(src, filepath.Join(os.TempDir(), "strata-bench-gocache-list"))
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if d := strings.TrimSpace(sc.Text()); strings.HasPrefix(d, src+string(filepath.Separator)) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			rel, _ := filepath.Rel(src, filepath.Join(d, e.Name()))
			out = append(out, rel)
		}
	}
	return out, nil
}

// goEnv is the environment for running the go command of the distribution
// at goroot, offline, with the given cache.
func goEnv(goroot, gocache string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GO") || k == "CGO_ENABLED" || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	home := filepath.Join(gocache, "home")
	return append(env,
		"GOROOT="+goroot, "GOCACHE="+gocache, "GOPATH="+filepath.Join(gocache, "gopath"),
		"HOME="+home, "GOENV=off", "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=",
		"CGO_ENABLED=0", "GOTELEMETRY=off", "GOWORK=off")
}

func writeHello(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module stratabench/hello\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.go"), []byte("// Command hello is the program the strata benchmark builds in quick mode.\npackage main\n\nfunc main() { println(\"hello from inside the mount\") }\n"), 0o644)
}

// copyEntry copies a regular file (mode and mtime preserved) or a symlink.
func copyEntry(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(t, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// writeRandomFile writes size bytes from a seeded ChaCha8 stream and syncs.
func writeRandomFile(path string, size int64, seed uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	var key [32]byte
	for i := range key {
		key[i] = byte(seed >> (8 * (i % 8)))
	}
	rng := rand.NewChaCha8(key)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BuildManyFiles makes the lower layer of the walk200k workload: n small
// files (64 B to 4 KiB) in directories of 1000, under dir/files.
func BuildManyFiles(dir string, n int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 200))
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte('a' + rng.IntN(26))
	}
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, "files", fmt.Sprintf("d%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		size := 64 + rng.IntN(4096-64)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%06d.txt", i)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return syncFS()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// cpA copies with cp -a, sharing blocks where the filesystem can.
func cpA(src, dst string) error {
	return run("cp", "-a", "--reflink=auto", src, dst)
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseSize parses "1G", "64M", "4096", "512K" (powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "IB"), "B")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
