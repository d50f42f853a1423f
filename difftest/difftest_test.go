package difftest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// Sequence settings, from the environment (see README.md).
func seqSettings(t *testing.T) (base int64, seqs, nOps int) {
	seqs = envInt("STRATA_DIFF_SEQS", 20)
	nOps = envInt("STRATA_DIFF_OPS", 40)
	base = 1
	switch v := os.Getenv("STRATA_DIFF_SEED"); v {
	case "":
	case "random":
		base = time.Now().UnixNano() % 1e9
	default:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_DIFF_SEED=%q: %v", v, err)
		}
		base = n
	}
	return base, seqs, nOps
}

// RandomCase is sequence seed of the random test: layers and operations
// from the seed, every third sequence with OCI lower layers (all or none
// with STRATA_DIFF_OCI=all or none), every fifth with the userxattr
// option, the last third of the operations after the cross remount.
func RandomCase(seed int64, nOps int) *Case {
	oci := seed%3 == 2
	switch os.Getenv("STRATA_DIFF_OCI") {
	case "all":
		oci = true
	case "none":
		oci = false
	}
	c := newCase(seed, nOps, oci)
	switch os.Getenv("STRATA_DIFF_USERXATTR") {
	case "all":
		c.UserXattr = true
	case "none":
		c.UserXattr = false
	}
	return c
}

func newCase(seed int64, nOps int, oci bool) *Case {
	c := &Case{Name: fmt.Sprintf("seed %d", seed), Seed: seed, OCI: oci, Cross: true, UserXattr: seed%5 == 4}
	ops := GenOpsFocus(seed, c.Spec(), nOps, os.Getenv("STRATA_DIFF_FOCUS"))
	split := len(ops) * 2 / 3
	c.Ops, c.Ops2 = ops[:split], ops[split:]
	return c
}

// report fails t with f, the way to reproduce it and a shrunk case.
func report(t *testing.T, r *Runner, c *Case, f *Failure, how string, shrink bool) {
	t.Helper()
	t.Errorf("%s: %v\nreproduce: %s", c.Name, f, how)
	if !shrink || os.Getenv("STRATA_DIFF_NO_SHRINK") != "" || f.Kind == "hang" || f.Kind == "setup" {
		return
	}
	start := time.Now()
	sc, sf := r.Shrink(c, f, DefaultShrinkBudget())
	sc.Name = c.Name + " (shrunk)"
	t.Errorf("shrunk in %v to %d+%d ops, %d layer entries: %v\nminimal case for regress_test.go:\n%#v",
		time.Since(start).Round(time.Second), len(sc.Ops), len(sc.Ops2), len(sc.Spec().Entries), sf, sc)
}

// TestRandom runs STRATA_DIFF_SEQS random sequences of STRATA_DIFF_OPS
// operations, seeds STRATA_DIFF_SEED, STRATA_DIFF_SEED+1, ...
func TestRandom(t *testing.T) {
	mounttest.Require(t)
	base, seqs, nOps := seqSettings(t)
	if f := os.Getenv("STRATA_DIFF_FOCUS"); f != "" && Focuses[f] == nil {
		t.Fatalf("STRATA_DIFF_FOCUS=%q: not one of the Focuses", f)
	}
	for i := 0; i < seqs; i++ {
		seed := base + int64(i)
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			r := NewRunner(t)
			c := RandomCase(seed, nOps)
			if f := r.Run(c); f != nil {
				if b := KnownFailure(f); b != nil && !r.ShowKnown {
					t.Logf("stopped at known bug %s: %v", b.ID, f)
					return
				}
				report(t, r, c, f, fmt.Sprintf("STRATA_DIFF_SEED=%d STRATA_DIFF_SEQS=1 STRATA_DIFF_OPS=%d go test ./difftest/ -run 'Random/%d$'", seed, nOps, seed), true)
			}
		})
	}
}

// FuzzOps decodes the input into a layer seed and an operation sequence.
func FuzzOps(f *testing.F) {
	f.Add([]byte("\x03difftest seed corpus: some bytes for the generator"))
	f.Add([]byte{7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32})
	f.Fuzz(func(t *testing.T, data []byte) {
		seed, ops := DecodeOps(data, 64)
		if len(ops) == 0 {
			return
		}
		r := NewRunner(t)
		c := &Case{Name: fmt.Sprintf("fuzz (layer seed %d)", seed), Seed: seed, Ops: ops}
		if fl := r.Run(c); fl != nil {
			// The fuzzer minimizes the input itself.
			report(t, r, c, fl, "go test ./difftest/ -run FuzzOps/<corpus file>", false)
		}
	})
}

// TestLayerFormats checks the tester: a layer set written in the kernel
// format and the same set written in the OCI format, copied with cp -a
// and converted, are the same directories.
func TestLayerFormats(t *testing.T) {
	mounttest.Require(t)
	for seed := int64(0); seed < 4; seed++ {
		spec := GenLayers(seed, GenOptions{OCI: true})
		dir := t.TempDir()
		var kern, oci, conv []string
		for i := 0; i < spec.Lowers; i++ {
			for _, l := range []*[]string{&kern, &oci, &conv} {
				d := fmt.Sprintf("%s/%p-%d", dir, l, i)
				if err := os.MkdirAll(d, 0755); err != nil {
					t.Fatal(err)
				}
				*l = append(*l, d)
			}
		}
		if err := Materialize(spec, kern, Kernel); err != nil {
			t.Fatal(err)
		}
		if err := Materialize(spec, oci, OCI); err != nil {
			t.Fatal(err)
		}
		for i := range oci {
			if out, err := exec.Command("cp", "-a", oci[i]+"/.", conv[i]).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v: %s", err, out)
			}
			if err := OCIToKernel(conv[i]); err != nil {
				t.Fatal(err)
			}
			ra, err := RawLayer(kern[i])
			if err != nil {
				t.Fatal(err)
			}
			rb, err := RawLayer(conv[i])
			if err != nil {
				t.Fatal(err)
			}
			if d := DiffRaw(ra, rb, "kernel format", "converted OCI"); len(d) > 0 {
				t.Fatalf("seed %d layer %d: %v", seed, i, d)
			}
			ta, tb := Snapshot(kern[i]), Snapshot(conv[i])
			for _, tr := range []Tree{ta, tb} {
				for _, o := range tr {
					if o.Type == unix.S_IFCHR {
						o.Mtime = unix.Timespec{} // whiteouts: made at conversion time
					}
				}
			}
			if d := Diff(ta, tb, "kernel format", "converted OCI", CmpOpts{ExactTimes: true}); len(d) > 0 {
				t.Fatalf("seed %d layer %d: %v", seed, i, d)
			}
		}
	}
}

// TestDifferencesDocumented checks that DIFFERENCES.md has a section for
// every entry of Differences, and no other.
func TestDifferencesDocumented(t *testing.T) {
	data, err := os.ReadFile("DIFFERENCES.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		if id, ok := strings.CutPrefix(l, "## "); ok {
			sections[id] = true
		}
	}
	for _, d := range Differences {
		if !sections[d.ID] {
			t.Errorf("DIFFERENCES.md has no section %q", d.ID)
		}
		delete(sections, d.ID)
		if d.Kernel == "" || d.Strata == "" || d.Why == "" || d.Handling == "" {
			t.Errorf("difference %q is not fully described", d.ID)
		}
	}
	for id := range sections {
		t.Errorf("DIFFERENCES.md section %q is not in Differences", id)
	}
}

// TestCrossMount is the cross check on its own: after a random sequence
// the kernel mounts the layers Strata wrote and Strata those the kernel
// wrote, each must show what the other showed, and the rest of the
// sequence runs on the swapped mounts.
func TestCrossMount(t *testing.T) {
	mounttest.Require(t)
	for seed := int64(100); seed < 103; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			r := NewRunner(t)
			c := newCase(seed, 30, false)
			if f := r.Run(c); f != nil {
				if b := KnownFailure(f); b != nil && !r.ShowKnown {
					t.Logf("stopped at known bug %s: %v", b.ID, f)
					return
				}
				report(t, r, c, f, fmt.Sprintf("go test ./difftest/ -run 'CrossMount/%d$'", seed), true)
			}
		})
	}
}

// TestOCILayers mounts OCI-format lower layers with Strata and the same
// layers converted to the kernel's format with the kernel, and runs
// random sequences on both.
func TestOCILayers(t *testing.T) {
	mounttest.Require(t)
	for seed := int64(200); seed < 203; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			r := NewRunner(t)
			c := newCase(seed, 30, true)
			if f := r.Run(c); f != nil {
				if b := KnownFailure(f); b != nil && !r.ShowKnown {
					t.Logf("stopped at known bug %s: %v", b.ID, f)
					return
				}
				report(t, r, c, f, fmt.Sprintf("go test ./difftest/ -run 'OCILayers/%d$'", seed), true)
			}
		})
	}
}
