package main

import "testing"

// Every shared step names the file to cache before its new mount, and the
// reads of the big file each have one.
func TestSharedSteps(t *testing.T) {
	shared := map[string]bool{}
	for _, sc := range Scenarios(true, true) {
		for _, st := range sc.Steps {
			if !st.Shared {
				continue
			}
			if st.Cold {
				t.Errorf("%s: both cold and shared", st.Name)
			}
			if st.Cache == "" {
				t.Errorf("%s: shared without a file to cache", st.Name)
			}
			if st.mode() != "shared" {
				t.Errorf("%s: mode %q", st.Name, st.mode())
			}
			shared[st.Name] = true
		}
	}
	for _, n := range []string{"seq-read", "rand-read", "mmap-read"} {
		if !shared[n] {
			t.Errorf("%s has no shared step", n)
		}
	}
}
