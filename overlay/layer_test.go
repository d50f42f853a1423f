package overlay

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Paths below a layer's root of every length around maxRel, and far past
// PATH_MAX, reach the object through lstat, open, getxattr and longPath,
// with no descriptor left open; a component longer than maxRel (which no
// tree can have) is ENAMETOOLONG.
func TestLayerLongPaths(t *testing.T) {
	dir := t.TempDir()
	l, err := openLayer(dir, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)

	// Directories of names of varied lengths, so that cuts fall
	// everywhere, to well past PATH_MAX.
	var rels []string
	rel := ""
	for i := 0; len(rel) < 9000; i++ {
		name := strings.Repeat(string(rune('a'+i%26)), 1+(i*37)%250)
		rel = joinRel(rel, name)
		if err := l.mkdirForTest(rel); err != nil {
			t.Fatalf("mkdir at %d bytes: %v", len(rel), err)
		}
		if err := l.writeForTest(joinRel(rel, "f"), "x"); err != nil {
			t.Fatalf("write at %d bytes: %v", len(rel), err)
		}
		rels = append(rels, joinRel(rel, "f"))
	}
	fdsBefore := openFds(t)
	for _, r := range rels {
		var st unix.Stat_t
		if err := l.lstat(r, &st); err != nil || st.Size != 1 {
			t.Fatalf("lstat at %d bytes: size %d, %v", len(r), st.Size, err)
		}
		fd, err := l.open(r, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("open at %d bytes: %v", len(r), err)
		}
		unix.Close(fd)
		if _, err := l.getxattr(r, "user.none", nil); err != unix.ENODATA && err != unix.ENOTSUP {
			t.Fatalf("getxattr at %d bytes: %v", len(r), err)
		}
		p, done, err := l.longPath(r)
		if err != nil {
			t.Fatalf("longPath at %d bytes: %v", len(r), err)
		}
		if len(p) >= unix.PathMax {
			t.Fatalf("longPath at %d bytes gave a path of %d bytes", len(r), len(p))
		}
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatalf("lstat of longPath at %d bytes: %v", len(r), err)
		}
		done()
	}
	if after := openFds(t); after != fdsBefore {
		t.Fatalf("%d descriptors open before, %d after", fdsBefore, after)
	}
	var st unix.Stat_t
	if err := l.lstat(strings.Repeat("z", maxRel+1), &st); err != unix.ENAMETOOLONG {
		t.Fatalf("a component longer than maxRel: %v", err)
	}
}

func (l *Layer) mkdirForTest(rel string) error {
	fd, name, done, err := l.at(rel)
	if err != nil {
		return err
	}
	defer done()
	return unix.Mkdirat(fd, name, 0o755)
}

func (l *Layer) writeForTest(rel, content string) error {
	p, done, err := l.longPath(rel)
	if err != nil {
		return err
	}
	defer done()
	return os.WriteFile(p, []byte(content), 0o644)
}

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
