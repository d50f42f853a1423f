package overlay_test

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestFlagsFromProtattr: an upper object's overlay.protattr, as kernel
// overlayfs writes it, adds the append-only ("a") and immutable ("i")
// flags; a value with anything else in it adds none, as on the kernel.
func TestFlagsFromProtattr(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.upper, "none=", "a=", "ai=", "bad=", "d/")
	build(t, s.lower(0), "lowerprot=")
	for name, v := range map[string]string{"a": "a", "ai": "ai", "bad": "ax", "d": "i", "lowerprot": "i"} {
		dir := s.upper
		if name == "lowerprot" {
			dir = s.lower(0) // only an upper object's counts
		}
		if err := unix.Lsetxattr(dir+"/"+name, "trusted.overlay.protattr", []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	fs := s.mount()
	const immutable, appendOnly = 0x10, 0x20
	for name, want := range map[string]uint32{"none": 0, "a": appendOnly, "ai": appendOnly | immutable, "bad": 0, "d": immutable, "lowerprot": 0} {
		n, _ := mustWalk(t, fs, name)
		got, err := fs.GetFlags(n)
		if err != nil {
			t.Fatalf("GetFlags(%s): %v", name, err)
		}
		if got&(immutable|appendOnly) != want {
			t.Errorf("%s: flags %#x, want immutable/append %#x", name, got, want)
		}
	}
	build(t, s.lower(0), "l->x")
	n, _ := mustWalk(t, fs, "l")
	_, err := fs.GetFlags(n)
	wantErrno(t, "GetFlags of a symlink", err, unix.ENOTTY)
}
