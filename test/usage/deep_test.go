package usage

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// deepName is a directory name of the deep tree: levels of it make paths
// longer than PATH_MAX (4096), which no single system call takes.
var deepName = strings.Repeat("d", 200)

const deepLevels = 25 // 5025 bytes of path below the layer's root

// openDeep opens the deepest directory of the tree below root, a level at
// a time (the path is too long for one call).
func openDeep(t *testing.T, root string) int {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < deepLevels; i++ {
		next, err := unix.Openat(fd, deepName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("open level %d below %s: %v", i+1, root, err)
		}
		fd = next
	}
	return fd
}

func names(t *testing.T, dirfd int, rel string) []string {
	t.Helper()
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	ns, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatalf("list %s: %v", rel, err)
	}
	slices.Sort(ns)
	return ns
}

func readAt(t *testing.T, dirfd int, name string) string {
	t.Helper()
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := f.Read(b)
	return string(b[:n])
}

// TestDeeperThanPathMax: a tree deeper than PATH_MAX, in a lower layer,
// read and changed through Strata at its bottom (copy-up of the file and
// of every directory above it, whiteouts, an opaque directory, links,
// renames, xattrs), then the same layers through kernel overlayfs, which
// serves such trees, must show the same. Strata reaches objects by paths
// below each layer's root, so it takes them a piece at a time there.
func TestDeeperThanPathMax(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	mkDeep(t, s.Lowers[0])
	s.MountDaemon(t)

	fd := openDeep(t, s.Mnt)
	if got := readAt(t, fd, "leaf"); got != "deep\n" {
		t.Fatalf("leaf reads %q", got)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s at the bottom of the deep tree: %v", what, err)
		}
	}
	f, err := unix.Openat(fd, "leaf", unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	must("open leaf for appending", err)
	_, err = unix.Write(f, []byte("more\n"))
	must("append to leaf", err)
	must("fsync leaf", unix.Fsync(f))
	unix.Close(f)
	must("unlink a lower file", unix.Unlinkat(fd, "gone", 0))
	must("unlink in a lower directory", unix.Unlinkat(fd, "sub/inner", 0))
	must("rmdir a lower directory", unix.Unlinkat(fd, "sub", unix.AT_REMOVEDIR))
	must("mkdir over its whiteout", unix.Mkdirat(fd, "sub", 0o755))
	must("create", os.WriteFile("/proc/self/fd/"+strconv.Itoa(fd)+"/sub/new", []byte("new\n"), 0o644))
	must("rename", unix.Renameat(fd, "sub/new", fd, "renamed"))
	must("link", unix.Linkat(fd, "renamed", fd, "hardlink", 0))
	must("symlink", unix.Symlinkat("leaf", fd, "symlink"))
	must("chmod", unix.Fchmodat(fd, "leaf", 0o600, 0))
	must("setxattr", unix.Lsetxattr("/proc/self/fd/"+strconv.Itoa(fd)+"/leaf", "user.deep", []byte("yes"), 0))
	want := []string{"hardlink", "leaf", "renamed", "sub", "symlink"}
	if got := names(t, fd, "."); !slices.Equal(got, want) {
		t.Fatalf("bottom lists %v, want %v", got, want)
	}
	unix.Close(fd)
	s.UnmountDaemon(t)

	// The kernel's view of the same layers.
	s.MountKernel(t)
	fd = openDeep(t, s.Mnt)
	defer unix.Close(fd)
	if got := names(t, fd, "."); !slices.Equal(got, want) {
		t.Errorf("kernel overlayfs lists %v at the bottom, want %v", got, want)
	}
	if got := names(t, fd, "sub"); len(got) != 0 {
		t.Errorf("kernel overlayfs lists %v in the directory made over a whiteout, want it opaque and empty", got)
	}
	if got := readAt(t, fd, "leaf"); got != "deep\nmore\n" {
		t.Errorf("kernel overlayfs reads leaf as %q", got)
	}
	if got := readAt(t, fd, "hardlink"); got != "new\n" {
		t.Errorf("kernel overlayfs reads hardlink as %q", got)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "leaf", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&0o7777 != 0o600 {
		t.Errorf("kernel overlayfs: leaf mode %o, %v", st.Mode&0o7777, err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr("/proc/self/fd/"+strconv.Itoa(fd)+"/leaf", "user.deep", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("kernel overlayfs: user.deep of leaf %q, %v", buf[:max(n, 0)], err)
	}
	if target, err := readlinkAt(fd, "symlink"); err != nil || target != "leaf" {
		t.Errorf("kernel overlayfs: symlink -> %q, %v", target, err)
	}
}

// mkDeep builds the deep tree in layer, a level at a time.
func mkDeep(t *testing.T, layer string) {
	t.Helper()
	fd, err := unix.Open(layer, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < deepLevels; i++ {
		if err := unix.Mkdirat(fd, deepName, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, deepName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	defer unix.Close(fd)
	base := "/proc/self/fd/" + strconv.Itoa(fd) + "/"
	for name, content := range map[string]string{"leaf": "deep\n", "gone": "to be removed\n", "sub/inner": "inside\n"} {
		if err := os.MkdirAll(filepath.Dir(base+name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
