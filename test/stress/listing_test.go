package stress

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// listSmall lists dir with many small getdents calls, pausing between
// them, as a slow reader would.
func listSmall(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 600)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		for off := 0; off < n; {
			rec := buf[off:]
			reclen := int(binary.LittleEndian.Uint16(rec[16:]))
			name := rec[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			if s := string(name); s != "." && s != ".." {
				names = append(names, s)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// concurrentListing lists dir from three readers at once for d while a
// fourth changes other names in it now and then, and returns how many
// times a name that never changed was not listed exactly once.
func concurrentListing(t *testing.T, dir string, stable int, d time.Duration) (bad, lists int64, first string) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			time.Sleep(3 * time.Millisecond)
			p := filepath.Join(dir, fmt.Sprintf("churn%02d", (i/2)%50))
			if i%2 == 0 {
				os.WriteFile(p, nil, 0644)
			} else {
				os.Remove(p)
			}
		}
	}()
	var nbad, nlists atomic.Int64
	var mu sync.Mutex
	end := time.Now().Add(d)
	var readers sync.WaitGroup
	for r := 0; r < 3; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for time.Now().Before(end) {
				names, err := listSmall(dir)
				if err != nil {
					t.Errorf("listing %s: %v", dir, err)
					return
				}
				nlists.Add(1)
				count := map[string]int{}
				for _, n := range names {
					count[n]++
				}
				for i := 0; i < stable; i++ {
					name := fmt.Sprintf("stable%03d", i)
					if c := count[name]; c != 1 {
						nbad.Add(1)
						mu.Lock()
						if first == "" {
							first = fmt.Sprintf("%s listed %d times in a listing of %d names", name, c, len(names))
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	readers.Wait()
	stop.Store(true)
	wg.Wait()
	return nbad.Load(), nlists.Load(), first
}

// TestConcurrentListing: while a directory changes, a name that does not
// change is listed exactly once by every reader (POSIX leaves only the
// names added or removed meanwhile unspecified). Kernel overlayfs is the
// control.
func TestConcurrentListing(t *testing.T) {
	mounttest.Require(t)
	const stable = 200
	results := map[bool]string{}
	for _, kernel := range []bool{true, false} {
		s := mounttest.NewStack(t, 1)
		for i := 0; i < stable; i++ {
			mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "dir", fmt.Sprintf("stable%03d", i)), "")
		}
		if kernel {
			s.MountKernel(t)
		} else {
			s.MountDaemon(t)
		}
		bad, lists, first := concurrentListing(t, filepath.Join(s.Mnt, "dir"), stable, 2*time.Second)
		name := map[bool]string{true: "kernel overlayfs", false: "strata"}[kernel]
		t.Logf("%s: %d listings, %d wrong counts of unchanged names %s", name, lists, bad, first)
		if bad > 0 {
			results[kernel] = fmt.Sprintf("%d wrong counts of unchanged names in %d listings, e.g. %s", bad, lists, first)
		}
		mounttest.ForceUnmount(s.Mnt)
	}
	if r := results[true]; r != "" {
		t.Fatalf("kernel overlayfs too: %s (the test is wrong)", r)
	}
	if r := results[false]; r != "" {
		t.Fatalf("concurrent readers of a changing directory saw unchanged names twice or not at all: %s "+
			"(directory offsets must be name cookies, valid across handles and snapshots)", r)
	}
}
