package overlay_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestCopyUpTriggers: each change to a lower file copies it (and its
// parent directory) up exactly once, keeping its inode number.
func TestCopyUpTriggers(t *testing.T) {
	type result struct {
		path    string // where the object lands in the upper layer
		content string
	}
	const data = "content"
	cases := []struct {
		name string
		op   func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result
	}{
		{"open-wronly", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			h, err := fs.Open(f, unix.O_WRONLY)
			wantErrno(t, "open", err, 0)
			fs.Release(h)
			return result{"d/f", data}
		}},
		{"open-rdwr", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			h, err := fs.Open(f, unix.O_RDWR)
			wantErrno(t, "open", err, 0)
			fs.Release(h)
			return result{"d/f", data}
		}},
		{"open-rdonly-trunc", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			h, err := fs.Open(f, unix.O_RDONLY|unix.O_TRUNC)
			wantErrno(t, "open", err, 0)
			fs.Release(h)
			return result{"d/f", ""}
		}},
		{"setattr-mode", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0600})
			wantErrno(t, "setattr", err, 0)
			if st.Mode&07777 != 0600 {
				t.Fatalf("mode %o after chmod 600", st.Mode&07777)
			}
			return result{"d/f", data}
		}},
		{"setattr-owner", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetUID | overlay.SetGID, UID: 4321, GID: 8765})
			wantErrno(t, "setattr", err, 0)
			if st.Uid != 4321 || st.Gid != 8765 {
				t.Fatalf("owner %d:%d after chown", st.Uid, st.Gid)
			}
			return result{"d/f", data}
		}},
		{"setattr-gid", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetGID, GID: 77})
			wantErrno(t, "setattr", err, 0)
			if st.Uid != 1000 || st.Gid != 77 {
				t.Fatalf("owner %d:%d after chgrp 77", st.Uid, st.Gid)
			}
			return result{"d/f", data}
		}},
		{"setattr-shrink", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetSize, Size: 3})
			wantErrno(t, "setattr", err, 0)
			if st.Size != 3 {
				t.Fatalf("size %d after truncate to 3", st.Size)
			}
			return result{"d/f", data[:3]}
		}},
		{"setattr-grow", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			_, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetSize, Size: 10})
			wantErrno(t, "setattr", err, 0)
			return result{"d/f", data + "\x00\x00\x00"}
		}},
		{"setattr-times", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetAtime | overlay.SetMtime, Atime: ts(1e9), Mtime: ts(1.1e9)})
			wantErrno(t, "setattr", err, 0)
			if st.Mtim != ts(1.1e9) || st.Atim != ts(1e9) {
				t.Fatalf("times %v %v after utimensat", st.Atim, st.Mtim)
			}
			return result{"d/f", data}
		}},
		{"setattr-mtime-now", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMtimeNow})
			wantErrno(t, "setattr", err, 0)
			if st.Mtim.Sec < 1.6e9 {
				t.Fatalf("mtime %v after touch", st.Mtim)
			}
			return result{"d/f", data}
		}},
		{"setxattr", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			wantErrno(t, "setxattr", fs.SetXattr(f, "user.new", []byte("v"), 0), 0)
			return result{"d/f", data}
		}},
		{"removexattr", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			wantErrno(t, "removexattr", fs.RemoveXattr(f, "user.old"), 0)
			return result{"d/f", data}
		}},
		{"link", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			_, err := fs.Link(f, fs.Root(), "hard")
			wantErrno(t, "link", err, 0)
			return result{"hard", data}
		}},
		{"rename", func(t *testing.T, fs *overlay.FS, d, f *overlay.Node) result {
			wantErrno(t, "rename", fs.Rename(d, "f", d, "g", 0), 0)
			return result{"d/g", data}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStack(t, 1)
			build(t, s.lower(0), "d/f="+data)
			lf := s.lower(0) + "/d/f"
			if err := unix.Lsetxattr(lf, "user.old", []byte("o"), 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(lf, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			lowerBefore := lstat(t, lf)
			fs := s.mount()
			d, _ := mustWalk(t, fs, "d")
			f, st0, err := fs.Lookup(d, "f")
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.Stats().CopyUps; got != 0 {
				t.Fatalf("CopyUps %d before any change", got)
			}
			r := c.op(t, fs, d, f)

			up := s.upper + "/" + r.path
			wantKind(t, up, unix.S_IFREG)
			if got := fileContent(t, up); got != r.content {
				t.Fatalf("upper %s holds %q, want %q", r.path, got, r.content)
			}
			wantKind(t, s.upper+"/d", unix.S_IFDIR)
			if got := fs.Stats().CopyUps; got != 2 {
				t.Fatalf("Stats().CopyUps = %d, want 2 (d and f)", got)
			}
			st, err := fs.Getattr(f)
			wantErrno(t, "getattr", err, 0)
			if st.Ino != st0.Ino || f.Ino() != st0.Ino {
				t.Fatalf("inode number changed by copy-up: %d -> %d", st0.Ino, st.Ino)
			}
			// The lower layer is never written.
			lowerAfter := lstat(t, lf)
			if fileContent(t, lf) != data || lowerAfter.Mode != lowerBefore.Mode || lowerAfter.Uid != 1000 ||
				lowerAfter.Mtim != lowerBefore.Mtim || lowerAfter.Ino != lowerBefore.Ino {
				t.Fatalf("lower file changed")
			}
			if v, err := xattr(lf, "user.old"); err != nil || string(v) != "o" {
				t.Fatalf("lower xattr changed: %q %v", v, err)
			}
			wantWorkEmpty(t, s)

			// Doing it again copies nothing more.
			h, err := fs.Open(f, unix.O_RDWR)
			wantErrno(t, "reopen", err, 0)
			fs.Release(h)
			if got := fs.Stats().CopyUps; got != 2 {
				t.Fatalf("Stats().CopyUps = %d after a second open for write, want 2", got)
			}
		})
	}
}

// TestCopyUpMetadata: data, mode, owner, times and xattrs of the object
// and of its parents are copied; the upper parent's times do not change.
func TestCopyUpMetadata(t *testing.T) {
	s := newStack(t, 1)
	lo := s.lower(0)
	build(t, lo, "a/b/f=some data", "a/b/l->../target", "a/b/|p", "a/b/other=")
	type meta struct {
		path     string
		mode     uint32
		uid, gid int
		atime    unix.Timespec
		mtime    unix.Timespec
		xattrs   map[string]string
	}
	objs := []meta{
		{"a/b/f", unix.S_IFREG | 04750, 1234, 5678, ts(1.003e9), ts(1.004e9), map[string]string{"user.foo": "bar", "trusted.foo": "baz"}},
		{"a/b/l", unix.S_IFLNK | 0777, 21, 22, ts(1.005e9), ts(1.006e9), nil},
		{"a/b/p", unix.S_IFIFO | 0640, 23, 24, ts(1.007e9), ts(1.008e9), map[string]string{"trusted.pipe": "1"}},
		{"a/b", unix.S_IFDIR | 0700, 13, 14, ts(1.009e9), ts(1.002e9), map[string]string{"user.dir": "b"}},
		{"a", unix.S_IFDIR | 02751, 11, 12, ts(1.010e9), ts(1.001e9), map[string]string{"user.dir": "a", "trusted.t": "x"}},
	}
	for _, m := range objs {
		p := lo + "/" + m.path
		if err := unix.Lchown(p, m.uid, m.gid); err != nil {
			t.Fatal(err)
		}
		if m.mode&unix.S_IFMT != unix.S_IFLNK {
			if err := unix.Chmod(p, m.mode&07777); err != nil {
				t.Fatal(err)
			}
		}
		for k, v := range m.xattrs {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				t.Fatal(err)
			}
		}
		setTimes(t, p, m.atime, m.mtime)
	}
	upperRootTimes := [2]unix.Timespec{ts(1.2e9), ts(1.3e9)}
	setTimes(t, s.upper, upperRootTimes[0], upperRootTimes[1])

	fs := s.mount()
	f, st0 := mustWalk(t, fs, "a/b/f")
	h, err := fs.Open(f, unix.O_WRONLY) // copy-up without writing
	wantErrno(t, "open for write", err, 0)
	fs.Release(h)
	if got := fs.Stats().CopyUps; got != 3 {
		t.Fatalf("Stats().CopyUps = %d, want 3 (a, a/b, a/b/f)", got)
	}
	// The symlink and the pipe go up by chown and chmod of their own.
	l, _ := mustWalk(t, fs, "a/b/l")
	if _, err := fs.Setattr(l, &overlay.SetAttr{Valid: overlay.SetUID | overlay.SetGID, UID: 21, GID: 22}); err != nil {
		t.Fatal(err)
	}
	p, _ := mustWalk(t, fs, "a/b/p")
	if _, err := fs.Setattr(p, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0640}); err != nil {
		t.Fatal(err)
	}
	if got := fs.Stats().CopyUps; got != 5 {
		t.Fatalf("Stats().CopyUps = %d, want 5", got)
	}

	for _, m := range objs {
		up := s.upper + "/" + m.path
		st := lstat(t, up)
		if st.Mode != m.mode {
			t.Errorf("%s: upper mode %o, want %o", m.path, st.Mode, m.mode)
		}
		if int(st.Uid) != m.uid || int(st.Gid) != m.gid {
			t.Errorf("%s: upper owner %d:%d, want %d:%d", m.path, st.Uid, st.Gid, m.uid, m.gid)
		}
		if st.Mtim != m.mtime {
			t.Errorf("%s: upper mtime %v, want %v", m.path, st.Mtim, m.mtime)
		}
		if m.mode&unix.S_IFMT != unix.S_IFDIR && st.Atim != m.atime {
			t.Errorf("%s: upper atime %v, want %v", m.path, st.Atim, m.atime)
		}
		for k, v := range m.xattrs {
			if got, err := xattr(up, k); err != nil || string(got) != v {
				t.Errorf("%s: upper xattr %s = %q, %v; want %q", m.path, k, got, err, v)
			}
		}
		if isOpaque(up) {
			t.Errorf("%s: copied-up object is opaque", m.path)
		}
		// What the engine reports agrees.
		n, est := mustWalk(t, fs, m.path)
		if est.Mode != m.mode || int(est.Uid) != m.uid || int(est.Gid) != m.gid || est.Mtim != m.mtime {
			t.Errorf("%s: engine reports mode %o owner %d:%d mtime %v", m.path, est.Mode, est.Uid, est.Gid, est.Mtim)
		}
		for k, v := range m.xattrs {
			buf := make([]byte, 64)
			n, err := fs.GetXattr(n, k, buf)
			if err != nil || string(buf[:n]) != v {
				t.Errorf("%s: GetXattr %s = %q, %v", m.path, k, buf[:n], err)
			}
		}
	}
	if got := fileContent(t, s.upper+"/a/b/f"); got != "some data" {
		t.Fatalf("upper data %q", got)
	}
	if got, _ := os.Readlink(s.upper + "/a/b/l"); got != "../target" {
		t.Fatalf("upper symlink target %q", got)
	}
	if st, _ := fs.Getattr(f); st.Ino != st0.Ino {
		t.Fatalf("ino changed: %d -> %d", st0.Ino, st.Ino)
	}
	// Copy-up adds entries to upper directories without changing their
	// times, as the kernel's does.
	if st := lstat(t, s.upper); st.Mtim != upperRootTimes[1] {
		t.Fatalf("upper root mtime %v after copy-up, want %v", st.Mtim, upperRootTimes[1])
	}
	if _, err := os.Stat(s.upper + "/a/b/other"); err == nil {
		t.Fatalf("a sibling was copied up too")
	}
	wantWorkEmpty(t, s)
}

// TestCopyUpSecurityCapability: file capabilities are copied up, as the
// kernel copies them.
func TestCopyUpSecurityCapability(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "ping=binary")
	p := s.lower(0) + "/ping"
	// VFS_CAP_REVISION_2 with cap_net_raw permitted and effective.
	capv := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Lsetxattr(p, "security.capability", capv, 0); err != nil {
		t.Skipf("security.capability not settable here: %v", err)
	}
	fs := s.mount()
	n, _ := mustWalk(t, fs, "ping")
	if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetAtime, Atime: ts(1e9)}); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.upper+"/ping", unix.S_IFREG)
	got, err := xattr(s.upper+"/ping", "security.capability")
	if err != nil || string(got) != string(capv) {
		// chown(2) clears file capabilities: the xattrs go after it.
		t.Fatalf("copy-up dropped security.capability (upper copy: %q, %v); the kernel keeps it", got, err)
	}
}

func TestCopyUpSparse(t *testing.T) {
	s := newStack(t, 1)
	p := s.lower(0) + "/sparse"
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const gib = 1 << 30
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), gib)
	f.Close()
	fs := s.mount()
	n, _ := mustWalk(t, fs, "sparse")
	h, err := fs.Open(n, unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Release(h)
	st := lstat(t, s.upper+"/sparse")
	if st.Size != gib+4 {
		t.Fatalf("upper size %d", st.Size)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("upper copy uses %d bytes for a 1 GiB file with 8 bytes of data: holes were filled", st.Blocks*512)
	}
	buf := make([]byte, 4)
	if _, err := fs.Read(h, buf, gib); err != nil || string(buf) != "tail" {
		t.Fatalf("read at 1 GiB: %q %v", buf, err)
	}
	if _, err := fs.Read(h, buf, 0); err != nil || string(buf) != "head" {
		t.Fatalf("read at 0: %q %v", buf, err)
	}
	if _, err := fs.Read(h, buf, gib/2); err != nil || string(buf) != "\x00\x00\x00\x00" {
		t.Fatalf("read in the hole: %q %v", buf, err)
	}
	hole, err := fs.Lseek(h, 0, unix.SEEK_HOLE)
	if err != nil || hole >= 1<<20 {
		t.Fatalf("SEEK_HOLE from 0: %d %v", hole, err)
	}
	data, err := fs.Lseek(h, hole, unix.SEEK_DATA)
	if err != nil || data < gib-1<<20 {
		t.Fatalf("SEEK_DATA from %d: %d %v", hole, data, err)
	}
}

// TestCopyUpKeepsIno: files and directories keep their inode number
// through copy-up, in this engine and in the next one on the same layers.
func TestCopyUpKeepsIno(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=x", "d/sub/g=y")
	fs := s.mount()
	want := map[string]uint64{}
	for _, p := range []string{"d", "d/f", "d/sub", "d/sub/g"} {
		_, st := mustWalk(t, fs, p)
		want[p] = st.Ino
		if lst := lstat(t, s.lower(0)+"/"+p); lst.Ino != st.Ino {
			t.Fatalf("%s: overlay ino %d, lower ino %d (one filesystem: the kernel uses the real number)", p, st.Ino, lst.Ino)
		}
	}
	f, _ := mustWalk(t, fs, "d/f")
	g, _ := mustWalk(t, fs, "d/sub/g")
	writeFile(t, fs, f, "new", 0)
	writeFile(t, fs, g, "new", 0)
	for _, p := range []string{"d", "d/f", "d/sub", "d/sub/g"} {
		n, _ := mustWalk(t, fs, p)
		st, err := fs.Getattr(n)
		if err != nil || st.Ino != want[p] {
			t.Fatalf("%s: ino %d after copy-up, want %d (%v)", p, st.Ino, want[p], err)
		}
		if ust := lstat(t, s.upper+"/"+p); ust.Ino == want[p] {
			t.Fatalf("%s: test is void, upper and lower inode numbers coincide", p)
		}
	}
	fs2 := mountCfg(t, s.configWithWork(t))
	for _, p := range []string{"d", "d/f", "d/sub", "d/sub/g"} {
		_, st := mustWalk(t, fs2, p)
		if st.Ino != want[p] {
			t.Fatalf("%s: a new engine reports ino %d, want %d", p, st.Ino, want[p])
		}
	}
}

// workFiles returns the sizes of the files open in this process that
// live in the work directory (the copy-up's temporary file).
func workFiles(t *testing.T, work string) []int64 {
	real, err := filepath.EvalSymlinks(work)
	if err != nil {
		t.Error(err)
		return nil
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	var sizes []int64
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(target, real+"/work/") {
			continue
		}
		fd, _ := strconv.Atoi(e.Name())
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			sizes = append(sizes, st.Size)
		}
	}
	return sizes
}

// TestCopyUpTruncateCopiesNoData: a copy-up for O_TRUNC or for a
// truncate copies only what survives the truncation.
func TestCopyUpTruncateCopiesNoData(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, c := range []struct {
		name string
		op   func(fs *overlay.FS, n *overlay.Node) error
		want int64
	}{
		{"open-trunc", func(fs *overlay.FS, n *overlay.Node) error {
			h, err := fs.Open(n, unix.O_WRONLY|unix.O_TRUNC)
			if err == nil {
				fs.Release(h)
			}
			return err
		}, 0},
		{"truncate-0", func(fs *overlay.FS, n *overlay.Node) error {
			_, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetSize, Size: 0})
			return err
		}, 0},
		{"truncate-10", func(fs *overlay.FS, n *overlay.Node) error {
			_, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetSize, Size: 10})
			return err
		}, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStack(t, 1)
			build(t, s.lower(0), "f="+big)
			fs := s.mount()
			var seen [][]int64
			fs.Hooks.CopyUpBeforeLink = func(rel string) {
				seen = append(seen, workFiles(t, s.work))
			}
			n, _ := mustWalk(t, fs, "f")
			if err := c.op(fs, n); err != nil {
				t.Fatal(err)
			}
			if len(seen) != 1 {
				t.Fatalf("hook ran %d times", len(seen))
			}
			if len(seen[0]) != 1 {
				t.Skipf("cannot find the copy-up's temporary file among the open files: %v", seen[0])
			}
			if seen[0][0] != c.want {
				t.Fatalf("the copy had %d bytes before it was linked in, want %d (data copied only to be truncated)", seen[0][0], c.want)
			}
			if st := lstat(t, s.upper+"/f"); st.Size != c.want {
				t.Fatalf("upper size %d, want %d", st.Size, c.want)
			}
			if got := fileContent(t, s.lower(0)+"/f"); got != big {
				t.Fatalf("lower file changed")
			}
		})
	}
}

// TestCopyUpLeavesLowerAtime: copying up reads the lower file without
// touching its atime (the kernel opens it O_NOATIME): lower layers are
// never modified.
func TestCopyUpLeavesLowerAtime(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=data")
	p := s.lower(0) + "/f"
	setTimes(t, p, ts(1e9), ts(1.1e9)) // atime older than mtime: relatime would update it
	fs := s.mount()
	n, _ := mustWalk(t, fs, "f")
	if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0600}); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, s.upper+"/f"); st.Atim != ts(1e9) {
		t.Fatalf("upper atime %v, want the lower's %v", st.Atim, ts(1e9))
	}
	if st := lstat(t, p); st.Atim != ts(1e9) {
		// The copy must open the lower file with O_NOATIME, as the
		// kernel's ovl_path_open does: lower layers are not written.
		t.Fatalf("copy-up changed the lower file's atime from %v to %v", ts(1e9), st.Atim)
	}
}

// TestCopyUpOpaqueLowerDir: copying up a directory that is opaque in its
// lower layer keeps the layers below it hidden.
func TestCopyUpOpaqueLowerDir(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "d/hidden=", "o/hidden=")
	build(t, s.lower(0), "d/*", "d/a=", "o/.wh..wh..opq=", "o/a=")
	fs := s.mount()
	for _, name := range []string{"d", "o"} {
		d, _ := mustWalk(t, fs, name)
		mustCreate(t, fs, d, "new", objFile(0644))
		wantKind(t, s.upper+"/"+name, unix.S_IFDIR)
		wantNames(t, name+" after copy-up", listDir(t, fs, d), "a", "new")
		_, _, err := fs.Lookup(d, "hidden")
		wantErrno(t, name+"/hidden", err, unix.ENOENT)
		// And in a fresh engine.
		fs2 := mountCfg(t, s.configWithWork(t))
		d2, _ := mustWalk(t, fs2, name)
		wantNames(t, name+" in a new engine", listDir(t, fs2, d2), "a", "new")
	}
}

// TestCopyUpAtomic: the upper layer never shows a partial copy: at the
// last step before a copy-up links its object in, the upper layer does
// not have it, and the object is complete in the work directory.
func TestCopyUpAtomic(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "a/b/f="+strings.Repeat("z", 100000), "a/b/l->x")
	fs := s.mount()
	var order []string
	fs.Hooks.CopyUpBeforeLink = func(rel string) {
		order = append(order, rel)
		if exists(s.upper + "/" + rel) {
			t.Errorf("%s is in the upper layer before its copy-up links it in", rel)
		}
		if rel == "a/b/f" {
			if sizes := workFiles(t, s.work); len(sizes) == 1 && sizes[0] != 100000 {
				t.Errorf("the copy holds %d bytes before it is linked in", sizes[0])
			}
		}
	}
	f, _ := mustWalk(t, fs, "a/b/f")
	writeFile(t, fs, f, "Z", 0)
	l, _ := mustWalk(t, fs, "a/b/l")
	if _, err := fs.Setattr(l, &overlay.SetAttr{Valid: overlay.SetMtime, Mtime: ts(1e9)}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, " ") != "a a/b a/b/f a/b/l" {
		t.Fatalf("copy-up order %q, want parents first", order)
	}
	if got := fileContent(t, s.upper+"/a/b/f"); len(got) != 100000 || got[0] != 'Z' || got[1] != 'z' {
		t.Fatalf("upper a/b/f: %d bytes", len(got))
	}
	if target, _ := os.Readlink(s.upper + "/a/b/l"); target != "x" {
		t.Fatalf("upper a/b/l -> %q", target)
	}
	wantWorkEmpty(t, s)
}

// TestUserXattrSymlinkCopyUpTakesUpperIno: with UserXattr a symlink's
// copy cannot record its inode number (no user.* xattrs on symlinks), so
// from the copy-up on it has the upper one, as in the kernel; its parent's
// kept listing follows, and whoever caches the parent's listing is told.
func TestUserXattrSymlinkCopyUpTakesUpperIno(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/l->target", "d/f=x")
	cfg := s.config()
	cfg.UserXattr = true
	fs := mountCfg(t, cfg)
	var told []*overlay.Node
	fs.ListingChanged = func(dir *overlay.Node) { told = append(told, dir) }
	d, _ := mustWalk(t, fs, "d")
	l, before := mustWalk(t, fs, "d/l")
	checkDirIno(t, fs, d, "d before the copy-up")
	if _, err := fs.Setattr(l, &overlay.SetAttr{Valid: overlay.SetUID | overlay.SetGID, UID: 7, GID: 7}); err != nil {
		t.Fatal(err)
	}
	after, err := fs.Getattr(l)
	if err != nil {
		t.Fatal(err)
	}
	if after.Ino == before.Ino {
		t.Fatalf("the copied-up symlink kept its lower inode number %d without a record of it", before.Ino)
	}
	checkDirIno(t, fs, d, "d after the copy-up")
	if len(told) != 1 || told[0] != d {
		t.Fatalf("ListingChanged told of %v, want d once", told)
	}
	// A regular file records its number: it keeps it.
	f, fbefore := mustWalk(t, fs, "d/f")
	if _, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0600}); err != nil {
		t.Fatal(err)
	}
	if fafter, err := fs.Getattr(f); err != nil || fafter.Ino != fbefore.Ino {
		t.Fatalf("regular file after copy-up: ino %d, %v; want %d", fafter.Ino, err, fbefore.Ino)
	}
}
