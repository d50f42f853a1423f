package overlay_test

import (
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// A lower layer that keeps owners in user.containers.override_stat (as
// containers/storage writes layers for rootless use) shows them; an upper
// layer with xattr_permissions=2 records chown/chmod and new objects'
// owners in user.fuseoverlayfs.override_stat and leaves the real ones.
func TestStatOverrides(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=data", "d/g=other")
	set := func(p, name, v string) {
		t.Helper()
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	set(s.lower(0), overlay.OverrideContainers, "0:0:755")
	set(s.lower(0)+"/d/f", overlay.OverrideContainers, "1000:1001:4750")
	cfg := s.config()
	cfg.XattrPermissions = 2
	set(s.upper, overlay.OverrideUser, "0:0:755")
	fs := mountCfg(t, cfg)

	f, st := mustWalk(t, fs, "d/f")
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode&07777 != 04750 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("lower override: %d:%d %o", st.Uid, st.Gid, st.Mode)
	}
	for _, name := range listXattrNames(t, fs, f) {
		if name == overlay.OverrideContainers {
			t.Fatalf("the override xattr is listed")
		}
	}

	// chown through the mount: recorded, not done.
	st, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetUID | overlay.SetGID, UID: 5, GID: 6})
	if err != nil {
		t.Fatal(err)
	}
	if st.Uid != 5 || st.Gid != 6 || st.Mode&07777 != 04750 {
		t.Fatalf("after chown: %d:%d %o", st.Uid, st.Gid, st.Mode)
	}
	real := lstat(t, s.upper+"/d/f")
	if real.Uid != 0 {
		t.Fatalf("the upper file was really chowned to %d", real.Uid)
	}
	v, err := xattr(s.upper+"/d/f", overlay.OverrideUser)
	if err != nil || string(v) != "5:6:4750" {
		t.Fatalf("upper override: %q %v", v, err)
	}
	if _, err := xattr(s.upper+"/d/f", overlay.OverrideContainers); err == nil {
		t.Fatalf("the lower layer's override xattr was copied up as it was")
	}
	st, err = fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0640})
	if err != nil || st.Mode&07777 != 0640 || st.Uid != 5 {
		t.Fatalf("after chmod: %o %d %v", st.Mode, st.Uid, err)
	}

	// A new file: its owner goes into the override.
	d, _ := mustWalk(t, fs, "d")
	n, h, st, err := fs.Create(d, "new", objFile(0600), overlay.Caller{UID: 7, GID: 8})
	if err != nil {
		t.Fatal(err)
	}
	fs.Release(h)
	if st.Uid != 7 || st.Gid != 8 || st.Mode&07777 != 0600 {
		t.Fatalf("new file shows %d:%d %o", st.Uid, st.Gid, st.Mode)
	}
	if got, _ := fs.Getattr(n); got.Uid != 7 {
		t.Fatalf("Getattr of the new file: uid %d", got.Uid)
	}
	if real := lstat(t, s.upper+"/d/new"); real.Uid != 0 {
		t.Fatalf("the new file was really chowned to %d", real.Uid)
	}
	// Not settable or removable through the mount.
	wantErrno(t, "setxattr of the override", fs.SetXattr(n, overlay.OverrideUser, []byte("0:0:777"), 0), unix.EPERM)
	wantErrno(t, "removexattr of the override", fs.RemoveXattr(n, overlay.OverrideUser), unix.EPERM)
	if _, err := os.Stat(s.upper + "/d/new"); err != nil {
		t.Fatal(err)
	}
}
