// Package coherence tests Strata's headline guarantee: every open
// descriptor and every shared mapping of a file sees the same bytes
// before, during and after its copy-up, from any process. Each scenario
// also runs on kernel overlayfs, whose (documented, non-standard)
// behaviour is recorded for docs/coherence.md.
package coherence

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestScenarios(t *testing.T) {
	type row struct{ id, title, kernel, strata string }
	var rows []row
	for _, sc := range scenarios {
		r := row{id: sc.id, title: sc.title}
		t.Run(sc.id+"/strata", func(t *testing.T) {
			e := newEnv(t, false, func(l string) { sc.setup(t, l) })
			if err := sc.run(e); err != nil {
				r.strata = "**not coherent**: " + err.Error()
				t.Fatalf("scenario %s (%s): %v", sc.id, sc.title, err)
			}
			r.strata = "coherent"
		})
		t.Run(sc.id+"/kernel", func(t *testing.T) {
			e := newEnv(t, true, func(l string) { sc.setup(t, l) })
			if err := sc.run(e); err != nil {
				r.kernel = "not coherent: " + err.Error()
				t.Logf("kernel overlayfs, scenario %s: %v (expected: documented as non-standard)", sc.id, err)
				return
			}
			r.kernel = "coherent"
		})
		rows = append(rows, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| # | scenario | kernel overlayfs | Strata |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.id, r.title, cell(r.kernel), cell(r.strata))
	}
	t.Logf("coherence table:\n%s", b.String())
	if path := os.Getenv("STRATA_COHERENCE_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0644); err != nil {
			t.Fatal(err)
		}
	}
}

func cell(s string) string {
	if s == "" {
		return "(did not run)"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}
