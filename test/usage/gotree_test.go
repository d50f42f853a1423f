// Package usage tries Strata as a new user would: the Go distribution as a
// lower layer, a real build inside the mount, the program run, files
// edited, deleted, renamed and hard-linked; then the same directories
// mounted with kernel overlayfs must show the same tree.
package usage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"github.com/stratafs/strata/internal/treecmp"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { os.Exit(mounttest.RunTests(m)) }

const goroot = "/usr/local/go"

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGoTreeBuildEditAndKernelAgrees(t *testing.T) {
	if _, err := os.Stat(goroot + "/bin/go"); err != nil {
		t.Skipf("no Go distribution at %s", goroot)
	}
	s := mounttest.NewStack(t, 1)
	// Two lowers: a small layer on top that shadows and whites out, and
	// the Go distribution itself (read-only: nothing is written to it).
	top := s.Lowers[0]
	s.Lowers = append(s.Lowers, goroot)
	mounttest.WriteFile(t, filepath.Join(top, "VERSION.strata"), "layered\n")
	mounttest.WriteFile(t, filepath.Join(top, "src/errors/README.layer"), "from the top layer\n")
	if err := unix.Mknod(filepath.Join(top, "CONTRIBUTING.md"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err) // a kernel whiteout hiding a file of the distribution
	}
	s.MountDaemon(t)
	m := s.Mnt
	if _, err := os.Stat(filepath.Join(m, "CONTRIBUTING.md")); !os.IsNotExist(err) {
		t.Fatalf("whited-out file visible: %v", err)
	}

	// Build and run a program with the toolchain and sources in the mount.
	env := []string{"GOROOT=" + m, "GOCACHE=" + m + "/.cache", "GOTMPDIR=", "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0"}
	run(t, filepath.Join(m, "src"), env, filepath.Join(m, "bin/go"), "build", "-o", filepath.Join(m, "out/gofmt"), "./cmd/gofmt")
	mounttest.WriteFile(t, filepath.Join(m, "work/ugly.go"), "package p\nfunc  F( ) {}\n")
	if out := run(t, m, nil, filepath.Join(m, "out/gofmt"), "-l", filepath.Join(m, "work")); !strings.Contains(out, "ugly.go") {
		t.Fatalf("gofmt built in the mount did not flag the file: %q", out)
	}

	// Edit, delete, rename, hard-link, chmod, replace a deleted directory.
	f, err := os.OpenFile(filepath.Join(m, "src/errors/errors.go"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// edited through Strata\n")
	f.Close()
	run(t, m, nil, "sed", "-i", "s/package errors/package errors \\/\\/ sed/", filepath.Join(m, "src/errors/wrap.go"))
	for _, p := range []string{"src/errors/wrap_test.go", "VERSION.strata"} {
		if err := os.Remove(filepath.Join(m, p)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, m, nil, "rm", "-rf", filepath.Join(m, "src/container"))
	if err := os.Mkdir(filepath.Join(m, "src/container"), 0750); err != nil {
		t.Fatal(err)
	}
	mounttest.WriteFile(t, filepath.Join(m, "src/container/new.txt"), "a fresh directory over a deleted one\n")
	if err := os.Rename(filepath.Join(m, "VERSION"), filepath.Join(m, "VERSION.old")); err != nil {
		t.Fatal(err)
	}
	run(t, m, nil, "mv", filepath.Join(m, "src/unicode/utf16"), filepath.Join(m, "src/utf16-moved")) // EXDEV: mv copies
	if err := os.Link(filepath.Join(m, "src/errors/errors.go"), filepath.Join(m, "errors-link.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(m, "src/sort/sort.go"), 0600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src/errors", filepath.Join(m, "errors-dir")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(m, "errors-link.go"), &st); err != nil || st.Nlink != 2 {
		t.Fatalf("hard link: nlink %d, %v", st.Nlink, err)
	}

	strataView, err := treecmp.Walk(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(m, 0); err != nil {
		t.Fatal(err)
	}
	s.MountKernel(t)
	kernelView, err := treecmp.Walk(m)
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(strataView, kernelView, 20); len(d) > 0 {
		t.Fatalf("Strata (first) and kernel overlayfs (second) differ over the same layers:\n%s", strings.Join(d, "\n"))
	}
	if len(strataView) < 10000 {
		t.Fatalf("only %d entries walked: the tree is not the Go distribution", len(strataView))
	}
}
