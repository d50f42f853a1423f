package difftest

import (
	"strings"

	"golang.org/x/sys/unix"
)

// KnownBug is a reported, not yet fixed Strata bug. Random runs leave its
// differences out, or end a sequence when it shows, so that they go on
// finding other bugs; its regression case in regress_test.go is
// skipped. STRATA_DIFF_KNOWN=1 turns all of that off.
type KnownBug struct {
	ID      string
	Summary string
	// Line reports whether one difference line is this bug.
	Line func(line string) bool
	// Match reports whether a failure is this bug: a random sequence
	// ends there (the mounts have diverged).
	Match func(f *Failure) bool
	// Trigger reports whether an operation (and its results) may have
	// set the bug off; from then on, TaintedLine excuses difference
	// lines in the rest of the sequence.
	Trigger     func(op Op, rs, rk Result) bool
	TaintedLine func(line string) bool
}

// KnownBugs is the list; remove an entry when the bug is fixed.
var KnownBugs = []KnownBug{
	{
		ID: "dirent-ino-after-forget",
		Summary: "readdir's d_ino of a copied-up object is its upper inode number once the kernel has forgotten " +
			"the node (memory pressure, drop_caches, remount), while stat reports the number kept from the lower layer",
		Line: func(l string) bool { return strings.HasPrefix(diffSide(l, ": readdir d_ino "), "strata") },
	},
	{
		ID:      "mknod-whiteout",
		Summary: "mknod of a character device 0/0 succeeds and writes a whiteout into the upper layer; the kernel refuses it with EPERM",
		Match: func(f *Failure) bool {
			return f.Kind == "errno" && f.Op.Kind == OpMknod && f.Op.Mode&unix.S_IFMT == unix.S_IFCHR && f.Op.Dev == 0
		},
	},
	{
		ID: "escaped-overlay-xattrs",
		Summary: "trusted.overlay.* xattrs set through the mount are refused with EOPNOTSUPP; the kernel (6.7+) accepts them " +
			"and stores them escaped as trusted.overlay.overlay.*",
		Match: func(f *Failure) bool {
			return f.Kind == "errno" && (f.Op.Kind == OpSetxattr || f.Op.Kind == OpRemovexattr) &&
				strings.HasPrefix(f.Op.Name, "trusted.overlay.")
		},
	},
	{
		ID: "rename-dir-opaque",
		Summary: "a directory that exists only in the upper layer and is renamed into a merged directory is not made " +
			"opaque unless a lower layer shows the new name; the kernel always makes it opaque",
		Line: func(l string) bool {
			return strings.HasSuffix(l, "'s upper has dir, kernel's upper has opaque dir") ||
				strings.HasSuffix(l, "'s upper has opaque dir, kernel's upper has dir")
		},
	},
	{
		ID:      "removexattr-copyup",
		Summary: "removexattr of an xattr that a lower object does not have copies the object up before failing with ENODATA; the kernel checks the lower object first and copies nothing",
		Trigger: func(op Op, rs, rk Result) bool {
			return op.Kind == OpRemovexattr && rs.Errno == unix.ENODATA
		},
		TaintedLine: func(l string) bool {
			return strings.Contains(l, ": only in strata's upper") || strings.Contains(l, ": only in kernel's upper") ||
				strings.Contains(l, ": nlink: ")
		},
	},
}

// knownLine returns the known bug a difference line belongs to, or nil;
// taints are the IDs of the bugs triggered so far.
func knownLine(l string, taints map[string]bool) *KnownBug {
	for i := range KnownBugs {
		b := &KnownBugs[i]
		if b.Line != nil && b.Line(l) || taints[b.ID] && b.TaintedLine != nil && b.TaintedLine(l) {
			return b
		}
	}
	return nil
}

// KnownFailure returns the known bug a failure belongs to, or nil.
func KnownFailure(f *Failure) *KnownBug {
	for i := range KnownBugs {
		if b := &KnownBugs[i]; b.Match != nil && f.Op != nil && b.Match(f) {
			return b
		}
	}
	return nil
}

// diffSide returns the side named in a difference line of the form
// `"path": SIDE` + rest, or "".
func diffSide(l, rest string) string {
	i := strings.Index(l, rest)
	if i < 0 {
		return ""
	}
	j := strings.LastIndex(l[:i], "\": ")
	if j < 0 {
		return ""
	}
	return l[j+3 : i]
}
