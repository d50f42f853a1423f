package difftest

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// ShrinkBudget bounds the effort of one Shrink.
type ShrinkBudget struct {
	Runs int           // at most this many re-runs
	Time time.Duration // and no longer than this
}

// DefaultShrinkBudget is from STRATA_DIFF_SHRINK_RUNS (default 150) and
// STRATA_DIFF_SHRINK_SECONDS (default 90).
func DefaultShrinkBudget() ShrinkBudget {
	return ShrinkBudget{
		Runs: envInt("STRATA_DIFF_SHRINK_RUNS", 150),
		Time: time.Duration(envInt("STRATA_DIFF_SHRINK_SECONDS", 90)) * time.Second,
	}
}

// Shrink looks for a smaller case that fails like c did (same
// Signature): fewer operations (delta debugging over both phases), no
// cross phase if it is not needed, and fewer layer entries. Every try
// runs on fresh layers. It returns the smallest case found and its
// failure.
func (r *Runner) Shrink(c *Case, f *Failure, b ShrinkBudget) (*Case, *Failure) {
	sig := f.Signature()
	deadline := time.Now().Add(b.Time)
	runs := 0
	best, bestF := c, f
	try := func(cand *Case) bool {
		if runs >= b.Runs || time.Now().After(deadline) {
			return false
		}
		runs++
		if g := r.Run(cand); g != nil && g.Signature() == sig {
			best, bestF = cand, g
			return true
		}
		return false
	}
	budgetLeft := func() bool { return runs < b.Runs && time.Now().Before(deadline) }

	// Operations after the failing one never matter.
	cur := *c
	switch {
	case strings.HasPrefix(f.Phase, "ops") && f.Step >= 0:
		cur.Ops = cur.Ops[:f.Step+1]
		cur.Cross, cur.Ops2 = false, nil
	case f.Phase == "end":
		cur.Cross, cur.Ops2 = false, nil
	case f.Phase == "cross-ops" && f.Step >= 0:
		cur.Ops2 = cur.Ops2[:f.Step+1]
	}
	if !try(&cur) {
		cur = *c
	}
	// Without the cross phase, if the failure happens before it anyway.
	if cur.Cross && len(cur.Ops2) == 0 {
		noCross := cur
		noCross.Cross = false
		if try(&noCross) {
			cur = noCross
		}
	}
	// All operations in one phase, if the cross phase is not needed.
	if cur.Cross {
		one := cur
		one.Ops = append(append([]Op(nil), cur.Ops...), cur.Ops2...)
		one.Cross, one.Ops2 = false, nil
		if try(&one) {
			cur = one
		}
	}
	// Delta debugging over all operations.
	n1 := len(cur.Ops)
	all := append(append([]Op(nil), cur.Ops...), cur.Ops2...)
	build := func(keep []int) *Case {
		cand := cur
		cand.Ops, cand.Ops2 = nil, nil
		for _, i := range keep {
			if i < n1 {
				cand.Ops = append(cand.Ops, all[i])
			} else {
				cand.Ops2 = append(cand.Ops2, all[i])
			}
		}
		return &cand
	}
	keep := ddmin(len(all), func(k []int) bool { return try(build(k)) }, budgetLeft)
	cur = *build(keep)
	// Then the layers, as an explicit list of entries.
	spec := cur.Spec()
	cur.Layers, cur.Seed = spec, 0
	if try(&cur) {
		keepE := ddmin(len(spec.Entries), func(k []int) bool {
			cand := cur
			cand.Layers = spec.Keep(k)
			return try(&cand)
		}, budgetLeft)
		cur.Layers = spec.Keep(keepE)
		// Plainer layers: kernel format, no empty layers, default
		// attributes.
		if cur.OCI {
			cand := cur
			cand.OCI = false
			if try(&cand) {
				cur = cand
			}
		}
		if c2 := cur.Layers.compact(); c2.Lowers < cur.Layers.Lowers {
			cand := cur
			cand.Layers = c2
			if try(&cand) {
				cur = cand
			}
		}
		cand := cur
		cand.Layers = cur.Layers.plain()
		if try(&cand) {
			cur = cand
		}
	}
	if r.Logf != nil {
		r.Logf("shrink: %d runs", runs)
	}
	return best, bestF
}

// ddmin is Zeller's delta debugging: it returns a subset of 0..n-1 for
// which fails still holds, 1-minimal when the budget allows.
func ddmin(n int, fails func(keep []int) bool, budgetLeft func() bool) []int {
	cur := make([]int, n)
	for i := range cur {
		cur[i] = i
	}
	parts := 2
	for len(cur) >= 2 && budgetLeft() {
		chunk := (len(cur) + parts - 1) / parts
		reduced := false
		// Try each complement (drop one chunk).
		for start := 0; start < len(cur) && budgetLeft(); start += chunk {
			end := min(start+chunk, len(cur))
			cand := append(append([]int(nil), cur[:start]...), cur[end:]...)
			if fails(cand) {
				cur = cand
				parts = max(parts-1, 2)
				reduced = true
				break
			}
		}
		if reduced {
			continue
		}
		if parts >= len(cur) {
			break
		}
		parts = min(parts*2, len(cur))
	}
	if len(cur) == 1 && budgetLeft() && fails(nil) {
		return nil
	}
	return cur
}

// Keep returns the spec with only the entries at the given indexes, and
// without those whose parent directory or hard link target is gone.
func (s *LayerSpec) Keep(idx []int) *LayerSpec {
	out := &LayerSpec{Lowers: s.Lowers}
	kept := map[[2]string]Kind{}
	sorted := append([]int(nil), idx...)
	sort.Ints(sorted)
	// Parents come before children in generated specs; sort by depth to
	// be sure.
	sort.SliceStable(sorted, func(i, j int) bool {
		return depth(s.Entries[sorted[i]].Path) < depth(s.Entries[sorted[j]].Path)
	})
	var links []Entry
	for _, i := range sorted {
		e := s.Entries[i]
		if par := parentOf(e.Path); par != "" && kept[layerKey(e.Layer, par)] != KDir {
			continue
		}
		kept[layerKey(e.Layer, e.Path)] = e.Kind
		if e.Kind == KHardlink {
			links = append(links, e)
			continue
		}
		out.Entries = append(out.Entries, e)
	}
	// Hard links last: their targets may be deeper.
	for _, e := range links {
		if kept[layerKey(e.Layer, e.Target)] == KFile {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

func layerKey(layer int, p string) [2]string { return [2]string{strconv.Itoa(layer), p} }

// GoString prints the case as a Go literal for the table in
// regress_test.go.
func (c *Case) GoString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tName: %q,\n", c.Name)
	if c.Layers != nil {
		b.WriteString("\tLayers: " + c.Layers.GoString() + ",\n")
	} else {
		fmt.Fprintf(&b, "\tSeed: %d,\n", c.Seed)
	}
	if c.OCI {
		b.WriteString("\tOCI: true,\n")
	}
	if c.UserXattr {
		b.WriteString("\tUserXattr: true,\n")
	}
	writeOps := func(name string, ops []Op) {
		fmt.Fprintf(&b, "\t%s: []Op{\n", name)
		for _, o := range ops {
			b.WriteString("\t\t" + o.GoString() + ",\n")
		}
		b.WriteString("\t},\n")
	}
	writeOps("Ops", c.Ops)
	if c.Cross {
		b.WriteString("\tCross: true,\n")
		writeOps("Ops2", c.Ops2)
	}
	b.WriteString("}")
	return b.String()
}

// GoString prints the spec as a Go literal.
func (s *LayerSpec) GoString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "&LayerSpec{Lowers: %d, Entries: []Entry{\n", s.Lowers)
	for _, e := range s.Entries {
		b.WriteString("\t\t" + e.GoString() + ",\n")
	}
	b.WriteString("\t}}")
	return b.String()
}

// GoString prints the entry as a Go literal.
func (e Entry) GoString() string {
	parts := []string{fmt.Sprintf("Layer: %d", e.Layer), "Path: " + goStr(e.Path), "Kind: " + e.Kind.String()}
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	if e.Mode != 0 {
		add("Mode: %#o", e.Mode)
	}
	if e.UID != 0 {
		add("UID: %d", e.UID)
	}
	if e.GID != 0 {
		add("GID: %d", e.GID)
	}
	if e.Mtime != 0 {
		add("Mtime: %d", e.Mtime)
	}
	if e.Size != 0 {
		add("Size: %d", e.Size)
	}
	if e.Fill != 0 {
		add("Fill: %d", e.Fill)
	}
	if e.Target != "" {
		add("Target: %s", goStr(e.Target))
	}
	if e.Opaque {
		add("Opaque: true")
	}
	if len(e.Xattrs) > 0 {
		var xs []string
		for _, x := range e.Xattrs {
			xs = append(xs, fmt.Sprintf("{%q, %q}", x.Name, x.Value))
		}
		add("Xattrs: []Xattr{%s}", strings.Join(xs, ", "))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// compact drops the layers that have no entries.
func (s *LayerSpec) compact() *LayerSpec {
	used := map[int]bool{}
	for _, e := range s.Entries {
		used[e.Layer] = true
	}
	renum := map[int]int{}
	for l := 0; l < s.Lowers; l++ {
		if used[l] {
			renum[l] = len(renum)
		}
	}
	out := &LayerSpec{Lowers: max(len(renum), 1)}
	for _, e := range s.Entries {
		e.Layer = renum[e.Layer]
		out.Entries = append(out.Entries, e)
	}
	return out
}

// plain gives every entry default attributes: root-owned, 0755 or 0644,
// no xattrs, one fixed time.
func (s *LayerSpec) plain() *LayerSpec {
	out := &LayerSpec{Lowers: s.Lowers}
	for _, e := range s.Entries {
		if e.Kind != KWhiteout && e.Kind != KHardlink {
			e.UID, e.GID, e.Xattrs, e.Mtime = 0, 0, nil, plainTime
			switch e.Kind {
			case KDir:
				e.Mode = 0755
			case KSymlink:
				e.Mode = 0777
			default:
				e.Mode = 0644
			}
		}
		out.Entries = append(out.Entries, e)
	}
	return out
}

// plainTime is 2009-02-13T23:31:30Z.
const plainTime = 1234567890e9
