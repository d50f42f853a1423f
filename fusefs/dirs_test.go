package fusefs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv(mapperEnv) != "" {
		os.Exit(runMapper())
	}
	os.Exit(mounttest.RunTests(m))
}

// TestReadDirPlusAsksOnlyListingLayers lists a directory merged from two
// lower layers through a mount: the first listing of a directory is a
// READDIRPLUS, which looks up every name, and a name the top layer's
// listing lacks must not be searched for in the top layer. The listing and
// the attributes it brings must still be the merged ones.
func TestReadDirPlusAsksOnlyListingLayers(t *testing.T) {
	s := mounttest.NewStack(t, 2)
	top, bottom := filepath.Join(s.Lowers[0], "d"), filepath.Join(s.Lowers[1], "d")
	const only = 40 // names only the bottom layer has
	var want []string
	for i := 0; i < only; i++ {
		name := fmt.Sprintf("b%02d", i)
		mounttest.WriteFile(t, filepath.Join(bottom, name), name)
		want = append(want, name)
	}
	mounttest.WriteFile(t, filepath.Join(bottom, "a"), "from the bottom")
	mounttest.WriteFile(t, filepath.Join(top, "a"), "top")
	mounttest.WriteFile(t, filepath.Join(bottom, "gone"), "hidden")
	if err := unix.Mknod(filepath.Join(top, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err) // whiteout
	}
	want = append(want, "a")
	sort.Strings(want)

	srv := s.Mount(t)
	d := filepath.Join(s.Mnt, "d")
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listing %v, want %v", got, want)
	}
	for _, name := range got {
		st, err := os.Lstat(filepath.Join(d, name))
		if err != nil {
			t.Fatal(err)
		}
		wantSize := int64(len(name))
		if name == "a" {
			wantSize = int64(len("top"))
		}
		if st.Size() != wantSize {
			t.Errorf("%s: size %d, want %d", name, st.Size(), wantSize)
		}
	}
	if skipped := srv.FS.Stats().ProbesSkipped; skipped < only {
		t.Errorf("the listing spared %d lookups in the top layer, want at least %d", skipped, only)
	}
}
