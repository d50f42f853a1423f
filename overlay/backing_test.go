package overlay_test

import (
	"fmt"
	"testing"
)

// TestBackingFileCache: reading many files through the engine, as the
// kernel does with no opens to tell, keeps at most the cache's bound of
// descriptors open, and none once idle.
func TestBackingFileCache(t *testing.T) {
	s := newStack(t, 1)
	const files = 300
	var specs []string
	for i := 0; i < files; i++ {
		specs = append(specs, fmt.Sprintf("d/f%d=content %d", i, i))
	}
	build(t, s.lower(0), specs...)
	cfg := s.config()
	cfg.MaxOpenFiles = 16
	fs := mountCfg(t, cfg)
	base := openFDs(t)
	buf := make([]byte, 64)
	for round := 0; round < 2; round++ {
		for i := 0; i < files; i++ {
			n, _ := mustWalk(t, fs, fmt.Sprintf("d/f%d", i))
			got, err := fs.ReadAt(n, buf, 0)
			if want := fmt.Sprintf("content %d", i); err != nil || string(buf[:got]) != want {
				t.Fatalf("f%d reads %q, %v; want %q", i, buf[:got], err, want)
			}
			if open := openFDs(t) - base; open > cfg.MaxOpenFiles+1 {
				t.Fatalf("%d descriptors open after %d reads, bound %d", open, i+1, cfg.MaxOpenFiles)
			}
		}
	}
	// Room is made before a file is opened: the bound plus the one in use.
	if got := fs.OpenFiles(); got == 0 || got > cfg.MaxOpenFiles+1 {
		t.Fatalf("the cache holds %d files after the reads, want 1..%d", got, cfg.MaxOpenFiles+1)
	}
	fs.CloseIdleFiles()
	fs.CloseIdleFiles()
	if got, open := fs.OpenFiles(), openFDs(t)-base; got != 0 || open != 0 {
		t.Fatalf("idle: the cache holds %d files, %d descriptors open", got, open)
	}
	// Closed files open again on the next read.
	n, _ := mustWalk(t, fs, "d/f7")
	if got := readAll(t, fs, n); got != "content 7" {
		t.Fatalf("read after the idle sweep: %q", got)
	}
}
