package overlay_test

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestXattrPrivateHidden: the overlay's own metadata (opaque markers, the
// kept inode number, whatever the kernel wrote) is never shown: not
// listed, and reading its names does not reveal it.
func TestXattrPrivateHidden(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "o/*", "o/x=", "m/", "f=data", "k=")
	build(t, s.upper, "u/*", "m/")
	for _, p := range []string{s.lower(0) + "/k", s.upper + "/m"} {
		for _, x := range []string{"trusted.overlay.origin", "trusted.overlay.impure"} {
			if err := unix.Lsetxattr(p, x, []byte("y"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range []string{s.lower(0) + "/f", s.lower(0) + "/o", s.upper + "/u"} {
		if err := unix.Lsetxattr(p, "user.visible", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	fs := s.mount()
	f, _ := mustWalk(t, fs, "f")
	writeFile(t, fs, f, "D", 0) // copy-up records private metadata on the upper file
	upperNames, _ := listRaw(s.upper + "/f")
	if !hasPrefixed(upperNames, "trusted.overlay.") {
		t.Logf("note: copy-up stored no trusted.overlay.* xattr on %s (%q)", "f", upperNames)
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{"o", []string{"user.visible"}},
		{"u", []string{"user.visible"}},
		{"m", nil},
		{"k", nil},
		{"f", []string{"user.visible"}},
	} {
		n, _ := mustWalk(t, fs, c.path)
		got := listXattrNames(t, fs, n)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: ListXattr %q, want %q", c.path, got, c.want)
		}
		for _, x := range []string{"trusted.overlay.opaque", "trusted.overlay.origin", "trusted.overlay.impure", "trusted.overlay.strata.ino"} {
			buf := make([]byte, 64)
			sz, err := fs.GetXattr(n, x, buf)
			if err == nil {
				t.Errorf("%s: GetXattr(%s) reveals %q", c.path, x, buf[:sz])
			} else if err != unix.ENODATA && err != unix.EOPNOTSUPP {
				t.Errorf("%s: GetXattr(%s): %v, want ENODATA (or EOPNOTSUPP)", c.path, x, err)
			}
		}
	}
}

// TestXattrOverlayNamesEscaped: names in the overlay's namespace given
// through the mount cannot forge metadata. The kernel (6.7+) stores them
// escaped ("trusted.overlay.X" as "trusted.overlay.overlay.X"), and so
// does the engine since it matched the kernel; before, they gave
// EOPNOTSUPP. Either way the directory must not become opaque.
func TestXattrOverlayNamesEscaped(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "m/low=")
	build(t, s.upper, "m/up=")
	fs := s.mount()
	m, _ := mustWalk(t, fs, "m")
	err := fs.SetXattr(m, "trusted.overlay.opaque", []byte("y"), 0)
	if err == unix.EOPNOTSUPP {
		t.Logf("engine refuses overlay names with EOPNOTSUPP")
		if isOpaque(s.upper + "/m") {
			t.Fatalf("refused set made m opaque")
		}
		return
	}
	if err != nil {
		t.Fatalf("SetXattr(trusted.overlay.opaque): %v", err)
	}
	if isOpaque(s.upper + "/m") {
		t.Fatalf("setting trusted.overlay.opaque through the mount made the directory opaque")
	}
	if v, err := xattr(s.upper+"/m", "trusted.overlay.overlay.opaque"); err != nil || string(v) != "y" {
		t.Fatalf("escaped xattr on disk: %q %v", v, err)
	}
	wantNames(t, "m", listDir(t, fs, m), "low", "up")
	fs2 := mountCfg(t, s.configWithWork(t))
	m2, _ := mustWalk(t, fs2, "m")
	wantNames(t, "m in a new engine", listDir(t, fs2, m2), "low", "up")

	buf := make([]byte, 8)
	if n, err := fs.GetXattr(m, "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("GetXattr of the escaped name: %q %v", buf[:n], err)
	}
	if got := listXattrNames(t, fs, m); strings.Join(got, ",") != "trusted.overlay.opaque" {
		t.Fatalf("ListXattr %q", got)
	}
	wantErrno(t, "RemoveXattr", fs.RemoveXattr(m, "trusted.overlay.opaque"), 0)
	if _, err := xattr(s.upper+"/m", "trusted.overlay.overlay.opaque"); err != unix.ENODATA {
		t.Fatalf("escaped xattr still on disk: %v", err)
	}
}

func TestXattrUser(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=")
	if err := unix.Lsetxattr(s.lower(0)+"/f", "user.a", []byte("alpha"), 0); err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	f, _ := mustWalk(t, fs, "f")
	if sz, err := fs.GetXattr(f, "user.a", nil); err != nil || sz != 5 {
		t.Fatalf("size query: %d %v", sz, err)
	}
	_, err := fs.GetXattr(f, "user.a", make([]byte, 2))
	wantErrno(t, "GetXattr into a small buffer", err, unix.ERANGE)
	_, err = fs.GetXattr(f, "user.none", make([]byte, 8))
	wantErrno(t, "GetXattr of a missing name", err, unix.ENODATA)
	wantErrno(t, "RemoveXattr of a missing name", fs.RemoveXattr(f, "user.none"), unix.ENODATA)
	if _, err := fs.ListXattr(f, make([]byte, 3)); err != unix.ERANGE {
		t.Fatalf("ListXattr into a small buffer: %v, want ERANGE", err)
	}
	// Like the kernel, a removal checks the lower object before copying up.
	if got := fs.Stats().CopyUps; got != 0 {
		t.Fatalf("reads and a failed removal copied %d objects up", got)
	}
	// (A set copies up first, as the kernel's does, and then fails.)
	wantErrno(t, "SetXattr REPLACE of a missing name", fs.SetXattr(f, "user.none", []byte("x"), unix.XATTR_REPLACE), unix.ENODATA)
	wantErrno(t, "SetXattr CREATE of an existing name", fs.SetXattr(f, "user.a", []byte("x"), unix.XATTR_CREATE), unix.EEXIST)
	wantErrno(t, "SetXattr", fs.SetXattr(f, "user.b", []byte("beta"), 0), 0)
	if got := listXattrNames(t, fs, f); strings.Join(got, ",") != "user.a,user.b" {
		t.Fatalf("ListXattr %q", got)
	}
	wantErrno(t, "RemoveXattr", fs.RemoveXattr(f, "user.a"), 0)
	if got := listXattrNames(t, fs, f); strings.Join(got, ",") != "user.b" {
		t.Fatalf("ListXattr after remove %q", got)
	}
	if v, err := xattr(s.upper+"/f", "user.b"); err != nil || string(v) != "beta" {
		t.Fatalf("upper user.b: %q %v", v, err)
	}
	if _, err := xattr(s.upper+"/f", "user.a"); err != unix.ENODATA {
		t.Fatalf("upper user.a: %v", err)
	}
	if v, err := xattr(s.lower(0)+"/f", "user.a"); err != nil || string(v) != "alpha" {
		t.Fatalf("lower user.a changed: %q %v", v, err)
	}
}

// TestXattrUserXattrMode: with UserXattr the metadata lives in
// user.overlay.*, and trusted.overlay.* is an ordinary name.
func TestXattrUserXattrMode(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "u/below=", "t/below=", "gone/x=")
	build(t, s.lower(0), "u/a=", "t/a=")
	build(t, s.upper, "!gone")
	for x, p := range map[string]string{"user.overlay.opaque": "/u", "trusted.overlay.opaque": "/t"} {
		if err := unix.Lsetxattr(s.lower(0)+p, x, []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.config()
	cfg.UserXattr = true
	fs := mountCfg(t, cfg)
	u, _ := mustWalk(t, fs, "u")
	wantNames(t, "u (user.overlay.opaque)", listDir(t, fs, u), "a")
	tt, _ := mustWalk(t, fs, "t")
	wantNames(t, "t (trusted.overlay.opaque means nothing here)", listDir(t, fs, tt), "a", "below")
	if got := listXattrNames(t, fs, u); len(got) != 0 {
		t.Fatalf("u lists %q", got)
	}
	if got := listXattrNames(t, fs, tt); strings.Join(got, ",") != "trusted.overlay.opaque" {
		t.Fatalf("t lists %q", got)
	}
	g, _ := mustCreate(t, fs, fs.Root(), "gone", objDir(0755))
	if v, err := xattr(s.upper+"/gone", "user.overlay.opaque"); err != nil || string(v) != "y" {
		t.Fatalf("mkdir over a whiteout: user.overlay.opaque = %q, %v", v, err)
	}
	if isOpaque(s.upper + "/gone") {
		t.Fatalf("mkdir over a whiteout wrote trusted.overlay.opaque in userxattr mode")
	}
	wantNames(t, "gone", listDir(t, fs, g))
}

func listRaw(p string) ([]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func hasPrefixed(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
