package difftest

import (
	"os"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// regressions are cases that once found a bug: fixed bugs must stay
// fixed. Cases of known, unfixed bugs carry KnownBug and are skipped
// (STRATA_DIFF_KNOWN=1 runs them, and they must fail until the fix).
var regressions = []Case{
	{
		Name:     "dirent-ino-after-forget",
		KnownBug: "readdir d_ino of a copied-up file after the kernel forgot its node is the upper inode, stat says the lower one",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: 1e18},
			{Layer: 0, Path: "d/f", Kind: KFile, Mode: 0644, Mtime: 1e18, Size: 1, Fill: 1},
		}},
		Ops: []Op{
			{Kind: OpChmod, Path: "d/f", Mode: 0600},
			{Kind: OpDropCaches},
		},
	},
	{
		Name:     "mknod-whiteout",
		KnownBug: "mknod c 0 0 succeeds (the kernel says EPERM) and leaves a whiteout in the upper layer",
		Layers:   &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMknod, Path: "x", Mode: unix.S_IFCHR | 0644},
		},
	},
	{
		Name:     "escaped-overlay-xattrs",
		KnownBug: "setxattr trusted.overlay.x through the mount gives EOPNOTSUPP; the kernel stores it as trusted.overlay.overlay.x",
		Layers:   &LayerSpec{Lowers: 1, Entries: []Entry{{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime}}},
		Ops: []Op{
			{Kind: OpSetxattr, Path: "d", Name: "trusted.overlay.x", Value: "v"},
		},
	},
	{
		Name:     "rename-dir-opaque",
		KnownBug: "an upper-only directory renamed into a merged directory does not get trusted.overlay.opaque=y as in the kernel",
		Layers:   &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMkdir, Path: "a", Mode: 0755},
			{Kind: OpRename, Path: "a", Path2: "b"},
		},
	},
	{
		Name:     "removexattr-copyup",
		KnownBug: "removexattr of an absent xattr copies a lower file up (breaking its hard links) before failing with ENODATA",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			{Kind: OpRemovexattr, Path: "f", Name: "user.absent"},
		},
	},
}

func TestRegress(t *testing.T) {
	mounttest.Require(t)
	for i := range regressions {
		c := &regressions[i]
		t.Run(c.Name, func(t *testing.T) {
			known := os.Getenv("STRATA_DIFF_KNOWN") == "1"
			if c.KnownBug != "" && !known {
				t.Skip("known bug: " + c.KnownBug)
			}
			r := NewRunner(t)
			if f := r.Run(c); f != nil {
				t.Errorf("%v\ncase:\n%#v", f, c)
			}
		})
	}
}
