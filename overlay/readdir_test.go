package overlay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

func TestReadDirMerge(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "d/b=b", "d/a/", "d/gone2=", "d/shared=1", "d/deep/x=")
	build(t, s.lower(0), "d/gone=", "d/shared/", "d/c->b", "!d/gone2", "d/.wh.deep=", "d/|p")
	build(t, s.upper, "d/u=u", "!d/gone", "d/shared/", "d/ud/")
	fs := s.mount()

	d, _ := mustWalk(t, fs, "d")
	got := listDir(t, fs, d)
	want := map[string]uint32{
		"a":      unix.S_IFDIR,
		"b":      unix.S_IFREG,
		"c":      unix.S_IFLNK,
		"p":      unix.S_IFIFO,
		"shared": unix.S_IFDIR,
		"u":      unix.S_IFREG,
		"ud":     unix.S_IFDIR,
	}
	wantNames(t, "d", got, names(want)...)
	for name, kind := range want {
		if got[name] != kind {
			t.Errorf("d/%s listed with kind %o, want %o", name, got[name], kind)
		}
		_, st, err := fs.Lookup(d, name)
		if err != nil {
			t.Fatalf("listed name d/%s does not look up: %v", name, err)
		}
		if st.Mode&unix.S_IFMT != kind {
			t.Errorf("d/%s: lookup kind %o, listing kind %o", name, st.Mode&unix.S_IFMT, kind)
		}
	}
}

func TestReadDirOffsetsStable(t *testing.T) {
	s := newStack(t, 1)
	var specs []string
	for i := 0; i < 10; i++ {
		specs = append(specs, fmt.Sprintf("d/f%d=", i))
	}
	build(t, s.lower(0), specs...)
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	h, err := fs.OpenDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if h.Node() != d {
		t.Fatalf("DirHandle.Node() is not the directory")
	}
	first, err := fs.ReadDir(h, 0, false)
	if err != nil || len(first) != 10 {
		t.Fatalf("first ReadDir: %d entries, %v", len(first), err)
	}
	snapshot := append([]string(nil), entryNames(first)...)

	// Change the directory: the open listing keeps its snapshot.
	mustCreate(t, fs, d, "new", objFile(0644))
	wantErrno(t, "unlink", fs.Unlink(d, snapshot[4]), 0)
	wantErrno(t, "unlink", fs.Unlink(d, snapshot[0]), 0)

	for off := 0; off <= 10; off++ {
		after := uint64(0)
		if off > 0 {
			after = first[off-1].Off
		}
		ents, err := fs.ReadDir(h, after, false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(entryNames(ents)) != fmt.Sprint(snapshot[off:]) {
			t.Fatalf("ReadDir after entry %d after changes: %v, want the snapshot's %v", off, entryNames(ents), snapshot[off:])
		}
	}
	if ents, _ := fs.ReadDir(h, ^uint64(0), false); len(ents) != 0 {
		t.Fatalf("ReadDir past the end gave %d entries", len(ents))
	}
	// Rewind takes a fresh snapshot.
	ents, err := fs.ReadDir(h, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint32{}
	for _, e := range ents {
		m[e.Name] = e.Kind
	}
	want := []string{"new"}
	for i, n := range snapshot {
		if i != 0 && i != 4 {
			want = append(want, n)
		}
	}
	wantNames(t, "after rewind", m, want...)
}

func entryNames(ents []overlay.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

// TestReadDirIno: a listing's inode numbers are the ones Getattr reports.
func TestReadDirIno(t *testing.T) {
	s := newStack(t, 2)
	build(t, s.lower(1), "d/low1=", "d/merged/")
	build(t, s.lower(0), "d/low0=", "d/merged/")
	build(t, s.upper, "d/up=", "d/merged/")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	checkDirIno(t, fs, d, "d")
}

func checkDirIno(t *testing.T, fs *overlay.FS, d *overlay.Node, what string) {
	t.Helper()
	h, err := fs.OpenDir(d)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(h, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) == 0 {
		t.Fatalf("%s: empty listing", what)
	}
	for _, e := range ents {
		n, st, err := fs.Lookup(d, e.Name)
		if err != nil {
			t.Fatalf("%s/%s: %v", what, e.Name, err)
		}
		if e.Ino != st.Ino {
			t.Errorf("%s/%s: readdir ino %d, stat ino %d", what, e.Name, e.Ino, st.Ino)
		}
		fs.Forget(n, 1)
	}
}

// TestReadDirInoAfterCopyUpAndForget: a copied-up object keeps its inode
// number, and the listing must agree with stat once the node has left the
// table.
func TestReadDirInoAfterCopyUpAndForget(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "d/f=data", "d/sub/x=")
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	f, st0, _ := fs.Lookup(d, "f")
	writeFile(t, fs, f, "new", 0) // copies d and f up (and d/sub stays lower)
	fs.Forget(f, 1)
	sub, _, _ := fs.Lookup(d, "sub")
	x, _, _ := fs.Lookup(sub, "x")
	writeFile(t, fs, x, "y", 0) // copies sub up
	fs.Forget(x, 1)
	fs.Forget(sub, 1)
	h, _ := fs.OpenDir(d)
	ents, err := fs.ReadDir(h, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	bad := ""
	for _, e := range ents {
		n, st, err := fs.Lookup(d, e.Name)
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "f" && st.Ino != st0.Ino {
			t.Fatalf("f: stat ino changed by copy-up: %d -> %d", st0.Ino, st.Ino)
		}
		if e.Ino != st.Ino {
			bad += fmt.Sprintf(" %s: readdir ino %d, stat ino %d;", e.Name, e.Ino, st.Ino)
		}
		fs.Forget(n, 1)
	}
	if bad != "" {
		t.Fatal("readdir d_ino of copied-up entries not in the node table differs from stat's:" + bad)
	}
}

func TestReadDirLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large directory")
	}
	// lower: n0..n54999; upper: n50000..n100499 (5000 names in both) and
	// whiteouts for n0..n499: 100000 visible names.
	const lowerN, upperN, overlap, whiteouts = 55000, 50500, 5000, 500
	s := newStack(t, 1)
	ld, ud := s.lower(0)+"/big", s.upper+"/big"
	mknods := func(dir string, from, to int, mode uint32) error {
		for i := from; i < to; i++ {
			if err := unix.Mknod(fmt.Sprintf("%s/n%d", dir, i), mode, 0); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range []string{ld, ud} {
		if err := unix.Mkdir(p, 0755); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- mknods(ld, 0, lowerN, unix.S_IFREG|0644) }()
	err := mknods(ud, lowerN-overlap, lowerN-overlap+upperN, unix.S_IFREG|0644)
	if err2 := <-errc; err == nil {
		err = err2
	}
	if err == nil {
		err = mknods(ud, 0, whiteouts, unix.S_IFCHR)
	}
	if err != nil {
		t.Fatal(err)
	}
	fs := s.mount()
	d, _ := mustWalk(t, fs, "big")
	start := time.Now()
	h, _ := fs.OpenDir(d)
	ents, err := fs.ReadDir(h, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	want := lowerN - overlap + upperN - whiteouts
	if want != 100000 || len(ents) != want {
		t.Fatalf("listing has %d entries, want %d", len(ents), want)
	}
	seen := make(map[string]bool, len(ents))
	for _, e := range ents {
		if seen[e.Name] {
			t.Fatalf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Kind != unix.S_IFREG {
			t.Fatalf("%s: kind %o", e.Name, e.Kind)
		}
	}
	for i := 0; i < lowerN-overlap+upperN; i++ {
		if seen[fmt.Sprintf("n%d", i)] == (i < whiteouts) {
			t.Fatalf("n%d: listed %v", i, seen[fmt.Sprintf("n%d", i)])
		}
	}
	// Reading on from offsets gives the same entries.
	for off := 0; off < len(ents); off += 4096 {
		after := uint64(0)
		if off > 0 {
			after = ents[off-1].Off
		}
		part, _ := fs.ReadDir(h, after, false)
		if len(part) != len(ents)-off || part[0].Name != ents[off].Name {
			t.Fatalf("ReadDir at offset %d: %d entries starting %q", off, len(part), part[0].Name)
		}
	}
	t.Logf("listed %d entries in %v", len(ents), took)
	if took > 10*time.Second {
		t.Fatalf("listing %d entries took %v", len(ents), took)
	}
}

// TestReadDirResumeAcrossHandles: a reader that goes on from an offset
// another handle produced, after the directory changed, sees every name
// that stayed exactly once (offsets are name cookies, not positions).
func TestReadDirResumeAcrossHandles(t *testing.T) {
	s := newStack(t, 1)
	var specs []string
	for i := 0; i < 200; i++ {
		specs = append(specs, fmt.Sprintf("d/n%03d=x", i))
	}
	build(t, s.lower(0), specs...)
	fs := s.mount()
	d, _ := mustWalk(t, fs, "d")
	h1, _ := fs.OpenDir(d)
	all, err := fs.ReadDir(h1, 0, true)
	if err != nil || len(all) != 200 {
		t.Fatalf("first listing: %d entries, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Off <= all[i-1].Off || all[i-1].Off < overlay.FirstCookie {
			t.Fatalf("offsets not increasing: %d then %d", all[i-1].Off, all[i].Off)
		}
	}
	half := all[:100]
	// The directory changes: names before and after the break go and come.
	wantErrno(t, "unlink", fs.Unlink(d, all[10].Name), 0)
	wantErrno(t, "unlink", fs.Unlink(d, all[150].Name), 0)
	for i := 0; i < 20; i++ {
		mustCreate(t, fs, d, fmt.Sprintf("new%d", i), objFile(0644))
	}
	h2, _ := fs.OpenDir(d)
	rest, err := fs.ReadDir(h2, half[len(half)-1].Off, false)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range append(append([]overlay.DirEntry(nil), half...), rest...) {
		seen[e.Name]++
	}
	for i, e := range all {
		if i == 10 || i == 150 {
			continue
		}
		if seen[e.Name] != 1 {
			t.Fatalf("%s listed %d times across the two handles", e.Name, seen[e.Name])
		}
	}
	if seen[all[150].Name] != 0 {
		t.Fatalf("%s was removed before the second handle read it, but is listed", all[150].Name)
	}
}
