package overlay

import (
	"bytes"
	"math/rand"
	"os"
	"testing"
)

// TestCopyBetweenRW: the read-and-write copy, for filesystems
// copy_file_range(2) cannot copy between, copies the range asked for at
// other offsets, across its buffer's size, and stops where the source
// ends.
func TestCopyBetweenRW(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+77)
	rand.New(rand.NewSource(3)).Read(data)
	if err := os.WriteFile(dir+"/src", data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(dir + "/src")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(dir + "/dst")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	n, err := copyBetweenRW(int(src.Fd()), 100, int(dst.Fd()), 5, 2<<20)
	if err != nil || n != 2<<20 {
		t.Fatalf("copy of 2 MiB: %d, %v", n, err)
	}
	n, err = copyBetweenRW(int(src.Fd()), 3<<20, int(dst.Fd()), 5+2<<20, 1<<20)
	if err != nil || n != 77 {
		t.Fatalf("copy past the source's end: %d, %v; want 77", n, err)
	}
	got, err := os.ReadFile(dir + "/dst")
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(make([]byte, 5), data[100:100+2<<20]...), data[3<<20:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("dst: %d bytes, want %d; equal %v", len(got), len(want), bytes.Equal(got, want))
	}
}
