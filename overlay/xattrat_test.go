package overlay

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Layer.getxattr answers as lgetxattr(2) of the path does, with
// getxattrat(2) and without it: values, sizes, missing xattrs, missing
// names, and a symlink's own xattrs rather than its target's.
func TestLayerGetxattrMatchesPath(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir+"/d/e", 0o755))
	must(os.WriteFile(dir+"/d/e/f", []byte("x"), 0o644))
	must(os.WriteFile(dir+"/plain", nil, 0o644))
	must(os.Symlink("d/e/f", dir+"/link"))
	must(unix.Lsetxattr(dir+"/d/e/f", "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Lsetxattr(dir, "trusted.overlay.opaque", []byte("root"), 0))
	must(unix.Lsetxattr(dir+"/link", "trusted.overlay.strata.ino", []byte("12345678"), 0))
	l, err := openLayer(dir, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l.fd) })

	haveGetxattrat(l.fd)
	kernelHas := getxattratOK
	t.Cleanup(func() { getxattratOK = kernelHas })
	if os.Getenv("CI") != "" && !kernelHas {
		var uts unix.Utsname
		unix.Uname(&uts)
		t.Logf("getxattrat(2) not available (kernel %s): only the path fallback is tested", unix.ByteSliceToString(uts.Release[:]))
	}

	cases := []struct{ rel, name string }{
		{"d/e/f", "trusted.overlay.opaque"},
		{"", "trusted.overlay.opaque"},
		{"link", "trusted.overlay.strata.ino"},
		{"link", "trusted.overlay.opaque"}, // the target's, not followed
		{"plain", "trusted.overlay.opaque"},
		{"missing", "trusted.overlay.opaque"},
		{"plain/x", "trusted.overlay.opaque"},
	}
	for _, useAt := range []bool{true, false} {
		if useAt && !kernelHas {
			continue
		}
		getxattratOK = useAt
		for _, c := range cases {
			for _, size := range []int{0, 1, 64} {
				want := make([]byte, size)
				wn, werr := unix.Lgetxattr(l.path(c.rel), c.name, want)
				got := make([]byte, size)
				gn, gerr := l.getxattr(c.rel, c.name, got)
				got, want = got[:min(max(gn, 0), size)], want[:min(max(wn, 0), size)]
				if gn != wn || gerr != werr || string(got) != string(want) {
					t.Errorf("getxattrat=%v %q %s [%d]: got %d %q %v, lgetxattr gives %d %q %v",
						useAt, c.rel, c.name, size, gn, got, gerr, wn, want, werr)
				}
			}
		}
	}
}
