package overlay_test

import (
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// A copy-up that does not wait for its data (a chmod, a write to a large
// file) must still fail, as the kernel's does, when the upper layer has no
// room for that data: succeeding and then losing the change when the data
// cannot follow is what it did before (and the copies it gave up filled
// the upper layer, so that even a small file's chmod was lost). The upper
// layer here is a 1 MiB tmpfs.
func TestCopyUpIntoFullUpper(t *testing.T) {
	s := newStack(t, 1)
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	cfg := s.config()
	cfg.Upper, cfg.Work = small+"/upper", small+"/work"
	cfg.AsyncCopyUp = true
	for _, d := range []string{cfg.Upper, cfg.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + 1)
	}
	build(t, s.lower(0), "s=small")
	for name, times := range map[string]int{"big": 1, "huge": 2, "giant": 3} {
		// huge: a write's copy filled later; giant: one too large to
		// reserve its data, refused by the free-space check.
		var data []byte
		for range times {
			data = append(data, big...)
		}
		if err := os.WriteFile(s.lower(0)+"/"+name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := mountCfg(t, cfg)

	n, _, err := walk(fs, "big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Setattr(n, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0o600}); err != unix.ENOSPC {
		t.Errorf("chmod of a 3 MiB lower file into a 1 MiB upper layer: %v, want ENOSPC", err)
	}
	if st, err := fs.Getattr(n); err != nil || st.Mode&0o7777 != 0o644 {
		t.Errorf("after the failed chmod: mode %o, %v", st.Mode&0o7777, err)
	}
	h, _, err := walk(fs, "huge")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.WriteAt(h, []byte("x"), 100); err != unix.ENOSPC {
		t.Errorf("write to a 6 MiB lower file into a 1 MiB upper layer: %v, want ENOSPC", err)
	}
	g, _, err := walk(fs, "giant")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Setattr(g, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0o600}); err != unix.ENOSPC {
		t.Errorf("chmod of a 9 MiB lower file into a 1 MiB upper layer: %v, want ENOSPC", err)
	}
	sn, _, err := walk(fs, "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Setattr(sn, &overlay.SetAttr{Valid: overlay.SetMode, Mode: 0o600}); err != nil {
		t.Fatalf("chmod of a small file, with room for it: %v", err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cfg.Upper)
	if len(ents) != 1 || ents[0].Name() != "s" {
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		t.Errorf("upper layer after unmount holds %v, want only s", got)
	}
	if st, err := os.Lstat(cfg.Upper + "/s"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("upper s: %v, %v", st, err)
	}
	if ents, _ := os.ReadDir(cfg.Work + "/work"); len(ents) > 1 {
		t.Errorf("work directory left with %d entries", len(ents))
	}
}
