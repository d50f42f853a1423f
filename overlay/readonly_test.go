package overlay_test

import (
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestReadOnly: without an upper layer every change gives EROFS, and
// reading works.
func TestReadOnly(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "d/b=b", "f=bottom")
	build(t, s.lower(0), "d/a=a", "f=top", "l->f", "!gone")
	if err := unix.Lsetxattr(s.lower(0)+"/f", "user.x", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	fs := s.mountRO()
	if !fs.ReadOnly() {
		t.Fatalf("ReadOnly() false without an upper layer")
	}
	root := fs.Root()
	d, _ := mustWalk(t, fs, "d")
	f, _ := mustWalk(t, fs, "f")
	l, _ := mustWalk(t, fs, "l")
	wantNames(t, "root", listDir(t, fs, root), "d", "f", "l")
	wantNames(t, "d", listDir(t, fs, d), "a", "b")
	if got := readAll(t, fs, f); got != "top" {
		t.Fatalf("f reads %q", got)
	}
	if got, err := fs.Readlink(l); err != nil || got != "f" {
		t.Fatalf("Readlink %q %v", got, err)
	}
	if _, err := fs.Statfs(); err != nil {
		t.Fatalf("Statfs: %v", err)
	}

	changes := map[string]func() error{
		"create file": func() error { _, _, _, err := fs.Create(root, "new", objFile(0644), caller0); return err },
		"mkdir":       func() error { _, _, _, err := fs.Create(d, "new", objDir(0755), caller0); return err },
		"link":        func() error { _, err := fs.Link(f, root, "new"); return err },
		"unlink":      func() error { return fs.Unlink(root, "f") },
		"unlink in d": func() error { return fs.Unlink(d, "a") },
		"rmdir":       func() error { return fs.Rmdir(root, "d") },
		"rename":      func() error { return fs.Rename(root, "f", root, "g", 0) },
		"exchange":    func() error { return fs.Rename(root, "f", root, "l", overlay.RenameExchange) },
		"chmod":       func() error { _, err := fs.Setattr(f, &overlaySetMode0600); return err },
		"truncate": func() error {
			_, err := fs.Setattr(f, &overlay.SetAttr{Valid: overlay.SetSize})
			return err
		},
		"utimes dir": func() error {
			_, err := fs.Setattr(d, &overlay.SetAttr{Valid: overlay.SetMtimeNow})
			return err
		},
		"setxattr":    func() error { return fs.SetXattr(f, "user.y", []byte("2"), 0) },
		"removexattr": func() error { return fs.RemoveXattr(f, "user.x") },
		"open wronly": func() error { _, err := fs.Open(f, unix.O_WRONLY); return err },
		"open rdwr":   func() error { _, err := fs.Open(f, unix.O_RDWR); return err },
		"open trunc":  func() error { _, err := fs.Open(f, unix.O_RDONLY|unix.O_TRUNC); return err },
	}
	for what, op := range changes {
		wantErrno(t, what, op(), unix.EROFS)
	}
	wantNames(t, "root after", listDir(t, fs, root), "d", "f", "l")
	if got := readAll(t, fs, f); got != "top" {
		t.Fatalf("f reads %q", got)
	}
	if fs.Stats().CopyUps != 0 {
		t.Fatalf("copy-ups on a read-only overlay")
	}
}
