package difftest

import "strings"

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
	Trigger     func(c *Case, op Op, rs, rk Result) bool
	TaintedLine func(line string) bool
}

// KnownBugs is the list; remove an entry when the bug is fixed.
var KnownBugs = []KnownBug{
	// A fixed bug leaves this list; its case in regress_test.go then
	// checks the fix.
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

// allowedResult returns the documented difference that accepts the two
// results of op, or nil.
func allowedResult(op Op, rs, rk Result) *Difference {
	for i := range Differences {
		if d := &Differences[i]; d.AllowResult != nil && d.AllowResult(op, rs, rk) {
			return d
		}
	}
	return nil
}
