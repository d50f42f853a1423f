package coherence

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// A scenario is one of the coherence guarantees. run returns nil when the
// overlay kept every descriptor and mapping coherent, or an error saying
// what was seen instead. Scenarios run on Strata, where they must pass,
// and on kernel overlayfs, whose result is recorded for the table in
// docs/coherence.md.
type scenario struct {
	id, title string
	setup     func(t *testing.T, lower string)
	run       func(e *env) error
}

const small = 8192

func smallFile(t *testing.T, lower string) { writeLower(t, lower+"/f", fill('A', small)) }

// twoFiles is smallFile and a second file, g, of 'B's.
func twoFiles(t *testing.T, lower string) {
	smallFile(t, lower)
	writeLower(t, lower+"/g", fill('B', small))
}

var scenarios = []scenario{
	{"1", "read-only shared mapping sees another process's write", smallFile, func(e *env) error {
		_, m, done, err := e.openMapped("f", unix.O_RDONLY, unix.PROT_READ, small)
		if err != nil {
			return err
		}
		defer done()
		if got, err := mapped(m, 100, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("before: %q %v", got, err)
		}
		if _, err := other("pwrite", e.path("f"), "100", "BBBB"); err != nil {
			return err
		}
		got, err := mapped(m, 100, 4)
		if err != nil {
			return err
		}
		return expect("mapping after the write", got, "BBBB")
	}},
	{"1b", "mapping follows another process's truncate and extend", smallFile, func(e *env) error {
		_, m, done, err := e.openMapped("f", unix.O_RDONLY, unix.PROT_READ, small)
		if err != nil {
			return err
		}
		defer done()
		if _, err := mapped(m, 5000, 1); err != nil {
			return err
		}
		if _, err := other("truncate", e.path("f"), "4096"); err != nil {
			return err
		}
		if got, err := mapped(m, 5000, 1); err != errFault {
			return fmt.Errorf("beyond the new EOF: read %q (err %v), want SIGBUS", got, err)
		}
		if _, err := other("truncate", e.path("f"), strconv.Itoa(small)); err != nil {
			return err
		}
		got, err := mapped(m, 4090, 12)
		if err != nil {
			return fmt.Errorf("after extending: %v", err)
		}
		return expect("after extending", got, "AAAAAA\x00\x00\x00\x00\x00\x00")
	}},
	{"1c", "read-only shared mapping sees what another process's copy_file_range puts in the file", twoFiles, func(e *env) error {
		_, m, done, err := e.openMapped("f", unix.O_RDONLY, unix.PROT_READ, small)
		if err != nil {
			return err
		}
		defer done()
		if got, err := mapped(m, 4000, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("before: %q %v", got, err)
		}
		if _, err := other("copyrange", e.path("g"), "10", e.path("f"), "4000", "4"); err != nil {
			return err
		}
		got, err := mapped(m, 4000, 4)
		if err != nil {
			return err
		}
		return expect("mapping after the copy", got, "BBBB")
	}},
	{"2", "writable mapping reaches an old read-only descriptor and a new mapping", smallFile, func(e *env) error {
		fd, err := unix.Open(e.path("f"), unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if got, _ := pread(fd, 10, 3); got != "AAA" {
			return fmt.Errorf("before: %q", got)
		}
		if _, err := other("mapwrite", e.path("f"), "10", "XYZ"); err != nil {
			return err
		}
		got, err := pread(fd, 10, 3)
		if err != nil {
			return err
		}
		if err := expect("old descriptor", got, "XYZ"); err != nil {
			return err
		}
		got, err = other("mapread", e.path("f"), "10", "3")
		if err != nil {
			return err
		}
		return expect("new mapping in another process", got, "XYZ")
	}},
	{"3", "old read-only descriptor sees the copied-up file's size, data and times", smallFile, func(e *env) error {
		fd, err := unix.Open(e.path("f"), unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if _, err := pread(fd, 0, 1); err != nil {
			return err
		}
		if _, err := other("pwrite", e.path("f"), strconv.Itoa(small), "TAIL"); err != nil {
			return err
		}
		var st, pst unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Size != small+4 {
			return fmt.Errorf("fstat size %d, want %d", st.Size, small+4)
		}
		end, err := unix.Seek(fd, 0, unix.SEEK_END)
		if err != nil || end != small+4 {
			return fmt.Errorf("lseek(SEEK_END) = %d, %v; want %d", end, err, small+4)
		}
		got, err := pread(fd, small, 4)
		if err != nil {
			return err
		}
		if err := expect("pread of the new tail", got, "TAIL"); err != nil {
			return err
		}
		if err := unix.Stat(e.path("f"), &pst); err != nil {
			return err
		}
		if st.Mtim != pst.Mtim {
			return fmt.Errorf("fstat mtime %v differs from stat mtime %v", st.Mtim, pst.Mtim)
		}
		return nil
	}},
	{"4", "writes through a shared mapping persist in the upper layer, across unmount", smallFile, func(e *env) error {
		fd, err := unix.Open(e.path("f"), unix.O_RDWR, 0)
		if err != nil {
			return err
		}
		m, err := unix.Mmap(fd, 0, small, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			unix.Close(fd)
			return err
		}
		copy(m, "PERSIST")
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			return err
		}
		unix.Munmap(m)
		unix.Close(fd)
		if err := e.unmount(); err != nil {
			return err
		}
		b, err := os.ReadFile(e.upper("f"))
		if err != nil {
			return fmt.Errorf("upper layer: %v", err)
		}
		if err := expect("upper file", string(b[:7]), "PERSIST"); err != nil {
			return err
		}
		// The kernel reads the layers the same way.
		mnt := e.t.TempDir()
		kernelReadOnly(e.t, []string{e.s.Upper, e.s.Lowers[0]}, mnt)
		b, err = os.ReadFile(mnt + "/f")
		if err != nil {
			return err
		}
		return expect("kernel overlayfs over the same layers", string(b[:8]), "PERSISTA")
	}},
	{"5", "metadata changes through an old read-only descriptor copy up and keep it working", smallFile, func(e *env) error {
		fd, err := unix.Open(e.path("f"), unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fchmod(fd, 0600); err != nil {
			return fmt.Errorf("fchmod: %v", err)
		}
		if err := unix.Fchown(fd, 1234, 5678); err != nil {
			return fmt.Errorf("fchown: %v", err)
		}
		ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9}}
		if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, e.path("f"), ts, 0); err != nil {
				return fmt.Errorf("utimens: %v", err)
			}
		}
		if err := unix.Fsetxattr(fd, "user.k", []byte("v"), 0); err != nil {
			return fmt.Errorf("fsetxattr: %v", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&07777 != 0600 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Sec != 1e9 {
			return fmt.Errorf("fstat: mode %o uid %d gid %d mtime %d", st.Mode&07777, st.Uid, st.Gid, st.Mtim.Sec)
		}
		if got, err := pread(fd, 0, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("read after the changes: %q %v", got, err)
		}
		// Strata links a copy-up into the upper layer once it is durable,
		// moments later (the kernel at once).
		var ust unix.Stat_t
		if err := e.upperStat("f", &ust); err != nil {
			return fmt.Errorf("upper layer: %v", err)
		}
		if ust.Mode&07777 != 0600 || ust.Uid != 1234 || ust.Mtim.Sec != 1e9 {
			return fmt.Errorf("upper file: mode %o uid %d mtime %d", ust.Mode&07777, ust.Uid, ust.Mtim.Sec)
		}
		buf := make([]byte, 8)
		n, err := unix.Getxattr(e.upper("f"), "user.k", buf)
		if err != nil || string(buf[:n]) != "v" {
			return fmt.Errorf("upper xattr user.k: %q %v", buf[:n], err)
		}
		return nil
	}},
	{"6", "concurrent writers copy a large file up once; a reader mapping it sees no partial copy", bigFile, concurrentCopyUp},
	{"7a", "a file renamed while open and mapped stays coherent", smallFile, func(e *env) error {
		fd, m, done, err := e.openMapped("f", unix.O_RDONLY, unix.PROT_READ, small)
		if err != nil {
			return err
		}
		defer done()
		if _, err := mapped(m, 0, 4); err != nil {
			return err
		}
		if err := os.Rename(e.path("f"), e.path("g")); err != nil {
			return err
		}
		if got, err := pread(fd, 0, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("read after rename: %q %v", got, err)
		}
		if _, err := other("pwrite", e.path("g"), "0", "REN!"); err != nil {
			return err
		}
		got, err := mapped(m, 0, 4)
		if err != nil {
			return err
		}
		if err := expect("mapping after a write to the new name", got, "REN!"); err != nil {
			return err
		}
		got, err = pread(fd, 0, 4)
		if err != nil {
			return err
		}
		return expect("old descriptor after a write to the new name", got, "REN!")
	}},
	{"7b", "a lower file unlinked while open keeps working, also when changed after", smallFile, func(e *env) error {
		fd, m, done, err := e.openMapped("f", unix.O_RDONLY, unix.PROT_READ, small)
		if err != nil {
			return err
		}
		defer done()
		if err := os.Remove(e.path("f")); err != nil {
			return err
		}
		if got, err := pread(fd, 0, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("read after unlink: %q %v", got, err)
		}
		if got, err := mapped(m, 8000, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("mapping after unlink: %q %v", got, err)
		}
		if err := unix.Fchmod(fd, 0640); err != nil {
			return fmt.Errorf("fchmod after unlink: %v", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&07777 != 0640 {
			return fmt.Errorf("fstat mode %o after fchmod, want 640", st.Mode&07777)
		}
		if got, err := pread(fd, 4096, 4); err != nil || got != "AAAA" {
			return fmt.Errorf("read after fchmod: %q %v", got, err)
		}
		if _, err := os.Lstat(e.path("f")); !os.IsNotExist(err) {
			return fmt.Errorf("the name came back: %v", err)
		}
		return nil
	}},
	{"7c", "a copied-up file unlinked while open and mapped stays coherent", smallFile, func(e *env) error {
		fd, m, done, err := e.openMapped("f", unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE, small)
		if err != nil {
			return err
		}
		defer done()
		if err := os.Remove(e.path("f")); err != nil {
			return err
		}
		if _, err := unix.Pwrite(fd, []byte("UNL!"), 0); err != nil {
			return err
		}
		got, err := mapped(m, 0, 4)
		if err != nil {
			return err
		}
		if err := expect("mapping after a write to the unlinked file", got, "UNL!"); err != nil {
			return err
		}
		copy(m[100:], "MAPW")
		got, err = pread(fd, 100, 4)
		if err != nil {
			return err
		}
		return expect("read after a write through the mapping", got, "MAPW")
	}},
}

func kernelReadOnly(t *testing.T, lowers []string, mnt string) {
	t.Helper()
	opts := "lowerdir=" + lowers[0]
	for _, l := range lowers[1:] {
		opts += ":" + l
	}
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, opts); err != nil {
		t.Fatalf("kernel overlay %s: %v", opts, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
}
