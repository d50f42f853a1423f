//go:build cgo

package main

import (
	"testing"

	"github.com/stratafs/strata/mountopt"
)

// TestStaysAgreesWithParseArgs holds the C side's quick look at the
// command line (strata_stays, which decides before Go starts whether to
// fork the daemon off) to mountopt.ParseArgs: whatever ParseArgs makes a
// foreground mount, help or the version, strata_stays must not fork for
// (the forked child would have to ask its parent to run the command
// again), and a plain mount in the background it must fork for, or every
// mount pays for a second start of the program.
func TestStaysAgreesWithParseArgs(t *testing.T) {
	const o = "lowerdir=/l1:/l2,upperdir=/u,workdir=/w"
	for _, c := range []struct {
		args []string
		fork bool // strata_stays must say no
	}{
		{[]string{"-o", o, "/m"}, true},
		{[]string{"-o" + o, "/m"}, true},
		{[]string{"overlay", "/m", "-o", o + ",ro"}, true},
		{[]string{"-s", "-o", o, "/m"}, true},
		{[]string{"-o", o, "--", "-f"}, true}, // a mount point named -f
		{[]string{"-f", "-o", o, "/m"}, false},
		{[]string{"-o", o, "/m", "-f"}, false},
		{[]string{"-d", "-o", o, "/m"}, false},
		{[]string{"-o", o + ",debug", "/m"}, false},
		{[]string{"-o", "debug," + o, "/m"}, false},
		{[]string{"-o", o, "-o", "debug", "/m"}, false},
		{[]string{"-odebug", "-o", o, "/m"}, false},
		{[]string{"-h"}, false},
		{[]string{"--help", "-o", o, "/m"}, false},
		{[]string{"-V"}, false},
		{[]string{"-o", o, "--version"}, false},
		{[]string{}, false},
	} {
		stays := cStays(c.args)
		if stays == c.fork {
			t.Errorf("strata_stays(%q) = %v, want %v", c.args, stays, !c.fork)
		}
		opts, action, err := mountopt.ParseArgs(c.args)
		background := err == nil && action == mountopt.ActionMount && !opts.Foreground
		if err == nil && !background && !stays {
			t.Errorf("strata %q: ParseArgs says foreground, help or version (action %v), and strata_stays would fork", c.args, action)
		}
		if background != c.fork && err == nil {
			t.Errorf("strata %q: ParseArgs says background=%v, the table %v", c.args, background, c.fork)
		}
	}
}

// TestStaysInTheDaemonAndAfterAgain: no fork in the daemon that the
// command re-executes (daemonize), nor in the command run again after the
// forked child's "again".
func TestStaysInTheDaemonAndAfterAgain(t *testing.T) {
	args := []string{"-o", "lowerdir=/l,upperdir=/u,workdir=/w", "/m"}
	for _, env := range []string{daemonEnv, noDetachEnv} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "1")
			if !cStays(args) {
				t.Errorf("with %s set, strata_stays(%q) would fork", env, args)
			}
		})
	}
}
