package difftest

import (
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// regressions are cases that once found a bug: fixed bugs must stay
// fixed. Cases of known, unfixed bugs carry KnownBug: they still run,
// and are skipped with that reason while they fail; once one passes, the
// test says so, and KnownBug (and the bug's KnownBugs entry in known.go)
// must go. STRATA_DIFF_KNOWN=1 reports their failures instead.
var regressions = []Case{
	{
		Name: "dirent-ino-after-forget",
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
		Name:   "mknod-whiteout",
		Layers: &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMknod, Path: "x", Mode: unix.S_IFCHR | 0644},
		},
	},
	{
		Name: "escaped-overlay-xattrs",
		Layers: &LayerSpec{Lowers: 2, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 1, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 1, Path: "d/below", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 1},
		}},
		Ops: []Op{
			{Kind: OpSetxattr, Path: "d", Name: "trusted.overlay.x", Value: "v"},
			// Escaped: d must not become opaque.
			{Kind: OpSetxattr, Path: "d", Name: "trusted.overlay.opaque", Value: "y"},
			{Kind: OpRemount},
			{Kind: OpRemovexattr, Path: "d", Name: "trusted.overlay.x"},
		},
		Cross: true,
		Ops2: []Op{
			{Kind: OpRemovexattr, Path: "d", Name: "trusted.overlay.opaque"},
		},
	},
	{
		Name: "escaped-overlay-xattrs-userxattr",
		Layers: &LayerSpec{Lowers: 2, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 1, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 1, Path: "d/below", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 1},
		}},
		UserXattr: true,
		Ops: []Op{
			{Kind: OpSetxattr, Path: "d", Name: "user.overlay.x", Value: "v"},
			{Kind: OpSetxattr, Path: "d", Name: "user.overlay.opaque", Value: "y"},
			{Kind: OpSetxattr, Path: "d", Name: "trusted.overlay.opaque", Value: "y"},
			{Kind: OpRemount},
			{Kind: OpRemovexattr, Path: "d", Name: "user.overlay.x"},
		},
		Cross: true,
		Ops2: []Op{
			{Kind: OpRemovexattr, Path: "d", Name: "user.overlay.opaque"},
		},
	},
	{
		Name:   "rename-dir-opaque",
		Layers: &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMkdir, Path: "a", Mode: 0755},
			{Kind: OpRename, Path: "a", Path2: "b"},
		},
	},
	{
		Name: "removexattr-copyup",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			{Kind: OpRemovexattr, Path: "f", Name: "user.absent"},
		},
	},
	{
		Name: "rmdir-notempty-copyup",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "p", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "p/d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "p/d/f", Kind: KFile, Mode: 0644, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpRmdir, Path: "p/d"},
		},
	},
	{
		Name: "rename-exchange-exdev-copyup",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpRename, Path: "f", Path2: "d", Flags: unix.RENAME_EXCHANGE},
		},
	},
	{
		Name: "rename-notempty-copyup",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "p", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "p/d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "p/d/f", Kind: KFile, Mode: 0644, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpMkdir, Path: "n", Mode: 0755},
			{Kind: OpRename, Path: "n", Path2: "p/d"},
		},
	},
	{
		Name: "copyup-stale-nlink",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			// Any operation: the tree walk after it makes the kernel use
			// plain READDIR (not READDIRPLUS, which would refresh the
			// attributes) for the walk after the next one.
			{Kind: OpUnlink, Path: "absent"},
			{Kind: OpOpenClose, Path: "f", Flags: unix.O_WRONLY},
		},
	},
	{
		// The same with the copy-up done: a write.
		Name: "copyup-stale-nlink-write",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "absent"},
			{Kind: OpWrite, Path: "f", Off: 1, Len: 1, Fill: 1},
		},
	},
	{
		Name: "copyup-stale-nlink-fstat",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
			{Layer: 0, Path: "h", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "absent"}, // see copyup-stale-nlink
			{Kind: OpOpen, Path: "f", Flags: unix.O_RDWR},
			{Kind: OpFdStat},
			{Kind: OpFdWrite, Off: 1, Len: 1, Fill: 1},
			{Kind: OpFdStat},
		},
	},
	{
		Name: "copyup-stale-nlink-setxattr",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
			{Layer: 0, Path: "g", Kind: KHardlink, Target: "f"},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "absent"},
			{Kind: OpSetxattr, Path: "f", Name: "user.a", Value: "1", Flags: unix.XATTR_REPLACE},
		},
	},
	{
		Name: "setgid-mkdir-over-whiteout",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "s", Kind: KDir, Mode: 02755, GID: 1000, Mtime: plainTime},
			{Layer: 0, Path: "s/x", Kind: KFile, Mode: 0644, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "s/x"},
			{Kind: OpMkdir, Path: "s/x", Mode: 0755},
		},
	},
	{
		Name: "setgid-create-over-whiteout",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "s", Kind: KDir, Mode: 02755, GID: 1000, Mtime: plainTime},
			{Layer: 0, Path: "s/x", Kind: KFile, Mode: 0644, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "s/x"},
			{Kind: OpWrite, Path: "s/x", Mode: 0644},
		},
	},
	{
		Name:   "fstat-removed-dir",
		Layers: &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMkdir, Path: "d", Mode: 0755},
			{Kind: OpOpen, Path: "d"},
			{Kind: OpRmdir, Path: "d"},
			{Kind: OpFdStat},
		},
	},
	{
		Name:   "fstat-removed-fifo",
		Layers: &LayerSpec{Lowers: 1},
		Ops: []Op{
			{Kind: OpMknod, Path: "p", Mode: unix.S_IFIFO | 0644},
			{Kind: OpOpen, Path: "p"},
			{Kind: OpUnlink, Path: "p"},
			{Kind: OpFdStat},
		},
	},
	{
		Name: "fstat-removed-file",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "lf", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 5, Fill: 3},
		}},
		Ops: []Op{
			{Kind: OpWrite, Path: "nf", Len: 3, Mode: 0644},
			{Kind: OpOpen, Path: "nf"},
			{Kind: OpUnlink, Path: "nf"},
			{Kind: OpFdStat},
			{Kind: OpOpen, Path: "lf", Slot: 1},
			{Kind: OpUnlink, Path: "lf"},
			{Kind: OpFdStat, Slot: 1},
			{Kind: OpFdRead, Slot: 1},
		},
	},
	{
		// The kernel's own readdir lists "e" with its upper inode number
		// here (see "inode-numbers" in DIFFERENCES.md); Strata must not.
		Name: "dino-link-in-new-dir",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "p", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "p/f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 13, Fill: 5},
		}},
		Ops: []Op{
			{Kind: OpMkdir, Path: "n", Mode: 0755},
			{Kind: OpRename, Path: "p/f", Path2: "n/d"},
			{Kind: OpLink, Path: "n/d", Path2: "n/e"},
			{Kind: OpDropCaches},
			{Kind: OpRemount},
		},
	},
	{
		// With userxattr a symlink's copy cannot record its lower inode
		// number (no user.* xattrs on symlinks): it takes the upper one
		// at once, in readdir too, rather than after drop_caches.
		Name: "userxattr-symlink-ino",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KSymlink, Mode: 0777, Mtime: plainTime, Target: "c/d"},
		}},
		UserXattr: true,
		Ops: []Op{
			{Kind: OpRename, Path: "f", Path2: "b"},
			{Kind: OpDropCaches},
		},
	},
	{
		// The same copy-up made by lchown, which leaves the directory's
		// listing as it was: the kernel's cached listing must not keep
		// the old number.
		Name: "userxattr-symlink-ino-chown",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "d/s", Kind: KSymlink, Mode: 0777, Mtime: plainTime, Target: "x"},
			{Layer: 0, Path: "d/x", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 3, Fill: 1},
		}},
		UserXattr: true,
		Ops: []Op{
			{Kind: OpChmod, Path: "d/x", Mode: 0600},
			{Kind: OpChown, Path: "d/s", UID: 7, GID: 7, Flags: FlagNoFollow},
			{Kind: OpDropCaches},
		},
	},
	{
		// Writes and truncates by a process without CAP_FSETID drop the
		// set-id bits; the kernel leaves that to Strata
		// (FUSE_HANDLE_KILLPRIV_V2), whose own writes, as root, would
		// keep them.
		Name: "unprivileged-write-drops-setid",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "w", Kind: KFile, Mode: 06777, UID: 1000, GID: 1000, Mtime: plainTime, Size: 9, Fill: 2},
			{Layer: 0, Path: "t", Kind: KFile, Mode: 06777, UID: 1000, GID: 1000, Mtime: plainTime, Size: 9, Fill: 3},
			{Layer: 0, Path: "g", Kind: KFile, Mode: 02766, UID: 1000, GID: 1000, Mtime: plainTime, Size: 9, Fill: 4},
			{Layer: 0, Path: "r", Kind: KFile, Mode: 06777, UID: 1000, GID: 1000, Mtime: plainTime, Size: 9, Fill: 5},
		}},
		Ops: []Op{
			{Kind: OpWrite, Path: "w", Off: 2, Len: 3, Fill: 7, As: 12345},
			{Kind: OpTruncate, Path: "t", Off: 4, As: 12345},
			{Kind: OpWrite, Path: "g", Off: 2, Len: 3, Fill: 7, As: 12345},
			{Kind: OpWrite, Path: "r", Off: 2, Len: 3, Fill: 7},
		},
	},
	{
		// An allowed difference (DIFFERENCES.md, kernel-failed-rename-opaque).
		Name: "kernel-failed-rename-opaque",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "deep", Kind: KDir, Mode: 0755, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpMkdir, Path: "deep/#%&", Mode: 02775},
			{Kind: OpMkdir, Path: "deep/#%&/new1", Mode: 0755},
			{Kind: OpMkdir, Path: "deep/a", Mode: 0700},
			{Kind: OpRename, Path: "deep/a", Path2: "deep/#%&"},
		},
	},
	{
		// An allowed difference (DIFFERENCES.md, kernel-estale).
		Name: "kernel-estale-symlink-link-rename",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "e", Kind: KSymlink, Mode: 0777, Mtime: plainTime, Target: "missing"},
		}},
		UserXattr: true,
		Ops: []Op{
			{Kind: OpLink, Path: "e", Path2: "deep"},
			{Kind: OpRename, Path: "e", Path2: "deep"},
		},
	},
	{
		// An allowed difference (DIFFERENCES.md): the kernel says EEXIST.
		Name: "unlinked-lower-fd-metadata",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 7, Fill: 4},
			{Layer: 0, Path: "a", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 13, Fill: 5},
		}},
		Ops: []Op{
			{Kind: OpOpen, Path: "f"},
			{Kind: OpRename, Path: "a", Path2: "f"},
			{Kind: OpFdChmod, Mode: 0600},
			{Kind: OpFdStat},
		},
	},
	{
		Name: "setgid-mkdir",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "s", Kind: KDir, Mode: 02755, GID: 1000, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpMkdir, Path: "s/d", Mode: 0755},
			{Kind: OpWrite, Path: "s/f", Mode: 0644, Len: 1, Fill: 1},
			{Kind: OpMkdir, Path: "s/u", Mode: 0755, As: 1000},
			{Kind: OpWrite, Path: "s/d/g", Mode: 02755, As: 12345},
		},
	},
	{
		// fchown, fchmod and futimens of a removed directory still open:
		// kernel overlayfs applies them to the upper directory its open
		// file keeps (found by a random run, seed 15818).
		Name: "removed-dir-fd-setattr",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "a", Kind: KDir, Mode: 0755, Mtime: 1234567890000000000},
		}},
		Ops: []Op{
			{Kind: OpMkdir, Path: "a/new1", Mode: 0700},
			{Kind: OpOpen, Path: "a/new1"},
			{Kind: OpRmdir, Path: "a/new1"},
			{Kind: OpFdChown, GID: 12345},
			{Kind: OpFdChmod, Mode: 0750},
			{Kind: OpFdStat},
		},
	},
	{
		// The same for a lower fifo (seed 12425): removed, its attributes
		// change through a descriptor still open.
		Name: "removed-lower-fifo-fd-setattr",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "a", Kind: KDir, Mode: 0755, Mtime: 1234567890000000000},
			{Layer: 0, Path: "a/d", Kind: KFifo, Mode: 0644, Mtime: 1234567890000000000},
		}},
		Ops: []Op{
			{Kind: OpOpen, Path: "a/d", Flags: 0x202, Slot: 1},
			{Kind: OpUnlink, Path: "a/d"},
			{Kind: OpFdChown, GID: 1000, Slot: 1},
			{Kind: OpFdStat, Slot: 1},
		},
	},
	{
		// A whiteout in the only layer of a directory, listed through a
		// descriptor: the kernel passes it through (leaked-lower-whiteouts),
		// Strata does not (seed 6086).
		Name: "leaked-whiteout-fd-readdir",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: 1234567890000000000},
			{Layer: 0, Path: "d/f", Kind: KFile, Mode: 0644, Mtime: 1234567890000000000, Size: 5000, Fill: 125},
			{Layer: 0, Path: "d/a", Kind: KWhiteout},
		}},
		Ops: []Op{
			{Kind: OpOpen, Path: "d", Slot: 1},
			{Kind: OpFdReaddir, Slot: 1},
		},
	},
	{
		// fsetxattr(XATTR_REPLACE) of a missing attribute through a
		// descriptor of a removed lower file: ENODATA on Strata, the
		// kernel's copy-up by name says EEXIST (seed 17806).
		Name: "unlinked-lower-fd-setxattr-replace",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: 1234567890000000000},
			{Layer: 0, Path: "d/b", Kind: KFile, Mode: 0644, Mtime: 1234567890000000000, Size: 100, Fill: 56},
		}},
		Ops: []Op{
			{Kind: OpOpen, Path: "d/b", Slot: 1},
			{Kind: OpUnlink, Path: "d/b"},
			{Kind: OpFdSetxattr, Name: "user.new", Value: "qqqqqqqqq", Flags: 0x2, Slot: 1},
		},
	},
	{
		// Data written and not sent to the daemon yet (the writeback
		// cache) was past the end of the file for SEEK_DATA: ENXIO
		// (found with the file's name removed; it does not matter).
		Name: "seek-data-unsent-write",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "deep", Kind: KDir, Mode: 0755, Mtime: plainTime, Opaque: true},
			{Layer: 0, Path: "deep/f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 70000, Fill: 33},
		}},
		UserXattr: true,
		Ops: []Op{
			{Kind: OpOpenClose, Path: "deep/f", Flags: unix.O_TRUNC},
			{Kind: OpOpen, Path: "deep/f", Flags: unix.O_RDWR},
			{Kind: OpUnlink, Path: "deep/f"},
			{Kind: OpFdWrite, Off: 4096, Len: 100, Fill: 161},
			{Kind: OpFdSeek, Flags: unix.SEEK_HOLE},
			{Kind: OpFdSeek, Flags: unix.SEEK_DATA},
		},
	},
	{
		// A failed copy_file_range opened its destination for
		// writing, and the kernel copied that lower hard link up.
		Name: "copy-range-failed-into-lower-link",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "d/fifo", Kind: KFifo, Mode: 0644, Mtime: plainTime},
			{Layer: 0, Path: "d/f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 1, Fill: 124},
			{Layer: 0, Path: "d/e", Kind: KHardlink, Target: "d/f"},
		}},
		Ops: []Op{
			{Kind: OpCopyRange, Path: "d/fifo", Path2: "d/e", Off: 1 << 20, Len: 9000},
			{Kind: OpCopyRange, Path: "d/f", Path2: "d/e", Off: 1, Len: 10},
			{Kind: OpCopyRange, Path: "d/f", Path2: "d/f", Len: 1},
			{Kind: OpCopyRange, Path: "d/e", Path2: "d/f", Off2: 5000, Len: 100},
		},
	},
	{
		// Not a bug found: unnamed files (O_TMPFILE) in every run, made
		// in a lower directory, linked over a whiteout, into another
		// directory, onto a taken name, never, and not linkable.
		Name: "tmpfile-names",
		Layers: &LayerSpec{Lowers: 1, Entries: []Entry{
			{Layer: 0, Path: "d", Kind: KDir, Mode: 0755, Mtime: plainTime},
			{Layer: 0, Path: "d/f", Kind: KFile, Mode: 0644, Mtime: plainTime, Size: 10, Fill: 7},
			{Layer: 0, Path: "e", Kind: KDir, Mode: 0755, Mtime: plainTime},
		}},
		Ops: []Op{
			{Kind: OpUnlink, Path: "d/f"},
			{Kind: OpTmpfile, Path: "d", Path2: "d/f", Len: 5000, Fill: 9, Mode: 0640},
			{Kind: OpTmpfile, Path: "d", Path2: "e/g", Off: 70000, Len: 10, Fill: 3, Mode: 0600},
			{Kind: OpTmpfile, Path: "e", Path2: "d/f", Len: 1, Fill: 4, Mode: 0644},
			{Kind: OpTmpfile, Path: "e", Len: 100, Fill: 5, Mode: 0644},
			{Kind: OpTmpfile, Path: "e", Path2: "e/x", Flags: unix.O_EXCL, Len: 1, Fill: 6, Mode: 0644},
			{Kind: OpLink, Path: "e/g", Path2: "e/h"},
			{Kind: OpRemount},
			{Kind: OpOpen, Path: "e/h", Flags: unix.O_RDONLY},
			{Kind: OpFdRead},
			{Kind: OpFdStat},
		},
	},
}

func TestRegress(t *testing.T) {
	mounttest.Require(t)
	for i := range regressions {
		c := &regressions[i]
		t.Run(c.Name, func(t *testing.T) {
			r := NewRunner(t)
			report := r.ShowKnown
			if c.KnownBug != "" {
				r.ShowKnown = true // the bug must show
			}
			f := r.Run(c)
			switch {
			case c.KnownBug != "" && f == nil:
				t.Errorf("known bug %q: the case passes now; remove its KnownBug and its entry in KnownBugs (known.go)", c.Name)
			case c.KnownBug != "" && !report:
				t.Skipf("known bug: %s\n(still fails: %v)", c.KnownBug, f)
			case f != nil:
				t.Errorf("%v\ncase:\n%#v", f, c)
			}
		})
	}
}
