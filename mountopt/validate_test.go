package mountopt

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// makeTree creates, under a fresh temporary directory (returned with
// symlinks resolved):
//
//	l1/ l1/sub/ l2/ l3/ u/ u/inner/ w/ w/inner/ m/ a/b/ a/bc/
//	file            a regular file
//	link-l2 -> l2   a symlink to a directory
//	dangling -> nowhere
//	"new\nline"/    a directory with a newline in its name
func makeTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"l1/sub", "l2", "l3", "u/inner", "w/inner", "m", "a/b", "a/bc", "new\nline"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("l2", filepath.Join(root, "link-l2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	return root
}

// baseOptions is a valid read-write mount of the tree.
func baseOptions(root string) *Options {
	o := DefaultOptions()
	o.Lowers = []string{filepath.Join(root, "l1"), filepath.Join(root, "l2")}
	o.Upper = filepath.Join(root, "u")
	o.Work = filepath.Join(root, "w")
	o.Mountpoint = filepath.Join(root, "m")
	return o
}

// listTree returns every path under root, to check Validate creates nothing.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValidateOK(t *testing.T) {
	root := makeTree(t)
	p := func(s string) string { return filepath.Join(root, s) }
	tests := []struct {
		name   string
		modify func(o *Options)
		check  func(t *testing.T, o *Options)
	}{
		{"read-write", nil, func(t *testing.T, o *Options) {
			if !reflect.DeepEqual(o.Lowers, []string{p("l1"), p("l2")}) || o.Upper != p("u") || o.Work != p("w") || o.Mountpoint != p("m") {
				t.Errorf("paths changed: %+v", o)
			}
		}},
		{"read-only, no upper", func(o *Options) { o.Upper, o.Work, o.ReadOnly = "", "", true }, nil},
		{"symlinked lowerdir is resolved", func(o *Options) { o.Lowers = []string{p("l1"), p("link-l2")} }, func(t *testing.T, o *Options) {
			if o.Lowers[1] != p("l2") {
				t.Errorf("lowerdir not resolved: %q", o.Lowers[1])
			}
		}},
		{"unclean paths are cleaned", func(o *Options) { o.Upper = p("u/inner/..") + "/"; o.Mountpoint = p("./m//") }, func(t *testing.T, o *Options) {
			if o.Upper != p("u") || o.Mountpoint != p("m") {
				t.Errorf("paths not cleaned: %q, %q", o.Upper, o.Mountpoint)
			}
		}},
		{"mountpoint over a lowerdir", func(o *Options) { o.Mountpoint = p("l1") }, nil},
		{"mountpoint over a symlinked lowerdir", func(o *Options) { o.Mountpoint = p("link-l2") }, func(t *testing.T, o *Options) {
			if o.Mountpoint != p("l2") {
				t.Errorf("mountpoint not resolved: %q", o.Mountpoint)
			}
		}},
		{"sibling with a common prefix is not inside", func(o *Options) { o.Upper, o.Work = p("a/b"), p("a/bc") }, nil},
		{"nested lowerdirs", func(o *Options) { o.Lowers = []string{p("l1"), p("l1/sub")} }, nil},
		{"read-only with an upper layer", func(o *Options) { o.ReadOnly = true }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions(root)
			if tc.modify != nil {
				tc.modify(o)
			}
			before := listTree(t, root)
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if after := listTree(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("Validate changed the tree:\n%q\n%q", before, after)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	root := makeTree(t)
	p := func(s string) string { return filepath.Join(root, s) }
	q := func(s string) string { return `"` + p(s) + `"` }
	tests := []struct {
		name   string
		modify func(o *Options)
		want   []string // substrings of the error
	}{
		{"no lowerdir", func(o *Options) { o.Lowers = nil }, []string{"lowerdir"}},
		{"empty lowerdir entry", func(o *Options) { o.Lowers = []string{p("l1"), ""} }, []string{"lowerdir: empty entry"}},
		{"missing lowerdir", func(o *Options) { o.Lowers = []string{p("l1"), p("nope")} }, []string{"lowerdir " + q("nope") + ": no such directory"}},
		{"dangling symlink lowerdir", func(o *Options) { o.Lowers = []string{p("dangling")} }, []string{"lowerdir " + q("dangling") + ": no such directory"}},
		{"lowerdir is a file", func(o *Options) { o.Lowers = []string{p("file")} }, []string{"lowerdir " + q("file") + " is not a directory"}},
		{"lowerdir below a file", func(o *Options) { o.Lowers = []string{p("file/x")} }, []string{"lowerdir " + q("file/x") + ": no such directory"}},
		{"lowerdir given twice", func(o *Options) { o.Lowers = []string{p("l1"), p("l2"), p("l1")} }, []string{"lowerdir " + q("l1") + " is given twice"}},
		{"lowerdir twice through a symlink", func(o *Options) { o.Lowers = []string{p("l2"), p("link-l2")} }, []string{q("l2"), q("link-l2"), "same directory"}},
		{"missing upperdir", func(o *Options) { o.Upper = p("nope") }, []string{"upperdir " + q("nope") + ": no such directory"}},
		{"upperdir is a file", func(o *Options) { o.Upper = p("file") }, []string{"upperdir " + q("file") + " is not a directory"}},
		{"missing workdir", func(o *Options) { o.Work = p("nope") }, []string{"workdir " + q("nope") + ": no such directory"}},
		{"missing mountpoint dir", func(o *Options) { o.Mountpoint = p("nope") }, []string{"mountpoint " + q("nope") + ": no such directory"}},
		{"mountpoint is a file", func(o *Options) { o.Mountpoint = p("file") }, []string{"mountpoint " + q("file") + " is not a directory"}},
		{"no mountpoint", func(o *Options) { o.Mountpoint = "" }, []string{"missing mountpoint"}},
		{"workdir without upperdir", func(o *Options) { o.Upper = "" }, []string{"workdir= given without upperdir="}},
		{"upperdir without workdir", func(o *Options) { o.Work = "" }, []string{"upperdir= given without workdir="}},
		{"upperdir is workdir", func(o *Options) { o.Work = p("u") }, []string{"upperdir and workdir are the same directory " + q("u")}},
		{"workdir inside upperdir", func(o *Options) { o.Work = p("u/inner") }, []string{"workdir " + q("u/inner") + " is inside upperdir " + q("u")}},
		{"upperdir inside workdir", func(o *Options) { o.Upper = p("w/inner") }, []string{"upperdir " + q("w/inner") + " is inside workdir " + q("w")}},
		{"upperdir inside lowerdir", func(o *Options) { o.Upper = p("l1/sub") }, []string{"upperdir " + q("l1/sub") + " is inside lowerdir " + q("l1")}},
		{"lowerdir inside upperdir", func(o *Options) { o.Lowers = []string{p("u/inner")} }, []string{"lowerdir " + q("u/inner") + " is inside upperdir " + q("u")}},
		{"upperdir is a lowerdir", func(o *Options) { o.Upper = p("link-l2") }, []string{"upperdir " + q("link-l2"), "lowerdir " + q("l2"), "same directory"}},
		{"workdir inside lowerdir", func(o *Options) { o.Work = p("l1/sub") }, []string{"workdir " + q("l1/sub") + " is inside lowerdir " + q("l1")}},
		{"lowerdir inside workdir", func(o *Options) { o.Lowers = []string{p("w/inner")} }, []string{"lowerdir " + q("w/inner") + " is inside workdir " + q("w")}},
		{"mountpoint inside upperdir", func(o *Options) { o.Mountpoint = p("u/inner") }, []string{"mountpoint " + q("u/inner") + " is inside upperdir " + q("u")}},
		{"mountpoint inside workdir", func(o *Options) { o.Mountpoint = p("w/inner") }, []string{"mountpoint " + q("w/inner") + " is inside workdir " + q("w")}},
		{"mountpoint inside lowerdir", func(o *Options) { o.Mountpoint = p("l1/sub") }, []string{"mountpoint " + q("l1/sub") + " is inside lowerdir " + q("l1")}},
		{"mountpoint inside read-only lowerdir", func(o *Options) { o.Upper, o.Work, o.ReadOnly, o.Mountpoint = "", "", true, p("l1/sub") }, []string{"mountpoint " + q("l1/sub") + " is inside lowerdir"}},
		{"mountpoint is upperdir", func(o *Options) { o.Mountpoint = p("u") }, []string{"mountpoint " + q("u") + " is the same directory as upperdir"}},
		{"mountpoint is workdir", func(o *Options) { o.Mountpoint = p("w") }, []string{"mountpoint " + q("w") + " is the same directory as workdir"}},
		{"newline in lowerdir", func(o *Options) { o.Lowers = []string{p("new\nline")} }, []string{"lowerdir", `new\nline`, "newline"}},
		{"newline in mountpoint", func(o *Options) { o.Mountpoint = p("new\nline") }, []string{"mountpoint", "newline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions(root)
			tc.modify(o)
			saved := *o
			saved.Lowers = append([]string(nil), o.Lowers...)
			before := listTree(t, root)
			err := o.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) succeeded, want an error", o)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not a single line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if !reflect.DeepEqual(*o, saved) {
				t.Errorf("failed Validate changed the options:\n got %+v\nwant %+v", *o, saved)
			}
			if after := listTree(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("Validate changed the tree")
			}
		})
	}
}

func TestValidateDifferentFilesystems(t *testing.T) {
	root := makeTree(t)
	var a, b syscall.Stat_t
	if syscall.Stat(root, &a) != nil || syscall.Stat("/proc", &b) != nil || a.Dev == b.Dev {
		t.Skip("need /proc on a filesystem other than the temporary directory's")
	}
	o := baseOptions(root)
	o.Work = "/proc"
	err := o.Validate()
	want := `workdir "/proc" and upperdir "` + filepath.Join(root, "u") + `" are on different filesystems`
	if err == nil || err.Error() != want {
		t.Errorf("Validate: %v\nwant %s", err, want)
	}
}

// The writability check has to run as a user without privileges: as root,
// the test re-runs itself as nobody.
func TestValidateNotWritable(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("helper process")
	}
	if os.Geteuid() != 0 {
		root := makeTree(t)
		if err := os.Chmod(filepath.Join(root, "u"), 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(filepath.Join(root, "u"), 0o755) })
		checkNotWritable(t, root, "l1", func(o *Options) error { return o.Validate() })
		return
	}

	// A tree and a copy of the test binary that nobody can reach.
	root, err := os.MkdirTemp("", "strata-mountopt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if root, err = filepath.EvalSymlinks(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "w"), 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "mountopt.test")
	if err := copyFile(bin); err != nil {
		t.Fatal(err)
	}
	asNobody := func(o *Options) error {
		js, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestValidateHelper$")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Skipf("cannot run the test binary as nobody: %v: %s", err, out)
		}
		res := string(out)
		if i := strings.Index(res, "VALIDATE:"); i >= 0 {
			res, _, _ = strings.Cut(res[i+len("VALIDATE:"):], "\n")
		} else {
			t.Fatalf("helper output: %s", out)
		}
		if res == "ok" {
			return nil
		}
		return stringError(res)
	}
	checkNotWritable(t, root, "l", asNobody)

	// And with write permission, nobody passes.
	if err := os.Chmod(filepath.Join(root, "u"), 0o777); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Lowers, o.Upper, o.Work, o.Mountpoint = []string{filepath.Join(root, "l")}, filepath.Join(root, "u"), filepath.Join(root, "w"), filepath.Join(root, "m")
	if err := asNobody(o); err != nil {
		t.Errorf("writable upperdir: %v", err)
	}
}

// checkNotWritable expects validate to reject root/u, which the caller made
// unwritable, unless the mount is read-only.
func checkNotWritable(t *testing.T, root, lower string, validate func(*Options) error) {
	t.Helper()
	o := DefaultOptions()
	o.Lowers = []string{filepath.Join(root, lower)}
	o.Upper, o.Work, o.Mountpoint = filepath.Join(root, "u"), filepath.Join(root, "w"), filepath.Join(root, "m")
	err := validate(o)
	want := `upperdir "` + o.Upper + `" is not writable`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate: %v, want %q", err, want)
	}
	o.ReadOnly = true
	if err := validate(o); err != nil {
		t.Errorf("read-only mount: %v", err)
	}
}

const helperEnv = "STRATA_MOUNTOPT_VALIDATE_HELPER"

// TestValidateHelper is the process TestValidateNotWritable runs as nobody.
func TestValidateHelper(t *testing.T) {
	js := os.Getenv(helperEnv)
	if js == "" {
		t.Skip("helper process only")
	}
	var o Options
	if err := json.Unmarshal([]byte(js), &o); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		os.Stdout.WriteString("VALIDATE:" + err.Error() + "\n")
	} else {
		os.Stdout.WriteString("VALIDATE:ok\n")
	}
}

type stringError string

func (e stringError) Error() string { return string(e) }

// copyFile copies the running test binary to dst, executable by all.
func copyFile(dst string) error {
	src, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestIsInside(t *testing.T) {
	tests := []struct {
		parent, child string
		want          bool
	}{
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/b/c/d", true},
		{"/a/b/", "/a/b/c", true},
		{"/a/b", "/a/b", false},
		{"/a/b", "/a/b/", false},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a", false},
		{"/a/b/c", "/a/b", false},
		{"/", "/a", true},
		{"/", "/", false},
		{"/a/b", "/a/b/../c", false},
		{"/a/b", "/a/./b/c", true},
	}
	for _, tc := range tests {
		if got := IsInside(tc.parent, tc.child); got != tc.want {
			t.Errorf("IsInside(%q, %q) = %v, want %v", tc.parent, tc.child, got, tc.want)
		}
	}
}
