package fusefs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// With the writeback cache the kernel keeps regular files' mtimes itself
// and never takes them from the daemon; the data reaches the daemon
// later, often after the close. The upper layer must still record the
// mtime the mount showed (kernel overlayfs, mounting the same layers,
// shows the upper file's), so a WRITE must not move it and a truncate
// that comes without a new mtime must not either.
func TestWritebackKeepsUpperMtimes(t *testing.T) {
	if mounttest.Passthrough() {
		t.Skip("passthrough mounts have no writeback cache")
	}
	s := mounttest.NewStack(t, 1)
	lower := s.Lowers[0]
	old := time.Date(2011, 1, 2, 3, 4, 5, 6, time.UTC)
	for name, size := range map[string]int{"small": 10000, "big": 6 << 20, "mapped": 8192, "same": 5000} {
		p := filepath.Join(lower, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{'l'}, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	s.MountDaemon(t, "writeback=1")
	mnt := func(name string) string { return filepath.Join(s.Mnt, name) }

	// Each step changes one file through the mount the way programs do,
	// after a pause so that the kernel's clock has moved on.
	steps := []struct {
		name  string
		moves bool // whether the step sets a new mtime
		do    func(p string) error
	}{
		{"new", true, func(p string) error { return os.WriteFile(p, []byte("hello\n"), 0o644) }},
		{"new", true, func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteString("more\n")
			return closeAfter(f, err)
		}},
		{"small", true, func(p string) error { // a lower file, copied up by the data's arrival
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt([]byte("upper"), 4000)
			return closeAfter(f, err)
		}},
		{"big", true, func(p string) error { // copied up with its data following (fill)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt([]byte("upper"), 3<<20)
			return closeAfter(f, err)
		}},
		{"same", false, func(p string) error { return unix.Truncate(p, 5000) }},
		{"same", true, func(p string) error { return unix.Truncate(p, 7000) }},
		{"same", true, func(p string) error {
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = unix.Fallocate(fd, 0, 0, 1<<20)
			if cerr := unix.Close(fd); err == nil {
				err = cerr
			}
			return err
		}},
		{"mapped", true, func(p string) error {
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			m, err := unix.Mmap(fd, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				return err
			}
			copy(m[100:], "mapped")
			return unix.Munmap(m)
		}},
	}
	shown := map[string]unix.Timespec{}
	for i, step := range steps {
		p := mnt(step.name)
		var before unix.Stat_t
		hadBefore := unix.Stat(p, &before) == nil
		time.Sleep(20 * time.Millisecond)
		if err := step.do(p); err != nil {
			t.Fatalf("step %d (%s): %v", i, step.name, err)
		}
		// A copy-up reaches the upper layer's namespace once it is
		// durable: fsync makes it so now.
		if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		} else {
			err = unix.Fsync(fd)
			unix.Close(fd)
			if err != nil {
				t.Fatal(err)
			}
		}
		var st, up unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if hadBefore && (st.Mtim != before.Mtim) != step.moves {
			t.Errorf("step %d (%s): mtime on the mount %v, before %v; want it moved: %v", i, step.name, st.Mtim, before.Mtim, step.moves)
		}
		if err := unix.Stat(filepath.Join(s.Upper, step.name), &up); err != nil {
			t.Fatalf("step %d (%s): upper file: %v", i, step.name, err)
		}
		if up.Mtim != st.Mtim {
			t.Errorf("step %d (%s): upper layer's mtime %v, the mount shows %v", i, step.name, time.Unix(up.Mtim.Unix()), time.Unix(st.Mtim.Unix()))
		}
		shown[step.name] = st.Mtim
	}
	// What the next mount shows comes from the upper layer.
	s.UnmountDaemon(t)
	s.MountDaemon(t, "writeback=1")
	for name, want := range shown {
		var st unix.Stat_t
		if err := unix.Stat(mnt(name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mtim != want {
			t.Errorf("%s after a remount: mtime %v, before %v", name, time.Unix(st.Mtim.Unix()), time.Unix(want.Unix()))
		}
	}
	if b, err := os.ReadFile(mnt("new")); err != nil || string(b) != "hello\nmore\n" {
		t.Errorf("new after a remount: %q, %v", b, err)
	}
}

func closeAfter(f *os.File, err error) error {
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
