package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// These tests cover the pure parts of the benchmark; none of them mounts
// anything.

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		n             int
		med, min, max float64
	}{
		{[]float64{3, 1, 2}, 3, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 4, 2.5, 1, 4},
		{[]float64{5}, 1, 5, 5, 5},
		{[]float64{2, math.NaN(), 1}, 2, 1.5, 1, 2},
	} {
		s := Summarize(tc.in)
		if s.N != tc.n || s.Median != tc.med || s.Min != tc.min || s.Max != tc.max {
			t.Errorf("Summarize(%v) = %+v, want n=%d median=%v min=%v max=%v", tc.in, s, tc.n, tc.med, tc.min, tc.max)
		}
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.Median) {
		t.Errorf("Summarize(nil) = %+v", s)
	}
	b, err := json.Marshal(Summarize(nil))
	if err != nil || !strings.Contains(string(b), `"median":null`) {
		t.Errorf("empty summary JSON = %s, %v", b, err)
	}
}

func TestRatioFormatting(t *testing.T) {
	for _, tc := range []struct {
		a, b float64
		want string
	}{
		{2, 1, "2.00x"},
		{1, 4, "0.25x"},
		{1.234, 1, "1.23x"},
		{12.34, 1, "12.3x"},
		{123.4, 1, "123x"},
		{1, 0, "-"},
		{math.NaN(), 1, "-"},
		{1, math.NaN(), "-"},
	} {
		if got := formatRatio(Ratio(tc.a, tc.b)); got != tc.want {
			t.Errorf("formatRatio(Ratio(%v, %v)) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestFormatSeconds(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{
		{0.0000123, "12.3us"},
		{0.0123, "12.3ms"},
		{0.5, "500ms"},
		{1.234, "1.23s"},
		{123.4, "123s"},
		{math.NaN(), "-"},
	} {
		if got := formatSeconds(tc.s); got != tc.want {
			t.Errorf("formatSeconds(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
	if got := formatSummary(Summarize([]float64{0.012, 0.010, 0.015})); got != "12.0ms [10.0-15.0]" {
		t.Errorf("formatSummary = %q", got)
	}
	if got := formatSummary(Summarize([]float64{2})); got != "2.00s" {
		t.Errorf("formatSummary single = %q", got)
	}
	if got := formatSummary(Summarize(nil)); got != "-" {
		t.Errorf("formatSummary empty = %q", got)
	}
}

func sampleReport() *Report {
	r := &Report{Meta: map[string]any{"runs": 3, "config": "TEST"}, Targets: []string{tPlain, tKernel, tFuse, tStrata}}
	add := func(step, mode, target string, xs ...float64) {
		c := r.measurement("s", step, mode, "desc").cell(target)
		c.Samples = append(c.Samples, xs...)
		if target == tFuse || target == tStrata {
			c.DaemonCPU = append(c.DaemonCPU, 0.5)
		}
	}
	add("walk", "cold", tPlain, 0.1, 0.1, 0.1)
	add("walk", "cold", tKernel, 0.2, 0.3, 0.1)
	add("walk", "cold", tFuse, 0.4, 0.5, 0.6)
	add("walk", "cold", tStrata, 0.3, 0.3, 0.3)
	add("walk", "warm", tKernel, 0.02)
	add("walk", "warm", tFuse, 0.04)
	c := r.measurement("s", "walk", "warm", "desc").cell(tStrata)
	c.Errors = append(c.Errors, "boom")
	r.daemonStat(tStrata, "s", 1000, 7)
	r.daemonStat(tStrata, "s", 3000, 5)
	return r
}

func TestReport(t *testing.T) {
	r := sampleReport()
	r.Finalize()
	m := r.Measurements[0]
	if got := m.ratio(tStrata, tKernel); math.Abs(got-1.5) > 1e-9 {
		t.Errorf("strata/kernel = %v, want 1.5", got)
	}
	if got := m.ratio(tFuse, tKernel); math.Abs(got-2.5) > 1e-9 {
		t.Errorf("fuse/kernel = %v, want 2.5", got)
	}
	if len(r.Daemons) != 1 || r.Daemons[0].PeakRSSKiB != 3000 || r.Daemons[0].FDs != 7 || r.Daemons[0].Samples != 2 {
		t.Errorf("daemon stats = %+v", r.Daemons)
	}

	var sb strings.Builder
	r.WriteText(&sb)
	out := sb.String()
	for _, want := range []string{"walk cold", "200ms [100-300]", "1.50x", "2.50x", "ERROR", "boom", "2.9 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json round trip: %v", err)
	}
	// The warm strata cell has no samples: its ratio is null, not NaN.
	if !strings.Contains(string(b), `"strata/kernel":null`) {
		t.Errorf("missing ratio not null in JSON: %s", b)
	}
}

func TestRatioPairsWithoutStrata(t *testing.T) {
	r := &Report{Targets: []string{tPlain, tKernel, tFuse}}
	p := r.ratioPairs()
	if len(p) != 1 || p[0] != [2]string{tFuse, tKernel} {
		t.Errorf("ratioPairs = %v", p)
	}
}

func TestTableAlignment(t *testing.T) {
	var sb strings.Builder
	table(&sb, [][]string{{"a", "bb"}, {"ccc", "d"}})
	lines := strings.Split(strings.TrimRight(sb.String(), "\n"), "\n")
	if len(lines) != 3 || len(lines[0]) != len(lines[2]) || lines[1] != strings.Repeat("-", len(lines[0])) {
		t.Errorf("table:\n%s", sb.String())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1G": 1 << 30, "64M": 64 << 20, "64MiB": 64 << 20, "4096": 4096, "512k": 512 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "12x3M", "-1"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) did not fail", in)
		}
	}
}

func TestSelectFiles(t *testing.T) {
	var all []string
	for i := 0; i < 100; i++ {
		all = append(all, string(rune('a'+i/26))+string(rune('a'+i%26)))
	}
	if got := selectFiles(all, nil, 0); len(got) != 100 {
		t.Errorf("n=0 selected %d", len(got))
	}
	got := selectFiles(all, []string{"cz", "missing"}, 10)
	if len(got) != 10 {
		t.Fatalf("selected %d, want 10", len(got))
	}
	seen := map[string]bool{}
	for i, f := range got {
		if seen[f] {
			t.Errorf("duplicate %q", f)
		}
		seen[f] = true
		if i > 0 && got[i-1] > f {
			t.Errorf("not sorted: %v", got)
		}
	}
	if !seen["cz"] || seen["missing"] {
		t.Errorf("required files wrong: %v", got)
	}
	if !seen["aa"] || got[len(got)-1] < "c" {
		t.Errorf("selection does not span the tree: %v", got)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\011c`); got != "/a b\tc" {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestScenarioKeysUnique(t *testing.T) {
	keys := map[string]bool{}
	for _, sc := range Scenarios(true, true) {
		if len(sc.Steps) == 0 {
			t.Errorf("scenario %s has no steps", sc.Name)
		}
		for _, st := range sc.Steps {
			k := st.Name + " " + st.mode()
			if keys[k] {
				t.Errorf("duplicate measurement %q", k)
			}
			keys[k] = true
			if st.Run == nil || st.Desc == "" {
				t.Errorf("step %q lacks Run or Desc", k)
			}
		}
	}
}

func TestRandOffsets(t *testing.T) {
	a := randOffsets(1<<20, 100, 7)
	b := randOffsets(1<<20, 100, 7)
	for i := range a {
		if a[i] != b[i] || a[i]%4096 != 0 || a[i] < 0 || a[i] >= 1<<20 {
			t.Fatalf("offset %d: %d vs %d", i, a[i], b[i])
		}
	}
}
