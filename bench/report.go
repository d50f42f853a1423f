package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// Target names as they appear in the report.
const (
	tPlain  = "plain"
	tKernel = "kernel"
	tFuse   = "fuse-overlayfs"
	tStrata = "strata"
)

// Summary is median, min and max of a set of samples.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// MarshalJSON writes missing values (NaN) as null.
func (s Summary) MarshalJSON() ([]byte, error) {
	f := func(x float64) any {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	}
	return json.Marshal(map[string]any{"n": s.N, "median": f(s.Median), "min": f(s.Min), "max": f(s.Max)})
}

// Summarize computes the median, min and max of xs, ignoring NaNs. N is 0
// when there is nothing to summarize.
func Summarize(xs []float64) Summary {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	sort.Float64s(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Summary{N: n, Median: med, Min: v[0], Max: v[n-1]}
}

// Ratio is a/b, or NaN when either is missing or b is not positive.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// formatRatio prints a ratio as "1.23x", "12.3x", "123x", or "-" when
// missing.
func formatRatio(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fx", v)
	case v < 100:
		return fmt.Sprintf("%.1fx", v)
	default:
		return fmt.Sprintf("%.0fx", v)
	}
}

// secondsUnit picks the unit to show a duration of s seconds in.
func secondsUnit(s float64) (div float64, unit string) {
	switch {
	case s < 1e-3:
		return 1e-6, "us"
	case s < 1:
		return 1e-3, "ms"
	default:
		return 1, "s"
	}
}

func num3(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

// formatSeconds prints a duration in seconds with three significant digits
// and a unit: "812us", "12.3ms", "1.23s".
func formatSeconds(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	div, unit := secondsUnit(s)
	return num3(s/div) + unit
}

// formatSummary prints "median [min-max]" in the median's unit, or just the
// median for a single sample.
func formatSummary(s Summary) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 || s.Min == s.Max {
		return formatSeconds(s.Median)
	}
	div, unit := secondsUnit(s.Median)
	return fmt.Sprintf("%s%s [%s-%s]", num3(s.Median/div), unit, num3(s.Min/div), num3(s.Max/div))
}

// Cell is the results of one measurement on one target.
type Cell struct {
	Samples []float64 `json:"samples_s"`
	Time    Summary   `json:"time_s"`
	// DaemonCPU is the FUSE daemon's user+system CPU seconds spent during
	// each sample (FUSE targets only).
	DaemonCPU []float64 `json:"daemon_cpu_s,omitempty"`
	CPU       *Summary  `json:"daemon_cpu_summary_s,omitempty"`
	Errors    []string  `json:"errors,omitempty"`
}

// Measurement is one timed step (e.g. "stat", cold) across targets.
type Measurement struct {
	Key      string           `json:"key"`
	Scenario string           `json:"scenario"`
	Step     string           `json:"step"`
	Mode     string           `json:"mode"` // "cold", "warm" or "shared"
	Desc     string           `json:"description"`
	Bytes    int64            `json:"bytes,omitempty"`
	Files    int              `json:"files,omitempty"`
	Results  map[string]*Cell `json:"results"`
	Ratios   map[string]any   `json:"ratios,omitempty"`
}

// DaemonStat is what a FUSE daemon looked like at the end of a scenario:
// the largest values seen over all runs.
type DaemonStat struct {
	Target     string `json:"target"`
	Scenario   string `json:"scenario"`
	PeakRSSKiB int64  `json:"peak_rss_kib"` // VmHWM
	FDs        int    `json:"open_fds"`
	Samples    int    `json:"samples"`
}

// Report is the whole result, as written to results.json.
type Report struct {
	Meta         map[string]any `json:"meta"`
	Targets      []string       `json:"targets"`
	Notes        []string       `json:"notes,omitempty"`
	Measurements []*Measurement `json:"measurements"`
	Daemons      []*DaemonStat  `json:"daemons,omitempty"`
}

// measurement returns the measurement with the given key, creating it.
func (r *Report) measurement(scenario, step, mode, desc string) *Measurement {
	key := step + " " + mode
	for _, m := range r.Measurements {
		if m.Key == key {
			return m
		}
	}
	m := &Measurement{Key: key, Scenario: scenario, Step: step, Mode: mode, Desc: desc, Results: map[string]*Cell{}}
	r.Measurements = append(r.Measurements, m)
	return m
}

func (m *Measurement) cell(target string) *Cell {
	c := m.Results[target]
	if c == nil {
		c = &Cell{}
		m.Results[target] = c
	}
	return c
}

// daemonStat records a snapshot of a FUSE daemon at the end of a scenario.
func (r *Report) daemonStat(target, scenario string, rssKiB int64, fds int) {
	for _, d := range r.Daemons {
		if d.Target == target && d.Scenario == scenario {
			d.Samples++
			if rssKiB > d.PeakRSSKiB {
				d.PeakRSSKiB = rssKiB
			}
			if fds > d.FDs {
				d.FDs = fds
			}
			return
		}
	}
	r.Daemons = append(r.Daemons, &DaemonStat{Target: target, Scenario: scenario, PeakRSSKiB: rssKiB, FDs: fds, Samples: 1})
}

func (r *Report) has(target string) bool {
	for _, t := range r.Targets {
		if t == target {
			return true
		}
	}
	return false
}

// ratioPairs are the ratios reported, when both targets are present.
func (r *Report) ratioPairs() [][2]string {
	var out [][2]string
	for _, p := range [][2]string{{tFuse, tKernel}, {tStrata, tKernel}, {tStrata, tFuse}} {
		if r.has(p[0]) && r.has(p[1]) {
			out = append(out, p)
		}
	}
	return out
}

func shortName(t string) string {
	switch t {
	case tFuse:
		return "fuse"
	case tKernel:
		return "kernel"
	}
	return t
}

// Finalize computes summaries and ratios from the samples.
func (r *Report) Finalize() {
	for _, m := range r.Measurements {
		for _, c := range m.Results {
			c.Time = Summarize(c.Samples)
			if len(c.DaemonCPU) > 0 {
				s := Summarize(c.DaemonCPU)
				c.CPU = &s
			}
		}
		m.Ratios = map[string]any{}
		for _, p := range r.ratioPairs() {
			v := m.ratio(p[0], p[1])
			key := p[0] + "/" + p[1]
			if math.IsNaN(v) {
				m.Ratios[key] = nil // JSON has no NaN
			} else {
				m.Ratios[key] = v
			}
		}
	}
}

// ratio is the ratio of the medians of targets a and b, NaN if missing.
func (m *Measurement) ratio(a, b string) float64 {
	ca, cb := m.Results[a], m.Results[b]
	if ca == nil || cb == nil {
		return math.NaN()
	}
	sa, sb := Summarize(ca.Samples), Summarize(cb.Samples)
	if sa.N == 0 || sb.N == 0 {
		return math.NaN()
	}
	return Ratio(sa.Median, sb.Median)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// table prints rows with aligned columns; the first column is left
// aligned, the others right aligned.
func table(w io.Writer, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	width := make([]int, 0)
	for _, row := range rows {
		for i, c := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			if n := len([]rune(c)); n > width[i] {
				width[i] = n
			}
		}
	}
	for ri, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := width[i] - len([]rune(c))
			if i == 0 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString("  " + strings.Repeat(" ", pad) + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if ri == 0 {
			total := 0
			for i, n := range width {
				total += n
				if i > 0 {
					total += 2
				}
			}
			fmt.Fprintln(w, strings.Repeat("-", total))
		}
	}
}

// cellText is what the table shows for one cell.
func cellText(c *Cell) string {
	if c == nil {
		return "-"
	}
	s := Summarize(c.Samples)
	txt := formatSummary(s)
	if len(c.Errors) > 0 {
		if s.N == 0 {
			return "ERROR"
		}
		txt += " (ERR)"
	}
	return txt
}

// WriteText writes the human-readable tables.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Times: median [min-max] over %v run(s); lower is better.\n\n", r.Meta["runs"])
	head := []string{"measurement"}
	head = append(head, r.Targets...)
	pairs := r.ratioPairs()
	for _, p := range pairs {
		head = append(head, shortName(p[0])+"/"+shortName(p[1]))
	}
	rows := [][]string{head}
	for _, m := range r.Measurements {
		row := []string{m.Key}
		for _, t := range r.Targets {
			row = append(row, cellText(m.Results[t]))
		}
		for _, p := range pairs {
			row = append(row, formatRatio(m.ratio(p[0], p[1])))
		}
		rows = append(rows, row)
	}
	table(w, rows)

	var fuseTargets []string
	for _, t := range r.Targets {
		if t == tFuse || t == tStrata {
			fuseTargets = append(fuseTargets, t)
		}
	}
	if len(fuseTargets) > 0 {
		fmt.Fprintf(w, "\nFUSE daemon CPU seconds (user+system) during each measurement, median:\n\n")
		rows = [][]string{append([]string{"measurement"}, fuseTargets...)}
		for _, m := range r.Measurements {
			row := []string{m.Key}
			for _, t := range fuseTargets {
				c := m.Results[t]
				if c == nil || len(c.DaemonCPU) == 0 {
					row = append(row, "-")
					continue
				}
				row = append(row, fmt.Sprintf("%.2f", Summarize(c.DaemonCPU).Median))
			}
			rows = append(rows, row)
		}
		table(w, rows)
	}
	if len(r.Daemons) > 0 {
		fmt.Fprintf(w, "\nFUSE daemon peak RSS (VmHWM) and open fds at the end of each scenario (max over runs):\n\n")
		rows = [][]string{{"scenario", "target", "peak RSS", "open fds"}}
		for _, d := range r.Daemons {
			rows = append(rows, []string{d.Scenario, d.Target, fmt.Sprintf("%.1f MiB", float64(d.PeakRSSKiB)/1024), fmt.Sprint(d.FDs)})
		}
		table(w, rows)
	}
	var errs []string
	for _, m := range r.Measurements {
		for _, t := range r.Targets {
			if c := m.Results[t]; c != nil {
				for _, e := range c.Errors {
					errs = append(errs, fmt.Sprintf("%s on %s: %s", m.Key, t, e))
				}
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors:\n")
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\nNotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

// ChartData builds the chart: ratio to kernel overlayfs of every other
// target, per measurement.
func (r *Report) ChartData() ChartData {
	d := ChartData{
		Title:    "TIME RELATIVE TO KERNEL OVERLAYFS (LOWER IS BETTER)",
		Subtitle: fmt.Sprintf("MEDIAN OF %v RUN(S). %v", r.Meta["runs"], r.Meta["config"]),
	}
	var series []string
	for _, t := range r.Targets {
		if t != tKernel {
			series = append(series, t)
		}
	}
	for i, t := range series {
		d.Series = append(d.Series, ChartSeries{Name: t, Color: seriesColor(t, i)})
	}
	for _, m := range r.Measurements {
		g := ChartGroup{Label: m.Key}
		for _, t := range series {
			g.Values = append(g.Values, m.ratio(t, tKernel))
		}
		d.Groups = append(d.Groups, g)
	}
	return d
}
