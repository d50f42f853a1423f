// Command bench compares Strata with a plain directory, kernel overlayfs and
// fuse-overlayfs on the same layer set: metadata walks, reads, writes,
// copy-up, whiteouts and a real go build, cold and warm (and, for reads of
// the big file, shared: a new mount with the file already cached).
//
// Run it as root from the repository root:
//
//	bash bench/setup.sh
//	go run ./bench -strata bin/strata -out bench/out
//	go run ./bench -quick            # small smoke run, under 2 minutes
//
// See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	strata, fuseOverlayfs string
	strataOpts            string
	out, work, src        string
	runs                  int
	quick                 bool
	treeFiles             int
	bigSize               int64
	randReads             int
	build                 string
	buildCache            string
	targets               []string
	only                  map[string]bool // scenario filter; nil = all
	walk200k              bool
	walk200kFiles         int
	stepTimeout           time.Duration
	keep                  bool
	seed                  uint64
}

const workMarker = ".strata-bench-workdir"

func main() { os.Exit(realMain()) }

func realMain() int {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root (it mounts overlays and drops caches); run bench/setup.sh first")
		return 2
	}
	if err := preflight(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if err := prepareWorkDir(cfg.work); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			killChildren()
			mountMu.Lock()
			defer mountMu.Unlock()
			unmountAllUnder(cfg.work)
			if left := mountsUnder(cfg.work); len(left) > 0 {
				logf("cleanup: still mounted, leaving %s in place: %v", cfg.work, left)
				return
			}
			if !cfg.keep {
				if err := os.RemoveAll(cfg.work); err != nil {
					logf("cleanup: %v", err)
				}
			}
		})
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		s := <-sigc
		logf("got %v: unmounting and cleaning up", s)
		cleanup()
		os.Exit(130)
	}()
	defer cleanup()
	defer func() {
		if r := recover(); r != nil {
			cleanup()
			panic(r)
		}
	}()

	rep, err := runBench(cfg)
	if err != nil {
		logf("error: %v", err)
		if rep == nil {
			return 1
		}
	}
	rep.Finalize()
	if err := writeOutputs(cfg, rep); err != nil {
		logf("error: %v", err)
		return 1
	}
	if err != nil {
		return 1
	}
	return 0
}

func parseFlags() (*config, error) {
	cfg := &config{}
	var bigSize, targets, only string
	flag.StringVar(&cfg.strata, "strata", "bin/strata", "path of the Strata binary; if missing, the Strata column is left out")
	flag.StringVar(&cfg.strataOpts, "strata-opts", "", "further -o options for Strata, after the layers' (for example passthrough)")
	flag.StringVar(&cfg.fuseOverlayfs, "fuse-overlayfs", "/usr/bin/fuse-overlayfs", "path of fuse-overlayfs")
	flag.StringVar(&cfg.out, "out", "bench/out", "directory for results.json, results.txt and chart.png")
	flag.StringVar(&cfg.work, "work", "/var/tmp/strata-bench", "scratch directory for layers, upper dirs and mountpoints (on a disk, not tmpfs); removed at the end")
	flag.StringVar(&cfg.src, "src", "/usr/local/go", "source tree for the lower layers (a Go distribution, for the build workload)")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of every workload")
	flag.BoolVar(&cfg.quick, "quick", false, "smoke run: -tree-files 2000 -big-size 64M -runs 1 -rand-reads 2000 -build hello -build-cache seeded")
	flag.IntVar(&cfg.treeFiles, "tree-files", 0, "files of -src to put in the lower layers (0: all)")
	flag.StringVar(&bigSize, "big-size", "1G", "size of the big random lower file and of the written file")
	flag.IntVar(&cfg.randReads, "rand-reads", 20000, "number of random 4 KiB reads (and of mmap page touches)")
	flag.StringVar(&cfg.build, "build", "gofmt", "program built by the build workload: gofmt (cmd/gofmt of the tree), hello (a tiny program; needs little of the tree) or none")
	flag.StringVar(&cfg.buildCache, "build-cache", "empty", "GOCACHE for build-fresh: empty, or seeded (the standard library already compiled, from the lower layer)")
	flag.StringVar(&targets, "targets", "plain,kernel,fuse-overlayfs,strata", "targets to compare")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (read-only,seq-write,untar,chmod,touch,unlink,copy-up,copy-up-fsync,mount,cp,build,walk200k); default all")
	flag.BoolVar(&cfg.walk200k, "walk200k", false, "also run walk200k: walk and read a lower layer of -walk200k-files small files, and report the daemons' RSS and fds")
	flag.IntVar(&cfg.walk200kFiles, "walk200k-files", 200000, "files in the walk200k lower layer")
	flag.DurationVar(&cfg.stepTimeout, "step-timeout", 20*time.Minute, "abort a step (and its FUSE connection) that takes longer")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory at the end")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed for random data and offsets")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [flags]   (as root; see bench/README.md)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", flag.Args())
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		if !set["tree-files"] {
			cfg.treeFiles = 2000
		}
		if !set["big-size"] {
			bigSize = "64M"
		}
		if !set["runs"] {
			cfg.runs = 1
		}
		if !set["rand-reads"] {
			cfg.randReads = 2000
		}
		if !set["build"] {
			cfg.build = "hello"
		}
		if !set["build-cache"] {
			cfg.buildCache = "seeded"
		}
		if !set["walk200k-files"] {
			cfg.walk200kFiles = 20000
		}
	}
	var err error
	if cfg.bigSize, err = parseSize(bigSize); err != nil {
		return nil, err
	}
	if cfg.bigSize < 4096 {
		return nil, fmt.Errorf("-big-size must be at least 4K")
	}
	if cfg.runs < 1 {
		return nil, fmt.Errorf("-runs must be at least 1")
	}
	switch cfg.build {
	case "gofmt", "hello", "none":
	default:
		return nil, fmt.Errorf("-build must be gofmt, hello or none")
	}
	switch cfg.buildCache {
	case "empty", "seeded":
	default:
		return nil, fmt.Errorf("-build-cache must be empty or seeded")
	}
	for _, t := range strings.Split(targets, ",") {
		t = strings.TrimSpace(t)
		switch t {
		case tPlain, tKernel, tFuse, tStrata:
			cfg.targets = append(cfg.targets, t)
		case "":
		default:
			return nil, fmt.Errorf("unknown target %q", t)
		}
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			cfg.only[strings.TrimSpace(s)] = true
		}
		if cfg.only["walk200k"] {
			cfg.walk200k = true
		}
	}
	for _, p := range []*string{&cfg.work, &cfg.out, &cfg.src} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	if cfg.work == "/" || len(cfg.work) < 5 {
		return nil, fmt.Errorf("refusing work directory %q", cfg.work)
	}
	if cfg.strata != "" {
		if abs, err := filepath.Abs(cfg.strata); err == nil {
			cfg.strata = abs
		}
	}
	return cfg, nil
}

func preflight() error {
	fsb, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return err
	}
	if !strings.Contains(string(fsb), "\toverlay\n") {
		_ = exec.Command("modprobe", "overlay").Run()
	}
	for _, tool := range []string{"tar", "find", "ls", "rm", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (run bench/setup.sh)", tool)
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse: %v (run bench/setup.sh; modprobe fuse)", err)
	}
	return nil
}

// prepareWorkDir unmounts whatever a previous, interrupted run left
// mounted under dir, and empties it. A non-empty directory that is not a
// previous work directory is refused.
func prepareWorkDir(dir string) error {
	unmountAllUnder(dir)
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("could not unmount %v", left)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(dir, workMarker)); err != nil {
			return fmt.Errorf("%s is not empty and is not a benchmark work directory; pick another -work", dir)
		}
		logf("removing the previous work directory %s", dir)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, workMarker), nil, 0o644)
}

// targetSet is the targets for one layer set.
type targetSet struct {
	targets []Target
	layers  *Layers
	env     func(t Target) *Env
}

func runBench(cfg *config) (*Report, error) {
	start := time.Now()
	rep := &Report{Meta: map[string]any{}}
	var names []string
	for _, t := range cfg.targets {
		switch t {
		case tStrata:
			if fi, err := os.Stat(cfg.strata); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("Strata binary %s not found: the Strata column is omitted (build it, then pass -strata PATH)", cfg.strata))
				continue
			}
		case tFuse:
			if _, err := os.Stat(cfg.fuseOverlayfs); err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s not found: the fuse-overlayfs column is omitted (run bench/setup.sh)", cfg.fuseOverlayfs))
				continue
			}
		}
		names = append(names, t)
	}
	rep.Targets = names
	for _, n := range rep.Notes {
		logf("note: %s", n)
	}
	if len(names) == 0 {
		return rep, fmt.Errorf("no targets")
	}

	wantScenario := func(name string) bool { return cfg.only == nil || cfg.only[name] }
	needMain := false
	for _, sc := range Scenarios(cfg.build != "none", false) {
		if wantScenario(sc.Name) {
			needMain = true
		}
	}

	var mainSet, many *targetSet
	var err error
	if needMain {
		if mainSet, err = setupMain(cfg, names); err != nil {
			return nil, err
		}
		rep.Notes = append(rep.Notes, mainSet.layers.Notes...)
	}
	if cfg.walk200k && wantScenario("walk200k") {
		if many, err = setupMany(cfg, names); err != nil {
			return nil, err
		}
	}

	config := fmt.Sprintf("LOWER LAYER OF %d SMALL FILES", cfg.walk200kFiles)
	if mainSet != nil {
		config = fmt.Sprintf("TREE %d FILES (%s), BIG FILE %s", len(mainSet.layers.Files), formatBytes(mainSet.layers.Bytes), formatBytes(cfg.bigSize))
	}
	rep.Meta = map[string]any{
		"started":        start.UTC().Format(time.RFC3339),
		"runs":           cfg.runs,
		"quick":          cfg.quick,
		"config":         config,
		"src":            cfg.src,
		"big_size":       cfg.bigSize,
		"rand_reads":     cfg.randReads,
		"build":          cfg.build,
		"build_cache":    cfg.buildCache,
		"strata":         cfg.strata,
		"strata_opts":    cfg.strataOpts,
		"fuse_overlayfs": cfg.fuseOverlayfs,
		"fuse_overlayfs_version": func() string {
			b, _ := exec.Command(cfg.fuseOverlayfs, "--version").Output()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "fuse-overlayfs") {
					return strings.TrimSpace(line)
				}
			}
			return ""
		}(),
		"kernel":    strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
		"cpus":      runtime.NumCPU(),
		"go":        runtime.Version(),
		"work":      cfg.work,
		"clock_tck": clockTicks,
	}
	ovl := map[string]string{}
	for _, p := range []string{"metacopy", "index", "redirect_dir", "xino_auto"} {
		ovl[p] = strings.TrimSpace(readString("/sys/module/overlay/parameters/" + p))
	}
	rep.Meta["kernel_overlay_params"] = ovl
	if fi, err := os.Stat(cfg.strata); err == nil {
		rep.Meta["strata_mtime"] = fi.ModTime().UTC().Format(time.RFC3339)
	}
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rep.Meta["git_head"] = strings.TrimSpace(string(b))
	}
	if mainSet != nil {
		rep.Meta["tree_files"] = len(mainSet.layers.Files)
		rep.Meta["tree_dirs"] = mainSet.layers.Dirs
		rep.Meta["tree_bytes"] = mainSet.layers.Bytes
		rep.Meta["shadowed_files"] = mainSet.layers.Shadowed
		if mainSet.layers.Build != nil {
			rep.Meta["build_program"] = mainSet.layers.Build.Name
		}
	}
	if many != nil {
		rep.Meta["walk200k_files"] = cfg.walk200kFiles
	}

	scenarios := Scenarios(mainSet != nil && mainSet.layers.Build != nil, many != nil)
	for _, sc := range scenarios {
		if !wantScenario(sc.Name) {
			continue
		}
		ts := mainSet
		if sc.Many {
			ts = many
		}
		if ts == nil {
			continue
		}
		for run := 0; run < cfg.runs; run++ {
			n := len(ts.targets)
			for i := 0; i < n; i++ {
				t := ts.targets[(i+run)%n] // rotate the order between runs
				logf("%s: run %d/%d on %s", sc.Name, run+1, cfg.runs, t.Name())
				runScenario(cfg, rep, t, sc, ts.env(t))
			}
		}
	}
	for _, ts := range []*targetSet{mainSet, many} {
		if ts == nil {
			continue
		}
		for _, t := range ts.targets {
			if err := t.Unmount(); err != nil {
				logf("unmount %s: %v", t.Name(), err)
			}
		}
	}
	rep.Meta["duration_s"] = math.Round(time.Since(start).Seconds())
	return rep, nil
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// setupMain builds the main layer set and a copy of it for every target.
func setupMain(cfg *config, names []string) (*targetSet, error) {
	l, err := BuildLayers(filepath.Join(cfg.work, "layers"), LayerConfig{
		Src: cfg.src, TreeFiles: cfg.treeFiles, BigSize: cfg.bigSize, Build: cfg.build, SeedCache: cfg.buildCache == "seeded", Seed: cfg.seed,
	})
	if err != nil {
		return nil, fmt.Errorf("building layers: %w", err)
	}
	ts := &targetSet{layers: l}
	for _, name := range names {
		base := filepath.Join(cfg.work, "targets", name)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, err
		}
		logf("copying the layers for %s", name)
		if name == tPlain {
			root := filepath.Join(base, "root")
			if err := cpA(l.Merged, root); err != nil {
				return nil, err
			}
			ts.targets = append(ts.targets, newPlainTarget(root, l.Merged))
			continue
		}
		l1, l2 := filepath.Join(base, "lower1"), filepath.Join(base, "lower2")
		if err := cpA(l.Lower1, l1); err != nil {
			return nil, err
		}
		if err := cpA(l.Lower2, l2); err != nil {
			return nil, err
		}
		ts.targets = append(ts.targets, newOverlay(cfg, name, base, []string{l1, l2}, filepath.Join(cfg.work, "mnt", name)))
	}
	ts.env = func(t Target) *Env {
		return &Env{Root: t.Root(), L: l, RandReads: cfg.randReads, Seed: cfg.seed, Plain: t.Name() == tPlain}
	}
	return ts, syncFS()
}

// setupMany builds the walk200k layer. It is only read, so the targets
// share it (copying 200k files per target would dominate the run).
func setupMany(cfg *config, names []string) (*targetSet, error) {
	dir := filepath.Join(cfg.work, "layer-many")
	logf("walk200k: creating %d small files", cfg.walk200kFiles)
	if err := BuildManyFiles(dir, cfg.walk200kFiles, cfg.seed); err != nil {
		return nil, err
	}
	ts := &targetSet{}
	for _, name := range names {
		if name == tPlain {
			ts.targets = append(ts.targets, newPlainTarget(dir, ""))
			continue
		}
		base := filepath.Join(cfg.work, "targets", name+"-many")
		ts.targets = append(ts.targets, newOverlay(cfg, name, base, []string{dir}, filepath.Join(cfg.work, "mnt", name+"-many")))
	}
	ts.env = func(t Target) *Env {
		return &Env{Root: t.Root(), RandReads: cfg.randReads, Seed: cfg.seed, ManyFiles: cfg.walk200kFiles}
	}
	return ts, nil
}

func newOverlay(cfg *config, name, base string, lowers []string, mnt string) *overlayTarget {
	switch name {
	case tKernel:
		return newOverlayTarget(name, kindKernel, "", base, lowers, mnt)
	case tFuse:
		return newOverlayTarget(name, kindFUSE, cfg.fuseOverlayfs, base, lowers, mnt)
	default:
		return newOverlayTarget(name, kindFUSE, cfg.strata, base, lowers, mnt).withOptions(cfg.strataOpts)
	}
}

// runScenario runs one scenario once on one target, from a fresh state,
// recording every step's time (and the FUSE daemon's CPU time) in rep.
func runScenario(cfg *config, rep *Report, t Target, sc Scenario, env *Env) {
	fail := func(from int, err error) {
		for i, st := range sc.Steps[from:] {
			msg := err.Error()
			if i > 0 {
				msg = "skipped: " + msg
			}
			c := rep.measurement(sc.Name, st.Name, st.mode(), st.Desc).cell(t.Name())
			c.Errors = append(c.Errors, msg)
		}
		logf("%s on %s: %v", sc.Name, t.Name(), err)
	}
	snapshot := func() {
		if pid := t.DaemonPID(); pid > 0 {
			s := daemonStats(pid)
			rep.daemonStat(t.Name(), sc.Name, s.HWMKiB, s.FDs)
		}
	}
	defer func() {
		snapshot()
		if err := t.Unmount(); err != nil {
			logf("unmount %s: %v", t.Name(), err)
		}
		if sc.Mutates {
			t.MarkDirty()
		}
	}()
	if err := t.Fresh(); err != nil {
		fail(0, fmt.Errorf("fresh state: %w", err))
		return
	}
	env.Remount = func() (time.Duration, error) {
		if err := t.Unmount(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		err := t.Mount()
		return time.Since(t0), err
	}
	if err := t.Mount(); err != nil {
		fail(0, fmt.Errorf("mount: %w", err))
		return
	}
	if sc.Setup != nil {
		if err := sc.Setup(env); err != nil {
			fail(0, fmt.Errorf("setup: %w", err))
			return
		}
	}
	for i, st := range sc.Steps {
		if st.Cold {
			snapshot()
			if err := t.Unmount(); err != nil {
				fail(i, fmt.Errorf("unmount: %w", err))
				return
			}
			if err := t.Mount(); err != nil {
				fail(i, fmt.Errorf("remount: %w", err))
				return
			}
			if err := dropCaches(); err != nil {
				fail(i, fmt.Errorf("drop caches: %w", err))
				return
			}
		}
		if st.Shared {
			snapshot()
			if err := cacheThenRemount(env, st.Cache); err != nil {
				fail(i, err)
				return
			}
		}
		pid := t.DaemonPID()
		cpu0 := daemonCPU(pid)
		d, res, err := runStep(cfg, t, st, env)
		cpu1 := daemonCPU(pid)
		if err != nil {
			fail(i, err)
			return
		}
		m := rep.measurement(sc.Name, st.Name, st.mode(), st.Desc)
		if res.Bytes > 0 {
			m.Bytes = res.Bytes
		}
		if res.Files > 0 {
			m.Files = res.Files
		}
		c := m.cell(t.Name())
		c.Samples = append(c.Samples, d.Seconds())
		if pid > 0 && t.DaemonPID() == pid { // the mount workload starts new daemons
			c.DaemonCPU = append(c.DaemonCPU, math.Round((cpu1-cpu0)*100)/100)
		}
		logf("  %-16s %-4s %-14s %s", st.Name, st.mode(), t.Name(), formatSeconds(d.Seconds()))
	}
}

// cacheThenRemount reads rel through the target's mount, so that the page
// cache holds the layer's copy, then mounts the target again: a new
// daemon whose own caches are empty (a shared step).
func cacheThenRemount(env *Env, rel string) error {
	if _, err := readFile(env.path(rel), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("caching %s: %w", rel, err)
	}
	if _, err := env.Remount(); err != nil {
		return fmt.Errorf("remount: %w", err)
	}
	return nil
}

// runStep runs a step with a watchdog: past -step-timeout, it kills the
// step's child processes and aborts the FUSE connection, so that a hung
// daemon fails the step instead of hanging the benchmark.
func runStep(cfg *config, t Target, st Step, env *Env) (time.Duration, StepResult, error) {
	timer := time.AfterFunc(cfg.stepTimeout, func() {
		logf("%s on %s: exceeded %v; aborting", st.Name, t.Name(), cfg.stepTimeout)
		killChildren()
		if t.DaemonPID() > 0 {
			abortFUSE(t.Root())
		}
	})
	defer timer.Stop()
	return st.Run(env)
}

func writeOutputs(cfg *config, rep *Report) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	fmt.Print("\n" + sb.String())
	if err := os.WriteFile(filepath.Join(cfg.out, "results.txt"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	if err := rep.WriteJSON(filepath.Join(cfg.out, "results.json")); err != nil {
		return err
	}
	if err := WriteChart(filepath.Join(cfg.out, "chart.png"), rep.ChartData()); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s, %s and %s\n", filepath.Join(cfg.out, "results.txt"), filepath.Join(cfg.out, "results.json"), filepath.Join(cfg.out, "chart.png"))
	return nil
}
