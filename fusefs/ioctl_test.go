package fusefs_test

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

const (
	flNoatime   = 0x80 // FS_NOATIME_FL
	flImmutable = 0x10 // FS_IMMUTABLE_FL
	xflImmut    = 0x08 // FS_XFLAG_IMMUTABLE
	xflNoatime  = 0x40 // FS_XFLAG_NOATIME
)

// inodeFlags returns what lsattr shows for path (FS_IOC_GETFLAGS) and the
// xflags of FS_IOC_FSGETXATTR.
func inodeFlags(t *testing.T, path string) (flags, xflags uint32) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("FS_IOC_GETFLAGS on %s: %v", path, err)
	}
	var fa [28]byte // struct fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0x801c581f, uintptr(unsafe.Pointer(&fa[0]))); e != 0 {
		t.Fatalf("FS_IOC_FSGETXATTR on %s: %v", path, e)
	}
	return flags, *(*uint32)(unsafe.Pointer(&fa[0]))
}

func setInodeFlags(path string, flags uint32) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
}

// TestInodeFlags: lsattr through the mount shows the real files' inode
// flags, and an upper object's immutable flag kept in overlay.protattr as
// kernel overlayfs keeps it, the same as kernel overlayfs over the same
// layers shows them; a copy-up keeps the noatime flag, as the kernel's
// does; setting flags is refused (EOPNOTSUPP), as in fuse-overlayfs.
func TestInodeFlags(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	lowerFile := filepath.Join(s.Lowers[0], "noatime")
	if err := os.WriteFile(lowerFile, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Lowers[0], "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{lowerFile, filepath.Join(s.Lowers[0], "dir")} {
		if err := setInodeFlags(p, flNoatime); err != nil {
			t.Fatalf("chattr +A on the lower layer's filesystem: %v", err)
		}
	}
	upperFile := filepath.Join(s.Upper, "locked")
	if err := os.WriteFile(upperFile, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(upperFile, "trusted.overlay.protattr", []byte("i"), 0); err != nil {
		t.Fatal(err)
	}
	names := []string{"noatime", "locked", "dir"}

	s.MountDaemon(t)
	got := map[string][2]uint32{}
	for _, name := range names {
		f, x := inodeFlags(t, filepath.Join(s.Mnt, name))
		got[name] = [2]uint32{f, x}
	}
	if f := got["noatime"]; f[0]&flNoatime == 0 || f[1]&xflNoatime == 0 {
		t.Errorf("noatime: flags %#x xflags %#x, want the lower file's noatime flag", f[0], f[1])
	}
	if f := got["locked"]; f[0]&flImmutable == 0 || f[1]&xflImmut == 0 {
		t.Errorf("locked: flags %#x xflags %#x, want immutable from overlay.protattr", f[0], f[1])
	}
	if err := setInodeFlags(filepath.Join(s.Mnt, "noatime"), 0); err != unix.EOPNOTSUPP {
		t.Errorf("FS_IOC_SETFLAGS: %v, want EOPNOTSUPP", err)
	}
	// Copy-ups keep the noatime flag, as the kernel's do.
	for _, name := range []string{"noatime", "dir"} {
		if err := os.Chmod(filepath.Join(s.Mnt, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if f, _ := inodeFlags(t, filepath.Join(s.Mnt, name)); f&flNoatime == 0 {
			t.Errorf("%s after its copy-up: flags %#x, the lower object's noatime flag lost", name, f)
		}
	}
	s.UnmountDaemon(t)
	for _, name := range []string{"noatime", "dir"} {
		if f, _ := inodeFlags(t, filepath.Join(s.Upper, name)); f&flNoatime == 0 {
			t.Errorf("upper %s: flags %#x, want the noatime flag copied up", name, f)
		}
	}

	s.MountKernel(t)
	for _, name := range names {
		f, x := inodeFlags(t, filepath.Join(s.Mnt, name))
		if want := got[name]; f != want[0] || x != want[1] {
			t.Errorf("%s: Strata shows flags %#x xflags %#x, kernel overlayfs %#x %#x", name, want[0], want[1], f, x)
		}
	}
}
