package fusefs_test

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// accessACL encodes a system.posix_acl_access value: the owner rw, user
// uid r, the owning group r, mask r, others nothing (mode 0640).
func accessACL(uid uint32) []byte {
	const undefined = 0xffffffff
	entries := []struct {
		tag, perm uint16
		id        uint32
	}{
		{0x01, 6, undefined}, // ACL_USER_OBJ
		{0x02, 4, uid},       // ACL_USER
		{0x04, 4, undefined}, // ACL_GROUP_OBJ
		{0x10, 4, undefined}, // ACL_MASK
		{0x20, 0, undefined}, // ACL_OTHER
	}
	b := binary.LittleEndian.AppendUint32(nil, 2) // POSIX_ACL_XATTR_VERSION
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// readsAsNobody reports whether user 65534 can read p.
func readsAsNobody(t *testing.T, p string) bool {
	t.Helper()
	cmd := exec.Command("cat", p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd.Run() == nil
}

// aclStack makes a stack whose lower layer holds three files of mode
// 0640, two of which ("granted", "copied") grant user 65534 reading by
// ACL.
func aclStack(t *testing.T) *mounttest.Stack {
	t.Helper()
	s := mounttest.NewStack(t, 1)
	for _, d := range []string{filepath.Dir(s.Dir), s.Dir} { // for nobody
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"granted", "plain", "copied"} {
		p := filepath.Join(s.Lowers[0], name)
		mounttest.WriteFile(t, p, "secret\n")
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		if name == "plain" {
			continue
		}
		if err := unix.Lsetxattr(p, "system.posix_acl_access", accessACL(65534), 0); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("setting an ACL on the lower layer: %v", err)
			}
			t.Skipf("the layers' filesystem takes no ACL: %v", err)
		}
	}
	return s
}

// checkNobody checks which files of the mount user 65534 can read.
func checkNobody(t *testing.T, s *mounttest.Stack, what string, want map[string]bool) {
	t.Helper()
	for name, ok := range want {
		if got := readsAsNobody(t, filepath.Join(s.Mnt, name)); got != ok {
			t.Errorf("%s: nobody reads %s: %v, want %v", what, name, got, ok)
		}
	}
}

// TestACLEnforced: a POSIX ACL of a lower file counts along with its
// mode, as with kernel overlayfs over the same layers (the oracle), before
// and after a copy-up.
func TestACLEnforced(t *testing.T) {
	s := aclStack(t)
	want := map[string]bool{"granted": true, "plain": false, "copied": true}
	s.MountKernel(t)
	checkNobody(t, s, "kernel overlayfs", want)
	mounttest.ForceUnmount(s.Mnt)

	srv := s.Mount(t)
	checkNobody(t, s, "strata", want)
	// A metadata copy-up keeps the ACL, and the kernel still applies it.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(s.Mnt, "copied"), now, now); err != nil {
		t.Fatal(err)
	}
	srv.FS.Settle() // the copy is linked into the upper layer in the background
	if _, err := unix.Lgetxattr(filepath.Join(s.Upper, "copied"), "system.posix_acl_access", make([]byte, 256)); err != nil {
		t.Fatalf("the copied-up file has no ACL in the upper layer: %v", err)
	}
	checkNobody(t, s, "strata after copy-up", want)
}

// TestNoACL: with noacl only the mode counts, though the ACL is still
// there to read.
func TestNoACL(t *testing.T) {
	s := aclStack(t)
	o := s.Options()
	o.ACL = false
	mounttest.MountOptions(t, o)
	checkNobody(t, s, "strata -o noacl", map[string]bool{"granted": false, "plain": false, "copied": false})
	if _, err := unix.Lgetxattr(filepath.Join(s.Mnt, "granted"), "system.posix_acl_access", make([]byte, 256)); err != nil {
		t.Errorf("reading the ACL through a noacl mount: %v", err)
	}
}
