package fusefs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// Mappings of files the test's own mount serves are made in a child
// process: a page fault the in-process daemon must answer can stall the
// Go runtime (a thread in the fault cannot be stopped for the garbage
// collector, which the daemon's goroutines then wait for).
const mapperEnv = "STRATA_TEST_MAPPER"

// runMapper is the child: it maps the file named by STRATA_TEST_MAPPER
// (STRATA_TEST_MAPLEN bytes, shared, read-only), says "ready", then
// answers each offset read from stdin with the byte mapped there.
func runMapper() int {
	n, _ := strconv.Atoi(os.Getenv("STRATA_TEST_MAPLEN"))
	fd, err := unix.Open(os.Getenv(mapperEnv), unix.O_RDONLY, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	m, err := unix.Mmap(fd, 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		off, err := strconv.Atoi(sc.Text())
		if err != nil || off < 0 || off >= n {
			fmt.Println("?")
			continue
		}
		fmt.Printf("%c\n", m[off])
	}
	return 0
}

// mapper is a child process holding an open, mapped file.
type mapper struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startMapper(t *testing.T, path string, n int) *mapper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mapperEnv+"="+path, "STRATA_TEST_MAPLEN="+strconv.Itoa(n))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &mapper{t: t, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	t.Cleanup(m.close)
	if line, err := m.out.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("mapper: %q, %v", line, err)
	}
	return m
}

// at returns the byte mapped at off.
func (m *mapper) at(off int) byte {
	m.t.Helper()
	fmt.Fprintln(m.in, off)
	line, err := m.out.ReadString('\n')
	if err != nil || len(line) != 2 {
		m.t.Fatalf("mapper at %d: %q, %v", off, line, err)
	}
	return line[0]
}

// close ends the child, unmapping and closing the file.
func (m *mapper) close() {
	if m.cmd.ProcessState != nil {
		return
	}
	m.in.Close()
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
}

// mountPassthrough mounts the stack with -o passthrough.
func mountPassthrough(t *testing.T, s *mounttest.Stack) *strata.Server {
	t.Helper()
	o := s.Options()
	o.Passthrough = true
	o.AllowOther = true
	return mounttest.MountOptions(t, o)
}

// waitReleased waits for the kernel's RELEASE of every file opened
// through srv (they come after close returns).
func waitReleased(t *testing.T, srv *strata.Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); srv.FUSE.OpenStats().Nodes != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("files still open in the daemon's table after close: %+v", srv.FUSE.OpenStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openFd(t *testing.T, p string, flags int) int {
	t.Helper()
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	return fd
}

func pwrite(t *testing.T, fd int, b []byte, off int64) {
	t.Helper()
	if n, err := unix.Pwrite(fd, b, off); err != nil || n != len(b) {
		t.Fatalf("pwrite at %d: %d, %v", off, n, err)
	}
}

// TestPassthroughUpperFile writes a new file through passthrough opens:
// the kernel gets the upper file, two opens share it, a mapping of one
// sees the other's writes, the mount's size follows, and every backing
// file is given back after the last close.
func TestPassthroughUpperFile(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	srv := mountPassthrough(t, s)
	p := filepath.Join(s.Mnt, "new")

	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	w := openFd(t, p, unix.O_CREAT|unix.O_RDWR|unix.O_EXCL)
	pwrite(t, w, data, 0)
	st := srv.FUSE.OpenStats()
	if st.Passthrough != 1 || st.Cached != 0 {
		unix.Close(w)
		t.Fatalf("open of a new file: %+v, want one passthrough open (does the kernel offer FUSE passthrough?)", st)
	}

	m := startMapper(t, p, len(data)) // a second open, mapped
	if st := srv.FUSE.OpenStats(); st.Passthrough != 2 || st.Cached != 0 {
		m.close()
		unix.Close(w)
		t.Fatalf("after a second open: %+v, want two passthrough opens", st)
	}
	pwrite(t, w, []byte("WRITTEN"), 4096)
	if got := m.at(4096); got != 'W' {
		t.Errorf("mapping of a second open shows %q after a write through the first", got)
	}
	m.close()
	if err := unix.Fsync(w); err != nil {
		t.Errorf("fsync: %v", err)
	}
	pwrite(t, w, []byte("tail"), int64(len(data)))
	unix.Close(w)

	copy(data[4096:], "WRITTEN")
	data = append(data, "tail"...)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(data)) {
		t.Errorf("size through the mount %d, want %d", fi.Size(), len(data))
	}
	for _, q := range []string{p, filepath.Join(s.Upper, "new")} {
		got, err := os.ReadFile(q)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, not what was written (%d bytes)", q, len(got), len(data))
		}
	}
	waitReleased(t, srv)
}

// TestPassthroughWaitsForCachedOpens: a lower file mapped and opened
// before its copy-up keeps its cached opens; opens after the copy-up are
// cached too while any of those remain (the kernel cannot mix the two),
// and every write, through any of them, shows in the old mapping. Once
// they are all closed, the next open is a passthrough one and sees the
// data all of them wrote.
func TestPassthroughWaitsForCachedOpens(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	page := 4096
	mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "f"), string(bytes.Repeat([]byte("a"), 2*page)))
	srv := mountPassthrough(t, s)
	p := filepath.Join(s.Mnt, "f")

	m := startMapper(t, p, 2*page) // opened and mapped while in the lower layer
	if got := m.at(0); got != 'a' {
		t.Fatalf("mapping shows %q", got)
	}
	w := openFd(t, p, unix.O_RDWR)
	pwrite(t, w, []byte("B"), 0) // copies the file up
	if got := m.at(0); got != 'B' {
		t.Errorf("mapping of the lower file shows %q after the copy-up's write, want B", got)
	}
	w2 := openFd(t, p, unix.O_RDWR) // in the upper layer now, cached opens left
	pwrite(t, w2, []byte("C"), int64(page))
	if got := m.at(page); got != 'C' {
		t.Errorf("mapping shows %q after a write through an open made after the copy-up, want C", got)
	}
	if st := srv.FUSE.OpenStats(); st.Passthrough != 0 || st.Cached != 3 {
		t.Errorf("opens %+v, want three cached and no passthrough", st)
	}
	m.close()
	unix.Close(w)
	unix.Close(w2)
	waitReleased(t, srv)

	w3 := openFd(t, p, unix.O_RDWR)
	defer unix.Close(w3)
	if st := srv.FUSE.OpenStats(); st.Passthrough != 1 {
		t.Fatalf("open after the cached ones closed: %+v, want a passthrough open", st)
	}
	buf := make([]byte, 2*page)
	if n, err := unix.Pread(w3, buf, 0); err != nil || n != 2*page || buf[0] != 'B' || buf[page] != 'C' || buf[1] != 'a' {
		t.Fatalf("passthrough read: %d bytes, %v, first bytes of the pages %q %q", n, err, buf[0], buf[page])
	}
	pwrite(t, w3, []byte("D"), 1)
	srv.FS.Settle() // the copy is linked into the upper layer in the background
	got, err := os.ReadFile(filepath.Join(s.Upper, "f"))
	if err != nil || len(got) != 2*page || string(got[:2]) != "BD" || got[page] != 'C' {
		t.Fatalf("upper file after a passthrough write: %d bytes, %v", len(got), err)
	}
}

// TestPassthroughDropsSetID: a write by a user without CAP_FSETID drops
// the set-user-ID bit, as on any file system, though the daemon does not
// see passthrough writes: such opens are served by the daemon instead.
func TestPassthroughDropsSetID(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	for _, d := range []string{filepath.Dir(s.Dir), s.Dir} { // for nobody
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := mountPassthrough(t, s)
	p := filepath.Join(s.Mnt, "suid")
	mounttest.WriteFile(t, p, "x")
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, 0o4777); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("chmod 4777: %v, %v", fi.Mode(), err)
	}
	cmd := exec.Command("sh", "-c", "echo more >> "+p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("append as nobody: %v\n%s", err, out)
	}
	for _, q := range []string{p, filepath.Join(s.Upper, "suid")} {
		fi, err := os.Stat(q)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSetuid != 0 || fi.Size() != int64(len("xmore\n")) {
			t.Errorf("%s after an unprivileged append: mode %v, size %d; want the set-user-ID bit dropped, 6 bytes", q, fi.Mode(), fi.Size())
		}
	}
	if st := srv.FUSE.OpenStats(); st.Cached == 0 {
		t.Errorf("opens %+v: the unprivileged writer's open should have been cached", st)
	}
}

// TestPassthroughFallsBack: an upper layer the kernel will not pass
// through to (here on a kernel overlay: one level of stacking is all a
// passthrough mount allows below it) leaves the mount serving every file
// itself, correctly.
func TestPassthroughFallsBack(t *testing.T) {
	s := mounttest.NewStack(t, 1)
	base := filepath.Join(s.Dir, "base")
	for _, d := range []string{"lower", "upper", "work", "mnt"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounttest.KernelMount(t, []string{filepath.Join(base, "lower")}, filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "mnt"))
	s.Upper, s.Work = filepath.Join(base, "mnt", "upper"), filepath.Join(base, "mnt", "work")
	for _, d := range []string{s.Upper, s.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := mountPassthrough(t, s)
	p := filepath.Join(s.Mnt, "f")
	for i := 0; i < 2; i++ {
		mounttest.WriteFile(t, p, "written through the daemon")
	}
	got, err := os.ReadFile(filepath.Join(s.Upper, "f"))
	if err != nil || string(got) != "written through the daemon" {
		t.Fatalf("upper file: %q, %v", got, err)
	}
	if st := srv.FUSE.OpenStats(); st.Passthrough != 0 || st.Cached < 2 {
		t.Errorf("opens %+v, want only cached ones", st)
	}
}

// TestPassthroughReadOnly: on a read-only mount nothing is ever copied
// up, so every file's open is a passthrough one on its lower file, and
// reads and mappings see the lower data.
func TestPassthroughReadOnly(t *testing.T) {
	s := mounttest.NewStack(t, 2)
	data := bytes.Repeat([]byte("lower layer data"), 1<<20/16)
	if err := os.WriteFile(filepath.Join(s.Lowers[1], "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	o.Upper, o.Work = "", ""
	o.ReadOnly = true
	o.Passthrough = true
	o.AllowOther = true
	srv := mounttest.MountOptions(t, o)
	p := filepath.Join(s.Mnt, "f")

	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the lower file's %d", len(got), len(data))
	}
	if st := srv.FUSE.OpenStats(); st.Passthrough != 1 || st.Cached != 0 {
		t.Fatalf("open of a file of a read-only mount: %+v, want one passthrough open", st)
	}
	m := startMapper(t, p, len(data))
	if got := m.at(len(data) - 1); got != data[len(data)-1] {
		t.Errorf("mapping shows %q at the end, want %q", got, data[len(data)-1])
	}
	m.close()
	if _, err := unix.Open(p, unix.O_WRONLY, 0); err != unix.EROFS {
		t.Errorf("open for writing: %v, want EROFS", err)
	}
	waitReleased(t, srv)
}
