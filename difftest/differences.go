package difftest

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Difference is one documented, allowed difference between Strata and
// the kernel's overlayfs (or a limit of what the tester compares). Every
// entry says how the tester deals with it; DIFFERENCES.md explains the
// same list for people.
type Difference struct {
	ID       string
	Kernel   string // what the kernel does
	Strata   string // what Strata does
	Why      string // why the difference is allowed
	Handling string // how the tester accounts for it
	// AllowResult, when set, accepts differing results of one operation
	// (the tester then closes the operation's descriptor on both
	// mounts, since they now differ behind it).
	AllowResult func(op Op, rs, rk Result) bool
}

// Differences is the complete list. TestDifferencesDocumented checks that
// DIFFERENCES.md has a section for each ID.
var Differences = []Difference{
	{
		ID:       "inode-numbers",
		Kernel:   "st_ino of merged objects comes from the top-most real layer, or from the origin after copy-up (same file system); d_ino is translated to match",
		Strata:   "its own mapping: the same scheme, but the numbers of new upper objects are different real inodes in the two upper layers anyway",
		Why:      "the two stacks live in different directories: real inode numbers differ whatever the implementation",
		Handling: "inode numbers are never compared between mounts; within Strata's mount readdir's d_ino must equal st_ino (CmpOpts.DirentInoA); the kernel's own mount does not always manage that (a hard link made in an impure directory can list its upper inode number while stat reports the origin's), so it is not held to it",
	},
	{
		ID:       "atime-ctime-dirsize",
		Kernel:   "atime and ctime are set by the clock, directory sizes are the real directories' sizes",
		Strata:   "the same, but at other instants and for other real directories",
		Why:      "not comparable between two runs",
		Handling: "atime, ctime and directory st_size and st_nlink are never compared",
	},
	{
		ID:       "clock-mtimes",
		Kernel:   "writes, truncates and entry changes set mtime from the clock",
		Strata:   "the same, a few microseconds apart",
		Why:      "two mounts cannot write at the same nanosecond",
		Handling: "generators set explicit times far from now (2001-2020, 1960s, after 2100); an mtime within 24h of now is \"recent\" and matches any other recent mtime, every other mtime must be equal to the nanosecond; views of the same real files (end checks, cross mounts) compare exactly",
	},
	{
		ID:       "leaked-lower-whiteouts",
		Kernel:   "readdir of a directory that is not merged (it exists in one layer only, or is opaque) passes the real directory through, whiteouts included: they are listed as DT_CHR entries that lstat then reports as ENOENT",
		Strata:   "never lists whiteouts",
		Why:      "the kernel's entries are phantoms that no operation can reach; listing them is an artifact of its readdir fast path, not a semantic",
		Handling: "entries of a kernel tree with d_type DT_CHR whose lstat fails with ENOENT are dropped before comparing (dropLeakedWhiteouts), and so are such names in the listing read through a descriptor (OpFdReaddir)",
	},
	{
		ID:       "oci-whiteouts",
		Kernel:   "reads only its own format: in an OCI layer, .wh.NAME and .wh..wh..opq are ordinary files and hide nothing",
		Strata:   "also reads the OCI format in lower layers: the markers hide what they stand for and are never shown",
		Why:      "Strata is meant to mount container image layers as extracted",
		Handling: "OCI cases give the kernel a copy of the layers converted to its format (OCIToKernel); names starting with .wh. are never generated, since Strata reads them as markers by design",
	},
	{
		ID:       "umask",
		Kernel:   "applies the caller's umask",
		Strata:   "strata.Mount sets the umask of its process to 0 (modes arrive from the kernel with the caller's umask applied); the in-process tests share that process",
		Why:      "a property of in-process mounting, not of the file systems",
		Handling: "operations run with umask 0 on both mounts",
	},
	{
		ID:       "overlay-xattrs",
		Kernel:   "writes trusted.overlay.origin, impure and others into the upper layer",
		Strata:   "writes trusted.overlay.strata.ino and no origin/impure",
		Why:      "private bookkeeping of each implementation; both hide trusted.overlay.* from users of the mount",
		Handling: "the raw upper layers are compared on paths, types, whiteouts and trusted.overlay.opaque only; everything visible is compared through kernel mounts of each upper",
	},
	{
		ID:       "fuse-dir-seek",
		Kernel:   "lseek with SEEK_DATA or SEEK_HOLE on a directory fails with EINVAL (overlayfs' directory llseek knows only SEEK_SET and SEEK_CUR)",
		Strata:   "the FUSE module answers it in the kernel with the generic llseek (offset 0, or ENXIO past the size); Strata never sees the call",
		Why:      "decided by the FUSE kernel module, not by Strata",
		Handling: "OpFdSeek on a directory is not compared",
	},
	{
		ID:     "fuse-seek-holes",
		Kernel: "lseek with SEEK_DATA or SEEK_HOLE on a regular file reports the real file's holes",
		Strata: "on a writable mount, reports the whole file as data and the one hole at its end, as the FUSE kernel module answers when the daemon declines (fuse-overlayfs does too): the kernel asks the daemon without sending it the data it holds (the writeback cache's pages, pages written through shared mappings), so the daemon's real file may have holes where the file has data",
		Why:    "POSIX allows a file system to report every byte as data; reporting a hole where there is data loses it in sparse copies",
		Handling: "for OpFdSeek on a regular file, Strata's answer is accepted when it is the one with no holes (SEEK_DATA: the offset itself; SEEK_HOLE: the end of the file) and the kernel's agrees with it " +
			"(SEEK_DATA: a later offset, or ENXIO for a file that is a hole from there on; SEEK_HOLE: an offset between the one asked for and Strata's end of the file)",
		AllowResult: func(op Op, rs, rk Result) bool {
			var sOff, kOff int64
			if op.Kind != OpFdSeek || rs.Errno != 0 {
				return false
			}
			if _, err := fmt.Sscanf(rs.Data, "offset %d", &sOff); err != nil {
				return false
			}
			kernelAt := rk.Errno == 0
			if kernelAt {
				if _, err := fmt.Sscanf(rk.Data, "offset %d", &kOff); err != nil {
					return false
				}
			}
			switch op.Flags {
			case unix.SEEK_DATA:
				return sOff == op.Off && (!kernelAt && rk.Errno == unix.ENXIO || kernelAt && kOff >= op.Off)
			case unix.SEEK_HOLE:
				return kernelAt && op.Off <= kOff && kOff <= sOff
			}
			return false
		},
	},
	{
		ID:       "fuse-truncate-same-size",
		Kernel:   "truncate(2) of a file to the size it has sets its mtime (ext4 updates the times of any truncate that does not shrink the file)",
		Strata:   "with the writeback cache (the default) the FUSE kernel module keeps regular files' times itself and sends a new mtime only when the size changes; it never takes one from the daemon, so the file keeps its mtime, on the mount and in the upper layer alike",
		Why:      "decided by the FUSE kernel module; POSIX asks for new times only when the size changes",
		Handling: "after a truncate(2) by path that leaves a regular file's size as it was on the kernel's mount and succeeds on both, the tester sets the file's times to one explicit value on both mounts",
	},
	{
		ID:     "unlinked-lower-fd-metadata",
		Kernel: "fchmod, fchown, futimens and fsetxattr through a descriptor of a lower file whose name was removed or replaced since fail with EEXIST: the copy-up they need tries to create the file under its old name, where a whiteout or the new file is",
		Strata: "copies the file up anonymously (it has no name any more) and succeeds",
		Why:    "the kernel's result is an artifact of its copy-up by name; POSIX expects the change to succeed",
		Handling: "that result pair (Strata succeeds, the kernel says EEXIST) is accepted for those operations (and ENODATA from Strata for an fsetxattr with XATTR_REPLACE of an attribute the file lacks), and the " +
			"descriptor is closed on both mounts",
		AllowResult: func(op Op, rs, rk Result) bool {
			if rk.Errno != unix.EEXIST {
				return false
			}
			switch op.Kind {
			case OpFdChmod, OpFdChown, OpFdUtimes:
				return rs.Errno == 0
			case OpFdSetxattr:
				// Replacing an attribute the file does not have fails
				// with ENODATA, as it should.
				return rs.Errno == 0 || rs.Errno == unix.ENODATA && op.Flags&unix.XATTR_REPLACE != 0
			}
			return false
		},
	},
	{
		ID:       "kernel-resurrects-removed",
		Kernel:   "fchmod, fchown, futimens and fsetxattr through a descriptor of a lower special file (a fifo, say) whose name was removed since copy it up under its old name: the removed name is back in the merged view",
		Strata:   "changes the attributes of the open object; the name stays removed",
		Why:      "a change made through a descriptor does not create names; the kernel's result is an artifact of its copy-up by name (for regular files the same copy-up fails with EEXIST, see unlinked-lower-fd-metadata)",
		Handling: "when such an operation succeeds on both mounts, the name was gone from both before it and the kernel's mount shows it after, the tester removes it again on the kernel's mount and closes the descriptor on both mounts",
	},
	{
		ID:       "copy-up-on-write",
		Kernel:   "copies a lower file up when it is opened for writing, even if nothing is ever written",
		Strata:   "copies it up at its first change (write, truncate, fallocate, metadata change): the kernel does not tell a FUSE daemon about opens it answers ENOSYS to, and that saves a round trip on every open",
		Why:      "an open that changes nothing leaves the merged view as it was, in both; what remains visible is the copy itself (the kernel's upper layer holds an identical copy and its parent directories) and the nlink of a lower hard link, which the kernel's copy-up breaks at once and Strata's at the first change",
		Handling: "a path opened for writing without O_TRUNC on both mounts is noted; for it, nlink differences, fstat results that differ only in nlink, and directories or files that only one upper layer holds at or above it are accepted; content, owners, modes, times and xattrs are still compared",
	},
	{
		ID:       "unlinked-lower-nlink",
		Kernel:   "fstat through a descriptor of a lower file whose name was removed since reports the lower file's nlink: the lower file is still there",
		Strata:   "reports one link less, the count the kernel's FUSE module keeps for the inode after the unlink (0 for a file with one name), as for any file whose name was removed",
		Why:      "the name is gone from the merged view; POSIX counts the names a file has",
		Handling: "for fstat, that result pair (equal but for Strata's nlink being the kernel's minus one) is accepted",
		AllowResult: func(op Op, rs, rk Result) bool {
			if op.Kind != OpFdStat || rs.Errno != 0 || rk.Errno != 0 {
				return false
			}
			ns, restS := splitNlink(rs.Data)
			nk, restK := splitNlink(rk.Data)
			return ns >= 0 && nk >= 1 && ns == nk-1 && restS == restK
		},
	},
	{
		ID:       "kernel-estale",
		Kernel:   "with userxattr, renaming one name of a hard-linked lower symlink over another of its names fails with ESTALE (the copied-up symlink cannot carry user.overlay.* xattrs, and the kernel cannot match it with its origin)",
		Strata:   "does what rename(2) does for two names of one file: nothing, successfully",
		Why:      "ESTALE is an artifact of the kernel's bookkeeping, not a semantic; POSIX says such a rename succeeds and changes nothing",
		Handling: "for rename, that result pair (Strata succeeds, the kernel says ESTALE) is accepted; both trees are then compared as usual",
		AllowResult: func(op Op, rs, rk Result) bool {
			return op.Kind == OpRename && rs.Errno == 0 && rk.Errno == unix.ESTALE
		},
	},
	{
		ID:       "kernel-failed-rename-opaque",
		Kernel:   "marks a directory being renamed opaque (trusted.overlay.opaque) before the rename itself, and leaves the mark when the rename then fails (ENOTEMPTY, for one)",
		Strata:   "checks first and changes nothing when a rename fails",
		Why:      "the mark on a directory with no lower part changes nothing anyone sees; a failed rename should change nothing",
		Handling: "a directory that was the source of a rename failing with the same errno on both mounts may be opaque in one upper layer and not in the other",
	},
	{
		ID:       "kernel-features",
		Kernel:   "redirect_dir, index, metacopy and xino defaults depend on the kernel's configuration",
		Strata:   "implements the behaviour with all of them off",
		Why:      "the oracle must be configured like the implementation under test",
		Handling: "kernel mounts pass redirect_dir=off,index=off,metacopy=off (redirect_dir=nofollow with userxattr, which refuses off)",
	},
}

// dropLeakedWhiteouts removes the phantom entries of the
// "leaked-lower-whiteouts" difference from a kernel tree.
func dropLeakedWhiteouts(t Tree) {
	for p, o := range t {
		if o.DType == unix.DT_CHR && o.Type == 0 && o.Err == "lstat: ENOENT" {
			delete(t, p)
		}
	}
}

// splitNlink takes the nlink out of an fstat result: the number (-1 if
// there is none) and the rest.
func splitNlink(data string) (int, string) {
	f := strings.Fields(data)
	n := -1
	for i, x := range f {
		if v, ok := strings.CutPrefix(x, "nlink="); ok {
			if k, err := strconv.Atoi(v); err == nil {
				n = k
			}
			f[i] = ""
		}
	}
	return n, strings.Join(f, " ")
}
