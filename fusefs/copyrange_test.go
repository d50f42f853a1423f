package fusefs_test

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// copyFile copies n bytes with copy_file_range(2) as cp does, asking
// again after a short copy.
func copyFile(t *testing.T, src string, offIn int64, dst string, offOut int64, n int) {
	t.Helper()
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(out)
	for n > 0 {
		c, err := unix.CopyFileRange(in, &offIn, out, &offOut, n, 0)
		if err != nil || c == 0 {
			t.Fatalf("copy_file_range %s -> %s: %d, %v with %d bytes left", src, dst, c, err, n)
		}
		n -= c
	}
}

// resident counts the pages of path the kernel has cached for the mount.
func resident(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	count := 0
	for _, v := range vec {
		count += int(v & 1)
	}
	return count
}

// TestCopyFileRange: copy_file_range(2) between files of the mount is
// made by the daemon (the data never passes through the mount's page
// cache), copies a lower destination up, leaves lower files alone, and
// leaves layers that kernel overlayfs reads the same.
func TestCopyFileRange(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	src := make([]byte, 3<<20+123)
	rand.New(rand.NewSource(1)).Read(src)
	lowerDst := bytes.Repeat([]byte{'d'}, 1<<20)
	if err := os.WriteFile(filepath.Join(s.Lowers[0], "src"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Lowers[0], "dst"), lowerDst, 0o644); err != nil {
		t.Fatal(err)
	}
	s.MountDaemon(t)
	mnt := func(name string) string { return filepath.Join(s.Mnt, name) }

	copyFile(t, mnt("src"), 0, mnt("new"), 0, len(src))
	if !mounttest.Passthrough() { // passthrough maps the upper file's own pages
		if n := resident(t, mnt("new")); n != 0 {
			t.Errorf("%d pages of the copy are in the mount's cache: the kernel copied through the mount", n)
		}
	}
	copyFile(t, mnt("src"), 10, mnt("dst"), 100000, 4096)
	wantDst := append([]byte{}, lowerDst...)
	copy(wantDst[100000:], src[10:4106])

	check := func(how string) {
		t.Helper()
		for name, want := range map[string][]byte{"src": src, "new": src, "dst": wantDst} {
			got, err := os.ReadFile(mnt(name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %s reads %d bytes (%v), want %d, equal %v", how, name, len(got), err, len(want), bytes.Equal(got, want))
			}
		}
	}
	check("strata")
	if got, _ := os.ReadFile(filepath.Join(s.Lowers[0], "dst")); !bytes.Equal(got, lowerDst) {
		t.Fatal("the lower dst changed")
	}
	if _, err := os.Lstat(filepath.Join(s.Upper, "src")); !os.IsNotExist(err) {
		t.Fatalf("the source was copied up (%v)", err)
	}
	s.UnmountDaemon(t)
	s.MountKernel(t)
	check("kernel overlayfs over the same layers")
}
