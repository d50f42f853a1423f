// Package stress loads a Strata mount: 16 processes doing random
// creates, writes, reads, renames, unlinks, links, copy-ups of lower
// files and mmaps for a bounded time, then a consistency check against
// kernel overlayfs over the layers Strata left; and a resource check: the
// daemon's open descriptors stay bounded while a large tree is walked
// and read.
package stress

import (
	"encoding/json"
	"fmt"
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

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		if err := workerMain(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(mounttest.RunTests(m))
}

const workers = 16

// duration is how long the workers run: STRATA_STRESS_SECONDS, default 20.
func duration(t *testing.T) time.Duration {
	if s := os.Getenv("STRATA_STRESS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("STRATA_STRESS_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(n) * time.Second
	}
	return 20 * time.Second
}

func TestStress(t *testing.T) {
	mounttest.Require(t)
	s := mounttest.NewStack(t, 3)
	if err := populate(s.Lowers, workers); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, s)
	dur := duration(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d workers for %v, seed %d", workers, dur, seed)

	type run struct {
		cmd    *exec.Cmd
		out    strings.Builder
		result string
		err    error
	}
	inflight := filepath.Join(s.Dir, "inflight")
	if err := createInflight(inflight); err != nil {
		t.Fatal(err)
	}
	runs := make([]*run, workers)
	var wg sync.WaitGroup
	until := time.Now().Add(dur)
	for i := range runs {
		r := &run{result: filepath.Join(s.Dir, fmt.Sprintf("worker%02d.json", i))}
		spec, _ := json.Marshal(workerArgs{Mnt: s.Mnt, Lowers: s.Lowers, ID: i, Seed: seed, Until: until.UnixNano(), Result: r.result, Inflight: inflight,
			SizesKept: mounttest.Writeback() && !mounttest.Passthrough()})
		r.cmd = exec.Command(os.Args[0], "-test.run=^$")
		r.cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		runs[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.err = r.cmd.Wait()
		}()
	}
	killWorkers := func() {
		for _, r := range runs {
			r.cmd.Process.Kill()
		}
		wg.Wait()
	}
	t.Cleanup(killWorkers)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	// Watch: the daemon must live, and everything must end in time.
	maxFds := 0
	deadline := time.After(dur + 90*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
watch:
	for {
		select {
		case <-done:
			break watch
		case <-deadline:
			dump := d.dump()
			killWorkers()
			t.Fatalf("the workers are still running 90 s after their deadline: a deadlock? daemon goroutines:\n%s", dump)
		case <-tick.C:
			if !d.alive() {
				killWorkers()
				t.Fatalf("the daemon died under load: %v\n%s", d.state, d.log())
			}
			if n := fdCount(d.pid()); n > maxFds {
				maxFds = n
			}
		}
	}

	// Every worker checked its own files at the end.
	results := make([]workerResult, workers)
	ops := map[string]int{}
	for i, r := range runs {
		if r.err != nil {
			t.Errorf("worker %d: %v\n%s", i, r.err, r.out.String())
		}
		b, err := os.ReadFile(r.result)
		if err != nil {
			t.Errorf("worker %d left no result: %v", i, err)
			continue
		}
		if err := json.Unmarshal(b, &results[i]); err != nil {
			t.Fatalf("worker %d result: %v", i, err)
		}
		for _, e := range results[i].Errors {
			t.Errorf("%s", e)
		}
		for _, w := range results[i].Warnings {
			t.Logf("worker %d: %s", i, w)
		}
		for k, v := range results[i].Ops {
			ops[k] += v
		}
	}
	var opList []string
	total := 0
	for k, v := range ops {
		opList = append(opList, fmt.Sprintf("%s %d", k, v))
		total += v
	}
	sort.Strings(opList)
	t.Logf("%d operations: %s", total, strings.Join(opList, ", "))
	t.Logf("daemon: at most %d open descriptors, VmRSS %s, VmHWM %s, %s threads", maxFds, procStatus(d.pid(), "VmRSS"),
		procStatus(d.pid(), "VmHWM"), procStatus(d.pid(), "Threads"))

	// What Strata shows just before the unmount ...
	strataTree := snapshot(s.Mnt)
	for i := range results {
		reportDiffs(t, fmt.Sprintf("worker %d's files through Strata", i), checkWorkerFiles(i, results[i].Files, strataTree))
	}
	d.unmount(t)
	if b, err := os.ReadFile(d.stats); err == nil {
		t.Logf("daemon counters: %s", strings.TrimSpace(string(b)))
	}

	// ... is what kernel overlayfs shows over the same layers (read-only:
	// the upper layer as the top-most lower one).
	kmnt := filepath.Join(s.Dir, "kernel")
	if err := os.Mkdir(kmnt, 0755); err != nil {
		t.Fatal(err)
	}
	mounttest.KernelMount(t, append([]string{s.Upper}, s.Lowers...), "", "", kmnt)
	kernelTree := snapshot(kmnt)
	reportDiffs(t, "kernel overlayfs over the layers differs from what Strata showed before its unmount", diffTrees(strataTree, kernelTree, "strata", "kernel"))
	for i := range results {
		reportDiffs(t, fmt.Sprintf("worker %d's files through kernel overlayfs", i), checkWorkerFiles(i, results[i].Files, kernelTree))
	}
	t.Logf("%d paths compared", len(strataTree))
}

// treeFiles is how many files the resource check reads: 20k, or 200k
// with STRATA_STRESS_BIG=1.
func treeFiles() int {
	if os.Getenv("STRATA_STRESS_BIG") == "1" {
		return 200000
	}
	return 20000
}

func fileContent(i int) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("file %d\n", i), 1+i%97))
}

// fds counts a process's open descriptors: all of them, pipes among them,
// and the others.
type fds struct{ total, pipes, other int }

func (f fds) String() string { return fmt.Sprintf("%d/%d", f.total, f.pipes) }

func (f fds) max(g fds) fds {
	return fds{max(f.total, g.total), max(f.pipes, g.pipes), max(f.other, g.other)}
}

func countFds(pid int) fds {
	var c fds
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return fds{-1, -1, -1}
	}
	for _, e := range ents {
		c.total++
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(target, "pipe:") {
			c.pipes++
		} else {
			c.other++
		}
	}
	return c
}

// TestDaemonResources walks and reads a large tree through the mount,
// with several readers at once, and checks that the daemon's open
// descriptors stay bounded (it must not keep a descriptor per object).
func TestDaemonResources(t *testing.T) {
	mounttest.Require(t)
	s := mounttest.NewStack(t, 2)
	n := treeFiles()
	const perDir = 200
	dirs := (n + perDir - 1) / perDir
	// Half the directories merge over the second layer.
	for i := 0; i < n; i++ {
		layer := s.Lowers[0]
		if (i/perDir)%2 == 1 && i%2 == 1 {
			layer = s.Lowers[1]
		}
		p := filepath.Join(layer, fmt.Sprintf("d%04d", i/perDir), fmt.Sprintf("f%06d", i))
		if i%perDir < 2 {
			if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, fileContent(i), 0644); err != nil {
			t.Fatal(err)
		}
	}

	stats := filepath.Join(s.Dir, "stats.json")
	s.MountDaemonEnv(t, []string{"STRATA_STATS_FILE=" + stats})
	pid := findDaemon(t, s.Mnt)
	base := countFds(pid)

	var mu sync.Mutex
	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if c := countFds(pid); c.total > 0 {
				mu.Lock()
				peak = peak.max(c)
				mu.Unlock()
			}
		}
	}()

	const readers = 8
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	seen := make([]int, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dn := r; dn < dirs; dn += readers {
				dir := filepath.Join(s.Mnt, fmt.Sprintf("d%04d", dn))
				ents, err := os.ReadDir(dir)
				if err != nil {
					errs <- fmt.Sprintf("readdir %s: %v", dir, err)
					return
				}
				for _, e := range ents {
					var i int
					fmt.Sscanf(e.Name(), "f%06d", &i)
					got, err := os.ReadFile(filepath.Join(dir, e.Name()))
					if err != nil || string(got) != string(fileContent(i)) {
						select {
						case errs <- fmt.Sprintf("read %s: %d bytes, %v", e.Name(), len(got), err):
						default:
						}
						continue
					}
					seen[r]++
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-sampled
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	total := 0
	for _, n := range seen {
		total += n
	}
	if total != n {
		t.Errorf("read %d files, want %d", total, n)
	}
	// An idle daemon gives its spare descriptors back within seconds (the
	// engine closes backing files unused for two sweeps of 2 s).
	after := countFds(pid)
	for i := 0; i < 100 && (after.total > base.total+16 || after.other > base.other+2); i++ {
		time.Sleep(100 * time.Millisecond)
		after = countFds(pid)
	}
	t.Logf("read %d files with %d readers in %v; daemon descriptors (total/pipes): %v at the start, at most %v during the walk, %v after; VmRSS %s, VmHWM %s, %s threads",
		total, readers, took.Round(time.Millisecond), base, peak, after, procStatus(pid, "VmRSS"), procStatus(pid, "VmHWM"), procStatus(pid, "Threads"))

	// No descriptor per object: files, directories and layers stay few
	// and go back to where they were.
	t.Run("files", func(t *testing.T) {
		if other := peak.other; other >= 100 {
			t.Errorf("the daemon had %d descriptors other than pipes open during the walk, want fewer than 100", other)
		}
		if after.other > base.other+2 {
			t.Errorf("the daemon holds %d descriptors other than pipes after the walk, %d before: a leak", after.other, base.other)
		}
	})
	// All descriptors, pipes included. While it works, the daemon holds
	// one per open file and a pipe pair per spliced reply in flight:
	// bounded by the requests in flight (which a loaded machine lets pile
	// up), not by the files walked, and far below RLIMIT_NOFILE. Idle, it
	// is back near where it started.
	t.Run("total", func(t *testing.T) {
		var why []string
		if peak.total >= 512 {
			why = append(why, fmt.Sprintf("%d descriptors open during the walk (want fewer than 512 for %d readers)", peak.total, readers))
		}
		if after.total > base.total+16 {
			why = append(why, fmt.Sprintf("%d descriptors (%d pipes) still open by the idle daemon after the walk, %d before", after.total, after.pipes, base.total))
		}
		if len(why) == 0 {
			return
		}
		t.Fatalf("the daemon's descriptors are not bounded: %s", strings.Join(why, "; "))
	})
	if err := unix.Unmount(s.Mnt, 0); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	for i := 0; i < 500 && unix.Kill(pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(stats); err != nil {
		t.Errorf("the daemon left no counters at unmount: %v", err)
	} else {
		t.Logf("daemon counters: %s", strings.TrimSpace(string(b)))
	}
}
