package coherence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"encoding/json"
	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
	"time"
)

// env is one overlay a scenario runs on: Strata or the kernel's.
type env struct {
	t      *testing.T
	kernel bool
	s      *mounttest.Stack
	stats  string // Strata: where the daemon leaves its counters
}

func (e *env) path(name string) string  { return filepath.Join(e.s.Mnt, name) }
func (e *env) lower(name string) string { return filepath.Join(e.s.Lowers[0], name) }
func (e *env) upper(name string) string { return filepath.Join(e.s.Upper, name) }

// upperStat stats name in the upper layer, waiting up to 5 s for it to
// appear: Strata links a copy-up into the upper layer once it is durable,
// in the background.
func (e *env) upperStat(name string, st *unix.Stat_t) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Stat(e.upper(name), st)
		if err != unix.ENOENT || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// unmount ends the overlay under test early (the cleanup then does
// nothing). Strata's daemon exits and leaves its counters.
func (e *env) unmount() error {
	return unix.Unmount(e.s.Mnt, 0)
}

// copyUps is the number of copy-ups Strata's daemon did, read after
// unmount, or -1 for the kernel.
func (e *env) copyUps() (int64, error) {
	if e.kernel {
		return -1, nil
	}
	for i := 0; i < 250; i++ {
		if b, err := os.ReadFile(e.stats); err == nil {
			var st struct{ CopyUps int64 }
			if err := json.Unmarshal(b, &st); err != nil {
				return 0, err
			}
			return st.CopyUps, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("the daemon left no counters")
}

// newEnv builds a stack, lets setup fill the lower layer, and mounts it.
// Strata runs as a daemon process: a test that faults on a mapping served
// by its own process could deadlock the Go runtime (a stop-the-world
// waits for the faulting thread, which waits for the stopped server).
func newEnv(t *testing.T, kernel bool, setup func(lower string), strataOpts ...string) *env {
	s := mounttest.NewStack(t, 1)
	setup(s.Lowers[0])
	e := &env{t: t, kernel: kernel, s: s}
	if kernel {
		s.MountKernel(t)
	} else {
		e.stats = filepath.Join(s.Dir, "stats.json")
		s.MountDaemonEnv(t, []string{"STRATA_STATS_FILE=" + e.stats}, strataOpts...)
	}
	return e
}

var errFault = errors.New("SIGBUS on access")

// mapped reads m[off:off+n], turning a fault (access beyond EOF) into
// errFault.
func mapped(m []byte, off, n int) (s string, err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = errFault
		}
	}()
	b := make([]byte, n)
	copy(b, m[off:off+n])
	return string(b), nil
}

func pread(fd, off, n int) (string, error) {
	b := make([]byte, n)
	got, err := unix.Pread(fd, b, int64(off))
	if err != nil {
		return "", err
	}
	return string(b[:got]), nil
}

func fill(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func writeLower(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0644); err != nil {
		t.Fatal(err)
	}
}

// expect returns an error describing a mismatch, or nil.
func expect(what, got, want string) error {
	if got != want {
		return fmt.Errorf("%s: got %q, want %q", what, clip(got), clip(want))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// openMapped opens name on the overlay under test and maps its first size
// bytes shared; done unmaps and closes.
func (e *env) openMapped(name string, flags, prot, size int) (fd int, m []byte, done func(), err error) {
	fd, err = unix.Open(e.path(name), flags, 0)
	if err != nil {
		return -1, nil, nil, err
	}
	m, err = unix.Mmap(fd, 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return -1, nil, nil, err
	}
	return fd, m, func() { unix.Munmap(m); unix.Close(fd) }, nil
}
