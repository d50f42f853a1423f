package main

import (
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/stratafs/strata/overlay"
)

// testHooks reads the crash-test hook from the environment. It exists for
// the crash-safety tests, which kill the daemon at exactly this point:
//
//	STRATA_TEST_PAUSE_COPYUP=SUBSTR  a copy-up of a path containing SUBSTR
//	                                 stops just before the new object is
//	                                 linked into the upper layer
//	STRATA_TEST_PAUSE_MARK=FILE      created when it stops there
//
// Nothing is set unless the variable is.
func testHooks() overlay.Hooks {
	sub := os.Getenv("STRATA_TEST_PAUSE_COPYUP")
	if sub == "" {
		return overlay.Hooks{}
	}
	mark := os.Getenv("STRATA_TEST_PAUSE_MARK")
	return overlay.Hooks{CopyUpBeforeLink: func(rel string) {
		if !strings.Contains(rel, sub) {
			return
		}
		if mark != "" {
			os.WriteFile(mark, []byte(rel+"\n"), 0644)
		}
		for {
			time.Sleep(time.Hour)
		}
	}}
}

// startProfile writes a CPU profile of the daemon to $STRATA_CPUPROFILE
// until the returned function is called (at unmount), and a heap profile
// to $STRATA_MEMPROFILE then.
func startProfile() func() {
	heap := func() {
		if p := os.Getenv("STRATA_MEMPROFILE"); p != "" {
			if f, err := os.Create(p); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	path := os.Getenv("STRATA_CPUPROFILE")
	if path == "" {
		return heap
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		heap()
	}
}
