package main

import (
	"os"
	"runtime"
)

// threadedProcs is the least GOMAXPROCS a threaded daemon runs with.
//
// A FUSE daemon spends most of its time in blocking system calls: go-fuse's
// readers wait in read(2) on /dev/fuse, handlers wait for the disk. Each
// such goroutine keeps its P (in the syscall state) while it blocks, so
// with GOMAXPROCS equal to a small core count no P is ever idle; the
// runtime's monitor then takes Ps back from blocked threads every 20 µs
// and hands them to freshly woken threads, which find nothing to do and
// sleep again. On a 2-core VM that churn was a third of the daemon's CPU
// time for cold random reads (measured: 3.8 context switches per request
// against fuse-overlayfs' 1.9). With spare Ps a blocked thread's P is left
// alone. Measured on 2 cores, GOMAXPROCS 4 against 2: 15-25% less daemon
// CPU on untar, cold random reads and stat walks, neutral on chmod and
// sequential reads; 8 was no better than 4.
const threadedProcs = 4

// setProcs sets GOMAXPROCS for the way the daemon serves requests, unless
// the user chose a value. Serving one request at a time (the default,
// strata.go) it is 1: the only goroutines that want a P besides the
// reader are background ones that mostly wait in system calls, and an
// idle P would make go-fuse's reader wake a thread after every request
// (untar of the Go tree: 5.3 s with 1, 8.8 s with 2).
func setProcs(threaded bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if !threaded {
		runtime.GOMAXPROCS(1)
		return
	}
	if runtime.GOMAXPROCS(0) < threadedProcs {
		runtime.GOMAXPROCS(threadedProcs)
	}
}
