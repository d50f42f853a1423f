package badinput

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// asNobody runs a command as uid/gid 65534 with no supplementary groups
// and returns its combined output and error.
func asNobody(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	if p, err := exec.LookPath("setpriv"); err == nil {
		cmd = exec.CommandContext(ctx, p, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
	} else {
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd = exec.CommandContext(ctx, "su", "nobody", "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%q as nobody still running after 20 s: a hang", args)
	}
	return string(out), err
}

// openPath walks rel (relative to the directory dirfd) one component at a
// time, so that paths longer than PATH_MAX work, and returns a descriptor
// of the last directory and the last name.
func openPath(dirfd int, rel string) (int, string, error) {
	parts := strings.Split(rel, "/")
	fd, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	for _, p := range parts[:len(parts)-1] {
		nfd, err := unix.Openat(fd, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, "", err
		}
		fd = nfd
	}
	return fd, parts[len(parts)-1], nil
}

// mkdirs makes the directories of rel below dir, one component at a time.
func mkdirs(t *testing.T, dir, rel string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, p, 0755); err != nil && err != unix.EEXIST {
			t.Fatalf("mkdir %s: %v", p, err)
		}
		nfd, err := unix.Openat(fd, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = nfd
	}
	unix.Close(fd)
}

// readAt reads the file rel below dir, walking long paths.
func readAt(dir, rel string) (string, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(root)
	dfd, name, err := openPath(root, rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<16)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// writeAt creates or appends to the file rel below dir.
func writeAt(dir, rel, data string, flags int) error {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	dfd, name, err := openPath(root, rel)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CLOEXEC|flags, 0644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(data)); err != nil {
		return err
	}
	// A copy-up reaches the upper layer's namespace in the background;
	// fsync is the documented way to have it there (and durable) now,
	// and the tests read the upper layer right after writing.
	return unix.Fsync(fd)
}

// answering checks that the mount still serves requests that reach the
// daemon, and that the daemon is alive.
func answering(t *testing.T, mnt string, pid int) {
	t.Helper()
	var st unix.Stat_t
	name := fmt.Sprintf("never-seen-%d", time.Now().UnixNano())
	if err := unix.Lstat(filepath.Join(mnt, name), &st); err != unix.ENOENT {
		t.Fatalf("the mount no longer answers: lookup of a new name: %v", err)
	}
	if _, err := os.ReadDir(mnt); err != nil {
		t.Fatalf("the mount no longer answers: readdir: %v", err)
	}
	if unix.Kill(pid, 0) != nil || zombie(pid) {
		t.Fatalf("the daemon %d is gone", pid)
	}
}

func errIs(err error, want unix.Errno) bool {
	var e unix.Errno
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	if le, ok := err.(*os.LinkError); ok {
		err = le.Err
	}
	if se, ok := err.(*os.SyscallError); ok {
		err = se.Err
	}
	e, ok := err.(unix.Errno)
	return ok && e == want
}

const hugeEntries = 100000

// TestSurprisingLayers mounts layers with surprises (whiteout-like names
// in the upper layer, dangling symlinks, unreadable files, names of 255
// bytes, a path of ~4000 bytes, a directory of 100k entries) and checks
// that each gives what the kernel gives, with the daemon serving on.
func TestSurprisingLayers(t *testing.T) {
	mounttest.Require(t)
	s := mounttest.NewStack(t, 2)
	// Others must be able to reach the mount point for the EACCES checks.
	for _, d := range []string{filepath.Dir(s.Dir), s.Dir} {
		if err := os.Chmod(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	l0, l1, up := s.Lowers[0], s.Lowers[1], s.Upper

	// ".wh." names in the upper layer are regular objects, not whiteouts.
	mounttest.WriteFile(t, filepath.Join(up, ".wh.foo"), "not a whiteout\n")
	mounttest.WriteFile(t, filepath.Join(up, ".wh..wh..opq"), "not an opaque marker\n")
	mounttest.WriteFile(t, filepath.Join(up, ".wh.dir", "f"), "in a .wh. directory\n")
	mounttest.WriteFile(t, filepath.Join(l0, "foo"), "foo from the lower layer\n")

	// Dangling and looping symlinks.
	for name, target := range map[string]string{"dangling": "/nonexistent/target", "dangling-rel": "missing-rel", "loop": "loop"} {
		if err := os.Symlink(target, filepath.Join(l0, name)); err != nil {
			t.Fatal(err)
		}
	}

	// Unreadable and readable files of root.
	mounttest.WriteFile(t, filepath.Join(l0, "secret"), "secret\n")
	mounttest.WriteFile(t, filepath.Join(l0, "public"), "public\n")
	mounttest.WriteFile(t, filepath.Join(l0, "private-dir", "inside"), "inside\n")
	for p, mode := range map[string]os.FileMode{"secret": 0, "public": 0644, "private-dir": 0700} {
		if err := os.Chmod(filepath.Join(l0, p), mode); err != nil {
			t.Fatal(err)
		}
	}

	// Names of 255 bytes.
	name255 := strings.Repeat("n", 255)
	mounttest.WriteFile(t, filepath.Join(l0, name255), "long name\n")
	mounttest.WriteFile(t, filepath.Join(l0, "d"+strings.Repeat("d", 254), name255), "long name in a long-named directory\n")

	// A path of ~4000 bytes: 39 directories of 100-byte names.
	var comps []string
	for i := 0; i < 39; i++ {
		comps = append(comps, fmt.Sprintf("%02d", i)+strings.Repeat("p", 98))
	}
	deepDir := strings.Join(comps, "/")
	deepFile := deepDir + "/" + strings.Repeat("f", 4000-len(deepDir)-1)
	mkdirs(t, l1, deepDir)
	if err := writeAt(l1, deepFile, "at the bottom\n", unix.O_CREAT|unix.O_EXCL); err != nil {
		t.Fatalf("deep file in the lower layer: %v", err)
	}

	// A directory of 100k entries, a few of them below an upper part.
	huge := filepath.Join(l1, "huge")
	if err := os.Mkdir(huge, 0755); err != nil {
		t.Fatal(err)
	}
	hfd, err := unix.Open(huge, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < hugeEntries; i++ {
		fd, err := unix.Openat(hfd, fmt.Sprintf("e%06d", i), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	unix.Close(hfd)

	stats := filepath.Join(s.Dir, "stats.json")
	s.MountDaemonEnv(t, []string{"STRATA_STATS_FILE=" + stats})
	pid := 0
	for p := range daemonsUnder(t, s.Dir) {
		pid = p
	}
	if pid == 0 {
		t.Fatal("no daemon found")
	}
	mnt := s.Mnt

	t.Run("whiteout_names_in_upper", func(t *testing.T) {
		for name, want := range map[string]string{
			".wh.foo": "not a whiteout\n", ".wh..wh..opq": "not an opaque marker\n",
			".wh.dir/f": "in a .wh. directory\n", "foo": "foo from the lower layer\n",
		} {
			if got, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(got) != want {
				t.Errorf("%s: %q, %v; want %q", name, got, err, want)
			}
		}
		// The same listing as the kernel's, over the same layers.
		kmnt := filepath.Join(s.Dir, "kernel")
		if err := os.Mkdir(kmnt, 0755); err != nil {
			t.Fatal(err)
		}
		mounttest.KernelMount(t, append([]string{up}, s.Lowers...), "", "", kmnt)
		got, want := listing(t, mnt), listing(t, kmnt)
		mounttest.ForceUnmount(kmnt)
		if got != want {
			t.Errorf("root listing:\nstrata: %s\nkernel: %s", got, want)
		}
		// Such names can be made and removed through the mount; removing
		// ".wh.foo" hides nothing.
		if err := os.WriteFile(filepath.Join(mnt, ".wh.new"), []byte("x"), 0644); err != nil {
			t.Errorf("create .wh.new: %v", err)
		}
		if err := os.Remove(filepath.Join(mnt, ".wh.foo")); err != nil {
			t.Errorf("remove .wh.foo: %v", err)
		}
		if _, err := os.Stat(filepath.Join(mnt, "foo")); err != nil {
			t.Errorf("foo after removing .wh.foo: %v", err)
		}
		if fi, err := os.Lstat(filepath.Join(up, ".wh.new")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("upper .wh.new: %v, %v", fi, err)
		}
		answering(t, mnt, pid)
	})

	t.Run("dangling_symlinks", func(t *testing.T) {
		for name, target := range map[string]string{"dangling": "/nonexistent/target", "dangling-rel": "missing-rel", "loop": "loop"} {
			p := filepath.Join(mnt, name)
			if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("lstat %s: %v, %v", name, fi, err)
			}
			if got, err := os.Readlink(p); err != nil || got != target {
				t.Errorf("readlink %s: %q, %v; want %q", name, got, err, target)
			}
			want := unix.ENOENT
			if name == "loop" {
				want = unix.ELOOP
			}
			if _, err := os.Stat(p); !errIs(err, want) {
				t.Errorf("stat %s: %v, want %v", name, err, want)
			}
			if _, err := os.ReadFile(p); !errIs(err, want) {
				t.Errorf("open %s: %v, want %v", name, err, want)
			}
		}
		// Creating through a relative dangling link makes its target.
		if err := os.WriteFile(filepath.Join(mnt, "dangling-rel"), []byte("made through the link\n"), 0644); err != nil {
			t.Errorf("write through dangling-rel: %v", err)
		} else if got, err := os.ReadFile(filepath.Join(up, "missing-rel")); err != nil || string(got) != "made through the link\n" {
			t.Errorf("upper missing-rel: %q, %v", got, err)
		}
		// Copy-up of a dangling link keeps it dangling.
		if err := os.Lchown(filepath.Join(mnt, "dangling"), 5, 6); err != nil {
			t.Errorf("lchown dangling: %v", err)
		} else if got, err := os.Readlink(filepath.Join(up, "dangling")); err != nil || got != "/nonexistent/target" {
			t.Errorf("upper dangling after copy-up: %q, %v", got, err)
		}
		answering(t, mnt, pid)
	})

	t.Run("unreadable_by_others", func(t *testing.T) {
		out, err := asNobody(t, "cat", filepath.Join(mnt, "public"))
		if err != nil || out != "public\n" {
			t.Fatalf("nobody reads public: %q, %v (the mount must be reachable by others)", out, err)
		}
		for _, args := range [][]string{
			{"cat", filepath.Join(mnt, "secret")},
			{"ls", filepath.Join(mnt, "private-dir")},
			{"cat", filepath.Join(mnt, "private-dir", "inside")},
			{"touch", filepath.Join(mnt, "by-nobody")},
			{"sh", "-c", "echo x >> " + filepath.Join(mnt, "secret")},
		} {
			out, err := asNobody(t, args...)
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("%q as nobody: %q, %v; want Permission denied", args, out, err)
			}
		}
		// A refused open for writing copies nothing up.
		if _, err := os.Lstat(filepath.Join(up, "secret")); err == nil {
			t.Errorf("a refused write copied secret up")
		}
		if got, err := os.ReadFile(filepath.Join(mnt, "secret")); err != nil || string(got) != "secret\n" {
			t.Errorf("root reads secret: %q, %v", got, err)
		}
		answering(t, mnt, pid)
	})

	t.Run("long_names", func(t *testing.T) {
		if got, err := os.ReadFile(filepath.Join(mnt, name255)); err != nil || string(got) != "long name\n" {
			t.Errorf("255-byte name: %q, %v", got, err)
		}
		long2 := filepath.Join("d"+strings.Repeat("d", 254), name255)
		if got, err := os.ReadFile(filepath.Join(mnt, long2)); err != nil || string(got) != "long name in a long-named directory\n" {
			t.Errorf("255/255-byte path: %q, %v", got, err)
		}
		names := map[string]bool{}
		ents, err := os.ReadDir(mnt)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			names[e.Name()] = true
		}
		if !names[name255] {
			t.Errorf("the 255-byte name is not listed")
		}
		// Making objects with 255-byte names works...
		n := func(c string) string { return strings.Repeat(c, 255) }
		ok := []struct {
			what string
			fn   func() error
		}{
			{"create", func() error { return os.WriteFile(filepath.Join(mnt, n("a")), []byte("a"), 0644) }},
			{"mkdir", func() error { return os.Mkdir(filepath.Join(mnt, n("b")), 0755) }},
			{"symlink", func() error { return os.Symlink(name255, filepath.Join(mnt, n("c"))) }},
			{"link", func() error { return os.Link(filepath.Join(mnt, n("a")), filepath.Join(mnt, n("e"))) }},
			{"rename", func() error { return os.Rename(filepath.Join(mnt, name255), filepath.Join(mnt, n("f"))) }},
			{"mknod", func() error { return unix.Mkfifo(filepath.Join(mnt, n("g")), 0644) }},
		}
		for _, c := range ok {
			if err := c.fn(); err != nil {
				t.Errorf("%s with a 255-byte name: %v", c.what, err)
			}
		}
		// ... and with 256-byte names fails with ENAMETOOLONG.
		n256 := strings.Repeat("z", 256)
		bad := []struct {
			what string
			fn   func() error
		}{
			{"stat", func() error { _, err := os.Lstat(filepath.Join(mnt, n256)); return err }},
			{"create", func() error { return os.WriteFile(filepath.Join(mnt, n256), []byte("a"), 0644) }},
			{"mkdir", func() error { return os.Mkdir(filepath.Join(mnt, n256), 0755) }},
			{"symlink", func() error { return os.Symlink("x", filepath.Join(mnt, n256)) }},
			{"link", func() error { return os.Link(filepath.Join(mnt, n("a")), filepath.Join(mnt, n256)) }},
			{"rename", func() error { return os.Rename(filepath.Join(mnt, n("a")), filepath.Join(mnt, n256)) }},
			{"mknod", func() error { return unix.Mkfifo(filepath.Join(mnt, n256), 0644) }},
		}
		for _, c := range bad {
			if err := c.fn(); !errIs(err, unix.ENAMETOOLONG) {
				t.Errorf("%s with a 256-byte name: %v, want ENAMETOOLONG", c.what, err)
			}
		}
		if _, err := os.Stat(filepath.Join(mnt, n("a"))); err != nil {
			t.Errorf("the file survives the refused rename: %v", err)
		}
		answering(t, mnt, pid)
	})

	t.Run("deep_path", func(t *testing.T) {
		if got, err := readAt(mnt, deepFile); err != nil || got != "at the bottom\n" {
			t.Fatalf("the file %d bytes deep: %q, %v", len(deepFile), got, err)
		}
		// Writing copies up the whole chain.
		if err := writeAt(mnt, deepFile, "appended\n", unix.O_APPEND); err != nil {
			t.Fatalf("append to the deep file: %v", err)
		}
		if got, err := readAt(up, deepFile); err != nil || got != "at the bottom\nappended\n" {
			t.Errorf("the deep file in the upper layer: %q, %v", got, err)
		}
		if err := writeAt(mnt, deepDir+"/new", "new\n", unix.O_CREAT|unix.O_EXCL); err != nil {
			t.Errorf("create in the deep directory: %v", err)
		}
		// Deeper still, past PATH_MAX below the layer root: each level is
		// made or refused with ENAMETOOLONG, never anything unclear.
		rel := deepDir
		refused := "nothing"
		for i := 0; i < 4; i++ {
			root, err := unix.Open(mnt, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			dfd, _, err := openPath(root, rel+"/x")
			unix.Close(root)
			if err != nil {
				if !errIs(err, unix.ENAMETOOLONG) {
					t.Errorf("walking %d bytes deep: %v", len(rel), err)
				}
				refused = fmt.Sprintf("a lookup %d bytes deep (%v)", len(rel), err)
				break
			}
			name := fmt.Sprintf("more%d", i) + strings.Repeat("m", 95)
			err = unix.Mkdirat(dfd, name, 0755)
			unix.Close(dfd)
			if err != nil {
				if !errIs(err, unix.ENAMETOOLONG) {
					t.Errorf("mkdir %d bytes deep: %v, want success or ENAMETOOLONG", len(rel)+1+len(name), err)
				}
				refused = fmt.Sprintf("a mkdir %d bytes deep (%v)", len(rel)+1+len(name), err)
				break
			}
			rel += "/" + name
		}
		t.Logf("directories made through the mount down to %d bytes below the root; refused: %s", len(rel), refused)
		answering(t, mnt, pid)
	})

	t.Run("huge_directory", func(t *testing.T) {
		start := time.Now()
		names := readNames(t, filepath.Join(mnt, "huge"))
		took := time.Since(start)
		if len(names) != hugeEntries {
			t.Errorf("huge lists %d entries, want %d", len(names), hugeEntries)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Errorf("huge lists %s twice", n)
			}
			seen[n] = true
		}
		for i := 0; i < hugeEntries; i += 997 {
			if n := fmt.Sprintf("e%06d", i); !seen[n] {
				t.Errorf("huge does not list %s", n)
			}
		}
		t.Logf("listing %d entries took %v", len(names), took)
		// Whiteouts and upper entries mixed in: still complete.
		for i := 0; i < 50; i++ {
			if err := os.Remove(filepath.Join(mnt, "huge", fmt.Sprintf("e%06d", i*1999))); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mnt, "huge", fmt.Sprintf("u%06d", i)), nil, 0644); err != nil {
				t.Fatal(err)
			}
		}
		names = readNames(t, filepath.Join(mnt, "huge"))
		seen = map[string]bool{}
		for _, n := range names {
			seen[n] = true
		}
		if len(names) != hugeEntries || len(seen) != hugeEntries || seen["e000000"] || !seen["u000049"] || !seen["e000001"] {
			t.Errorf("huge after 50 removals and 50 creations lists %d entries (%d distinct), want %d", len(names), len(seen), hugeEntries)
		}
		answering(t, mnt, pid)
	})

	// The daemon ends normally at unmount: it leaves its counters.
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if !waitDead(pid, 20*time.Second) {
		t.Fatalf("daemon %d still running 20 s after its unmount", pid)
	}
	if _, err := os.Stat(stats); err != nil {
		t.Errorf("the daemon left no counters at unmount (did it crash?): %v", err)
	}
}

// readNames lists a directory with getdents, unsorted, as it comes.
func readNames(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	return names
}

// listing describes a directory's entries: names and types, sorted.
func listing(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name()+":"+e.Type().String())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
