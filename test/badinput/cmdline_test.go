// Package badinput runs the real strata binary on bad command lines and on
// layers with surprises. A bad command line must end with a non-zero exit
// and one line on stderr naming the problem, leave nothing mounted and no
// daemon running, and leave the layer directories exactly as they were. A
// mount of surprising layers must give clear errors where the kernel
// gives them, and the daemon must keep serving.
package badinput

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// env is one case's directories, all below Root: two lower layers, an
// upper, a work directory, a mount point, and a regular file.
type env struct {
	t               *testing.T
	Root            string
	L1, L2, U, W, M string
	File            string
	snap            []string // what must stay untouched, beyond the above
}

func newEnv(t *testing.T, root string) *env {
	t.Helper()
	e := &env{t: t, Root: root}
	e.L1, e.L2 = filepath.Join(root, "l1"), filepath.Join(root, "l2")
	e.U, e.W, e.M = filepath.Join(root, "u"), filepath.Join(root, "w"), filepath.Join(root, "m")
	e.File = filepath.Join(root, "file")
	for _, d := range []string{e.L1, e.L2, e.U, e.W, e.M} {
		e.mkdir(d)
	}
	e.write(filepath.Join(e.L1, "a"), "lower one\n")
	e.write(filepath.Join(e.L2, "b"), "lower two\n")
	e.write(filepath.Join(e.U, "c"), "upper\n")
	e.write(e.File, "not a directory\n")
	e.mkdir(filepath.Join(e.L1, "sub"))
	if err := unix.Lsetxattr(e.L1, "user.mark", []byte("l1"), 0); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) mkdir(p string) string {
	if err := os.MkdirAll(p, 0755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) write(p, s string) {
	if err := os.WriteFile(p, []byte(s), 0644); err != nil {
		e.t.Fatal(err)
	}
}

// opts is the -o string with the given layers.
func opts(lower, upper, work string) string {
	o := "lowerdir=" + lower
	if upper != "" {
		o += ",upperdir=" + upper
	}
	if work != "" {
		o += ",workdir=" + work
	}
	return o
}

// badCase is a command line that must fail.
type badCase struct {
	name string
	// args builds the command line (it may make directories and mounts);
	// the command runs in e.Root.
	args func(e *env) []string
	// want are substrings the message must contain (case-sensitive); $X
	// stands for a directory of the env: $L1 $L2 $U $W $M $FILE $ROOT.
	want []string
	// bug, when the case fails, marks it as a known Strata bug: the test
	// is skipped with this reason instead of failing.
	bug string
}

func (e *env) expand(s string) string {
	r := strings.NewReplacer("$ROOT", e.Root, "$L1", e.L1, "$L2", e.L2, "$U", e.U, "$W", e.W, "$M", e.M, "$FILE", e.File)
	return r.Replace(s)
}

func std(lower, upper, work, mnt string) func(e *env) []string {
	return func(e *env) []string {
		return []string{"-o", e.expand(opts(lower, upper, work)), e.expand(mnt)}
	}
}

var badCases = []badCase{
	// Missing and nonexistent directories.
	{name: "lowerdir missing", args: std("$ROOT/nope", "$U", "$W", "$M"), want: []string{"lowerdir", "$ROOT/nope", "no such directory"}},
	{name: "upperdir missing", args: std("$L1", "$ROOT/nope", "$W", "$M"), want: []string{"upperdir", "$ROOT/nope", "no such directory"}},
	{name: "workdir missing", args: std("$L1", "$U", "$ROOT/nope", "$M"), want: []string{"workdir", "$ROOT/nope", "no such directory"}},
	{name: "mountpoint missing", args: std("$L1", "$U", "$W", "$ROOT/nope"), want: []string{"mountpoint", "$ROOT/nope", "no such directory"}},
	{name: "second lowerdir missing", args: std("$L1:$ROOT/nope", "$U", "$W", "$M"), want: []string{"lowerdir", "$ROOT/nope", "no such directory"}},
	{name: "no lowerdir option", args: func(e *env) []string { return []string{"-o", "upperdir=" + e.U + ",workdir=" + e.W, e.M} }, want: []string{"lowerdir"}},
	{name: "no mountpoint", args: func(e *env) []string { return []string{"-o", opts(e.L1, e.U, e.W)} }, want: []string{"mountpoint"}},
	{name: "upperdir without workdir", args: std("$L1", "$U", "", "$M"), want: []string{"workdir"}},
	{name: "workdir without upperdir", args: std("$L1", "", "$W", "$M"), want: []string{"upperdir"}},
	{name: "no options at all", args: func(e *env) []string { return []string{e.M} }, want: []string{"lowerdir"}},

	// A file where a directory is needed.
	{name: "lowerdir is a file", args: std("$FILE", "$U", "$W", "$M"), want: []string{"lowerdir", "$FILE", "not a directory"}},
	{name: "upperdir is a file", args: std("$L1", "$FILE", "$W", "$M"), want: []string{"upperdir", "$FILE", "not a directory"}},
	{name: "workdir is a file", args: std("$L1", "$U", "$FILE", "$M"), want: []string{"workdir", "$FILE", "not a directory"}},
	{name: "mountpoint is a file", args: std("$L1", "$U", "$W", "$FILE"), want: []string{"mountpoint", "$FILE", "not a directory"}},
	{name: "lowerdir below a file", args: std("$FILE/x", "$U", "$W", "$M"), want: []string{"lowerdir", "$FILE/x"}},
	{name: "lowerdir is a dangling symlink", args: func(e *env) []string {
		if err := os.Symlink(filepath.Join(e.Root, "nowhere"), filepath.Join(e.Root, "dangling")); err != nil {
			e.t.Fatal(err)
		}
		return []string{"-o", opts(filepath.Join(e.Root, "dangling"), e.U, e.W), e.M}
	}, want: []string{"lowerdir", "$ROOT/dangling"}},

	// Layers inside one another.
	{name: "upperdir inside lowerdir", args: std("$L1", "$L1/sub", "$W", "$M"), want: []string{"upperdir", "$L1/sub", "inside", "lowerdir"}},
	{name: "lowerdir inside upperdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.U, "low"))
		return std("$U/low", "$U", "$W", "$M")(e)
	}, want: []string{"lowerdir", "$U/low", "inside", "upperdir"}},
	{name: "workdir inside upperdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.U, "work"))
		return std("$L1", "$U", "$U/work", "$M")(e)
	}, want: []string{"workdir", "$U/work", "inside", "upperdir"}},
	{name: "upperdir inside workdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.W, "up"))
		return std("$L1", "$W/up", "$W", "$M")(e)
	}, want: []string{"upperdir", "$W/up", "inside", "workdir"}},
	{name: "workdir inside lowerdir", args: std("$L1", "$U", "$L1/sub", "$M"), want: []string{"workdir", "$L1/sub", "inside", "lowerdir"}},
	{name: "lowerdir inside workdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.W, "low"))
		return std("$W/low", "$U", "$W", "$M")(e)
	}, want: []string{"lowerdir", "$W/low", "inside", "workdir"}},
	{name: "upperdir is lowerdir", args: std("$L1", "$L1", "$W", "$M"), want: []string{"upperdir", "lowerdir", "same directory"}},
	{name: "workdir is upperdir", args: std("$L1", "$U", "$U", "$M"), want: []string{"workdir", "upperdir", "same directory"}},
	{name: "upperdir is lowerdir through a symlink", args: func(e *env) []string {
		if err := os.Symlink(e.L1, filepath.Join(e.Root, "l1link")); err != nil {
			e.t.Fatal(err)
		}
		return std("$L1", "$ROOT/l1link", "$W", "$M")(e)
	}, want: []string{"upperdir", "lowerdir", "same directory"}},

	// workdir on another file system than upperdir.
	{name: "workdir on another filesystem", args: func(e *env) []string {
		mountTmpfs(e.t, filepath.Join(e.Root, "tmpfs"), 0)
		e.mkdir(filepath.Join(e.Root, "tmpfs", "w"))
		e.snap = append(e.snap, filepath.Join(e.Root, "tmpfs"))
		return std("$L1", "$U", "$ROOT/tmpfs/w", "$M")(e)
	}, want: []string{"workdir", "$ROOT/tmpfs/w", "upperdir", "different filesystems"}},
	{name: "upperdir on another filesystem than workdir", args: func(e *env) []string {
		mountTmpfs(e.t, filepath.Join(e.Root, "tmpfs"), 0)
		e.mkdir(filepath.Join(e.Root, "tmpfs", "u"))
		e.snap = append(e.snap, filepath.Join(e.Root, "tmpfs"))
		return std("$L1", "$ROOT/tmpfs/u", "$W", "$M")(e)
	}, want: []string{"workdir", "upperdir", "$ROOT/tmpfs/u", "different filesystems"}},
	{name: "upperdir on a read-only filesystem", args: func(e *env) []string {
		ro := filepath.Join(e.Root, "ro")
		mountTmpfs(e.t, ro, 0)
		e.mkdir(filepath.Join(ro, "u"))
		e.mkdir(filepath.Join(ro, "w"))
		if err := unix.Mount("", ro, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			e.t.Fatal(err)
		}
		e.snap = append(e.snap, ro)
		return std("$L1", "$ROOT/ro/u", "$ROOT/ro/w", "$M")(e)
	}, want: []string{"$ROOT/ro/", "not writable"}},

	// The mount point inside a layer (mounting over a lowerdir itself is
	// allowed, as with fuse-overlayfs).
	{name: "mountpoint inside lowerdir", args: std("$L1", "$U", "$W", "$L1/sub"), want: []string{"mountpoint", "$L1/sub", "inside", "lowerdir"}},
	{name: "mountpoint inside upperdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.U, "mnt"))
		return std("$L1", "$U", "$W", "$U/mnt")(e)
	}, want: []string{"mountpoint", "$U/mnt", "inside", "upperdir"}},
	{name: "mountpoint inside workdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.W, "mnt"))
		return std("$L1", "$U", "$W", "$W/mnt")(e)
	}, want: []string{"mountpoint", "$W/mnt", "inside", "workdir"}},
	{name: "mountpoint is upperdir", args: std("$L1", "$U", "$W", "$U"), want: []string{"mountpoint", "upperdir"}},
	{name: "mountpoint is workdir", args: std("$L1", "$U", "$W", "$W"), want: []string{"mountpoint", "workdir"}},
	{name: "mountpoint inside the second lowerdir", args: func(e *env) []string {
		e.mkdir(filepath.Join(e.L2, "deep", "er"))
		return std("$L1:$L2", "$U", "$W", "$L2/deep/er")(e)
	}, want: []string{"mountpoint", "$L2/deep/er", "inside", "lowerdir"}},

	// Empty or duplicated lowerdir entries.
	{name: "empty lowerdir entry in the middle", args: std("$L1::$L2", "$U", "$W", "$M"), want: []string{"lowerdir", "empty"}},
	{name: "empty lowerdir entry at the end", args: std("$L1:", "$U", "$W", "$M"), want: []string{"lowerdir", "empty"}},
	{name: "empty lowerdir entry at the start", args: std(":$L1", "$U", "$W", "$M"), want: []string{"lowerdir", "empty"}},
	{name: "empty lowerdir", args: std("", "$U", "$W", "$M"), want: []string{"lowerdir"}},
	{name: "duplicated lowerdir", args: std("$L1:$L2:$L1", "$U", "$W", "$M"), want: []string{"lowerdir", "$L1", "twice"}},
	{name: "duplicated lowerdir, spelt differently", args: std("$L1:$ROOT/./l1/", "$U", "$W", "$M"), want: []string{"lowerdir", "$L1"}},
	{name: "duplicated lowerdir through a symlink", args: func(e *env) []string {
		if err := os.Symlink(e.L2, filepath.Join(e.Root, "l2link")); err != nil {
			e.t.Fatal(err)
		}
		return std("$L1:$L2:$ROOT/l2link", "$U", "$W", "$M")(e)
	}, want: []string{"lowerdir", "$ROOT/l2link", "same directory"}},

	// Unknown options and flags, bad values.
	{name: "unknown option", args: std("$L1,bogus", "$U", "$W", "$M"), want: []string{"unknown option", "bogus"}},
	{name: "unknown option with a value", args: std("$L1,frobnicate=7", "$U", "$W", "$M"), want: []string{"unknown option", "frobnicate"}},
	{name: "unknown flag", args: func(e *env) []string { return []string{"-x", "-o", opts(e.L1, e.U, e.W), e.M} }, want: []string{"unknown flag", "-x"}},
	{name: "extra argument", args: func(e *env) []string { return []string{"-o", opts(e.L1, e.U, e.W), e.M, e.M, "extra"} }, want: []string{"extra"}},
	{name: "-o without its argument", args: func(e *env) []string { return []string{e.M, "-o"} }, want: []string{"-o"}},
	{name: "flag option with a value", args: std("$L1,ro=1", "$U", "$W", "$M"), want: []string{"ro"}},
	{name: "bad fsync value", args: std("$L1,fsync=2", "$U", "$W", "$M"), want: []string{"fsync", "2"}},
	{name: "bad max_write", args: std("$L1,max_write=0", "$U", "$W", "$M"), want: []string{"max_write"}},
	{name: "malformed uidmapping", args: std("$L1,uidmapping=0:1", "$U", "$W", "$M"), want: []string{"uidmapping", "0:1"}},
	{name: "overlapping gidmapping", args: std("$L1,gidmapping=0:1000:10:5:2000:10", "$U", "$W", "$M"), want: []string{"gidmapping", "overlaps"}},
	{name: "bad squash_to_uid", args: std("$L1,squash_to_uid=-1", "$U", "$W", "$M"), want: []string{"squash_to_uid"}},

	// Malformed escapes and quotes.
	{name: "unknown escape", args: std(`$L1\q`, "$U", "$W", "$M"), want: []string{"lowerdir", "escape", `\q`}},
	{name: "trailing backslash", args: func(e *env) []string { return []string{"-o", opts(e.L1, e.U, e.W) + `,lowerdir=` + e.L1 + `\`, e.M} }, want: []string{"lowerdir", "backslash"}},
	{name: "NUL octal escape", args: std(`$L1\000`, "$U", "$W", "$M"), want: []string{"lowerdir", "escape", `\000`}},
	{name: "short octal escape", args: std(`$L1\7`, "$U", "$W", "$M"), want: []string{"lowerdir", "escape"}},
	{name: "unterminated quote", args: std(`"$L1`, "$U", "$W", "$M"), want: []string{"quote"}},
	{name: "escaped path that does not exist", args: std(`$ROOT/l\:1`, "$U", "$W", "$M"), want: []string{"lowerdir", "$ROOT/l:1", "no such directory"}},

	// Relative paths are taken from the current directory: wrong ones are
	// named as the user gave them or as resolved.
	{name: "relative lowerdir that does not exist", args: std("l1:nope", "u", "w", "m"), want: []string{"lowerdir", "nope", "no such directory"}},
	{name: "relative upperdir inside relative lowerdir", args: std("l1", "l1/sub", "w", "m"), want: []string{"upperdir", "l1/sub", "inside", "lowerdir"}},

	// A workdir that is somebody's directory: its work/ holds a tree no
	// overlay leaves behind, which the mount must not empty.
	{name: "workdir whose work holds a foreign tree", args: func(e *env) []string {
		e.write(filepath.Join(e.mkdir(filepath.Join(e.W, "work", "thesis", "chapters")), "one.tex"), "\\chapter{One}\n")
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "work/thesis/chapters"}},

	// The kernel marks layers mounted with volatile and refuses them from
	// then on (the upper layer may have lost writes); so must Strata.
	{name: "layers last mounted by the kernel with volatile", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		o := "lowerdir=" + e.L2 + ",upperdir=" + e.U + ",workdir=" + e.W + ",volatile"
		if err := unix.Mount("overlay", m1, "overlay", 0, o); err != nil {
			e.t.Fatalf("mount -t overlay -o %s: %v", o, err)
		}
		mounttest.ForceUnmount(m1)
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "volatile"}},

	// A workdir in use by a live mount.
	{name: "workdir in use by a strata mount", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mountStrata(e.t, "", m1, "-o", opts(e.L2, e.U, e.W), m1)
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "in use"}},
	{name: "workdir in use by a strata mount, other upper", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		u1 := e.mkdir(filepath.Join(e.Root, "u1"))
		mountStrata(e.t, "", m1, "-o", opts(e.L2, u1, e.W), m1)
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "in use"}},
	{name: "workdir in use by a strata mount, through a symlink", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mountStrata(e.t, "", m1, "-o", opts(e.L2, e.U, e.W), m1)
		if err := os.Symlink(e.W, filepath.Join(e.Root, "wlink")); err != nil {
			e.t.Fatal(err)
		}
		return std("$L1", "$U", "$ROOT/wlink", "$M")(e)
	}, want: []string{"workdir", "in use"}},
	{name: "workdir in use by a kernel overlay", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mounttest.KernelMount(e.t, []string{e.L2}, e.U, e.W, m1)
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "in use", "$ROOT/m1"}},
	{name: "workdir in use by a kernel overlay, named through a symlink", args: func(e *env) []string {
		// The kernel shows the workdir as it was given: the check must
		// compare directories, not spellings.
		wl := filepath.Join(e.Root, "wlink")
		if err := os.Symlink(e.W, wl); err != nil {
			e.t.Fatal(err)
		}
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mounttest.KernelMount(e.t, []string{e.L2}, e.U, wl, m1)
		e.write(filepath.Join(e.W, "work", "kernel-scratch"), "the kernel's half-done work\n")
		return std("$L1", "$U", "$W", "$M")(e)
	}, want: []string{"workdir", "$W", "in use", "$ROOT/m1"}},
	{name: "workdir in use by a kernel overlay, given through a symlink", args: func(e *env) []string {
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mounttest.KernelMount(e.t, []string{e.L2}, e.U, e.W, m1)
		if err := os.Symlink(e.W, filepath.Join(e.Root, "wlink")); err != nil {
			e.t.Fatal(err)
		}
		e.write(filepath.Join(e.W, "work", "kernel-scratch"), "the kernel's half-done work\n")
		return std("$L1", "$U", "$ROOT/wlink", "$M")(e)
	}, want: []string{"workdir", "in use", "$ROOT/m1"}},
	// A workdir that is another mount's upper layer: its work/ is a
	// directory of that overlay, which emptying would delete from under it.
	{name: "workdir is a kernel overlay's upperdir", args: func(e *env) []string {
		u1, w1 := e.mkdir(filepath.Join(e.Root, "u1")), e.mkdir(filepath.Join(e.Root, "w1"))
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mounttest.KernelMount(e.t, []string{e.L2}, u1, w1, m1)
		e.write(filepath.Join(e.mkdir(filepath.Join(m1, "work")), "notes"), "seen through the kernel's mount\n")
		e.snap = append(e.snap, u1)
		return std("$L1", "$U", u1, "$M")(e)
	}, want: []string{"workdir", "$ROOT/u1", "in use", "$ROOT/m1"}},
	{name: "workdir is a strata mount's upperdir", args: func(e *env) []string {
		u1, w1 := e.mkdir(filepath.Join(e.Root, "u1")), e.mkdir(filepath.Join(e.Root, "w1"))
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mountStrata(e.t, "", m1, "-o", opts(e.L2, u1, w1), m1)
		e.write(filepath.Join(e.mkdir(filepath.Join(m1, "work")), "notes"), "seen through the first mount\n")
		e.snap = append(e.snap, u1)
		return std("$L1", "$U", u1, "$M")(e)
	}, want: []string{"workdir", "$ROOT/u1", "in use"}},
	{name: "workdir in use by a kernel overlay, path with a space", args: func(e *env) []string {
		sp := e.mkdir(filepath.Join(e.Root, "a b"))
		u, w := e.mkdir(filepath.Join(sp, "u")), e.mkdir(filepath.Join(sp, "w"))
		m1 := e.mkdir(filepath.Join(e.Root, "m1"))
		mounttest.KernelMount(e.t, []string{e.L2}, u, w, m1)
		e.write(filepath.Join(w, "work", "kernel-scratch"), "the kernel's half-done work\n")
		e.snap = append(e.snap, sp)
		return std("$L1", u, w, "$M")(e)
	}, want: []string{"workdir", "in use"}},
}

func TestBadCommandLines(t *testing.T) {
	mounttest.Require(t)
	mounttest.Binary(t)
	for _, c := range badCases {
		t.Run(strings.NewReplacer(" ", "_", ",", "").Replace(c.name), func(t *testing.T) {
			e := newEnv(t, t.TempDir())
			args := c.args(e)
			dirs := append([]string{e.L1, e.L2, e.U, e.W, e.M, e.File}, e.snap...)
			before := snapshotDirs(dirs...)
			mountsBefore := mountsUnder(e.Root)
			daemonsBefore := daemonsUnder(t, e.Root)

			r := runStrata(t, e.Root, args...)

			var problems []string
			if r.code == 0 {
				problems = append(problems, "exit status 0")
			}
			msg := strings.TrimRight(r.stderr, "\n")
			lines := strings.Split(msg, "\n")
			if !strings.HasPrefix(lines[0], "strata: ") {
				problems = append(problems, fmt.Sprintf("stderr does not start with \"strata: \": %q", r.stderr))
			}
			for _, w := range c.want {
				if w = e.expand(w); !strings.Contains(lines[0], w) {
					problems = append(problems, fmt.Sprintf("message %q does not name %q", lines[0], w))
				}
			}
			switch {
			case len(lines) == 2 && lines[1] == "(see strata --help)":
				// The usage hint: see TestUsageErrorIsOneLine.
			case len(lines) > 1:
				problems = append(problems, fmt.Sprintf("stderr has %d lines: %q", len(lines), r.stderr))
			}
			if r.stdout != "" {
				problems = append(problems, fmt.Sprintf("stdout not empty: %q", r.stdout))
			}
			// Nothing mounted, nothing running, nothing changed.
			for mp, typ := range mountsUnder(e.Root) {
				if _, ok := mountsBefore[mp]; !ok {
					problems = append(problems, fmt.Sprintf("left mounted: %s (%s)", mp, typ))
					mounttest.ForceUnmount(mp)
				}
			}
			for pid, cmd := range daemonsUnder(t, e.Root) {
				if _, ok := daemonsBefore[pid]; !ok {
					problems = append(problems, fmt.Sprintf("left running: %d %s", pid, cmd))
					if !waitDead(pid, 5*time.Second) {
						unix.Kill(pid, unix.SIGKILL)
					}
				}
			}
			if d := diffSnapshots(before, snapshotDirs(dirs...)); len(d) > 0 {
				problems = append(problems, "layer directories changed:\n    "+strings.Join(d, "\n    "))
			}
			if len(problems) == 0 {
				if c.bug != "" {
					t.Logf("known bug no longer seen: %s", c.bug)
				}
				return
			}
			report := fmt.Sprintf("strata %q (exit %d, stderr %q):\n  %s", args, r.code, r.stderr, strings.Join(problems, "\n  "))
			if c.bug != "" {
				t.Skipf("BUG: %s\n%s", c.bug, report)
			}
			t.Error(report)
		})
	}
}

// TestUsageErrorIsOneLine: the README promises "a one-line error" for an
// unknown option or a malformed value, as for every other failure.
func TestUsageErrorIsOneLine(t *testing.T) {
	e := newEnv(t, t.TempDir())
	var bad []string
	for _, args := range [][]string{
		{"-o", opts(e.L1, e.U, e.W) + ",bogus", e.M},
		{"-o", opts(e.L1+`\q`, e.U, e.W), e.M},
		{"-o", opts(e.L1+"::"+e.L2, e.U, e.W), e.M},
		{"-x", "-o", opts(e.L1, e.U, e.W), e.M},
	} {
		r := runStrata(t, e.Root, args...)
		if r.code == 0 {
			t.Fatalf("strata %q succeeded", args)
		}
		if n := strings.Count(r.stderr, "\n"); n != 1 {
			bad = append(bad, fmt.Sprintf("strata %q: %d lines on stderr: %q", args, n, r.stderr))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("usage errors must be one line on stderr:\n  %s", strings.Join(bad, "\n  "))
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usage: strata"},
		{[]string{"-h"}, "usage: strata"},
		{[]string{"--version"}, "strata version"},
		{[]string{"-V"}, "strata version"},
		// -h and -V win over everything else, even a bad command line.
		{[]string{"-o", "bogus", "--help"}, "usage: strata"},
		{[]string{"--version", "-o", "lowerdir=/nonexistent", "/nonexistent"}, "strata version"},
	} {
		r := runStrata(t, "", c.args...)
		if r.code != 0 || !strings.Contains(r.stdout, c.want) || r.stderr != "" {
			t.Errorf("strata %q: exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout only", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
}

// TestRelativePaths: relative layer paths and mount point are valid,
// resolved against the current directory.
func TestRelativePaths(t *testing.T) {
	mounttest.Require(t)
	e := newEnv(t, t.TempDir())
	mountStrata(t, e.Root, e.M, "-o", "lowerdir=l1:./l2,upperdir=u/,workdir=../"+filepath.Base(e.Root)+"/w", "m")
	for name, want := range map[string]string{"a": "lower one\n", "b": "lower two\n", "c": "upper\n"} {
		got, err := os.ReadFile(filepath.Join(e.M, name))
		if err != nil || string(got) != want {
			t.Errorf("%s through the mount: %q, %v; want %q", name, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(e.M, "new"), []byte("new\n"), 0644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.U, "new")); err != nil {
		t.Errorf("a file made through the mount is not in the relative upperdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.W, "work")); err != nil {
		t.Errorf("the relative workdir was not used: %v", err)
	}
}

// TestMountOverLowerdir: mounting over a lowerdir itself is allowed (as
// with fuse-overlayfs): the layer stays readable through the mount.
func TestMountOverLowerdir(t *testing.T) {
	mounttest.Require(t)
	e := newEnv(t, t.TempDir())
	mountStrata(t, "", e.L1, "-o", opts(e.L1+":"+e.L2, e.U, e.W), e.L1)
	for name, want := range map[string]string{"a": "lower one\n", "b": "lower two\n", "c": "upper\n"} {
		got, err := os.ReadFile(filepath.Join(e.L1, name))
		if err != nil || string(got) != want {
			t.Errorf("%s through the mount over the lowerdir: %q, %v; want %q", name, got, err, want)
		}
	}
}
